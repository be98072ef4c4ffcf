// The default memory pool: counting, reuse of large freed blocks, and the promise that its cache
// never makes the process larger than its peak of live bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "deeprc/core/memory_pool.h"
#include "testing/assertions.h"

namespace deeprc {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// Resident memory of this process in bytes, from /proc/self/status (VmRSS).
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

uint8_t* AllocateTouched(MemoryPool* pool, int64_t size) {
  auto data = pool->Allocate(size);
  EXPECT_TRUE(data.ok()) << data.status().ToString();
  std::memset(*data, 0x5a, static_cast<size_t>(size));
  return *data;
}

TEST(MemoryPool, CountsBytesAndPeak) {
  MemoryPool* pool = DefaultMemoryPool();
  const int64_t before = pool->bytes_allocated();
  uint8_t* small = AllocateTouched(pool, 1000);
  uint8_t* large = AllocateTouched(pool, 20 * kMiB);
  EXPECT_EQ(pool->bytes_allocated(), before + 1000 + 20 * kMiB);
  EXPECT_GE(pool->peak_bytes_allocated(), before + 1000 + 20 * kMiB);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large) % 64, 0u);
  pool->Free(small, 1000);
  pool->Free(large, 20 * kMiB);
  EXPECT_EQ(pool->bytes_allocated(), before);
}

TEST(MemoryPool, LargeBlockOfTheSameSizeIsReused) {
  if (std::getenv("DEEPRC_MEMORY_LIMIT_MB") != nullptr) GTEST_SKIP() << "no cache under a limit";
  MemoryPool* pool = DefaultMemoryPool();
  uint8_t* first = AllocateTouched(pool, 24 * kMiB);
  pool->Free(first, 24 * kMiB);
  uint8_t* second = AllocateTouched(pool, 24 * kMiB - 100);  // same 2 MiB-rounded size
  EXPECT_EQ(first, second);
  pool->Free(second, 24 * kMiB - 100);
}

TEST(MemoryPool, SmallerRequestsSplitAFreedBlockAndItsPartsMergeBack) {
  if (std::getenv("DEEPRC_MEMORY_LIMIT_MB") != nullptr) GTEST_SKIP() << "no cache under a limit";
  MemoryPool* pool = DefaultMemoryPool();
  // Sizes above anything the earlier tests left in the cache, so the kept block that holds the
  // 120 MiB (it may have merged with a kept neighbour) is the only one that fits 50 MiB.
  uint8_t* whole = AllocateTouched(pool, 120 * kMiB);
  pool->Free(whole, 120 * kMiB);
  uint8_t* first = AllocateTouched(pool, 50 * kMiB);
  uint8_t* second = AllocateTouched(pool, 70 * kMiB);
  EXPECT_LE(first, whole);
  EXPECT_EQ(second, first + 50 * kMiB);  // the rest of the same block
  // Freed in either order, the parts become one block again.
  pool->Free(second, 70 * kMiB);
  pool->Free(first, 50 * kMiB);
  uint8_t* again = AllocateTouched(pool, 120 * kMiB);
  EXPECT_EQ(again, first);
  pool->Free(again, 120 * kMiB);
}

TEST(MemoryPool, CacheNeverGrowsTheProcessPastItsPeak) {
  if (std::getenv("DEEPRC_MEMORY_LIMIT_MB") != nullptr) GTEST_SKIP() << "no cache under a limit";
  MemoryPool* pool = DefaultMemoryPool();
  // Raise the peak of live bytes to about 200 MiB, then free everything: the cache holds it.
  uint8_t* a = AllocateTouched(pool, 120 * kMiB);
  uint8_t* b = AllocateTouched(pool, 80 * kMiB);
  pool->Free(a, 120 * kMiB);
  pool->Free(b, 80 * kMiB);
  const int64_t resident_with_cache = ResidentBytes();
  // A block of another size, larger than the peak: the cached blocks must go first, so the
  // process does not hold 200 MiB of cache beside 300 MiB of new data.
  uint8_t* c = AllocateTouched(pool, 300 * kMiB);
  const int64_t resident_after = ResidentBytes();
  EXPECT_LT(resident_after, resident_with_cache + 300 * kMiB - 150 * kMiB)
      << "resident before " << resident_with_cache / kMiB << " MiB, after " << resident_after / kMiB
      << " MiB";
  pool->Free(c, 300 * kMiB);
}

}  // namespace
}  // namespace deeprc
