#include "deeprc/core/memory_pool.h"

#include <cstdlib>
#include <cstring>

namespace deeprc {
namespace {

class SystemMemoryPool final : public MemoryPool {
 public:
  SystemMemoryPool() {
    if (const char* limit = std::getenv("DEEPRC_MEMORY_LIMIT_MB")) {
      limit_ = std::atoll(limit) * (int64_t{1} << 20);
    }
  }

  Result<uint8_t*> Allocate(int64_t size) override {
    if (size < 0) return Status::Invalid("negative allocation size {}", size);
    DEEPRC_RETURN_NOT_OK(Reserve(size));
    if (size == 0) return ZeroSizeArea();
    void* data = nullptr;
    if (posix_memalign(&data, kBufferAlignment, static_cast<size_t>(size)) != 0) {
      allocated_.fetch_sub(size);
      return Status::OutOfMemory("could not allocate {} bytes", size);
    }
    return static_cast<uint8_t*>(data);
  }

  Result<uint8_t*> Reallocate(uint8_t* data, int64_t old_size, int64_t new_size) override {
    if (new_size < 0) return Status::Invalid("negative allocation size {}", new_size);
    DEEPRC_ASSIGN_OR_RAISE(uint8_t * fresh, Allocate(new_size));
    if (old_size > 0 && new_size > 0) {
      std::memcpy(fresh, data, static_cast<size_t>(std::min(old_size, new_size)));
    }
    Free(data, old_size);
    return fresh;
  }

  void Free(uint8_t* data, int64_t size) override {
    if (data != nullptr && data != ZeroSizeArea()) std::free(data);
    allocated_.fetch_sub(size);
  }

  int64_t bytes_allocated() const override { return allocated_.load(); }
  int64_t peak_bytes_allocated() const override { return peak_.load(); }

 private:
  static uint8_t* ZeroSizeArea() {
    alignas(kBufferAlignment) static uint8_t area[kBufferAlignment];
    return area;
  }

  Status Reserve(int64_t size) {
    const int64_t now = allocated_.fetch_add(size) + size;
    if (limit_ > 0 && now > limit_) {
      allocated_.fetch_sub(size);
      return Status::OutOfMemory("allocating {} bytes would pass the memory limit of {} MiB", size,
                                 limit_ >> 20);
    }
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return Status::OK();
  }

  std::atomic<int64_t> allocated_{0};
  std::atomic<int64_t> peak_{0};
  int64_t limit_ = 0;
};

}  // namespace

MemoryPool* DefaultMemoryPool() {
  static SystemMemoryPool pool;
  return &pool;
}

}  // namespace deeprc
