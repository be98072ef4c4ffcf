#include "deeprc/core/memory_pool.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <malloc.h>
#include <sys/mman.h>

namespace deeprc {
namespace {

class SystemMemoryPool final : public MemoryPool {
 public:
  SystemMemoryPool() {
    if (const char* limit = std::getenv("DEEPRC_MEMORY_LIMIT_MB")) {
      limit_ = std::atoll(limit) * (int64_t{1} << 20);
    }
    // Blocks below kHugeThreshold (and std::vector's storage) come from malloc. By default
    // glibc maps blocks of 128 KiB and more with mmap (its threshold drifts up, but only as far
    // as the largest block freed so far) and gives freed heap memory above 128 KiB back at once,
    // so an operator that grows and frees many blocks of a few MiB (a join's per-task match
    // buffers and gathers) faults every page in again on each call: 86k faults (340 MB) per
    // call in a 20M-row join, about a tenth of its time. Keep blocks up to kHeapMapped in the
    // heap and up to kHeapKept freed bytes there for the next call (measured: no faults from the
    // third call on; neither setting alone was enough).
    mallopt(M_MMAP_THRESHOLD, static_cast<int>(kHeapMapped));
    mallopt(M_TRIM_THRESHOLD, static_cast<int>(kHeapKept));
  }

  Result<uint8_t*> Allocate(int64_t size) override {
    if (size < 0) return Status::Invalid("negative allocation size {}", size);
    DEEPRC_RETURN_NOT_OK(Reserve(size));
    if (size == 0) return ZeroSizeArea();
    if (size >= kHugeThreshold) return AllocateHuge(size);
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
    if (data != nullptr && data != ZeroSizeArea()) {
      if (size >= kHugeThreshold) {
        FreeHuge(data, size);
      } else {
        std::free(data);
      }
    }
    allocated_.fetch_sub(size);
  }

  ~SystemMemoryPool() override {
    for (auto& [size, data] : cache_) Unmap(data, size);
  }

  int64_t bytes_allocated() const override { return allocated_.load(); }
  int64_t peak_bytes_allocated() const override { return peak_.load(); }

 private:
  // Large buffers (column values and index arrays of millions of rows) are where a join or sort
  // of 10M rows spends its memory: about a gigabyte of fresh pages, and on this kind of machine
  // (a VM) the kernel's page faults and zeroing took half of such a join's time. So large blocks
  //  - start on a 2 MiB boundary and ask for transparent huge pages (the system setting is often
  //    "madvise"), which makes faults 512 times fewer;
  //  - are kept when freed, up to kCacheLimit bytes, and handed out again (operators run
  //    repeatedly on data of one size ask for the same sizes), as jemalloc or DuckDB's buffer
  //    manager keep memory: a request takes the smallest kept block that holds it (best fit)
  //    and the rest of that block stays kept, and a freed block merges with kept neighbours at
  //    adjacent addresses. So a distributed operator that asks for 40 + 20 MiB and later for
  //    80 MiB reuses the same pages (each fresh 2 MiB page costs a fault and ~1 ms of zeroing
  //    on this kind of VM). Blocks and their parts start on 2 MiB boundaries, and munmap of a
  //    range covering parts of several mappings is allowed. Cached blocks do not count as
  //    allocated, but the cache never makes the process bigger than it has been: when a new block
  //    would bring live plus cached bytes above the peak of live bytes, cached blocks are unmapped
  //    first (largest first). No caching when a memory limit is set.
  //  - come straight from mmap, so that an unmapped block is memory the system gets back.
  static constexpr int64_t kHugePageSize = int64_t{2} << 20;
  static constexpr int64_t kHugeThreshold = int64_t{8} << 20;
  static constexpr int64_t kCacheLimit = int64_t{2} << 30;
  static constexpr int64_t kHeapKept = int64_t{1} << 30;
  static constexpr int64_t kHeapMapped = int64_t{32} << 20;

  static int64_t RoundToHugePages(int64_t size) {
    return (size + kHugePageSize - 1) / kHugePageSize * kHugePageSize;
  }

  Result<uint8_t*> AllocateHuge(int64_t size) {
    const int64_t rounded = RoundToHugePages(size);
    std::vector<std::pair<int64_t, uint8_t*>> evicted;
    {
      std::lock_guard lock(cache_mutex_);
      auto found = cache_.lower_bound(rounded);
      if (found != cache_.end()) {
        const int64_t kept = found->first;
        uint8_t* data = found->second;
        TakeKept(found);
        if (kept > rounded) Keep(data + rounded, kept - rounded);
        return data;
      }
      const int64_t peak = peak_.load();
      while (!cache_.empty() && allocated_.load() + cached_bytes_ > peak) {
        auto largest = std::prev(cache_.end());
        evicted.emplace_back(largest->first, largest->second);
        TakeKept(largest);
      }
    }
    for (auto& [bytes, block] : evicted) Unmap(block, bytes);
    // Enough to find a 2 MiB boundary inside; the parts before and after it are unmapped.
    const size_t span = static_cast<size_t>(rounded + kHugePageSize);
    void* area = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
      allocated_.fetch_sub(size);
      return Status::OutOfMemory("could not allocate {} bytes", size);
    }
    const auto start = reinterpret_cast<uintptr_t>(area);
    const uintptr_t aligned =
        (start + kHugePageSize - 1) & ~static_cast<uintptr_t>(kHugePageSize - 1);
    if (aligned > start) munmap(area, aligned - start);
    const uintptr_t end = start + span;
    const uintptr_t used_end = aligned + static_cast<uintptr_t>(rounded);
    if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
    auto* data = reinterpret_cast<uint8_t*>(aligned);
    madvise(data, static_cast<size_t>(rounded), MADV_HUGEPAGE);  // advice; may be ignored
    return data;
  }

  void FreeHuge(uint8_t* data, int64_t size) {
    const int64_t rounded = RoundToHugePages(size);
    if (limit_ == 0) {
      std::lock_guard lock(cache_mutex_);
      if (cached_bytes_ + rounded <= kCacheLimit) {
        // Merge with the kept blocks just before and just after it.
        int64_t size = rounded;
        auto after = by_address_.find(data + rounded);
        if (after != by_address_.end()) {
          size += after->second;
          TakeKept(FindKept(after->first, after->second));
        }
        auto before = by_address_.lower_bound(data);
        if (before != by_address_.begin()) {
          --before;
          if (before->first + before->second == data) {
            uint8_t* start = before->first;
            size += before->second;
            TakeKept(FindKept(before->first, before->second));
            data = start;
          }
        }
        Keep(data, size);
        return;
      }
    }
    Unmap(data, rounded);
  }

  static void Unmap(uint8_t* data, int64_t rounded) { munmap(data, static_cast<size_t>(rounded)); }

  // The kept blocks, by size and by address (cache_mutex_ held).
  void Keep(uint8_t* data, int64_t size) {
    cache_.emplace(size, data);
    by_address_.emplace(data, size);
    cached_bytes_ += size;
  }
  std::multimap<int64_t, uint8_t*>::iterator FindKept(uint8_t* data, int64_t size) {
    auto [first, last] = cache_.equal_range(size);
    for (auto it = first; it != last; ++it) {
      if (it->second == data) return it;
    }
    return cache_.end();  // not reached: the two maps hold the same blocks
  }
  void TakeKept(std::multimap<int64_t, uint8_t*>::iterator block) {
    by_address_.erase(block->second);
    cached_bytes_ -= block->first;
    cache_.erase(block);
  }

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
  std::mutex cache_mutex_;
  std::multimap<int64_t, uint8_t*> cache_;  // rounded size -> free block
  std::map<uint8_t*, int64_t> by_address_;  // the same blocks: start -> rounded size
  int64_t cached_bytes_ = 0;
};

}  // namespace

MemoryPool* DefaultMemoryPool() {
  static SystemMemoryPool pool;
  return &pool;
}

}  // namespace deeprc
