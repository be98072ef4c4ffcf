#include "deeprc/core/status.h"

#include <atomic>

#include <gtest/gtest.h>

#include "deeprc/core/memory_pool.h"
#include "deeprc/core/result.h"
#include "deeprc/core/thread_pool.h"
#include "testing/assertions.h"

namespace deeprc {
namespace {

Result<int> Half(int value) {
  if (value % 2 != 0) return Status::Invalid("{} is odd", value);
  return value / 2;
}

Result<int> Quarter(int value) {
  DEEPRC_ASSIGN_OR_RAISE(int half, Half(value));
  return Half(half);
}

TEST(StatusTest, OkIsCheapAndEmpty) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.ToString(), "OK");
}

TEST(StatusTest, ErrorsCarryCodeAndWhoseFault) {
  Status user = Status::Invalid("line {} column {}", 3, "b");
  EXPECT_EQ(user.code(), StatusCode::kInvalid);
  EXPECT_EQ(user.message(), "line 3 column b");
  EXPECT_TRUE(user.IsUserError());
  EXPECT_FALSE(Status::IOError("disk").IsUserError());
  EXPECT_FALSE(Status::Internal("bug").IsUserError());
  EXPECT_EQ(user.WithContext("data.csv").message(), "data.csv: line 3 column b");
}

TEST(ResultTest, PropagatesErrors) {
  ASSERT_OK_AND_ASSIGN(int quarter, Quarter(8));
  EXPECT_EQ(quarter, 2);
  auto odd = Quarter(6);
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().message(), "3 is odd");
}

TEST(MemoryPoolTest, CountsBytesAndPeak) {
  MemoryPool* pool = DefaultMemoryPool();
  const int64_t before = pool->bytes_allocated();
  ASSERT_OK_AND_ASSIGN(uint8_t* data, pool->Allocate(1 << 20));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % kBufferAlignment, 0u);
  EXPECT_EQ(pool->bytes_allocated(), before + (1 << 20));
  EXPECT_GE(pool->peak_bytes_allocated(), before + (1 << 20));
  pool->Free(data, 1 << 20);
  EXPECT_EQ(pool->bytes_allocated(), before);
}

TEST(ThreadPoolTest, RunsEveryTaskOnceAndRethrows) {
  std::vector<std::atomic<int>> hits(1000);
  ParallelFor(1000, 4, [&](int64_t i) { hits[i].fetch_add(1); });
  for (auto& hit : hits) EXPECT_EQ(hit.load(), 1);
  EXPECT_THROW(ParallelFor(10, 2, [](int64_t i) {
                 if (i == 7) throw std::runtime_error("seven");
               }),
               std::runtime_error);
  int64_t total = 0;
  std::mutex mutex;
  ParallelRanges(12345, 7, 2, [&](int64_t, int64_t b, int64_t e) {
    std::lock_guard lock(mutex);
    total += e - b;
  });
  EXPECT_EQ(total, 12345);
}

}  // namespace
}  // namespace deeprc
