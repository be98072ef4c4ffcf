#include "deeprc/runtime/scheduler.h"

#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "deeprc/runtime/task_file.h"
#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

Scheduler MakeScheduler(std::vector<NodeResources> nodes, SchedulerOptions options = {}) {
  auto resources = ResourceManager::Make(std::move(nodes));
  EXPECT_TRUE(resources.ok()) << resources.status().ToString();
  return Scheduler(std::move(resources).ValueOrDie(), options);
}

TaskRequest Cores(int32_t cores, int32_t priority = 0, std::vector<TaskId> after = {}) {
  TaskRequest request;
  request.resources.cores_per_rank = cores;
  request.priority = priority;
  request.after = std::move(after);
  return request;
}

TaskId SubmitOne(Scheduler& scheduler, const TaskRequest& request) {
  auto first = scheduler.Submit(std::span<const TaskRequest>(&request, 1));
  EXPECT_TRUE(first.ok()) << first.status().ToString();
  return first.ok() ? *first : 0;
}

struct Pass {
  std::vector<TaskId> started;
  std::vector<TaskFailure> failed;
};

Pass SchedulePass(Scheduler& scheduler) {
  Pass pass;
  scheduler.Schedule(&pass.started, &pass.failed);
  return pass;
}

TEST(SchedulerTest, PlacesSingleCoreTasksOnDistinctCoresUntilFull) {
  Scheduler scheduler = MakeScheduler({{4, 0, 0}, {4, 0, 0}});
  for (int i = 0; i < 9; ++i) SubmitOne(scheduler, Cores(1));
  Pass pass = SchedulePass(scheduler);
  ASSERT_EQ(pass.started.size(), 8u);
  EXPECT_TRUE(pass.failed.empty());
  std::set<std::pair<int32_t, int32_t>> used;
  for (TaskId task : pass.started) {
    const Allocation& allocation = scheduler.allocation(task);
    ASSERT_EQ(allocation.ranks(), 1);
    EXPECT_TRUE(used.insert({allocation.node(0), allocation.cores(0)[0]}).second);
  }
  EXPECT_EQ(scheduler.resources().available_cores(), 0);
  EXPECT_EQ(scheduler.waiting_count(), 1);
  // Best fit: the first node is filled before the second is touched.
  EXPECT_EQ(scheduler.allocation(pass.started[0]).node(0),
            scheduler.allocation(pass.started[3]).node(0));
  ASSERT_OK(scheduler.Finish(pass.started[5], TaskState::kDone));
  pass = SchedulePass(scheduler);
  ASSERT_EQ(pass.started.size(), 1u);
  EXPECT_EQ(pass.started[0], 8u);
}

TEST(SchedulerTest, MultiRankTaskSpansNodesWithEachRankOnOneNode) {
  Scheduler scheduler = MakeScheduler({{4, 2, 0}, {4, 2, 0}, {4, 2, 0}});
  TaskRequest request = Cores(3);
  request.resources.ranks = 3;
  request.resources.gpus_per_rank = 1;
  const TaskId task = SubmitOne(scheduler, request);
  Pass pass = SchedulePass(scheduler);
  ASSERT_EQ(pass.started, std::vector<TaskId>{task});
  const Allocation& allocation = scheduler.allocation(task);
  ASSERT_EQ(allocation.ranks(), 3);
  std::set<int32_t> nodes;
  for (int32_t rank = 0; rank < 3; ++rank) {
    nodes.insert(allocation.node(rank));
    EXPECT_EQ(allocation.cores(rank).size(), 3u);
    EXPECT_EQ(allocation.gpus(rank).size(), 1u);
  }
  EXPECT_EQ(nodes.size(), 3u);  // 3 cores per rank: one rank per node
  // A task that fits one node stays on one node.
  TaskRequest packed = Cores(1);
  packed.resources.ranks = 3;
  Scheduler other = MakeScheduler({{4, 0, 0}, {4, 0, 0}});
  const TaskId packed_task = SubmitOne(other, packed);
  SchedulePass(other);
  const Allocation& packed_allocation = other.allocation(packed_task);
  EXPECT_EQ(packed_allocation.node(0), packed_allocation.node(2));
}

TEST(SchedulerTest, ImpossibleTasksFailAtOnceWithTheReason) {
  Scheduler scheduler = MakeScheduler({{4, 0, 1000}, {4, 0, 1000}});
  SubmitOne(scheduler, Cores(8));
  TaskRequest gpu = Cores(1);
  gpu.resources.gpus_per_rank = 1;
  SubmitOne(scheduler, gpu);
  TaskRequest wide = Cores(4);
  wide.resources.ranks = 3;
  SubmitOne(scheduler, wide);
  TaskRequest memory = Cores(1);
  memory.resources.mem_per_rank = 2000;
  SubmitOne(scheduler, memory);
  const TaskId fine = SubmitOne(scheduler, Cores(4));
  Pass pass = SchedulePass(scheduler);
  EXPECT_EQ(pass.started, std::vector<TaskId>{fine});
  ASSERT_EQ(pass.failed.size(), 4u);
  EXPECT_EQ(pass.failed[0].reason, "needs 8 cores per rank, the largest node has 4");
  EXPECT_EQ(pass.failed[1].reason, "needs 1 GPU per rank, the largest node has 0");
  EXPECT_EQ(pass.failed[2].reason,
            "needs 3 ranks of 4 cores, the pilot holds at most 2 such ranks");
  EXPECT_EQ(pass.failed[3].reason,
            "needs 2000 bytes of memory per rank, the largest node has 1000");
  for (const auto& failure : pass.failed) EXPECT_EQ(failure.state, TaskState::kFailed);
  EXPECT_EQ(scheduler.waiting_count(), 0);
}

TEST(SchedulerTest, HigherPriorityStartsFirst) {
  Scheduler scheduler = MakeScheduler({{1, 0, 0}});
  const TaskId running = SubmitOne(scheduler, Cores(1));
  ASSERT_EQ(SchedulePass(scheduler).started.size(), 1u);
  const TaskId low = SubmitOne(scheduler, Cores(1, 0));
  const TaskId high = SubmitOne(scheduler, Cores(1, 5));
  const TaskId middle = SubmitOne(scheduler, Cores(1, 2));
  EXPECT_TRUE(SchedulePass(scheduler).started.empty());
  std::vector<TaskId> order;
  TaskId previous = running;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(scheduler.Finish(previous, TaskState::kDone));
    Pass pass = SchedulePass(scheduler);
    ASSERT_EQ(pass.started.size(), 1u);
    order.push_back(pass.started[0]);
    previous = pass.started[0];
  }
  EXPECT_EQ(order, (std::vector<TaskId>{high, middle, low}));
}

TEST(SchedulerTest, SmallTasksBackfillWhileTheBlockedHeadReservesNodes) {
  Scheduler scheduler = MakeScheduler({{4, 0, 0}, {4, 0, 0}});
  const TaskId a = SubmitOne(scheduler, Cores(3));
  const TaskId c = SubmitOne(scheduler, Cores(3));
  ASSERT_EQ(SchedulePass(scheduler).started.size(), 2u);
  ASSERT_NE(scheduler.allocation(a).node(0), scheduler.allocation(c).node(0));
  const TaskId big = SubmitOne(scheduler, Cores(4));
  const TaskId small1 = SubmitOne(scheduler, Cores(1));
  const TaskId small2 = SubmitOne(scheduler, Cores(1));
  Pass pass = SchedulePass(scheduler);
  // small1 starts in front of the big task (backfill), on the node the big one did not reserve.
  EXPECT_EQ(pass.started, std::vector<TaskId>{small1});
  ASSERT_EQ(scheduler.reservation_holder(), static_cast<int64_t>(big));
  ASSERT_EQ(scheduler.reserved_nodes().size(), 1u);
  const int32_t reserved = scheduler.reserved_nodes()[0];
  EXPECT_NE(scheduler.allocation(small1).node(0), reserved);
  // The reserved node drains: its core goes to nobody but the big task.
  const TaskId on_reserved = scheduler.allocation(a).node(0) == reserved ? a : c;
  ASSERT_OK(scheduler.Finish(on_reserved, TaskState::kDone));
  pass = SchedulePass(scheduler);
  EXPECT_EQ(pass.started, std::vector<TaskId>{big});
  EXPECT_EQ(scheduler.allocation(big).node(0), reserved);
  EXPECT_EQ(scheduler.reservation_holder(), -1);
  EXPECT_TRUE(scheduler.is_waiting(small2));
  ASSERT_OK(scheduler.Finish(small1, TaskState::kDone));
  EXPECT_EQ(SchedulePass(scheduler).started, std::vector<TaskId>{small2});
}

// A stream of small tasks keeps one node busy; the whole-node task must still start. Returns the
// round in which it started, or -1.
int RoundTheBigTaskStarts(SchedulerOptions options) {
  Scheduler scheduler = MakeScheduler({{4, 0, 0}}, options);
  std::deque<TaskId> running;
  for (int i = 0; i < 4; ++i) SubmitOne(scheduler, Cores(1));
  const TaskId big = SubmitOne(scheduler, Cores(4));
  for (int round = 0; round < 50; ++round) {
    SubmitOne(scheduler, Cores(1));
    SubmitOne(scheduler, Cores(1));
    Pass pass = SchedulePass(scheduler);
    for (TaskId task : pass.started) {
      if (task == big) return round;
      running.push_back(task);
    }
    if (running.empty()) return -1;
    EXPECT_OK(scheduler.Finish(running.front(), TaskState::kDone));
    running.pop_front();
  }
  return -1;
}

TEST(SchedulerTest, ReservationKeepsTheBigTaskFromStarving) {
  const int round = RoundTheBigTaskStarts({});
  EXPECT_GE(round, 0);
  EXPECT_LE(round, 5);
  SchedulerOptions no_reservation;
  no_reservation.reserve_for_head = false;
  EXPECT_EQ(RoundTheBigTaskStarts(no_reservation), -1);  // what the reservation prevents
}

TEST(SchedulerTest, DependentsWaitForDoneAndFailWithTheNameOfTheFailedTask) {
  Scheduler scheduler = MakeScheduler({{4, 0, 0}});
  std::vector<TaskDescription> tasks(4);
  for (size_t i = 0; i < tasks.size(); ++i) tasks[i].executable = "/bin/true";
  tasks[0].uid = "a";
  tasks[1].uid = "b";
  tasks[1].after = {"a"};
  tasks[2].uid = "c";
  tasks[2].after = {"b"};
  tasks[3].uid = "d";
  ASSERT_OK_AND_ASSIGN(TaskId first, scheduler.Submit(std::span<const TaskDescription>(tasks)));
  Pass pass = SchedulePass(scheduler);
  EXPECT_EQ(pass.started, (std::vector<TaskId>{first, first + 3}));
  ASSERT_OK(scheduler.Finish(first, TaskState::kDone));
  pass = SchedulePass(scheduler);
  EXPECT_EQ(pass.started, std::vector<TaskId>{first + 1});
  // A task submitted later may wait for one that is running.
  TaskDescription e;
  e.uid = "e";
  e.executable = "/bin/true";
  e.after = {"b", "d"};
  ASSERT_OK(scheduler.Submit(std::span<const TaskDescription>(&e, 1)).status());
  ASSERT_OK(scheduler.Finish(first + 1, TaskState::kFailed));
  pass = SchedulePass(scheduler);
  EXPECT_TRUE(pass.started.empty());
  ASSERT_EQ(pass.failed.size(), 2u);
  std::map<std::string, std::string> reasons;
  for (const auto& failure : pass.failed) {
    EXPECT_EQ(failure.state, TaskState::kFailed);
    reasons[scheduler.TaskName(failure.task)] = failure.reason;
  }
  EXPECT_EQ(reasons["c"], "dependency 'b' failed");
  EXPECT_EQ(reasons["e"], "dependency 'b' failed");
  // Waiting for a task that already failed fails at once.
  TaskDescription f = e;
  f.uid = "f";
  f.after = {"c"};
  ASSERT_OK(scheduler.Submit(std::span<const TaskDescription>(&f, 1)).status());
  pass = SchedulePass(scheduler);
  ASSERT_EQ(pass.failed.size(), 1u);
  EXPECT_EQ(pass.failed[0].reason, "dependency 'c' failed");
}

TEST(SchedulerTest, CancelWhileQueuedFailsDependents) {
  Scheduler scheduler = MakeScheduler({{1, 0, 0}});
  const TaskId running = SubmitOne(scheduler, Cores(1));
  ASSERT_EQ(SchedulePass(scheduler).started.size(), 1u);
  const TaskId queued = SubmitOne(scheduler, Cores(1));
  const TaskId dependent = SubmitOne(scheduler, Cores(1, 0, {queued}));
  const TaskId other = SubmitOne(scheduler, Cores(1));
  ASSERT_OK(scheduler.Cancel(queued));
  EXPECT_FALSE(scheduler.Cancel(queued).ok());
  EXPECT_FALSE(scheduler.Cancel(running).ok());  // running: the executor stops it
  Pass pass = SchedulePass(scheduler);
  ASSERT_EQ(pass.failed.size(), 2u);
  EXPECT_EQ(pass.failed[0].task, queued);
  EXPECT_EQ(pass.failed[0].state, TaskState::kCanceled);
  EXPECT_EQ(pass.failed[1].task, dependent);
  EXPECT_EQ(pass.failed[1].reason, "dependency '#1' was canceled");
  ASSERT_OK(scheduler.Finish(running, TaskState::kCanceled));
  EXPECT_EQ(SchedulePass(scheduler).started, std::vector<TaskId>{other});
}

TEST(SchedulerTest, SubmissionRejectsCyclesAndUnknownTasks) {
  Scheduler scheduler = MakeScheduler({{2, 0, 0}});
  std::vector<TaskRequest> batch = {Cores(1, 0, {2}), Cores(1, 0, {0}), Cores(1, 0, {1})};
  auto cycle = scheduler.Submit(std::span<const TaskRequest>(batch));
  ASSERT_FALSE(cycle.ok());
  EXPECT_EQ(cycle.status().message().rfind("dependency cycle: ", 0), 0u)
      << cycle.status().message();
  EXPECT_EQ(scheduler.next_task_id(), 0u);  // nothing added
  std::vector<TaskRequest> unknown = {Cores(1, 0, {7})};
  EXPECT_EQ(scheduler.Submit(std::span<const TaskRequest>(unknown)).status().message(),
            "tasks[0].after: no task #7");
  std::vector<TaskRequest> no_cores = {Cores(0)};
  EXPECT_EQ(scheduler.Submit(std::span<const TaskRequest>(no_cores)).status().message(),
            "tasks[0]: ranks and cores_per_rank must be positive, gpus_per_rank and mem_per_rank "
            "not negative (found 1, 0, 0, 0)");
  std::vector<TaskRequest> self = {Cores(1, 0, {0})};
  EXPECT_EQ(scheduler.Submit(std::span<const TaskRequest>(self)).status().message(),
            "tasks[0].after: task #0 waits for itself");

  std::vector<TaskDescription> tasks(2);
  tasks[0].uid = "x";
  tasks[0].executable = "a";
  tasks[0].after = {"y"};
  tasks[1].uid = "y";
  tasks[1].executable = "a";
  tasks[1].after = {"x"};
  EXPECT_EQ(scheduler.Submit(std::span<const TaskDescription>(tasks)).status().message(),
            "dependency cycle: y → x → y");
  tasks[1].after = {"nobody"};
  EXPECT_EQ(scheduler.Submit(std::span<const TaskDescription>(tasks)).status().message(),
            "tasks[1].after: unknown task 'nobody'");
  EXPECT_EQ(scheduler.next_task_id(), 0u);
}

TEST(SchedulerTest, RunsATaskFile) {
  ASSERT_OK_AND_ASSIGN(TaskFile file, ParseTaskFileText(R"(
pilot: {nodes: 2, cores_per_node: 2, gpus_per_node: 1}
tasks:
  - {name: prepare, executable: /bin/true}
  - {name: train, executable: /bin/true, ranks: 2, gpus_per_rank: 1, after: [prepare]}
  - {name: huge, executable: /bin/true, cores_per_rank: 3}
  - {name: report, executable: /bin/true, after: [train, huge]}
)",
                                                        "run.yaml"));
  ASSERT_OK_AND_ASSIGN(auto nodes, ResolvePilotNodes(file.pilot, 1));
  Scheduler scheduler = MakeScheduler(nodes);
  ASSERT_OK_AND_ASSIGN(TaskId first,
                       scheduler.Submit(std::span<const TaskDescription>(file.tasks)));
  Pass pass = SchedulePass(scheduler);
  EXPECT_EQ(pass.started, std::vector<TaskId>{first});
  ASSERT_EQ(pass.failed.size(), 2u);
  EXPECT_EQ(scheduler.TaskName(pass.failed[0].task), "huge");
  EXPECT_EQ(pass.failed[0].reason, "needs 3 cores per rank, the largest node has 2");
  EXPECT_EQ(scheduler.TaskName(pass.failed[1].task), "report");
  EXPECT_EQ(pass.failed[1].reason, "dependency 'huge' failed");
  ASSERT_OK(scheduler.Finish(first, TaskState::kDone));
  pass = SchedulePass(scheduler);
  ASSERT_EQ(pass.started, std::vector<TaskId>{first + 1});
  const Allocation& train = scheduler.allocation(first + 1);
  EXPECT_NE(train.node(0), train.node(1));  // one GPU per node: the ranks take both nodes
}

// Random pilots and random tasks; after every step the slots the running tasks hold are checked
// against the capacity from scratch: no core or GPU held twice, no node over its memory, the
// manager's free counts equal to what is really free, and nothing stuck (an idle pilot with
// tasks that fit but wait).
TEST(SchedulerTest, RandomizedNeverOverAllocates) {
  std::mt19937_64 random(42);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<NodeResources> nodes(1 + random() % 5);
    for (auto& node : nodes) {
      node.cores = 1 + static_cast<int32_t>(random() % 8);
      node.gpus = static_cast<int32_t>(random() % 4);
      node.memory = random() % 2 == 0 ? 0 : 100 + static_cast<int64_t>(random() % 400);
    }
    Scheduler scheduler = MakeScheduler(nodes);
    std::vector<TaskRequest> batch;
    const int task_count = 200;
    for (int i = 0; i < task_count; ++i) {
      TaskRequest request;
      request.resources.ranks = 1 + static_cast<int32_t>(random() % 3);
      request.resources.cores_per_rank = 1 + static_cast<int32_t>(random() % 4);
      request.resources.gpus_per_rank = random() % 3 == 0 ? 1 + random() % 2 : 0;
      request.resources.mem_per_rank = random() % 4 == 0 ? static_cast<int64_t>(random() % 200) : 0;
      request.priority = static_cast<int32_t>(random() % 3);
      if (i > 0 && random() % 4 == 0) request.after.push_back(static_cast<TaskId>(random() % i));
      batch.push_back(request);
    }
    ASSERT_OK(scheduler.Submit(std::span<const TaskRequest>(batch)).status());
    std::vector<TaskId> running;
    int64_t ended = 0;
    for (int step = 0; step < 2000 && ended < task_count; ++step) {
      Pass pass = SchedulePass(scheduler);
      ended += static_cast<int64_t>(pass.failed.size());
      running.insert(running.end(), pass.started.begin(), pass.started.end());
      // The invariant, from scratch.
      std::set<std::pair<int32_t, int32_t>> cores, gpus;
      std::vector<int64_t> memory(nodes.size(), 0);
      for (TaskId task : running) {
        const Allocation& allocation = scheduler.allocation(task);
        const ResourceRequest& request = batch[task].resources;
        ASSERT_EQ(allocation.ranks(), request.ranks);
        for (int32_t rank = 0; rank < allocation.ranks(); ++rank) {
          const int32_t node = allocation.node(rank);
          ASSERT_EQ(allocation.cores(rank).size(), static_cast<size_t>(request.cores_per_rank));
          ASSERT_EQ(allocation.gpus(rank).size(), static_cast<size_t>(request.gpus_per_rank));
          for (int32_t core : allocation.cores(rank)) {
            ASSERT_LT(core, nodes[node].cores);
            ASSERT_TRUE(cores.insert({node, core}).second) << "core given twice";
            ASSERT_FALSE(scheduler.resources().is_core_free(node, core));
          }
          for (int32_t gpu : allocation.gpus(rank)) {
            ASSERT_LT(gpu, nodes[node].gpus);
            ASSERT_TRUE(gpus.insert({node, gpu}).second) << "GPU given twice";
            ASSERT_FALSE(scheduler.resources().is_gpu_free(node, gpu));
          }
          memory[node] += request.mem_per_rank;
        }
      }
      for (size_t node = 0; node < nodes.size(); ++node) {
        int32_t used_cores = 0, used_gpus = 0;
        for (const auto& [n, c] : cores) used_cores += n == static_cast<int32_t>(node);
        for (const auto& [n, g] : gpus) used_gpus += n == static_cast<int32_t>(node);
        ASSERT_EQ(scheduler.resources().free_cores(node), nodes[node].cores - used_cores);
        ASSERT_EQ(scheduler.resources().free_gpus(node), nodes[node].gpus - used_gpus);
        if (nodes[node].memory > 0) {
          ASSERT_LE(memory[node], nodes[node].memory);
          ASSERT_EQ(scheduler.resources().free_memory(node), nodes[node].memory - memory[node]);
        }
      }
      if (running.empty()) {
        ASSERT_EQ(scheduler.waiting_count(), 0) << "tasks wait on an idle pilot";
        break;
      }
      // End a random third of the running tasks, some of them FAILED or CANCELED.
      std::shuffle(running.begin(), running.end(), random);
      const size_t finish = 1 + running.size() / 3;
      for (size_t k = 0; k < finish; ++k) {
        const uint64_t roll = random() % 10;
        const TaskState state = roll == 0   ? TaskState::kFailed
                                : roll == 1 ? TaskState::kCanceled
                                            : TaskState::kDone;
        ASSERT_OK(scheduler.Finish(running.back(), state));
        running.pop_back();
        ++ended;
      }
      if (random() % 5 == 0) {
        const TaskId victim = static_cast<TaskId>(random() % task_count);
        if (scheduler.is_waiting(victim)) ASSERT_OK(scheduler.Cancel(victim));
      }
    }
    EXPECT_EQ(ended, task_count) << "trial " << trial;
    EXPECT_EQ(scheduler.resources().available_cores(), scheduler.resources().total_cores());
    EXPECT_EQ(scheduler.resources().available_gpus(), scheduler.resources().total_gpus());
  }
}

}  // namespace
}  // namespace deeprc::runtime
