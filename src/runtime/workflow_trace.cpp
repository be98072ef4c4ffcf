#include "deeprc/runtime/workflow_trace.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace deeprc::runtime {
namespace {

using Json = nlohmann::json;

// The member `key` of `object`, or an error naming `path`.
Result<const Json*> Member(const Json& object, const char* key, std::string_view path) {
  if (!object.is_object() || !object.contains(key)) {
    return Status::Invalid("{}.{}: missing", path, key);
  }
  return &object[key];
}

Result<WorkflowTrace> Parse(const Json& root, std::string_view source) {
  WorkflowTrace trace;
  if (root.is_object() && root.contains("name") && root["name"].is_string()) {
    trace.name = root["name"].get<std::string>();
  }
  DEEPRC_ASSIGN_OR_RAISE(const Json* workflow, Member(root, "workflow", ""));
  DEEPRC_ASSIGN_OR_RAISE(const Json* specification, Member(*workflow, "specification", "workflow"));
  DEEPRC_ASSIGN_OR_RAISE(const Json* spec_tasks,
                         Member(*specification, "tasks", "workflow.specification"));
  DEEPRC_ASSIGN_OR_RAISE(const Json* execution, Member(*workflow, "execution", "workflow"));
  DEEPRC_ASSIGN_OR_RAISE(const Json* exec_tasks, Member(*execution, "tasks", "workflow.execution"));
  if (!spec_tasks->is_array() || !exec_tasks->is_array()) {
    return Status::Invalid(
        "workflow.specification.tasks and workflow.execution.tasks must be "
        "lists");
  }
  // Specification order first; sorted topologically below.
  std::unordered_map<std::string, int32_t> index;
  std::vector<std::string> ids;
  for (size_t i = 0; i < spec_tasks->size(); ++i) {
    const Json& task = (*spec_tasks)[i];
    if (!task.is_object() || !task.contains("id") || !task["id"].is_string()) {
      return Status::Invalid("workflow.specification.tasks[{}].id: expected a string", i);
    }
    std::string id = task["id"].get<std::string>();
    if (!index.emplace(id, static_cast<int32_t>(ids.size())).second) {
      return Status::Invalid("workflow.specification.tasks[{}].id: '{}' appears twice", i, id);
    }
    ids.push_back(std::move(id));
  }
  const size_t count = ids.size();
  std::vector<std::vector<int32_t>> parents(count);
  auto link = [&](const Json& names, size_t i, const char* field,
                  bool names_are_parents) -> Status {
    if (!names.is_array()) {
      return Status::Invalid("workflow.specification.tasks[{}].{}: expected a list", i, field);
    }
    for (const Json& name : names) {
      auto found = name.is_string() ? index.find(name.get<std::string>()) : index.end();
      if (found == index.end()) {
        return Status::Invalid("workflow.specification.tasks[{}].{}: unknown task {}", i, field,
                               name.dump());
      }
      const auto self = static_cast<int32_t>(i);
      if (names_are_parents)
        parents[i].push_back(found->second);
      else
        parents[found->second].push_back(self);
    }
    return Status::OK();
  };
  for (size_t i = 0; i < count; ++i) {
    const Json& task = (*spec_tasks)[i];
    if (task.contains("parents")) DEEPRC_RETURN_NOT_OK(link(task["parents"], i, "parents", true));
    if (task.contains("children")) {
      DEEPRC_RETURN_NOT_OK(link(task["children"], i, "children", false));
    }
  }
  for (auto& list : parents) {
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
  }
  std::vector<double> runtimes(count, -1);
  std::vector<int32_t> cores(count, 1);
  for (size_t i = 0; i < exec_tasks->size(); ++i) {
    const Json& task = (*exec_tasks)[i];
    if (!task.is_object() || !task.contains("id") || !task["id"].is_string()) {
      return Status::Invalid("workflow.execution.tasks[{}].id: expected a string", i);
    }
    auto found = index.find(task["id"].get<std::string>());
    if (found == index.end()) continue;  // executed but not specified: not part of the DAG
    if (!task.contains("runtimeInSeconds") || !task["runtimeInSeconds"].is_number() ||
        !(task["runtimeInSeconds"].get<double>() >= 0)) {
      return Status::Invalid(
          "workflow.execution.tasks[{}].runtimeInSeconds: expected a "
          "non-negative number",
          i);
    }
    runtimes[found->second] = task["runtimeInSeconds"].get<double>();
    if (task.contains("coreCount") && task["coreCount"].is_number()) {
      const double core_count = task["coreCount"].get<double>();
      if (core_count >= 1) cores[found->second] = static_cast<int32_t>(std::lround(core_count));
    }
  }
  for (size_t i = 0; i < count; ++i) {
    if (runtimes[i] < 0) {
      return Status::Invalid("task '{}': no runtimeInSeconds in workflow.execution.tasks", ids[i]);
    }
  }
  if (execution->contains("machines") && (*execution)["machines"].is_array()) {
    for (const Json& machine : (*execution)["machines"]) {
      if (!machine.contains("cpu") || !machine["cpu"].contains("coreCount") ||
          !machine["cpu"]["coreCount"].is_number_integer()) {
        return Status::Invalid("workflow.execution.machines: a machine without cpu.coreCount");
      }
      NodeResources node;
      node.cores = machine["cpu"]["coreCount"].get<int32_t>();
      trace.machines.push_back(node);
    }
  }
  // Topological order (Kahn), stable with respect to the specification's order.
  std::vector<std::vector<int32_t>> children(count);
  std::vector<int32_t> unmet(count, 0);
  for (size_t i = 0; i < count; ++i) {
    unmet[i] = static_cast<int32_t>(parents[i].size());
    for (int32_t parent : parents[i]) children[parent].push_back(static_cast<int32_t>(i));
  }
  std::vector<int32_t> order;
  order.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (unmet[i] == 0) order.push_back(static_cast<int32_t>(i));
  }
  for (size_t head = 0; head < order.size(); ++head) {
    for (int32_t child : children[order[head]]) {
      if (--unmet[child] == 0) order.push_back(child);
    }
  }
  if (order.size() != count) {
    return Status::Invalid("the workflow's dependencies have a cycle");
  }
  std::vector<int32_t> position(count);
  for (size_t k = 0; k < count; ++k) position[order[k]] = static_cast<int32_t>(k);
  trace.ids.resize(count);
  trace.runtimes_s.resize(count);
  trace.cores.resize(count);
  trace.parents.resize(count);
  for (size_t k = 0; k < count; ++k) {
    const int32_t old = order[k];
    trace.ids[k] = std::move(ids[old]);
    trace.runtimes_s[k] = runtimes[old];
    trace.cores[k] = cores[old];
    for (int32_t parent : parents[old]) trace.parents[k].push_back(position[parent]);
    std::sort(trace.parents[k].begin(), trace.parents[k].end());
  }
  return trace;
}

}  // namespace

Result<WorkflowTrace> ParseWorkflowTrace(std::string_view json_text, std::string_view source) {
  Json root = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Status::Invalid("{}: not valid JSON", source);
  try {
    auto trace = Parse(root, source);
    if (!trace.ok()) return trace.status().WithContext(source);
    return trace;
  } catch (const Json::exception& error) {
    return Status::Invalid("{}: {}", source, error.what());
  }
}

Result<WorkflowTrace> ReadWorkflowTrace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("{}: cannot open the workflow trace", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IOError("{}: cannot read the workflow trace", path);
  return ParseWorkflowTrace(text.str(), path);
}

Result<WorkflowPolicy> ParseWorkflowPolicy(std::string_view text) {
  if (text == "fifo") return WorkflowPolicy::kFifo;
  if (text == "critical-path") return WorkflowPolicy::kCriticalPath;
  return Status::Invalid("--policy: expected fifo or critical-path, found '{}'", text);
}

Workload WorkflowWorkload(const WorkflowTrace& trace, WorkflowPolicy policy) {
  const size_t count = trace.ids.size();
  auto priorities = std::make_shared<std::vector<int32_t>>(count, 0);
  if (policy == WorkflowPolicy::kCriticalPath) {
    // Bottom level: a task's runtime plus the longest bottom level of its children; children
    // come after their parents, so one backward sweep computes it.
    std::vector<double> bottom(count, 0);
    for (size_t k = count; k-- > 0;) bottom[k] += trace.runtimes_s[k];
    for (size_t k = count; k-- > 0;) {
      for (int32_t parent : trace.parents[k]) {
        bottom[parent] = std::max(bottom[parent], trace.runtimes_s[parent] + bottom[k]);
      }
    }
    for (size_t k = 0; k < count; ++k) {
      (*priorities)[k] = static_cast<int32_t>(std::min(2.0e9, std::round(bottom[k] * 1000)));
    }
  }
  Workload workload;
  workload.count = static_cast<int64_t>(count);
  workload.task = [&trace, priorities](int64_t index, TaskRequest* request, double* duration) {
    request->resources.cores_per_rank = trace.cores[index];
    request->priority = (*priorities)[index];
    request->after.assign(trace.parents[index].begin(), trace.parents[index].end());
    *duration = trace.runtimes_s[index];
  };
  return workload;
}

}  // namespace deeprc::runtime
