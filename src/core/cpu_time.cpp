#include "deeprc/core/cpu_time.h"

#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace deeprc {
namespace {

double ClockSeconds(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

struct ProcStat {
  pid_t parent = 0;
  double cpu_seconds = 0;
};

// /proc/PID/stat: "pid (comm) state ppid ... utime(14) stime(15) ...". comm may hold spaces and
// parentheses, so the fields are read after the last ')'.
bool ReadStat(const std::filesystem::path& path, ProcStat* stat) {
  std::ifstream file(path);
  std::string text;
  if (!std::getline(file, text)) return false;
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 1));
  std::string state;
  long long parent = 0;
  fields >> state >> parent;
  std::string skip;
  for (int field = 5; field < 14; ++field) fields >> skip;  // pgrp .. cmajflt
  unsigned long long user = 0, system = 0;
  fields >> user >> system;
  if (!fields) return false;
  static const double kTicks = static_cast<double>(sysconf(_SC_CLK_TCK));
  stat->parent = static_cast<pid_t>(parent);
  stat->cpu_seconds = static_cast<double>(user + system) / kTicks;
  return true;
}

}  // namespace

double ProcessCpuSeconds() { return ClockSeconds(CLOCK_PROCESS_CPUTIME_ID); }

double ThreadCpuSeconds() { return ClockSeconds(CLOCK_THREAD_CPUTIME_ID); }

double ProcessTreeCpuSeconds(pid_t pid) {
  std::map<pid_t, ProcStat> all;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    ProcStat stat;
    if (ReadStat(entry.path() / "stat", &stat)) all[static_cast<pid_t>(std::stol(name))] = stat;
  }
  std::map<pid_t, std::vector<pid_t>> children;
  for (const auto& [child, stat] : all) children[stat.parent].push_back(child);
  double total = 0;
  std::vector<pid_t> pending{pid};
  while (!pending.empty()) {
    const pid_t next = pending.back();
    pending.pop_back();
    auto found = all.find(next);
    if (found == all.end()) continue;
    // The process's CPU clock counts in nanoseconds; /proc's figure only in clock ticks.
    clockid_t clock{};
    timespec now{};
    if (clock_getcpuclockid(next, &clock) == 0 && clock_gettime(clock, &now) == 0) {
      total += static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
    } else {
      total += found->second.cpu_seconds;
    }
    for (pid_t child : children[next]) pending.push_back(child);
  }
  return total;
}

}  // namespace deeprc
