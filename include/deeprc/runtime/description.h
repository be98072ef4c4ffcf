#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deeprc/core/result.h"

namespace deeprc::runtime {

enum class TaskMode : uint8_t { kExecutable, kFunction };

// How a staged file reaches its target: copied, symlinked, or moved.
enum class StagingAction : uint8_t { kCopy, kLink, kMove };

std::string_view TaskModeName(TaskMode mode);
std::string_view StagingActionName(StagingAction action);

struct StagingDirective {
  std::string source;
  std::string target;
  StagingAction action = StagingAction::kCopy;
};

// What a user asks to run. The field names are RADICAL-Pilot's (in files and JSON: `uid`,
// `cores_per_rank`, ...), except that `stdout` and `stderr` are `stdout_file` and `stderr_file`
// here: the C library may define `stdout` and `stderr` as macros.
struct TaskDescription {
  std::string uid;
  std::string name;
  TaskMode mode = TaskMode::kExecutable;
  std::string executable;
  // An argv: passed to the executable as is, never through a shell.
  std::vector<std::string> arguments;
  std::map<std::string, std::string> environment;
  std::string sandbox;
  std::string stdout_file;
  std::string stderr_file;
  int32_t ranks = 1;
  int32_t cores_per_rank = 1;
  int32_t gpus_per_rank = 0;
  // Bytes; 0 asks for no memory in particular.
  int64_t mem_per_rank = 0;
  std::vector<std::string> pre_exec;
  std::vector<std::string> post_exec;
  std::vector<StagingDirective> input_staging;
  std::vector<StagingDirective> output_staging;
  // Higher runs first.
  int32_t priority = 0;
  // Seconds; 0 means none.
  double timeout = 0;
  // Uids of the tasks that must be DONE before this one may start.
  std::vector<std::string> after;
  std::map<std::string, std::string> tags;
  nlohmann::json metadata;
  // Function tasks (mode kFunction): the registered function's name, its JSON arguments, and
  // optionally the pool (master) that runs it; empty: the agent's routing picks one.
  std::string function;
  nlohmann::json args;
  std::string master;
};

// The resources a pilot asks for. Either `nodes` × `cores_per_node` or a total `cores` (spread
// evenly over `nodes`, one node when `nodes` is 0); GPUs likewise. `memory` is per node.
struct PilotDescription {
  std::string resource = "local";
  int32_t nodes = 0;
  int32_t cores = 0;
  int32_t cores_per_node = 0;
  int32_t gpus = 0;
  int32_t gpus_per_node = 0;
  // Bytes per node; 0: not tracked.
  int64_t memory = 0;
  // Seconds; 0 means no limit.
  double runtime = 0;
};

// What one node offers the scheduler.
struct NodeResources {
  int32_t cores = 0;
  int32_t gpus = 0;
  // Bytes; 0: not tracked (any memory request fits).
  int64_t memory = 0;
};

// The nodes a pilot description stands for. `default_cores_per_node` fills in when the
// description gives no core count (for a local pilot: the cores of this machine).
Result<std::vector<NodeResources>> ResolvePilotNodes(const PilotDescription& pilot,
                                                     int32_t default_cores_per_node);

// Checks the resource fields of one task (ranks ≥ 1, cores_per_rank ≥ 1, gpus_per_rank ≥ 0,
// mem_per_rank ≥ 0, an executable for executable tasks). `where` names the task in messages,
// e.g. "tasks[3]".
Status ValidateTaskDescription(const TaskDescription& task, std::string_view where);

// Checks a batch of tasks as a graph: uids unique and not empty, every `after` entry names a task
// of the batch or a task `is_known` (already submitted), no task waits for itself, and no
// cycles (the message lists one: "dependency cycle: a → b → a").
Status ValidateTaskGraph(std::span<const TaskDescription> tasks,
                         const std::function<bool(std::string_view)>& is_known = {});

// "4GB", "512MiB", "1024" (bytes) → bytes. Units K, M, G, T are powers of 1000, Ki, Mi, Gi, Ti
// of 1024; a trailing B is optional.
Result<int64_t> ParseByteSize(std::string_view text);
// "90", "90s", "15m", "2h", "1.5h" → seconds.
Result<double> ParseDuration(std::string_view text);

}  // namespace deeprc::runtime
