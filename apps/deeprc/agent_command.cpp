// `deeprc agent --session-dir DIR --nodes C:G:M[,...]`: a pilot's agent in its own process,
// started by the client (PilotOptions::agent_process); see runtime/agent_process.h.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "deeprc/command_registry.h"
#include "deeprc/runtime/agent_process.h"

namespace deeprc::app {
namespace {

int RunAgentCommand(int argc, char** argv) {
  CLI::App app{"A pilot agent serving one client over ZeroMQ (started by the client)",
               "deeprc agent"};
  runtime::AgentProcessOptions options;
  std::string nodes;
  std::string pools;
  int64_t heartbeat_ms = 500;
  int64_t timeout_ms = 3000;
  int64_t runtime_ms = 0;
  app.add_option("--session-dir", options.session_dir, "The session directory")->required();
  app.add_option("--nodes", nodes, "CORES:GPUS:MEMORY per node, comma-separated")->required();
  app.add_option("--pools", pools, "Worker pools for function tasks (JSON, from the client)");
  app.add_option("--heartbeat-ms", heartbeat_ms, "Heartbeat interval")->check(CLI::PositiveNumber);
  app.add_option("--timeout-ms", timeout_ms, "Client silence before the agent gives up")
      ->check(CLI::PositiveNumber);
  app.add_option("--runtime-ms", runtime_ms, "The pilot's runtime limit (0: none)")
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "deeprc agent: %s (see --help)\n", error.what());
    return kExitUsage;
  }
  auto parsed = runtime::ParseNodes(nodes);
  if (!parsed.ok()) {
    std::fprintf(stderr, "deeprc agent: %s\n", parsed.status().message().c_str());
    return kExitUsage;
  }
  options.nodes = parsed.MoveValueUnsafe();
  if (!pools.empty()) {
    auto parsed_pools = runtime::PoolOptionsFromJson(pools);
    if (!parsed_pools.ok()) {
      std::fprintf(stderr, "deeprc agent: %s\n", parsed_pools.status().message().c_str());
      return kExitUsage;
    }
    options.pools = parsed_pools.MoveValueUnsafe();
  }
  options.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  options.heartbeat_timeout = std::chrono::milliseconds(timeout_ms);
  options.runtime = std::chrono::milliseconds(runtime_ms);
  try {
    return runtime::RunAgentProcess(options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "deeprc agent: internal error: %s\n", error.what());
    return kExitFailure;
  }
}

const bool kRegistered =
    RegisterCommand({"agent", "A pilot agent process (started by the client)", RunAgentCommand});

}  // namespace
}  // namespace deeprc::app
