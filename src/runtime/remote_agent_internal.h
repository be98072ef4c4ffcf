#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/executor.h"
#include "deeprc/runtime/pool.h"
#include "deeprc/runtime/session.h"
#include "runtime/wire_internal.h"

namespace deeprc::runtime::internal {

struct RemoteAgentOptions {
  std::string session_dir;
  // The `deeprc` program that runs `deeprc agent`.
  std::string program;
  std::vector<NodeResources> nodes;
  // Worker pools, handed to `deeprc agent --pools`.
  PoolOptions pools;
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{3000};
  // Where the client writes the FAILED events of tasks lost with the agent.
  EventLog* events = nullptr;
  std::function<void(const TaskEvent&)> on_event;
  std::function<void(ExecutionResult)> on_result;
  // The agent is gone (no heartbeat for heartbeat_timeout, or it exited): called once, after
  // the unfinished tasks were failed.
  std::function<void(const std::string& reason)> on_lost;
  // The pilot's runtime limit (0: none), enforced by the agent; on_runtime_over as in
  // AgentOptions, and later submissions are refused.
  std::chrono::milliseconds runtime{0};
  std::function<void(const std::string& reason)> on_runtime_over;
};

// The client's end of an agent process: starts `deeprc agent`, talks to it over a Channel from
// one I/O thread, and fails the pilot's unfinished tasks when the agent goes silent.
class RemoteAgent {
 public:
  static Result<std::unique_ptr<RemoteAgent>> Launch(RemoteAgentOptions options);
  ~RemoteAgent();

  // Checks the batch as the in-process Agent does, then sends it.
  Status Submit(std::vector<TaskDescription> tasks, int64_t submitted_us);
  void Cancel(std::vector<std::string> uids);
  // Asks the agent to end (its unfinished tasks are canceled), waits for it (at most 10 s, then
  // SIGKILL), joins the I/O thread.
  void Shutdown();
  pid_t pid() const { return pid_; }
  // The pools as the agent last reported them (empty before its first report).
  std::vector<PoolStatus> pool_status() const;
  int64_t total_cores() const { return total_cores_; }
  int64_t total_gpus() const { return total_gpus_; }

 private:
  RemoteAgent(RemoteAgentOptions options) : options_(std::move(options)) {}
  void OnMessage(std::string&& text);
  void OnTick();
  void Lose(const std::string& reason);
  // Ends the tasks without a result yet, as the client's own events and results.
  void EndUnfinished(TaskState state, const std::string& reason);
  void Reap(std::chrono::milliseconds grace);

  RemoteAgentOptions options_;
  pid_t pid_ = -1;
  int64_t total_cores_ = 0;
  int64_t total_gpus_ = 0;
  std::unique_ptr<Channel> channel_;
  std::thread io_thread_;
  std::chrono::steady_clock::time_point last_heard_;  // only the I/O thread

  // Function tasks as the agent's masters would check them (same rules, the agent's report).
  Status CheckFunctionTask(const TaskDescription& task, std::string_view where) const;

  // What the agent reported of each pool that the checks need (by pool, as options_.pools).
  struct ReportedPool {
    bool functions_known = false;  // the ranks' functions never change after they reported
    std::set<std::string, std::less<>> functions;
    std::string broken_reason;
  };
  std::vector<std::string> pool_names_;

  mutable std::mutex mutex_;
  std::vector<PoolStatus> pools_;  // as the agent last reported them
  std::vector<ReportedPool> reported_;
  std::unordered_set<std::string> known_uids_;
  std::unordered_set<std::string> unfinished_;
  bool lost_ = false;
  bool shut_down_ = false;
  // Set when the agent reports that the pilot's runtime is over: why submissions are refused.
  std::string runtime_over_;
};

}  // namespace deeprc::runtime::internal
