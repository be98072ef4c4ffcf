#include "deeprc/runtime/simulation.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <queue>
#include <limits>
#include <numeric>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "deeprc/runtime/workflow_trace.h"
#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

struct SimTask {
  ResourceRequest resources;
  double duration;
  std::vector<TaskId> after;
  int32_t priority = 0;
};

Workload ListWorkload(const std::vector<SimTask>& tasks) {
  Workload workload;
  workload.count = static_cast<int64_t>(tasks.size());
  workload.task = [&tasks](int64_t index, TaskRequest* request, double* duration) {
    request->resources = tasks[index].resources;
    request->after = tasks[index].after;
    request->priority = tasks[index].priority;
    *duration = tasks[index].duration;
  };
  return workload;
}

ResourceRequest OneCore() { return ResourceRequest{}; }

TEST(SimulationTest, TwoCoresThreeTasks) {
  // 0 s: t0 (3 s) and t1 (2 s) start; 2 s: t1 ends, t2 (2 s) starts; 3 s: t0 ends; 4 s: t2 ends.
  const std::vector<SimTask> tasks = {{OneCore(), 3, {}}, {OneCore(), 2, {}}, {OneCore(), 2, {}}};
  ASSERT_OK_AND_ASSIGN(auto result, Simulate({{2, 0, 0}}, ListWorkload(tasks)));
  EXPECT_EQ(result.makespan_s, 4);
  EXPECT_EQ(result.critical_path_s, 3);
  EXPECT_EQ(result.work_bound_s, 3.5);
  // Three single-core tasks on two cores: one core runs two of them, at least 2 + 2 s.
  EXPECT_EQ(result.window_bound_s, 4);
  EXPECT_EQ(result.lower_bound_s, 4);
  EXPECT_DOUBLE_EQ(result.utilization, 7.0 / 8.0);
  EXPECT_EQ(result.done, 3);
  EXPECT_EQ(result.decisions, 3);
  EXPECT_GT(result.decisions_per_s, 0);
}

TEST(SimulationTest, ReadyTasksRunInTheOrderTheyBecameReady) {
  // One core. a (2 s) then b (3 s) after a; c (1 s) is ready from the start, so it runs before
  // b: a 0–2, c 2–3, b 3–6.
  const std::vector<SimTask> tasks = {{OneCore(), 2, {}}, {OneCore(), 3, {0}}, {OneCore(), 1, {}}};
  ASSERT_OK_AND_ASSIGN(auto result, Simulate({{1, 0, 0}}, ListWorkload(tasks)));
  EXPECT_EQ(result.makespan_s, 6);
  EXPECT_EQ(result.critical_path_s, 5);
  EXPECT_EQ(result.lower_bound_s, 6);
  EXPECT_EQ(result.utilization, 1.0);
}

TEST(SimulationTest, MultiRankGpuTaskHoldsBothNodes) {
  // Two nodes of 2 cores and 1 GPU. g (2 ranks × 1 core × 1 GPU, 5 s) takes both GPUs; the two
  // 1-GPU tasks wait for it and then run side by side: makespan 6.
  ResourceRequest wide{2, 1, 1, 0};
  ResourceRequest gpu{1, 1, 1, 0};
  const std::vector<SimTask> tasks = {
      {wide, 5, {}}, {gpu, 1, {}}, {gpu, 1, {}}, {OneCore(), 4, {}}};
  ASSERT_OK_AND_ASSIGN(auto result, Simulate({{2, 1, 0}, {2, 1, 0}}, ListWorkload(tasks)));
  EXPECT_EQ(result.makespan_s, 6);
  // GPU-seconds 12 over 2 GPUs: the work bound is 6, which the schedule reaches.
  EXPECT_EQ(result.lower_bound_s, 6);
  EXPECT_DOUBLE_EQ(result.gpu_utilization, 1.0);
  EXPECT_DOUBLE_EQ(result.utilization, (10.0 + 2 + 4) / (4 * 6));
}

TEST(SimulationTest, ImpossibleTaskFailsInsteadOfHanging) {
  const std::vector<SimTask> tasks = {
      {ResourceRequest{1, 8, 0, 0}, 1, {}}, {OneCore(), 1, {0}}, {OneCore(), 2, {}}};
  ASSERT_OK_AND_ASSIGN(auto result, Simulate({{4, 0, 0}}, ListWorkload(tasks)));
  EXPECT_EQ(result.failed, 2);  // the impossible task and the one waiting for it
  EXPECT_EQ(result.done, 1);
  EXPECT_EQ(result.makespan_s, 2);
}

TEST(SimulationTest, FullWavesOfSingleCoreTasksFillEveryCore) {
  SyntheticWorkloadOptions options;
  options.tasks = 10 * 16 * 10;  // ten waves on 10 nodes × 16 cores
  options.duration_s = 10;
  ASSERT_OK_AND_ASSIGN(Workload workload, SyntheticWorkload(options));
  ASSERT_OK_AND_ASSIGN(auto result, Simulate(std::vector<NodeResources>(10, {16, 0, 0}), workload));
  EXPECT_EQ(result.makespan_s, 100);
  EXPECT_EQ(result.lower_bound_s, 100);
  EXPECT_EQ(result.utilization, 1.0);
  EXPECT_EQ(result.decisions, options.tasks);
}

// Single-core tasks of one priority start in submission order on whichever core frees first:
// Graham's list scheduling, computed here with a heap of core free times, must give the same
// makespan for random durations (many distinct completion times, some equal).
TEST(SimulationTest, MatchesListSchedulingOnRandomDurations) {
  std::mt19937_64 random(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int cores = 1 + static_cast<int>(random() % 16);
    std::vector<SimTask> tasks(1 + random() % 500);
    for (auto& task : tasks) {
      task.resources = OneCore();
      task.duration = random() % 3 == 0 ? 1.0 + random() % 4 : (random() % 10000) / 997.0;
    }
    std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
    for (int core = 0; core < cores; ++core) free_at.push(0);
    double makespan = 0;
    for (const auto& task : tasks) {
      const double end = free_at.top() + task.duration;
      free_at.pop();
      free_at.push(end);
      makespan = std::max(makespan, end);
    }
    ASSERT_OK_AND_ASSIGN(auto result, Simulate({{cores, 0, 0}}, ListWorkload(tasks)));
    EXPECT_EQ(result.makespan_s, makespan) << "trial " << trial;
    EXPECT_EQ(result.done, static_cast<int64_t>(tasks.size()));
  }
}

TEST(SimulationTest, SyntheticMixIsDeterministicAndFollowsTheWeights) {
  SyntheticWorkloadOptions options;
  options.tasks = 20000;
  ASSERT_OK_AND_ASSIGN(options.sizes, ParseSizeMix("1:6,8:3,64:1"));
  options.gpu_fraction = 0.25;
  options.duration_spread = 0.5;
  options.seed = 7;
  ASSERT_OK_AND_ASSIGN(Workload first, SyntheticWorkload(options));
  ASSERT_OK_AND_ASSIGN(Workload second, SyntheticWorkload(options));
  std::map<int32_t, int64_t> by_size;
  int64_t gpu_tasks = 0;
  for (int64_t i = 0; i < options.tasks; ++i) {
    TaskRequest a, b;
    double duration_a = 0, duration_b = 0;
    first.task(i, &a, &duration_a);
    second.task(i, &b, &duration_b);
    ASSERT_EQ(a.resources, b.resources);
    ASSERT_EQ(duration_a, duration_b);
    ASSERT_GE(duration_a, 5);
    ASSERT_LE(duration_a, 15);
    ++by_size[a.resources.cores_per_rank];
    gpu_tasks += a.resources.gpus_per_rank > 0;
  }
  EXPECT_NEAR(by_size[1] / 20000.0, 0.6, 0.02);
  EXPECT_NEAR(by_size[8] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(by_size[64] / 20000.0, 0.1, 0.02);
  EXPECT_NEAR(gpu_tasks / 20000.0, 0.25, 0.02);
  EXPECT_FALSE(ParseSizeMix("1:6,x").ok());
  EXPECT_FALSE(ParseSizeMix("0:1").ok());
}

// A WfCommons-shaped trace: A (1 s) → C (4 s); B (2 s) and D (2 s) independent; two cores.
//   fifo:          A, B at 0; D at 1 (ready before C); C at 2 → makespan 6.
//   critical-path: A, B at 0; C at 1 (bottom level 4 beats D's 2); D at 2 → makespan 5.
constexpr const char* kSmallTrace = R"({
  "name": "small",
  "workflow": {
    "specification": {"tasks": [
      {"id": "A", "parents": [], "children": ["C"]},
      {"id": "B", "parents": [], "children": []},
      {"id": "D", "parents": [], "children": []},
      {"id": "C", "parents": ["A"], "children": []}
    ]},
    "execution": {
      "tasks": [
        {"id": "C", "runtimeInSeconds": 4},
        {"id": "A", "runtimeInSeconds": 1},
        {"id": "B", "runtimeInSeconds": 2},
        {"id": "D", "runtimeInSeconds": 2}
      ],
      "machines": [{"nodeName": "m", "cpu": {"coreCount": 2}}]
    }
  }
})";

TEST(WorkflowTraceTest, CriticalPathFirstBeatsFifoOnAHandComputedDag) {
  ASSERT_OK_AND_ASSIGN(WorkflowTrace trace, ParseWorkflowTrace(kSmallTrace, "small.json"));
  ASSERT_EQ(trace.ids.size(), 4u);
  ASSERT_EQ(trace.machines.size(), 1u);
  EXPECT_EQ(trace.machines[0].cores, 2);
  ASSERT_OK_AND_ASSIGN(auto fifo,
                       Simulate(trace.machines, WorkflowWorkload(trace, WorkflowPolicy::kFifo)));
  EXPECT_EQ(fifo.makespan_s, 6);
  ASSERT_OK_AND_ASSIGN(
      auto critical,
      Simulate(trace.machines, WorkflowWorkload(trace, WorkflowPolicy::kCriticalPath)));
  EXPECT_EQ(critical.makespan_s, 5);
  EXPECT_EQ(critical.critical_path_s, 5);
  EXPECT_EQ(critical.lower_bound_s, 5);
}

TEST(WorkflowTraceTest, ErrorsNameWhatIsWrong) {
  EXPECT_EQ(ParseWorkflowTrace("{", "t.json").status().message(), "t.json: not valid JSON");
  EXPECT_EQ(ParseWorkflowTrace(R"({"workflow": {}})", "t.json").status().message(),
            "t.json: workflow.specification: missing");
  const char* unknown_parent = R"({"workflow": {"specification": {"tasks": [
      {"id": "A", "parents": ["Z"]}]}, "execution": {"tasks": [
      {"id": "A", "runtimeInSeconds": 1}]}}})";
  EXPECT_EQ(ParseWorkflowTrace(unknown_parent, "t.json").status().message(),
            "t.json: workflow.specification.tasks[0].parents: unknown task \"Z\"");
  const char* no_runtime = R"({"workflow": {"specification": {"tasks": [
      {"id": "A"}]}, "execution": {"tasks": []}}})";
  EXPECT_EQ(ParseWorkflowTrace(no_runtime, "t.json").status().message(),
            "t.json: task 'A': no runtimeInSeconds in workflow.execution.tasks");
  const char* cycle = R"({"workflow": {"specification": {"tasks": [
      {"id": "A", "parents": ["B"]}, {"id": "B", "parents": ["A"]}]},
      "execution": {"tasks": [{"id": "A", "runtimeInSeconds": 1},
                              {"id": "B", "runtimeInSeconds": 1}]}}})";
  EXPECT_EQ(ParseWorkflowTrace(cycle, "t.json").status().message(),
            "t.json: the workflow's dependencies have a cycle");
}

// The lower bound computed here, independently of the simulator: the longest path through the
// DAG by memoized depth-first search, and the core-seconds over the cores.
double IndependentLowerBound(const WorkflowTrace& trace) {
  const size_t count = trace.ids.size();
  std::vector<double> longest(count, -1);
  std::function<double(size_t)> path = [&](size_t task) {
    if (longest[task] >= 0) return longest[task];
    double before = 0;
    for (int32_t parent : trace.parents[task]) before = std::max(before, path(parent));
    return longest[task] = before + trace.runtimes_s[task];
  };
  double critical = 0, work = 0, cores = 0;
  for (size_t task = 0; task < count; ++task) {
    critical = std::max(critical, path(task));
    work += trace.runtimes_s[task] * trace.cores[task];
  }
  for (const auto& machine : trace.machines) cores += machine.cores;
  return std::max(critical, work / cores);
}

// Heads and tails (longest chains before and after each task) of a DAG given as parent lists,
// by repeated relaxation until nothing changes (no order of the tasks assumed).
void HeadsAndTails(const std::vector<std::vector<int32_t>>& parents,
                   const std::vector<double>& duration, std::vector<double>* head,
                   std::vector<double>* tail) {
  const size_t count = duration.size();
  head->assign(count, 0.0);
  tail->assign(count, 0.0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t task = 0; task < count; ++task) {
      for (int32_t parent : parents[task]) {
        const double start = (*head)[parent] + duration[parent];
        if (start > (*head)[task]) (*head)[task] = start, changed = true;
        const double after = duration[task] + (*tail)[task];
        if (after > (*tail)[parent]) (*tail)[parent] = after, changed = true;
      }
    }
  }
}

// The window bound by brute force: every window (head >= h, tail >= t over the values that
// occur), and in each every count n' of its longest single-core tasks: with n' = q·cores + r,
// r > 0, the r fullest cores run at least r·(q + 1) of those n', so one runs for at least the
// r·(q + 1) smallest of them ÷ r.
double BruteWindowBound(const std::vector<double>& duration, const std::vector<double>& head,
                        const std::vector<double>& tail, const std::vector<int64_t>& cores,
                        int64_t total_cores) {
  std::set<double> heads(head.begin(), head.end()), tails(tail.begin(), tail.end());
  double bound = 0;
  for (double h : heads) {
    for (double t : tails) {
      double work = 0;
      std::vector<double> singles;
      for (size_t task = 0; task < duration.size(); ++task) {
        if (head[task] < h || tail[task] < t) continue;
        work += duration[task] * static_cast<double>(cores[task]);
        if (cores[task] == 1) singles.push_back(duration[task]);
      }
      if (work == 0) continue;
      double busy = work / static_cast<double>(total_cores);
      std::sort(singles.begin(), singles.end(), std::greater<>());
      std::vector<double> prefix(singles.size() + 1, 0.0);
      std::partial_sum(singles.begin(), singles.end(), prefix.begin() + 1);
      for (size_t n = 1; n <= singles.size(); ++n) {
        const size_t q = n / total_cores, r = n % total_cores;
        if (q == 0 || r == 0) continue;
        // singles[0, n) are the n longest; the r·(q + 1) smallest of them end the prefix.
        const double sum = prefix[n] - prefix[n - r * (q + 1)];
        busy = std::max(busy, sum / static_cast<double>(r));
      }
      bound = std::max(bound, h + busy + t);
    }
  }
  return bound;
}

// The optimum of a small DAG on one node by exhaustion: every order of the tasks that respects
// the DAG, each task placed at the earliest time its parents are done and its cores are free
// for its whole duration (the serial schedule-generation scheme, which reaches every active
// schedule and so an optimal one).
double OptimalMakespan(const std::vector<std::vector<int32_t>>& parents,
                       const std::vector<double>& duration, const std::vector<int64_t>& cores,
                       int64_t total_cores) {
  const size_t count = duration.size();
  std::vector<int32_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    std::vector<double> start(count, -1);
    bool valid = true;
    double makespan = 0;
    for (int32_t task : order) {
      double earliest = 0;
      for (int32_t parent : parents[task]) {
        if (start[parent] < 0) valid = false;
        earliest = std::max(earliest, start[parent] + duration[parent]);
      }
      if (!valid) break;
      std::vector<double> candidates = {earliest};
      for (size_t other = 0; other < count; ++other) {
        if (start[other] >= 0 && start[other] + duration[other] > earliest) {
          candidates.push_back(start[other] + duration[other]);
        }
      }
      std::sort(candidates.begin(), candidates.end());
      for (double at : candidates) {
        // Usage is piecewise constant, changing only where placed tasks start: check `at` and
        // every such start inside [at, at + duration).
        bool fits = true;
        std::vector<double> points = {at};
        for (size_t other = 0; other < count; ++other) {
          if (start[other] > at && start[other] < at + duration[task]) {
            points.push_back(start[other]);
          }
        }
        for (double point : points) {
          int64_t used = cores[task];
          for (size_t other = 0; other < count; ++other) {
            if (start[other] >= 0 && start[other] <= point &&
                point < start[other] + duration[other]) {
              used += cores[other];
            }
          }
          fits = fits && used <= total_cores;
        }
        if (fits) {
          start[task] = at;
          makespan = std::max(makespan, at + duration[task]);
          break;
        }
      }
    }
    if (valid) best = std::min(best, makespan);
  } while (std::next_permutation(order.begin(), order.end()));
  return best;
}

// The window bound never exceeds the optimum (checked by exhaustion on random small DAGs with
// equal durations, wide tasks and fork-joins), and the simulator's makespan never beats it.
TEST(WindowBoundTest, NeverAboveTheOptimumOnRandomSmallDags) {
  std::mt19937_64 random(11);
  int tighter = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int64_t total_cores = 1 + static_cast<int64_t>(random() % 3);
    const size_t count = 2 + random() % 6;
    std::vector<double> duration(count);
    std::vector<int64_t> cores(count);
    std::vector<std::vector<int32_t>> parents(count);
    std::vector<SimTask> tasks(count);
    for (size_t task = 0; task < count; ++task) {
      duration[task] = 1.0 + static_cast<double>(random() % 4);
      cores[task] = total_cores > 1 && random() % 4 == 0 ? 2 : 1;
      for (size_t parent = 0; parent < task; ++parent) {
        if (random() % 10 < 3) parents[task].push_back(static_cast<int32_t>(parent));
      }
      tasks[task].resources = OneCore();
      tasks[task].resources.cores_per_rank = static_cast<int32_t>(cores[task]);
      tasks[task].duration = duration[task];
      tasks[task].after.assign(parents[task].begin(), parents[task].end());
    }
    std::vector<double> head, tail;
    HeadsAndTails(parents, duration, &head, &tail);
    const double bound = WindowBound(duration, head, tail, cores, total_cores);
    const double optimum = OptimalMakespan(parents, duration, cores, total_cores);
    ASSERT_LE(bound, optimum + 1e-9) << "trial " << trial;
    EXPECT_LE(bound, BruteWindowBound(duration, head, tail, cores, total_cores) + 1e-9);
    ASSERT_OK_AND_ASSIGN(auto result,
                         Simulate({{static_cast<int32_t>(total_cores), 0, 0}}, ListWorkload(tasks)));
    EXPECT_GE(result.makespan_s, optimum - 1e-9) << "trial " << trial;
    EXPECT_DOUBLE_EQ(result.window_bound_s, bound);
    double critical = 0, work = 0;
    for (size_t task = 0; task < count; ++task) {
      critical = std::max(critical, head[task] + duration[task] + tail[task]);
      work += duration[task] * static_cast<double>(cores[task]);
    }
    if (bound > std::max(critical, work / static_cast<double>(total_cores)) + 1e-9) ++tighter;
  }
  // The bound must matter somewhere, or the test checks nothing beyond the classic bounds.
  EXPECT_GT(tighter, 10);
}

TEST(WorkflowTraceTest, MontageTraceWithinTwentyPercentOfTheLowerBound) {
  // The copy of the WfCommons trace the repository carries (tests/data/workflows, LGPL-3.0).
  const std::string path = std::string(DEEPRC_SOURCE_DIR) +
                           "/tests/data/workflows/montage-chameleon-2mass-025d-001.json";
  ASSERT_OK_AND_ASSIGN(WorkflowTrace trace, ReadWorkflowTrace(path));
  EXPECT_EQ(trace.ids.size(), 619u);
  EXPECT_EQ(trace.machines.size(), 3u);
  for (size_t task = 0; task < trace.ids.size(); ++task) {
    for (int32_t parent : trace.parents[task]) ASSERT_LT(static_cast<size_t>(parent), task);
  }
  ASSERT_OK_AND_ASSIGN(
      auto result,
      Simulate(trace.machines, WorkflowWorkload(trace, WorkflowPolicy::kCriticalPath)));
  EXPECT_EQ(result.done, 619);
  EXPECT_NEAR(std::max(result.critical_path_s, result.work_bound_s), IndependentLowerBound(trace),
              1e-6);
  EXPECT_GE(result.lower_bound_s, IndependentLowerBound(trace) - 1e-9);
  EXPECT_GE(result.makespan_s, result.lower_bound_s - 1e-9);
  EXPECT_LE(result.makespan_s, 1.2 * result.lower_bound_s);
}

TEST(WorkflowTraceTest, EveryWfCommonsTraceOnItsMachinesNearItsLowerBound) {
  // The issue's acceptance: every trace of tests/data/workflows (the six WfInstances traces) on
  // its recorded machines within 1.2x of the lower bound. For blast, max(critical path, work ÷
  // cores) = 328.3 s is far from any schedule (300 tasks of 92-114 s on 96 cores: some core
  // runs four of them); the window bound finds 395.9 s, the figure bench/RESULTS.md derives by
  // hand, and the brute force here agrees.
  std::vector<std::string> paths;
  for (const std::string directory : {std::string(DEEPRC_SOURCE_DIR) + "/tests/data/workflows"}) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() == ".json" && name.find("schema") == std::string::npos) {
        paths.push_back(entry.path().string());
      }
    }
  }
  ASSERT_EQ(paths.size(), 6u) << "the six traces of tests/data/workflows";
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    ASSERT_OK_AND_ASSIGN(WorkflowTrace trace, ReadWorkflowTrace(path));
    ASSERT_FALSE(trace.machines.empty());
    ASSERT_OK_AND_ASSIGN(
        auto result,
        Simulate(trace.machines, WorkflowWorkload(trace, WorkflowPolicy::kCriticalPath)));
    EXPECT_EQ(result.done, static_cast<int64_t>(trace.ids.size()));
    EXPECT_EQ(result.failed, 0);
    EXPECT_NEAR(std::max(result.critical_path_s, result.work_bound_s),
                IndependentLowerBound(trace), 1e-6);
    EXPECT_GE(result.makespan_s, result.lower_bound_s - 1e-9);
    EXPECT_LE(result.makespan_s, 1.2 * result.lower_bound_s);

    std::vector<double> head, tail;
    HeadsAndTails(trace.parents, trace.runtimes_s, &head, &tail);
    std::vector<int64_t> cores(trace.cores.begin(), trace.cores.end());
    int64_t total_cores = 0;
    for (const auto& machine : trace.machines) total_cores += machine.cores;
    const double brute = BruteWindowBound(trace.runtimes_s, head, tail, cores, total_cores);
    EXPECT_LE(result.window_bound_s, brute + 1e-6);
    EXPECT_LE(brute, result.makespan_s + 1e-6);
    if (path.find("/blast-") != std::string::npos) {
      EXPECT_NEAR(result.window_bound_s, 395.92, 0.01);
      EXPECT_NEAR(brute, 395.92, 0.01);
    }
  }
}

}  // namespace
}  // namespace deeprc::runtime
