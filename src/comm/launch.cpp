// Starting the ranks of a job on this machine (comm/launch.h).
//
// The children of one launch share a new process group, so that one signal reaches every rank
// and whatever the ranks started themselves. The launcher waits on pidfds and a self-pipe in one
// poll(): a child that ends, or SIGINT/SIGTERM/SIGHUP sent to the launcher, wakes it. SIGINT and
// the others are forwarded to the group. When a rank fails, the group gets SIGTERM, then SIGKILL
// after a grace period, so no rank is left waiting for a peer that is gone.
//
// This is deliberately separate from the runtime's executor (src/runtime/process.cpp), which
// does far more (sandboxes, staging, one reaper thread for many tasks): comm does not depend on
// runtime.

#include "deeprc/comm/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace deeprc::comm {
namespace {

using Clock = std::chrono::steady_clock;

// Time the ranks get between SIGTERM and SIGKILL.
constexpr auto kGracePeriod = std::chrono::seconds(3);

constexpr int kForwardedSignals[] = {SIGINT, SIGTERM, SIGHUP};

// The write end of the self-pipe the signal handler reports to (-1 outside a launch).
volatile sig_atomic_t signal_pipe = -1;

extern "C" void ReportSignal(int signal) {
  const int saved_errno = errno;
  const int fd = signal_pipe;
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(signal);
    (void)!::write(fd, &byte, 1);
  }
  errno = saved_errno;
}

// Installs the forwarding handlers for the duration of a launch and restores the previous ones.
class SignalForwarding {
 public:
  SignalForwarding() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      fds_[0] = fds_[1] = -1;
      error_ = errno;
      return;
    }
    signal_pipe = fds_[1];
    struct sigaction action {};
    action.sa_handler = ReportSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
      ::sigaction(kForwardedSignals[i], &action, &previous_[i]);
    }
  }
  ~SignalForwarding() {
    if (fds_[0] < 0) return;
    for (size_t i = 0; i < std::size(kForwardedSignals); ++i) {
      ::sigaction(kForwardedSignals[i], &previous_[i], nullptr);
    }
    signal_pipe = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  SignalForwarding(const SignalForwarding&) = delete;
  SignalForwarding& operator=(const SignalForwarding&) = delete;

  int error() const { return error_; }
  int read_fd() const { return fds_[0]; }
  // Signals received since the last call.
  std::vector<int> Take() {
    std::vector<int> signals;
    unsigned char byte;
    while (::read(fds_[0], &byte, 1) == 1) signals.push_back(byte);
    return signals;
  }

 private:
  int fds_[2] = {-1, -1};
  int error_ = 0;
  struct sigaction previous_[std::size(kForwardedSignals)] {};
};

struct Child {
  pid_t pid = -1;
  int pidfd = -1;
  bool running = false;
};

// NAME=VALUE entries of this process's environment, without the names in `replaced`, then
// `added`.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& added) {
  auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  std::vector<std::string> names;
  for (const std::string& entry : added) names.push_back(name_of(entry));
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    if (std::find(names.begin(), names.end(), name_of(text)) == names.end()) {
      environment.push_back(text);
    }
  }
  environment.insert(environment.end(), added.begin(), added.end());
  return environment;
}

// Starts `argv` (searched in PATH) in process group `group` (0: a new group led by the child).
Result<Child> SpawnChild(const std::vector<std::string>& argv,
                         const std::vector<std::string>& environment, pid_t group,
                         bool null_stdin) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attributes);
  if (null_stdin) {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  // What the launcher holds open (pidfds, the signal pipe) is close-on-exec; other descriptors
  // that other code left inheritable do not leak into the ranks.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signal : {SIGPIPE, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2,
                           SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU}) {
    sigaddset(&defaults, signal);
  }
  posix_spawnattr_setsigmask(&attributes, &empty_mask);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, group);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> arguments;
  for (const std::string& argument : argv) arguments.push_back(const_cast<char*>(argument.c_str()));
  arguments.push_back(nullptr);
  std::vector<char*> variables;
  for (const std::string& entry : environment) variables.push_back(const_cast<char*>(entry.c_str()));
  variables.push_back(nullptr);

  Child child;
  const int error = ::posix_spawnp(&child.pid, argv[0].c_str(), &actions, &attributes,
                                   arguments.data(), variables.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    return Status::Invalid("cannot start '{}': {}", argv[0], std::strerror(error));
  }
  child.running = true;
  child.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child.pid, 0));
  if (child.pidfd < 0) {
    const int watch_error = errno;
    ::kill(child.pid, SIGKILL);
    ::waitpid(child.pid, nullptr, 0);
    return Status::IOError("cannot watch process {} ('{}'): {}", child.pid, argv[0],
                           std::strerror(watch_error));
  }
  return child;
}

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 1;
}

// A group of children started together and ended together.
class ProcessGroup {
 public:
  ~ProcessGroup() {
    // Only on an early return (a child that could not start): nothing may outlive the launch.
    if (Running() > 0) Signal(SIGKILL);
    for (Child& child : children_) {
      if (child.running) ::waitpid(child.pid, nullptr, 0);
      if (child.pidfd >= 0) ::close(child.pidfd);
    }
  }

  Status Start(const std::vector<std::string>& argv, const std::vector<std::string>& environment,
               bool null_stdin) {
    DEEPRC_ASSIGN_OR_RAISE(Child child, SpawnChild(argv, environment, group_, null_stdin));
    if (group_ == 0) group_ = child.pid;
    children_.push_back(child);
    return Status::OK();
  }

  // Waits until every child has ended. Returns 0, or the exit code of the first child that
  // failed (128 + signal when a signal ended it).
  int Wait(SignalForwarding& forwarding) {
    std::optional<int> first_failure;
    std::optional<Clock::time_point> kill_at;
    bool killed = false;
    auto end_all = [&] {
      if (!kill_at) {
        Signal(SIGTERM);
        kill_at = Clock::now() + kGracePeriod;
      }
    };
    while (Running() > 0) {
      std::vector<pollfd> fds;
      std::vector<size_t> owners;
      for (size_t i = 0; i < children_.size(); ++i) {
        if (!children_[i].running) continue;
        fds.push_back({children_[i].pidfd, POLLIN, 0});
        owners.push_back(i);
      }
      fds.push_back({forwarding.read_fd(), POLLIN, 0});
      int timeout_ms = -1;
      if (kill_at && !killed) {
        timeout_ms = static_cast<int>(std::max<int64_t>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(*kill_at - Clock::now())
                       .count() + 1));
      }
      const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0 && errno != EINTR) break;  // cannot happen with valid descriptors
      for (const int signal : forwarding.Take()) {
        Signal(signal);
        if (!kill_at) kill_at = Clock::now() + kGracePeriod;
      }
      for (size_t i = 0; i + 1 < fds.size(); ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        Child& child = children_[owners[i]];
        int status = 0;
        const pid_t reaped = ::waitpid(child.pid, &status, WNOHANG);
        if (reaped == 0) continue;
        // reaped < 0: someone else reaped it (SIGCHLD ignored); its status is lost.
        const int code = reaped == child.pid ? ExitCodeOf(status) : 1;
        child.running = false;
        ::close(child.pidfd);
        child.pidfd = -1;
        if (code != 0 && !first_failure) {
          first_failure = code;
          end_all();
        }
      }
      if (kill_at && !killed && Clock::now() >= *kill_at && Running() > 0) {
        Signal(SIGKILL);
        killed = true;
      }
    }
    // What the failed ranks started may still run in the group.
    if (first_failure) ::kill(-group_, SIGKILL);
    return first_failure.value_or(0);
  }

 private:
  int Running() const {
    int running = 0;
    for (const Child& child : children_) running += child.running ? 1 : 0;
    return running;
  }
  void Signal(int signal) {
    // The group lives as long as one of its children is unreaped (a zombie still holds it).
    if (group_ > 0 && Running() > 0) ::kill(-group_, signal);
  }

  std::vector<Child> children_;
  pid_t group_ = 0;
};

// A fresh directory for the file store, removed when the launch ends.
class TemporaryDirectory {
 public:
  ~TemporaryDirectory() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  Status Create(const std::string& prefix) {
    std::error_code error;
    const auto base = std::filesystem::temp_directory_path(error);
    if (error) return Status::IOError("no temporary directory: {}", error.message());
    std::string pattern = (base / (prefix + "XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Status::IOError("cannot create a directory {}: {}", pattern, std::strerror(errno));
    }
    path_ = pattern;
    return Status::OK();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool RunningAsRoot() { return ::geteuid() == 0; }

}  // namespace

Result<int> LaunchRanks(const LaunchOptions& options) {
  if (options.ranks < 1) {
    return Status::Invalid("the number of ranks must be at least 1, not {}", options.ranks);
  }
  if (options.command.empty() || options.command[0].empty()) {
    return Status::Invalid("no program to launch");
  }
  for (const std::string& entry : options.environment) {
    if (entry.find('=') == std::string::npos || entry.front() == '=') {
      return Status::Invalid("environment entry '{}' is not NAME=VALUE", entry);
    }
  }
  if (options.backend == Backend::kSingle && options.ranks != 1) {
    return Status::Invalid(
        "the single backend runs one rank, not {} (use --comm mpi or --comm gloo)",
        options.ranks);
  }

  SignalForwarding forwarding;
  if (forwarding.error() != 0) {
    return Status::IOError("cannot create a pipe: {}", std::strerror(forwarding.error()));
  }
  TemporaryDirectory store;
  ProcessGroup group;
  std::vector<std::string> added = options.environment;
  added.push_back("DEEPRC_COMM=" + std::string(BackendName(options.backend)));
  switch (options.backend) {
    case Backend::kSingle: {
      DEEPRC_RETURN_NOT_OK(group.Start(options.command, ChildEnvironment(added), false));
      break;
    }
    case Backend::kMpi: {
      if (RunningAsRoot()) {
        added.push_back("OMPI_ALLOW_RUN_AS_ROOT=1");
        added.push_back("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1");
      }
      std::vector<std::string> argv = {"mpirun", "-np", std::to_string(options.ranks),
                                       "--oversubscribe"};
      // mpirun passes its environment to local ranks; -x makes sure of the ones we set.
      for (const std::string& entry : options.environment) {
        argv.push_back("-x");
        argv.push_back(entry.substr(0, entry.find('=')));
      }
      argv.push_back("-x");
      argv.push_back("DEEPRC_COMM");
      argv.insert(argv.end(), options.command.begin(), options.command.end());
      DEEPRC_RETURN_NOT_OK(group.Start(argv, ChildEnvironment(added), false));
      break;
    }
    case Backend::kGloo: {
      DEEPRC_RETURN_NOT_OK(store.Create("deeprc-gloo-"));
      added.push_back("DEEPRC_WORLD_SIZE=" + std::to_string(options.ranks));
      added.push_back("DEEPRC_GLOO_STORE=" + store.path());
      for (int rank = 0; rank < options.ranks; ++rank) {
        std::vector<std::string> rank_environment = added;
        rank_environment.push_back("DEEPRC_RANK=" + std::to_string(rank));
        // Ranks do not read the terminal: they are in their own process group, where reading
        // it would stop them.
        DEEPRC_RETURN_NOT_OK(
            group.Start(options.command, ChildEnvironment(rank_environment), true));
      }
      break;
    }
  }
  return group.Wait(forwarding);
}

}  // namespace deeprc::comm
