#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
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

// Whether a pool can run a function task, as seen from outside its master: ranks ≤ workers, the
// pool not broken, and the function a built-in, one its ranks registered (`functions`, non-null
// once they reported them) or, before that, possibly a plugin's (the pool loads plugins).
// `where` names the task in the message. Master::Check calls it with its own state; the client
// of an agent process with the pool status the agent sends, so both reject the same tasks at
// submission.
Status CheckPoolCanRun(const TaskDescription& task, const PoolDescription& pool,
                       const std::set<std::string, std::less<>>* functions,
                       std::string_view broken_reason, std::string_view where);

// The pools a function task may go to, in pool order: the one it names (`master`), else every
// pool that `can_run` accepts. No candidate is an error: the pilot has no pools, no pool has
// that name, or the first pool's reason.
Status FunctionTaskCandidates(const TaskDescription& task, std::string_view where,
                              const std::vector<std::string>& pool_names,
                              const std::function<Status(size_t)>& can_run,
                              std::vector<size_t>* candidates);

// The worker program for a pool: `program`, else $DEEPRC_WORKER_PROGRAM, else deeprc-worker
// beside /proc/self/exe.
std::string ResolveWorkerProgram(const std::string& program);

}  // namespace deeprc::runtime::internal
