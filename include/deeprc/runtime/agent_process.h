#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "deeprc/runtime/description.h"
#include "deeprc/runtime/pool.h"

namespace deeprc::runtime {

struct AgentProcessOptions {
  std::string session_dir;
  std::vector<NodeResources> nodes;
  PoolOptions pools;
  std::chrono::milliseconds heartbeat_interval{500};
  // No message from the client for this long: the client is gone.
  std::chrono::milliseconds heartbeat_timeout{3000};
  // The pilot's runtime limit (AgentOptions::runtime); when it is over and the tasks have
  // ended, the client is told {"type":"runtime_over","reason":...}.
  std::chrono::milliseconds runtime{0};
};

// `deeprc agent`: an agent in its own process, serving one client over ZeroMQ (see
// src/runtime/wire_internal.h for the protocol). Binds to 127.0.0.1 on a free port, writes
// "endpoint tcp://127.0.0.1:PORT" as the first line on stdout and <session>/agent.json (pid,
// endpoint), appends its task events to <session>/events.jsonl, and runs until the client says
// shutdown (exit 0) or is silent for heartbeat_timeout (its tasks are canceled, exit 3).
// Returns the process's exit status.
int RunAgentProcess(const AgentProcessOptions& options);

// "cores:gpus:memory,..." (one entry per node) and back; how the client hands the pilot's nodes
// to `deeprc agent --nodes`.
std::string FormatNodes(const std::vector<NodeResources>& nodes);
Result<std::vector<NodeResources>> ParseNodes(const std::string& text);

}  // namespace deeprc::runtime
