#include "deeprc/table/buffer.h"

#include <algorithm>
#include <cstring>

namespace deeprc {
namespace {
int64_t PaddedSize(int64_t size) { return (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment; }
}  // namespace

Buffer::~Buffer() {
  if (pool_ != nullptr) pool_->Free(const_cast<uint8_t*>(data_), capacity_);
  if (release_) release_();
}

Result<std::shared_ptr<Buffer>> Buffer::Allocate(int64_t size, MemoryPool* pool) {
  const int64_t capacity = PaddedSize(size);
  DEEPRC_ASSIGN_OR_RAISE(uint8_t * data, pool->Allocate(capacity));
  std::shared_ptr<Buffer> buffer(new Buffer());  // private constructor: make_shared cannot reach it
  buffer->data_ = data;
  buffer->size_ = size;
  buffer->pool_ = pool;
  buffer->capacity_ = capacity;
  return buffer;
}

Result<std::shared_ptr<Buffer>> Buffer::AllocateZeroed(int64_t size, MemoryPool* pool) {
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, Allocate(size, pool));
  std::memset(buffer->mutable_data(), 0, static_cast<size_t>(buffer->capacity_));
  return buffer;
}

Result<std::shared_ptr<Buffer>> Buffer::CopyOf(const void* data, int64_t size, MemoryPool* pool) {
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, Allocate(size, pool));
  if (size > 0) std::memcpy(buffer->mutable_data(), data, static_cast<size_t>(size));
  return buffer;
}

std::shared_ptr<Buffer> Buffer::Slice(std::shared_ptr<const Buffer> parent, int64_t offset,
                                      int64_t size) {
  std::shared_ptr<Buffer> buffer(new Buffer());
  buffer->data_ = parent->data_ + offset;
  buffer->size_ = size;
  buffer->parent_ = std::move(parent);
  return buffer;
}

std::shared_ptr<Buffer> Buffer::Wrap(const uint8_t* data, int64_t size,
                                     std::function<void()> release) {
  std::shared_ptr<Buffer> buffer(new Buffer());
  buffer->data_ = data;
  buffer->size_ = size;
  buffer->release_ = std::move(release);
  return buffer;
}

void Buffer::Truncate(int64_t size) { size_ = std::min(size_, size); }

GrowableBuffer::GrowableBuffer(GrowableBuffer&& other) noexcept
    : pool_(other.pool_), data_(other.data_), size_(other.size_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
}

GrowableBuffer& GrowableBuffer::operator=(GrowableBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) pool_->Free(data_, capacity_);
    pool_ = other.pool_;
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
  }
  return *this;
}

GrowableBuffer::~GrowableBuffer() {
  if (data_ != nullptr) pool_->Free(data_, capacity_);
}

Status GrowableBuffer::Reserve(int64_t size) {
  if (size <= capacity_) return Status::OK();
  const int64_t capacity = PaddedSize(std::max(size, capacity_ * 2));
  if (data_ == nullptr) {
    DEEPRC_ASSIGN_OR_RAISE(data_, pool_->Allocate(capacity));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(data_, pool_->Reallocate(data_, capacity_, capacity));
  }
  capacity_ = capacity;
  return Status::OK();
}

Status GrowableBuffer::Resize(int64_t size) {
  DEEPRC_RETURN_NOT_OK(Reserve(size));
  size_ = size;
  return Status::OK();
}

Status GrowableBuffer::Append(const void* data, int64_t size) {
  DEEPRC_RETURN_NOT_OK(Reserve(size_ + size));
  UnsafeAppend(data, size);
  return Status::OK();
}

void GrowableBuffer::UnsafeAppend(const void* data, int64_t size) {
  if (size > 0) std::memcpy(data_ + size_, data, static_cast<size_t>(size));
  size_ += size;
}

Result<std::shared_ptr<Buffer>> GrowableBuffer::Finish() {
  if (data_ == nullptr) DEEPRC_RETURN_NOT_OK(Reserve(kBufferAlignment));
  // Hand the allocation over: the buffer frees it through the pool.
  MemoryPool* pool = pool_;
  uint8_t* data = data_;
  const int64_t capacity = capacity_;
  auto buffer = Buffer::Wrap(data, size_, [pool, data, capacity] { pool->Free(data, capacity); });
  data_ = nullptr;
  size_ = capacity_ = 0;
  return buffer;
}

}  // namespace deeprc
