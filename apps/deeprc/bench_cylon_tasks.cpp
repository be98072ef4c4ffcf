// `deeprc bench tasks --kind cylon [--workers W] [--widths 1,2,4] [--ops join,sort] [--rows N]
// [--repeat R] [--threads T]`: the in-pilot side of the in-pilot overhead benchmark
// (bench/run_overhead.py runs the other side, `deeprc bench table OP --workload cylon --ranks k`,
// and compares). A local pilot with one pool of W `deeprc-worker` ranks; once a W-rank no-op has
// run (the pool is up), one `bench.cylon` task per (op, k), one at a time: the Radical-Cylon
// join or sort on k ranks of the pool, N rows per rank, timed inside the task by the same code
// as `deeprc bench table` (apps/bench_workload). One JSON line per task:
//   {"kind":"cylon","op","ranks","rows_per_rank","threads","workers","seconds" (median of R),
//    "first_seconds","all_seconds","checksum","body_seconds" (the function's own run, data
//    generation included), "round_trip_seconds" (submission to the final event at the client),
//    "pilot_cpu_seconds" (CPU of this process and its descendants — client, agent, masters,
//    mpirun, every pool rank — over the round trip), "peak_rss_mb"} and the CPU fields
//    bench.cylon returns. pilot_cpu_seconds - body_cpu_seconds is what the runtime spent besides
//    the function's own thread.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_tasks.h"
#include "deeprc/command_registry.h"
#include "deeprc/core/cpu_time.h"
#include "deeprc/runtime/client.h"

namespace deeprc::app {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Ran {
  runtime::ExecutionResult result;
  int64_t round_trip_us = 0;
  // CPU seconds of this process (client, agent, masters) and all its descendants (mpirun, the
  // pool's worker ranks) from submission to the final event.
  double pilot_cpu_seconds = 0;
};

// Runs one task to its end.
class OneAtATime {
 public:
  explicit OneAtATime(runtime::TaskManager& tasks) : tasks_(tasks) {
    tasks_.OnStateChange([this](const runtime::TaskEvent& event) {
      if (!runtime::IsFinal(event.state)) return;
      std::lock_guard lock(mutex_);
      final_us_[event.uid] = event.time_us;
    });
  }

  Result<Ran> Run(runtime::TaskDescription task,
                                                           std::chrono::seconds timeout) {
    const std::string uid = task.uid;
    const double cpu_before = ProcessTreeCpuSeconds(::getpid());
    const int64_t submitted = runtime::NowMicros();
    DEEPRC_RETURN_NOT_OK(tasks_.Submit({std::move(task)}).status());
    // The result arrives after the final event, whose time the callback keeps.
    DEEPRC_RETURN_NOT_OK(tasks_.Wait({uid}, runtime::FinalTaskStates(), timeout));
    int64_t ended = 0;
    {
      std::lock_guard lock(mutex_);
      ended = final_us_.at(uid);
    }
    // After the final event: the pilot's CPU over the round trip (the worker ranks have sent
    // their result by then; what they do after is not the task's).
    const double pilot_cpu = ProcessTreeCpuSeconds(::getpid()) - cpu_before;
    DEEPRC_ASSIGN_OR_RAISE(runtime::ExecutionResult result, tasks_.result(uid));
    if (result.state != runtime::TaskState::kDone) {
      return Status::IOError("task {} ended {}: {}", uid, runtime::TaskStateName(result.state),
                             result.reason);
    }
    return Ran{std::move(result), ended - submitted, pilot_cpu};
  }

 private:
  runtime::TaskManager& tasks_;
  std::mutex mutex_;
  std::map<std::string, int64_t> final_us_;
};

Status Measure(const BenchTasksCommand& command, std::string* directory) {
  runtime::SessionOptions session_options;
  session_options.root = command.session_root;
  if (session_options.root.empty()) {
    session_options.root =
        (fs::temp_directory_path() / fmt::format("deeprc_bench_cylon.{}", ::getpid())).string();
  }
  DEEPRC_ASSIGN_OR_RAISE(auto session, runtime::Session::Make(session_options));
  *directory = session->directory();
  runtime::PilotManager pilots(*session);
  runtime::PilotDescription description;
  description.cores = command.cores > 0 ? command.cores : command.workers;
  runtime::PilotOptions pilot_options;
  runtime::PoolDescription pool;
  pool.name = "cylon";
  pool.workers = command.workers;
  pilot_options.pools.pools = {pool};
  DEEPRC_ASSIGN_OR_RAISE(runtime::Pilot * pilot, pilots.Submit(description, pilot_options));
  runtime::TaskManager tasks(*session);
  DEEPRC_RETURN_NOT_OK(tasks.AddPilot(*pilot));
  OneAtATime runner(tasks);

  runtime::TaskDescription warm_up;
  warm_up.uid = "warm_up";
  warm_up.mode = runtime::TaskMode::kFunction;
  warm_up.function = "noop";
  warm_up.ranks = command.workers;
  DEEPRC_RETURN_NOT_OK(runner.Run(warm_up, std::chrono::seconds(120)).status());

  const std::vector<int32_t> widths =
      command.widths.empty() ? std::vector<int32_t>{1, 2, 4} : command.widths;
  for (const int32_t ranks : widths) {
    for (const std::string& op : command.ops) {
      runtime::TaskDescription task;
      task.uid = fmt::format("cylon.{}.{}", op, ranks);
      task.mode = runtime::TaskMode::kFunction;
      task.function = "bench.cylon";
      task.ranks = ranks;
      task.args = {{"op", op},
                   {"rows", command.rows},
                   {"repeat", command.repeat},
                   {"threads", command.threads}};
      DEEPRC_ASSIGN_OR_RAISE(auto ran, runner.Run(std::move(task), std::chrono::seconds(600)));
      json line = {{"kind", "cylon"}, {"workers", command.workers}};
      line.update(ran.result.value);
      line["round_trip_seconds"] = static_cast<double>(ran.round_trip_us) / 1e6;
      line["pilot_cpu_seconds"] = ran.pilot_cpu_seconds;
      std::printf("%s\n", line.dump().c_str());
      std::fflush(stdout);
    }
  }
  return Status::OK();
}

}  // namespace

int RunBenchCylonTasks(const BenchTasksCommand& command) {
  std::string directory;
  Status measured = Status::Internal("not run");
  try {
    measured = Measure(command, &directory);
  } catch (const std::exception& error) {
    measured = Status::Internal("{}", error.what());
  }
  if (!command.keep && !directory.empty()) {
    std::error_code ignored;
    fs::remove_all(directory, ignored);
    if (command.session_root.empty()) fs::remove(fs::path(directory).parent_path(), ignored);
  }
  if (!measured.ok()) {
    std::fprintf(stderr, "deeprc bench tasks: %s\n", measured.ToString().c_str());
    return measured.IsUserError() ? kExitUsage : kExitFailure;
  }
  return kExitOk;
}

}  // namespace deeprc::app
