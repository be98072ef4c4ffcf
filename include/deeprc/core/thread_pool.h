#pragma once

#include <cstdint>
#include <functional>

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

}  // namespace deeprc
