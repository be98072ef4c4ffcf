#pragma once

#include <cstdint>
#include <string_view>

#include "deeprc/core/result.h"

namespace deeprc::runtime {

// Task states move forward only, one stage at a time (so that the event log shows every stage,
// even an empty one), and may end early in FAILED or CANCELED from any state that is not final:
//   NEW → SCHEDULING → STAGING_INPUT → EXECUTING → STAGING_OUTPUT → DONE
//   (any state that is not final) → FAILED | CANCELED
enum class TaskState : uint8_t {
  kNew,
  kScheduling,
  kStagingInput,
  kExecuting,
  kStagingOutput,
  kDone,
  kFailed,
  kCanceled,
};

// Pilot states follow the same rules:
//   NEW → LAUNCHING → ACTIVE → DONE, and (any state that is not final) → FAILED | CANCELED.
// A pilot ends DONE when it is shut down or when its runtime limit is over (its unfinished
// tasks are canceled first, with a reason naming the limit, and the pilot's DONE event carries
// that reason); FAILED when its agent could not start or was lost.
enum class PilotState : uint8_t {
  kNew,
  kLaunching,
  kActive,
  kDone,
  kFailed,
  kCanceled,
};

// "NEW", "SCHEDULING", "STAGING_INPUT", ... (the names the event log and summary.json use).
std::string_view TaskStateName(TaskState state);
std::string_view PilotStateName(PilotState state);
Result<TaskState> ParseTaskState(std::string_view name);
Result<PilotState> ParsePilotState(std::string_view name);

bool IsFinal(TaskState state);
bool IsFinal(PilotState state);

bool IsTransitionAllowed(TaskState from, TaskState to);
bool IsTransitionAllowed(PilotState from, PilotState to);

// OK when allowed; otherwise an internal error naming both states (the runtime asked for a
// transition its own rules forbid).
Status CheckTransition(TaskState from, TaskState to);
Status CheckTransition(PilotState from, PilotState to);

}  // namespace deeprc::runtime
