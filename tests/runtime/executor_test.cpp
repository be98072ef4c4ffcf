#include "deeprc/runtime/executor.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

size_t CountEntries(const char* directory) {
  size_t count = 0;
  DIR* dir = ::opendir(directory);
  if (dir == nullptr) return 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;  // includes the descriptor opendir holds, the same each time
}

// True when `pid` no longer runs (gone, or a zombie waiting for its new parent).
bool ProcessGone(pid_t pid) {
  const std::string stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return true;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

TaskDescription Task(std::string uid, std::string executable,
                     std::vector<std::string> arguments = {}) {
  TaskDescription task;
  task.uid = std::move(uid);
  task.name = task.uid + "-name";
  task.executable = std::move(executable);
  task.arguments = std::move(arguments);
  return task;
}

// Collects events and results, and waits for them with a timeout.
class Recorder {
 public:
  void Attach(ExecutorOptions& options) {
    options.on_event = [this](const TaskEvent& event) {
      std::lock_guard lock(mutex_);
      events_[event.uid].push_back(event);
      changed_.notify_all();
    };
    options.on_result = [this](ExecutionResult result) {
      std::lock_guard lock(mutex_);
      ++result_count_[result.uid];
      results_[result.uid] = std::move(result);
      changed_.notify_all();
    };
  }

  ExecutionResult Result(const std::string& uid, std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lock(mutex_);
    const bool arrived = changed_.wait_for(lock, timeout, [&] { return results_.count(uid) > 0; });
    EXPECT_TRUE(arrived) << "no result for " << uid;
    return arrived ? results_.at(uid) : ExecutionResult{};
  }

  bool WaitForState(const std::string& uid, TaskState state,
                    std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (const TaskEvent& event : events_[uid]) {
        if (event.state == state) return true;
      }
      return false;
    });
  }

  // Waits until results for `count` different uids arrived.
  bool WaitForResults(size_t count, std::chrono::milliseconds timeout = 60s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return results_.size() >= count; });
  }

  std::vector<TaskEvent> Events(const std::string& uid) {
    std::lock_guard lock(mutex_);
    return events_[uid];
  }
  std::vector<TaskState> States(const std::string& uid) {
    std::vector<TaskState> states;
    for (const TaskEvent& event : Events(uid)) states.push_back(event.state);
    return states;
  }
  size_t ResultCount() {
    std::lock_guard lock(mutex_);
    return results_.size();
  }
  std::map<std::string, int> ResultCounts() {
    std::lock_guard lock(mutex_);
    return result_count_;
  }
  std::map<std::string, ExecutionResult> Results() {
    std::lock_guard lock(mutex_);
    return results_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::vector<TaskEvent>> events_;
  std::map<std::string, ExecutionResult> results_;
  std::map<std::string, int> result_count_;
};

const std::vector<TaskState> kSuccessPath = {TaskState::kStagingInput, TaskState::kExecuting,
                                             TaskState::kStagingOutput, TaskState::kDone};

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs when there is one: each task creates a directory and two files, which costs
    // milliseconds on a busy disk and would make the 10,000-task test measure the disk.
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string pattern = fmt::format("{}/deeprc-executor-test-XXXXXX", base);
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    session_ = root_ + "/session";
    client_ = root_ + "/client";
    fs::create_directories(client_);
  }
  void TearDown() override {
    executor_.reset();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }

  ExecutorOptions Options() {
    ExecutorOptions options;
    options.session_dir = session_;
    options.client_dir = client_;
    options.kill_grace = 300ms;
    recorder_.Attach(options);
    return options;
  }

  void MakeExecutor() { MakeExecutor(Options()); }
  void MakeExecutor(ExecutorOptions options) {
    ASSERT_OK_AND_ASSIGN(executor_, Executor::Make(std::move(options)));
  }

  ExecutionResult Run(TaskDescription task, ExecutionPlacement placement = {}) {
    const std::string uid = task.uid;
    EXPECT_OK(executor_->Submit(std::move(task), std::move(placement)));
    return recorder_.Result(uid);
  }

  std::string root_;
  std::string session_;
  std::string client_;
  Recorder recorder_;
  std::unique_ptr<Executor> executor_;
};

TEST_F(ExecutorTest, SuccessWalksEveryStateAndWritesStdoutInTheSandbox) {
  MakeExecutor();
  const ExecutionResult result = Run(Task("task.000000", "/bin/echo", {"hello", "world"}));
  EXPECT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(result.reason, "");
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.sandbox, session_ + "/tasks/task.000000");
  EXPECT_EQ(result.stdout_path, result.sandbox + "/task.000000.out");
  EXPECT_EQ(result.stderr_path, result.sandbox + "/task.000000.err");
  EXPECT_EQ(ReadFile(result.stdout_path), "hello world\n");
  EXPECT_EQ(ReadFile(result.stderr_path), "");
  EXPECT_GT(result.start_us, 0);
  EXPECT_GE(result.end_us, result.start_us);

  const std::vector<TaskEvent> events = recorder_.Events("task.000000");
  EXPECT_EQ(recorder_.States("task.000000"), kSuccessPath);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(events[i].time_us, events[i - 1].time_us);
    EXPECT_EQ(events[i].uid, "task.000000");
  }
  // Microseconds since the epoch: after 2020, and not in milliseconds or nanoseconds.
  EXPECT_GT(events.front().time_us, 1'577'836'800'000'000);
  EXPECT_LT(events.front().time_us, 4'102'444'800'000'000);
  EXPECT_TRUE(executor_->WaitIdle(5s));
  EXPECT_EQ(executor_->InFlight(), 0);
}

TEST_F(ExecutorTest, ArgumentsArePassedAsIsNeverThroughAShell) {
  MakeExecutor();
  const ExecutionResult result =
      Run(Task("argv", "/bin/echo", {"$HOME", "a  b", "*", "`id`", "'q'", ";", "x|y"}));
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(ReadFile(result.stdout_path), "$HOME a  b * `id` 'q' ; x|y\n");
}

TEST_F(ExecutorTest, BareExecutableNameIsFoundInPath) {
  MakeExecutor();
  const ExecutionResult result = Run(Task("path", "echo", {"found"}));
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(ReadFile(result.stdout_path), "found\n");
}

TEST_F(ExecutorTest, ExitStatusIsRecorded) {
  MakeExecutor();
  const ExecutionResult result =
      Run(Task("exit1", "/bin/sh", {"-c", "echo to-stdout; echo oops >&2; exit 1"}));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.reason, "exited with status 1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.signal_name, "");
  EXPECT_EQ(result.stderr_tail, "oops\n");
  EXPECT_EQ(recorder_.States("exit1"),
            (std::vector<TaskState>{TaskState::kStagingInput, TaskState::kExecuting,
                                    TaskState::kFailed}));
  EXPECT_EQ(recorder_.Events("exit1").back().reason, "exited with status 1");

  const ExecutionResult code42 = Run(Task("exit42", "/bin/sh", {"-c", "exit 42"}));
  EXPECT_EQ(code42.state, TaskState::kFailed);
  EXPECT_EQ(code42.exit_code, 42);
  EXPECT_EQ(code42.reason, "exited with status 42");
}

TEST_F(ExecutorTest, TerminatingSignalIsRecordedByName) {
  MakeExecutor();
  const ExecutionResult result = Run(Task("segv", "/bin/sh", {"-c", "kill -SEGV $$"}));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.signal, SIGSEGV);
  EXPECT_EQ(result.signal_name, "SIGSEGV");
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_EQ(result.reason, "killed by signal SIGSEGV");

  const ExecutionResult killed = Run(Task("kill9", "/bin/sh", {"-c", "kill -KILL $$"}));
  EXPECT_EQ(killed.signal_name, "SIGKILL");
  EXPECT_EQ(killed.reason, "killed by signal SIGKILL");
}

TEST_F(ExecutorTest, MissingExecutableFailsWithoutLeavingAZombie) {
  MakeExecutor();
  const ExecutionResult result = Run(Task("missing", "/nonexistent/deeprc-program", {"x"}));
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.reason, "executable not found: /nonexistent/deeprc-program");
  EXPECT_EQ(result.exit_code, -1);

  const ExecutionResult bare = Run(Task("missing-bare", "deeprc-no-such-program"));
  EXPECT_EQ(bare.state, TaskState::kFailed);
  EXPECT_EQ(bare.reason, "executable not found: deeprc-no-such-program");

  const ExecutionResult relative = Run(Task("missing-relative", "./run.sh"));
  EXPECT_EQ(relative.reason,
            "executable not found: " + session_ + "/tasks/missing-relative/./run.sh");

  // This process has no child left at all: not running, not a zombie (the executor's guard
  // process ends with the executor).
  ASSERT_TRUE(executor_->WaitIdle(5s));
  executor_.reset();
  siginfo_t info{};
  const int waited = ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  EXPECT_TRUE(waited == -1 && errno == ECHILD) << "a child is left: pid " << info.si_pid;
}

TEST_F(ExecutorTest, OutputFilesAreCreatedWhenOutputArrivesAndHoldAllOfIt) {
  MakeExecutor();
  // Silent: the sandbox, no output files.
  const ExecutionResult silent = Run(Task("silent", "/bin/true"));
  ASSERT_EQ(silent.state, TaskState::kDone) << silent.reason;
  EXPECT_TRUE(fs::is_directory(silent.sandbox));
  EXPECT_FALSE(fs::exists(silent.stdout_path));
  EXPECT_FALSE(fs::exists(silent.stderr_path));

  // More than a pipe holds (random size and bytes) on stdout, a line on stderr from a
  // background child of the task's process group, and post_exec output appended after both.
  std::mt19937_64 random(std::random_device{}());
  const size_t size = 200'000 + random() % 800'000;
  std::string payload(size, '\0');
  for (char& c : payload) c = static_cast<char>(random());
  WriteFile(client_ + "/payload.bin", payload);
  TaskDescription loud =
      Task("loud", "/bin/sh",
           {"-c", "(echo from-background >&2) & cat " + client_ + "/payload.bin; wait"});
  loud.post_exec = {"echo post"};
  const ExecutionResult result = Run(loud);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(ReadFile(result.stdout_path), payload + "post\n");
  EXPECT_EQ(ReadFile(result.stderr_path), "from-background\n");
  EXPECT_EQ(result.stderr_tail, "from-background\n");

  // A sandbox used before: the new run's silence leaves no stale output behind.
  TaskDescription again = Task("again", "/bin/sh", {"-c", "echo old; echo old-err >&2"});
  again.sandbox = "shared";
  ASSERT_EQ(Run(again).state, TaskState::kDone);
  again = Task("again2", "/bin/true");
  again.sandbox = "shared";
  again.stdout_file = "again.out";
  again.stderr_file = "again.err";
  const ExecutionResult reused = Run(again);
  ASSERT_EQ(reused.state, TaskState::kDone) << reused.reason;
  EXPECT_EQ(ReadFile(reused.stdout_path), "");
  EXPECT_EQ(ReadFile(reused.stderr_path), "");

  // stdout and stderr into one file keep their order.
  TaskDescription merged = Task("merged", "/bin/sh", {"-c", "echo 1; echo 2 >&2; echo 3"});
  merged.stdout_file = "all.log";
  merged.stderr_file = "all.log";
  const ExecutionResult together = Run(merged);
  ASSERT_EQ(together.state, TaskState::kDone) << together.reason;
  EXPECT_EQ(ReadFile(together.stdout_path), "1\n2\n3\n");
}

TEST_F(ExecutorTest, ExecutableRelativeToTheSandboxAndInterpreterErrors) {
  MakeExecutor();
  // Staged in, then run by its relative path.
  WriteFile(client_ + "/run.sh", "#!/bin/sh\necho from-script \"$1\"\n");
  ::chmod((client_ + "/run.sh").c_str(), 0755);
  TaskDescription task = Task("relative", "./run.sh", {"arg"});
  task.input_staging = {{"run.sh", "run.sh", StagingAction::kCopy}};
  const ExecutionResult result = Run(task);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(ReadFile(result.stdout_path), "from-script arg\n");

  WriteFile(client_ + "/bad.sh", "#!/nonexistent/interpreter\n");
  ::chmod((client_ + "/bad.sh").c_str(), 0755);
  const ExecutionResult bad = Run(Task("bad-interpreter", client_ + "/bad.sh"));
  EXPECT_EQ(bad.state, TaskState::kFailed);
  EXPECT_EQ(bad.reason, "cannot execute " + client_ + "/bad.sh: its interpreter was not found");
}

TEST_F(ExecutorTest, TimeoutCancelsAndKillsTheWholeProcessGroup) {
  MakeExecutor();
  TaskDescription task =
      Task("timeout", "/bin/sh", {"-c", "sleep 30 & echo $! > grandchild.pid; echo started; wait"});
  task.timeout = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const ExecutionResult result = Run(task);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_EQ(result.reason, "timeout after 0.5s");
  EXPECT_EQ(result.signal_name, "SIGTERM");
  EXPECT_GE(elapsed, 450ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_EQ(recorder_.States("timeout").back(), TaskState::kCanceled);
  const std::string pid_text = ReadFile(result.sandbox + "/grandchild.pid");
  ASSERT_FALSE(pid_text.empty());
  const pid_t grandchild = std::stoi(pid_text);
  // The grandchild `sleep` was in the task's process group: it is gone too.
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!ProcessGone(grandchild) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(ProcessGone(grandchild)) << "grandchild " << grandchild << " survived";
  EXPECT_NE(::kill(-grandchild, 0), 0);  // no process left in the group of its own either
}

TEST_F(ExecutorTest, TimeoutEscalatesToSigkillWhenSigtermIsIgnored) {
  MakeExecutor();
  TaskDescription task = Task("stubborn", "/bin/sh", {"-c", "trap '' TERM; sleep 30; exit 0"});
  task.timeout = 0.3;
  const auto start = std::chrono::steady_clock::now();
  const ExecutionResult result = Run(task);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_EQ(result.reason, "timeout after 0.3s");
  EXPECT_EQ(result.signal_name, "SIGKILL");
  // 0.3 s timeout + 0.3 s grace.
  EXPECT_GE(elapsed, 550ms);
  EXPECT_LT(elapsed, 5s);
}

TEST_F(ExecutorTest, CancelWhileRunning) {
  MakeExecutor();
  TaskDescription task = Task("cancel-me", "/bin/sleep", {"30"});
  ASSERT_OK(executor_->Submit(task));
  ASSERT_TRUE(recorder_.WaitForState("cancel-me", TaskState::kExecuting));
  std::this_thread::sleep_for(50ms);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(executor_->Cancel("cancel-me"));
  const ExecutionResult result = recorder_.Result("cancel-me");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_EQ(result.reason, "canceled by the client");
  EXPECT_EQ(result.signal_name, "SIGTERM");
  EXPECT_EQ(recorder_.States("cancel-me"),
            (std::vector<TaskState>{TaskState::kStagingInput, TaskState::kExecuting,
                                    TaskState::kCanceled}));
  // Once finished it is no longer known.
  EXPECT_EQ(executor_->Cancel("cancel-me").code(), StatusCode::kKeyError);
  EXPECT_EQ(executor_->Cancel("never-submitted").code(), StatusCode::kKeyError);
}

TEST_F(ExecutorTest, CancelRightAfterSubmitEndsCanceledWhicheverStageItReached) {
  MakeExecutor();
  for (int i = 0; i < 20; ++i) {
    const std::string uid = fmt::format("early-{}", i);
    ASSERT_OK(executor_->Submit(Task(uid, "/bin/sleep", {"30"})));
    ASSERT_OK(executor_->Cancel(uid));
    const ExecutionResult result = recorder_.Result(uid);
    EXPECT_EQ(result.state, TaskState::kCanceled) << uid;
    EXPECT_EQ(result.reason, "canceled by the client");
  }
}

TEST_F(ExecutorTest, StderrTailKeepsTheLastTwentyLinesAndAtMostFourKiB) {
  MakeExecutor();
  const ExecutionResult many =
      Run(Task("many-lines", "/bin/sh",
               {"-c",
                "i=1; while [ $i -le 100 ]; do echo line$i >&2; i=$((i+1)); "
                "done; exit 3"}));
  EXPECT_EQ(many.exit_code, 3);
  std::string expected;
  for (int i = 81; i <= 100; ++i) expected += fmt::format("line{}\n", i);
  EXPECT_EQ(many.stderr_tail, expected);

  // One very long line, then a short one: the tail stays within 4 KiB.
  const ExecutionResult long_line = Run(
      Task("long-line", "/bin/sh",
           {"-c", "head -c 10000 /dev/zero | tr '\\0' x >&2; echo >&2; echo last >&2; exit 1"}));
  EXPECT_LE(long_line.stderr_tail.size(), 4096u);
  EXPECT_TRUE(long_line.stderr_tail.ends_with("last\n")) << long_line.stderr_tail;
  // The DONE task keeps its stderr tail too.
  const ExecutionResult done = Run(Task("warns", "/bin/sh", {"-c", "echo warning >&2"}));
  EXPECT_EQ(done.state, TaskState::kDone);
  EXPECT_EQ(done.stderr_tail, "warning\n");
}

TEST_F(ExecutorTest, EnvironmentCarriesTaskIdsPlacementAndGpus) {
  ::setenv("DEEPRC_TEST_INHERITED", "from-parent", 1);
  ::setenv("CUDA_VISIBLE_DEVICES", "7", 1);  // the placement wins over what the agent has
  MakeExecutor();
  ::unsetenv("DEEPRC_TEST_INHERITED");
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  TaskDescription task = Task("envtask", "/usr/bin/env");
  task.name = "my-name";
  task.environment = {{"FOO", "bar baz"}, {"DEEPRC_TEST_INHERITED", "overridden"}};
  ExecutionPlacement placement;
  placement.ranks = {ExecutionSlot{"", {1}, {2, 3}}};
  const ExecutionResult result = Run(task, placement);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  const std::string env = "\n" + ReadFile(result.stdout_path);
  EXPECT_NE(env.find("\nDEEPRC_TASK_ID=envtask\n"), std::string::npos) << env;
  EXPECT_NE(env.find("\nDEEPRC_TASK_NAME=my-name\n"), std::string::npos);
  EXPECT_NE(env.find("\nDEEPRC_RANKS=1\n"), std::string::npos);
  EXPECT_NE(env.find("\nDEEPRC_CORES=1\n"), std::string::npos);
  EXPECT_NE(env.find("\nDEEPRC_GPU_IDS=2,3\n"), std::string::npos);
  EXPECT_NE(env.find("\nCUDA_VISIBLE_DEVICES=2,3\n"), std::string::npos);
  EXPECT_NE(env.find("\nDEEPRC_SANDBOX=" + result.sandbox + "\n"), std::string::npos);
  EXPECT_NE(env.find("\nFOO=bar baz\n"), std::string::npos);
  EXPECT_NE(env.find("\nDEEPRC_TEST_INHERITED=overridden\n"), std::string::npos);

  // No GPUs: CUDA_VISIBLE_DEVICES is set and empty, so that no GPU is visible.
  TaskDescription cpu_only = Task("cpu-only", "/usr/bin/env");
  const ExecutionResult cpu = Run(cpu_only, ExecutionPlacement{{ExecutionSlot{"", {0}, {}}}});
  const std::string cpu_env = "\n" + ReadFile(cpu.stdout_path);
  EXPECT_NE(cpu_env.find("\nCUDA_VISIBLE_DEVICES=\n"), std::string::npos) << cpu_env;
  EXPECT_NE(cpu_env.find("\nDEEPRC_GPU_IDS=\n"), std::string::npos);
  EXPECT_NE(cpu_env.find("\nDEEPRC_CORES=0\n"), std::string::npos);
  EXPECT_NE(cpu_env.find("\nDEEPRC_TEST_INHERITED=from-parent\n"), std::string::npos);
}

TEST_F(ExecutorTest, WorkingDirectoryIsTheSandboxAndOutputFilesCanBeNamed) {
  MakeExecutor();
  TaskDescription task = Task("cwd", "/bin/sh", {"-c", "pwd; echo err >&2"});
  task.stdout_file = "my.out";
  task.stderr_file = "logs.txt";
  const ExecutionResult result = Run(task);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  EXPECT_EQ(result.stdout_path, result.sandbox + "/my.out");
  EXPECT_EQ(ReadFile(result.stdout_path), result.sandbox + "\n");
  EXPECT_EQ(ReadFile(result.sandbox + "/logs.txt"), "err\n");

  TaskDescription nested = Task("nested", "/bin/echo", {"deep"});
  nested.stdout_file = "logs/run/out.txt";
  const ExecutionResult in_subdirectory = Run(nested);
  ASSERT_EQ(in_subdirectory.state, TaskState::kDone) << in_subdirectory.reason;
  EXPECT_EQ(ReadFile(in_subdirectory.sandbox + "/logs/run/out.txt"), "deep\n");

  // stdout and stderr into one file; a sandbox chosen by the task (relative to the session).
  TaskDescription merged = Task("merged", "/bin/sh", {"-c", "echo a; echo b >&2; echo c"});
  merged.stdout_file = "all.log";
  merged.stderr_file = "all.log";
  merged.sandbox = "shared/here";
  const ExecutionResult both = Run(merged);
  EXPECT_EQ(both.sandbox, session_ + "/shared/here");
  EXPECT_EQ(ReadFile(both.sandbox + "/all.log"), "a\nb\nc\n");
}

TEST_F(ExecutorTest, InputAndOutputStagingCopyLinkAndMove) {
  MakeExecutor();
  WriteFile(client_ + "/copied.txt", "copy me\n");
  WriteFile(client_ + "/linked.txt", "link me\n");
  WriteFile(client_ + "/moved.txt", "move me\n");
  fs::create_directories(client_ + "/indir/sub");
  WriteFile(client_ + "/indir/sub/deep.txt", "deep\n");
  fs::create_directories(session_);
  WriteFile(session_ + "/shared.txt", "from the session\n");

  TaskDescription task = Task(
      "staging", "/bin/sh",
      {"-c", "cat input/copied.txt linked.txt moved.txt dir/sub/deep.txt shared.txt > result.txt"});
  task.input_staging = {
      {"copied.txt", "input/copied.txt", StagingAction::kCopy},
      {"linked.txt", "linked.txt", StagingAction::kLink},
      {"client://moved.txt", "task://moved.txt", StagingAction::kMove},
      {"indir", "dir", StagingAction::kCopy},
      {"session://shared.txt", "", StagingAction::kCopy},
  };
  task.output_staging = {
      {"result.txt", "results/out.txt", StagingAction::kCopy},
      {"result.txt", "session://result-link.txt", StagingAction::kLink},
  };
  const ExecutionResult result = Run(task);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  const std::string expected = "copy me\nlink me\nmove me\ndeep\nfrom the session\n";
  EXPECT_EQ(ReadFile(client_ + "/results/out.txt"), expected);
  EXPECT_TRUE(fs::is_symlink(result.sandbox + "/linked.txt"));
  EXPECT_EQ(fs::read_symlink(result.sandbox + "/linked.txt"), client_ + "/linked.txt");
  EXPECT_FALSE(fs::exists(client_ + "/moved.txt"));
  EXPECT_EQ(ReadFile(result.sandbox + "/moved.txt"), "move me\n");
  EXPECT_TRUE(fs::is_symlink(session_ + "/result-link.txt"));
  EXPECT_EQ(ReadFile(session_ + "/result-link.txt"), expected);
  // Nothing half-written is left beside the copies.
  for (const auto& entry : fs::directory_iterator(client_ + "/results")) {
    EXPECT_EQ(entry.path().filename(), "out.txt");
  }
}

TEST_F(ExecutorTest, MissingStagingSourceFailsNamingTheFile) {
  MakeExecutor();
  TaskDescription input = Task("missing-input", "/bin/true");
  input.input_staging = {{"absent.dat", "absent.dat", StagingAction::kCopy}};
  const ExecutionResult in = Run(input);
  EXPECT_EQ(in.state, TaskState::kFailed);
  EXPECT_EQ(in.reason, "input_staging[0] (copy): source not found: " + client_ + "/absent.dat");
  EXPECT_EQ(recorder_.States("missing-input"),
            (std::vector<TaskState>{TaskState::kStagingInput, TaskState::kFailed}));

  TaskDescription output = Task("missing-output", "/bin/true");
  output.output_staging = {{"never-written.txt", "out.txt", StagingAction::kMove}};
  const ExecutionResult out = Run(output);
  EXPECT_EQ(out.state, TaskState::kFailed);
  EXPECT_EQ(out.reason,
            "output_staging[0] (move): source not found: " + out.sandbox + "/never-written.txt");
  EXPECT_EQ(recorder_.States("missing-output"),
            (std::vector<TaskState>{TaskState::kStagingInput, TaskState::kExecuting,
                                    TaskState::kStagingOutput, TaskState::kFailed}));
}

TEST_F(ExecutorTest, FailingPreExecFailsTheTaskWithItsReason) {
  MakeExecutor();
  TaskDescription task = Task("pre-fails", "/bin/sh", {"-c", "echo task-ran > ran.txt"});
  task.pre_exec = {"echo preparing", "test -e /nonexistent/input", "echo never"};
  task.post_exec = {"echo post > post.txt"};
  const ExecutionResult result = Run(task);
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.reason, "pre_exec[1] failed with exit status 1: test -e /nonexistent/input");
  EXPECT_FALSE(fs::exists(result.sandbox + "/ran.txt"));
  EXPECT_FALSE(fs::exists(result.sandbox + "/post.txt"));
  EXPECT_EQ(ReadFile(result.stdout_path), "preparing\n");
}

TEST_F(ExecutorTest, PreExecExportsReachTheTaskAndPostExecRunsAfter) {
  MakeExecutor();
  TaskDescription task = Task("pre-ok", "/bin/sh", {"-c", "echo \"$FROM_PRE $1\"", "sh", "a b"});
  task.pre_exec = {"export FROM_PRE='set by pre_exec'", "echo pre > pre.txt"};
  task.post_exec = {"cat pre.txt > post.txt", "echo post-ran"};
  const ExecutionResult result = Run(task);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason << "\n" << result.stderr_tail;
  EXPECT_EQ(ReadFile(result.stdout_path), "set by pre_exec a b\npost-ran\n");
  EXPECT_EQ(ReadFile(result.sandbox + "/post.txt"), "pre\n");

  TaskDescription post_fails = Task("post-fails", "/bin/true");
  post_fails.post_exec = {"true", "exit 4"};
  const ExecutionResult failed = Run(post_fails);
  EXPECT_EQ(failed.state, TaskState::kFailed);
  EXPECT_EQ(failed.reason, "post_exec: exited with status 4");
  TaskDescription post_false = Task("post-false", "/bin/true");
  post_false.post_exec = {"false"};
  EXPECT_EQ(Run(post_false).reason, "post_exec[0] failed with exit status 1: false");

  // With pre_exec, a missing executable is still reported as such.
  TaskDescription missing = Task("pre-missing", "/nonexistent/tool");
  missing.pre_exec = {"true"};
  const ExecutionResult not_found = Run(missing);
  EXPECT_EQ(not_found.state, TaskState::kFailed);
  EXPECT_EQ(not_found.reason, "executable not found: /nonexistent/tool");
}

TEST_F(ExecutorTest, PostExecRunsAfterAFailedTaskWhichStaysFailed) {
  MakeExecutor();
  TaskDescription task = Task("post-after-failure", "/bin/sh", {"-c", "exit 3"});
  task.post_exec = {"echo cleaned > cleanup.txt"};
  const ExecutionResult result = Run(task);
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.reason, "exited with status 3");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(ReadFile(result.sandbox + "/cleanup.txt"), "cleaned\n");
}

TEST_F(ExecutorTest, BackgroundChildrenDoNotOutliveTheirTask) {
  MakeExecutor();
  const ExecutionResult result =
      Run(Task("leaves-child", "/bin/sh", {"-c", "sleep 30 & echo $! > child.pid"}));
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  const pid_t child = std::stoi(ReadFile(result.sandbox + "/child.pid"));
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!ProcessGone(child) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(ProcessGone(child));
}

TEST_F(ExecutorTest, BackgroundChildrenMayStayWhenAskedTo) {
  ExecutorOptions options = Options();
  options.kill_group_on_exit = false;
  MakeExecutor(std::move(options));
  const ExecutionResult result =
      Run(Task("keeps-child", "/bin/sh",
               {"-c", "sleep 30 & echo $! > child.pid; (sleep 0.2; echo late) &"}));
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason;
  const pid_t child = std::stoi(ReadFile(result.sandbox + "/child.pid"));
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(ProcessGone(child));
  // What a child that stayed writes after the task ended still reaches the task's file.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ReadFile(result.stdout_path).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(ReadFile(result.stdout_path), "late\n");
  ::kill(child, SIGKILL);  // the test's own leftover
}

TEST_F(ExecutorTest, TwoRankTaskRunsThroughMpirunWithASlotMapping) {
  MakeExecutor();
  TaskDescription task =
      Task("mpi2", "/bin/sh",
           {"-c", "echo rank=$OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE task=$DEEPRC_TASK_ID"});
  task.ranks = 2;
  ExecutionPlacement placement;
  placement.ranks = {ExecutionSlot{"", {0}, {}}, ExecutionSlot{"", {1}, {}}};
  const ExecutionResult result = Run(task, placement);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason << "\n" << result.stderr_tail;
  const std::string out = ReadFile(result.stdout_path);
  EXPECT_NE(out.find("rank=0 of 2 task=mpi2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("rank=1 of 2 task=mpi2\n"), std::string::npos) << out;
  const std::string rankfile = ReadFile(result.sandbox + "/deeprc.rankfile");
  EXPECT_EQ(rankfile, "rank 0=localhost slot=0\nrank 1=localhost slot=1\n");

  // Virtual core ids the machine does not have: a host list instead, oversubscribed.
  TaskDescription wide = task;
  wide.uid = "mpi3";
  wide.ranks = 3;
  ExecutionPlacement virtual_cores;
  virtual_cores.ranks = {ExecutionSlot{"", {100}, {}}, ExecutionSlot{"", {101}, {}},
                         ExecutionSlot{"", {102}, {}}};
  const ExecutionResult three = Run(wide, virtual_cores);
  ASSERT_EQ(three.state, TaskState::kDone) << three.reason << "\n" << three.stderr_tail;
  const std::string out3 = ReadFile(three.stdout_path);
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_NE(out3.find(fmt::format("rank={} of 3 task=mpi3\n", rank)), std::string::npos) << out3;
  }

  TaskDescription missing = task;
  missing.uid = "mpi-missing";
  missing.executable = "/nonexistent/mpi-app";
  EXPECT_EQ(Run(missing, placement).reason, "executable not found: /nonexistent/mpi-app");
}

TEST_F(ExecutorTest, EachMpiRankSeesOnlyItsOwnGpus) {
  MakeExecutor();
  TaskDescription task = Task(
      "mpi-gpus", "/bin/sh",
      {"-c", "echo rank=$OMPI_COMM_WORLD_RANK cuda=$CUDA_VISIBLE_DEVICES all=$DEEPRC_GPU_IDS"});
  task.ranks = 2;
  task.gpus_per_rank = 2;
  ExecutionPlacement placement;
  placement.ranks = {ExecutionSlot{"", {0}, {4, 5}}, ExecutionSlot{"", {1}, {6, 7}}};
  const ExecutionResult result = Run(task, placement);
  ASSERT_EQ(result.state, TaskState::kDone) << result.reason << "\n" << result.stderr_tail;
  const std::string out = ReadFile(result.stdout_path);
  EXPECT_NE(out.find("rank=0 cuda=4,5 all=4,5,6,7\n"), std::string::npos) << out;
  EXPECT_NE(out.find("rank=1 cuda=6,7 all=4,5,6,7\n"), std::string::npos) << out;
}

TEST_F(ExecutorTest, TimeoutOfAnMpirunTaskEndsEveryRank) {
  MakeExecutor();
  // OpenMPI puts each rank in a process group of its own; mpirun passes the SIGTERM on.
  TaskDescription task = Task("mpi-timeout", "/bin/sh",
                              {"-c", "echo $$ > rank$OMPI_COMM_WORLD_RANK.pid; exec sleep 30"});
  task.ranks = 2;
  task.timeout = 1.5;
  ExecutionPlacement placement;
  placement.ranks = {ExecutionSlot{"", {0}, {}}, ExecutionSlot{"", {1}, {}}};
  const ExecutionResult result = Run(task, placement);
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_EQ(result.reason, "timeout after 1.5s");
  for (int rank = 0; rank < 2; ++rank) {
    const std::string pid_text = ReadFile(fmt::format("{}/rank{}.pid", result.sandbox, rank));
    ASSERT_FALSE(pid_text.empty()) << "rank " << rank << " never started";
    const pid_t pid = std::stoi(pid_text);
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (!ProcessGone(pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(ProcessGone(pid)) << "rank " << rank << " (pid " << pid << ") survived";
  }
}

TEST_F(ExecutorTest, TenThousandTasksLeaveNoDescriptorOrThreadBehind) {
  MakeExecutor();
  // Warm up, so that lazily created things (the first task's directories) are in place.
  ASSERT_EQ(Run(Task("warmup", "/bin/true")).state, TaskState::kDone);
  const size_t fds_before = CountEntries("/proc/self/fd");
  const size_t threads_before = CountEntries("/proc/self/task");

  constexpr int kTasks = 10'000;
  std::atomic<int> done{0};
  std::atomic<int> not_done{0};
  {
    // Keep a bounded number in flight, as a scheduler would with two cores.
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kTasks; ++i) {
      // Fewer than 8 in flight: of the i submitted so far, i - 7 are done (the warm-up task's
      // result counts too).
      if (i >= 8) {
        ASSERT_TRUE(recorder_.WaitForResults(static_cast<size_t>(i) - 6));
      }
      ASSERT_OK(executor_->Submit(Task(fmt::format("true.{:06}", i), "/bin/true")));
    }
    ASSERT_TRUE(executor_->WaitIdle(300s));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ info ] %d /bin/true tasks in %.2f s: %.0f tasks/s\n", kTasks, seconds,
                kTasks / seconds);
  }
  for (const auto& [uid, result] : recorder_.Results()) {
    if (result.state == TaskState::kDone) {
      ++done;
    } else {
      ++not_done;
      ADD_FAILURE() << uid << ": " << result.reason;
      if (not_done > 5) break;
    }
  }
  EXPECT_EQ(done.load(), kTasks + 1);
  EXPECT_EQ(CountEntries("/proc/self/fd"), fds_before);
  EXPECT_EQ(CountEntries("/proc/self/task"), threads_before);
  executor_.reset();
  siginfo_t info{};
  EXPECT_TRUE(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD);
}

TEST_F(ExecutorTest, ConcurrentSubmissionFromSeveralThreads) {
  MakeExecutor();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;
  std::vector<std::thread> submitters;
  std::atomic<int> rejected{0};
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        TaskDescription task =
            Task(fmt::format("t{}.{}", t, i), "/bin/sh", {"-c", fmt::format("echo {} {}", t, i)});
        if (!executor_->Submit(std::move(task)).ok()) ++rejected;
      }
    });
  }
  for (std::thread& submitter : submitters) submitter.join();
  EXPECT_EQ(rejected.load(), 0);
  ASSERT_TRUE(executor_->WaitIdle(120s));
  const auto results = recorder_.Results();
  ASSERT_EQ(results.size(), static_cast<size_t>(kThreads * kPerThread));
  for (const auto& [uid, count] : recorder_.ResultCounts()) EXPECT_EQ(count, 1) << uid;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string uid = fmt::format("t{}.{}", t, i);
      const ExecutionResult& result = results.at(uid);
      ASSERT_EQ(result.state, TaskState::kDone) << uid << ": " << result.reason;
      EXPECT_EQ(ReadFile(result.stdout_path), fmt::format("{} {}\n", t, i));
      EXPECT_EQ(recorder_.States(uid), kSuccessPath) << uid;
    }
  }
}

TEST_F(ExecutorTest, RejectsBadSubmissions) {
  MakeExecutor();
  EXPECT_EQ(executor_->Submit(Task("", "/bin/true")).code(), StatusCode::kInvalid);
  EXPECT_EQ(executor_->Submit(Task("a/b", "/bin/true")).code(), StatusCode::kInvalid);
  EXPECT_EQ(executor_->Submit(Task("no-exe", "")).code(), StatusCode::kInvalid);
  TaskDescription two = Task("two", "/bin/true");
  two.ranks = 2;
  EXPECT_EQ(executor_->Submit(two, ExecutionPlacement{{ExecutionSlot{}}}).code(),
            StatusCode::kInvalid);
  // The same uid twice while the first is in flight.
  ASSERT_OK(executor_->Submit(Task("dup", "/bin/sleep", {"30"})));
  EXPECT_EQ(executor_->Submit(Task("dup", "/bin/true")).code(), StatusCode::kInvalid);
  ASSERT_OK(executor_->Cancel("dup"));
  EXPECT_EQ(recorder_.Result("dup").state, TaskState::kCanceled);
  // Bad options.
  ExecutorOptions no_session;
  EXPECT_EQ(Executor::Make(no_session).status().code(), StatusCode::kInvalid);
}

TEST_F(ExecutorTest, DestroyingTheExecutorCancelsRunningTasks) {
  MakeExecutor();
  ASSERT_OK(executor_->Submit(Task("long", "/bin/sleep", {"30"})));
  ASSERT_TRUE(recorder_.WaitForState("long", TaskState::kExecuting));
  const auto start = std::chrono::steady_clock::now();
  executor_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  const ExecutionResult result = recorder_.Result("long", 1s);
  EXPECT_EQ(result.state, TaskState::kCanceled);
  EXPECT_EQ(result.reason, "executor shut down");
}

TEST_F(ExecutorTest, ChildrenReapedByOtherCodeEndFailedInsteadOfHanging) {
  MakeExecutor();
  // With SIGCHLD ignored the kernel reaps children itself and their status is lost.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction previous {};
  ASSERT_EQ(::sigaction(SIGCHLD, &ignore, &previous), 0);
  const ExecutionResult result = Run(Task("auto-reaped", "/bin/true"));
  ::sigaction(SIGCHLD, &previous, nullptr);
  EXPECT_EQ(result.state, TaskState::kFailed);
  EXPECT_EQ(result.reason,
            "exit status lost: the process was reaped by other code (is SIGCHLD ignored?)");
  // Back to normal afterwards.
  EXPECT_EQ(Run(Task("after", "/bin/true")).state, TaskState::kDone);
}

TEST(SignalNameTest, NamesAndNumbers) {
  EXPECT_EQ(SignalName(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(SignalName(SIGKILL), "SIGKILL");
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(SignalName(1000), "signal 1000");
}

}  // namespace
}  // namespace deeprc::runtime
