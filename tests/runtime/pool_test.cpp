// Function tasks on real worker pools: `deeprc-worker` ranks under mpirun, started by an agent in
// this process, talking to their master over ZeroMQ.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "deeprc/runtime/agent.h"
#include "deeprc/runtime/client.h"
#include "deeprc/runtime/function.h"
#include "deeprc/runtime/session.h"
#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

const std::string kWorker = std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc-worker";
const std::string kPluginDir = std::string(DEEPRC_BINARY_DIR) + "/tests";

// Every session of this program goes under one root, removed at the end unless a test failed
// (then it stays for a look).
class RemoveSessionRoot : public ::testing::Environment {
 public:
  void TearDown() override {
    if (::testing::UnitTest::GetInstance()->failed_test_count() > 0) return;
    std::error_code ignored;
    fs::remove_all(fs::temp_directory_path().string() + "/deeprc_pool_test." +
                       std::to_string(::getpid()),
                   ignored);
  }
};
// gtest owns the environment.
[[maybe_unused]] ::testing::Environment* const kRemoveSessionRoot =
    ::testing::AddGlobalTestEnvironment(new RemoveSessionRoot);

TaskDescription Function(std::string uid, std::string function, json args = json::object(),
                         int32_t ranks = 1) {
  TaskDescription task;
  task.uid = std::move(uid);
  task.mode = TaskMode::kFunction;
  task.function = std::move(function);
  task.args = std::move(args);
  task.ranks = ranks;
  return task;
}

PoolDescription Pool(std::string name, int32_t workers) {
  PoolDescription pool;
  pool.name = std::move(name);
  pool.workers = workers;
  pool.program = kWorker;
  return pool;
}

// An agent with pools, and the results it delivers.
class Harness {
 public:
  explicit Harness(std::vector<PoolDescription> pools, int32_t cores = 4,
                   std::chrono::milliseconds grace = 1000ms) {
    SessionOptions session_options;
    session_options.root =
        fs::temp_directory_path().string() + "/deeprc_pool_test." + std::to_string(::getpid());
    session_ = Session::Make(session_options).ValueOrDie();
    AgentOptions options;
    options.session_dir = session_->directory();
    options.nodes = {NodeResources{cores, 0, 0}};
    options.events = &session_->events();
    options.pools.pools = std::move(pools);
    options.pools.heartbeat_interval = 100ms;
    options.pools.heartbeat_timeout = 3000ms;
    options.pools.cancel_grace = grace;
    options.kill_grace = 500ms;
    options.on_event = [this](const TaskEvent& event) {
      std::lock_guard lock(mutex_);
      states_[event.uid].push_back(event.state);
      times_[event.uid][event.state] = event.time_us;
    };
    options.on_result = [this](ExecutionResult result) {
      {
        std::lock_guard lock(mutex_);
        results_[result.uid] = std::move(result);
      }
      changed_.notify_all();
    };
    made_ = Agent::Make(std::move(options));
  }

  // The agent calls back into the members below: it goes first.
  ~Harness() {
    if (made_.ok()) (*made_)->Shutdown();
  }

  Agent& agent() { return **made_; }
  Status made() const { return made_.status(); }
  const std::string& directory() const { return session_->directory(); }

  ExecutionResult Wait(const std::string& uid, std::chrono::milliseconds timeout = 60s) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return results_.contains(uid); })) {
      ADD_FAILURE() << "no result for " << uid << " within " << timeout.count() << " ms";
      return {};
    }
    return results_.at(uid);
  }

  std::vector<TaskState> States(const std::string& uid) {
    std::lock_guard lock(mutex_);
    return states_[uid];
  }

  // When the task entered `state` (µs), -1 if it did not.
  int64_t Time(const std::string& uid, TaskState state) {
    std::lock_guard lock(mutex_);
    auto found = times_[uid].find(state);
    return found == times_[uid].end() ? -1 : found->second;
  }

  // Waits until the pool reports `predicate` (its status is refreshed by the master's loop).
  PoolStatus WaitPool(size_t index, const std::function<bool(const PoolStatus&)>& predicate,
                      std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      PoolStatus status = agent().pool_status().at(index);
      if (predicate(status)) return status;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "pool condition not reached within " << timeout.count() << " ms";
    return agent().pool_status().at(index);
  }

 private:
  std::unique_ptr<Session> session_;
  Result<std::unique_ptr<Agent>> made_ = Status::Internal("not made");
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, ExecutionResult> results_;
  std::map<std::string, std::vector<TaskState>> states_;
  std::map<std::string, std::map<TaskState, int64_t>> times_;
};

TEST(PoolTest, ResultsExceptionsAndOutputReachTheClient) {
  Harness harness({Pool("default", 2)});
  ASSERT_OK(harness.made());
  std::mt19937 random(std::random_device{}());
  const double seconds = std::uniform_int_distribution<int>(1, 20)(random) / 1000.0;
  ASSERT_OK(harness.agent().Submit(
      {Function("noop", "noop"), Function("sleep", "sleep", {{"seconds", seconds}}),
       Function("fail", "fail", {{"message", "boom " + std::to_string(seconds)}}),
       Function("out", "write_output", {{"text", "hello"}}, 2)},
      NowMicros()));
  ExecutionResult noop = harness.Wait("noop");
  EXPECT_EQ(noop.state, TaskState::kDone) << noop.reason;
  EXPECT_TRUE(noop.value.is_null());
  ExecutionResult sleep = harness.Wait("sleep");
  EXPECT_EQ(sleep.state, TaskState::kDone) << sleep.reason;
  EXPECT_DOUBLE_EQ(sleep.value.get<double>(), seconds);
  ExecutionResult fail = harness.Wait("fail");
  EXPECT_EQ(fail.state, TaskState::kFailed);
  EXPECT_EQ(fail.reason, "boom " + std::to_string(seconds));
  ExecutionResult out = harness.Wait("out");
  EXPECT_EQ(out.state, TaskState::kDone) << out.reason;
  EXPECT_EQ(out.stdout_tail, "rank 0: hello\nrank 1: hello\n");
  EXPECT_NE(out.stderr_tail.find("[out rank 1] hello"), std::string::npos) << out.stderr_tail;
  EXPECT_EQ(
      harness.States("noop"),
      (std::vector<TaskState>{TaskState::kNew, TaskState::kScheduling, TaskState::kStagingInput,
                              TaskState::kExecuting, TaskState::kStagingOutput, TaskState::kDone}));
  // The exception left the pool as it was: the next task runs on the same generation.
  ASSERT_OK(harness.agent().Submit({Function("after", "noop")}, NowMicros()));
  EXPECT_EQ(harness.Wait("after").state, TaskState::kDone);
  PoolStatus status = harness.agent().pool_status().at(0);
  EXPECT_EQ(status.generation, 1);
  EXPECT_EQ(status.restarts, 0);
}

TEST(PoolTest, TaskQueuedOnARankIsExecutingWhenTheRankStartsIt) {
  // One rank: the second task waits there behind the first, and only becomes EXECUTING when
  // the rank starts it (the rank lists it with its next results), not when it was sent.
  Harness harness({Pool("default", 1)});
  ASSERT_OK(harness.made());
  std::mt19937 random(std::random_device{}());
  const double seconds = std::uniform_int_distribution<int>(100, 300)(random) / 1000.0;
  ASSERT_OK(harness.agent().Submit(
      {Function("first", "sleep", {{"seconds", seconds}}), Function("queued", "noop")},
      NowMicros()));
  ASSERT_EQ(harness.Wait("first").state, TaskState::kDone);
  ASSERT_EQ(harness.Wait("queued").state, TaskState::kDone);
  const std::vector<TaskState> all = {TaskState::kNew,       TaskState::kScheduling,
                                      TaskState::kStagingInput, TaskState::kExecuting,
                                      TaskState::kStagingOutput, TaskState::kDone};
  EXPECT_EQ(harness.States("first"), all);
  EXPECT_EQ(harness.States("queued"), all);
  const int64_t first_executing = harness.Time("first", TaskState::kExecuting);
  const int64_t queued_staging = harness.Time("queued", TaskState::kStagingInput);
  const int64_t queued_executing = harness.Time("queued", TaskState::kExecuting);
  // Sent at once (the master dispatches both in one pass) ...
  EXPECT_LT(queued_staging, first_executing + static_cast<int64_t>(seconds * 1e6));
  // ... started after the sleep.
  EXPECT_GE(queued_executing, first_executing + static_cast<int64_t>(seconds * 1e6));
}

TaskDescription Executable(std::string uid, std::vector<std::string> after) {
  TaskDescription task;
  task.uid = std::move(uid);
  task.executable = "/bin/true";
  task.after = std::move(after);
  return task;
}

TaskDescription After(TaskDescription task, std::vector<std::string> after) {
  task.after = std::move(after);
  return task;
}

TEST(PoolTest, DependenciesBetweenFunctionAndExecutableTasks) {
  Harness harness({Pool("default", 2)});
  ASSERT_OK(harness.made());
  std::mt19937 random(std::random_device{}());
  const double seconds = std::uniform_int_distribution<int>(10, 100)(random) / 1000.0;
  const std::string message = "broken " + std::to_string(random());
  // f1 → e1 → f2, f3 after f1 and e1 (a 2-rank task); fail → g → x: the failure travels down.
  ASSERT_OK(harness.agent().Submit(
      {Function("f1", "sleep", {{"seconds", seconds}}), Executable("e1", {"f1"}),
       After(Function("f2", "noop"), {"e1"}),
       After(Function("f3", "echo_ranks", json::object(), 2), {"f1", "e1"}),
       Function("fail", "fail", {{"message", message}}), After(Function("g", "noop"), {"fail"}),
       Executable("x", {"g"}), Function("solo", "noop"),
       Function("solo_fail", "fail", {{"message", message}})},
      NowMicros()));
  for (const char* uid : {"f1", "e1", "f2", "f3"}) {
    ExecutionResult result = harness.Wait(uid);
    EXPECT_EQ(result.state, TaskState::kDone) << uid << ": " << result.reason;
  }
  // Each started after what it waits for had ended.
  auto ended = [&](const std::string& uid) { return harness.Time(uid, TaskState::kDone); };
  auto executing = [&](const std::string& uid) {
    return harness.Time(uid, TaskState::kExecuting);
  };
  EXPECT_GE(executing("e1"), ended("f1"));
  EXPECT_GE(executing("f2"), ended("e1"));
  EXPECT_GE(executing("f3"), std::max(ended("f1"), ended("e1")));
  EXPECT_EQ(harness.Wait("f3").value["size"], 2);
  EXPECT_EQ(harness.Wait("fail").reason, message);
  ExecutionResult g = harness.Wait("g");
  EXPECT_EQ(g.state, TaskState::kFailed);
  EXPECT_EQ(g.reason, "dependency 'fail' failed");
  ExecutionResult x = harness.Wait("x");
  EXPECT_EQ(x.state, TaskState::kFailed);
  EXPECT_EQ(x.reason, "dependency 'g' failed");
  // Neither ran.
  EXPECT_EQ(executing("g"), -1);
  EXPECT_EQ(executing("x"), -1);

  // A later batch may wait for tasks that have ended: DONE ones let it run, a failed one fails
  // it at once; also for function tasks nothing waited for when they ran (solo, solo_fail).
  EXPECT_EQ(harness.Wait("solo").state, TaskState::kDone);
  EXPECT_EQ(harness.Wait("solo_fail").state, TaskState::kFailed);
  ASSERT_OK(harness.agent().Submit(
      {After(Function("late", "noop"), {"f2", "e1"}), Executable("late_exec", {"f3"}),
       After(Function("late_fail", "noop"), {"fail"}), Executable("after_solo", {"solo"}),
       After(Function("after_solo_fail", "noop"), {"solo_fail"})},
      NowMicros()));
  EXPECT_EQ(harness.Wait("after_solo").state, TaskState::kDone);
  ExecutionResult after_solo_fail = harness.Wait("after_solo_fail");
  EXPECT_EQ(after_solo_fail.state, TaskState::kFailed);
  EXPECT_EQ(after_solo_fail.reason, "dependency 'solo_fail' failed");
  EXPECT_EQ(harness.Wait("late").state, TaskState::kDone);
  EXPECT_EQ(harness.Wait("late_exec").state, TaskState::kDone);
  ExecutionResult late_fail = harness.Wait("late_fail");
  EXPECT_EQ(late_fail.state, TaskState::kFailed);
  EXPECT_EQ(late_fail.reason, "dependency 'fail' failed");
  // An unknown dependency and a cycle are refused at submission.
  EXPECT_FALSE(harness.agent().Submit({After(Function("orphan", "noop"), {"nobody"})}, NowMicros()).ok());
  EXPECT_FALSE(harness.agent()
                   .Submit({After(Function("c1", "noop"), {"c2"}), After(Function("c2", "noop"), {"c1"})},
                           NowMicros())
                   .ok());
}

TEST(PoolTest, CancelingAFunctionTaskThatWaitsFailsItsDependents) {
  Harness harness({Pool("default", 1)});
  ASSERT_OK(harness.made());
  // "blocker" holds the only rank; "waiting" waits for it; "tail" for "waiting".
  ASSERT_OK(harness.agent().Submit({Function("blocker", "sleep", {{"seconds", 0.3}}),
                                    After(Function("waiting", "noop"), {"blocker"}),
                                    Executable("tail", {"waiting"})},
                                   NowMicros()));
  harness.agent().Cancel({"waiting"});
  EXPECT_EQ(harness.Wait("waiting").state, TaskState::kCanceled);
  ExecutionResult tail = harness.Wait("tail");
  EXPECT_EQ(tail.state, TaskState::kFailed);
  EXPECT_EQ(tail.reason, "dependency 'waiting' was canceled");
  EXPECT_EQ(harness.Wait("blocker").state, TaskState::kDone);
}

TEST(PoolTest, TwoRankFunctionGetsACommunicatorOverExactlyItsRanks) {
  Harness harness({Pool("default", 4)});
  ASSERT_OK(harness.made());
  // Two ranks are busy with long tasks; the 2-rank task gets the other two, and its all-reduce
  // sees exactly them.
  ASSERT_OK(harness.agent().Submit({Function("busy0", "sleep", {{"seconds", 1.5}}),
                                    Function("busy1", "sleep", {{"seconds", 1.5}})},
                                   NowMicros()));
  harness.WaitPool(0, [](const PoolStatus& s) { return s.running == 2; });
  ASSERT_OK(
      harness.agent().Submit({Function("pair", "echo_ranks", json::object(), 2)}, NowMicros()));
  ExecutionResult pair = harness.Wait("pair");
  ASSERT_EQ(pair.state, TaskState::kDone) << pair.reason;
  EXPECT_EQ(pair.value["size"], 2);
  EXPECT_EQ(pair.value["count"], 2);
  EXPECT_EQ(pair.value["rank"], 0);
  const auto ranks = pair.value["ranks"].get<std::vector<int32_t>>();
  ASSERT_EQ(ranks.size(), 2u);
  EXPECT_LT(ranks[0], ranks[1]);
  EXPECT_EQ(pair.value["sum"], ranks[0] + ranks[1]);
  EXPECT_EQ(pair.value["max"], ranks[1]);
  // The pair ran on the two free ranks while the sleeps went on: it ended before them.
  ExecutionResult busy0 = harness.Wait("busy0");
  ExecutionResult busy1 = harness.Wait("busy1");
  EXPECT_EQ(busy0.state, TaskState::kDone);
  EXPECT_EQ(busy1.state, TaskState::kDone);
  EXPECT_LT(pair.end_us, std::min(busy0.end_us, busy1.end_us));
  // All four ranks in one communicator.
  ASSERT_OK(
      harness.agent().Submit({Function("all", "echo_ranks", json::object(), 4)}, NowMicros()));
  ExecutionResult all = harness.Wait("all");
  ASSERT_EQ(all.state, TaskState::kDone) << all.reason;
  EXPECT_EQ(all.value["sum"], 0 + 1 + 2 + 3);
  EXPECT_EQ(all.value["ranks"], json({0, 1, 2, 3}));
}

TEST(PoolTest, UnknownFunctionsAndTooManyRanksAreRejectedAtSubmission) {
  Harness harness({Pool("default", 2)});
  ASSERT_OK(harness.made());
  Status missing = harness.agent().Submit({Function("x", "no_such_function")}, NowMicros());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("no_such_function"), std::string::npos) << missing.message();
  EXPECT_NE(missing.message().find("tasks[0]"), std::string::npos) << missing.message();
  Status wide = harness.agent().Submit({Function("y", "noop", json::object(), 3)}, NowMicros());
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.message().find("2 workers"), std::string::npos) << wide.message();
  TaskDescription named = Function("z", "noop");
  named.master = "elsewhere";
  Status unknown_pool = harness.agent().Submit({named}, NowMicros());
  ASSERT_FALSE(unknown_pool.ok());
  EXPECT_NE(unknown_pool.message().find("elsewhere"), std::string::npos);
  // Nothing of the rejected batches ran; a good task still does.
  ASSERT_OK(harness.agent().Submit({Function("good", "noop")}, NowMicros()));
  EXPECT_EQ(harness.Wait("good").state, TaskState::kDone);
}

TEST(PoolTest, PoolLargerThanThePilotIsBrokenWithTheReason) {
  Harness harness({Pool("huge", 6)}, 4);
  ASSERT_OK(harness.made());
  // Refused at submission once the pool is known broken; FAILED with the reason before that.
  Status submitted = harness.agent().Submit({Function("t", "noop")}, NowMicros());
  const std::string reason = submitted.ok() ? harness.Wait("t", 30s).reason : submitted.message();
  EXPECT_NE(reason.find("huge"), std::string::npos) << reason;
  EXPECT_NE(reason.find("broken"), std::string::npos) << reason;
  EXPECT_NE(reason.find("6 ranks"), std::string::npos) << reason;  // the scheduler's words
  harness.WaitPool(0, [](const PoolStatus& s) { return s.state == "broken"; });
}

TEST(PoolTest, MissingPluginIsAnErrorAtStart) {
  PoolDescription pool = Pool("plugged", 1);
  pool.plugins = {"/nonexistent/libdeeprc_plugin.so"};
  Harness harness({pool});
  ASSERT_FALSE(harness.made().ok());
  EXPECT_NE(harness.made().message().find("/nonexistent/libdeeprc_plugin.so"), std::string::npos)
      << harness.made().message();
}

TEST(PoolTest, PluginThatFailsToLoadBreaksThePoolWithTheReason) {
  // Not a shared library: dlopen fails on every rank.
  const std::string bogus =
      fs::temp_directory_path().string() + "/deeprc_bogus_plugin." + std::to_string(::getpid());
  { std::ofstream(bogus) << "not an ELF file\n"; }
  PoolDescription pool = Pool("plugged", 1);
  pool.plugins = {bogus};
  Harness harness({pool});
  ASSERT_OK(harness.made());
  // Accepted while the ranks have not said which functions they have.
  ASSERT_OK(harness.agent().Submit({Function("p", "from_plugin")}, NowMicros()));
  ExecutionResult result = harness.Wait("p");
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_NE(result.reason.find(bogus), std::string::npos) << result.reason;
  EXPECT_NE(result.reason.find("cannot load"), std::string::npos) << result.reason;
  Status later = harness.agent().Submit({Function("q", "noop")}, NowMicros());
  EXPECT_FALSE(later.ok());
  EXPECT_NE(later.message().find("broken"), std::string::npos) << later.message();
  fs::remove(bogus);
}

TEST(PoolTest, PluginFunctionsRunAndUnknownNamesFail) {
  const std::string plugin = kPluginDir + "/libdeeprc_test_plugin.so";
  PoolDescription pool = Pool("plugged", 1);
  pool.plugins = {plugin};
  Harness harness({pool});
  ASSERT_OK(harness.made());
  std::mt19937 random(std::random_device{}());
  const int a = std::uniform_int_distribution<int>(-1000, 1000)(random);
  const int b = std::uniform_int_distribution<int>(-1000, 1000)(random);
  ASSERT_OK(harness.agent().Submit(
      {Function("add", "test.add", {{"a", a}, {"b", b}}), Function("nope", "test.absent")},
      NowMicros()));
  ExecutionResult add = harness.Wait("add");
  ASSERT_EQ(add.state, TaskState::kDone) << add.reason;
  EXPECT_EQ(add.value.get<int>(), a + b);
  ExecutionResult nope = harness.Wait("nope");
  EXPECT_EQ(nope.state, TaskState::kFailed);
  EXPECT_NE(nope.reason.find("test.absent"), std::string::npos) << nope.reason;
  EXPECT_NE(nope.reason.find("test.add"), std::string::npos) << nope.reason;  // lists the known
  // Now that the ranks reported, an unknown name is refused at submission.
  Status refused = harness.agent().Submit({Function("nope2", "test.absent")}, NowMicros());
  EXPECT_FALSE(refused.ok());
}

TEST(PoolTest, TimeoutCancelsCooperativelyOrKillsAndRestartsThePool) {
  Harness harness({Pool("default", 2)}, 4, 500ms);
  ASSERT_OK(harness.made());
  TaskDescription polite = Function("polite", "sleep", {{"seconds", 30}});
  polite.timeout = 0.3;
  ASSERT_OK(harness.agent().Submit({polite}, NowMicros()));
  ExecutionResult first = harness.Wait("polite", 20s);
  EXPECT_EQ(first.state, TaskState::kCanceled);
  EXPECT_NE(first.reason.find("timeout after 0.3s"), std::string::npos) << first.reason;
  EXPECT_EQ(harness.agent().pool_status().at(0).restarts, 0);

  TaskDescription deaf_to_cancel =
      Function("deaf_to_cancel", "sleep", {{"seconds", 30}, {"ignore_cancel", true}});
  deaf_to_cancel.timeout = 0.3;
  ASSERT_OK(harness.agent().Submit({deaf_to_cancel}, NowMicros()));
  ExecutionResult second = harness.Wait("deaf_to_cancel", 20s);
  EXPECT_EQ(second.state, TaskState::kCanceled);
  EXPECT_NE(second.reason.find("did not stop"), std::string::npos) << second.reason;
  PoolStatus status = harness.WaitPool(
      0, [](const PoolStatus& s) { return s.state == "ready" && s.generation == 2; });
  EXPECT_EQ(status.restarts, 1);
  ASSERT_OK(
      harness.agent().Submit({Function("after", "echo_ranks", json::object(), 2)}, NowMicros()));
  ExecutionResult after = harness.Wait("after");
  EXPECT_EQ(after.state, TaskState::kDone) << after.reason;
}

TEST(PoolTest, ClientCancelOfARunningFunction) {
  Harness harness({Pool("default", 1)});
  ASSERT_OK(harness.made());
  ASSERT_OK(harness.agent().Submit(
      {Function("long", "sleep", {{"seconds", 30}}), Function("queued", "noop")}, NowMicros()));
  harness.WaitPool(0, [](const PoolStatus& s) { return s.running >= 1; });
  std::this_thread::sleep_for(100ms);
  harness.agent().Cancel({"long", "queued"});
  EXPECT_EQ(harness.Wait("long", 10s).state, TaskState::kCanceled);
  ExecutionResult queued = harness.Wait("queued", 10s);
  EXPECT_TRUE(queued.state == TaskState::kCanceled || queued.state == TaskState::kDone);
}

TEST(PoolTest, KilledWorkerFailsItsTaskAndThePoolRestarts) {
  Harness harness({Pool("default", 2)});
  ASSERT_OK(harness.made());
  // Learn the ranks' pids from a function that reports them.
  ASSERT_OK(harness.agent().Submit({Function("victim", "sleep", {{"seconds", 30}})}, NowMicros()));
  harness.WaitPool(0, [](const PoolStatus& s) { return s.running == 1; });
  std::this_thread::sleep_for(200ms);
  const std::vector<int32_t> pids = harness.agent().pool_status().at(0).pids;
  ASSERT_EQ(pids.size(), 2u);
  // Kill one rank at random: the task FAILS (it ran on the dead rank, or was lost with the pool).
  std::mt19937 random(std::random_device{}());
  const pid_t dead = pids[std::uniform_int_distribution<size_t>(0, 1)(random)];
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::kill(dead, SIGKILL), 0);
  ExecutionResult victim = harness.Wait("victim", 20s);
  EXPECT_EQ(victim.state, TaskState::kFailed);
  EXPECT_NE(victim.reason.find("(pid " + std::to_string(dead) + ")"), std::string::npos)
      << victim.reason;
  PoolStatus status = harness.WaitPool(
      0, [](const PoolStatus& s) { return s.state == "ready" && s.generation == 2; });
  EXPECT_EQ(status.restarts, 1);
  // The queue carries on.
  ASSERT_OK(
      harness.agent().Submit({Function("next", "echo_ranks", json::object(), 2)}, NowMicros()));
  EXPECT_EQ(harness.Wait("next").state, TaskState::kDone);
}

TEST(PoolTest, TenThousandTasksLeakNoCommunicatorsDescriptorsOrMemory) {
  Harness harness({Pool("default", 2)});
  ASSERT_OK(harness.made());
  auto run = [&](int first, int count) {
    std::vector<TaskDescription> batch;
    for (int i = first; i < first + count; ++i) {
      // Every fifth task is a 2-rank task with its own sub-communicator.
      batch.push_back(i % 5 == 0
                          ? Function("t." + std::to_string(i), "echo_ranks", json::object(), 2)
                          : Function("t." + std::to_string(i), "noop"));
      if (batch.size() == 1000) {
        ASSERT_OK(harness.agent().Submit(std::move(batch), NowMicros()));
        batch.clear();
      }
    }
    if (!batch.empty()) ASSERT_OK(harness.agent().Submit(std::move(batch), NowMicros()));
    for (int i = first; i < first + count; ++i) {
      ExecutionResult result = harness.Wait("t." + std::to_string(i));
      ASSERT_EQ(result.state, TaskState::kDone) << result.uid << ": " << result.reason;
    }
  };
  auto settled = [&](int64_t tasks) {
    const int64_t seen = harness.agent().pool_status().at(0).heartbeats;
    return harness.WaitPool(
        0, [&](const PoolStatus& s) { return s.rank_tasks >= tasks && s.heartbeats >= seen + 4; });
  };
  run(0, 2000);
  const PoolStatus warm = settled(2000 + 400);
  run(2000, 8000);
  const PoolStatus end = settled(10000 + 2000);
  EXPECT_EQ(end.live_communicators, 0);
  EXPECT_EQ(end.open_fds, warm.open_fds);
  // Resident memory may move by allocator noise, not by the 8,000 tasks' worth.
  EXPECT_LT(end.rss_kb, warm.rss_kb + 4096) << warm.rss_kb << " → " << end.rss_kb;
  EXPECT_EQ(end.restarts, 0);
}

TEST(PoolTest, FunctionTasksThroughTheTaskManager) {
  SessionOptions session_options;
  session_options.root =
      fs::temp_directory_path().string() + "/deeprc_pool_test." + std::to_string(::getpid());
  auto session = Session::Make(session_options).ValueOrDie();
  PilotManager pilots(*session);
  PilotOptions options;
  options.pools.pools = {Pool("a", 1), Pool("b", 1)};
  PilotDescription description;
  description.cores = 2;
  ASSERT_OK_AND_ASSIGN(Pilot * pilot, pilots.Submit(description, options));
  TaskManager tasks(*session);
  ASSERT_OK(tasks.AddPilot(*pilot));
  std::vector<TaskDescription> batch;
  for (int i = 0; i < 20; ++i) batch.push_back(Function("", "echo_ranks"));
  batch[3].master = "b";
  ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit(std::move(batch)));
  Status waited = tasks.Wait(uids, FinalTaskStates(), 60s);
  ASSERT_TRUE(waited.ok()) << waited.ToString() << "; pools: " << pilot->pool_status().at(0).state
                           << " " << pilot->pool_status().at(0).broken_reason << ", "
                           << pilot->pool_status().at(1).state << " queued "
                           << pilot->pool_status().at(0).queued << " done "
                           << pilot->pool_status().at(0).done << " pids "
                           << pilot->pool_status().at(0).pids.size();
  for (const std::string& uid : uids) {
    ASSERT_OK_AND_ASSIGN(ExecutionResult result, tasks.result(uid));
    EXPECT_EQ(result.state, TaskState::kDone) << uid << ": " << result.reason;
    EXPECT_EQ(result.value["size"], 1);
  }
  EXPECT_FALSE(tasks.Submit({Function("", "missing")}).ok());
}

}  // namespace
}  // namespace deeprc::runtime

namespace deeprc::runtime {
namespace {

TEST(PoolTest, FunctionTasksThroughAnAgentProcess) {
  SessionOptions session_options;
  session_options.root =
      fs::temp_directory_path().string() + "/deeprc_pool_test." + std::to_string(::getpid());
  auto session = Session::Make(session_options).ValueOrDie();
  PilotManager pilots(*session);
  PilotOptions options;
  options.agent_process = true;
  options.agent_program = std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc";
  options.pools.pools = {Pool("default", 2)};
  PilotDescription description;
  description.cores = 2;
  ASSERT_OK_AND_ASSIGN(Pilot * pilot, pilots.Submit(description, options));
  TaskManager tasks(*session);
  ASSERT_OK(tasks.AddPilot(*pilot));
  std::mt19937 random(std::random_device{}());
  const std::string message = "remote " + std::to_string(random());
  ASSERT_OK_AND_ASSIGN(auto uids,
                       tasks.Submit({Function("", "echo_ranks", json::object(), 2),
                                     Function("", "fail", {{"message", message}}),
                                     Function("", "write_output", {{"text", message}})}));
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 60s));
  ASSERT_OK_AND_ASSIGN(ExecutionResult pair, tasks.result(uids[0]));
  EXPECT_EQ(pair.state, TaskState::kDone) << pair.reason;
  EXPECT_EQ(pair.value["ranks"], json({0, 1}));
  ASSERT_OK_AND_ASSIGN(ExecutionResult fail, tasks.result(uids[1]));
  EXPECT_EQ(fail.state, TaskState::kFailed);
  EXPECT_EQ(fail.reason, message);
  ASSERT_OK_AND_ASSIGN(ExecutionResult out, tasks.result(uids[2]));
  EXPECT_EQ(out.stdout_tail, "rank 0: " + message + "\n");
  // Function names are checked at submission, as in process (agent_process_test has the rest).
  Result<std::vector<std::string>> missing = tasks.Submit({Function("", "no_such_function")});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no_such_function"), std::string::npos)
      << missing.status().ToString();
}

}  // namespace
}  // namespace deeprc::runtime

#include "deeprc/compute/join.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/sort.h"
#include "deeprc/table/table_file.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::runtime {
namespace {

// Partitioned tables in the session directory, as the data functions read and write them.
void WriteParts(const std::string& session, const std::string& name,
                const std::vector<Table>& parts) {
  fs::create_directories(session + "/data/" + name);
  for (size_t r = 0; r < parts.size(); ++r) {
    ASSERT_OK(WriteTableFile(parts[r], fmt::format("{}/data/{}/part-{}.drt", session, name, r)));
  }
}

Table ReadParts(const std::string& session, const std::string& name, int count) {
  std::vector<Table> parts;
  for (int r = 0; r < count; ++r) {
    parts.push_back(
        ReadTableFile(fmt::format("{}/data/{}/part-{}.drt", session, name, r)).ValueOrDie());
  }
  return compute::Concatenate(parts).ValueOrDie();
}

TEST(PoolTest, DataFunctionsSortJoinAndPipelineOnPartitionedTables) {
  Harness harness({Pool("default", 3)});
  ASSERT_OK(harness.made());
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int k = 2;
  std::vector<Table> left, right;
  for (int r = 0; r < k; ++r) {
    left.push_back(
        testing::RandomTable({{"key", DataType::Int64(), 0.05, 50}, {"value", DataType::Float64()}},
                             300 + 17 * r, seed + r));
    right.push_back(
        testing::RandomTable({{"key", DataType::Int64(), 0.0, 50}, {"label", DataType::String()}},
                             40 + r, seed + 100 + r));
  }
  WriteParts(harness.directory(), "left", left);
  WriteParts(harness.directory(), "right", right);
  const Table all_left = compute::Concatenate(left).ValueOrDie();
  const Table all_right = compute::Concatenate(right).ValueOrDie();

  ASSERT_OK(harness.agent().Submit(
      {Function("sort", "table.sort",
                {{"input", "left"}, {"output", "sorted"}, {"by", {"key", "value"}}}, k),
       Function("join", "table.join",
                {{"left", "left"}, {"right", "right"}, {"output", "joined"}, {"on", "key"}}, k),
       Function("pipe", "table.pipeline",
                {{"input", "left"},
                 {"output", "piped"},
                 {"steps",
                  {{{"op", "join"}, {"right", "right"}, {"on", "key"}},
                   {{"op", "sort"}, {"by", {"label", "key", "value"}}}}}},
                k),
       Function("missing", "table.sort", {{"input", "nothing"}, {"output", "x"}, {"by", "key"}},
                k)},
      NowMicros()));

  compute::SortOptions by_key;
  by_key.keys = {{"key", true, false}, {"value", true, false}};
  ExecutionResult sort = harness.Wait("sort");
  ASSERT_EQ(sort.state, TaskState::kDone) << sort.reason;
  EXPECT_EQ(sort.value["rows"], all_left.num_rows());
  EXPECT_TRUE(testing::TablesEqualOrdered(compute::Sort(all_left, by_key).ValueOrDie(),
                                          ReadParts(harness.directory(), "sorted", k)));

  compute::JoinOptions join_options;
  join_options.left_keys = join_options.right_keys = {"key"};
  const Table expected_join = compute::Join(all_left, all_right, join_options).ValueOrDie();
  ExecutionResult join = harness.Wait("join");
  ASSERT_EQ(join.state, TaskState::kDone) << join.reason;
  EXPECT_EQ(join.value["rows"], expected_join.num_rows());
  EXPECT_TRUE(
      testing::TablesEqualUnordered(expected_join, ReadParts(harness.directory(), "joined", k)));

  ExecutionResult pipe = harness.Wait("pipe");
  ASSERT_EQ(pipe.state, TaskState::kDone) << pipe.reason;
  EXPECT_TRUE(
      testing::TablesEqualUnordered(expected_join, ReadParts(harness.directory(), "piped", k)));
  // No intermediate was written: only the pipeline's output.
  EXPECT_FALSE(fs::exists(harness.directory() + "/data/piped.tmp"));
  EXPECT_EQ(std::distance(fs::directory_iterator(harness.directory() + "/data"),
                          fs::directory_iterator{}),
            5);

  ExecutionResult missing = harness.Wait("missing");
  EXPECT_EQ(missing.state, TaskState::kFailed);
  EXPECT_NE(missing.reason.find("nothing"), std::string::npos) << missing.reason;
  // The pool is intact after the failed read (no rank left waiting in a collective).
  ASSERT_OK(
      harness.agent().Submit({Function("after", "echo_ranks", json::object(), 3)}, NowMicros()));
  EXPECT_EQ(harness.Wait("after").state, TaskState::kDone);
  // The ranks report every name the agent treats as the standard worker's.
  const PoolStatus status = harness.agent().pool_status().at(0);
  for (const std::string& name : BuiltinFunctionNames()) {
    EXPECT_NE(std::find(status.functions.begin(), status.functions.end(), name),
              status.functions.end())
        << name;
  }
}

}  // namespace
}  // namespace deeprc::runtime

namespace deeprc::runtime {
namespace {

TEST(PoolTest, PilotRuntimeLimitCancelsFunctionTasks) {
  SessionOptions session_options;
  session_options.root =
      fs::temp_directory_path().string() + "/deeprc_pool_test." + std::to_string(::getpid());
  auto session = Session::Make(session_options).ValueOrDie();
  PilotManager pilots(*session);
  PilotOptions options;
  options.pools.pools = {Pool("default", 1)};
  options.pools.cancel_grace = 500ms;
  PilotDescription description;
  description.cores = 1;
  description.runtime = 2;
  ASSERT_OK_AND_ASSIGN(Pilot * pilot, pilots.Submit(description, options));
  TaskManager tasks(*session);
  ASSERT_OK(tasks.AddPilot(*pilot));
  ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit({Function("", "sleep", {{"seconds", 60}})}));
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 30s));
  ASSERT_OK_AND_ASSIGN(ExecutionResult result, tasks.result(uids[0]));
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_NE(result.reason.find("runtime limit"), std::string::npos) << result.reason;
  EXPECT_FALSE(tasks.Submit({Function("", "noop")}).ok());
}

}  // namespace
}  // namespace deeprc::runtime
