#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace deeprc::app {

// A subcommand of the `deeprc` program: `deeprc NAME args...`. The function gets the arguments
// after NAME (args[0] is "deeprc NAME") and returns the exit status: 0 success, 2 bad input or
// options (one clear message on stderr, no output file left behind), 1 any other failure.
struct Command {
  std::string name;
  std::string summary;
  std::function<int(int argc, char** argv)> run;
};

// Commands register themselves from their own source file:
//   static const bool kRegistered = RegisterCommand({"table", "...", RunTableCommand});
bool RegisterCommand(Command command);
const std::vector<Command>& Commands();

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

}  // namespace deeprc::app
