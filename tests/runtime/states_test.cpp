#include "deeprc/runtime/states.h"

#include <gtest/gtest.h>

#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

constexpr TaskState kAllTaskStates[] = {TaskState::kNew,           TaskState::kScheduling,
                                        TaskState::kStagingInput,  TaskState::kExecuting,
                                        TaskState::kStagingOutput, TaskState::kDone,
                                        TaskState::kFailed,        TaskState::kCanceled};

TEST(TaskStateTest, SuccessPathIsWalkedOneStepAtATime) {
  const TaskState path[] = {TaskState::kNew,           TaskState::kScheduling,
                            TaskState::kStagingInput,  TaskState::kExecuting,
                            TaskState::kStagingOutput, TaskState::kDone};
  for (size_t i = 0; i + 1 < std::size(path); ++i) {
    EXPECT_TRUE(IsTransitionAllowed(path[i], path[i + 1]))
        << TaskStateName(path[i]) << " → " << TaskStateName(path[i + 1]);
    EXPECT_OK(CheckTransition(path[i], path[i + 1]));
  }
  // No skipping a stage, no going back, no standing still.
  EXPECT_FALSE(IsTransitionAllowed(TaskState::kNew, TaskState::kExecuting));
  EXPECT_FALSE(IsTransitionAllowed(TaskState::kScheduling, TaskState::kDone));
  EXPECT_FALSE(IsTransitionAllowed(TaskState::kExecuting, TaskState::kScheduling));
  EXPECT_FALSE(IsTransitionAllowed(TaskState::kExecuting, TaskState::kExecuting));
}

TEST(TaskStateTest, FailedAndCanceledReachableFromEveryUnfinishedState) {
  for (TaskState from : kAllTaskStates) {
    const bool final =
        from == TaskState::kDone || from == TaskState::kFailed || from == TaskState::kCanceled;
    EXPECT_EQ(IsFinal(from), final) << TaskStateName(from);
    EXPECT_EQ(IsTransitionAllowed(from, TaskState::kFailed), !final) << TaskStateName(from);
    EXPECT_EQ(IsTransitionAllowed(from, TaskState::kCanceled), !final) << TaskStateName(from);
  }
}

TEST(TaskStateTest, FinalStatesAreFinal) {
  for (TaskState from : {TaskState::kDone, TaskState::kFailed, TaskState::kCanceled}) {
    for (TaskState to : kAllTaskStates) {
      EXPECT_FALSE(IsTransitionAllowed(from, to))
          << TaskStateName(from) << " → " << TaskStateName(to);
    }
  }
  const Status status = CheckTransition(TaskState::kDone, TaskState::kExecuting);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_EQ(status.message(), "task state cannot move from DONE to EXECUTING");
}

TEST(TaskStateTest, NamesRoundTrip) {
  for (TaskState state : kAllTaskStates) {
    ASSERT_OK_AND_ASSIGN(TaskState parsed, ParseTaskState(TaskStateName(state)));
    EXPECT_EQ(parsed, state);
  }
  EXPECT_EQ(TaskStateName(TaskState::kStagingInput), "STAGING_INPUT");
  EXPECT_FALSE(ParseTaskState("RUNNING").ok());
}

TEST(PilotStateTest, SameRulesAsTasks) {
  EXPECT_TRUE(IsTransitionAllowed(PilotState::kNew, PilotState::kLaunching));
  EXPECT_TRUE(IsTransitionAllowed(PilotState::kLaunching, PilotState::kActive));
  EXPECT_TRUE(IsTransitionAllowed(PilotState::kActive, PilotState::kDone));
  EXPECT_TRUE(IsTransitionAllowed(PilotState::kNew, PilotState::kCanceled));
  EXPECT_TRUE(IsTransitionAllowed(PilotState::kLaunching, PilotState::kFailed));
  EXPECT_FALSE(IsTransitionAllowed(PilotState::kNew, PilotState::kActive));
  EXPECT_FALSE(IsTransitionAllowed(PilotState::kLaunching, PilotState::kDone));
  EXPECT_FALSE(IsTransitionAllowed(PilotState::kFailed, PilotState::kActive));
  EXPECT_FALSE(IsTransitionAllowed(PilotState::kDone, PilotState::kCanceled));
  ASSERT_OK_AND_ASSIGN(PilotState active, ParsePilotState("ACTIVE"));
  EXPECT_EQ(active, PilotState::kActive);
  EXPECT_EQ(CheckTransition(PilotState::kDone, PilotState::kNew).message(),
            "pilot state cannot move from DONE to NEW");
}

}  // namespace
}  // namespace deeprc::runtime
