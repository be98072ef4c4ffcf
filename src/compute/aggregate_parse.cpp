// The text form of an aggregate ("v:sum", "v:quantile(0.9)=p90") and the names of the kinds.
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include <fmt/core.h>

#include "deeprc/compute/group_by.h"

namespace deeprc::compute {
namespace {

constexpr std::array<std::pair<std::string_view, AggregateKind>, 12> kKinds = {{
    {"sum", AggregateKind::kSum},
    {"count", AggregateKind::kCount},
    {"min", AggregateKind::kMin},
    {"max", AggregateKind::kMax},
    {"mean", AggregateKind::kMean},
    {"var", AggregateKind::kVar},
    {"std", AggregateKind::kStd},
    {"nunique", AggregateKind::kNunique},
    {"first", AggregateKind::kFirst},
    {"last", AggregateKind::kLast},
    {"median", AggregateKind::kMedian},
    {"quantile", AggregateKind::kQuantile},
}};

std::string KindList() {
  std::string list;
  for (const auto& [name, kind] : kKinds) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  return list;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Parses the whole of `text` as a finite double.
bool ParseDouble(std::string_view text, double* out) {
  const std::string copy(Trim(text));
  if (copy.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(copy.c_str(), &end);
  if (errno != 0 || end != copy.c_str() + copy.size() || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

bool ParseInt(std::string_view text, int* out) {
  const std::string copy(Trim(text));
  if (copy.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(copy.c_str(), &end, 10);
  if (errno != 0 || end != copy.c_str() + copy.size() || value < -1000000 || value > 1000000) {
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

}  // namespace

std::string_view AggregateKindName(AggregateKind kind) {
  for (const auto& [name, k] : kKinds) {
    if (k == kind) return name;
  }
  return "unknown";
}

Result<Aggregate> ParseAggregate(std::string_view text) {
  const std::string whole(text);
  // COLUMN:KIND[(ARGS)][=NAME]; the column ends at the first ':' (names with ':' cannot be
  // written in this form), the kind at '(' or '=' or the end.
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return Status::Invalid("aggregate '{}' is not of the form COLUMN:AGGREGATE (e.g. 'v:sum')",
                           whole);
  }
  Aggregate aggregate;
  aggregate.column = std::string(Trim(text.substr(0, colon)));
  if (aggregate.column.empty()) {
    return Status::Invalid("missing column before ':' in aggregate '{}'", whole);
  }
  std::string_view rest = text.substr(colon + 1);
  const size_t kind_end = rest.find_first_of("(=");
  const std::string_view kind_text = Trim(rest.substr(0, kind_end));
  bool found = false;
  for (const auto& [name, kind] : kKinds) {
    if (name == kind_text) {
      aggregate.kind = kind;
      found = true;
    }
  }
  if (!found) {
    return Status::Invalid("unknown aggregate '{}' in '{}' (expected {})", kind_text, whole,
                           KindList());
  }
  rest = kind_end == std::string_view::npos ? std::string_view() : rest.substr(kind_end);

  bool has_arguments = false;
  std::string_view arguments;
  if (!rest.empty() && rest.front() == '(') {
    const size_t close = rest.find(')');
    if (close == std::string_view::npos) {
      return Status::Invalid("missing ')' after the arguments of '{}' in '{}'", kind_text, whole);
    }
    has_arguments = true;
    arguments = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
  }
  rest = Trim(rest);
  if (!rest.empty()) {
    if (rest.front() != '=') {
      return Status::Invalid("unexpected '{}' after '{}' in '{}' (expected '=NAME' or the end)",
                             rest, kind_text, whole);
    }
    aggregate.output_name = std::string(Trim(rest.substr(1)));
    if (aggregate.output_name.empty()) {
      return Status::Invalid("missing output name after '=' in '{}'", whole);
    }
  }

  switch (aggregate.kind) {
    case AggregateKind::kQuantile: {
      if (!has_arguments) {
        return Status::Invalid("quantile needs a fraction in [0, 1], as in '{}:quantile(0.9)', in '{}'",
                               aggregate.column, whole);
      }
      double q = 0;
      if (!ParseDouble(arguments, &q) || q < 0 || q > 1) {
        return Status::Invalid("quantile '{}' in '{}' is not a number in [0, 1]", arguments, whole);
      }
      aggregate.quantile = q;
      break;
    }
    case AggregateKind::kVar:
    case AggregateKind::kStd: {
      if (!has_arguments) break;
      std::string_view value = Trim(arguments);
      if (value.starts_with("ddof")) {
        value = Trim(value.substr(4));
        if (value.empty() || value.front() != '=') {
          return Status::Invalid("expected 'ddof=N' in the arguments of '{}' in '{}'", kind_text,
                                 whole);
        }
        value = value.substr(1);
      }
      int ddof = 0;
      if (!ParseInt(value, &ddof) || ddof < 0) {
        return Status::Invalid("ddof '{}' in '{}' is not a non-negative integer", value, whole);
      }
      aggregate.ddof = ddof;
      break;
    }
    default:
      if (has_arguments) {
        return Status::Invalid("aggregate '{}' takes no arguments, got '({})' in '{}'", kind_text,
                               arguments, whole);
      }
  }
  return aggregate;
}

}  // namespace deeprc::compute
