#pragma once

#include <atomic>
#include <cstdint>

#include "deeprc/core/result.h"

namespace deeprc {

// Every large buffer is allocated through a pool that counts bytes, so that memory use can be
// reported (peak) and bounded (limit). Allocations are 64-byte aligned and not zeroed.
class MemoryPool {
 public:
  virtual ~MemoryPool() = default;
  virtual Result<uint8_t*> Allocate(int64_t size) = 0;
  // Grows or shrinks an allocation made by this pool, keeping the first min(old, new) bytes.
  virtual Result<uint8_t*> Reallocate(uint8_t* data, int64_t old_size, int64_t new_size) = 0;
  virtual void Free(uint8_t* data, int64_t size) = 0;
  virtual int64_t bytes_allocated() const = 0;
  virtual int64_t peak_bytes_allocated() const = 0;
};

// The process-wide pool: aligned system allocation, counted. DEEPRC_MEMORY_LIMIT_MB, when set,
// makes allocations beyond the limit fail with OutOfMemory instead of the process being killed.
MemoryPool* DefaultMemoryPool();

inline constexpr int64_t kBufferAlignment = 64;

}  // namespace deeprc
