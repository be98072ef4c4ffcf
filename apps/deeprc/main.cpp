// The `deeprc` program: one binary, one subcommand per area (table, bench, ...).
#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/command_registry.h"

namespace deeprc::app {
namespace {
std::vector<Command>& Registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace

bool RegisterCommand(Command command) {
  Registry().push_back(std::move(command));
  return true;
}

const std::vector<Command>& Commands() { return Registry(); }

}  // namespace deeprc::app

namespace {
void PrintUsage(std::FILE* out) {
  std::fprintf(out, "usage: deeprc COMMAND [options]\n\ncommands:\n");
  auto commands = deeprc::app::Commands();
  std::sort(commands.begin(), commands.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const auto& command : commands) {
    std::fprintf(out, "  %-10s %s\n", command.name.c_str(), command.summary.c_str());
  }
  std::fprintf(out, "\n'deeprc COMMAND --help' describes a command.\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return deeprc::app::kExitUsage;
  }
  const std::string_view name(argv[1]);
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(stdout);
    return deeprc::app::kExitOk;
  }
  for (const auto& command : deeprc::app::Commands()) {
    if (command.name == name) {
      std::string program = "deeprc " + command.name;
      std::vector<char*> args;
      args.push_back(program.data());
      for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
      return command.run(static_cast<int>(args.size()), args.data());
    }
  }
  std::fprintf(stderr, "deeprc: unknown command '%s'\n\n", argv[1]);
  PrintUsage(stderr);
  return deeprc::app::kExitUsage;
}
