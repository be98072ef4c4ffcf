#include "bench_workload.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "deeprc/compute/join.h"
#include "deeprc/compute/sort.h"
#include "deeprc/core/cpu_time.h"
#include "deeprc/core/random.h"
#include "deeprc/dist/join.h"
#include "deeprc/dist/sort.h"

namespace deeprc::app {
namespace {

// The rows of the ranks before this one (0 without a communicator).
Result<int64_t> RowsBefore(comm::Communicator* comm, int64_t rows) {
  if (comm == nullptr) return 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&rows);
  DEEPRC_ASSIGN_OR_RAISE(auto all, comm->AllGather(comm::Bytes(bytes, sizeof(rows))));
  int64_t before = 0;
  for (int r = 0; r < comm->rank(); ++r) {
    int64_t count = 0;
    std::memcpy(&count, all[r]->data(), sizeof(count));
    before += count;
  }
  return before;
}

}  // namespace

Column Int64s(int64_t n, int threads, const std::function<int64_t(int64_t)>& value) {
  return GenerateColumn<int64_t>(DataType::Int64(), n, threads, value);
}

uint64_t SumInt64(const Column& column) {
  uint64_t sum = 0;
  const auto* values = column.Values<int64_t>();
  for (int64_t i = 0; i < column.length(); ++i) sum += static_cast<uint64_t>(values[i]);
  return sum;
}

Column CylonColumn(int rank, int64_t total_rows, int64_t rows, int threads, int stream) {
  const auto bound = static_cast<uint64_t>(0.9 * static_cast<double>(total_rows));
  const uint64_t seed = SplitMix64((static_cast<uint64_t>(rank) << 8) | stream);
  return Int64s(rows, threads, [&](int64_t j) {
    return static_cast<int64_t>(SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(j))) %
                                std::max<uint64_t>(1, bound));
  });
}

Table CylonTable(int rank, int64_t total_rows, int64_t rows, int threads, bool right) {
  const int stream = right ? 2 : 0;
  return Table::Make(Schema({{"k", DataType::Int64()}, {right ? "b" : "a", DataType::Int64()}}),
                     {CylonColumn(rank, total_rows, rows, threads, stream),
                      CylonColumn(rank, total_rows, rows, threads, stream + 1)})
      .ValueOrDie();
}

Result<uint64_t> JoinChecksum(comm::Communicator* comm, const Table& left, const Table& right,
                              int threads) {
  compute::JoinOptions options;
  options.left_keys = options.right_keys = {"k"};
  options.algorithm = compute::JoinAlgorithm::kHash;
  options.threads = threads;
  Table out;
  if (comm != nullptr) {
    dist::DistJoinOptions distributed;
    distributed.join = options;
    distributed.shuffle.threads = threads;
    DEEPRC_ASSIGN_OR_RAISE(out, dist::Join(*comm, left, right, distributed));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(out, compute::Join(left, right, options));
  }
  DEEPRC_ASSIGN_OR_RAISE(Column a, out.GetColumn("a"));
  DEEPRC_ASSIGN_OR_RAISE(Column b, out.GetColumn("b"));
  return SumInt64(a) + 2 * SumInt64(b);
}

Result<uint64_t> SortChecksum(comm::Communicator* comm, const Table& table, int threads) {
  compute::SortOptions options;
  options.keys = {{table.schema().field(0).name}};
  options.threads = threads;
  Table sorted;
  if (comm != nullptr) {
    DEEPRC_ASSIGN_OR_RAISE(sorted, dist::Sort(*comm, table, options));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(sorted, compute::Sort(table, options));
  }
  DEEPRC_ASSIGN_OR_RAISE(const int64_t before, RowsBefore(comm, sorted.num_rows()));
  const auto* s = sorted.column(0).Values<int64_t>();
  uint64_t sum = 0;
  for (int64_t i = 0; i < sorted.num_rows(); ++i) {
    sum += static_cast<uint64_t>(before + i) * static_cast<uint64_t>(s[i]);
  }
  return sum;
}

double TimedRuns::Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

Result<TimedRuns> TimeRuns(comm::Communicator* comm, int repeat,
                           const std::function<Result<uint64_t>()>& run) {
  TimedRuns runs;
  for (int r = 0; r < repeat; ++r) {
    if (comm != nullptr) DEEPRC_RETURN_NOT_OK(comm->Barrier());
    const auto start = std::chrono::steady_clock::now();
    // Process clock read first at the start and last at the end, so that the thread's CPU is
    // always inside the process's and the difference never goes below 0.
    const double process_start = ProcessCpuSeconds();
    const double thread_start = ThreadCpuSeconds();
    DEEPRC_ASSIGN_OR_RAISE(uint64_t checksum, run());
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double operation_cpu = ThreadCpuSeconds() - thread_start;
    double other_cpu = ProcessCpuSeconds() - process_start - operation_cpu;
    if (comm != nullptr) {
      DEEPRC_ASSIGN_OR_RAISE(elapsed, comm::AllReduceValue(*comm, elapsed, comm::ReduceOp::kMax));
      DEEPRC_ASSIGN_OR_RAISE(operation_cpu,
                             comm::AllReduceValue(*comm, operation_cpu, comm::ReduceOp::kSum));
      DEEPRC_ASSIGN_OR_RAISE(other_cpu,
                             comm::AllReduceValue(*comm, other_cpu, comm::ReduceOp::kSum));
      auto value = static_cast<int64_t>(checksum);
      DEEPRC_RETURN_NOT_OK(comm->AllReduce(std::span<int64_t>(&value, 1), comm::ReduceOp::kSum));
      checksum = static_cast<uint64_t>(value);
    }
    runs.checksum = checksum;
    runs.seconds.push_back(elapsed);
    runs.operation_cpu_seconds.push_back(operation_cpu);
    runs.other_cpu_seconds.push_back(other_cpu);
  }
  return runs;
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

}  // namespace deeprc::app
