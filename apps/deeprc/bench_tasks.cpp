// `deeprc bench tasks --kind exec --count N [--concurrency C] [--cores K]`: N `/bin/true` tasks
// through the whole path — TaskManager::Submit → agent (scheduler thread) → executor (process
// spawned, reaped) → the DONE event back at the client — on a local pilot. Prints one JSON line:
//   {"kind","agent","count","concurrency","cores","seconds","tasks_per_s","median_latency_us",
//    "p99_latency_us","failed"}
// seconds: from the first submission to the last task's final state at the client.
// latency: per task, from its submission to its DONE event at the client.
// --agent process runs the agent as `deeprc agent` (ZeroMQ, heartbeats) instead of in this process.
// --concurrency C keeps at most C tasks submitted and not final (0: all submitted at once, in
// batches of 1,000). --cores K gives the pilot K core slots (default: this machine's cores);
// more slots than cores overlaps one task's process start with another's file system work.
//
// `--kind function [--workers W] [--masters M] [--routing round_robin|least_loaded]`: N no-op
// function tasks on M worker pools of W `deeprc-worker` ranks each (one master per pool, in the
// agent). The clock starts once every pool's ranks have connected. The JSON line adds
// "workers", "masters" and "routing".
// `--widths 1,2,4 --duration-ms D`: tasks of those widths (drawn at random), each sleeping D ms
// on every rank: a heterogeneous mix; the line adds "utilization" (the tasks' nominal rank-time,
// ranks × D, over masters × workers × seconds) and "busy_utilization" (their rank-time as the
// events tell it, ranks × (final − EXECUTING), over the same: EXECUTING is when the ranks
// started the task, so this counts what the machine added to D — a late wake-up from the
// sleep, the result's way back — as busy, not as the dispatcher's idle time).
// `--kind function --simulate --masters M --workers W`: the masters' real dispatch code
// (Dispatcher) against M × W virtual ranks, one-rank no-op tasks that end at once; prints
// {"kind","mode":"simulated","masters","workers","count","seconds","assignments_per_s","passes"}.
#include "bench_tasks.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "deeprc/command_registry.h"
#include "deeprc/runtime/client.h"
#include "deeprc/runtime/pool.h"

namespace deeprc::app {
namespace {

namespace fs = std::filesystem;
using runtime::TaskState;

struct Measurement {
  double seconds = 0;
  // Function tasks: the sum over tasks of ranks × duration (seconds), nominal and from the events.
  double rank_seconds = 0;
  double busy_rank_seconds = 0;
  std::vector<int64_t> latencies_us;
  int64_t failed = 0;
  int32_t cores = 0;
};

Result<Measurement> Measure(const BenchTasksCommand& command) {
  runtime::SessionOptions session_options;
  session_options.root = command.session_root;
  if (session_options.root.empty()) {
    session_options.root =
        (fs::temp_directory_path() / fmt::format("deeprc_bench_tasks.{}", ::getpid())).string();
  }
  DEEPRC_ASSIGN_OR_RAISE(auto session, runtime::Session::Make(session_options));
  const std::string directory = session->directory();
  Measurement measurement;
  {
    runtime::PilotManager pilots(*session);
    runtime::PilotDescription description;
    description.cores = command.cores;
    runtime::PilotOptions pilot_options;
    pilot_options.agent_process = command.agent == "process";
    const bool function = command.kind == "function";
    if (function) {
      for (int32_t m = 0; m < command.masters; ++m) {
        runtime::PoolDescription pool;
        pool.name = fmt::format("pool{}", m);
        pool.workers = command.workers;
        pilot_options.pools.pools.push_back(pool);
      }
      pilot_options.pools.routing = command.routing == "least_loaded"
                                        ? runtime::MasterRouting::kLeastLoaded
                                        : runtime::MasterRouting::kRoundRobin;
      // The pools hold their cores; the machine's may be fewer (ranks then share them).
      if (description.cores == 0) description.cores = command.workers * command.masters;
    }
    DEEPRC_ASSIGN_OR_RAISE(runtime::Pilot * pilot, pilots.Submit(description, pilot_options));
    if (function) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (true) {
        const auto pools = pilot->pool_status();
        if (std::all_of(pools.begin(), pools.end(),
                        [](const runtime::PoolStatus& pool) { return pool.state == "ready"; })) {
          break;
        }
        for (const auto& pool : pools) {
          if (pool.state == "broken") {
            return Status::IOError("pool {} is broken: {}", pool.name, pool.broken_reason);
          }
        }
        if (std::chrono::steady_clock::now() > deadline) {
          return Status::Timeout("the worker pools did not start within 120 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    measurement.cores = static_cast<int32_t>(pilot->total_cores());
    runtime::TaskManager tasks(*session);
    DEEPRC_RETURN_NOT_OK(tasks.AddPilot(*pilot));

    const int64_t count = command.count;
    std::vector<int64_t> submitted_us(static_cast<size_t>(count), 0);
    std::vector<int64_t> latencies(static_cast<size_t>(count), -1);
    std::vector<int64_t> executing_us(static_cast<size_t>(count), -1);
    std::vector<int32_t> widths(static_cast<size_t>(count), 1);
    std::mutex mutex;
    std::condition_variable finished_changed;
    int64_t finished = 0;
    std::atomic<int64_t> failed{0};
    tasks.OnStateChange([&](const runtime::TaskEvent& event) {
      const bool executing = event.state == TaskState::kExecuting;
      if (!executing && !runtime::IsFinal(event.state)) return;
      // uids are "b.<index>".
      const size_t index = std::stoull(event.uid.substr(2));
      std::lock_guard lock(mutex);
      if (executing) {
        executing_us[index] = event.time_us;
        return;
      }
      if (event.state != TaskState::kDone) ++failed;
      if (executing_us[index] >= 0) {
        measurement.busy_rank_seconds +=
            widths[index] * static_cast<double>(event.time_us - executing_us[index]) / 1e6;
      }
      latencies[index] = event.time_us - submitted_us[index];
      ++finished;
      finished_changed.notify_all();
    });

    std::mt19937 random(12345);
    std::uniform_int_distribution<size_t> pick_width(
        0, command.widths.empty() ? 0 : command.widths.size() - 1);
    const int64_t window = command.concurrency > 0 ? command.concurrency : count;
    const int64_t batch_size = std::min<int64_t>(1000, window);
    const auto start = std::chrono::steady_clock::now();
    int64_t next = 0;
    while (next < count) {
      {
        std::unique_lock lock(mutex);
        // Wait for room in the window; a timeout here means tasks are stuck.
        if (!finished_changed.wait_for(lock, std::chrono::seconds(60),
                                       [&] { return next - finished < window; })) {
          return Status::Timeout("no task finished for 60 s ({} of {} done)", finished, count);
        }
      }
      int64_t room;
      {
        std::lock_guard lock(mutex);
        room = window - (next - finished);
      }
      const int64_t n = std::min({room, batch_size, count - next});
      std::vector<runtime::TaskDescription> batch(static_cast<size_t>(n));
      const int64_t now = runtime::NowMicros();
      {
        std::lock_guard lock(mutex);
        for (int64_t i = 0; i < n; ++i) submitted_us[static_cast<size_t>(next + i)] = now;
      }
      for (int64_t i = 0; i < n; ++i) {
        batch[static_cast<size_t>(i)].uid = fmt::format("b.{}", next + i);
        if (function) {
          runtime::TaskDescription& task = batch[static_cast<size_t>(i)];
          task.mode = runtime::TaskMode::kFunction;
          task.function = "noop";
          if (command.duration_ms > 0 || !command.widths.empty()) {
            task.function = "sleep";
            task.args = {{"seconds", command.duration_ms / 1000.0}};
            task.ranks = command.widths.empty() ? 1 : command.widths[pick_width(random)];
            widths[static_cast<size_t>(next + i)] = task.ranks;
            measurement.rank_seconds += task.ranks * command.duration_ms / 1000.0;
          }
        } else {
          batch[static_cast<size_t>(i)].executable = "/bin/true";
        }
      }
      DEEPRC_RETURN_NOT_OK(tasks.Submit(std::move(batch)).status());
      next += n;
    }
    {
      std::unique_lock lock(mutex);
      if (!finished_changed.wait_for(lock, std::chrono::seconds(600),
                                     [&] { return finished == count; })) {
        return Status::Timeout("{} of {} tasks finished in 600 s", finished, count);
      }
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    measurement.seconds = elapsed.count();
    measurement.latencies_us = std::move(latencies);
    measurement.failed = failed.load();
  }
  if (!command.keep) {
    std::error_code ignored;
    fs::remove_all(directory, ignored);
    if (command.session_root.empty()) fs::remove(session_options.root, ignored);  // if empty
  }
  return measurement;
}

}  // namespace

void AddBenchTasksCommand(CLI::App& bench, BenchTasksCommand* command) {
  command->subcommand =
      bench.add_subcommand("tasks", "Run N no-op tasks through client, agent and executor");
  CLI::App* app = command->subcommand;
  app->add_option("--kind", command->kind,
                  "exec: /bin/true processes; function: no-op function tasks on worker pools; "
                  "cylon: the Radical-Cylon join and sort as k-rank function tasks")
      ->check(CLI::IsMember({"exec", "function", "cylon"}))
      ->capture_default_str();
  app->add_option("--count", command->count, "Tasks N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--concurrency", command->concurrency,
                  "At most C tasks submitted and not final (0: all at once)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app->add_option("--cores", command->cores, "Core slots of the pilot (0: this machine's cores)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--agent", command->agent,
                  "in-process: the agent runs in this process; process: `deeprc agent` over ZeroMQ")
      ->check(CLI::IsMember({"in-process", "process"}))
      ->capture_default_str();
  app->add_option("--workers", command->workers, "--kind function: worker ranks per pool")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--masters", command->masters, "--kind function: pools, one master each")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--routing", command->routing, "--kind function: round_robin or least_loaded")
      ->check(CLI::IsMember({"round_robin", "least_loaded"}))
      ->capture_default_str();
  app->add_option("--widths", command->widths,
                  "--kind function: ranks per task, drawn at random (e.g. 1,2,4)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app->add_option("--duration-ms", command->duration_ms,
                  "--kind function: each task sleeps this long (0: no-op)")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--simulate", command->simulate,
                "--kind function: the dispatch code against virtual ranks (--workers per master)");
  app->add_option("--session-root", command->session_root,
                  "Where the session directory goes (default: a temporary directory)");
  app->add_flag("--keep", command->keep, "Keep the session directory");
  app->add_option("--ops", command->ops, "--kind cylon: join, sort")
      ->delimiter(',')
      ->check(CLI::IsMember({"join", "sort"}));
  app->add_option("--rows", command->rows, "--kind cylon: rows per rank")
      ->check(CLI::PositiveNumber);
  app->add_option("--repeat", command->repeat, "--kind cylon: timed runs per task (median)")
      ->check(CLI::PositiveNumber);
  app->add_option("--threads", command->threads, "--kind cylon: threads per rank")
      ->check(CLI::PositiveNumber);
}

int RunBenchTasks(const BenchTasksCommand& command) {
  if (command.kind == "cylon") return RunBenchCylonTasks(command);
  if (command.simulate) {
    if (command.kind != "function") {
      std::fprintf(stderr, "deeprc bench tasks: --simulate needs --kind function\n");
      return kExitUsage;
    }
    runtime::DispatchSimulationOptions options;
    options.masters = command.masters;
    options.workers_per_master = command.workers;
    options.tasks = command.count;
    Result<runtime::DispatchSimulationResult> simulated = runtime::SimulateDispatch(options);
    if (!simulated.ok()) {
      std::fprintf(stderr, "deeprc bench tasks: %s\n", simulated.status().message().c_str());
      return kExitUsage;
    }
    std::printf(
        "{\"kind\":\"function\",\"mode\":\"simulated\",\"masters\":%d,\"workers\":%lld,"
        "\"count\":%lld,\"seconds\":%.6f,\"assignments_per_s\":%.1f,\"passes\":%lld}\n",
        command.masters, static_cast<long long>(command.masters) * command.workers,
        static_cast<long long>(command.count), simulated->seconds,
        static_cast<double>(simulated->assignments) / simulated->seconds,
        static_cast<long long>(simulated->passes));
    return kExitOk;
  }
  Result<Measurement> measured = Status::Internal("not run");
  try {
    measured = Measure(command);
  } catch (const std::exception& error) {
    measured = Status::Internal("{}", error.what());
  }
  if (!measured.ok()) {
    std::fprintf(stderr, "deeprc bench tasks: %s\n", measured.status().ToString().c_str());
    return measured.status().IsUserError() ? kExitUsage : kExitFailure;
  }
  std::vector<int64_t> latencies = measured->latencies_us;
  std::sort(latencies.begin(), latencies.end());
  const int64_t median = latencies[latencies.size() / 2];
  const int64_t p99 = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  std::printf(
      "{\"kind\":\"%s\",\"agent\":\"%s\",\"count\":%lld,\"concurrency\":%lld,\"cores\":%d,"
      "\"seconds\":%.6f,"
      "\"tasks_per_s\":%.1f,\"median_latency_us\":%lld,\"p99_latency_us\":%lld,\"failed\":%lld%s}"
      "\n",
      command.kind.c_str(), command.agent.c_str(), static_cast<long long>(command.count),
      static_cast<long long>(command.concurrency), measured->cores, measured->seconds,
      static_cast<double>(command.count) / measured->seconds, static_cast<long long>(median),
      static_cast<long long>(p99), static_cast<long long>(measured->failed),
      command.kind != "function" ? ""
      : measured->rank_seconds > 0
          ? fmt::format(",\"workers\":{},\"masters\":{},\"routing\":\"{}\",\"widths\":[{}],"
                        "\"duration_ms\":{},\"utilization\":{:.4f},\"busy_utilization\":{:.4f}",
                        command.workers, command.masters, command.routing,
                        fmt::join(command.widths, ","), command.duration_ms,
                        measured->rank_seconds / (static_cast<double>(command.workers) *
                                                  command.masters * measured->seconds),
                        measured->busy_rank_seconds / (static_cast<double>(command.workers) *
                                                       command.masters * measured->seconds))
                .c_str()
          : fmt::format(",\"workers\":{},\"masters\":{},\"routing\":\"{}\"", command.workers,
                        command.masters, command.routing)
                .c_str());
  std::fflush(stdout);
  return measured->failed == 0 ? kExitOk : kExitFailure;
}

}  // namespace deeprc::app
