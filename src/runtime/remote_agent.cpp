#include "runtime/remote_agent_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "deeprc/runtime/agent_process.h"
#include "runtime/master_internal.h"

extern char** environ;

namespace deeprc::runtime::internal {
namespace {

// The first line the agent writes on its stdout, within `timeout`.
Result<std::string> ReadLine(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string line;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::Timeout("the agent did not report its endpoint in time");
    pollfd item{fd, POLLIN, 0};
    const int ready = ::poll(&item, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError("the agent exited before reporting its endpoint");
    if (c == '\n') return line;
    line.push_back(c);
  }
}

}  // namespace

Result<std::unique_ptr<RemoteAgent>> RemoteAgent::Launch(RemoteAgentOptions options) {
  std::unique_ptr<RemoteAgent> remote(new RemoteAgent(std::move(options)));
  const RemoteAgentOptions& o = remote->options_;
  for (const NodeResources& node : o.nodes) {
    remote->total_cores_ += node.cores;
    remote->total_gpus_ += node.gpus;
  }
  DEEPRC_ASSIGN_OR_RAISE(std::string secret, ReadSessionSecret(o.session_dir));

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::IOError("pipe: {}", std::strerror(errno));
  std::vector<std::string> args = {o.program,        "agent",
                                   "--session-dir",  o.session_dir,
                                   "--nodes",        FormatNodes(o.nodes),
                                   "--heartbeat-ms", std::to_string(o.heartbeat_interval.count()),
                                   "--timeout-ms",   std::to_string(o.heartbeat_timeout.count()),
                                   "--runtime-ms",   std::to_string(o.runtime.count())};
  if (!o.pools.pools.empty()) {
    args.push_back("--pools");
    args.push_back(PoolOptionsToJson(o.pools));
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  pid_t pid = -1;
  const int spawned =
      ::posix_spawn(&pid, o.program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    return Status::IOError("cannot start the agent {}: {}", o.program, std::strerror(spawned));
  }
  remote->pid_ = pid;
  Result<std::string> line = ReadLine(pipe_fds[0], std::chrono::seconds(10));
  ::close(pipe_fds[0]);
  if (!line.ok() || line->rfind("endpoint ", 0) != 0) {
    remote->Reap(std::chrono::milliseconds(0));
    return line.ok() ? Status::IOError("the agent said '{}', not its endpoint", *line)
                     : line.status();
  }
  auto channel = Channel::Connect(secret, line->substr(9));
  if (!channel.ok()) {
    remote->Reap(std::chrono::milliseconds(0));
    return channel.status();
  }
  remote->channel_ = channel.MoveValueUnsafe();
  remote->last_heard_ = std::chrono::steady_clock::now();
  for (const PoolDescription& pool : remote->options_.pools.pools) {
    remote->pool_names_.push_back(pool.name);
  }
  remote->reported_.resize(remote->pool_names_.size());
  RemoteAgent* raw = remote.get();
  raw->io_thread_ = std::thread([raw] {
    raw->channel_->Run([raw](std::string&& text) { raw->OnMessage(std::move(text)); },
                       [raw] { raw->OnTick(); }, raw->options_.heartbeat_interval);
  });
  return remote;
}

RemoteAgent::~RemoteAgent() { Shutdown(); }

Status RemoteAgent::Submit(std::vector<TaskDescription> tasks, int64_t submitted_us) {
  nlohmann::json body = {{"type", "submit"}, {"submitted_us", submitted_us}};
  nlohmann::json& list = body["tasks"] = nlohmann::json::array();
  {
    std::lock_guard lock(mutex_);
    if (lost_) return Status::IOError("the pilot's agent is gone");
    if (shut_down_) return Status::Invalid("the pilot has shut down");
    if (!runtime_over_.empty()) return Status::Invalid("{}", runtime_over_);
    for (size_t i = 0; i < tasks.size(); ++i) {
      const std::string where = fmt::format("tasks[{}]", i);
      DEEPRC_RETURN_NOT_OK(ValidateTaskDescription(tasks[i], where));
      if (known_uids_.contains(tasks[i].uid)) {
        return Status::Invalid("tasks[{}]: uid '{}' was submitted before", i, tasks[i].uid);
      }
      if (tasks[i].mode == TaskMode::kFunction) {
        DEEPRC_RETURN_NOT_OK(CheckFunctionTask(tasks[i], where));
      }
    }
    DEEPRC_RETURN_NOT_OK(ValidateTaskGraph(
        tasks, [this](std::string_view uid) { return known_uids_.contains(std::string(uid)); }));
    for (const TaskDescription& task : tasks) {
      known_uids_.insert(task.uid);
      unfinished_.insert(task.uid);
      list.push_back(TaskToJson(task));
    }
  }
  channel_->Send(body.dump());
  return Status::OK();
}

Status RemoteAgent::CheckFunctionTask(const TaskDescription& task, std::string_view where) const {
  const std::vector<PoolDescription>& pools = options_.pools.pools;
  std::vector<size_t> candidates;
  return FunctionTaskCandidates(
      task, where, pool_names_,
      [&](size_t p) {
        // Before the agent's first report: only what the descriptions tell.
        const ReportedPool& reported = reported_[p];
        return CheckPoolCanRun(task, pools[p], reported.functions_known ? &reported.functions : nullptr,
                               reported.broken_reason, where);
      },
      &candidates);
}

std::vector<PoolStatus> RemoteAgent::pool_status() const {
  std::lock_guard lock(mutex_);
  return pools_;
}

void RemoteAgent::Cancel(std::vector<std::string> uids) {
  {
    std::lock_guard lock(mutex_);
    if (lost_ || shut_down_) return;
  }
  channel_->Send(nlohmann::json{{"type", "cancel"}, {"uids", uids}}.dump());
}

void RemoteAgent::OnMessage(std::string&& text) {
  last_heard_ = std::chrono::steady_clock::now();
  nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return;
  const std::string type = body.value("type", "");
  if (type == "event") {
    TaskEvent event{body.value("uid", ""), static_cast<TaskState>(body.value("state", 0)),
                    body.value("time_us", int64_t{0}), body.value("reason", "")};
    if (options_.on_event) options_.on_event(event);
  } else if (type == "result") {
    ExecutionResult result = ResultFromJson(body);
    {
      std::lock_guard lock(mutex_);
      unfinished_.erase(result.uid);
    }
    if (options_.on_result) options_.on_result(std::move(result));
  } else if (type == "pools") {
    std::vector<PoolStatus> pools;
    for (const auto& entry : body["pools"]) pools.push_back(PoolStatusFromJson(entry));
    std::lock_guard lock(mutex_);
    for (const PoolStatus& status : pools) {
      auto named = std::find(pool_names_.begin(), pool_names_.end(), status.name);
      if (named == pool_names_.end()) continue;
      ReportedPool& reported = reported_[static_cast<size_t>(named - pool_names_.begin())];
      reported.broken_reason = status.broken_reason;
      if (status.functions_known && !reported.functions_known) {
        reported.functions_known = true;
        reported.functions.insert(status.functions.begin(), status.functions.end());
      }
    }
    pools_ = std::move(pools);
  } else if (type == "runtime_over") {
    const std::string reason = body.value("reason", "the pilot's runtime limit is over");
    {
      std::lock_guard lock(mutex_);
      runtime_over_ = reason;
    }
    if (options_.on_runtime_over) options_.on_runtime_over(reason);
  }
}

void RemoteAgent::OnTick() {
  channel_->Send(R"({"type":"heartbeat"})");
  if (std::chrono::steady_clock::now() - last_heard_ > options_.heartbeat_timeout) {
    Lose(fmt::format("agent lost: no heartbeat for {} ms", options_.heartbeat_timeout.count()));
  }
}

void RemoteAgent::Lose(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    if (lost_ || shut_down_) return;
    lost_ = true;
  }
  channel_->Stop();
  // The pilot first, so that whoever sees a task fail with the agent sees the pilot FAILED.
  if (options_.on_lost) options_.on_lost(reason);
  EndUnfinished(TaskState::kFailed, reason);
}

void RemoteAgent::EndUnfinished(TaskState state, const std::string& reason) {
  std::vector<std::string> unfinished;
  {
    std::lock_guard lock(mutex_);
    unfinished.assign(unfinished_.begin(), unfinished_.end());
    unfinished_.clear();
  }
  for (const std::string& uid : unfinished) {
    const int64_t now = NowMicros();
    if (options_.events != nullptr) {
      options_.events->Append("task", uid, TaskStateName(state), now, reason);
    }
    if (options_.on_event) options_.on_event(TaskEvent{uid, state, now, reason});
    ExecutionResult result;
    result.uid = uid;
    result.state = state;
    result.reason = reason;
    if (options_.on_result) options_.on_result(std::move(result));
  }
}

void RemoteAgent::Reap(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_ || (done < 0 && errno == ECHILD)) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

void RemoteAgent::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  // The agent cancels what is left, sends the results and exits; the I/O thread receives them
  // meanwhile. A lost or hung agent is killed.
  if (channel_ != nullptr) channel_->Send(R"({"type":"shutdown"})");
  Reap(std::chrono::seconds(10));
  if (channel_ != nullptr) channel_->Stop();
  if (io_thread_.joinable()) io_thread_.join();
  // Their results went with the agent: the client ends them as the agent did.
  EndUnfinished(TaskState::kCanceled, "agent shut down");
}

}  // namespace deeprc::runtime::internal
