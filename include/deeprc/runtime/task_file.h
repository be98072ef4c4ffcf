#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/pool.h"

namespace deeprc::runtime {

// The file `deeprc tasks run FILE.yaml` takes:
//
//   pilot:                 # optional; PilotDescription fields
//     cores: 2
//   pools:                 # optional; worker pools for function tasks (PoolDescription)
//     - name: default
//       workers: 2
//   tasks:                 # TaskDescription fields
//     - name: b
//       executable: /bin/echo
//       arguments: [hi]
//     - name: a
//       executable: /bin/true
//       after: [b]
//     - function: echo_ranks   # a function task (mode: function is implied)
//       args: {}
//       ranks: 2
//
// A task's uid defaults to its name, else to "task.NNNNNN" (its position); `after` names uids.
// `mem_per_rank` and pilot `memory` take bytes or sizes ("4GB", "512MiB"); `timeout` and pilot
// `runtime` take seconds or durations ("90s", "15m", "2h"). Staging entries are a path (copied
// to the same name in the sandbox) or a mapping {source, target, action: copy|link|move}.
struct TaskFile {
  PilotDescription pilot;
  std::vector<PoolDescription> pools;
  std::vector<TaskDescription> tasks;
};

// Errors name the file, the line and column, and the field, e.g.
//   "run.yaml:7:23: tasks[1].cores_per_rank: expected a positive integer, found 'x'".
// String values may name variables: `${NAME}` (an error naming it when unset) or
// `${NAME:-default}`, taken from `variables` first, then the environment; `$$` is a literal `$`.
// ReadTaskFile sets TASK_FILE_DIR, the task file's own directory (absolute), so that a file can
// name data next to it wherever it is run from.
Result<TaskFile> ParseTaskFileText(std::string_view text, std::string_view source_name,
                                   const std::map<std::string, std::string>& variables = {});
Result<TaskFile> ReadTaskFile(const std::string& path);

}  // namespace deeprc::runtime
