#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/simulation.h"

namespace deeprc::runtime {

// A WfCommons workflow instance (https://wfcommons.org, schema in
// ../shared/data/workflows/wfcommons-schema.json): the DAG of `workflow.specification.tasks`
// (`parents` and `children` both count), each task's duration from
// `workflow.execution.tasks[].runtimeInSeconds` and cores from its `coreCount` (1 when absent),
// and the machines from `workflow.execution.machines[].cpu.coreCount`.
struct WorkflowTrace {
  std::string name;
  // Tasks in a topological order: every parent comes before its children.
  std::vector<std::string> ids;
  std::vector<double> runtimes_s;
  std::vector<int32_t> cores;
  std::vector<std::vector<int32_t>> parents;  // indexes into the vectors above
  std::vector<NodeResources> machines;
};

Result<WorkflowTrace> ParseWorkflowTrace(std::string_view json_text, std::string_view source);
Result<WorkflowTrace> ReadWorkflowTrace(const std::string& path);

// The order in which ready tasks start.
enum class WorkflowPolicy : uint8_t {
  // In the order they became ready.
  kFifo,
  // Longest remaining path to the end of the workflow first (the "bottom level", in
  // milliseconds, as the task's priority): work that delays the whole workflow goes first.
  kCriticalPath,
};

Result<WorkflowPolicy> ParseWorkflowPolicy(std::string_view text);

// The trace as a simulation workload, priorities set by `policy`. The workload refers to
// `trace`, which must outlive it.
Workload WorkflowWorkload(const WorkflowTrace& trace, WorkflowPolicy policy);

}  // namespace deeprc::runtime
