#pragma once

// Commands that take `--ranks N [--comm mpi|gloo]` (`deeprc table`, `deeprc bench table`) run
// their distributed variant by starting themselves again as the N ranks of one job: the same
// command line without --ranks and --comm, through comm::LaunchRanks, with an environment
// variable telling each child that it is a rank.

#include <string>

namespace deeprc::app {

// True when `variable` is set (this process is one of the ranks).
bool IsRankProcess(const char* variable);

// Runs `deeprc <command> argv[1..]`, minus --ranks/--comm and their values, as `ranks` ranks with
// `variable`=ranks in their environment, and waits for them. Returns the exit status to report:
// the first failing rank's (its message is the rank's to print), 2 for a bad --comm or a
// backend this build lacks, 1 when the ranks cannot be started. `name` prefixes messages.
int RelaunchAsRanks(const std::string& name, const std::string& command, int ranks,
                    const std::string& comm_name, const char* variable, int argc, char** argv);

}  // namespace deeprc::app
