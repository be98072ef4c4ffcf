// The agent in its own process (`deeprc agent`), over ZeroMQ: tasks run, function tasks that no
// pool can run are Submit errors as in process, messages without the session secret are dropped, a killed agent fails the pilot and its tasks within the heartbeat
// timeout, and a killed client makes the agent cancel its tasks and exit.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deeprc/runtime/client.h"
#include "deeprc/runtime/pool.h"
#include "runtime/wire_internal.h"
#include "testing/assertions.h"

extern char** environ;

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kProgram = std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// True when `pid` no longer runs (gone, or a zombie).
bool ProcessGone(pid_t pid) {
  const std::string stat = ReadText(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return true;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

TaskDescription Task(std::string uid, std::string executable,
                     std::vector<std::string> arguments = {}) {
  TaskDescription task;
  task.uid = std::move(uid);
  task.executable = std::move(executable);
  task.arguments = std::move(arguments);
  return task;
}

class AgentProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kProgram)) GTEST_SKIP() << kProgram << " is not built";
    root_ = fs::temp_directory_path().string() + "/deeprc_agent_process_test." +
            std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    SessionOptions options;
    options.root = root_;
    ASSERT_OK_AND_ASSIGN(session_, Session::Make(options));
  }
  void TearDown() override {
    session_.reset();
    if (!HasFailure() && !root_.empty()) fs::remove_all(root_);
  }
  PilotOptions ProcessOptions() {
    PilotOptions options;
    options.agent_process = true;
    options.agent_program = kProgram;
    options.heartbeat_interval = 100ms;
    options.heartbeat_timeout = 1000ms;
    return options;
  }

  std::string root_;
  std::unique_ptr<Session> session_;
};

TaskDescription FunctionTask(std::string function, nlohmann::json args = nlohmann::json::object(),
                             int32_t ranks = 1, std::string master = "") {
  TaskDescription task;
  task.mode = TaskMode::kFunction;
  task.function = std::move(function);
  task.args = std::move(args);
  task.ranks = ranks;
  task.master = std::move(master);
  return task;
}

TEST_F(AgentProcessTest, FunctionTasksNoPoolCanRunAreSubmitErrorsAsInProcess) {
  // Two pools: built-ins only, and one that loads the test plugin (its functions are known once
  // its ranks reported them). The same pilot in process gives the reference answers.
  std::mt19937 random(std::random_device{}());
  const int32_t workers = std::uniform_int_distribution<int32_t>(1, 2)(random);
  PoolDescription plain;
  plain.name = "plain";
  plain.workers = workers;
  plain.program = std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc-worker";
  PoolDescription plugged = plain;
  plugged.name = "plugged";
  plugged.workers = 1;
  plugged.plugins = {std::string(DEEPRC_BINARY_DIR) + "/tests/libdeeprc_test_plugin.so"};
  PilotDescription description;
  description.cores = workers + 1;
  PilotManager pilots(*session_);
  PilotOptions remote_options = ProcessOptions();
  remote_options.pools.pools = {plain, plugged};
  ASSERT_OK_AND_ASSIGN(Pilot * remote, pilots.Submit(description, remote_options));
  PilotOptions local_options;
  local_options.pools.pools = {plain, plugged};
  ASSERT_OK_AND_ASSIGN(Pilot * local, pilots.Submit(description, local_options));
  TaskManager remote_tasks(*session_), local_tasks(*session_);
  ASSERT_OK(remote_tasks.AddPilot(*remote));
  ASSERT_OK(local_tasks.AddPilot(*local));

  // The answers depend on what the ranks reported (before that, a pool with plugins may have
  // any function): compare once every pool of both pilots has.
  auto known = [](Pilot* pilot) {
    const std::vector<PoolStatus> pools = pilot->pool_status();
    return pools.size() == 2 && std::all_of(pools.begin(), pools.end(), [](const PoolStatus& p) {
             return p.functions_known;
           });
  };
  ASSERT_TRUE(WaitUntil([&] { return known(remote) && known(local); }, 60s));
  const std::string suffix = std::to_string(random());
  auto expect_same_error = [&](const std::vector<TaskDescription>& batch, std::string_view what) {
    Result<std::vector<std::string>> in_process = local_tasks.Submit(batch);
    Result<std::vector<std::string>> over_zmq = remote_tasks.Submit(batch);
    ASSERT_FALSE(in_process.ok()) << "in process accepted " << what;
    ASSERT_FALSE(over_zmq.ok()) << "the agent process accepted " << what;
    EXPECT_EQ(over_zmq.status().ToString(), in_process.status().ToString());
    EXPECT_NE(over_zmq.status().message().find(what), std::string::npos)
        << over_zmq.status().ToString();
    // Nothing of the batch was taken: its uids (none given) were not handed out.
    EXPECT_EQ(remote_tasks.counts().total, 0);
  };
  // A valid task in the same batch goes down with it.
  const TaskDescription fine = FunctionTask("noop");
  expect_same_error({fine, FunctionTask("noop", {}, 1, "no_pool_" + suffix)}, "no_pool_" + suffix);
  expect_same_error({fine, FunctionTask("noop", {}, workers + 1, "plain")}, ".ranks");
  expect_same_error({fine, FunctionTask("noop", {}, 2 + workers)}, ".ranks");
  expect_same_error({fine, FunctionTask("missing_" + suffix, {}, 1, "plain")}, "missing_" + suffix);

  // A name nobody registered is refused by every pool, and the plugin's function runs.
  expect_same_error({fine, FunctionTask("missing_" + suffix)}, "missing_" + suffix);
  const int a = std::uniform_int_distribution<int>(-1000, 1000)(random);
  const int b = std::uniform_int_distribution<int>(-1000, 1000)(random);
  ASSERT_OK_AND_ASSIGN(auto uids, remote_tasks.Submit({FunctionTask("test.add", {{"a", a}, {"b", b}})}));
  ASSERT_OK(remote_tasks.Wait(uids, FinalTaskStates(), 60s));
  ASSERT_OK_AND_ASSIGN(ExecutionResult added, remote_tasks.result(uids[0]));
  EXPECT_EQ(added.state, TaskState::kDone) << added.reason;
  EXPECT_EQ(added.value, a + b);
}

TEST_F(AgentProcessTest, RunsTasksAndExitsOnShutdown) {
  auto pilots = std::make_unique<PilotManager>(*session_);
  ASSERT_OK_AND_ASSIGN(Pilot * pilot,
                       pilots->Submit(PilotDescription{.cores = 2, .gpus = 1}, ProcessOptions()));
  const int agent = pilot->agent_pid();
  ASSERT_GT(agent, 0);
  EXPECT_NE(agent, ::getpid());
  auto tasks = std::make_unique<TaskManager>(*session_);
  ASSERT_OK(tasks->AddPilot(*pilot));
  TaskDescription echo =
      Task("echo", "/bin/sh", {"-c", "echo $DEEPRC_TASK_ID $CUDA_VISIBLE_DEVICES"});
  echo.gpus_per_rank = 1;
  echo.environment["X"] = "y";
  TaskDescription fails = Task("fails", "/bin/sh", {"-c", "exit 1"});
  TaskDescription after = Task("after", "/bin/true");
  after.after = {"fails"};
  TaskDescription huge = Task("huge", "/bin/true");
  huge.cores_per_rank = 99;
  ASSERT_OK_AND_ASSIGN(auto uids, tasks->Submit({echo, fails, after, huge}));
  ASSERT_OK(tasks->Wait(uids, FinalTaskStates(), 30s));
  ASSERT_OK_AND_ASSIGN(auto done, tasks->result("echo"));
  EXPECT_EQ(done.state, TaskState::kDone) << done.reason;
  EXPECT_EQ(ReadText(done.stdout_path), "echo 0\n");
  ASSERT_OK_AND_ASSIGN(auto failed, tasks->result("fails"));
  EXPECT_EQ(failed.state, TaskState::kFailed);
  EXPECT_EQ(failed.exit_code, 1);
  ASSERT_OK_AND_ASSIGN(auto dependent, tasks->result("after"));
  EXPECT_EQ(dependent.state, TaskState::kFailed);
  EXPECT_NE(dependent.reason.find("fails"), std::string::npos) << dependent.reason;
  ASSERT_OK_AND_ASSIGN(auto impossible, tasks->result("huge"));
  EXPECT_EQ(impossible.state, TaskState::kFailed);
  EXPECT_NE(impossible.reason.find("99"), std::string::npos) << impossible.reason;
  // Checked at the client, at once.
  EXPECT_FALSE(tasks->Submit({Task("echo", "/bin/true")}).ok());

  tasks.reset();
  pilots.reset();
  EXPECT_TRUE(ProcessGone(agent));
  // The agent process wrote the task events, the client the pilot's.
  const std::string events = ReadText(session_->directory() + "/events.jsonl");
  EXPECT_NE(events.find(R"("uid":"echo","state":"DONE")"), std::string::npos);
  EXPECT_NE(events.find(R"("uid":"pilot.0000","state":"DONE")"), std::string::npos);
}

TEST_F(AgentProcessTest, PilotShutdownCancelsRunningTasksWithOneFinalEvent) {
  auto pilots = std::make_unique<PilotManager>(*session_);
  ASSERT_OK_AND_ASSIGN(Pilot * pilot,
                       pilots->Submit(PilotDescription{.cores = 1}, ProcessOptions()));
  TaskManager tasks(*session_);
  ASSERT_OK(tasks.AddPilot(*pilot));
  ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit({Task("sleeper", "/bin/sleep", {"60"}),
                                                Task("waiting", "/bin/true")}));
  ASSERT_OK(tasks.Wait({"sleeper"}, {TaskState::kExecuting}, 10s));
  const auto start = std::chrono::steady_clock::now();
  pilots->Shutdown(*pilot);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 1s));
  for (const std::string& uid : uids) {
    ASSERT_OK_AND_ASSIGN(auto result, tasks.result(uid));
    EXPECT_EQ(result.state, TaskState::kCanceled) << uid;
  }
  // Running or waiting, a task ended by the pilot's shutdown says so.
  ASSERT_OK_AND_ASSIGN(auto waiting, tasks.result("waiting"));
  EXPECT_EQ(waiting.reason, "agent shut down");
  ASSERT_OK_AND_ASSIGN(auto sleeper, tasks.result("sleeper"));
  EXPECT_EQ(sleeper.reason, "agent shut down");
  EXPECT_EQ(pilot->state(), PilotState::kDone);
  (void)session_->events().Flush();
  std::ifstream in(session_->directory() + "/events.jsonl");
  std::string line;
  int finals = 0;
  while (std::getline(in, line)) {
    const auto event = nlohmann::json::parse(line);
    if (event["entity"] == "task" && event["uid"] == "sleeper" && event["state"] == "CANCELED") {
      ++finals;
    }
  }
  EXPECT_EQ(finals, 1);
}

size_t CountEntries(const std::string& directory) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(directory)) ++count;
  return count;
}

TEST_F(AgentProcessTest, ManyTasksAndPilotsWithoutGrowthInDescriptorsOrThreads) {
  auto run_pilot = [&](int count) {
    PilotManager pilots(*session_);
    auto pilot = pilots.Submit(PilotDescription{.cores = 2}, ProcessOptions());
    ASSERT_TRUE(pilot.ok()) << pilot.status().ToString();
    TaskManager tasks(*session_);
    ASSERT_OK(tasks.AddPilot(**pilot));
    std::vector<TaskDescription> batch(static_cast<size_t>(count), Task("", "/bin/true"));
    ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit(std::move(batch)));
    ASSERT_OK(tasks.Wait(uids, {TaskState::kDone}, 120s));
  };
  run_pilot(100);
  const size_t fds = CountEntries("/proc/self/fd");
  const size_t threads = CountEntries("/proc/self/task");
  for (int i = 0; i < 3; ++i) run_pilot(1000);
  EXPECT_EQ(CountEntries("/proc/self/fd"), fds);
  EXPECT_EQ(CountEntries("/proc/self/task"), threads);
}

TEST_F(AgentProcessTest, MessagesWithoutTheSecretAreDropped) {
  ASSERT_OK_AND_ASSIGN(std::string secret, MakeSecret());
  ASSERT_OK_AND_ASSIGN(std::string other, MakeSecret());
  for (const bool authentic : {false, true}) {
    std::string endpoint;
    ASSERT_OK_AND_ASSIGN(auto server, internal::Channel::Bind(secret, &endpoint));
    EXPECT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
    ASSERT_OK_AND_ASSIGN(auto client,
                         internal::Channel::Connect(authentic ? secret : other, endpoint));
    std::thread sender([&] {
      client->Send(R"({"type":"hello"})");
      client->Run([](std::string&&) {}, [&] { client->Stop(); }, 300ms);
    });
    std::vector<std::string> received;
    int ticks = 0;
    server->Run([&](std::string&& body) { received.push_back(body); },
                [&] {
                  if (++ticks == 5) server->Stop();
                },
                100ms);
    sender.join();
    if (authentic) {
      EXPECT_EQ(received, std::vector<std::string>{R"({"type":"hello"})"});
      EXPECT_EQ(server->rejected(), 0);
    } else {
      EXPECT_TRUE(received.empty());
      EXPECT_EQ(server->rejected(), 1);
    }
  }
  EXPECT_TRUE(internal::ConstantTimeEqual("abc", "abc"));
  EXPECT_FALSE(internal::ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(internal::ConstantTimeEqual("abc", "abcd"));
}

TEST_F(AgentProcessTest, AnotherProcessConnectingFirstDoesNotLockTheClientOut) {
  ASSERT_OK_AND_ASSIGN(std::string secret, MakeSecret());
  ASSERT_OK_AND_ASSIGN(std::string other, MakeSecret());
  std::string endpoint;
  ASSERT_OK_AND_ASSIGN(auto server, internal::Channel::Bind(secret, &endpoint));
  // The intruder connects first and keeps talking (without the secret).
  ASSERT_OK_AND_ASSIGN(auto intruder, internal::Channel::Connect(other, endpoint));
  std::vector<std::string> intruder_heard;
  std::thread intruding([&] {
    intruder->Send(R"({"type":"submit"})");
    intruder->Run([&](std::string&& body) { intruder_heard.push_back(body); },
                  [&] { intruder->Send(R"({"type":"heartbeat"})"); }, 20ms);
  });
  std::this_thread::sleep_for(100ms);
  ASSERT_OK_AND_ASSIGN(auto client, internal::Channel::Connect(secret, endpoint));
  std::vector<std::string> client_heard;
  std::atomic<bool> answered{false};
  std::thread talking([&] {
    client->Send(R"({"type":"hello"})");
    client->Run(
        [&](std::string&& body) {
          client_heard.push_back(body);
          answered = true;
          client->Stop();
        },
        [] {}, 50ms);
  });
  std::vector<std::string> received;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  server->Run(
      [&](std::string&& body) {
        received.push_back(body);
        server->Send(R"({"type":"welcome"})");
      },
      [&] {
        if (answered || std::chrono::steady_clock::now() > deadline) server->Stop();
      },
      20ms);
  talking.join();
  intruder->Stop();
  intruding.join();
  EXPECT_EQ(received, std::vector<std::string>{R"({"type":"hello"})"});
  EXPECT_EQ(client_heard, std::vector<std::string>{R"({"type":"welcome"})"});
  EXPECT_TRUE(intruder_heard.empty());
  EXPECT_GE(server->rejected(), 1);
}

TEST_F(AgentProcessTest, KilledAgentFailsPilotAndTasksWithinTheHeartbeatTimeout) {
  PilotManager pilots(*session_);
  const PilotOptions options = ProcessOptions();
  ASSERT_OK_AND_ASSIGN(Pilot * pilot, pilots.Submit(PilotDescription{.cores = 1}, options));
  TaskManager tasks(*session_);
  ASSERT_OK(tasks.AddPilot(*pilot));
  const std::string pid_file = session_->directory() + "/running.pid";
  ASSERT_OK_AND_ASSIGN(
      auto uids,
      tasks.Submit({Task("running", "/bin/sh", {"-c", "echo $$ > " + pid_file + "; exec sleep 60"}),
                    Task("queued", "/bin/true")}));
  ASSERT_OK(tasks.Wait({"running"}, {TaskState::kExecuting}, 10s));
  ASSERT_TRUE(WaitUntil([&] { return !ReadText(pid_file).empty(); }, 5s));
  const pid_t task_pid = std::stoi(ReadText(pid_file));

  ASSERT_EQ(::kill(pilot->agent_pid(), SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 10s));
  const auto noticed = std::chrono::steady_clock::now() - killed;
  EXPECT_LE(noticed, options.heartbeat_timeout + 2 * options.heartbeat_interval + 200ms);
  for (const std::string& uid : uids) {
    ASSERT_OK_AND_ASSIGN(auto result, tasks.result(uid));
    EXPECT_EQ(result.state, TaskState::kFailed) << uid;
    EXPECT_NE(result.reason.find("agent lost"), std::string::npos) << result.reason;
  }
  EXPECT_EQ(pilot->state(), PilotState::kFailed);
  EXPECT_FALSE(tasks.Submit({Task("late", "/bin/true")}).ok());
  // The agent could not clean up after itself; its guard process did.
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(task_pid); }, 3s)) << "task " << task_pid;
  if (!ProcessGone(task_pid)) ::kill(task_pid, SIGKILL);
}

// The parent pid from /proc/<pid>/stat ("pid (name) state ppid ...").
pid_t ParentOf(pid_t pid) {
  const std::string stat = ReadText(fmt::format("/proc/{}/stat", pid));
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 4 >= stat.size()) return -1;
  return std::stoi(stat.substr(paren + 4));
}

std::vector<pid_t> ReadPids(const std::string& path) {
  std::vector<pid_t> pids;
  std::istringstream in(ReadText(path));
  for (pid_t pid; in >> pid;) pids.push_back(pid);
  return pids;
}

TEST_F(AgentProcessTest, KilledAgentTakesEveryTaskProcessGroupDown) {
  PilotManager pilots(*session_);
  ASSERT_OK_AND_ASSIGN(Pilot * pilot,
                       pilots.Submit(PilotDescription{.cores = 3}, ProcessOptions()));
  TaskManager tasks(*session_);
  ASSERT_OK(tasks.AddPilot(*pilot));
  const std::string directory = session_->directory();
  // A task whose first process has a child in its process group, and an mpirun task whose
  // ranks run in process groups of their own.
  TaskDescription shell =
      Task("shell", "/bin/sh",
           {"-c", "sleep 61 & echo $! >> " + directory + "/shell.pids; echo $$ >> " + directory +
                      "/shell.pids; wait"});
  TaskDescription ranks =
      Task("ranks", "/bin/sh", {"-c", "echo $$ >> " + directory + "/ranks.pids; exec sleep 62"});
  ranks.ranks = 2;
  ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit({shell, ranks}));
  ASSERT_TRUE(WaitUntil(
      [&] {
        return ReadPids(directory + "/shell.pids").size() == 2 &&
               ReadPids(directory + "/ranks.pids").size() == 2;
      },
      20s))
      << ReadText(directory + "/tasks/ranks/ranks.err");
  std::vector<pid_t> pids = ReadPids(directory + "/shell.pids");
  for (const pid_t pid : ReadPids(directory + "/ranks.pids")) pids.push_back(pid);
  // mpirun itself, the ranks' parent.
  pids.push_back(ParentOf(pids.back()));
  for (const pid_t pid : pids) ASSERT_FALSE(ProcessGone(pid)) << pid;

  ASSERT_EQ(::kill(pilot->agent_pid(), SIGKILL), 0);
  for (const pid_t pid : pids) {
    EXPECT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, 3s))
        << "pid " << pid << ": " << ReadText(fmt::format("/proc/{}/cmdline", pid));
  }
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 10s));
  for (const pid_t pid : pids) {
    if (!ProcessGone(pid)) ::kill(pid, SIGKILL);
  }
}

TEST_F(AgentProcessTest, PilotRuntimeLimitIsEnforcedByTheAgentProcess) {
  PilotManager pilots(*session_);
  ASSERT_OK_AND_ASSIGN(
      Pilot * pilot, pilots.Submit(PilotDescription{.cores = 1, .runtime = 1.5}, ProcessOptions()));
  TaskManager tasks(*session_);
  ASSERT_OK(tasks.AddPilot(*pilot));
  ASSERT_OK_AND_ASSIGN(auto uids, tasks.Submit({Task("running", "/bin/sleep", {"30"}),
                                                Task("queued", "/bin/true")}));
  ASSERT_OK(tasks.Wait(uids, FinalTaskStates(), 10s));
  for (const std::string& uid : uids) {
    ASSERT_OK_AND_ASSIGN(auto result, tasks.result(uid));
    EXPECT_EQ(result.state, TaskState::kCanceled) << uid;
    EXPECT_EQ(result.reason, "the pilot's runtime limit of 1.5 s is over") << uid;
  }
  EXPECT_TRUE(WaitUntil([&] { return pilot->state() == PilotState::kDone; }, 5s));
  auto late = tasks.Submit({Task("late", "/bin/true")});
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.status().message().find("runtime limit"), std::string::npos)
      << late.status().ToString();
}

TEST_F(AgentProcessTest, KilledClientMakesTheAgentCancelItsTasksAndExit) {
  const std::string pid_file = root_ + "/task.pid";
  const std::string file = root_ + "/one.yaml";
  std::ofstream(file) << "pilot:\n  cores: 1\ntasks:\n  - name: sleeper\n    executable: /bin/sh\n"
                         "    arguments: ['-c', 'echo $$ > "
                      << pid_file << "; exec sleep 60']\n";
  std::vector<std::string> args = {
      kProgram, "tasks", "run", file, "--agent-process", "--session-root", root_ + "/sessions"};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (root_ + "/out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (root_ + "/err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t client = -1;
  ASSERT_EQ(::posix_spawn(&client, kProgram.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  ASSERT_TRUE(WaitUntil([&] { return !ReadText(pid_file).empty(); }, 20s))
      << ReadText(root_ + "/err");
  const pid_t task_pid = std::stoi(ReadText(pid_file));
  const std::string session =
      ReadText(root_ + "/out").substr(0, ReadText(root_ + "/out").find('\n'));
  const auto agent_info = nlohmann::json::parse(ReadText(session + "/agent.json"));
  const pid_t agent = agent_info["pid"].get<int>();

  ASSERT_EQ(::kill(client, SIGKILL), 0);
  int status = 0;
  ::waitpid(client, &status, 0);
  // Default heartbeat timeout 3 s; then the agent cancels (SIGTERM) and exits.
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(agent); }, 10s)) << "agent " << agent;
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(task_pid); }, 5s)) << "task " << task_pid;
  const std::string events = ReadText(session + "/events.jsonl");
  EXPECT_NE(events.find(R"("uid":"sleeper","state":"CANCELED","time_us")"), std::string::npos)
      << events;
  if (!ProcessGone(task_pid)) ::kill(task_pid, SIGKILL);
  if (!ProcessGone(agent)) ::kill(agent, SIGKILL);
}

}  // namespace
}  // namespace deeprc::runtime
