#pragma once

// Starting the ranks of a data-parallel program on this machine: `deeprc launch` and
// `deeprc table ... --ranks N` go through here, and so do the multi-rank tests.

#include <string>
#include <vector>

#include "deeprc/comm/communicator.h"

namespace deeprc::comm {

struct LaunchOptions {
  int ranks = 1;
  Backend backend = Backend::kMpi;
  // argv of every rank (argv[0] is the program).
  std::vector<std::string> command;
  // Extra NAME=VALUE entries for every rank's environment.
  std::vector<std::string> environment;
};

// Runs `command` as `ranks` processes and waits for all of them. mpi: `mpirun -np N` (with
// --oversubscribe, and the variables OpenMPI needs to run as root); gloo: N child processes with
// DEEPRC_COMM=gloo, DEEPRC_RANK, DEEPRC_WORLD_SIZE and a fresh DEEPRC_GLOO_STORE directory,
// removed afterwards; single: requires ranks == 1 and runs the command once. When one rank fails,
// the others are killed (nothing waits forever). Returns the exit code to report: 0 when all
// succeeded, else the first failing rank's exit code (128 + signal for a signal).
Result<int> LaunchRanks(const LaunchOptions& options);

}  // namespace deeprc::comm
