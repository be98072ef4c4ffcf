#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/states.h"

namespace deeprc::runtime {

// One task as the event log tells it.
struct TaskProfile {
  std::string uid;
  // Time of the first event of each state (0 when the task never was in it), by TaskState.
  int64_t entered_us[8] = {};
  TaskState final_state = TaskState::kNew;
  int64_t final_us = 0;
  // The slots the scheduler gave it (empty when it never started): (node, core) and (node, GPU).
  std::vector<std::pair<int32_t, int32_t>> cores;
  std::vector<std::pair<int32_t, int32_t>> gpus;
  // The uids it waited for.
  std::vector<std::string> after;
  // EXECUTING: from its event to the next one (0, 0 when it never executed).
  int64_t executing_begin_us = 0;
  int64_t executing_end_us = 0;
};

// What `deeprc analyze` reports of a session, from events.jsonl.
//
// Definitions:
//  - span: first NEW to last final event of a task.
//  - utilization: core-time of EXECUTING (time × the task's cores) ÷ (pilot cores × span).
//  - throughput: final tasks ÷ span.
//  - time in state S: per task, from its S event to its next event; summed and averaged.
//  - overhead per task, the runtime's share of a task's life (not the executable's, not waiting
//    for a free slot or for its dependencies): start overhead = EXECUTING time − max(NEW time,
//    the time its cores were last released, i.e. the final event of the previous task on any of
//    them, the final events of the tasks in its `after`); end overhead =
//    final event − end of EXECUTING (output staging, post_exec, reporting). Tasks that never
//    executed have none.
struct SessionProfile {
  std::vector<TaskProfile> tasks;
  int64_t pilot_cores = 0;
  int64_t pilot_gpus = 0;
  int32_t pilot_nodes = 0;
  int64_t begin_us = 0;
  int64_t end_us = 0;
  std::map<std::string, int64_t> final_counts;  // by state name
  double utilization = 0;
  double throughput_per_s = 0;
  // By state name: total and mean (over tasks that were in it) microseconds.
  std::map<std::string, std::pair<int64_t, double>> time_in_state_us;
  double mean_start_overhead_us = 0;
  double median_start_overhead_us = 0;
  double mean_end_overhead_us = 0;
  double median_end_overhead_us = 0;
};

// Reads <session_dir>/events.jsonl. Errors name the file and line.
Result<SessionProfile> AnalyzeSession(const std::string& session_dir);

// An SVG picture: one row per core (then per GPU), one bar per task on its slots over its
// EXECUTING interval, coloured by final state; the time axis is the session's span.
std::string TimelineSvg(const SessionProfile& profile);

}  // namespace deeprc::runtime
