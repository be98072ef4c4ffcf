#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/executor.h"
#include "deeprc/runtime/pool.h"

namespace deeprc::runtime::internal {

struct MasterOptions {
  PoolDescription pool;
  PoolOptions timing;  // heartbeats, grace, startup (its `pools` is unused)
  std::string session_dir;
  std::string secret;
  std::function<void(const TaskEvent&)> emit;
  std::function<void(ExecutionResult)> on_result;
  // Starts the pool's MPI job as an executable task of the agent; its result comes back
  // through Master::PoolTaskEnded.
  std::function<Status(TaskDescription)> launch;
  // Ends a pool task that is still running (the agent cancels it).
  std::function<void(const std::string& uid)> cancel_launch;
};

// One pool's master: queues function tasks by priority, dispatches them to free ranks in
// batches, collects results, and restarts the pool when a rank dies. One thread serves the
// ZeroMQ socket, the queue and the timers; the other methods are thread-safe.
class Master {
 public:
  // Binds the socket; Start() launches the pool and the master's thread.
  static Result<std::unique_ptr<Master>> Make(MasterOptions options);
  ~Master();
  void Start();

  const std::string& name() const;
  // Whether the pool can run `task` (function known — once the ranks have reported their
  // functions, or always for built-ins —, ranks ≤ workers, pool not broken). `where` names the
  // task in the message.
  Status Check(const TaskDescription& task, std::string_view where) const;
  // The tasks were checked; the master emits EXECUTING and the final event for each.
  void Submit(std::vector<TaskDescription> tasks);
  void Cancel(std::vector<std::string> uids, std::string reason);
  // The pool's MPI job (a task of the agent) ended.
  void PoolTaskEnded(ExecutionResult result);
  // Tasks queued or running.
  int64_t load() const;
  PoolStatus status() const;
  // Cancels what has not ended ("agent shut down"), tells the ranks to stop, joins the thread.
  void Shutdown();

  class Impl;

 private:
  explicit Master(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The worker program for a pool: `program`, else $DEEPRC_WORKER_PROGRAM, else deeprc-worker
// beside /proc/self/exe.
std::string ResolveWorkerProgram(const std::string& program);

}  // namespace deeprc::runtime::internal
