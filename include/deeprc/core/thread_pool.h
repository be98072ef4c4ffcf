#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace deeprc {

// Threads used by operators when the caller does not say: DEEPRC_THREADS, else the core count.
int DefaultThreadCount();

// Runs body(i) for i in [0, count) on up to `threads` threads (the caller's included) of a
// process-wide pool, and returns when all are done. Tasks are handed out one at a time, so uneven
// tasks balance. Exceptions thrown by body are rethrown in the caller (the first one).
void ParallelFor(int64_t count, int threads, const std::function<void(int64_t)>& body);

// Splits [0, length) into about `parts` contiguous ranges and runs body(part, begin, end).
void ParallelRanges(int64_t length, int parts, int threads,
                    const std::function<void(int64_t, int64_t, int64_t)>& body);

// For a parallel scatter of rows into buckets: turns the count of rows that each range sends to
// each bucket, count_at(range, bucket) (an int64_t&), into the position where that range's rows
// of the bucket start. Buckets follow each other, and within a bucket the ranges are in order,
// so the rows of each bucket stay in their input order. Returns the start of every bucket and,
// last, the total.
template <typename CountAt>
std::vector<int64_t> ScatterStarts(int64_t ranges, int64_t buckets, CountAt&& count_at) {
  std::vector<int64_t> bucket_begin(static_cast<size_t>(buckets + 1), 0);
  int64_t position = 0;
  for (int64_t b = 0; b < buckets; ++b) {
    bucket_begin[static_cast<size_t>(b)] = position;
    for (int64_t r = 0; r < ranges; ++r) {
      int64_t& count = count_at(r, b);
      const int64_t rows = count;
      count = position;
      position += rows;
    }
  }
  bucket_begin[static_cast<size_t>(buckets)] = position;
  return bucket_begin;
}

}  // namespace deeprc
