// `deeprc launch -n N [--comm mpi|gloo|single] [--env NAME=VALUE]... -- PROGRAM ARGS...`: runs
// PROGRAM as the N ranks of one data-parallel job on this machine (comm/launch.h). The exit
// status is 0 when every rank succeeded, else the first failing rank's (128 + signal for a
// signal); the other ranks are then ended.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "deeprc/command_registry.h"
#include "deeprc/comm/launch.h"

namespace deeprc::app {
namespace {

int RunLaunchCommand(int argc, char** argv) {
  CLI::App app{"Runs PROGRAM as the N ranks of one job on this machine:\n"
               "  deeprc launch -n N [--comm mpi|gloo|single] [--env NAME=VALUE]... -- PROGRAM "
               "ARGS...",
               "deeprc launch"};
  int ranks = 1;
  std::string backend_name = "mpi";
  std::vector<std::string> environment;
  app.add_option("-n,--ranks", ranks, "Number of ranks")->required()->check(CLI::PositiveNumber);
  app.add_option("--comm", backend_name,
                 "Communicator: mpi (mpirun), gloo (TCP, a file-store rendezvous) or single")
      ->capture_default_str();
  app.add_option("--env", environment, "NAME=VALUE added to every rank's environment");
  // Everything after `--` is the program and its arguments, passed as they are.
  int separator = 1;
  while (separator < argc && std::strcmp(argv[separator], "--") != 0) ++separator;
  try {
    app.parse(separator, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "deeprc launch: %s (see --help)\n", error.what());
    return kExitUsage;
  }
  if (separator + 1 >= argc) {
    std::fprintf(stderr, "deeprc launch: give the program after `--` (see --help)\n");
    return kExitUsage;
  }
  auto backend = comm::ParseBackend(backend_name);
  if (!backend.ok()) {
    std::fprintf(stderr, "deeprc launch: --comm: %s\n", backend.status().message().c_str());
    return kExitUsage;
  }
  comm::LaunchOptions options;
  options.ranks = ranks;
  options.backend = *backend;
  options.environment = environment;
  options.command.assign(argv + separator + 1, argv + argc);
  auto result = comm::LaunchRanks(options);
  if (!result.ok()) {
    std::fprintf(stderr, "deeprc launch: %s\n", result.status().message().c_str());
    return result.status().code() == StatusCode::kInvalid ? kExitUsage : kExitFailure;
  }
  return *result;
}

const bool kRegistered = RegisterCommand(
    {"launch", "Run a program as the N ranks of a job (mpi, gloo or single)", RunLaunchCommand});

}  // namespace
}  // namespace deeprc::app
