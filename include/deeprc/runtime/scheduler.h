#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/resource_manager.h"
#include "deeprc/runtime/states.h"

namespace deeprc::runtime {

// Tasks are numbered in submission order from 0.
using TaskId = uint32_t;

// What the scheduler needs of a task.
struct TaskRequest {
  ResourceRequest resources;
  // Higher first.
  int32_t priority = 0;
  // Tasks that must be DONE first: ids already submitted, or ids of the same batch (the batch's
  // first task gets `next_task_id()`, the next one that + 1, ...).
  std::vector<TaskId> after;
  // Runs outside the scheduler's slots (a function task on a worker pool): it only waits for its
  // dependencies, and Schedule reports it started as soon as they are DONE.
  bool external = false;
};

struct TaskFailure {
  TaskId task;
  // FAILED or CANCELED.
  TaskState state;
  std::string reason;
};

struct SchedulerOptions {
  // When the first task in priority order does not fit and a later one is about to start in
  // front of it (backfill), the first task reserves nodes so that it cannot wait forever:
  // nothing else starts on them, and it starts there as soon as they have drained.
  bool reserve_for_head = true;
};

// Places tasks' ranks onto free slots of a ResourceManager.
//
// Order: higher priority first, then the order in which tasks became ready. Tasks of one
// priority and one shape (ranks, cores, GPUs, memory) wait in one FIFO queue; a pass visits the
// queues by (priority, oldest task) and takes from each until its first task does not fit (the
// rest of that queue, the same shape, cannot fit either) — so a pass costs the number of queues
// plus the number of tasks started, not the number of tasks waiting.
//
// Backfill: tasks behind one that does not fit may start in the holes, but the first blocked task
// reserves nodes (see SchedulerOptions) so that it is not starved.
//
// Dependencies: a task is ready when all of `after` are DONE; when one ends FAILED or CANCELED,
// its dependents (and theirs) fail with a reason that names it. External tasks (function tasks,
// TaskDescription mode function) take part in dependencies both ways but hold no slots. Tasks that can never fit the
// pilot fail at submission with the reason. Submission rejects unknown ids and cycles.
//
// Not thread-safe: one thread (the agent's scheduler loop, or the simulation) drives it.
class Scheduler {
 public:
  Scheduler(ResourceManager resources, SchedulerOptions options = {});

  TaskId next_task_id() const { return static_cast<TaskId>(tasks_.size()); }

  // Adds a batch of tasks; returns the id of the first. On an invalid batch (an `after` id that
  // does not exist, a task waiting for itself, a cycle) nothing is added.
  Result<TaskId> Submit(std::span<const TaskRequest> batch);
  // The same for task descriptions, whose `after` names uids (of this batch or of tasks
  // submitted before through this function). Tasks are given ids in order.
  Result<TaskId> Submit(std::span<const TaskDescription> tasks);

  // Starts what fits now. Appends the tasks that got resources to `started` (their slots:
  // allocation()) and the tasks that ended without running (impossible requests, failed
  // dependencies, cancellations) to `failed`.
  void Schedule(std::vector<TaskId>* started, std::vector<TaskFailure>* failed);

  // A started task ended: its slots are freed. DONE makes its dependents ready when it was their
  // last; FAILED or CANCELED fails them (reported by the next Schedule).
  Status Finish(TaskId task, TaskState final_state);

  // Cancels a task that has not started (a running task is stopped by its executor, then
  // Finish(CANCELED)). Its dependents fail.
  Status Cancel(TaskId task, std::string_view reason = "canceled");

  // The slots of a running task (not of an external one).
  const Allocation& allocation(TaskId task) const { return running_[tasks_[task].slot]; }
  const ResourceManager& resources() const { return resources_; }
  // The task's uid when it was submitted as a description, else "#<id>".
  std::string TaskName(TaskId task) const;
  // True when `task` has not started and is not finished.
  bool is_waiting(TaskId task) const;

  int64_t waiting_count() const { return waiting_; }  // not started, not finished
  int64_t running_count() const { return running_count_; }
  // The task holding the reservation, or -1.
  int64_t reservation_holder() const { return reservation_task_; }
  const std::vector<int32_t>& reserved_nodes() const { return reserved_nodes_; }

 private:
  enum class Phase : uint8_t { kBlocked, kQueued, kRunning, kDone, kFailed, kCanceled };
  // (−priority, first task, group): the order in which a pass visits the groups.
  using OrderKey = std::tuple<int64_t, TaskId, uint32_t>;
  // A queue of tasks of one priority and one shape.
  struct Group {
    int32_t priority;
    uint32_t shape;
    std::deque<TaskId> tasks;
    bool in_order = false;
    OrderKey key;
  };
  struct Shape {
    ResourceRequest request;
    Status fits;  // CheckFits against the empty pilot
  };
  struct RequestHash {
    size_t operator()(const ResourceRequest& request) const;
  };
  struct Edge {
    TaskId dependent;
    int32_t next;
  };

  uint32_t ShapeOf(const ResourceRequest& request);
  void Enqueue(TaskId task);
  // Its dependencies are met: queued for slots, or (external) started by the next Schedule.
  void MakeReady(TaskId task);
  void UpdateOrder(uint32_t group);
  // Ends a task that has not run, and its dependents; queued for the next Schedule.
  void FailUnstarted(TaskId task, TaskState state, std::string reason);
  // Fails the tasks waiting for `task`, which ended in `state`.
  void FailDependents(TaskId task, TaskState state);
  bool TryStart(TaskId task, bool with_reservation);
  void MakeReservation(TaskId head);
  void DropReservation();

  ResourceManager resources_;
  SchedulerOptions options_;

  // What the scheduler keeps of a task: 24 bytes, one cache line access when a task ends.
  struct TaskRecord {
    Phase phase = Phase::kBlocked;
    int32_t priority = 0;
    uint32_t shape = 0;
    uint32_t unmet = 0;       // predecessors not DONE yet
    int32_t first_edge = -1;  // into edges_, -1 when nobody waits for the task
    uint32_t slot = 0;        // into running_ while running
    bool external = false;
  };
  std::vector<TaskRecord> tasks_;  // by TaskId
  std::vector<Edge> edges_;

  std::vector<Shape> shapes_;
  std::unordered_map<ResourceRequest, uint32_t, RequestHash> shape_index_;
  uint32_t last_shape_ = UINT32_MAX;  // most submissions repeat the shape before
  std::vector<Group> groups_;
  std::unordered_map<uint64_t, uint32_t> group_index_;  // (priority, shape) → group
  std::set<OrderKey> order_;

  std::vector<Allocation> running_;
  std::vector<uint32_t> free_slots_;

  std::vector<TaskFailure> pending_failures_;
  std::vector<TaskId> ready_external_;  // started by the next Schedule
  std::vector<std::string> uids_;  // only for tasks submitted as descriptions
  std::unordered_map<std::string, TaskId> uid_index_;

  int64_t reservation_task_ = -1;
  std::vector<int32_t> reserved_nodes_;
  int64_t waiting_ = 0;
  int64_t running_count_ = 0;
};

}  // namespace deeprc::runtime
