#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/agent.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/executor.h"
#include "deeprc/runtime/pool.h"
#include "deeprc/runtime/session.h"
#include "deeprc/runtime/states.h"

namespace deeprc::runtime {

// The client API, RADICAL-Pilot's shape:
//   auto session = Session::Make().ValueOrDie();
//   PilotManager pilots(*session);
//   Pilot& pilot = *pilots.Submit(PilotDescription{.cores = 2}).ValueOrDie();
//   TaskManager tasks(*session);
//   tasks.AddPilot(pilot);
//   auto uids = tasks.Submit({...}).ValueOrDie();
//   tasks.Wait(uids, FinalTaskStates(), 60s);
// A `local` pilot's agent runs inside the client process (the issue allows it); its events go
// to the session's event log like any agent's.

class TaskManager;
namespace internal {
class RemoteAgent;
}

// How a pilot's agent runs.
struct PilotOptions {
  // False: inside this process. True: `deeprc agent` in its own process, over ZeroMQ on
  // 127.0.0.1, every message carrying the session secret; heartbeats both ways.
  bool agent_process = false;
  // The `deeprc` program for the agent process. Empty: $DEEPRC_PROGRAM, else this program
  // (/proc/self/exe).
  std::string agent_program;
  std::chrono::milliseconds heartbeat_interval{500};
  // Silence from the agent for this long: the pilot and its unfinished tasks FAIL.
  std::chrono::milliseconds heartbeat_timeout{3000};
  // Worker pools for function tasks (pool.h). With agent_process, function names are checked by
  // the agent: a batch it rejects comes back as FAILED tasks with the reason.
  PoolOptions pools;
};

// A pilot: the resources of one PilotDescription and the agent that runs tasks on them.
class Pilot {
 public:
  const std::string& uid() const { return uid_; }
  PilotState state() const;
  const PilotDescription& description() const { return description_; }
  int64_t total_cores() const { return total_cores_; }
  int64_t total_gpus() const { return total_gpus_; }
  // The agent process's pid, or -1 when the agent runs in this process.
  int agent_pid() const;
  // The worker pools of an agent in this process (empty for an agent process).
  std::vector<PoolStatus> pool_status() const;
  ~Pilot();

 private:
  friend class PilotManager;
  friend class TaskManager;
  Pilot() = default;
  void SetState(PilotState state, std::string_view reason);
  Status SubmitTasks(std::vector<TaskDescription> tasks, int64_t submitted_us);
  void CancelTasks(std::vector<std::string> uids);
  void ShutdownAgent();

  int64_t total_cores_ = 0;
  int64_t total_gpus_ = 0;
  std::unique_ptr<internal::RemoteAgent> remote_;

  std::string uid_;
  PilotDescription description_;
  Session* session_ = nullptr;
  std::unique_ptr<Agent> agent_;
  // Where the agent's task events and results go (the TaskManager the pilot was added to).
  // Agent threads call them under a shared lock; a TaskManager going away detaches them under
  // the exclusive lock, so that no call reaches it afterwards.
  std::shared_mutex listener_mutex_;
  TaskManager* manager_ = nullptr;  // told when the pilot goes away
  std::function<void(const TaskEvent&)> on_event_;
  std::function<void(ExecutionResult)> on_result_;
  mutable std::mutex mutex_;
  PilotState state_ = PilotState::kNew;
};

class PilotManager {
 public:
  explicit PilotManager(Session& session) : session_(session) {}
  // Ends every pilot: unfinished tasks are canceled ("agent shut down"), the pilot is DONE.
  ~PilotManager();

  // Resource `local`: cores from the description or this machine's, GPUs as described (virtual
  // GPUs for tests: nothing checks that they exist). NEW → LAUNCHING → ACTIVE.
  Result<Pilot*> Submit(PilotDescription description, PilotOptions options = {});
  // Ends a pilot: its unfinished tasks are canceled; the pilot ends DONE.
  void Shutdown(Pilot& pilot);

 private:
  Session& session_;
  std::vector<std::unique_ptr<Pilot>> pilots_;
};

std::vector<TaskState> FinalTaskStates();

// Task counts by state, for progress lines.
struct TaskCounts {
  int64_t total = 0;
  int64_t waiting = 0;  // NEW or SCHEDULING
  int64_t running = 0;  // STAGING_INPUT, EXECUTING or STAGING_OUTPUT
  int64_t done = 0;
  int64_t failed = 0;
  int64_t canceled = 0;
};

// A TaskManager and its pilot may go away in either order (in one thread).
class TaskManager {
 public:
  explicit TaskManager(Session& session) : session_(session) {}
  // Cancels the tasks that have not ended, waits (at most kCloseTimeout) for their results, and
  // detaches from the pilot.
  ~TaskManager();
  static constexpr std::chrono::seconds kCloseTimeout{30};
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;

  // Tasks go to this pilot. Once, before the first Submit.
  Status AddPilot(Pilot& pilot);

  // Thread-safe. Tasks without a uid get "task.NNNNNN". Returns the uids in order. The batch is
  // checked at once (fields, unique uids, `after` naming known tasks, no cycle) and rejected
  // whole on an error; a task that can never fit the pilot is accepted and FAILS at once with
  // the reason.
  Result<std::vector<std::string>> Submit(std::vector<TaskDescription> tasks);

  // Waits until every task is in one of `states`. Timeout error (naming a task that is not
  // there yet and its state) when `timeout` passes first; KeyError for an unknown uid.
  Status Wait(const std::vector<std::string>& uids, const std::vector<TaskState>& states,
              std::chrono::milliseconds timeout);
  // Waits until every task submitted so far is final.
  Status WaitAll(std::chrono::milliseconds timeout);

  // Thread-safe: waiting and running tasks end CANCELED ("canceled by the client").
  void Cancel(const std::vector<std::string>& uids);

  // Called for every task transition, from the agent's threads, in order per task. Keep it
  // short; it may call Submit and Cancel. Register callbacks before submitting.
  void OnStateChange(std::function<void(const TaskEvent&)> callback);

  Result<TaskState> state(const std::string& uid) const;
  // The task's result once it is final.
  Result<ExecutionResult> result(const std::string& uid) const;
  TaskCounts counts() const;
  // Every uid submitted, in submission order.
  std::vector<std::string> uids() const;

 private:
  struct Record {
    TaskState state = TaskState::kNew;
    bool has_result = false;
    ExecutionResult result;
  };
  friend class Pilot;
  void HandleEvent(const TaskEvent& event);
  // The pilot is being destroyed.
  void PilotGone();
  void HandleResult(ExecutionResult result);

  Session& session_;
  Pilot* pilot_ = nullptr;
  std::vector<std::function<void(const TaskEvent&)>> callbacks_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int64_t waiters_ = 0;
  int64_t next_uid_ = 0;
  std::unordered_map<std::string, Record> records_;
  std::vector<std::string> order_;
  TaskCounts counts_;
};

}  // namespace deeprc::runtime
