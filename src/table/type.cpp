#include "deeprc/table/type.h"

#include <algorithm>
#include <cctype>

#include <fmt/core.h>

namespace deeprc {
namespace {

std::string_view TimeUnitName(TimeUnit unit) {
  switch (unit) {
    case TimeUnit::kSecond: return "s";
    case TimeUnit::kMilli: return "ms";
    case TimeUnit::kMicro: return "us";
    case TimeUnit::kNano: return "ns";
  }
  return "us";
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

std::string_view TypeIdName(TypeId id) {
  switch (id) {
    case TypeId::kBool: return "bool";
    case TypeId::kInt8: return "int8";
    case TypeId::kInt16: return "int16";
    case TypeId::kInt32: return "int32";
    case TypeId::kInt64: return "int64";
    case TypeId::kUInt8: return "uint8";
    case TypeId::kUInt16: return "uint16";
    case TypeId::kUInt32: return "uint32";
    case TypeId::kUInt64: return "uint64";
    case TypeId::kFloat32: return "float32";
    case TypeId::kFloat64: return "float64";
    case TypeId::kString: return "string";
    case TypeId::kDate32: return "date32";
    case TypeId::kTimestamp: return "timestamp";
  }
  return "unknown";
}

std::string DataType::ToString() const {
  if (id != TypeId::kTimestamp) return std::string(TypeIdName(id));
  if (timezone.empty()) return fmt::format("timestamp[{}]", TimeUnitName(unit));
  return fmt::format("timestamp[{}, {}]", TimeUnitName(unit), timezone);
}

Result<DataType> ParseDataType(std::string_view text) {
  std::string lower(Trim(text));
  std::string original = lower;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  struct Alias {
    std::string_view name;
    TypeId id;
  };
  static constexpr Alias kAliases[] = {
      {"bool", TypeId::kBool},       {"boolean", TypeId::kBool},     {"int8", TypeId::kInt8},
      {"int16", TypeId::kInt16},     {"int32", TypeId::kInt32},      {"int64", TypeId::kInt64},
      {"int", TypeId::kInt64},       {"long", TypeId::kInt64},       {"uint8", TypeId::kUInt8},
      {"uint16", TypeId::kUInt16},   {"uint32", TypeId::kUInt32},    {"uint64", TypeId::kUInt64},
      {"float32", TypeId::kFloat32}, {"float", TypeId::kFloat32},    {"float64", TypeId::kFloat64},
      {"double", TypeId::kFloat64},  {"string", TypeId::kString},    {"str", TypeId::kString},
      {"utf8", TypeId::kString},     {"date32", TypeId::kDate32},    {"date", TypeId::kDate32},
  };
  for (const auto& alias : kAliases) {
    if (lower == alias.name) return DataType{alias.id};
  }
  if (lower == "timestamp") return DataType::Timestamp(TimeUnit::kMicro);
  if (lower.starts_with("timestamp[") && lower.ends_with("]")) {
    std::string_view inner(original);
    inner = inner.substr(10, inner.size() - 11);
    std::string_view unit_text = inner;
    std::string_view zone;
    if (auto comma = inner.find(','); comma != std::string_view::npos) {
      unit_text = inner.substr(0, comma);
      zone = Trim(inner.substr(comma + 1));
    }
    unit_text = Trim(unit_text);
    TimeUnit unit;
    if (unit_text == "s") {
      unit = TimeUnit::kSecond;
    } else if (unit_text == "ms") {
      unit = TimeUnit::kMilli;
    } else if (unit_text == "us") {
      unit = TimeUnit::kMicro;
    } else if (unit_text == "ns") {
      unit = TimeUnit::kNano;
    } else {
      return Status::Invalid("unknown time unit '{}' in type '{}' (expected s, ms, us or ns)",
                             unit_text, text);
    }
    return DataType::Timestamp(unit, std::string(zone));
  }
  return Status::Invalid(
      "unknown type '{}' (expected bool, int8..int64, uint8..uint64, float32, float64, string, "
      "date32 or timestamp[s|ms|us|ns(, zone)])",
      text);
}

bool IsInteger(TypeId id) { return id >= TypeId::kInt8 && id <= TypeId::kUInt64; }
bool IsSignedInteger(TypeId id) { return id >= TypeId::kInt8 && id <= TypeId::kInt64; }
bool IsFloating(TypeId id) { return id == TypeId::kFloat32 || id == TypeId::kFloat64; }
bool IsNumeric(TypeId id) { return IsInteger(id) || IsFloating(id); }
bool IsFixedWidth(TypeId id) { return id != TypeId::kBool && id != TypeId::kString; }

int ByteWidth(TypeId id) {
  return VisitType(id, []<typename Tag>(Tag) -> int {
    if constexpr (kIsNumberTag<Tag>) {
      return sizeof(typename Tag::CType);
    } else {
      return 0;
    }
  });
}

}  // namespace deeprc
