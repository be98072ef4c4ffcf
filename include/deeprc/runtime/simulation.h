#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/scheduler.h"

namespace deeprc::runtime {

// The tasks of a simulation, made one at a time so that millions of them need no list of
// descriptions: `task(index, request, duration)` fills task `index` (called once per index, in
// order). `after` may name earlier tasks only.
struct Workload {
  int64_t count = 0;
  std::function<void(int64_t index, TaskRequest* request, double* duration_s)> task;
};

struct SimulationResult {
  double makespan_s = 0;
  // max(critical path, core-seconds ÷ cores, GPU-seconds ÷ GPUs, window bound): no schedule
  // can be shorter.
  double lower_bound_s = 0;
  double critical_path_s = 0;
  double work_bound_s = 0;
  // See WindowBound.
  double window_bound_s = 0;
  // Core-seconds of the tasks ÷ (cores × makespan).
  double utilization = 0;
  double gpu_utilization = 0;
  int64_t tasks = 0;
  int64_t done = 0;
  int64_t failed = 0;
  // Tasks started plus tasks failed by the scheduler.
  int64_t decisions = 0;
  double wall_s = 0;
  double decisions_per_s = 0;

  // One JSON line: makespan_s, lower_bound_s, utilization, decisions_per_s, tasks, and the rest.
  std::string ToJson() const;
};

// Runs the workload through the Scheduler on virtual nodes and a simulated clock: every task
// runs exactly its duration; completions are events in time order, all completions of one
// instant are handled before the next scheduling pass. Errors: an invalid workload, or tasks
// left waiting on an idle pilot (a scheduler bug, reported rather than hanging).
Result<SimulationResult> Simulate(std::vector<NodeResources> nodes, const Workload& workload,
                                  SchedulerOptions options = {});

// A lower bound on the makespan of any schedule of tasks with these durations, heads (longest
// chain of predecessors), tails (longest chain of successors) and cores (per task, all ranks)
// on `total_cores` cores. For windows W = {tasks with head >= h and tail >= t}, every task of W
// runs inside [h, makespan - t], so makespan >= h + busy(W) + t, where busy(W) is the larger of
// W's core-seconds ÷ cores and what packing W's single-core tasks onto the cores forces on the
// busiest core (pigeonhole: some core runs k + 1 of any k·cores + 1 of them). For a fork-join
// of 300 tasks on 96 cores this is what max(critical path, work ÷ cores) misses.
double WindowBound(std::span<const double> duration, std::span<const double> head,
                   std::span<const double> tail, std::span<const int64_t> cores,
                   int64_t total_cores);

// Independent tasks of mixed sizes for `deeprc sim`.
struct SyntheticWorkloadOptions {
  int64_t tasks = 0;
  // Mean duration in seconds; each task's is uniform in [duration × (1 − spread),
  // duration × (1 + spread)].
  double duration_s = 10;
  double duration_spread = 0;
  // (cores per task, weight): e.g. {{1, 6}, {8, 3}, {64, 1}}. A task is one rank.
  std::vector<std::pair<int32_t, double>> sizes = {{1, 1}};
  // Fraction of tasks that also ask for `gpus_per_task` GPUs.
  double gpu_fraction = 0;
  int32_t gpus_per_task = 1;
  uint64_t seed = 1;
};

// Deterministic for a seed (each task is drawn from a hash of the seed and its index).
Result<Workload> SyntheticWorkload(const SyntheticWorkloadOptions& options);
// "1:6,8:3,64:1" → {{1, 6}, {8, 3}, {64, 1}}.
Result<std::vector<std::pair<int32_t, double>>> ParseSizeMix(std::string_view text);

}  // namespace deeprc::runtime
