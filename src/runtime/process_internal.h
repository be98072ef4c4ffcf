#pragma once

// Starting and watching OS processes for the executor: posix_spawn into a new process group,
// with a pidfd so that one thread can wait for many children without reaping anyone else's.

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <mutex>

#include <string>
#include <vector>

namespace deeprc::runtime::internal {

struct SpawnRequest {
  // The file to execute: a path (absolute, or relative to `working_directory`).
  std::string program;
  std::vector<std::string> argv;
  // "NAME=value" entries; the whole environment of the child.
  std::vector<std::string> environment;
  std::string working_directory;
  std::string stdout_path;
  std::string stderr_path;
  // Truncate the output files first (the task's own process), or append (post_exec).
  bool truncate_output = true;
  // Instead of opening the output files, hand the child the write ends of pipes (one when both
  // paths are equal) and return the read ends: the caller creates a file only when output
  // arrives, so that a silent task costs no file creation.
  bool output_pipes = false;
  // Sent to the child when the thread that spawned it ends, which for the executor means when
  // the agent process dies (its spawning threads live until every child is reaped). 0: none.
  // The kernel sends it again each time another thread of the dying process inherits the
  // child, so it suits only a child that a repeated signal cannot harm.
  int parent_death_signal = SIGKILL;
  // ProcessGroupGuard::socket(): the child announces its new process group there itself, before
  // it execs, so there is no instant in which the group runs unknown to the guard. -1: none.
  int guard_socket = -1;
};

struct SpawnedProcess {
  pid_t pid = -1;
  // Readable when the process has exited; the caller closes it after reaping.
  int pidfd = -1;
  // With output_pipes: the non-blocking read ends (stderr_pipe -1 when it shares stdout's).
  // The caller closes them.
  int stdout_pipe = -1;
  int stderr_pipe = -1;
  // 0 when started; otherwise the errno of what failed, described in `error`.
  int error_number = 0;
  // True when the failure came from executing `program` (ENOENT: not found, EACCES, ...),
  // false when it came from preparing the child (output files, pidfd).
  bool exec_failed = false;
  // Started, but gone before a pidfd could be opened: reaped by other code, status lost.
  bool already_reaped = false;
  std::string error;
};

// Starts the process in its own process group, stdin from /dev/null, stdout and stderr into the
// given files (the same file when both paths are equal), every other descriptor closed, signal
// mask empty, every caught signal and the common ones at their defaults, and the parent death
// signal set (posix_spawn cannot set it, hence vfork). A failed chdir or exec leaves no child
// behind and says which step failed.
SpawnedProcess Spawn(const SpawnRequest& request);

// Takes the process groups of tasks down when the process that started them dies, also by
// SIGKILL, when it can clean up nothing itself. A small guard process (forked, so that nothing
// needs to be installed) learns each task's process group id over a socket; when the socket
// closes (the owner died, or called Stop()), it sends SIGTERM to every group still registered
// and SIGKILL to what is left after `grace`. SIGTERM lets mpirun take its ranks (each in a
// group of its own) down with it.
class ProcessGroupGuard {
 public:
  // An inactive guard (Start() failed or was not called) accepts Add/Remove and does nothing.
  ProcessGroupGuard() = default;
  ~ProcessGroupGuard() { Stop(); }
  ProcessGroupGuard(const ProcessGroupGuard&) = delete;
  ProcessGroupGuard& operator=(const ProcessGroupGuard&) = delete;

  // Forks the guard. An error string when it could not.
  std::string Start(std::chrono::milliseconds grace);
  // A group to take down (its leader's pid), and one that is gone. Cheap: one 4-byte send.
  // Spawn() adds the group itself when given socket().
  void Add(pid_t group);
  void Remove(pid_t group);
  // Closes the socket and reaps the guard (which first takes down any group still registered).
  void Stop();
  pid_t pid() const { return pid_; }
  // Valid from Start() to Stop(); -1 when inactive.
  int socket() const { return socket_; }

 private:
  void Send(int32_t record);
  std::mutex mutex_;
  int socket_ = -1;
  pid_t pid_ = -1;
};

// Opens a pidfd for `pid` (pidfd_open); -1 with errno set on failure.
int OpenPidfd(pid_t pid);

struct ExitStatus {
  bool reaped = false;
  // Exit code when the process exited, -1 otherwise.
  int exit_code = -1;
  // Terminating signal, 0 when it exited.
  int signal = 0;
  // Reaped by other code before us: the process is gone, its status unknown.
  bool status_lost = false;
};

// Reaps the process behind `pidfd` without blocking (waitid P_PIDFD, WNOHANG).
ExitStatus ReapPidfd(int pidfd);

// Every descendant of `root` (children, their children, ...), from /proc/<pid>/task/*/children.
// Empty when the kernel does not offer that file.
std::vector<pid_t> Descendants(pid_t root);

}  // namespace deeprc::runtime::internal
