// `deeprc sim`: the runtime's scheduler on virtual nodes and a simulated clock — many
// independent tasks (`--tasks`), or a WfCommons workflow trace (`--workflow`). Prints one JSON
// line: makespan_s, lower_bound_s, utilization, decisions_per_s, tasks, and details.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "deeprc/command_registry.h"
#include "deeprc/runtime/simulation.h"
#include "deeprc/runtime/workflow_trace.h"

namespace deeprc::app {
namespace {

struct SimOptions {
  int32_t nodes = 0;
  int32_t cores_per_node = 64;
  int32_t gpus_per_node = 0;
  int64_t tasks = 0;
  double duration = 10;
  double duration_spread = 0;
  std::string mix = "1:1";
  double gpu_fraction = 0;
  int32_t gpus_per_task = 1;
  uint64_t seed = 1;
  std::string workflow;
  std::string policy = "critical-path";
  bool no_reservation = false;
};

Result<runtime::SimulationResult> RunSimulation(const SimOptions& options, bool nodes_given) {
  runtime::SchedulerOptions scheduler;
  scheduler.reserve_for_head = !options.no_reservation;
  auto uniform_nodes = [&] {
    return std::vector<runtime::NodeResources>(
        static_cast<size_t>(options.nodes),
        runtime::NodeResources{options.cores_per_node, options.gpus_per_node, 0});
  };
  if (!options.workflow.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(runtime::WorkflowTrace trace,
                           runtime::ReadWorkflowTrace(options.workflow));
    DEEPRC_ASSIGN_OR_RAISE(runtime::WorkflowPolicy policy,
                           runtime::ParseWorkflowPolicy(options.policy));
    std::vector<runtime::NodeResources> nodes = trace.machines;
    if (nodes_given) nodes = uniform_nodes();
    if (nodes.empty()) {
      return Status::Invalid(
          "{}: the trace lists no machines; give --nodes and "
          "--cores-per-node",
          options.workflow);
    }
    return runtime::Simulate(std::move(nodes), runtime::WorkflowWorkload(trace, policy), scheduler);
  }
  if (!nodes_given) return Status::Invalid("give --nodes (and --tasks), or --workflow TRACE.json");
  if (options.tasks <= 0) return Status::Invalid("--tasks: expected a positive number of tasks");
  runtime::SyntheticWorkloadOptions workload_options;
  workload_options.tasks = options.tasks;
  workload_options.duration_s = options.duration;
  workload_options.duration_spread = options.duration_spread;
  DEEPRC_ASSIGN_OR_RAISE(workload_options.sizes, runtime::ParseSizeMix(options.mix));
  workload_options.gpu_fraction = options.gpu_fraction;
  workload_options.gpus_per_task = options.gpus_per_task;
  workload_options.seed = options.seed;
  DEEPRC_ASSIGN_OR_RAISE(runtime::Workload workload, runtime::SyntheticWorkload(workload_options));
  return runtime::Simulate(uniform_nodes(), workload, scheduler);
}

int RunSimCommand(int argc, char** argv) {
  CLI::App app{"Simulate the scheduler on virtual nodes: many tasks, or a WfCommons workflow",
               "deeprc sim"};
  SimOptions options;
  auto* nodes = app.add_option("--nodes", options.nodes,
                               "Virtual nodes (with --workflow: "
                               "instead of the trace's machines)")
                    ->check(CLI::PositiveNumber);
  app.add_option("--cores-per-node", options.cores_per_node, "Cores per virtual node")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--gpus-per-node", options.gpus_per_node, "GPUs per virtual node")
      ->check(CLI::Range(0, 63))
      ->capture_default_str();
  app.add_option("--tasks", options.tasks, "Independent tasks to run")->check(CLI::PositiveNumber);
  app.add_option("--duration", options.duration, "Mean task duration in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--duration-spread", options.duration_spread,
                 "Durations uniform in duration × [1 − s, 1 + s]")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  app.add_option("--mix", options.mix,
                 "Task sizes as CORES:WEIGHT, e.g. 1:6,8:3,64:1 (one rank per task)")
      ->capture_default_str();
  app.add_option("--gpu-fraction", options.gpu_fraction,
                 "Fraction of tasks that also ask for --gpus-per-task GPUs")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--gpus-per-task", options.gpus_per_task, "GPUs of a GPU task")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Seed of the sizes, GPUs and durations")
      ->capture_default_str();
  app.add_option("--workflow", options.workflow, "A WfCommons trace (JSON) to simulate");
  app.add_option("--policy", options.policy,
                 "Order of ready workflow tasks: critical-path (longest path to the end first) "
                 "or fifo")
      ->capture_default_str();
  app.add_flag("--no-reservation", options.no_reservation,
               "Backfill without a reservation for the first blocked task (it may starve)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help
    std::fprintf(stderr, "deeprc sim: %s (see --help)\n", error.what());
    return kExitUsage;
  }
  Result<runtime::SimulationResult> result = Status::Internal("not run");
  try {
    result = RunSimulation(options, nodes->count() > 0);
  } catch (const std::exception& error) {
    result = Status::Internal("{}", error.what());
  }
  if (!result.ok()) {
    std::fprintf(stderr, "deeprc sim: %s\n", result.status().message().c_str());
    return result.status().IsUserError() ? kExitUsage : kExitFailure;
  }
  std::printf("%s\n", result->ToJson().c_str());
  return kExitOk;
}

const bool kRegistered = RegisterCommand(
    {"sim", "Simulate the task scheduler (deeprc sim --nodes N --tasks T | --workflow F)",
     RunSimCommand});

}  // namespace
}  // namespace deeprc::app
