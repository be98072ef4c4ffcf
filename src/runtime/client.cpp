#include "deeprc/runtime/client.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "runtime/remote_agent_internal.h"

namespace deeprc::runtime {
namespace {

// Which TaskCounts field a state counts in.
int64_t TaskCounts::*Bucket(TaskState state) {
  switch (state) {
    case TaskState::kNew:
    case TaskState::kScheduling:
      return &TaskCounts::waiting;
    case TaskState::kStagingInput:
    case TaskState::kExecuting:
    case TaskState::kStagingOutput:
      return &TaskCounts::running;
    case TaskState::kDone:
      return &TaskCounts::done;
    case TaskState::kFailed:
      return &TaskCounts::failed;
    case TaskState::kCanceled:
      return &TaskCounts::canceled;
  }
  return &TaskCounts::waiting;
}

// PilotDescription::runtime (seconds; 0: none) as the agent's limit.
std::chrono::milliseconds RuntimeLimit(const PilotDescription& description) {
  if (!(description.runtime > 0)) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(
      std::max<int64_t>(1, static_cast<int64_t>(description.runtime * 1000.0 + 0.5)));
}

}  // namespace

std::vector<TaskState> FinalTaskStates() {
  return {TaskState::kDone, TaskState::kFailed, TaskState::kCanceled};
}

PilotState Pilot::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

void Pilot::SetState(PilotState state, std::string_view reason) {
  std::lock_guard lock(mutex_);
  if (!IsTransitionAllowed(state_, state)) return;
  state_ = state;
  session_->events().Append("pilot", uid_, PilotStateName(state), NowMicros(), reason);
}

Pilot::~Pilot() {
  ShutdownAgent();
  std::unique_lock lock(listener_mutex_);
  if (manager_ != nullptr) manager_->PilotGone();
}

int Pilot::agent_pid() const { return remote_ != nullptr ? remote_->pid() : -1; }
std::vector<PoolStatus> Pilot::pool_status() const {
  if (remote_ != nullptr) return remote_->pool_status();
  return agent_ != nullptr ? agent_->pool_status() : std::vector<PoolStatus>{};
}

Status Pilot::SubmitTasks(std::vector<TaskDescription> tasks, int64_t submitted_us) {
  if (remote_ != nullptr) return remote_->Submit(std::move(tasks), submitted_us);
  return agent_->Submit(std::move(tasks), submitted_us);
}

void Pilot::CancelTasks(std::vector<std::string> uids) {
  if (remote_ != nullptr) {
    remote_->Cancel(std::move(uids));
  } else {
    agent_->Cancel(std::move(uids));
  }
}

void Pilot::ShutdownAgent() {
  if (remote_ != nullptr) remote_->Shutdown();
  if (agent_ != nullptr) agent_->Shutdown();
}

Result<Pilot*> PilotManager::Submit(PilotDescription description, PilotOptions pilot_options) {
  if (description.resource != "local") {
    return Status::NotImplemented("pilot resource '{}': only 'local' is supported",
                                  description.resource);
  }
  const int32_t machine_cores =
      std::max<int32_t>(1, static_cast<int32_t>(std::thread::hardware_concurrency()));
  DEEPRC_ASSIGN_OR_RAISE(std::vector<NodeResources> nodes,
                         ResolvePilotNodes(description, machine_cores));
  auto pilot = std::unique_ptr<Pilot>(new Pilot());
  pilot->uid_ = fmt::format("pilot.{:04}", session_.NextPilotNumber());
  pilot->description_ = description;
  pilot->session_ = &session_;
  session_.events().Append("pilot", pilot->uid_, PilotStateName(PilotState::kNew), NowMicros(), "");
  pilot->SetState(PilotState::kLaunching, "");

  const size_t nodes_count = nodes.size();
  Pilot* raw = pilot.get();
  auto forward_event = [raw](const TaskEvent& event) {
    std::shared_lock lock(raw->listener_mutex_);
    if (raw->on_event_) raw->on_event_(event);
  };
  auto forward_result = [raw](ExecutionResult result) {
    std::shared_lock lock(raw->listener_mutex_);
    if (raw->on_result_) raw->on_result_(std::move(result));
  };
  if (pilot_options.agent_process) {
    internal::RemoteAgentOptions options;
    options.session_dir = session_.directory();
    options.program = pilot_options.agent_program;
    options.pools = pilot_options.pools;
    if (options.program.empty()) {
      const char* from_environment = std::getenv("DEEPRC_PROGRAM");
      options.program = from_environment != nullptr ? from_environment : "/proc/self/exe";
    }
    options.nodes = nodes;
    options.heartbeat_interval = pilot_options.heartbeat_interval;
    options.heartbeat_timeout = pilot_options.heartbeat_timeout;
    options.events = &session_.events();
    options.on_event = forward_event;
    options.on_result = forward_result;
    options.on_lost = [raw](const std::string& reason) {
      raw->SetState(PilotState::kFailed, reason);
    };
    options.runtime = RuntimeLimit(description);
    options.on_runtime_over = [raw](const std::string& reason) {
      raw->SetState(PilotState::kDone, reason);
    };
    Result<std::unique_ptr<internal::RemoteAgent>> remote =
        internal::RemoteAgent::Launch(std::move(options));
    if (!remote.ok()) {
      pilot->SetState(PilotState::kFailed, remote.status().message());
      return remote.status();
    }
    pilot->remote_ = remote.MoveValueUnsafe();
  }
  AgentOptions options;
  options.session_dir = session_.directory();
  options.nodes = nodes;
  options.events = &session_.events();
  options.on_event = forward_event;
  options.on_result = forward_result;
  options.pools = pilot_options.pools;
  options.runtime = RuntimeLimit(description);
  options.on_runtime_over = [raw](const std::string& reason) {
    raw->SetState(PilotState::kDone, reason);
  };
  if (pilot->remote_ == nullptr) {
    Result<std::unique_ptr<Agent>> agent = Agent::Make(std::move(options));
    if (!agent.ok()) {
      pilot->SetState(PilotState::kFailed, agent.status().message());
      return agent.status();
    }
    pilot->agent_ = agent.MoveValueUnsafe();
  }
  for (const NodeResources& node : nodes) {
    pilot->total_cores_ += node.cores;
    pilot->total_gpus_ += node.gpus;
  }
  session_.events().AppendLine(fmt::format(
      R"({{"entity":"resources","uid":"{}","nodes":{},"cores":{},"gpus":{},"time_us":{}}})",
      pilot->uid_, nodes_count, pilot->total_cores_, pilot->total_gpus_, NowMicros()));
  pilot->SetState(PilotState::kActive, "");
  pilots_.push_back(std::move(pilot));
  return raw;
}

void PilotManager::Shutdown(Pilot& pilot) {
  pilot.ShutdownAgent();
  pilot.SetState(PilotState::kDone, "");  // ignored when the pilot FAILED before
  (void)session_.events().Flush();
}

PilotManager::~PilotManager() {
  for (auto& pilot : pilots_) Shutdown(*pilot);
}

void TaskManager::PilotGone() {
  std::lock_guard lock(mutex_);
  pilot_ = nullptr;
}

TaskManager::~TaskManager() {
  {
    std::lock_guard lock(mutex_);
    if (pilot_ == nullptr) return;
  }
  std::vector<std::string> unfinished;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [uid, record] : records_) {
      if (!record.has_result) unfinished.push_back(uid);
    }
  }
  if (!unfinished.empty()) {
    pilot_->CancelTasks(unfinished);
    (void)Wait(unfinished, FinalTaskStates(), kCloseTimeout);
  }
  std::unique_lock lock(pilot_->listener_mutex_);
  pilot_->on_event_ = nullptr;
  pilot_->on_result_ = nullptr;
  pilot_->manager_ = nullptr;
}

Status TaskManager::AddPilot(Pilot& pilot) {
  std::lock_guard lock(mutex_);
  if (pilot_ != nullptr) return Status::Invalid("this task manager has a pilot already");
  if (!order_.empty()) return Status::Invalid("add the pilot before submitting tasks");
  pilot_ = &pilot;
  std::unique_lock listener_lock(pilot.listener_mutex_);
  pilot.on_event_ = [this](const TaskEvent& event) { HandleEvent(event); };
  pilot.on_result_ = [this](ExecutionResult result) { HandleResult(std::move(result)); };
  pilot.manager_ = this;
  return Status::OK();
}

void TaskManager::OnStateChange(std::function<void(const TaskEvent&)> callback) {
  std::lock_guard lock(mutex_);
  callbacks_.push_back(std::move(callback));
}

Result<std::vector<std::string>> TaskManager::Submit(std::vector<TaskDescription> tasks) {
  const int64_t submitted_us = NowMicros();
  std::vector<std::string> uids;
  uids.reserve(tasks.size());
  Pilot* pilot = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (pilot_ == nullptr) return Status::Invalid("no pilot: call AddPilot first");
    pilot = pilot_;
    for (size_t i = 0; i < tasks.size(); ++i) {
      TaskDescription& task = tasks[i];
      if (task.uid.empty()) {
        do {
          task.uid = fmt::format("task.{:06}", next_uid_++);
        } while (records_.contains(task.uid));
      }
      if (task.name.empty()) task.name = task.uid;
      if (records_.contains(task.uid) || std::count(uids.begin(), uids.end(), task.uid) > 0) {
        // Undo this batch's records.
        for (const std::string& uid : uids) records_.erase(uid);
        order_.resize(order_.size() - uids.size());
        counts_.total -= static_cast<int64_t>(uids.size());
        counts_.waiting -= static_cast<int64_t>(uids.size());
        return Status::Invalid("tasks[{}]: uid '{}' was submitted before", i, task.uid);
      }
      uids.push_back(task.uid);
      records_.emplace(task.uid, Record{});
      order_.push_back(task.uid);
      ++counts_.total;
      ++counts_.waiting;
    }
  }
  Status status = pilot->SubmitTasks(std::move(tasks), submitted_us);
  if (!status.ok()) {
    std::lock_guard lock(mutex_);
    for (const std::string& uid : uids) records_.erase(uid);
    // Another thread's batch may have been appended since: remove these uids wherever they are.
    std::erase_if(order_, [&](const std::string& uid) { return !records_.contains(uid); });
    counts_.total -= static_cast<int64_t>(uids.size());
    counts_.waiting -= static_cast<int64_t>(uids.size());
    return status;
  }
  return uids;
}

void TaskManager::HandleEvent(const TaskEvent& event) {
  std::vector<std::function<void(const TaskEvent&)>>* callbacks = nullptr;
  bool notify = false;
  {
    std::lock_guard lock(mutex_);
    auto found = records_.find(event.uid);
    if (found == records_.end()) return;
    Record& record = found->second;
    if (record.state != event.state) {
      if (!IsTransitionAllowed(record.state, event.state)) return;
      --(counts_.*Bucket(record.state));
      ++(counts_.*Bucket(event.state));
      record.state = event.state;
    }
    if (!callbacks_.empty()) callbacks = &callbacks_;
    notify = waiters_ > 0;
  }
  if (notify) changed_.notify_all();
  if (callbacks != nullptr) {
    for (const auto& callback : *callbacks) callback(event);
  }
}

void TaskManager::HandleResult(ExecutionResult result) {
  {
    std::lock_guard lock(mutex_);
    auto found = records_.find(result.uid);
    if (found == records_.end()) return;
    Record& record = found->second;
    record.has_result = true;
    if (record.state != result.state && IsTransitionAllowed(record.state, result.state)) {
      --(counts_.*Bucket(record.state));
      ++(counts_.*Bucket(result.state));
      record.state = result.state;
    }
    record.result = std::move(result);
  }
  changed_.notify_all();
}

Status TaskManager::Wait(const std::vector<std::string>& uids, const std::vector<TaskState>& states,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const bool only_final =
      std::all_of(states.begin(), states.end(), [](TaskState state) { return IsFinal(state); });
  auto reached = [&](const Record& record) {
    // Final states are awaited through the result, which comes after the final event.
    if (IsFinal(record.state) && only_final) {
      return record.has_result &&
             std::find(states.begin(), states.end(), record.state) != states.end();
    }
    return std::find(states.begin(), states.end(), record.state) != states.end();
  };
  std::unique_lock lock(mutex_);
  for (const std::string& uid : uids) {
    if (!records_.contains(uid)) return Status::KeyError("unknown task '{}'", uid);
  }
  ++waiters_;
  // Final states never change again: a task found final is not looked at again.
  size_t next = 0;
  Status status;
  while (true) {
    if (only_final) {
      while (next < uids.size() && reached(records_.at(uids[next]))) ++next;
      if (next == uids.size()) break;
    } else if (std::all_of(uids.begin(), uids.end(),
                           [&](const std::string& uid) { return reached(records_.at(uid)); })) {
      break;
    }
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (const std::string& uid : uids) {
        const Record& record = records_.at(uid);
        if (!reached(record)) {
          status = Status::Timeout("task '{}' is still {} after {} ms", uid,
                                   TaskStateName(record.state), timeout.count());
          break;
        }
      }
      if (!status.ok()) break;
    }
  }
  --waiters_;
  return status;
}

Status TaskManager::WaitAll(std::chrono::milliseconds timeout) {
  return Wait(uids(), FinalTaskStates(), timeout);
}

void TaskManager::Cancel(const std::vector<std::string>& uids) {
  Pilot* pilot = nullptr;
  {
    std::lock_guard lock(mutex_);
    pilot = pilot_;
  }
  if (pilot != nullptr) pilot->CancelTasks(uids);
}

Result<TaskState> TaskManager::state(const std::string& uid) const {
  std::lock_guard lock(mutex_);
  auto found = records_.find(uid);
  if (found == records_.end()) return Status::KeyError("unknown task '{}'", uid);
  return found->second.state;
}

Result<ExecutionResult> TaskManager::result(const std::string& uid) const {
  std::lock_guard lock(mutex_);
  auto found = records_.find(uid);
  if (found == records_.end()) return Status::KeyError("unknown task '{}'", uid);
  if (!found->second.has_result) {
    return Status::Invalid("task '{}' is {}: no result yet", uid,
                           TaskStateName(found->second.state));
  }
  return found->second.result;
}

TaskCounts TaskManager::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

std::vector<std::string> TaskManager::uids() const {
  std::lock_guard lock(mutex_);
  return order_;
}

}  // namespace deeprc::runtime
