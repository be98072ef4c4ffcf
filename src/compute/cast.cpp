#include "deeprc/compute/cast.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "deeprc/core/thread_pool.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/temporal.h"

namespace deeprc::compute {
namespace {

// Below this many rows a numeric cast runs on one thread.
constexpr int64_t kParallelCastRows = 1 << 18;

template <typename T>
auto Printable(T value) {
  if constexpr (sizeof(T) == 1 && std::is_integral_v<T>) {
    return static_cast<int>(value);
  } else {
    return value;
  }
}

// 2^digits as a double: one past the largest value of integer type T.
template <typename T>
double IntegerUpperBound() {
  return std::ldexp(1.0, std::numeric_limits<T>::digits);
}

// Converts one value; false when the target cannot hold it (see cast.h for the rules).
template <typename To, typename From>
bool ConvertValue(From value, To* out) {
  if constexpr (std::is_integral_v<From> && std::is_integral_v<To>) {
    if (!std::in_range<To>(value)) return false;
    *out = static_cast<To>(value);
    return true;
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (!std::isfinite(value) || std::trunc(value) != value) return false;
    const double upper = IntegerUpperBound<To>();
    const double lower = std::is_signed_v<To> ? -upper : 0.0;
    const double v = static_cast<double>(value);
    if (v < lower || v >= upper) return false;
    *out = static_cast<To>(value);
    return true;
  } else if constexpr (std::is_integral_v<From> && std::is_floating_point_v<To>) {
    const To converted = static_cast<To>(value);
    // Round trip: the floating value must name exactly the integer (and must not have been
    // rounded up to 2^digits, which is outside From).
    if (static_cast<double>(converted) >= IntegerUpperBound<From>()) return false;
    if (static_cast<From>(converted) != value) return false;
    *out = converted;
    return true;
  } else {
    const To converted = static_cast<To>(value);
    if (std::isfinite(value) && !std::isfinite(converted)) return false;
    *out = converted;
    return true;
  }
}

// Validity of the result: shares the source's bits when they start at a byte the result can use
// (offset 0), copies them otherwise.
Result<std::shared_ptr<const Buffer>> ResultValidity(const Column& column) {
  if (column.validity_bits() == nullptr) return std::shared_ptr<const Buffer>();
  if (column.offset() == 0) return column.validity_buffer();
  DEEPRC_ASSIGN_OR_RAISE(auto bits, Buffer::Allocate(bitmap::BytesForBits(column.length())));
  bitmap::CopyBits(column.validity_bits(), column.offset(), column.length(), bits->mutable_data(),
                   0);
  return std::shared_ptr<const Buffer>(std::move(bits));
}

template <typename To, typename From>
Result<Column> CastNumbers(const Column& column, const DataType& type) {
  const int64_t n = column.length();
  DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(n * static_cast<int64_t>(sizeof(To))));
  To* out = values->template mutable_data_as<To>();
  const From* in = column.Values<From>();
  const int parts = n >= kParallelCastRows ? DefaultThreadCount() : 1;
  std::vector<int64_t> bad_row(static_cast<size_t>(parts), -1);
  ParallelRanges(n, parts, parts, [&](int64_t part, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (column.IsNull(i)) {
        out[i] = To{};
      } else if (!ConvertValue<To>(in[i], &out[i])) {
        bad_row[part] = i;
        return;
      }
    }
  });
  for (int64_t row : bad_row) {
    if (row >= 0) {
      return Status::TypeError("cannot cast {} value {} at row {} to {}: {}",
                               column.type().ToString(), Printable(in[row]), row, type.ToString(),
                               std::is_floating_point_v<To> && std::is_integral_v<From>
                                   ? "it has no exact floating-point representation"
                                   : "it is out of range or not integral");
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(auto validity, ResultValidity(column));
  return Column::Make(type, n, std::move(values), std::move(validity), column.null_count());
}

template <typename To>
Result<Column> CastBoolToNumber(const Column& column, const DataType& type) {
  const int64_t n = column.length();
  DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(n * static_cast<int64_t>(sizeof(To))));
  To* out = values->template mutable_data_as<To>();
  for (int64_t i = 0; i < n; ++i) out[i] = column.GetBool(i) ? To{1} : To{0};
  DEEPRC_ASSIGN_OR_RAISE(auto validity, ResultValidity(column));
  return Column::Make(type, n, std::move(values), std::move(validity), column.null_count());
}

Result<Column> CastToString(const Column& column) {
  const int64_t n = column.length();
  StringBuilder builder;
  DEEPRC_RETURN_NOT_OK(builder.Reserve(n, n * 8));
  fmt::memory_buffer text;
  const DataType& type = column.type();
  Status status = VisitType(type.id, [&]<typename Tag>(Tag) -> Status {
    for (int64_t i = 0; i < n; ++i) {
      if (column.IsNull(i)) {
        DEEPRC_RETURN_NOT_OK(builder.AppendNull());
        continue;
      }
      text.clear();
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        DEEPRC_RETURN_NOT_OK(builder.Append(column.GetBool(i) ? "true" : "false"));
        continue;
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        DEEPRC_RETURN_NOT_OK(builder.Append(column.GetString(i)));
        continue;
      } else {
        using T = typename Tag::CType;
        const T value = column.Value<T>(i);
        if (type.id == TypeId::kDate32) {
          DEEPRC_RETURN_NOT_OK(builder.Append(temporal::FormatDate(static_cast<int32_t>(value))));
          continue;
        }
        if (type.id == TypeId::kTimestamp) {
          DEEPRC_RETURN_NOT_OK(builder.Append(temporal::FormatTimestamp(
              static_cast<int64_t>(value), type.unit, !type.timezone.empty())));
          continue;
        }
        fmt::format_to(std::back_inserter(text), "{}", Printable(value));
        DEEPRC_RETURN_NOT_OK(builder.Append(std::string_view(text.data(), text.size())));
      }
    }
    return Status::OK();
  });
  DEEPRC_RETURN_NOT_OK(status);
  return builder.Finish();
}

}  // namespace

Result<Column> Cast(const Column& column, const DataType& type) {
  const DataType& from = column.type();
  if (from == type) return column;
  if (type.id == TypeId::kString) return CastToString(column);
  const bool from_number = IsNumeric(from.id) || from.id == TypeId::kBool;
  if (from_number && IsNumeric(type.id)) {
    return VisitType(type.id, [&]<typename ToTag>(ToTag) -> Result<Column> {
      if constexpr (kIsNumberTag<ToTag>) {
        using To = typename ToTag::CType;
        return VisitType(from.id, [&]<typename FromTag>(FromTag) -> Result<Column> {
          if constexpr (kIsNumberTag<FromTag>) {
            return CastNumbers<To, typename FromTag::CType>(column, type);
          } else if constexpr (std::is_same_v<FromTag, BoolTag>) {
            return CastBoolToNumber<To>(column, type);
          } else {
            return Status::Internal("unreachable cast from {}", from.ToString());
          }
        });
      } else {
        return Status::Internal("unreachable cast to {}", type.ToString());
      }
    });
  }
  return Status::NotImplemented("cast from {} to {} is not supported", from.ToString(),
                                type.ToString());
}

}  // namespace deeprc::compute
