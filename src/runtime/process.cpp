#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/core.h>

#include "deeprc/runtime/executor.h"
#include "runtime/process_internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace deeprc::runtime {

std::string SignalName(int signal) {
  const char* abbreviation = sigabbrev_np(signal);
  if (abbreviation == nullptr) return fmt::format("signal {}", signal);
  return fmt::format("SIG{}", abbreviation);
}

std::string ReadFileTail(const std::string& path, size_t max_bytes, size_t max_lines) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat info {};
  std::string text;
  if (::fstat(fd, &info) == 0 && info.st_size > 0) {
    const auto size = static_cast<size_t>(info.st_size);
    const size_t length = size < max_bytes ? size : max_bytes;
    text.resize(length);
    const ssize_t got = ::pread(fd, text.data(), length, static_cast<off_t>(size - length));
    text.resize(got > 0 ? static_cast<size_t>(got) : 0);
    // A tail cut in the middle of a line starts at the next whole line (unless there is none).
    if (length < size) {
      const size_t newline = text.find('\n');
      if (newline != std::string::npos && newline + 1 < text.size()) text.erase(0, newline + 1);
    }
  }
  ::close(fd);
  // Keep the last max_lines lines; a final newline does not start another line.
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  size_t lines = 0;
  size_t position = end;
  while (position > 0) {
    if (text[position - 1] == '\n' && ++lines == max_lines) break;
    --position;
  }
  if (position > 0) text.erase(0, position);
  return text;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace internal {
namespace {

// The output descriptors of one spawn, closed when it returns.
class OutputFiles {
 public:
  ~OutputFiles() {
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    if (stderr_fd_ >= 0 && stderr_fd_ != stdout_fd_) ::close(stderr_fd_);
  }
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
};

// Moves a descriptor above the standard ones, so that the child's dup2 onto 0, 1 and 2 can
// never clobber it (a process started with stdin closed gets 0 from its next open).
int AboveStandard(int fd) {
  if (fd < 0 || fd > STDERR_FILENO) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  ::close(fd);
  return moved;
}

// /dev/null for every child's stdin, opened once.
int DevNull() {
  static const int fd = AboveStandard(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fd;
}

// What failed in the child, written by the child into the parent's memory (vfork shares it)
// before it exits.
enum class ChildStep : int { kNone, kParentGone, kDescriptors, kDirectory, kExec };

// Restores the spawning thread's signal mask when the spawn returns.
class BlockedSignals {
 public:
  BlockedSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  const sigset_t& saved() const { return saved_; }

 private:
  sigset_t saved_;
};

// What the child does, fixed before the vfork.
struct ChildPlan {
  const char* program = nullptr;
  char* const* argv = nullptr;
  char* const* environment = nullptr;
  const char* directory = nullptr;
  int death_signal = 0;
  int guard_socket = -1;
  pid_t parent = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Written by the child when a step fails.
  volatile ChildStep step = ChildStep::kNone;
  volatile int error_number = 0;
};

[[noreturn]] void ChildFailed(ChildPlan& plan, ChildStep step) {
  plan.error_number = errno;
  plan.step = step;
  ::_exit(127);
}

// The vfork child. It runs on the spawning thread's memory until it execs, so it only makes
// system calls and stores into `plan`: no allocation, no locks, no return.
[[noreturn]] __attribute__((noinline)) void RunChild(ChildPlan& plan) {
  if (plan.death_signal != 0) {
    ::prctl(PR_SET_PDEATHSIG, plan.death_signal);
    // The parent died before the line above: the signal will never come.
    if (::getppid() != plan.parent) {
      errno = ESRCH;
      ChildFailed(plan, ChildStep::kParentGone);
    }
  }
  ::setpgid(0, 0);
  if (plan.guard_socket >= 0) {
    // A 4-byte send on a stream socket is one unit: it does not interleave with other senders'.
    const int32_t record = static_cast<int32_t>(::getpid());
    ::send(plan.guard_socket, &record, sizeof(record), MSG_NOSIGNAL);
  }
  for (int signal = 1; signal < NSIG; ++signal) {
    struct sigaction action {};
    if (::sigaction(signal, nullptr, &action) != 0) continue;
    const bool common = signal == SIGPIPE || signal == SIGINT || signal == SIGQUIT ||
                        signal == SIGTERM || signal == SIGHUP || signal == SIGCHLD ||
                        signal == SIGUSR1 || signal == SIGUSR2 || signal == SIGALRM ||
                        signal == SIGTSTP || signal == SIGTTIN || signal == SIGTTOU;
    if (common || (action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN)) {
      action.sa_handler = SIG_DFL;
      action.sa_flags = 0;
      ::sigaction(signal, &action, nullptr);
    }
  }
  if (::dup2(plan.stdin_fd, STDIN_FILENO) < 0 || ::dup2(plan.stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(plan.stderr_fd, STDERR_FILENO) < 0) {
    ChildFailed(plan, ChildStep::kDescriptors);
  }
  // Descriptors that other code in this process left inheritable do not leak into tasks.
  ::syscall(SYS_close_range, STDERR_FILENO + 1, ~0U, 0);
  if (plan.directory != nullptr && ::chdir(plan.directory) != 0)
    ChildFailed(plan, ChildStep::kDirectory);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);
  ::execve(plan.program, plan.argv, plan.environment);
  ChildFailed(plan, ChildStep::kExec);
}

}  // namespace

int OpenPidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// vfork rather than posix_spawn: posix_spawn cannot set the parent death signal. All signals
// stay blocked in the child until it has set every caught signal back to its default, so no
// handler of this process runs on its shared memory.
SpawnedProcess Spawn(const SpawnRequest& request) {
  SpawnedProcess spawned;
  OutputFiles files;
  // With output pipes, the read ends until they are handed to the caller.
  int read_ends[2] = {-1, -1};
  const auto close_read_ends = [&read_ends] {
    for (int& fd : read_ends) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  };
  if (request.output_pipes) {
    const bool shared = request.stderr_path == request.stdout_path;
    for (int stream = 0; stream < (shared ? 1 : 2); ++stream) {
      int ends[2];
      if (::pipe2(ends, O_CLOEXEC) != 0) {
        spawned.error_number = errno;
        spawned.error = fmt::format("cannot create an output pipe: {}", strerror(errno));
        close_read_ends();
        return spawned;
      }
      read_ends[stream] = ends[0];
      (stream == 0 ? files.stdout_fd_ : files.stderr_fd_) = AboveStandard(ends[1]);
      // Only the reader's end: the task writes as it would to a file, blocking when full.
      ::fcntl(ends[0], F_SETFL, O_NONBLOCK);
    }
    if (shared) files.stderr_fd_ = files.stdout_fd_;
    if (files.stdout_fd_ < 0 || files.stderr_fd_ < 0) {
      spawned.error_number = EMFILE;
      spawned.error = "cannot move an output pipe above the standard descriptors";
      close_read_ends();
      return spawned;
    }
  }
  const int flags =
      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (request.truncate_output ? O_TRUNC : 0);
  if (!request.output_pipes) {
    files.stdout_fd_ = AboveStandard(::open(request.stdout_path.c_str(), flags, 0644));
  }
  if (files.stdout_fd_ < 0) {
    spawned.error_number = errno;
    spawned.error = fmt::format("cannot open stdout file {}: {}", request.stdout_path,
                                strerror(spawned.error_number));
    return spawned;
  }
  if (request.output_pipes) {
    // Opened above.
  } else if (request.stderr_path == request.stdout_path) {
    files.stderr_fd_ = files.stdout_fd_;
  } else {
    files.stderr_fd_ = AboveStandard(::open(request.stderr_path.c_str(), flags, 0644));
    if (files.stderr_fd_ < 0) {
      spawned.error_number = errno;
      spawned.error = fmt::format("cannot open stderr file {}: {}", request.stderr_path,
                                  strerror(spawned.error_number));
      return spawned;
    }
  }
  const int null_fd = DevNull();
  if (null_fd < 0) {
    spawned.error_number = errno;
    spawned.error = fmt::format("cannot open /dev/null: {}", strerror(spawned.error_number));
    return spawned;
  }

  std::vector<char*> argv;
  argv.reserve(request.argv.size() + 1);
  for (const std::string& argument : request.argv)
    argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> environment;
  environment.reserve(request.environment.size() + 1);
  for (const std::string& entry : request.environment) {
    environment.push_back(const_cast<char*>(entry.c_str()));
  }
  environment.push_back(nullptr);
  ChildPlan plan;
  plan.program = request.program.c_str();
  plan.argv = argv.data();
  plan.environment = environment.data();
  plan.directory = request.working_directory.empty() ? nullptr : request.working_directory.c_str();
  plan.death_signal = request.parent_death_signal;
  plan.guard_socket = request.guard_socket;
  plan.parent = ::getpid();
  plan.stdin_fd = null_fd;
  plan.stdout_fd = files.stdout_fd_;
  plan.stderr_fd = files.stderr_fd_;
  pid_t pid = -1;
  {
    BlockedSignals blocked;
    pid = ::vfork();
    if (pid == 0) RunChild(plan);
  }
  const ChildStep step = plan.step;
  const int child_errno = plan.error_number;
  if (pid < 0) {
    spawned.error_number = errno;
    spawned.error = fmt::format("cannot start {}: {}", request.program, strerror(errno));
    close_read_ends();
    return spawned;
  }
  if (step != ChildStep::kNone) {
    // The child has exited (vfork returns once it execs or exits): reap it, report the step.
    ::waitpid(pid, nullptr, 0);
    close_read_ends();
    spawned.error_number = child_errno;
    spawned.error = strerror(child_errno);
    switch (step) {
      case ChildStep::kExec:
        spawned.exec_failed = true;
        break;
      case ChildStep::kDirectory:
        spawned.error =
            fmt::format("cannot enter {}: {}", request.working_directory, strerror(child_errno));
        break;
      case ChildStep::kDescriptors:
        spawned.error =
            fmt::format("cannot set up the standard descriptors: {}", strerror(child_errno));
        break;
      default:
        spawned.error = "the starting thread ended while the process started";
        break;
    }
    return spawned;
  }
  spawned.pid = pid;
  spawned.stdout_pipe = read_ends[0];
  spawned.stderr_pipe = read_ends[1];
  spawned.pidfd = OpenPidfd(pid);
  if (spawned.pidfd < 0 && errno == ESRCH) {
    // Already exited and reaped by other code (SIGCHLD ignored): nothing left to watch or kill;
    // its pid may even be in use again.
    spawned.already_reaped = true;
    return spawned;
  }
  if (spawned.pidfd < 0) {
    spawned.error_number = errno;
    spawned.error = fmt::format("cannot watch process {}: {}", pid, strerror(spawned.error_number));
    // Not watchable: do not leave it running or unreaped.
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    spawned.pid = -1;
    for (int* fd : {&spawned.stdout_pipe, &spawned.stderr_pipe}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }
  return spawned;
}

namespace {

int64_t MonotonicMillis() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
}

// The guard process. It was forked from a process with many threads, so until it exits it only
// makes system calls and touches `groups` (a bitmap over every possible pid, mapped before the
// fork): no allocation, no locks.
[[noreturn]] void RunGuard(int socket, uint64_t* groups, size_t words, int64_t grace_ms) {
  // Only the socket stays open: the guard must not keep the owner's sockets, pipes or files
  // alive. Its own process group, so that a terminal's ^C to the owner does not take it first.
  if (socket != STDERR_FILENO + 1) {
    ::dup2(socket, STDERR_FILENO + 1);
    socket = STDERR_FILENO + 1;
  }
  ::syscall(SYS_close_range, STDERR_FILENO + 2, ~0U, 0);
  ::setpgid(0, 0);
  // The owner's handlers would run in a copy of the owner here: defaults, and no reaction to
  // what a terminal sends the owner's group.
  for (int signal = 1; signal < NSIG; ++signal) {
    struct sigaction action {};
    if (::sigaction(signal, nullptr, &action) != 0) continue;
    const bool ignored = signal == SIGINT || signal == SIGQUIT || signal == SIGHUP ||
                         signal == SIGPIPE || signal == SIGTSTP || signal == SIGTTIN ||
                         signal == SIGTTOU;
    if (ignored || (action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN)) {
      action.sa_handler = ignored ? SIG_IGN : SIG_DFL;
      action.sa_flags = 0;
      ::sigaction(signal, &action, nullptr);
    }
  }
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  ::sigprocmask(SIG_SETMASK, &empty_mask, nullptr);

  const size_t limit = words * 64;
  int32_t records[1024];
  size_t carried = 0;  // bytes of an incomplete record at the start of `records`
  while (true) {
    const ssize_t got =
        ::recv(socket, reinterpret_cast<char*>(records) + carried, sizeof(records) - carried, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    const size_t bytes = carried + static_cast<size_t>(got);
    const size_t count = bytes / sizeof(int32_t);
    for (size_t i = 0; i < count; ++i) {
      const int32_t record = records[i];
      const size_t group = static_cast<size_t>(record < 0 ? -static_cast<int64_t>(record) : record);
      if (group == 0 || group >= limit) continue;
      if (record > 0) {
        groups[group / 64] |= uint64_t{1} << (group % 64);
      } else {
        groups[group / 64] &= ~(uint64_t{1} << (group % 64));
      }
    }
    carried = bytes - count * sizeof(int32_t);
    if (carried > 0) {
      ::memmove(records, reinterpret_cast<char*>(records) + count * sizeof(int32_t), carried);
    }
  }
  // The owner is gone (or stopped us): SIGTERM to every group left, once (a second SIGTERM
  // makes mpirun give up killing its ranks), SIGKILL to what is left after the grace.
  bool any = false;
  for (size_t word = 0; word < words; ++word) {
    for (uint64_t bits = groups[word]; bits != 0; bits &= bits - 1) {
      ::kill(-static_cast<pid_t>(word * 64 + __builtin_ctzll(bits)), SIGTERM);
      any = true;
    }
  }
  const int64_t deadline = MonotonicMillis() + grace_ms;
  while (any) {
    any = false;
    for (size_t word = 0; word < words; ++word) {
      for (uint64_t bits = groups[word]; bits != 0; bits &= bits - 1) {
        const int bit = __builtin_ctzll(bits);
        if (::kill(-static_cast<pid_t>(word * 64 + bit), 0) != 0 && errno == ESRCH) {
          groups[word] &= ~(uint64_t{1} << bit);
        } else {
          any = true;
        }
      }
    }
    if (!any || MonotonicMillis() >= deadline) break;
    const timespec pause{0, 20'000'000};
    ::nanosleep(&pause, nullptr);
  }
  for (size_t word = 0; any && word < words; ++word) {
    for (uint64_t bits = groups[word]; bits != 0; bits &= bits - 1) {
      ::kill(-static_cast<pid_t>(word * 64 + __builtin_ctzll(bits)), SIGKILL);
    }
  }
  ::_exit(0);
}

}  // namespace

std::string ProcessGroupGuard::Start(std::chrono::milliseconds grace) {
  std::lock_guard lock(mutex_);
  if (pid_ > 0) return {};
  // Pids are below pid_max (at most 2^22 on Linux): a bitmap of 512 KiB at most, of which the
  // guard touches only the pages of pids it hears about.
  size_t pid_max = 4'194'304;
  if (FILE* file = std::fopen("/proc/sys/kernel/pid_max", "re")) {
    unsigned long value = 0;
    if (std::fscanf(file, "%lu", &value) == 1 && value > 0 && value <= (1ul << 30)) pid_max = value;
    std::fclose(file);
  }
  const size_t words = (pid_max + 63) / 64;
  void* bitmap = ::mmap(nullptr, words * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (bitmap == MAP_FAILED) return fmt::format("cannot map the guard's table: {}", strerror(errno));
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    const int error = errno;
    ::munmap(bitmap, words * sizeof(uint64_t));
    return fmt::format("cannot create the guard's socket: {}", strerror(error));
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    RunGuard(sockets[1], static_cast<uint64_t*>(bitmap), words, grace.count());
  }
  const int error = errno;
  ::munmap(bitmap, words * sizeof(uint64_t));
  ::close(sockets[1]);
  if (pid < 0) {
    ::close(sockets[0]);
    return fmt::format("cannot fork the guard: {}", strerror(error));
  }
  pid_ = pid;
  socket_ = sockets[0];
  return {};
}

void ProcessGroupGuard::Send(int32_t record) {
  std::lock_guard lock(mutex_);
  if (socket_ < 0) return;
  // A guard that is gone (killed by someone) must not take this process with it: no SIGPIPE.
  while (::send(socket_, &record, sizeof(record), MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

void ProcessGroupGuard::Add(pid_t group) { Send(static_cast<int32_t>(group)); }

void ProcessGroupGuard::Remove(pid_t group) { Send(-static_cast<int32_t>(group)); }

void ProcessGroupGuard::Stop() {
  std::lock_guard lock(mutex_);
  if (socket_ >= 0) ::close(socket_);
  socket_ = -1;
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
}

std::vector<pid_t> Descendants(pid_t root) {
  std::vector<pid_t> found;
  std::vector<pid_t> pending = {root};
  while (!pending.empty()) {
    const pid_t pid = pending.back();
    pending.pop_back();
    const std::string tasks = fmt::format("/proc/{}/task", pid);
    DIR* directory = ::opendir(tasks.c_str());
    if (directory == nullptr) continue;
    while (const dirent* entry = ::readdir(directory)) {
      if (entry->d_name[0] == '.') continue;
      const std::string path = fmt::format("{}/{}/children", tasks, entry->d_name);
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char buffer[4096];
      std::string text;
      ssize_t got;
      while ((got = ::read(fd, buffer, sizeof(buffer))) > 0) text.append(buffer, got);
      ::close(fd);
      size_t position = 0;
      while (position < text.size()) {
        const size_t end = text.find(' ', position);
        const std::string number =
            text.substr(position, end == std::string::npos ? std::string::npos : end - position);
        if (!number.empty()) {
          const pid_t child = static_cast<pid_t>(std::stol(number));
          // A process appears once; guard against a cycle through a reused pid anyway.
          if (found.size() < 100'000) {
            found.push_back(child);
            pending.push_back(child);
          }
        }
        if (end == std::string::npos) break;
        position = end + 1;
      }
    }
    ::closedir(directory);
  }
  return found;
}

ExitStatus ReapPidfd(int pidfd) {
  ExitStatus status;
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
               WEXITED | WNOHANG) != 0) {
    if (errno == ECHILD) {
      // Reaped by someone else (SIGCHLD ignored in this process, or a waitpid(-1) elsewhere):
      // gone, with its status lost. Reporting it gone keeps the reaper from polling forever.
      status.reaped = true;
      status.status_lost = true;
    }
    return status;
  }
  if (info.si_pid == 0) return status;
  status.reaped = true;
  if (info.si_code == CLD_EXITED) {
    status.exit_code = info.si_status;
  } else {
    status.signal = info.si_status;
  }
  return status;
}

}  // namespace internal
}  // namespace deeprc::runtime
