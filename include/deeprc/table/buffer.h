#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "deeprc/core/memory_pool.h"
#include "deeprc/core/result.h"

namespace deeprc {

// A contiguous block of bytes. Once placed in a Column it is immutable and shared by every column
// and slice that refers to it. A buffer either owns memory from a MemoryPool, or is a view into a
// parent buffer (zero-copy slice), or wraps foreign memory with a release callback (Arrow import,
// memory-mapped files).
class Buffer {
 public:
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  // Uninitialized memory of `size` bytes (padded to a multiple of 64 bytes, so that word-wise
  // kernels may read past the end).
  static Result<std::shared_ptr<Buffer>> Allocate(int64_t size,
                                                  MemoryPool* pool = DefaultMemoryPool());
  // Zero-filled memory.
  static Result<std::shared_ptr<Buffer>> AllocateZeroed(int64_t size,
                                                        MemoryPool* pool = DefaultMemoryPool());
  static Result<std::shared_ptr<Buffer>> CopyOf(const void* data, int64_t size,
                                                MemoryPool* pool = DefaultMemoryPool());
  // A view of bytes [offset, offset + size) of parent; keeps parent alive.
  static std::shared_ptr<Buffer> Slice(std::shared_ptr<const Buffer> parent, int64_t offset,
                                       int64_t size);
  // Memory owned elsewhere; `release` runs when the last reference goes.
  static std::shared_ptr<Buffer> Wrap(const uint8_t* data, int64_t size,
                                      std::function<void()> release);

  const uint8_t* data() const { return data_; }
  // Writable access, for the producer that just allocated the buffer and has not shared it yet.
  uint8_t* mutable_data() { return const_cast<uint8_t*>(data_); }
  int64_t size() const { return size_; }

  template <typename T>
  const T* data_as() const {
    return reinterpret_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data_as() {
    return reinterpret_cast<T*>(mutable_data());
  }

  // Shrinks the visible size (for builders that over-allocated); never grows.
  void Truncate(int64_t size);

 private:
  Buffer() = default;

  const uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  // Owned allocation, when this buffer owns its memory.
  MemoryPool* pool_ = nullptr;
  int64_t capacity_ = 0;
  std::shared_ptr<const Buffer> parent_;
  std::function<void()> release_;
};

// A growable byte area for builders. Finish() hands the bytes over as an immutable Buffer.
class GrowableBuffer {
 public:
  explicit GrowableBuffer(MemoryPool* pool = DefaultMemoryPool()) : pool_(pool) {}
  GrowableBuffer(GrowableBuffer&& other) noexcept;
  GrowableBuffer& operator=(GrowableBuffer&& other) noexcept;
  GrowableBuffer(const GrowableBuffer&) = delete;
  GrowableBuffer& operator=(const GrowableBuffer&) = delete;
  ~GrowableBuffer();

  // Ensures capacity for `size` bytes in total, growing geometrically.
  Status Reserve(int64_t size);
  // Sets the size, growing if needed; new bytes are uninitialized.
  Status Resize(int64_t size);
  Status Append(const void* data, int64_t size);

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  // Caller guarantees capacity.
  void UnsafeAppend(const void* data, int64_t size);
  void UnsafeSetSize(int64_t size) { size_ = size; }

  Result<std::shared_ptr<Buffer>> Finish();

 private:
  MemoryPool* pool_;
  uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace deeprc
