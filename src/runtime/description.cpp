#include "deeprc/runtime/description.h"

#include <charconv>
#include <cmath>
#include <unordered_map>

namespace deeprc::runtime {

std::string_view TaskModeName(TaskMode mode) {
  return mode == TaskMode::kFunction ? "function" : "executable";
}

std::string_view StagingActionName(StagingAction action) {
  switch (action) {
    case StagingAction::kCopy:
      return "copy";
    case StagingAction::kLink:
      return "link";
    case StagingAction::kMove:
      return "move";
  }
  return "unknown";
}

Result<std::vector<NodeResources>> ResolvePilotNodes(const PilotDescription& pilot,
                                                     int32_t default_cores_per_node) {
  if (pilot.nodes < 0 || pilot.cores < 0 || pilot.cores_per_node < 0 || pilot.gpus < 0 ||
      pilot.gpus_per_node < 0 || pilot.memory < 0) {
    return Status::Invalid(
        "pilot: nodes, cores, cores_per_node, gpus, gpus_per_node and memory "
        "must not be negative");
  }
  int32_t nodes = pilot.nodes;
  int32_t cores_per_node = pilot.cores_per_node;
  if (pilot.cores > 0) {
    if (nodes == 0) {
      nodes = cores_per_node > 0 ? (pilot.cores + cores_per_node - 1) / cores_per_node : 1;
    }
    if (cores_per_node == 0) {
      if (pilot.cores % nodes != 0) {
        return Status::Invalid("pilot: cores ({}) must be a multiple of nodes ({})", pilot.cores,
                               nodes);
      }
      cores_per_node = pilot.cores / nodes;
    } else if (static_cast<int64_t>(nodes) * cores_per_node != pilot.cores) {
      return Status::Invalid("pilot: cores ({}) is not nodes ({}) × cores_per_node ({})",
                             pilot.cores, nodes, cores_per_node);
    }
  }
  if (nodes == 0) nodes = 1;
  if (cores_per_node == 0) cores_per_node = default_cores_per_node;
  if (cores_per_node <= 0) return Status::Invalid("pilot: no cores per node given or found");
  int32_t gpus_per_node = pilot.gpus_per_node;
  if (pilot.gpus > 0) {
    if (gpus_per_node == 0) {
      if (pilot.gpus % nodes != 0) {
        return Status::Invalid("pilot: gpus ({}) must be a multiple of nodes ({})", pilot.gpus,
                               nodes);
      }
      gpus_per_node = pilot.gpus / nodes;
    } else if (static_cast<int64_t>(nodes) * gpus_per_node != pilot.gpus) {
      return Status::Invalid("pilot: gpus ({}) is not nodes ({}) × gpus_per_node ({})", pilot.gpus,
                             nodes, gpus_per_node);
    }
  }
  return std::vector<NodeResources>(static_cast<size_t>(nodes),
                                    NodeResources{cores_per_node, gpus_per_node, pilot.memory});
}

Status ValidateTaskDescription(const TaskDescription& task, std::string_view where) {
  if (task.ranks < 1) {
    return Status::Invalid("{}.ranks: expected a positive integer, found {}", where, task.ranks);
  }
  if (task.cores_per_rank < 1) {
    return Status::Invalid("{}.cores_per_rank: expected a positive integer, found {}", where,
                           task.cores_per_rank);
  }
  if (task.gpus_per_rank < 0) {
    return Status::Invalid("{}.gpus_per_rank: expected a non-negative integer, found {}", where,
                           task.gpus_per_rank);
  }
  if (task.mem_per_rank < 0) {
    return Status::Invalid("{}.mem_per_rank: expected a non-negative size, found {}", where,
                           task.mem_per_rank);
  }
  if (task.timeout < 0 || !std::isfinite(task.timeout)) {
    return Status::Invalid("{}.timeout: expected a non-negative number of seconds, found {}", where,
                           task.timeout);
  }
  if (task.mode == TaskMode::kExecutable && task.executable.empty()) {
    return Status::Invalid("{}.executable: an executable task needs an executable", where);
  }
  if (task.mode == TaskMode::kFunction && task.function.empty()) {
    return Status::Invalid("{}.function: a function task needs the name of a function", where);
  }
  return Status::OK();
}

Status ValidateTaskGraph(std::span<const TaskDescription> tasks,
                         const std::function<bool(std::string_view)>& is_known) {
  std::unordered_map<std::string_view, size_t> index;
  index.reserve(tasks.size());
  auto known = [&](std::string_view uid) { return is_known && is_known(uid); };
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& uid = tasks[i].uid;
    if (uid.empty()) return Status::Invalid("tasks[{}].uid: must not be empty", i);
    if (known(uid) || !index.emplace(uid, i).second) {
      return Status::Invalid("tasks[{}].uid: '{}' is used by another task", i, uid);
    }
  }
  // Edges inside the batch; tasks already submitted cannot wait for new ones, so a cycle can
  // only run through the batch.
  std::vector<std::vector<size_t>> predecessors(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    for (const auto& before : tasks[i].after) {
      if (before == tasks[i].uid) {
        return Status::Invalid("tasks[{}].after: task '{}' waits for itself", i, before);
      }
      auto found = index.find(before);
      if (found != index.end()) {
        predecessors[i].push_back(found->second);
      } else if (!known(before)) {
        return Status::Invalid("tasks[{}].after: unknown task '{}'", i, before);
      }
    }
  }
  // Depth-first search without recursion (graphs may be long chains). 0 unvisited, 1 on the
  // current path, 2 finished.
  std::vector<uint8_t> color(tasks.size(), 0);
  std::vector<std::pair<size_t, size_t>> stack;  // (task, next predecessor to visit)
  for (size_t start = 0; start < tasks.size(); ++start) {
    if (color[start] != 0) continue;
    stack.emplace_back(start, 0);
    color[start] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next == predecessors[node].size()) {
        color[node] = 2;
        stack.pop_back();
        continue;
      }
      const size_t target = predecessors[node][next++];
      if (color[target] == 0) {
        color[target] = 1;
        stack.emplace_back(target, 0);
      } else if (color[target] == 1) {
        // The path from `target` down the stack is the cycle; edges point at predecessors, so
        // it reads backwards: print it in execution order.
        std::string cycle;
        size_t from = 0;
        while (stack[from].first != target) ++from;
        for (size_t k = stack.size(); k-- > from;) {
          cycle += tasks[stack[k].first].uid;
          cycle += " → ";
        }
        cycle += tasks[stack.back().first].uid;
        return Status::Invalid("dependency cycle: {}", cycle);
      }
    }
  }
  return Status::OK();
}

namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Splits "1.5GiB" into 1.5 and "GiB"; false when there is no number in front.
bool SplitNumber(std::string_view text, double* number, std::string_view* unit) {
  text = Trim(text);
  const char* end = text.data() + text.size();
  auto [pointer, error] = std::from_chars(text.data(), end, *number);
  if (error != std::errc() || !std::isfinite(*number)) return false;
  *unit = Trim(std::string_view(pointer, static_cast<size_t>(end - pointer)));
  return true;
}

}  // namespace

Result<int64_t> ParseByteSize(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!SplitNumber(text, &number, &unit) || number < 0) {
    return Status::Invalid("expected a size such as 512MB or 4GiB, found '{}'", text);
  }
  std::string upper;
  for (char c : unit) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!upper.empty() && upper.back() == 'B') upper.pop_back();
  double scale = 0;
  if (upper.empty())
    scale = 1;
  else if (upper == "K")
    scale = 1e3;
  else if (upper == "M")
    scale = 1e6;
  else if (upper == "G")
    scale = 1e9;
  else if (upper == "T")
    scale = 1e12;
  else if (upper == "KI")
    scale = 1024.0;
  else if (upper == "MI")
    scale = 1024.0 * 1024;
  else if (upper == "GI")
    scale = 1024.0 * 1024 * 1024;
  else if (upper == "TI")
    scale = 1024.0 * 1024 * 1024 * 1024;
  if (scale == 0 || number * scale > 9.0e18) {
    return Status::Invalid("expected a size such as 512MB or 4GiB, found '{}'", text);
  }
  return static_cast<int64_t>(std::llround(number * scale));
}

Result<double> ParseDuration(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!SplitNumber(text, &number, &unit) || number < 0) {
    return Status::Invalid("expected a duration such as 90, 90s, 15m or 2h, found '{}'", text);
  }
  if (unit.empty() || unit == "s") return number;
  if (unit == "m" || unit == "min") return number * 60;
  if (unit == "h") return number * 3600;
  return Status::Invalid("expected a duration such as 90, 90s, 15m or 2h, found '{}'", text);
}

}  // namespace deeprc::runtime
