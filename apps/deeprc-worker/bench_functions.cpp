// bench.cylon: the Radical-Cylon weak-scaling join or sort of `deeprc bench table --workload
// cylon` as a function task, for the in-pilot overhead benchmark (bench/run_overhead.py): the
// same data, operator and timing code (apps/bench_workload), on the task's communicator.
//   bench.cylon {op: join|sort, rows: rows per rank (1000000), repeat: 3, threads: 1}
// returns {"op", "ranks", "rows_per_rank", "threads", "seconds" (median), "first_seconds",
// "all_seconds", "checksum", "operation_cpu_seconds" and "other_cpu_seconds" (medians, summed over
// the ranks: CPU of the thread running the operation and of the worker's other threads
// meanwhile), "body_seconds" (the function from its start to its return, data generation
// included, slowest rank), "body_cpu_seconds" (CPU of the task threads over the body, summed
// over the ranks), "peak_rss_mb" (largest rank)}.
#include <chrono>

#include "bench_workload/bench_workload.h"
#include "deeprc/core/cpu_time.h"
#include "data_functions.h"

namespace deeprc::worker {
namespace {

using nlohmann::json;

Result<json> RunCylon(runtime::TaskContext& context) {
  const auto start = std::chrono::steady_clock::now();
  const double thread_start = ThreadCpuSeconds();
  const json& args = context.args();
  const std::string op = args.value("op", std::string());
  if (op != "join" && op != "sort") {
    return Status::Invalid("args.op: expected join or sort, found '{}'", op);
  }
  const auto number = [&](const char* key, int64_t fallback) -> Result<int64_t> {
    auto found = args.find(key);
    if (found == args.end()) return fallback;
    if (!found->is_number_integer() || found->get<int64_t>() < 1) {
      return Status::Invalid("args.{}: expected a whole number >= 1, found {}", key, found->dump());
    }
    return found->get<int64_t>();
  };
  DEEPRC_ASSIGN_OR_RAISE(int64_t rows, number("rows", 1'000'000));
  DEEPRC_ASSIGN_OR_RAISE(int64_t repeat, number("repeat", 3));
  DEEPRC_ASSIGN_OR_RAISE(int64_t threads, number("threads", 1));
  comm::Communicator& comm = context.comm();
  const int64_t total = rows * comm.size();
  const int t = static_cast<int>(threads);
  const Table left = app::CylonTable(comm.rank(), total, rows, t, /*right=*/false);
  const Table right =
      op == "join" ? app::CylonTable(comm.rank(), total, rows, t, /*right=*/true) : Table();
  DEEPRC_ASSIGN_OR_RAISE(app::TimedRuns runs,
                         app::TimeRuns(&comm, static_cast<int>(repeat), [&]() -> Result<uint64_t> {
                           if (op == "join") return app::JoinChecksum(&comm, left, right, t);
                           return app::SortChecksum(&comm, left, t);
                         }));
  DEEPRC_ASSIGN_OR_RAISE(double peak,
                         comm::AllReduceValue(comm, app::PeakRssMb(), comm::ReduceOp::kMax));
  double body = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  DEEPRC_ASSIGN_OR_RAISE(body, comm::AllReduceValue(comm, body, comm::ReduceOp::kMax));
  DEEPRC_ASSIGN_OR_RAISE(double body_cpu, comm::AllReduceValue(comm, ThreadCpuSeconds() - thread_start,
                                                               comm::ReduceOp::kSum));
  return json{{"op", op},
              {"ranks", comm.size()},
              {"rows_per_rank", rows},
              {"threads", threads},
              {"seconds", runs.median()},
              {"first_seconds", runs.seconds.front()},
              {"all_seconds", runs.seconds},
              {"checksum", runs.checksum},
              {"operation_cpu_seconds", app::TimedRuns::Median(runs.operation_cpu_seconds)},
              {"other_cpu_seconds", app::TimedRuns::Median(runs.other_cpu_seconds)},
              {"body_seconds", body},
              {"body_cpu_seconds", body_cpu},
              {"peak_rss_mb", peak}};
}

}  // namespace

Status RegisterBenchFunctions(runtime::FunctionRegistry& registry) {
  return registry.Register("bench.cylon", RunCylon);
}

}  // namespace deeprc::worker
