#pragma once

// Starting and watching OS processes for the executor: posix_spawn into a new process group,
// with a pidfd so that one thread can wait for many children without reaping anyone else's.

#include <sys/types.h>

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
};

struct SpawnedProcess {
  pid_t pid = -1;
  // Readable when the process has exited; the caller closes it after reaping.
  int pidfd = -1;
  // 0 when started; otherwise the errno of what failed, described in `error`.
  int error_number = 0;
  // True when the failure came from executing `program` (ENOENT: not found, EACCES, ...),
  // false when it came from preparing the child (output files, pidfd).
  bool exec_failed = false;
  std::string error;
};

// Starts the process in its own process group, stdin from /dev/null, stdout and stderr into the
// given files (the same file when both paths are equal), every other descriptor closed, signal
// mask empty and common signals at their defaults. A failed exec leaves no child behind
// (glibc's posix_spawn reaps it and returns the exec error).
SpawnedProcess Spawn(const SpawnRequest& request);

// Opens a pidfd for `pid` (pidfd_open); -1 with errno set on failure.
int OpenPidfd(pid_t pid);

struct ExitStatus {
  bool reaped = false;
  // Exit code when the process exited, -1 otherwise.
  int exit_code = -1;
  // Terminating signal, 0 when it exited.
  int signal = 0;
};

// Reaps the process behind `pidfd` without blocking (waitid P_PIDFD, WNOHANG).
ExitStatus ReapPidfd(int pidfd);

// Every descendant of `root` (children, their children, ...), from /proc/<pid>/task/*/children.
// Empty when the kernel does not offer that file.
std::vector<pid_t> Descendants(pid_t root);

}  // namespace deeprc::runtime::internal
