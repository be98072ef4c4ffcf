#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/executor.h"
#include "deeprc/runtime/pool.h"
#include "deeprc/runtime/session.h"

namespace deeprc::runtime {

struct AgentOptions {
  // Required: sandboxes go to <session_dir>/tasks/<uid>/.
  std::string session_dir;
  // The client's directory for staging; empty: the working directory.
  std::string client_dir;
  // The pilot's nodes (ResolvePilotNodes).
  std::vector<NodeResources> nodes;
  // Where every task transition is appended; may be null (no log).
  EventLog* events = nullptr;
  int32_t executor_threads = 4;
  std::chrono::milliseconds kill_grace{2000};
  // Every task transition (NEW, SCHEDULING, then the executor's), in order per task. Called from
  // the agent's threads; keep it short and do not call back into the agent from it.
  std::function<void(const TaskEvent&)> on_event;
  // Once per task, after its final event (DONE, FAILED or CANCELED).
  std::function<void(ExecutionResult)> on_result;
  // Worker pools for function tasks, one master each (pool.h). Each pool runs as a task of this
  // agent (uid "pool.<name>.<generation>") holding workers × cores_per_worker cores.
  PoolOptions pools;
  // The pilot's runtime limit (PilotDescription::runtime), from Make(); 0: none. When it is
  // over, every unfinished task is canceled with a reason naming the limit, submissions are
  // refused, and once the last task has ended on_runtime_over is called with that reason (the
  // pilot then ends DONE).
  std::chrono::milliseconds runtime{0};
  std::function<void(const std::string& reason)> on_runtime_over;
};

// Runs tasks on one pilot's resources: ResourceManager + Scheduler + Executor.
//
// One scheduler thread owns the Scheduler. It sleeps on a condition variable until something
// arrives: a submitted batch, a finished task (from the executor's on_result), a cancel
// request, or shutdown — it never polls. Each wake-up takes everything that arrived, feeds it to
// the Scheduler (Submit, Finish, Cancel), runs one Schedule pass, hands the started tasks and
// their slots to the Executor, and ends the tasks that cannot run (impossible requests, failed
// dependencies, canceled while waiting) with their reason.
//
// Function tasks (mode kFunction) do not pass the scheduler: Submit checks them against the
// pools (function registered, ranks ≤ workers, `after` not supported yet) and hands them to a
// master — the one named by `master`, else by AgentOptions::pools.routing — which emits
// EXECUTING when it dispatches them to ranks and the final event with the function's result.
//
// Task life: NEW (the client's submission time) → SCHEDULING (the agent took the task) → the
// executor's STAGING_INPUT → EXECUTING → STAGING_OUTPUT → DONE, or FAILED / CANCELED with a
// reason from any of them.
class Agent {
 public:
  static Result<std::unique_ptr<Agent>> Make(AgentOptions options);
  // Shutdown().
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Thread-safe. Checks the batch at once (fields, unique uids never submitted before, `after`
  // naming tasks of this batch or earlier ones, no cycles) and rejects all of it on an error;
  // otherwise queues it and returns. `submitted_us` is the NEW event's time.
  Status Submit(std::vector<TaskDescription> tasks, int64_t submitted_us);
  // Thread-safe. Cancels tasks that are waiting or running ("canceled by the client"); uids
  // unknown or already final are ignored.
  void Cancel(std::vector<std::string> uids);
  // Cancels what has not ended ("agent shut down"), waits for the processes, joins the threads.
  void Shutdown();

  int64_t total_cores() const;
  int64_t total_gpus() const;
  // One per pool, in the order of AgentOptions::pools.
  std::vector<PoolStatus> pool_status() const;

  class Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace deeprc::runtime
