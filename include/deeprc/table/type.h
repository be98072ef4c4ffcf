#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "deeprc/core/result.h"

namespace deeprc {

enum class TypeId : uint8_t {
  kBool,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kFloat32,
  kFloat64,
  kString,     // UTF-8, 64-bit offsets (Arrow's large_utf8)
  kDate32,     // days since 1970-01-01, stored as int32
  kTimestamp,  // count of `unit` since 1970-01-01T00:00:00 UTC, stored as int64
};

enum class TimeUnit : uint8_t { kSecond, kMilli, kMicro, kNano };

// A logical type: the id, and for timestamps the unit and an optional time zone (IANA name or
// offset such as "+02:00"; empty means the values are wall-clock times without a zone).
struct DataType {
  DataType(TypeId type_id = TypeId::kInt64, TimeUnit time_unit = TimeUnit::kMicro,  // NOLINT
           std::string time_zone = {})
      : id(type_id), unit(time_unit), timezone(std::move(time_zone)) {}

  TypeId id;
  TimeUnit unit;
  std::string timezone;

  static DataType Bool() { return {TypeId::kBool}; }
  static DataType Int8() { return {TypeId::kInt8}; }
  static DataType Int16() { return {TypeId::kInt16}; }
  static DataType Int32() { return {TypeId::kInt32}; }
  static DataType Int64() { return {TypeId::kInt64}; }
  static DataType UInt8() { return {TypeId::kUInt8}; }
  static DataType UInt16() { return {TypeId::kUInt16}; }
  static DataType UInt32() { return {TypeId::kUInt32}; }
  static DataType UInt64() { return {TypeId::kUInt64}; }
  static DataType Float32() { return {TypeId::kFloat32}; }
  static DataType Float64() { return {TypeId::kFloat64}; }
  static DataType String() { return {TypeId::kString}; }
  static DataType Date32() { return {TypeId::kDate32}; }
  static DataType Timestamp(TimeUnit unit, std::string timezone = {}) {
    return {TypeId::kTimestamp, unit, std::move(timezone)};
  }

  bool operator==(const DataType& other) const {
    if (id != other.id) return false;
    if (id != TypeId::kTimestamp) return true;
    return unit == other.unit && timezone == other.timezone;
  }

  // "int64", "string", "timestamp[ms]", "timestamp[us, UTC]" — the form ParseDataType reads.
  std::string ToString() const;
};

// Reads the names ToString writes, plus the common aliases: int/long (int64), double/float64,
// float (float32), str/utf8, boolean, date.
Result<DataType> ParseDataType(std::string_view text);

bool IsInteger(TypeId id);
bool IsSignedInteger(TypeId id);
bool IsFloating(TypeId id);
// Integers and floating point.
bool IsNumeric(TypeId id);
// Values stored as fixed-width numbers (everything but bool, which is bit-packed, and string).
bool IsFixedWidth(TypeId id);
// Bytes per value for fixed-width types; 0 for bool and string.
int ByteWidth(TypeId id);
std::string_view TypeIdName(TypeId id);

// Tags handed to the visitors of VisitType: one per physical representation.
template <typename T>
struct NumberTag {
  using CType = T;
};
struct BoolTag {};
struct StringTag {};

template <typename Tag>
inline constexpr bool kIsNumberTag = false;
template <typename T>
inline constexpr bool kIsNumberTag<NumberTag<T>> = true;

// The one place that maps a runtime type id to a template instantiation. Calls
// visitor(NumberTag<C type>{}) for fixed-width types (date32 as int32, timestamp as int64),
// visitor(BoolTag{}) or visitor(StringTag{}).
template <typename Visitor>
decltype(auto) VisitType(TypeId id, Visitor&& visitor) {
  switch (id) {
    case TypeId::kBool: return visitor(BoolTag{});
    case TypeId::kInt8: return visitor(NumberTag<int8_t>{});
    case TypeId::kInt16: return visitor(NumberTag<int16_t>{});
    case TypeId::kInt32: return visitor(NumberTag<int32_t>{});
    case TypeId::kInt64: return visitor(NumberTag<int64_t>{});
    case TypeId::kUInt8: return visitor(NumberTag<uint8_t>{});
    case TypeId::kUInt16: return visitor(NumberTag<uint16_t>{});
    case TypeId::kUInt32: return visitor(NumberTag<uint32_t>{});
    case TypeId::kUInt64: return visitor(NumberTag<uint64_t>{});
    case TypeId::kFloat32: return visitor(NumberTag<float>{});
    case TypeId::kFloat64: return visitor(NumberTag<double>{});
    case TypeId::kString: return visitor(StringTag{});
    case TypeId::kDate32: return visitor(NumberTag<int32_t>{});
    case TypeId::kTimestamp: return visitor(NumberTag<int64_t>{});
  }
  return visitor(NumberTag<int64_t>{});  // unreachable for valid ids
}

}  // namespace deeprc
