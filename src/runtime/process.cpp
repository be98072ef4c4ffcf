#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

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

class SpawnResources {
 public:
  SpawnResources() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attributes_);
  }
  ~SpawnResources() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attributes_);
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    if (stderr_fd_ >= 0 && stderr_fd_ != stdout_fd_) ::close(stderr_fd_);
  }
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attributes_;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
};

}  // namespace

int OpenPidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

SpawnedProcess Spawn(const SpawnRequest& request) {
  SpawnedProcess spawned;
  SpawnResources resources;
  const int flags =
      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (request.truncate_output ? O_TRUNC : 0);
  resources.stdout_fd_ = ::open(request.stdout_path.c_str(), flags, 0644);
  if (resources.stdout_fd_ < 0) {
    spawned.error_number = errno;
    spawned.error = fmt::format("cannot open stdout file {}: {}", request.stdout_path,
                                strerror(spawned.error_number));
    return spawned;
  }
  if (request.stderr_path == request.stdout_path) {
    resources.stderr_fd_ = resources.stdout_fd_;
  } else {
    resources.stderr_fd_ = ::open(request.stderr_path.c_str(), flags, 0644);
    if (resources.stderr_fd_ < 0) {
      spawned.error_number = errno;
      spawned.error = fmt::format("cannot open stderr file {}: {}", request.stderr_path,
                                  strerror(spawned.error_number));
      return spawned;
    }
  }

  posix_spawn_file_actions_t* actions = &resources.actions_;
  posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions, resources.stdout_fd_, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions, resources.stderr_fd_, STDERR_FILENO);
  // Descriptors that other code in this process left inheritable do not leak into tasks.
  posix_spawn_file_actions_addclosefrom_np(actions, STDERR_FILENO + 1);
  if (!request.working_directory.empty()) {
    posix_spawn_file_actions_addchdir_np(actions, request.working_directory.c_str());
  }

  posix_spawnattr_t* attributes = &resources.attributes_;
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signal : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2,
                           SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU}) {
    sigaddset(&defaults, signal);
  }
  posix_spawnattr_setsigmask(attributes, &empty_mask);
  posix_spawnattr_setsigdefault(attributes, &defaults);
  posix_spawnattr_setpgroup(attributes, 0);
  posix_spawnattr_setflags(attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

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

  pid_t pid = -1;
  const int error = posix_spawn(&pid, request.program.c_str(), actions, attributes, argv.data(),
                                environment.data());
  if (error != 0) {
    // glibc runs the file actions and the exec in a CLONE_VFORK child, reports their errno here
    // and has already reaped that child. Which step failed is not reported: the output files
    // were opened above and /dev/null exists, so it is the chdir (checked by the caller, which
    // creates the directory first) or the exec.
    spawned.error_number = error;
    spawned.exec_failed = true;
    spawned.error = strerror(error);
    return spawned;
  }
  spawned.pid = pid;
  spawned.pidfd = OpenPidfd(pid);
  if (spawned.pidfd < 0) {
    spawned.error_number = errno;
    spawned.error = fmt::format("cannot watch process {}: {}", pid, strerror(spawned.error_number));
    // Not watchable: do not leave it running or unreaped.
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    spawned.pid = -1;
  }
  return spawned;
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
               WEXITED | WNOHANG) != 0 ||
      info.si_pid == 0) {
    return status;
  }
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
