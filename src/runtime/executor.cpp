#include "deeprc/runtime/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/core.h>

#include "deeprc/core/check.h"
#include "deeprc/core/logging.h"
#include "runtime/process_internal.h"
#include "runtime/staging_internal.h"

extern char** environ;

namespace deeprc::runtime {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Which process of a task is running (or ran last).
enum class Phase : uint8_t { kQueued, kStarting, kMain, kPostExec, kFinishing };

enum class TimerKind : uint8_t { kNone, kTimeout, kKill };

// What a shell wrapper prints as its last stderr line when a pre_exec or post_exec line fails or
// the executable is missing; the executor turns it into the task's reason.
constexpr std::string_view kMarker = "deeprc: ";

std::string ShellQuote(std::string_view text) {
  std::string quoted = "'";
  for (const char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += '\'';
  return quoted;
}

// One line per entry: run it in the current shell; on failure print the marker and exit with
// its status.
std::string ShellLines(std::string_view what, const std::vector<std::string>& lines) {
  std::string script;
  for (size_t i = 0; i < lines.size(); ++i) {
    script += fmt::format(
        "{{\n{}\n}} || {{ deeprc_status=$?; printf '%s\\n' {}\"$deeprc_status\"{} >&2; "
        "exit \"$deeprc_status\"; }}\n",
        lines[i], ShellQuote(fmt::format("{}{}[{}] failed with exit status ", kMarker, what, i)),
        ShellQuote(fmt::format(": {}", lines[i])));
  }
  return script;
}

std::string JoinIds(const std::vector<int32_t>& ids) {
  std::string text;
  for (const int32_t id : ids) {
    if (!text.empty()) text += ',';
    text += std::to_string(id);
  }
  return text;
}

bool IsExecutableFile(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::string AbsoluteIn(const std::string& base, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  return base + "/" + path;
}

// A program name as execve wants it: a path with a slash is taken as is (relative ones against
// `directory`); a bare name is looked up in `search_path`. Empty when not found.
std::string ResolveProgram(const std::string& name, const std::string& search_path,
                           const std::string& directory) {
  if (name.find('/') != std::string::npos) return AbsoluteIn(directory, name);
  size_t begin = 0;
  while (begin <= search_path.size()) {
    size_t end = search_path.find(':', begin);
    if (end == std::string::npos) end = search_path.size();
    std::string entry = search_path.substr(begin, end - begin);
    if (entry.empty()) entry = ".";
    const std::string candidate = AbsoluteIn(directory, entry) + "/" + name;
    if (IsExecutableFile(candidate)) return candidate;
    begin = end + 1;
  }
  return {};
}

// The reason a wrapper shell wrote as its last stderr line, when it did.
std::string MarkerReason(const std::string& stderr_tail) {
  size_t end = stderr_tail.size();
  if (end > 0 && stderr_tail[end - 1] == '\n') --end;
  const size_t begin = stderr_tail.rfind('\n', end == 0 ? 0 : end - 1);
  const std::string_view last = std::string_view(stderr_tail)
                                    .substr(begin == std::string::npos ? 0 : begin + 1,
                                            end - (begin == std::string::npos ? 0 : begin + 1));
  if (!last.starts_with(kMarker)) return {};
  return std::string(last.substr(kMarker.size()));
}

std::string ExitReason(int exit_code, int signal) {
  if (signal != 0) return fmt::format("killed by signal {}", SignalName(signal));
  return fmt::format("exited with status {}", exit_code);
}

std::string ExitReason(const internal::ExitStatus& exit) {
  if (exit.status_lost) {
    return "exit status lost: the process was reaped by other code (is SIGCHLD ignored?)";
  }
  return ExitReason(exit.exit_code, exit.signal);
}

// One output stream of a running process: the pipe the process writes into and the file that
// receives it, created when the first byte arrives. Touched by the reaper thread once watched.
struct OutputStream {
  int pipe = -1;
  int file = -1;
  std::string path;
  uint64_t watch_id = 0;
  bool open_failed = false;
};

struct TaskRun {
  TaskDescription task;
  ExecutionPlacement placement;
  ExecutionResult result;
  TaskState state = TaskState::kScheduling;
  Phase phase = Phase::kQueued;
  std::vector<std::string> environment;

  // The process running now; guarded by Executor::Impl::mutex_ (as are the fields below).
  pid_t pid = -1;
  int pidfd = -1;
  uint64_t watch_id = 0;
  internal::ExitStatus exit;
  // Set once by Cancel or the timeout; the task then ends CANCELED with it.
  std::string stop_reason;
  bool terminate_sent = false;
  SteadyClock::time_point deadline{};
  TimerKind timer_kind = TimerKind::kNone;
  std::multimap<SteadyClock::time_point, std::shared_ptr<TaskRun>>::iterator timer;

  // The task's own process, kept while post_exec runs.
  internal::ExitStatus main_exit;
  std::string main_failure;
  // stdout, stderr (unused when both go to one file) of the process running now.
  OutputStream output[2];
  // The sandbox was created for this task, so no output file of an earlier run is in it.
  bool fresh_sandbox = false;
};

// Moves what the pipe holds into the stream's file, creating the file at the first byte.
// Returns false at end of file (every writer is gone), true when the pipe is merely empty.
bool DrainOutput(OutputStream& output) {
  char buffer[65536];
  while (true) {
    const ssize_t got = ::read(output.pipe, buffer, sizeof(buffer));
    if (got == 0) return false;
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN;
    }
    if (output.file < 0 && !output.open_failed) {
      output.file = ::open(output.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (output.file < 0) {
        // The data is dropped (the task must not block on a full pipe); said once.
        output.open_failed = true;
        Log(LogLevel::kWarning, "executor: cannot create output file {}: {}", output.path,
            strerror(errno));
      }
    }
    for (ssize_t written = 0; output.file >= 0 && written < got;) {
      const ssize_t put =
          ::write(output.file, buffer + written, static_cast<size_t>(got - written));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) {
        Log(LogLevel::kWarning, "executor: cannot write output file {}: {}", output.path,
            strerror(errno));
        ::close(output.file);
        output.file = -1;
        output.open_failed = true;
        break;
      }
      written += put;
    }
  }
}

void CloseOutput(OutputStream& output) {
  if (output.pipe >= 0) ::close(output.pipe);
  if (output.file >= 0) ::close(output.file);
  output = OutputStream{};
}

}  // namespace

class Executor::Impl {
 public:
  explicit Impl(ExecutorOptions options) : options_(std::move(options)) {}

  Status Start();
  void Shutdown();

  Status Submit(TaskDescription task, ExecutionPlacement placement);
  Status Cancel(std::string_view uid, std::string_view reason);
  bool WaitIdle(std::chrono::milliseconds timeout);
  int64_t InFlight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }

 private:
  enum class JobKind : uint8_t { kStart, kProcessExited };
  struct Job {
    std::shared_ptr<TaskRun> run;
    JobKind kind;
  };

  void WorkerLoop();
  void ReaperLoop();
  void Post(Job job);

  // Worker steps.
  void StartTask(const std::shared_ptr<TaskRun>& run);
  void ProcessExited(const std::shared_ptr<TaskRun>& run);
  void Conclude(const std::shared_ptr<TaskRun>& run);
  void Finish(const std::shared_ptr<TaskRun>& run, TaskState state, std::string reason);
  void Transition(TaskRun& run, TaskState state, const std::string& reason = {});
  std::string StopReason(const TaskRun& run) {
    std::lock_guard lock(mutex_);
    return run.stop_reason;
  }

  std::vector<std::string> BuildEnvironment(const TaskRun& run, bool mpi) const;
  // The argv that launches the task's ranks; an error reason when it cannot be built.
  Result<std::vector<std::string>> LaunchCommand(TaskRun& run, const std::string& search_path);
  // Starts a process for `run` and hands it to the reaper; an error reason on failure.
  std::string Launch(const std::shared_ptr<TaskRun>& run, internal::SpawnRequest request,
                     const std::string& shown_program);
  Status StageAll(TaskRun& run, const std::vector<StagingDirective>& directives, bool input);

  // Reaper side; mutex_ held.
  void ArmTimer(const std::shared_ptr<TaskRun>& run, TimerKind kind, SteadyClock::time_point when);
  void DisarmTimer(TaskRun& run);
  void Terminate(const std::shared_ptr<TaskRun>& run);
  void WakeReaper();
  // Reaper side, mutex_ not held: the process of `run` has exited; take the rest of its output.
  void FinishOutput(TaskRun& run);

  ExecutorOptions options_;
  std::map<std::string, std::string> base_environment_;
  std::string tasks_dir_;
  unsigned hardware_cores_ = 1;

  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::unordered_map<std::string, std::shared_ptr<TaskRun>> tasks_;
  std::multimap<SteadyClock::time_point, std::shared_ptr<TaskRun>> timers_;
  // Processes the reaper watches, by the id their epoll event carries.
  static constexpr uint64_t kWakeId = 0;
  std::unordered_map<uint64_t, std::shared_ptr<TaskRun>> watched_;
  // Output pipes the reaper watches: the run and which of its streams.
  std::unordered_map<uint64_t, std::pair<std::shared_ptr<TaskRun>, int>> outputs_;
  uint64_t next_watch_id_ = 0;
  int64_t in_flight_ = 0;
  int64_t live_processes_ = 0;
  bool stopping_ = false;

  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  // Exited processes are handled before new tasks start, so that a burst of submissions does not
  // delay the results of tasks that already ran.
  std::deque<Job> exits_;
  std::deque<Job> starts_;
  bool queue_closed_ = false;

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> reaper_stop_{false};
  // Takes the tasks' process groups down if this process dies before it can.
  internal::ProcessGroupGuard guard_;
  std::vector<std::thread> workers_;
  std::thread reaper_;
};

Status Executor::Impl::Start() {
  if (options_.session_dir.empty()) {
    return Status::Invalid("executor: session_dir is required");
  }
  if (options_.worker_threads < 1) {
    return Status::Invalid("executor: worker_threads must be at least 1, found {}",
                           options_.worker_threads);
  }
  std::error_code error;
  options_.session_dir = fs::absolute(options_.session_dir, error).lexically_normal().string();
  if (options_.client_dir.empty()) options_.client_dir = fs::current_path(error).string();
  options_.client_dir = fs::absolute(options_.client_dir, error).lexically_normal().string();
  while (options_.session_dir.size() > 1 && options_.session_dir.back() == '/') {
    options_.session_dir.pop_back();
  }
  tasks_dir_ = options_.session_dir + "/tasks";
  fs::create_directories(tasks_dir_, error);
  if (error) {
    return Status::IOError("executor: cannot create {}: {}", tasks_dir_, error.message());
  }
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const size_t equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    base_environment_.emplace(std::string(text.substr(0, equals)),
                              std::string(text.substr(equals + 1)));
  }
  hardware_cores_ = std::max(1u, std::thread::hardware_concurrency());

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    return Status::IOError("executor: cannot create epoll or eventfd: {}", strerror(errno));
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeId;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
    return Status::IOError("executor: epoll_ctl: {}", strerror(errno));
  }
  if (const std::string error = guard_.Start(options_.kill_grace); !error.empty()) {
    // Tasks still run and are still cleaned up by this process; they only outlive a SIGKILL.
    Log(LogLevel::kWarning, "executor: {}; tasks would outlive this process if it were killed",
        error);
  }
  reaper_ = std::thread([this] { ReaperLoop(); });
  for (int32_t i = 0; i < options_.worker_threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  return Status::OK();
}

void Executor::Impl::Shutdown() {
  std::vector<std::string> uids;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (const auto& [uid, run] : tasks_) uids.push_back(uid);
  }
  for (const std::string& uid : uids) {
    std::lock_guard lock(mutex_);
    const auto found = tasks_.find(uid);
    if (found == tasks_.end()) continue;
    if (found->second->stop_reason.empty()) found->second->stop_reason = "executor shut down";
    Terminate(found->second);
  }
  {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return in_flight_ == 0; });
  }
  {
    std::lock_guard lock(queue_mutex_);
    queue_closed_ = true;
  }
  queue_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  reaper_stop_ = true;
  WakeReaper();
  if (reaper_.joinable()) reaper_.join();
  guard_.Stop();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status Executor::Impl::Submit(TaskDescription task, ExecutionPlacement placement) {
  const std::string where = task.uid.empty() ? std::string("task") : task.uid;
  DEEPRC_RETURN_NOT_OK(ValidateTaskDescription(task, where));
  if (task.uid.empty() || task.uid == "." || task.uid == ".." ||
      task.uid.find('/') != std::string::npos) {
    return Status::Invalid("{}.uid: expected a non-empty name without '/', found '{}'", where,
                           task.uid);
  }
  if (task.mode != TaskMode::kExecutable) {
    return Status::NotImplemented(
        "{}.mode: the executor runs executable tasks; {} tasks run in "
        "worker pools",
        where, TaskModeName(task.mode));
  }
  if (!placement.ranks.empty() && placement.ranks.size() != static_cast<size_t>(task.ranks)) {
    return Status::Invalid("{}: placement has {} rank slots for {} ranks", where,
                           placement.ranks.size(), task.ranks);
  }
  auto run = std::make_shared<TaskRun>();
  run->task = std::move(task);
  run->placement = std::move(placement);
  run->result.uid = run->task.uid;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Status::Cancelled("executor: shutting down");
    const auto [position, inserted] = tasks_.emplace(run->task.uid, run);
    if (!inserted) {
      return Status::Invalid("{}: a task with this uid is already in flight", where);
    }
    ++in_flight_;
  }
  Post({std::move(run), JobKind::kStart});
  return Status::OK();
}

Status Executor::Impl::Cancel(std::string_view uid, std::string_view reason) {
  std::lock_guard lock(mutex_);
  const auto found = tasks_.find(std::string(uid));
  if (found == tasks_.end()) {
    return Status::KeyError("cancel: no task '{}' in flight", uid);
  }
  if (found->second->stop_reason.empty()) {
    found->second->stop_reason = std::string(reason);
  }
  Terminate(found->second);
  return Status::OK();
}

bool Executor::Impl::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [this] { return in_flight_ == 0; });
}

void Executor::Impl::Post(Job job) {
  {
    std::lock_guard lock(queue_mutex_);
    (job.kind == JobKind::kStart ? starts_ : exits_).push_back(std::move(job));
  }
  queue_ready_.notify_one();
}

void Executor::Impl::WorkerLoop() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(queue_mutex_);
      queue_ready_.wait(lock,
                        [this] { return !exits_.empty() || !starts_.empty() || queue_closed_; });
      std::deque<Job>& queue = exits_.empty() ? starts_ : exits_;
      if (queue.empty()) return;
      job = std::move(queue.front());
      queue.pop_front();
    }
    switch (job.kind) {
      case JobKind::kStart:
        StartTask(job.run);
        break;
      case JobKind::kProcessExited:
        ProcessExited(job.run);
        break;
    }
  }
}

void Executor::Impl::Transition(TaskRun& run, TaskState state, const std::string& reason) {
  [[maybe_unused]] const Status allowed = CheckTransition(run.state, state);
  DEEPRC_DCHECK(allowed.ok());
  run.state = state;
  if (options_.on_event) options_.on_event(TaskEvent{run.task.uid, state, NowMicros(), reason});
}

std::vector<std::string> Executor::Impl::BuildEnvironment(const TaskRun& run, bool mpi) const {
  std::map<std::string, std::string> variables = base_environment_;
  for (const auto& [name, value] : run.task.environment) variables[name] = value;
  std::vector<int32_t> cores;
  std::vector<int32_t> gpus;
  for (const ExecutionSlot& slot : run.placement.ranks) {
    cores.insert(cores.end(), slot.cores.begin(), slot.cores.end());
    gpus.insert(gpus.end(), slot.gpus.begin(), slot.gpus.end());
  }
  const std::string gpu_ids = JoinIds(gpus);
  variables["DEEPRC_TASK_ID"] = run.task.uid;
  variables["DEEPRC_TASK_NAME"] = run.task.name;
  variables["DEEPRC_RANKS"] = std::to_string(run.task.ranks);
  variables["DEEPRC_CORES"] = JoinIds(cores);
  variables["DEEPRC_GPU_IDS"] = gpu_ids;
  // The assigned GPUs win over a value inherited or given by the task: two tasks must never
  // see the same GPU.
  variables["CUDA_VISIBLE_DEVICES"] = gpu_ids;
  variables["DEEPRC_SANDBOX"] = run.result.sandbox;
  if (mpi && ::geteuid() == 0) {
    variables["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
    variables["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
  }
  std::vector<std::string> entries;
  entries.reserve(variables.size());
  for (const auto& [name, value] : variables) entries.push_back(name + "=" + value);
  return entries;
}

Result<std::vector<std::string>> Executor::Impl::LaunchCommand(TaskRun& run,
                                                               const std::string& search_path) {
  const TaskDescription& task = run.task;
  std::vector<std::string> argv;
  if (task.ranks > 1) {
    const std::string mpirun = ResolveProgram(options_.mpirun, search_path, run.result.sandbox);
    if (mpirun.empty()) {
      return Status::IOError("mpirun not found: {} (needed for {} ranks)", options_.mpirun,
                             task.ranks);
    }
    argv = {mpirun};
    // The explicit slot mapping: a rankfile binding each rank to its cores, or a host list.
    bool rankfile =
        options_.mpi_slot_mapping == MpiSlotMapping::kRankfile && !run.placement.ranks.empty();
    std::set<std::pair<std::string, int32_t>> used;
    bool shared_core = false;
    for (const ExecutionSlot& slot : run.placement.ranks) {
      if (slot.cores.empty()) rankfile = false;
      for (const int32_t core : slot.cores) {
        // Core ids the machine does not have (virtual resources) cannot be bound.
        if (core < 0 || static_cast<unsigned>(core) >= hardware_cores_) rankfile = false;
        if (!used.emplace(slot.node, core).second) shared_core = true;
      }
    }
    if (static_cast<unsigned>(task.ranks) > hardware_cores_ || shared_core) {
      argv.push_back("--oversubscribe");
    }
    if (rankfile) {
      std::string text;
      for (size_t rank = 0; rank < run.placement.ranks.size(); ++rank) {
        const ExecutionSlot& slot = run.placement.ranks[rank];
        text += fmt::format("rank {}={} slot={}\n", rank,
                            slot.node.empty() ? "localhost" : slot.node, JoinIds(slot.cores));
      }
      const std::string path = run.result.sandbox + "/deeprc.rankfile";
      FILE* file = std::fopen(path.c_str(), "we");
      if (file == nullptr) {
        return Status::IOError("cannot write rankfile {}: {}", path, strerror(errno));
      }
      const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
      if (std::fclose(file) != 0 || !written) {
        return Status::IOError("cannot write rankfile {}", path);
      }
      argv.push_back("--rankfile");
      argv.push_back(path);
    } else {
      // Ranks per node, in order of first appearance.
      std::vector<std::pair<std::string, int32_t>> hosts;
      if (run.placement.ranks.empty()) {
        hosts.emplace_back("localhost", task.ranks);
      }
      for (const ExecutionSlot& slot : run.placement.ranks) {
        const std::string node = slot.node.empty() ? "localhost" : slot.node;
        auto found = std::find_if(hosts.begin(), hosts.end(),
                                  [&](const auto& host) { return host.first == node; });
        if (found == hosts.end()) {
          hosts.emplace_back(node, 1);
        } else {
          ++found->second;
        }
      }
      std::string list;
      for (const auto& [node, slots] : hosts) {
        if (!list.empty()) list += ',';
        list += fmt::format("{}:{}", node, slots);
      }
      argv.push_back("--host");
      argv.push_back(list);
    }
  }
  const auto append_command = [&] {
    argv.push_back(task.executable);
    argv.insert(argv.end(), task.arguments.begin(), task.arguments.end());
  };
  if (task.ranks == 1) {
    append_command();
    return argv;
  }
  // Each rank sees only its own GPUs: one mpirun application context per rank
  // (`-np 1 -x CUDA_VISIBLE_DEVICES=.. cmd : -np 1 ...`), still argv entries, no shell. An
  // argument that is a lone ":" would split the contexts; then every rank sees all the task's
  // GPUs.
  const bool any_gpu = std::any_of(run.placement.ranks.begin(), run.placement.ranks.end(),
                                   [](const ExecutionSlot& slot) { return !slot.gpus.empty(); });
  const bool colon_argument =
      std::find(task.arguments.begin(), task.arguments.end(), ":") != task.arguments.end();
  if (any_gpu && !colon_argument) {
    for (size_t rank = 0; rank < run.placement.ranks.size(); ++rank) {
      if (rank > 0) argv.push_back(":");
      argv.insert(argv.end(), {"-np", "1", "-x",
                               "CUDA_VISIBLE_DEVICES=" + JoinIds(run.placement.ranks[rank].gpus)});
      append_command();
    }
    return argv;
  }
  argv.push_back("--np");
  argv.push_back(std::to_string(task.ranks));
  append_command();
  return argv;
}

std::string Executor::Impl::Launch(const std::shared_ptr<TaskRun>& run,
                                   internal::SpawnRequest request,
                                   const std::string& shown_program) {
  request.guard_socket = guard_.socket();
  // Output files are created when output arrives: creating files is the dearest part of a
  // short task on some file systems (ext4 without a journal skips every inode freed in the last
  // minutes when it allocates one). What an earlier run left in a reused sandbox is cleared.
  // Not when background children may outlive the task: they would write into a closed pipe.
  request.output_pipes = options_.kill_group_on_exit;
  if (request.truncate_output && !run->fresh_sandbox) {
    ::truncate(request.stdout_path.c_str(), 0);
    if (request.stderr_path != request.stdout_path) ::truncate(request.stderr_path.c_str(), 0);
  }
  internal::SpawnedProcess spawned = internal::Spawn(request);
  const auto take_streams = [&](TaskRun& target) {
    for (int stream = 0; stream < 2; ++stream) {
      OutputStream& output = target.output[stream];
      CloseOutput(output);
      output.pipe = stream == 0 ? spawned.stdout_pipe : spawned.stderr_pipe;
      output.path = stream == 0 ? request.stdout_path : request.stderr_path;
    }
  };
  if (spawned.already_reaped) {
    take_streams(*run);
    FinishOutput(*run);
    run->exit = internal::ExitStatus{.reaped = true, .status_lost = true};
    Post({run, JobKind::kProcessExited});
    return {};
  }
  if (spawned.pid < 0) {
    if (!spawned.exec_failed) return spawned.error;
    if (spawned.error_number == ENOENT) {
      if (::access(request.program.c_str(), F_OK) == 0) {
        return fmt::format("cannot execute {}: its interpreter was not found", shown_program);
      }
      return fmt::format("executable not found: {}", shown_program);
    }
    if (spawned.error_number == EACCES) {
      return fmt::format("executable not permitted: {} ({})", shown_program, spawned.error);
    }
    return fmt::format("cannot execute {}: {}", shown_program, spawned.error);
  }
  {
    std::lock_guard lock(mutex_);
    // Events carry a watch id, never a pointer: an id that is no longer watched is ignored.
    const uint64_t watch_id = ++next_watch_id_;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = watch_id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, spawned.pidfd, &event) != 0) {
      // Out of kernel memory or over max_user_watches: do not leave it running or unreaped.
      const int error = errno;
      ::kill(-spawned.pid, SIGKILL);
      ::waitpid(spawned.pid, nullptr, 0);
      ::close(spawned.pidfd);
      take_streams(*run);
      FinishOutput(*run);
      return fmt::format("cannot watch process {}: {}", spawned.pid, strerror(error));
    }
    take_streams(*run);
    for (int stream = 0; stream < 2; ++stream) {
      OutputStream& output = run->output[stream];
      if (output.pipe < 0) continue;
      output.watch_id = ++next_watch_id_;
      epoll_event output_event{};
      output_event.events = EPOLLIN;
      output_event.data.u64 = output.watch_id;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, output.pipe, &output_event) == 0) {
        outputs_.emplace(output.watch_id, std::make_pair(run, stream));
      } else {
        // Not watched: drained only when the process exits (a task that writes more than a
        // pipe holds waits until then... which is never): drop its output instead.
        Log(LogLevel::kWarning, "executor: cannot watch the output of {}: {}", run->task.uid,
            strerror(errno));
        ::close(output.pipe);
        output.pipe = -1;
      }
    }
    run->pid = spawned.pid;
    run->pidfd = spawned.pidfd;
    run->terminate_sent = false;
    run->watch_id = watch_id;
    watched_.emplace(watch_id, run);
    ++live_processes_;
    if (!run->stop_reason.empty()) {
      // Canceled between the last check and now.
      Terminate(run);
    } else if (run->task.timeout > 0) {
      ArmTimer(run, TimerKind::kTimeout, run->deadline);
    }
  }
  return {};
}

void Executor::Impl::StartTask(const std::shared_ptr<TaskRun>& run) {
  TaskRun& r = *run;
  if (const std::string reason = StopReason(r); !reason.empty()) {
    Finish(run, TaskState::kCanceled, reason);
    return;
  }
  r.phase = Phase::kStarting;
  Transition(r, TaskState::kStagingInput);

  // Sandbox.
  const TaskDescription& task = r.task;
  if (task.sandbox.empty()) {
    r.result.sandbox = tasks_dir_ + "/" + task.uid;
  } else {
    r.result.sandbox =
        fs::path(AbsoluteIn(options_.session_dir, task.sandbox)).lexically_normal().string();
    while (r.result.sandbox.size() > 1 && r.result.sandbox.back() == '/') {
      r.result.sandbox.pop_back();
    }
  }
  r.fresh_sandbox = ::mkdir(r.result.sandbox.c_str(), 0755) == 0;
  if (!r.fresh_sandbox && errno != EEXIST) {
    std::error_code error;
    fs::create_directories(r.result.sandbox, error);
    if (error) {
      Finish(run, TaskState::kFailed,
             fmt::format("cannot create sandbox {}: {}", r.result.sandbox, error.message()));
      return;
    }
  }
  r.result.stdout_path =
      AbsoluteIn(r.result.sandbox, task.stdout_file.empty() ? task.uid + ".out" : task.stdout_file);
  r.result.stderr_path =
      AbsoluteIn(r.result.sandbox, task.stderr_file.empty() ? task.uid + ".err" : task.stderr_file);
  // Output files named with a directory ("logs/run.out") get that directory.
  for (const std::string* file : {&task.stdout_file, &task.stderr_file}) {
    if (file->find('/') == std::string::npos) continue;
    const std::string& path =
        file == &task.stdout_file ? r.result.stdout_path : r.result.stderr_path;
    std::error_code error;
    fs::create_directories(fs::path(path).parent_path(), error);
    if (error) {
      Finish(run, TaskState::kFailed,
             fmt::format("cannot create the directory of {}: {}", path, error.message()));
      return;
    }
  }

  if (Status staged = StageAll(r, task.input_staging, /*input=*/true); !staged.ok()) {
    const std::string reason = StopReason(r);
    if (!reason.empty()) {
      Finish(run, TaskState::kCanceled, reason);
    } else {
      Finish(run, TaskState::kFailed, staged.message());
    }
    return;
  }
  if (const std::string reason = StopReason(r); !reason.empty()) {
    Finish(run, TaskState::kCanceled, reason);
    return;
  }

  Transition(r, TaskState::kExecuting);
  const bool mpi = task.ranks > 1;
  r.environment = BuildEnvironment(r, mpi);
  std::string search_path = "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& entry : r.environment) {
    if (entry.starts_with("PATH=")) search_path = entry.substr(5);
  }
  Result<std::vector<std::string>> command = LaunchCommand(r, search_path);
  if (!command.ok()) {
    Finish(run, TaskState::kFailed, command.status().message());
    return;
  }
  internal::SpawnRequest request;
  request.environment = r.environment;
  request.working_directory = r.result.sandbox;
  request.stdout_path = r.result.stdout_path;
  request.stderr_path = r.result.stderr_path;
  request.truncate_output = true;
  // If this process dies, the guard sends the task's process group one SIGTERM, which mpirun
  // answers by killing its ranks (each in a group of its own). A parent death signal would
  // reach mpirun once per dying thread, and a second SIGTERM makes it exit without that; other
  // tasks' first processes get SIGKILL from the kernel too, in case the guard is missing.
  request.parent_death_signal = mpi ? 0 : SIGKILL;
  std::string shown_program;
  if (task.pre_exec.empty()) {
    request.argv = std::move(*command);
    if (mpi) {
      request.program = request.argv[0];
      shown_program = request.program;
      // mpirun would report a missing executable once per rank, after starting its daemons.
      if (const std::string resolved =
              ResolveProgram(task.executable, search_path, r.result.sandbox);
          resolved.empty() || !IsExecutableFile(resolved)) {
        Finish(run, TaskState::kFailed,
               fmt::format("executable not found: {}",
                           task.executable.find('/') != std::string::npos
                               ? AbsoluteIn(r.result.sandbox, task.executable)
                               : task.executable));
        return;
      }
    } else {
      request.program = ResolveProgram(task.executable, search_path, r.result.sandbox);
      shown_program =
          task.executable.find('/') != std::string::npos ? request.program : task.executable;
      if (request.program.empty()) {
        Finish(run, TaskState::kFailed, fmt::format("executable not found: {}", task.executable));
        return;
      }
    }
  } else {
    // One shell runs the pre_exec lines, checks the executable, then execs the launch command
    // (passed as "$@", so the argv never goes through the shell's parsing).
    std::string script = ShellLines("pre_exec", task.pre_exec);
    script += fmt::format(
        "command -v {} >/dev/null 2>&1 || {{ printf '%s\\n' {} >&2; exit 127; }}\nexec \"$@\"\n",
        ShellQuote(task.executable),
        ShellQuote(fmt::format("{}executable not found: {}", kMarker, task.executable)));
    request.program = "/bin/sh";
    shown_program = "/bin/sh";
    request.argv = {"/bin/sh", "-c", std::move(script), "deeprc-pre-exec"};
    request.argv.insert(request.argv.end(), command->begin(), command->end());
  }
  if (task.timeout > 0) {
    r.deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                          std::chrono::duration<double>(task.timeout));
  }
  r.phase = Phase::kMain;
  r.result.start_us = NowMicros();
  if (std::string error = Launch(run, std::move(request), shown_program); !error.empty()) {
    Finish(run, TaskState::kFailed, std::move(error));
  }
}

void Executor::Impl::ProcessExited(const std::shared_ptr<TaskRun>& run) {
  TaskRun& r = *run;
  const std::string stop = StopReason(r);
  if (r.phase == Phase::kMain) {
    r.result.end_us = NowMicros();
    r.main_exit = r.exit;
    r.result.exit_code = r.exit.exit_code;
    r.result.signal = r.exit.signal;
    if (r.exit.signal != 0) r.result.signal_name = SignalName(r.exit.signal);
    if (!stop.empty()) {
      Finish(run, TaskState::kCanceled, stop);
      return;
    }
    if (r.exit.exit_code != 0) {
      r.main_failure = ExitReason(r.exit);
      if (!r.task.pre_exec.empty() && r.exit.signal == 0) {
        // A failing pre_exec line or a missing executable: the wrapper said which. No post_exec
        // then, as the task itself never ran.
        const std::string marker = MarkerReason(ReadFileTail(r.result.stderr_path, 4096, 1));
        if (marker.starts_with("pre_exec[") || marker.starts_with("executable not found")) {
          Finish(run, TaskState::kFailed, marker);
          return;
        }
      }
    }
    if (!r.task.post_exec.empty()) {
      internal::SpawnRequest request;
      request.program = "/bin/sh";
      request.argv = {"/bin/sh", "-c", ShellLines("post_exec", r.task.post_exec)};
      request.environment = r.environment;
      request.working_directory = r.result.sandbox;
      request.stdout_path = r.result.stdout_path;
      request.stderr_path = r.result.stderr_path;
      request.truncate_output = false;
      r.phase = Phase::kPostExec;
      if (std::string error = Launch(run, std::move(request), "/bin/sh"); !error.empty()) {
        Finish(run, TaskState::kFailed, "post_exec: " + error);
      }
      return;
    }
    Conclude(run);
    return;
  }
  if (r.phase == Phase::kPostExec) {
    if (!stop.empty()) {
      Finish(run, TaskState::kCanceled, stop);
      return;
    }
    if (r.main_failure.empty() && (r.exit.exit_code != 0 || r.exit.signal != 0)) {
      std::string marker;
      if (r.exit.signal == 0) marker = MarkerReason(ReadFileTail(r.result.stderr_path, 4096, 1));
      r.main_failure =
          marker.starts_with("post_exec[") ? marker : "post_exec: " + ExitReason(r.exit);
    }
    Conclude(run);
  }
}

void Executor::Impl::Conclude(const std::shared_ptr<TaskRun>& run) {
  TaskRun& r = *run;
  if (!r.main_failure.empty()) {
    Finish(run, TaskState::kFailed, r.main_failure);
    return;
  }
  r.phase = Phase::kFinishing;
  Transition(r, TaskState::kStagingOutput);
  if (Status staged = StageAll(r, r.task.output_staging, /*input=*/false); !staged.ok()) {
    const std::string reason = StopReason(r);
    Finish(run, reason.empty() ? TaskState::kFailed : TaskState::kCanceled,
           reason.empty() ? staged.message() : reason);
    return;
  }
  Finish(run, TaskState::kDone, {});
}

Status Executor::Impl::StageAll(TaskRun& run, const std::vector<StagingDirective>& directives,
                                bool input) {
  const internal::StagingBases bases{options_.client_dir, options_.session_dir, run.result.sandbox};
  for (size_t i = 0; i < directives.size(); ++i) {
    if (!StopReason(run).empty()) return Status::Cancelled("canceled");
    const StagingDirective& directive = directives[i];
    const std::string source = internal::ResolveStagingPath(
        directive.source, bases, input ? options_.client_dir : run.result.sandbox);
    const std::string target = internal::ResolveStagingPath(
        directive.target.empty() ? fs::path(directive.source).filename().string()
                                 : directive.target,
        bases, input ? run.result.sandbox : options_.client_dir);
    Status staged = internal::Stage(directive.action, source, target);
    if (!staged.ok()) {
      return staged.WithContext(fmt::format("{}[{}] ({})",
                                            input ? "input_staging" : "output_staging", i,
                                            StagingActionName(directive.action)));
    }
  }
  return Status::OK();
}

void Executor::Impl::Finish(const std::shared_ptr<TaskRun>& run, TaskState state,
                            std::string reason) {
  TaskRun& r = *run;
  r.phase = Phase::kFinishing;
  r.result.state = state;
  r.result.reason = std::move(reason);
  if (!r.result.stderr_path.empty()) r.result.stderr_tail = ReadFileTail(r.result.stderr_path);
  Transition(r, state, r.result.reason);
  {
    std::lock_guard lock(mutex_);
    tasks_.erase(r.task.uid);
  }
  if (options_.on_result) options_.on_result(r.result);
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
    if (in_flight_ == 0) idle_.notify_all();
  }
}

void Executor::Impl::ArmTimer(const std::shared_ptr<TaskRun>& run, TimerKind kind,
                              SteadyClock::time_point when) {
  DisarmTimer(*run);
  run->timer_kind = kind;
  run->timer = timers_.emplace(when, run);
  if (run->timer == timers_.begin()) WakeReaper();
}

void Executor::Impl::DisarmTimer(TaskRun& run) {
  if (run.timer_kind == TimerKind::kNone) return;
  timers_.erase(run.timer);
  run.timer_kind = TimerKind::kNone;
}

void Executor::Impl::Terminate(const std::shared_ptr<TaskRun>& run) {
  // Only while the process is unreaped: its pid, and so its process group id, cannot have been
  // reused.
  if (run->pid <= 0 || run->terminate_sent) return;
  ::kill(-run->pid, SIGTERM);
  run->terminate_sent = true;
  ArmTimer(run, TimerKind::kKill, SteadyClock::now() + options_.kill_grace);
}

void Executor::Impl::FinishOutput(TaskRun& run) {
  for (OutputStream& output : run.output) {
    if (output.pipe >= 0) {
      // The process group was killed at the leader's exit, so what is in the pipe now is all
      // there is; a writer that left the group gets EPIPE from here on.
      DrainOutput(output);
      std::lock_guard lock(mutex_);
      if (output.watch_id != 0 && outputs_.erase(output.watch_id) > 0) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, output.pipe, nullptr);
      }
    }
    CloseOutput(output);
  }
}

void Executor::Impl::WakeReaper() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = ::write(wake_fd_, &one, sizeof(one));
}

void Executor::Impl::ReaperLoop() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (true) {
    int timeout_ms = -1;
    {
      std::lock_guard lock(mutex_);
      if (!timers_.empty()) {
        const auto wait = timers_.begin()->first - SteadyClock::now();
        // Round up, so that a timer is never polled for before it is due.
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
        timeout_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
      }
    }
    const int count = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    if (count < 0 && errno != EINTR) {
      std::fprintf(stderr, "deeprc executor: epoll_wait: %s\n", strerror(errno));
    }
    for (int i = 0; i < count; ++i) {
      if (events[i].data.u64 == kWakeId) {
        uint64_t value = 0;
        [[maybe_unused]] const ssize_t got = ::read(wake_fd_, &value, sizeof(value));
        continue;
      }
      std::shared_ptr<TaskRun> owner;
      std::pair<std::shared_ptr<TaskRun>, int> output_owner;
      {
        std::lock_guard lock(mutex_);
        const auto output = outputs_.find(events[i].data.u64);
        if (output != outputs_.end()) output_owner = output->second;
      }
      if (output_owner.first != nullptr) {
        OutputStream& output = output_owner.first->output[output_owner.second];
        if (!DrainOutput(output)) {
          // Every writer is gone; the file stays open until the process is reaped.
          std::lock_guard lock(mutex_);
          ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, output.pipe, nullptr);
          outputs_.erase(output.watch_id);
          ::close(output.pipe);
          output.pipe = -1;
        }
        continue;
      }
      {
        std::lock_guard lock(mutex_);
        const auto watched = watched_.find(events[i].data.u64);
        if (watched == watched_.end()) continue;
        TaskRun* run = watched->second.get();
        // The leader has exited but is not reaped yet, so its process group id is still its
        // own: sweep whatever it left behind.
        if (options_.kill_group_on_exit) ::kill(-run->pid, SIGKILL);
        const internal::ExitStatus exit = internal::ReapPidfd(run->pidfd);
        if (!exit.reaped) continue;
        // Removed explicitly: a child being spawned on another thread holds a copy of this
        // descriptor until its exec, and epoll forgets a descriptor only when no copy is left.
        // A stale registration would report this run again after it was freed.
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, run->pidfd, nullptr);
        guard_.Remove(run->pid);
        ::close(run->pidfd);
        run->pidfd = -1;
        run->pid = -1;
        run->exit = exit;
        DisarmTimer(*run);
        --live_processes_;
        owner = std::move(watched->second);
        watched_.erase(watched);
      }
      // Its output is complete in the files before anyone reads them (stderr tail, reasons).
      FinishOutput(*owner);
      Post({std::move(owner), JobKind::kProcessExited});
    }
    {
      std::lock_guard lock(mutex_);
      const auto now = SteadyClock::now();
      while (!timers_.empty() && timers_.begin()->first <= now) {
        std::shared_ptr<TaskRun> run = timers_.begin()->second;
        const TimerKind kind = run->timer_kind;
        DisarmTimer(*run);
        if (run->pid <= 0) continue;
        if (kind == TimerKind::kTimeout) {
          if (run->stop_reason.empty()) {
            run->stop_reason = fmt::format("timeout after {}s", run->task.timeout);
          }
          Terminate(run);
        } else if (kind == TimerKind::kKill) {
          // Descendants that left the task's process group (mpirun puts each rank in a group of
          // its own) would outlive a launcher killed before it cleaned up: kill them first.
          for (const pid_t descendant : internal::Descendants(run->pid)) {
            ::kill(descendant, SIGKILL);
          }
          ::kill(-run->pid, SIGKILL);
        }
      }
    }
    if (reaper_stop_.load()) {
      std::lock_guard lock(mutex_);
      if (live_processes_ == 0) return;
    }
  }
}

Result<std::unique_ptr<Executor>> Executor::Make(ExecutorOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status started = impl->Start(); !started.ok()) {
    impl->Shutdown();
    return started;
  }
  return std::unique_ptr<Executor>(new Executor(std::move(impl)));
}

Executor::Executor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Executor::~Executor() { impl_->Shutdown(); }

Status Executor::Submit(TaskDescription task, ExecutionPlacement placement) {
  return impl_->Submit(std::move(task), std::move(placement));
}

Status Executor::Cancel(std::string_view uid, std::string_view reason) {
  return impl_->Cancel(uid, reason);
}

bool Executor::WaitIdle(std::chrono::milliseconds timeout) { return impl_->WaitIdle(timeout); }

int64_t Executor::InFlight() const { return impl_->InFlight(); }

}  // namespace deeprc::runtime
