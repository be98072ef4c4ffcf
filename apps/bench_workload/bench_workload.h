#pragma once

// The data and timed runs of `deeprc bench table` that the worker's bench.cylon function shares,
// so that an operator timed as a function task on a pool and the same operator started directly
// with mpirun run the same code and are timed the same way (bench/run_overhead.py).
#include <cstdint>
#include <functional>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/buffer.h"
#include "deeprc/table/table.h"

namespace deeprc::app {

template <typename T, typename F>
Column GenerateColumn(DataType type, int64_t n, int threads, F value) {
  auto buffer = Buffer::Allocate(n * static_cast<int64_t>(sizeof(T))).ValueOrDie();
  T* out = buffer->mutable_data_as<T>();
  ParallelRanges(n, threads * 4, threads, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = value(i);
  });
  return Column::Make(std::move(type), n, std::move(buffer), nullptr, 0);
}

Column Int64s(int64_t n, int threads, const std::function<int64_t(int64_t)>& value);

uint64_t SumInt64(const Column& column);

// Radical-Cylon's scaling data: `rows` values drawn uniformly from [0, 0.9 * total_rows) with a
// counter-based generator seeded by (rank, stream), so any thread count gives the same values.
// Streams 0 and 1 are the left table's columns (k, a), 2 and 3 the right table's (k, b).
Column CylonColumn(int rank, int64_t total_rows, int64_t rows, int threads, int stream);
// (k, a) or, with `right`, (k, b).
Table CylonTable(int rank, int64_t total_rows, int64_t rows, int threads, bool right);

// Inner hash join on k, distributed when `comm` is set; this rank's part of the checksum
// sum(a + 2b) over the result.
Result<uint64_t> JoinChecksum(comm::Communicator* comm, const Table& left, const Table& right,
                              int threads);
// Ascending sort by the first column; this rank's part of sum(global position * value),
// wrapping at 2^64.
Result<uint64_t> SortChecksum(comm::Communicator* comm, const Table& table, int threads);

struct TimedRuns {
  std::vector<double> seconds;  // in run order; each the slowest rank's time
  // In run order, summed over the ranks: CPU seconds of the thread that ran the operation, and
  // of the process's other threads meanwhile (MPI's or the pool worker's own threads).
  std::vector<double> operation_cpu_seconds;
  std::vector<double> other_cpu_seconds;
  uint64_t checksum = 0;  // of the last run, summed over the ranks
  double median() const { return Median(seconds); }
  static double Median(std::vector<double> values);
};

// `repeat` runs, each timed from a barrier to this rank's end, the slowest rank's time kept
// (collective when `comm` is set; every rank gets the same result).
Result<TimedRuns> TimeRuns(comm::Communicator* comm, int repeat,
                           const std::function<Result<uint64_t>()>& run);

// This process's peak resident memory (MiB).
double PeakRssMb();

}  // namespace deeprc::app
