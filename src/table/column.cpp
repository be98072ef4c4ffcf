#include "deeprc/table/column.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/core.h>

#include "deeprc/table/temporal.h"

namespace deeprc {

Column Column::Make(DataType type, int64_t length, std::shared_ptr<const Buffer> values,
                    std::shared_ptr<const Buffer> validity, int64_t null_count, int64_t offset) {
  Column column;
  column.type_ = std::move(type);
  column.length_ = length;
  column.offset_ = offset;
  column.values_ = std::move(values);
  column.validity_ = std::move(validity);
  if (column.validity_ == nullptr) {
    column.null_count_ = 0;
  } else if (null_count >= 0) {
    column.null_count_ = null_count;
  } else {
    column.null_count_ = length - bitmap::CountSetBits(column.validity_->data(), offset, length);
  }
  return column;
}

Column Column::MakeString(int64_t length, std::shared_ptr<const Buffer> offsets,
                          std::shared_ptr<const Buffer> bytes,
                          std::shared_ptr<const Buffer> validity, int64_t null_count,
                          int64_t offset) {
  Column column = Make(DataType::String(), length, std::move(bytes), std::move(validity),
                       null_count, offset);
  column.offsets_ = std::move(offsets);
  return column;
}

Result<Column> Column::MakeAllNull(DataType type, int64_t length) {
  DEEPRC_ASSIGN_OR_RAISE(auto validity, Buffer::AllocateZeroed(bitmap::BytesForBits(length)));
  if (type.id == TypeId::kString) {
    DEEPRC_ASSIGN_OR_RAISE(auto offsets, Buffer::AllocateZeroed((length + 1) * 8));
    DEEPRC_ASSIGN_OR_RAISE(auto bytes, Buffer::Allocate(0));
    return MakeString(length, std::move(offsets), std::move(bytes), std::move(validity), length);
  }
  const int64_t value_bytes = type.id == TypeId::kBool ? bitmap::BytesForBits(length)
                                                       : length * ByteWidth(type.id);
  DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::AllocateZeroed(value_bytes));
  return Make(std::move(type), length, std::move(values), std::move(validity), length);
}

Column Column::Slice(int64_t offset, int64_t length) const {
  offset = std::clamp<int64_t>(offset, 0, length_);
  length = std::clamp<int64_t>(length, 0, length_ - offset);
  Column slice = *this;
  slice.offset_ = offset_ + offset;
  slice.length_ = length;
  if (validity_ == nullptr || null_count_ == 0) {
    slice.null_count_ = 0;
  } else if (length == length_) {
    slice.null_count_ = null_count_;
  } else {
    slice.null_count_ = length - bitmap::CountSetBits(validity_->data(), slice.offset_, length);
  }
  return slice;
}

bool Column::Equals(const Column& other) const {
  if (!(type_ == other.type_) || length_ != other.length_ || null_count_ != other.null_count_) {
    return false;
  }
  for (int64_t i = 0; i < length_; ++i) {
    if (IsValid(i) != other.IsValid(i)) return false;
  }
  return VisitType(type_.id, [&]<typename Tag>(Tag) {
    for (int64_t i = 0; i < length_; ++i) {
      if (IsNull(i)) continue;
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        if (GetBool(i) != other.GetBool(i)) return false;
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        if (GetString(i) != other.GetString(i)) return false;
      } else {
        using T = typename Tag::CType;
        const T a = Value<T>(i);
        const T b = other.Value<T>(i);
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(a) && std::isnan(b)) continue;
        }
        if (a != b) return false;
      }
    }
    return true;
  });
}

std::string Column::FormatValue(int64_t i) const {
  if (IsNull(i)) return "null";
  switch (type_.id) {
    case TypeId::kDate32: return temporal::FormatDate(Value<int32_t>(i));
    case TypeId::kTimestamp:
      return temporal::FormatTimestamp(Value<int64_t>(i), type_.unit, !type_.timezone.empty());
    default: break;
  }
  return VisitType(type_.id, [&]<typename Tag>(Tag) -> std::string {
    if constexpr (std::is_same_v<Tag, BoolTag>) {
      return GetBool(i) ? "true" : "false";
    } else if constexpr (std::is_same_v<Tag, StringTag>) {
      return std::string(GetString(i));
    } else {
      using T = typename Tag::CType;
      if constexpr (sizeof(T) == 1) {
        return fmt::format("{}", static_cast<int>(Value<T>(i)));
      } else {
        return fmt::format("{}", Value<T>(i));
      }
    }
  });
}

}  // namespace deeprc
