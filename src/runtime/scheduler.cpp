#include "deeprc/runtime/scheduler.h"

#include <algorithm>

#include "deeprc/core/check.h"

namespace deeprc::runtime {

size_t Scheduler::RequestHash::operator()(const ResourceRequest& request) const {
  uint64_t hash = static_cast<uint32_t>(request.ranks);
  hash = hash * 0x9E3779B97F4A7C15ull + static_cast<uint32_t>(request.cores_per_rank);
  hash = hash * 0x9E3779B97F4A7C15ull + static_cast<uint32_t>(request.gpus_per_rank);
  hash = hash * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(request.mem_per_rank);
  return static_cast<size_t>(hash ^ (hash >> 29));
}

Scheduler::Scheduler(ResourceManager resources, SchedulerOptions options)
    : resources_(std::move(resources)), options_(options) {}

uint32_t Scheduler::ShapeOf(const ResourceRequest& request) {
  if (last_shape_ != UINT32_MAX && shapes_[last_shape_].request == request) return last_shape_;
  auto [it, added] = shape_index_.try_emplace(request, static_cast<uint32_t>(shapes_.size()));
  if (added) shapes_.push_back({request, resources_.CheckFits(request)});
  last_shape_ = it->second;
  return it->second;
}

std::string Scheduler::TaskName(TaskId task) const {
  if (task < uids_.size() && !uids_[task].empty()) return uids_[task];
  return fmt::format("#{}", task);
}

bool Scheduler::is_waiting(TaskId task) const {
  return task < tasks_.size() &&
         (tasks_[task].phase == Phase::kBlocked || tasks_[task].phase == Phase::kQueued);
}

Result<TaskId> Scheduler::Submit(std::span<const TaskRequest> batch) {
  const TaskId first = next_task_id();
  const uint64_t end = uint64_t{first} + batch.size();
  if (end > UINT32_MAX) return Status::Invalid("too many tasks for one scheduler");
  // Check the whole batch before changing anything.
  size_t internal_edges = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const ResourceRequest& resources = batch[i].resources;
    if (!batch[i].external && (resources.ranks < 1 || resources.cores_per_rank < 1 || resources.gpus_per_rank < 0 ||
        resources.mem_per_rank < 0)) {
      return Status::Invalid(
          "tasks[{}]: ranks and cores_per_rank must be positive, gpus_per_rank and mem_per_rank "
          "not negative (found {}, {}, {}, {})",
          i, resources.ranks, resources.cores_per_rank, resources.gpus_per_rank,
          resources.mem_per_rank);
    }
    for (TaskId before : batch[i].after) {
      if (before >= end) {
        return Status::Invalid("tasks[{}].after: no task #{}", i, before);
      }
      if (before == first + i) {
        return Status::Invalid("tasks[{}].after: task #{} waits for itself", i, before);
      }
      if (before >= first) ++internal_edges;
    }
  }
  if (internal_edges > 0) {
    // Kahn's algorithm over the edges inside the batch: what is never freed lies on a cycle.
    std::vector<uint32_t> unmet(batch.size(), 0);
    std::vector<std::vector<uint32_t>> dependents(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      for (TaskId before : batch[i].after) {
        if (before >= first) {
          ++unmet[i];
          dependents[before - first].push_back(static_cast<uint32_t>(i));
        }
      }
    }
    std::vector<uint32_t> ready;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (unmet[i] == 0) ready.push_back(static_cast<uint32_t>(i));
    }
    size_t freed = 0;
    while (!ready.empty()) {
      const uint32_t i = ready.back();
      ready.pop_back();
      ++freed;
      for (uint32_t dependent : dependents[i]) {
        if (--unmet[dependent] == 0) ready.push_back(dependent);
      }
    }
    if (freed < batch.size()) {
      // Walk back through predecessors that were never freed until one repeats.
      uint32_t at = 0;
      while (unmet[at] == 0) ++at;
      std::vector<int64_t> seen_at(batch.size(), -1);
      std::vector<uint32_t> path;
      while (seen_at[at] < 0) {
        seen_at[at] = static_cast<int64_t>(path.size());
        path.push_back(at);
        for (TaskId before : batch[at].after) {
          if (before >= first && unmet[before - first] != 0) {
            at = before - first;
            break;
          }
        }
      }
      std::string cycle;
      for (size_t k = path.size(); k-- > static_cast<size_t>(seen_at[at]);) {
        cycle += fmt::format("#{} → ", first + path[k]);
      }
      cycle += fmt::format("#{}", first + path.back());
      return Status::Invalid("dependency cycle: {}", cycle);
    }
  }

  const size_t total = end;
  tasks_.resize(total);
  waiting_ += static_cast<int64_t>(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const TaskId task = first + static_cast<TaskId>(i);
    tasks_[task].external = batch[i].external;
    if (!batch[i].external) tasks_[task].shape = ShapeOf(batch[i].resources);
    tasks_[task].priority = batch[i].priority;
    for (TaskId before : batch[i].after) {
      if (tasks_[before].phase == Phase::kDone) continue;
      ++tasks_[task].unmet;
      edges_.push_back({task, tasks_[before].first_edge});
      tasks_[before].first_edge = static_cast<int32_t>(edges_.size() - 1);
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const TaskId task = first + static_cast<TaskId>(i);
    if (!tasks_[task].external) {
      const Status& fits = shapes_[tasks_[task].shape].fits;
      if (!fits.ok()) FailUnstarted(task, TaskState::kFailed, fits.message());
    }
    for (TaskId before : batch[i].after) {
      if (before >= first) continue;  // the batch's own failures reach their dependents above
      if (tasks_[before].phase == Phase::kFailed || tasks_[before].phase == Phase::kCanceled) {
        FailUnstarted(
            task, TaskState::kFailed,
            fmt::format("dependency '{}' {}", TaskName(before),
                        tasks_[before].phase == Phase::kFailed ? "failed" : "was canceled"));
      }
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    const TaskId task = first + static_cast<TaskId>(i);
    if (tasks_[task].phase == Phase::kBlocked && tasks_[task].unmet == 0) MakeReady(task);
  }
  return first;
}

Result<TaskId> Scheduler::Submit(std::span<const TaskDescription> tasks) {
  for (size_t i = 0; i < tasks.size(); ++i) {
    DEEPRC_RETURN_NOT_OK(ValidateTaskDescription(tasks[i], fmt::format("tasks[{}]", i)));
  }
  DEEPRC_RETURN_NOT_OK(ValidateTaskGraph(
      tasks, [this](std::string_view uid) { return uid_index_.count(std::string(uid)) != 0; }));
  const TaskId first = next_task_id();
  std::unordered_map<std::string_view, TaskId> batch_index;
  for (size_t i = 0; i < tasks.size(); ++i) batch_index[tasks[i].uid] = first + i;
  std::vector<TaskRequest> batch(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    batch[i].external = tasks[i].mode == TaskMode::kFunction;
    if (!batch[i].external) batch[i].resources = RequestOf(tasks[i]);
    batch[i].priority = tasks[i].priority;
    for (const auto& before : tasks[i].after) {
      auto inside = batch_index.find(before);
      batch[i].after.push_back(inside != batch_index.end() ? inside->second
                                                           : uid_index_.at(before));
    }
  }
  // Uids first, so that failures at submission name them.
  uids_.resize(first + tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) uids_[first + i] = tasks[i].uid;
  auto submitted = Submit(std::span<const TaskRequest>(batch));
  if (!submitted.ok()) {
    uids_.resize(first);
    return submitted.status();
  }
  for (size_t i = 0; i < tasks.size(); ++i) uid_index_[tasks[i].uid] = first + i;
  return first;
}

void Scheduler::MakeReady(TaskId task) {
  if (!tasks_[task].external) {
    Enqueue(task);
    return;
  }
  tasks_[task].phase = Phase::kQueued;
  ready_external_.push_back(task);
}

void Scheduler::Enqueue(TaskId task) {
  tasks_[task].phase = Phase::kQueued;
  const uint64_t key =
      (uint64_t{static_cast<uint32_t>(tasks_[task].priority)} << 32) | tasks_[task].shape;
  auto [it, added] = group_index_.try_emplace(key, static_cast<uint32_t>(groups_.size()));
  if (added) groups_.push_back(Group{tasks_[task].priority, tasks_[task].shape, {}, false, {}});
  Group& group = groups_[it->second];
  group.tasks.push_back(task);
  if (group.tasks.size() == 1) UpdateOrder(it->second);
}

void Scheduler::UpdateOrder(uint32_t index) {
  Group& group = groups_[index];
  while (!group.tasks.empty() && tasks_[group.tasks.front()].phase != Phase::kQueued) {
    group.tasks.pop_front();  // canceled or failed while queued
  }
  if (group.in_order) {
    if (!group.tasks.empty() && std::get<1>(group.key) == group.tasks.front()) return;
    order_.erase(group.key);
    group.in_order = false;
  }
  if (group.tasks.empty()) return;
  group.key = {-int64_t{group.priority}, group.tasks.front(), index};
  order_.insert(group.key);
  group.in_order = true;
}

void Scheduler::FailUnstarted(TaskId task, TaskState state, std::string reason) {
  const Phase phase = tasks_[task].phase;
  if (phase != Phase::kBlocked && phase != Phase::kQueued) return;
  tasks_[task].phase = state == TaskState::kCanceled ? Phase::kCanceled : Phase::kFailed;
  --waiting_;
  if (reservation_task_ == static_cast<int64_t>(task)) DropReservation();
  pending_failures_.push_back({task, state, std::move(reason)});
  FailDependents(task, state);
}

void Scheduler::FailDependents(TaskId task, TaskState state) {
  std::vector<TaskId> stack{task};
  while (!stack.empty()) {
    const TaskId failed = stack.back();
    stack.pop_back();
    const bool canceled = tasks_[failed].phase == Phase::kCanceled;
    for (int32_t edge = tasks_[failed].first_edge; edge >= 0; edge = edges_[edge].next) {
      const TaskId dependent = edges_[edge].dependent;
      if (tasks_[dependent].phase != Phase::kBlocked) continue;
      tasks_[dependent].phase = Phase::kFailed;
      --waiting_;
      pending_failures_.push_back({dependent, TaskState::kFailed,
                                   fmt::format("dependency '{}' {}", TaskName(failed),
                                               canceled ? "was canceled" : "failed")});
      stack.push_back(dependent);
    }
  }
}

void Scheduler::MakeReservation(TaskId head) {
  DropReservation();
  reserved_nodes_ = resources_.Reserve(shapes_[tasks_[head].shape].request);
  if (!reserved_nodes_.empty()) reservation_task_ = head;
}

void Scheduler::DropReservation() {
  resources_.Unreserve(reserved_nodes_);
  reserved_nodes_.clear();
  reservation_task_ = -1;
}

bool Scheduler::TryStart(TaskId task, bool with_reservation) {
  if (with_reservation) resources_.Unreserve(reserved_nodes_);
  Allocation allocation;
  const bool started = resources_.TryAllocate(shapes_[tasks_[task].shape].request, &allocation);
  if (with_reservation) {
    if (started) {
      reserved_nodes_.clear();
      reservation_task_ = -1;
    } else {
      resources_.ReserveNodes(reserved_nodes_);
    }
  }
  if (!started) return false;
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    running_[slot] = std::move(allocation);
  } else {
    slot = static_cast<uint32_t>(running_.size());
    running_.push_back(std::move(allocation));
  }
  tasks_[task].slot = slot;
  tasks_[task].phase = Phase::kRunning;
  --waiting_;
  ++running_count_;
  return true;
}

void Scheduler::Schedule(std::vector<TaskId>* started, std::vector<TaskFailure>* failed) {
  for (auto& failure : pending_failures_) failed->push_back(std::move(failure));
  pending_failures_.clear();
  for (TaskId task : ready_external_) {
    if (tasks_[task].phase != Phase::kQueued) continue;  // canceled meanwhile
    tasks_[task].phase = Phase::kRunning;
    --waiting_;
    ++running_count_;
    started->push_back(task);
  }
  ready_external_.clear();
  int64_t blocked_head = -1;  // the first task in order that did not fit
  // The groups in order. UpdateOrder moves the visited group's key forward (its first task
  // changed) or removes it; other iterators of the set stay valid, and a group met again later in
  // the same pass only tries its (new) first task once more.
  for (auto it = order_.begin(); it != order_.end();) {
    // Every task needs a core: with none free (outside the reservation) only the head could
    // still start, and it has had its turn. This keeps a pass on a full pilot short however
    // many groups wait.
    if (blocked_head >= 0 && resources_.available_cores() == 0) break;
    const uint32_t index = std::get<2>(*it);
    ++it;
    Group& group = groups_[index];
    while (!group.tasks.empty()) {
      const TaskId task = group.tasks.front();
      if (tasks_[task].phase != Phase::kQueued) {
        group.tasks.pop_front();
        continue;
      }
      const bool is_head = blocked_head < 0;
      if (is_head && reservation_task_ >= 0 && reservation_task_ != static_cast<int64_t>(task)) {
        // The task that is first now comes before the holder (a higher priority, or ready
        // earlier): the reservation is its to make, and it may use those nodes at once.
        DropReservation();
      }
      if (!is_head && options_.reserve_for_head && reservation_task_ != blocked_head) {
        // `task` would start in front of the blocked head: reserve for the head first.
        MakeReservation(static_cast<TaskId>(blocked_head));
      }
      if (TryStart(task, is_head && reservation_task_ == static_cast<int64_t>(task))) {
        group.tasks.pop_front();
        started->push_back(task);
        continue;
      }
      if (is_head) blocked_head = task;
      break;
    }
    UpdateOrder(index);
  }
}

Status Scheduler::Finish(TaskId task, TaskState final_state) {
  if (task >= tasks_.size() || tasks_[task].phase != Phase::kRunning) {
    return Status::Invalid("task {} is not running", TaskName(task));
  }
  if (!IsFinal(final_state)) {
    return Status::Invalid("task {}: {} is not a final state", TaskName(task),
                           TaskStateName(final_state));
  }
  if (!tasks_[task].external) {
    const uint32_t slot = tasks_[task].slot;
    resources_.Release(running_[slot]);
    running_[slot] = Allocation();
    free_slots_.push_back(slot);
  }
  --running_count_;
  if (final_state == TaskState::kDone) {
    tasks_[task].phase = Phase::kDone;
    for (int32_t edge = tasks_[task].first_edge; edge >= 0; edge = edges_[edge].next) {
      const TaskId dependent = edges_[edge].dependent;
      if (--tasks_[dependent].unmet == 0 && tasks_[dependent].phase == Phase::kBlocked)
        MakeReady(dependent);
    }
  } else {
    tasks_[task].phase = final_state == TaskState::kCanceled ? Phase::kCanceled : Phase::kFailed;
    FailDependents(task, final_state);
  }
  return Status::OK();
}

Status Scheduler::Cancel(TaskId task, std::string_view reason) {
  if (task >= tasks_.size()) return Status::Invalid("no task #{}", task);
  if (tasks_[task].phase == Phase::kRunning) {
    return Status::Invalid("task {} is running: its executor stops it", TaskName(task));
  }
  if (!is_waiting(task)) return Status::Invalid("task {} has already ended", TaskName(task));
  FailUnstarted(task, TaskState::kCanceled, std::string(reason));
  return Status::OK();
}

}  // namespace deeprc::runtime
