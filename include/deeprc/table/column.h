#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "deeprc/core/check.h"
#include "deeprc/table/bitmap.h"
#include "deeprc/table/buffer.h"
#include "deeprc/table/type.h"

namespace deeprc {

// An immutable column in Arrow's memory layout:
//  - validity: a bitmap, bit set = value present; absent (null pointer) when there are no nulls;
//  - fixed-width types: `values` holds length values of the physical C type;
//  - bool: `values` is a bitmap;
//  - string: `offsets` holds length + 1 int64 offsets into the UTF-8 bytes of `values`.
// `offset` is the position of the column's first row in those buffers (zero-copy slices).
// Copying a Column copies a few shared pointers, never the data.
class Column {
 public:
  Column() = default;

  // Fixed-width or bool column. null_count < 0 means "count it".
  static Column Make(DataType type, int64_t length, std::shared_ptr<const Buffer> values,
                     std::shared_ptr<const Buffer> validity = nullptr, int64_t null_count = -1,
                     int64_t offset = 0);
  static Column MakeString(int64_t length, std::shared_ptr<const Buffer> offsets,
                           std::shared_ptr<const Buffer> bytes,
                           std::shared_ptr<const Buffer> validity = nullptr,
                           int64_t null_count = -1, int64_t offset = 0);
  // A column of `length` nulls of any type.
  static Result<Column> MakeAllNull(DataType type, int64_t length);

  const DataType& type() const { return type_; }
  TypeId type_id() const { return type_.id; }
  int64_t length() const { return length_; }
  int64_t null_count() const { return null_count_; }
  int64_t offset() const { return offset_; }
  bool has_nulls() const { return null_count_ > 0; }

  bool IsValid(int64_t i) const {
    return validity_ == nullptr || bitmap::GetBit(validity_->data(), offset_ + i);
  }
  bool IsNull(int64_t i) const { return !IsValid(i); }

  // Validity bits; index with offset() + i. Null when the column has no nulls.
  const uint8_t* validity_bits() const { return validity_ ? validity_->data() : nullptr; }

  // Values of a fixed-width column, already advanced to the column's first row.
  template <typename T>
  const T* Values() const {
    DEEPRC_DCHECK(IsFixedWidth(type_.id) && ByteWidth(type_.id) == sizeof(T));
    return values_->data_as<T>() + offset_;
  }
  template <typename T>
  T Value(int64_t i) const {
    return Values<T>()[i];
  }
  bool GetBool(int64_t i) const { return bitmap::GetBit(values_->data(), offset_ + i); }
  // The bool bitmap; index with offset() + i.
  const uint8_t* bool_bits() const { return values_->data(); }

  // String offsets, already advanced to the column's first row (length() + 1 entries; the first
  // need not be 0).
  const int64_t* StringOffsets() const { return offsets_->data_as<int64_t>() + offset_; }
  const char* StringBytes() const { return values_->data_as<char>(); }
  std::string_view GetString(int64_t i) const {
    const int64_t* offsets = StringOffsets();
    return {StringBytes() + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i])};
  }

  // Zero-copy view of rows [offset, offset + length); clamps to the column's end.
  Column Slice(int64_t offset, int64_t length) const;

  // The buffers, for serialization and the Arrow C interface.
  const std::shared_ptr<const Buffer>& validity_buffer() const { return validity_; }
  const std::shared_ptr<const Buffer>& values_buffer() const { return values_; }
  const std::shared_ptr<const Buffer>& offsets_buffer() const { return offsets_; }

  // Same type, length, nulls and values (NaN equals NaN here; this is "same data", not SQL).
  bool Equals(const Column& other) const;
  // The value of row i as text: "null" for nulls, dates as YYYY-MM-DD, timestamps as ISO 8601.
  std::string FormatValue(int64_t i) const;

 private:
  DataType type_;
  int64_t length_ = 0;
  int64_t null_count_ = 0;
  int64_t offset_ = 0;
  std::shared_ptr<const Buffer> validity_;
  std::shared_ptr<const Buffer> values_;
  std::shared_ptr<const Buffer> offsets_;
};

}  // namespace deeprc
