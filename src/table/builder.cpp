#include "deeprc/table/builder.h"

namespace deeprc {

Status ValidityBuilder::Reserve(int64_t length) {
  reserved_ = std::max(reserved_, length);
  if (materialized_) return bits_.Reserve(bitmap::BytesForBits(length) + 8);
  return Status::OK();
}

Status ValidityBuilder::Append(bool valid) {
  DEEPRC_RETURN_NOT_OK(Reserve(length_ + 1));
  UnsafeAppend(valid);
  return Status::OK();
}

void ValidityBuilder::Materialize() {
  // Reserve failures surface as an abort here only if memory is exhausted mid-append; the
  // Reserve call that precedes every UnsafeAppend sized the request.
  const int64_t capacity = bitmap::BytesForBits(std::max(reserved_, length_ + 1)) + 8;
  Status status = bits_.Resize(capacity);
  DEEPRC_CHECK(status.ok());
  bitmap::SetBitsTo(bits_.data(), 0, length_, true);
  materialized_ = true;
}

Result<std::shared_ptr<Buffer>> ValidityBuilder::Finish() {
  std::shared_ptr<Buffer> result;
  if (materialized_) {
    bits_.UnsafeSetSize(bitmap::BytesForBits(length_));
    DEEPRC_ASSIGN_OR_RAISE(result, bits_.Finish());
  }
  length_ = null_count_ = reserved_ = 0;
  materialized_ = false;
  return result;
}

Status BoolBuilder::Reserve(int64_t length) {
  DEEPRC_RETURN_NOT_OK(values_.Resize(std::max(values_.size(), bitmap::BytesForBits(length) + 8)));
  return validity_.Reserve(length);
}

Status BoolBuilder::Append(bool value) {
  DEEPRC_RETURN_NOT_OK(Reserve(length() + 1));
  UnsafeAppend(value);
  return Status::OK();
}

Status BoolBuilder::AppendNull() {
  DEEPRC_RETURN_NOT_OK(Reserve(length() + 1));
  UnsafeAppendNull();
  return Status::OK();
}

Result<Column> BoolBuilder::Finish() {
  const int64_t length = this->length();
  const int64_t nulls = validity_.null_count();
  DEEPRC_RETURN_NOT_OK(Reserve(length));
  values_.UnsafeSetSize(bitmap::BytesForBits(length));
  DEEPRC_ASSIGN_OR_RAISE(auto validity, validity_.Finish());
  DEEPRC_ASSIGN_OR_RAISE(auto values, values_.Finish());
  return Column::Make(DataType::Bool(), length, std::move(values), std::move(validity), nulls);
}

StringBuilder::StringBuilder(MemoryPool* pool) : offsets_(pool), bytes_(pool), validity_(pool) {
  const int64_t zero = 0;
  Status status = offsets_.Append(&zero, sizeof(zero));
  DEEPRC_CHECK(status.ok());
}

Status StringBuilder::Reserve(int64_t length, int64_t bytes) {
  DEEPRC_RETURN_NOT_OK(offsets_.Reserve((length + 1) * 8));
  DEEPRC_RETURN_NOT_OK(bytes_.Reserve(bytes));
  return validity_.Reserve(length);
}

Status StringBuilder::Append(std::string_view value) {
  DEEPRC_RETURN_NOT_OK(Reserve(length() + 1, bytes_.size() + static_cast<int64_t>(value.size())));
  bytes_.UnsafeAppend(value.data(), static_cast<int64_t>(value.size()));
  const int64_t end = bytes_.size();
  offsets_.UnsafeAppend(&end, sizeof(end));
  validity_.UnsafeAppend(true);
  return Status::OK();
}

Status StringBuilder::AppendNull() {
  DEEPRC_RETURN_NOT_OK(Reserve(length() + 1, bytes_.size()));
  const int64_t end = bytes_.size();
  offsets_.UnsafeAppend(&end, sizeof(end));
  validity_.UnsafeAppend(false);
  return Status::OK();
}

Result<Column> StringBuilder::Finish() {
  const int64_t length = this->length();
  const int64_t nulls = validity_.null_count();
  DEEPRC_ASSIGN_OR_RAISE(auto validity, validity_.Finish());
  DEEPRC_ASSIGN_OR_RAISE(auto offsets, offsets_.Finish());
  DEEPRC_ASSIGN_OR_RAISE(auto bytes, bytes_.Finish());
  const int64_t zero = 0;
  DEEPRC_RETURN_NOT_OK(offsets_.Append(&zero, sizeof(zero)));
  return Column::MakeString(length, std::move(offsets), std::move(bytes), std::move(validity),
                            nulls);
}

Result<Column> MakeBoolColumn(const std::vector<std::optional<bool>>& values) {
  BoolBuilder builder;
  for (const auto& value : values) DEEPRC_RETURN_NOT_OK(builder.Append(value));
  return builder.Finish();
}

Result<Column> MakeStringColumn(const std::vector<std::optional<std::string>>& values) {
  StringBuilder builder;
  for (const auto& value : values) {
    if (value) {
      DEEPRC_RETURN_NOT_OK(builder.Append(std::string_view(*value)));
    } else {
      DEEPRC_RETURN_NOT_OK(builder.AppendNull());
    }
  }
  return builder.Finish();
}

}  // namespace deeprc
