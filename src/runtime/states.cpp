#include "deeprc/runtime/states.h"

#include <array>

namespace deeprc::runtime {
namespace {

constexpr std::array<std::string_view, 8> kTaskStateNames = {
    "NEW",  "SCHEDULING", "STAGING_INPUT", "EXECUTING", "STAGING_OUTPUT",
    "DONE", "FAILED",     "CANCELED"};
constexpr std::array<std::string_view, 6> kPilotStateNames = {"NEW",  "LAUNCHING", "ACTIVE",
                                                              "DONE", "FAILED",    "CANCELED"};

// The shared rule of both state machines: the success path is walked one step at a time, and the
// two early ends are reachable from every state that is not final.
template <typename State>
bool ForwardOnly(State from, State to, State done, State failed, State canceled) {
  if (from >= done) return false;  // done, failed and canceled are the last three values
  if (to == failed || to == canceled) return true;
  return static_cast<int>(to) == static_cast<int>(from) + 1;
}

}  // namespace

std::string_view TaskStateName(TaskState state) {
  const auto index = static_cast<size_t>(state);
  return index < kTaskStateNames.size() ? kTaskStateNames[index] : "UNKNOWN";
}

std::string_view PilotStateName(PilotState state) {
  const auto index = static_cast<size_t>(state);
  return index < kPilotStateNames.size() ? kPilotStateNames[index] : "UNKNOWN";
}

Result<TaskState> ParseTaskState(std::string_view name) {
  for (size_t i = 0; i < kTaskStateNames.size(); ++i) {
    if (kTaskStateNames[i] == name) return static_cast<TaskState>(i);
  }
  return Status::Invalid("unknown task state '{}'", name);
}

Result<PilotState> ParsePilotState(std::string_view name) {
  for (size_t i = 0; i < kPilotStateNames.size(); ++i) {
    if (kPilotStateNames[i] == name) return static_cast<PilotState>(i);
  }
  return Status::Invalid("unknown pilot state '{}'", name);
}

bool IsFinal(TaskState state) { return state >= TaskState::kDone; }
bool IsFinal(PilotState state) { return state >= PilotState::kDone; }

bool IsTransitionAllowed(TaskState from, TaskState to) {
  return ForwardOnly(from, to, TaskState::kDone, TaskState::kFailed, TaskState::kCanceled);
}

bool IsTransitionAllowed(PilotState from, PilotState to) {
  return ForwardOnly(from, to, PilotState::kDone, PilotState::kFailed, PilotState::kCanceled);
}

Status CheckTransition(TaskState from, TaskState to) {
  if (IsTransitionAllowed(from, to)) return Status::OK();
  return Status::Internal("task state cannot move from {} to {}", TaskStateName(from),
                          TaskStateName(to));
}

Status CheckTransition(PilotState from, PilotState to) {
  if (IsTransitionAllowed(from, to)) return Status::OK();
  return Status::Internal("pilot state cannot move from {} to {}", PilotStateName(from),
                          PilotStateName(to));
}

}  // namespace deeprc::runtime
