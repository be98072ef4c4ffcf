#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "deeprc/table/buffer.h"
#include "deeprc/table/column.h"

namespace deeprc {

// Validity bits that are only materialized once the first null arrives.
class ValidityBuilder {
 public:
  explicit ValidityBuilder(MemoryPool* pool) : bits_(pool) {}
  Status Reserve(int64_t length);
  // Records row `length() - 1` as valid or null; call once per appended row.
  void UnsafeAppend(bool valid) {
    if (!valid && null_count_ == 0 && !materialized_) Materialize();
    if (materialized_) bitmap::SetBitTo(bits_.data(), length_, valid);
    null_count_ += !valid;
    ++length_;
  }
  Status Append(bool valid);
  int64_t length() const { return length_; }
  int64_t null_count() const { return null_count_; }
  // Null when no row was null.
  Result<std::shared_ptr<Buffer>> Finish();

 private:
  void Materialize();

  GrowableBuffer bits_;
  int64_t length_ = 0;
  int64_t reserved_ = 0;
  int64_t null_count_ = 0;
  bool materialized_ = false;
};

// Builds a fixed-width column (numbers, date32, timestamp) of C type T.
template <typename T>
class NumberBuilder {
 public:
  explicit NumberBuilder(DataType type, MemoryPool* pool = DefaultMemoryPool())
      : type_(std::move(type)), values_(pool), validity_(pool) {}

  Status Reserve(int64_t length) {
    DEEPRC_RETURN_NOT_OK(values_.Reserve(length * static_cast<int64_t>(sizeof(T))));
    return validity_.Reserve(length);
  }
  void UnsafeAppend(T value) {
    values_.UnsafeAppend(&value, sizeof(T));
    validity_.UnsafeAppend(true);
  }
  void UnsafeAppendNull() {
    const T zero{};
    values_.UnsafeAppend(&zero, sizeof(T));
    validity_.UnsafeAppend(false);
  }
  Status Append(T value) {
    DEEPRC_RETURN_NOT_OK(Reserve(length() + 1));
    UnsafeAppend(value);
    return Status::OK();
  }
  Status AppendNull() {
    DEEPRC_RETURN_NOT_OK(Reserve(length() + 1));
    UnsafeAppendNull();
    return Status::OK();
  }
  Status Append(const std::optional<T>& value) { return value ? Append(*value) : AppendNull(); }
  int64_t length() const { return validity_.length(); }

  Result<Column> Finish() {
    const int64_t length = this->length();
    const int64_t nulls = validity_.null_count();
    DEEPRC_ASSIGN_OR_RAISE(auto validity, validity_.Finish());
    DEEPRC_ASSIGN_OR_RAISE(auto values, values_.Finish());
    return Column::Make(type_, length, std::move(values), std::move(validity), nulls);
  }

 private:
  DataType type_;
  GrowableBuffer values_;
  ValidityBuilder validity_;
};

class BoolBuilder {
 public:
  explicit BoolBuilder(MemoryPool* pool = DefaultMemoryPool()) : values_(pool), validity_(pool) {}
  Status Reserve(int64_t length);
  void UnsafeAppend(bool value) {
    bitmap::SetBitTo(values_.data(), validity_.length(), value);
    validity_.UnsafeAppend(true);
  }
  void UnsafeAppendNull() {
    bitmap::ClearBit(values_.data(), validity_.length());
    validity_.UnsafeAppend(false);
  }
  Status Append(bool value);
  Status AppendNull();
  Status Append(const std::optional<bool>& value) { return value ? Append(*value) : AppendNull(); }
  int64_t length() const { return validity_.length(); }
  Result<Column> Finish();

 private:
  GrowableBuffer values_;
  ValidityBuilder validity_;
};

class StringBuilder {
 public:
  explicit StringBuilder(MemoryPool* pool = DefaultMemoryPool());
  // Reserves row slots, and optionally bytes of text.
  Status Reserve(int64_t length, int64_t bytes = 0);
  Status Append(std::string_view value);
  Status AppendNull();
  int64_t length() const { return validity_.length(); }
  int64_t byte_size() const { return bytes_.size(); }
  Result<Column> Finish();

 private:
  GrowableBuffer offsets_;
  GrowableBuffer bytes_;
  ValidityBuilder validity_;
};

// Convenience for tests and small tables: a column from optional values.
template <typename T>
Result<Column> MakeColumn(DataType type, const std::vector<std::optional<T>>& values) {
  NumberBuilder<T> builder(std::move(type));
  DEEPRC_RETURN_NOT_OK(builder.Reserve(static_cast<int64_t>(values.size())));
  for (const auto& value : values) {
    if (value) {
      builder.UnsafeAppend(*value);
    } else {
      builder.UnsafeAppendNull();
    }
  }
  return builder.Finish();
}
Result<Column> MakeBoolColumn(const std::vector<std::optional<bool>>& values);
Result<Column> MakeStringColumn(const std::vector<std::optional<std::string>>& values);

}  // namespace deeprc
