#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/states.h"

namespace deeprc::runtime {

// Where one rank of a placed task runs: a node and the core and GPU ids the scheduler gave it.
struct ExecutionSlot {
  // Host name as the launcher knows it; empty means this machine ("localhost").
  std::string node;
  std::vector<int32_t> cores;
  std::vector<int32_t> gpus;
};

// The placement of a whole task: one slot per rank, in rank order. An empty placement runs the
// task's ranks on this machine without core or GPU ids.
struct ExecutionPlacement {
  std::vector<ExecutionSlot> ranks;
};

// One state transition of one task. Timestamps are microseconds since the Unix epoch.
struct TaskEvent {
  std::string uid;
  TaskState state = TaskState::kNew;
  int64_t time_us = 0;
  // Why the task ended, for FAILED and CANCELED; empty otherwise.
  std::string reason;
};

// What became of one task.
struct ExecutionResult {
  std::string uid;
  // DONE, FAILED or CANCELED.
  TaskState state = TaskState::kNew;
  // Empty for DONE; otherwise what went wrong, e.g. "exited with status 1",
  // "killed by signal SIGSEGV", "timeout after 2s", "canceled by the client",
  // "executable not found: /path", "pre_exec[0] failed with exit status 1: false".
  std::string reason;
  // The launched process's exit code, or -1 when it did not exit normally (or never started).
  int exit_code = -1;
  // The terminating signal and its name ("SIGSEGV"), or 0 and "".
  int signal = 0;
  std::string signal_name;
  // The last lines (at most 20 lines and 4 KiB) of the task's stderr file.
  std::string stderr_tail;
  // Function tasks: what the function returned (rank 0's value) and what the function wrote to
  // its context's output stream (every rank's, in rank order).
  nlohmann::json value;
  std::string stdout_tail;
  std::string sandbox;
  std::string stdout_path;
  std::string stderr_path;
  // When the launched process started and was reaped (0 when it never started).
  int64_t start_us = 0;
  int64_t end_us = 0;
};

// How a multi-rank task is handed to mpirun.
enum class MpiSlotMapping : uint8_t {
  // A rankfile in the sandbox binds each rank to its assigned cores.
  kRankfile,
  // `--host node:slots,...`: each rank lands on its node, unbound.
  kHostList,
};

struct ExecutorOptions {
  // Required. Default sandboxes are <session_dir>/tasks/<uid>/; a relative task sandbox is
  // resolved against session_dir.
  std::string session_dir;
  // The client's directory: relative input staging sources and output staging targets are
  // resolved against it. Empty means the working directory when the executor was made.
  std::string client_dir;
  // Threads that stage files and start processes; they mostly wait for the file system
  // (creating a sandbox per task), so more than the cores pays off.
  // Reaping and timeouts use one more thread.
  int32_t worker_threads = 4;
  // After SIGTERM (timeout, cancel), the process group gets SIGKILL this much later.
  std::chrono::milliseconds kill_grace{2000};
  // When the launched process exits, SIGKILL whatever is left in its process group (background
  // children), so that no process outlives its task. False: they may stay, and the output files
  // are then opened before the start (not through pipes, which close with the task).
  bool kill_group_on_exit = true;
  std::string mpirun = "mpirun";
  MpiSlotMapping mpi_slot_mapping = MpiSlotMapping::kRankfile;
  // Every state transition, in order per task. Called from executor threads; keep it short.
  std::function<void(const TaskEvent&)> on_event;
  // Once per task, after its final event. Called from executor threads; keep it short. May
  // submit new tasks (also with the same uid).
  std::function<void(ExecutionResult)> on_result;
};

// Runs placed tasks as OS processes. A task arrives scheduled (in SCHEDULING) and the executor
// walks it through STAGING_INPUT → EXECUTING → STAGING_OUTPUT → DONE, or ends it FAILED or
// CANCELED with a reason:
//   - the sandbox (default <session_dir>/tasks/<uid>/) is created and is the working directory;
//   - input staging (source relative to client_dir, target relative to the sandbox; prefixes
//     `client://`, `session://`, `task://` and `file://` name the base explicitly);
//   - the process: argv as given, never through a shell; stdin /dev/null; stdout and stderr to
//     task.stdout_file / task.stderr_file (relative to the sandbox; default `<uid>.out` and
//     `<uid>.err`) through pipes that the reaper thread drains, so that a file is created only
//     when output arrives (a silent task leaves none); its own process group; the environment is the executor's (as when it was
//     made) + task.environment + DEEPRC_TASK_ID, DEEPRC_TASK_NAME, DEEPRC_RANKS, DEEPRC_CORES,
//     DEEPRC_GPU_IDS, CUDA_VISIBLE_DEVICES (the assigned GPU ids, comma-separated; "" when none)
//     and DEEPRC_SANDBOX. A bare executable name is looked up in that environment's PATH; a
//     relative path with a slash is relative to the sandbox. ranks > 1 runs through mpirun with
//     an explicit slot mapping built from the placement, and each rank's CUDA_VISIBLE_DEVICES
//     holds its own GPUs only (DEEPRC_GPU_IDS lists the whole task's);
//   - pre_exec lines run in one `/bin/sh -c` in the sandbox just before the launch command, which
//     the same shell then execs, so that `export` and `cd` in pre_exec reach the task (as in
//     RADICAL-Pilot); the first failing line fails the task. post_exec lines run in another shell
//     after the process exits (not after a timeout or cancel);
//   - output staging (source relative to the sandbox, target relative to client_dir) only when
//     the task succeeded.
// A timeout (task.timeout seconds from the start of EXECUTING) or Cancel() sends SIGTERM to the
// task's process group, then SIGKILL after kill_grace (also to descendants that left the group,
// such as mpirun's ranks); the task ends CANCELED. If the process that holds the executor dies,
// even by SIGKILL, a guard process sends every task's process group SIGTERM, then SIGKILL after
// kill_grace (mpirun kills its ranks on that SIGTERM).
//
// Threads: a fixed pool (worker_threads) plus one reaper that waits on every task's pidfd with
// epoll and keeps the timers; nothing grows with the number of tasks. Submit, Cancel, WaitIdle
// and InFlight may be called from any thread, also from the callbacks; destroying the executor
// from a callback deadlocks.
class Executor {
 public:
  static Result<std::unique_ptr<Executor>> Make(ExecutorOptions options);
  // Cancels every task still in flight ("executor shut down"), waits for their processes and
  // joins the threads.
  ~Executor();

  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues a task; returns at once. Invalid when the description or placement does not fit
  // (the task then gets no events), or when a task with the same uid is in flight.
  Status Submit(TaskDescription task, ExecutionPlacement placement = {});

  // Ends a task that is queued, staging or running: CANCELED with `reason`.
  // KeyError when no task with this uid is in flight.
  Status Cancel(std::string_view uid, std::string_view reason = "canceled by the client");

  // Waits until no task is in flight (every result delivered). False on timeout.
  bool WaitIdle(std::chrono::milliseconds timeout);

  // Tasks submitted whose result has not been delivered yet.
  int64_t InFlight() const;

  class Impl;

 private:
  explicit Executor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "SIGSEGV" for SIGSEGV; "signal 42" for numbers without a name.
std::string SignalName(int signal);

// The last `max_lines` lines, at most `max_bytes`, of a file ("" when missing or empty).
std::string ReadFileTail(const std::string& path, size_t max_bytes = 4096, size_t max_lines = 20);

// Microseconds since the Unix epoch.
int64_t NowMicros();

}  // namespace deeprc::runtime
