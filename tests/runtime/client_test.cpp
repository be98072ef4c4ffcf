// The client API with a local pilot whose agent runs in this process: real processes, every
// state path, concurrency, resource use and the event log.
#include "deeprc/runtime/client.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string TestRoot() {
  const std::string root =
      fs::temp_directory_path().string() + "/deeprc_client_test." + std::to_string(::getpid());
  fs::create_directories(root);
  return root;
}

TaskDescription Task(std::string uid, std::string executable,
                     std::vector<std::string> arguments = {}) {
  TaskDescription task;
  task.uid = std::move(uid);
  task.executable = std::move(executable);
  task.arguments = std::move(arguments);
  return task;
}

size_t CountEntries(const std::string& directory) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(directory)) ++count;
  return count;
}

std::vector<nlohmann::json> ReadEvents(const std::string& path) {
  std::vector<nlohmann::json> events;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) events.push_back(nlohmann::json::parse(line));
  return events;
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SessionOptions options;
    options.root = TestRoot();
    ASSERT_OK_AND_ASSIGN(session_, Session::Make(options));
    pilots_ = std::make_unique<PilotManager>(*session_);
    PilotDescription description;
    description.cores = 2;
    description.gpus = 2;  // virtual
    ASSERT_OK_AND_ASSIGN(pilot_, pilots_->Submit(description));
    tasks_ = std::make_unique<TaskManager>(*session_);
    ASSERT_OK(tasks_->AddPilot(*pilot_));
  }
  void TearDown() override {
    tasks_.reset();
    pilots_.reset();
    if (session_ != nullptr) {
      const std::string directory = session_->directory();
      session_.reset();
      if (!HasFailure()) fs::remove_all(directory);  // kept for a look when a test failed
    }
  }

  // Submits one task, waits for it to end, returns its result.
  ExecutionResult RunOne(TaskDescription task) {
    auto uids = tasks_->Submit({std::move(task)});
    EXPECT_TRUE(uids.ok()) << uids.status().ToString();
    if (!uids.ok()) return {};
    EXPECT_OK(tasks_->Wait(*uids, FinalTaskStates(), 30s));
    auto result = tasks_->result(uids->front());
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? *result : ExecutionResult{};
  }

  std::unique_ptr<Session> session_;
  std::unique_ptr<PilotManager> pilots_;
  Pilot* pilot_ = nullptr;
  std::unique_ptr<TaskManager> tasks_;
};

TEST(SessionTest, DirectorySecretAndDescription) {
  SessionOptions options;
  options.root = TestRoot();
  ASSERT_OK_AND_ASSIGN(auto first, Session::Make(options));
  ASSERT_OK_AND_ASSIGN(auto second, Session::Make(options));
  EXPECT_NE(first->id(), second->id());
  EXPECT_EQ(first->id().rfind("deeprc.session.", 0), 0u) << first->id();
  EXPECT_EQ(first->directory(), options.root + "/" + first->id());
  EXPECT_TRUE(fs::is_directory(first->directory() + "/tasks"));
  struct stat info {};
  ASSERT_EQ(::stat((first->directory() + "/secret").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(first->secret().size(), 64u);
  EXPECT_NE(first->secret(), second->secret());
  std::ifstream in(first->directory() + "/session.json");
  const auto description = nlohmann::json::parse(in);
  EXPECT_EQ(description["id"], first->id());
  EXPECT_EQ(description["pid"], static_cast<int64_t>(::getpid()));
}

TEST_F(ClientTest, Success) {
  TaskDescription task = Task("ok", "/bin/echo", {"hello"});
  const ExecutionResult result = RunOne(task);
  EXPECT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(result.exit_code, 0);
  std::ifstream out(session_->directory() + "/tasks/ok/ok.out");
  std::string line;
  std::getline(out, line);
  EXPECT_EQ(line, "hello");
}

TEST_F(ClientTest, ExitStatusOne) {
  const ExecutionResult result = RunOne(Task("exit1", "/bin/sh", {"-c", "echo oops >&2; exit 1"}));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.reason.find("exit"), std::string::npos) << result.reason;
  EXPECT_NE(result.stderr_tail.find("oops"), std::string::npos) << result.stderr_tail;
}

TEST_F(ClientTest, KilledBySignal) {
  const ExecutionResult result = RunOne(Task("signal", "/bin/sh", {"-c", "kill -SEGV $$"}));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.signal_name, "SIGSEGV");
  EXPECT_NE(result.reason.find("SIGSEGV"), std::string::npos) << result.reason;
}

TEST_F(ClientTest, MissingExecutable) {
  const ExecutionResult result = RunOne(Task("missing", "/nonexistent/program"));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_NE(result.reason.find("/nonexistent/program"), std::string::npos) << result.reason;
}

TEST_F(ClientTest, Timeout) {
  TaskDescription task = Task("slow", "/bin/sleep", {"30"});
  task.timeout = 0.3;
  const auto start = std::chrono::steady_clock::now();
  const ExecutionResult result = RunOne(task);
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_NE(result.reason.find("timeout"), std::string::npos) << result.reason;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST_F(ClientTest, ImpossibleRequestFailsAtOnceWithTheReason) {
  TaskDescription task = Task("huge", "/bin/true");
  task.cores_per_rank = 64;
  const auto start = std::chrono::steady_clock::now();
  const ExecutionResult result = RunOne(task);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_NE(result.reason.find("64"), std::string::npos) << result.reason;

  TaskDescription gpus = Task("gpus", "/bin/true");
  gpus.gpus_per_rank = 3;
  EXPECT_EQ(RunOne(gpus).state, TaskState::kFailed);
}

TEST_F(ClientTest, FailedDependencyFailsDependentsNamingIt) {
  TaskDescription first = Task("first", "/bin/false");
  TaskDescription second = Task("second", "/bin/true");
  second.after = {"first"};
  TaskDescription third = Task("third", "/bin/true");
  third.after = {"second"};
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit({first, second, third}));
  ASSERT_OK(tasks_->Wait(uids, FinalTaskStates(), 30s));
  ASSERT_OK_AND_ASSIGN(auto result, tasks_->result("second"));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_NE(result.reason.find("first"), std::string::npos) << result.reason;
  ASSERT_OK_AND_ASSIGN(auto last, tasks_->result("third"));
  EXPECT_EQ(last.state, TaskState::kFailed);
  // Neither dependent ran: no sandbox.
  EXPECT_FALSE(fs::exists(session_->directory() + "/tasks/second"));
}

TEST_F(ClientTest, DependencyOrderIsRespected) {
  TaskDescription first = Task("write", "/bin/sh", {"-c", "sleep 0.2; echo x > ../../marker"});
  TaskDescription second = Task("read", "/bin/cat", {"../../marker"});
  second.after = {"write"};
  // Two batches: `after` may name a task submitted earlier.
  ASSERT_OK(tasks_->Submit({first}).status());
  ASSERT_OK(tasks_->Submit({second}).status());
  ASSERT_OK(tasks_->Wait({"write", "read"}, FinalTaskStates(), 30s));
  ASSERT_OK_AND_ASSIGN(auto result, tasks_->result("read"));
  EXPECT_EQ(result.state, TaskState::kDone) << result.reason << result.stderr_tail;
}

TEST_F(ClientTest, BadBatchIsRejectedWhole) {
  TaskDescription a = Task("a", "/bin/true");
  a.after = {"nobody"};
  auto rejected = tasks_->Submit({Task("fine", "/bin/true"), a});
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.status().message().find("nobody"), std::string::npos)
      << rejected.status().ToString();
  EXPECT_FALSE(tasks_->state("fine").ok());
  // The uid is free again.
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit({Task("fine", "/bin/true")}));
  ASSERT_OK(tasks_->Wait(uids, {TaskState::kDone}, 30s));
  EXPECT_FALSE(tasks_->Submit({Task("fine", "/bin/true")}).ok());
}

TEST_F(ClientTest, CancelWhileQueued) {
  // Two 1-core sleepers fill the pilot; the third waits.
  std::vector<TaskDescription> batch = {Task("busy1", "/bin/sleep", {"30"}),
                                        Task("busy2", "/bin/sleep", {"30"}),
                                        Task("queued", "/bin/true")};
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit(batch));
  ASSERT_OK(tasks_->Wait({"busy1", "busy2"}, {TaskState::kExecuting}, 10s));
  ASSERT_OK_AND_ASSIGN(TaskState queued, tasks_->state("queued"));
  EXPECT_EQ(queued, TaskState::kScheduling);
  tasks_->Cancel({"queued"});
  ASSERT_OK(tasks_->Wait({"queued"}, FinalTaskStates(), 10s));
  ASSERT_OK_AND_ASSIGN(auto result, tasks_->result("queued"));
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_FALSE(fs::exists(session_->directory() + "/tasks/queued"));
  tasks_->Cancel({"busy1", "busy2"});
  ASSERT_OK(tasks_->Wait(uids, FinalTaskStates(), 10s));
}

TEST_F(ClientTest, PilotRuntimeLimitCancelsItsTasksAndEndsThePilotDone) {
  PilotManager pilots(*session_);
  ASSERT_OK_AND_ASSIGN(Pilot * pilot, pilots.Submit(PilotDescription{.cores = 1, .runtime = 1.0}));
  TaskManager tasks(*session_);
  ASSERT_OK(tasks.AddPilot(*pilot));
  TaskDescription dependent = Task("dependent", "/bin/true");
  dependent.after = {"queued"};
  ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit({Task("running", "/bin/sleep", {"30"}),
                                                Task("queued", "/bin/true"), dependent}));
  ASSERT_OK(tasks.Wait({"running"}, {TaskState::kExecuting}, 10s));
  // Nobody cancels: the pilot's own limit ends everything.
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 10s));
  for (const char* uid : {"running", "queued"}) {
    ASSERT_OK_AND_ASSIGN(auto result, tasks.result(uid));
    EXPECT_EQ(result.state, TaskState::kCanceled) << uid;
    EXPECT_EQ(result.reason, "the pilot's runtime limit of 1 s is over") << uid;
  }
  ASSERT_OK_AND_ASSIGN(auto result, tasks.result("dependent"));
  EXPECT_NE(result.state, TaskState::kDone);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pilot->state() != PilotState::kDone && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(pilot->state(), PilotState::kDone);
  auto late = tasks.Submit({Task("late", "/bin/true")});
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.status().message().find("runtime limit of 1 s"), std::string::npos)
      << late.status().ToString();
  ASSERT_OK(session_->events().Flush());
  bool logged = false;
  for (const nlohmann::json& event : ReadEvents(session_->directory() + "/events.jsonl")) {
    if (event.value("entity", "") == "pilot" && event.value("uid", "") == pilot->uid() &&
        event.value("state", "") == "DONE") {
      logged = event.value("reason", "").find("runtime limit") != std::string::npos;
    }
  }
  EXPECT_TRUE(logged);
}

TEST_F(ClientTest, MultiRankTaskRunsThroughMpirun) {
  TaskDescription task =
      Task("ranks", "/bin/sh", {"-c", "echo rank $OMPI_COMM_WORLD_RANK of $DEEPRC_RANKS"});
  task.ranks = 2;
  const ExecutionResult result = RunOne(task);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason << "\n" << result.stderr_tail;
  std::ifstream in(result.stdout_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"rank 0 of 2", "rank 1 of 2"}));
}

TEST_F(ClientTest, CancelWhileRunning) {
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit({Task("sleeper", "/bin/sleep", {"30"})}));
  ASSERT_OK(tasks_->Wait(uids, {TaskState::kExecuting}, 10s));
  const auto start = std::chrono::steady_clock::now();
  tasks_->Cancel(uids);
  ASSERT_OK(tasks_->Wait(uids, FinalTaskStates(), 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_OK_AND_ASSIGN(auto result, tasks_->result("sleeper"));
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_NE(result.reason.find("canceled"), std::string::npos) << result.reason;
}

TEST_F(ClientTest, WaitTimesOutNamingTheTask) {
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit({Task("long", "/bin/sleep", {"30"})}));
  const Status status = tasks_->Wait(uids, FinalTaskStates(), 200ms);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("long"), std::string::npos) << status.ToString();
  tasks_->Cancel(uids);
  ASSERT_OK(tasks_->Wait(uids, FinalTaskStates(), 10s));
}

TEST_F(ClientTest, VirtualGpusNeverShared) {
  std::vector<TaskDescription> batch;
  for (int i = 0; i < 8; ++i) {
    TaskDescription task = Task("gpu" + std::to_string(i), "/bin/sh",
                                {"-c", "echo $CUDA_VISIBLE_DEVICES; sleep 0.05"});
    task.gpus_per_rank = 1;
    batch.push_back(task);
  }
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit(batch));
  ASSERT_OK(tasks_->Wait(uids, {TaskState::kDone}, 30s));
  // The processes of tasks given the same GPU never ran at the same time.
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> by_gpu;
  for (const std::string& uid : uids) {
    ASSERT_OK_AND_ASSIGN(auto result, tasks_->result(uid));
    std::ifstream out(result.stdout_path);
    std::string gpu;
    std::getline(out, gpu);
    ASSERT_TRUE(gpu == "0" || gpu == "1") << uid << ": '" << gpu << "'";
    by_gpu[gpu].push_back({result.start_us, result.end_us});
  }
  for (auto& [gpu, intervals] : by_gpu) {
    std::sort(intervals.begin(), intervals.end());
    for (size_t i = 1; i < intervals.size(); ++i) {
      EXPECT_LE(intervals[i - 1].second, intervals[i].first) << "GPU " << gpu;
    }
  }
}

TEST_F(ClientTest, SubmissionFromSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> uids(kThreads);
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto submitted = tasks_->Submit({Task("", "/bin/true")});
        if (!submitted.ok()) {
          ++errors;
          continue;
        }
        uids[t].push_back(submitted->front());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);
  std::vector<std::string> all;
  for (auto& list : uids) all.insert(all.end(), list.begin(), list.end());
  ASSERT_EQ(all.size(), size_t{kThreads * kPerThread});
  std::vector<std::string> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "uids repeat";
  ASSERT_OK(tasks_->Wait(all, {TaskState::kDone}, 60s));
  EXPECT_EQ(tasks_->counts().done, kThreads * kPerThread);
}

TEST_F(ClientTest, EventLogIsForwardOnlyPerTask) {
  std::atomic<int> callbacks{0};
  tasks_->OnStateChange([&](const TaskEvent&) { ++callbacks; });
  TaskDescription bad = Task("bad", "/bin/false");
  TaskDescription after_bad = Task("after_bad", "/bin/true");
  after_bad.after = {"bad"};
  ASSERT_OK_AND_ASSIGN(auto uids, tasks_->Submit({Task("good", "/bin/true"), bad, after_bad}));
  ASSERT_OK(tasks_->Wait(uids, FinalTaskStates(), 30s));
  pilots_.reset();  // ends the pilot and flushes the log
  std::map<std::string, std::vector<nlohmann::json>> by_uid;
  std::vector<std::string> pilot_states;
  for (const auto& event : ReadEvents(session_->directory() + "/events.jsonl")) {
    if (event["entity"] == "pilot") {
      pilot_states.push_back(event["state"]);
    } else if (event["entity"] == "task") {
      by_uid[event["uid"]].push_back(event);
    }
  }
  EXPECT_EQ(pilot_states, (std::vector<std::string>{"NEW", "LAUNCHING", "ACTIVE", "DONE"}));
  auto states_of = [&](const std::string& uid) {
    std::vector<std::string> states;
    for (const auto& event : by_uid[uid]) states.push_back(event["state"]);
    return states;
  };
  EXPECT_EQ(states_of("good"), (std::vector<std::string>{"NEW", "SCHEDULING", "STAGING_INPUT",
                                                         "EXECUTING", "STAGING_OUTPUT", "DONE"}));
  EXPECT_EQ(states_of("after_bad"), (std::vector<std::string>{"NEW", "SCHEDULING", "FAILED"}));
  EXPECT_NE(by_uid["after_bad"].back()["reason"].get<std::string>().find("bad"), std::string::npos);
  EXPECT_EQ(by_uid["bad"].back()["state"], "FAILED");
  int64_t total_events = 0;
  for (auto& [uid, events] : by_uid) {
    total_events += static_cast<int64_t>(events.size());
    for (size_t i = 1; i < events.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(TaskState from,
                           ParseTaskState(events[i - 1]["state"].get<std::string>()));
      ASSERT_OK_AND_ASSIGN(TaskState to, ParseTaskState(events[i]["state"].get<std::string>()));
      EXPECT_TRUE(IsTransitionAllowed(from, to))
          << uid << ": " << events[i - 1]["state"] << " → " << events[i]["state"];
      EXPECT_LE(events[i - 1]["time_us"].get<int64_t>(), events[i]["time_us"].get<int64_t>());
    }
  }
  EXPECT_EQ(callbacks.load(), total_events);
}

// Final events reach the client before the results do: a TaskManager destroyed as soon as it
// saw them must not be called afterwards (it was, and crashed).
TEST(TaskManagerLifetimeTest, DestroyedRightAfterTheFinalEvents) {
  SessionOptions options;
  options.root = TestRoot();
  ASSERT_OK_AND_ASSIGN(auto session, Session::Make(options));
  PilotManager pilots(*session);
  ASSERT_OK_AND_ASSIGN(Pilot * pilot, pilots.Submit(PilotDescription{.cores = 2}));
  for (int round = 0; round < 3; ++round) {
    auto tasks = std::make_unique<TaskManager>(*session);
    ASSERT_OK(tasks->AddPilot(*pilot));
    std::mutex mutex;
    std::condition_variable all_final;
    int finals = 0;
    tasks->OnStateChange([&](const TaskEvent& event) {
      if (!IsFinal(event.state)) return;
      std::lock_guard lock(mutex);
      if (++finals == 300) all_final.notify_all();
    });
    std::vector<TaskDescription> batch;
    for (int i = 0; i < 300; ++i) {
      batch.push_back(Task("r" + std::to_string(round) + "." + std::to_string(i), "/bin/true"));
    }
    ASSERT_OK(tasks->Submit(std::move(batch)).status());
    std::unique_lock lock(mutex);
    ASSERT_TRUE(all_final.wait_for(lock, 60s, [&] { return finals == 300; }));
    lock.unlock();
    tasks.reset();
  }
  // A task manager that goes away with tasks running cancels them.
  auto tasks = std::make_unique<TaskManager>(*session);
  ASSERT_OK(tasks->AddPilot(*pilot));
  ASSERT_OK(tasks->Submit({Task("left", "/bin/sleep", {"30"})}).status());
  ASSERT_OK(tasks->Wait({"left"}, {TaskState::kExecuting}, 10s));
  const auto start = std::chrono::steady_clock::now();
  tasks.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  fs::remove_all(session->directory());
}

TEST_F(ClientTest, TenThousandTasksWithoutGrowthInDescriptorsOrThreads) {
  auto run = [&](int count) {
    std::vector<TaskDescription> batch(static_cast<size_t>(count), Task("", "/bin/true"));
    auto uids = tasks_->Submit(std::move(batch));
    ASSERT_TRUE(uids.ok()) << uids.status().ToString();
    ASSERT_OK(tasks_->Wait(*uids, {TaskState::kDone}, 300s));
  };
  run(200);  // warms up the executor's threads
  const size_t fds = CountEntries("/proc/self/fd");
  const size_t threads = CountEntries("/proc/self/task");
  run(10'000);
  EXPECT_EQ(CountEntries("/proc/self/fd"), fds);
  EXPECT_EQ(CountEntries("/proc/self/task"), threads);
  EXPECT_EQ(tasks_->counts().done, 10'200);
}

}  // namespace
}  // namespace deeprc::runtime
