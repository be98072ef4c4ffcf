#include "deeprc/rank_relaunch.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "deeprc/comm/launch.h"
#include "deeprc/command_registry.h"

namespace deeprc::app {

bool IsRankProcess(const char* variable) {
  const char* value = std::getenv(variable);
  return value != nullptr && *value != '\0';
}

int RelaunchAsRanks(const std::string& name, const std::string& command, int ranks,
                    const std::string& comm_name, const char* variable, int argc, char** argv) {
  auto backend = comm::ParseBackend(comm_name);
  if (!backend.ok() || *backend == comm::Backend::kSingle) {
    std::fprintf(stderr, "%s: --comm: expected mpi or gloo, found '%s'\n", name.c_str(),
                 comm_name.c_str());
    return kExitUsage;
  }
#ifndef DEEPRC_HAVE_GLOO
  if (*backend == comm::Backend::kGloo) {
    std::fprintf(stderr,
                 "%s: --comm gloo: this build of deeprc has no Gloo backend (libgloo-dev was not "
                 "found at build time)\n",
                 name.c_str());
    return kExitUsage;
  }
#endif
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) {
    std::fprintf(stderr, "%s: cannot find this program's path: %s\n", name.c_str(),
                 error.message().c_str());
    return kExitFailure;
  }
  comm::LaunchOptions launch;
  launch.ranks = ranks;
  launch.backend = *backend;
  launch.environment.push_back(std::string(variable) + "=" + std::to_string(ranks));
  // Rank 0 prints the error the ranks agreed on; mpirun's own notes about a rank that exited
  // non-zero would only bury it (a rank's own messages and the exit status are kept).
  if (*backend == comm::Backend::kMpi) {
    launch.environment.push_back("OMPI_MCA_orte_execute_quiet=1");
  }
  launch.command = {self.string(), command};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--ranks" || arg == "--comm") {
      ++i;  // and its value
      continue;
    }
    if (arg.starts_with("--ranks=") || arg.starts_with("--comm=")) continue;
    launch.command.emplace_back(arg);
  }
  auto result = comm::LaunchRanks(launch);
  if (!result.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), result.status().message().c_str());
    return result.status().IsUserError() ? kExitUsage : kExitFailure;
  }
  return *result;
}

}  // namespace deeprc::app
