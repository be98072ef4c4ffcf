#include "deeprc/runtime/agent_process.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "deeprc/runtime/agent.h"
#include "deeprc/runtime/session.h"
#include "runtime/wire_internal.h"

namespace deeprc::runtime {

std::string FormatNodes(const std::vector<NodeResources>& nodes) {
  std::string text;
  for (size_t i = 0; i < nodes.size(); ++i) {
    fmt::format_to(std::back_inserter(text), "{}{}:{}:{}", i == 0 ? "" : ",", nodes[i].cores,
                   nodes[i].gpus, nodes[i].memory);
  }
  return text;
}

Result<std::vector<NodeResources>> ParseNodes(const std::string& text) {
  std::vector<NodeResources> nodes;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    NodeResources node;
    long long memory = 0;
    if (std::sscanf(text.substr(at, end - at).c_str(), "%d:%d:%lld", &node.cores, &node.gpus,
                    &memory) != 3) {
      return Status::Invalid("--nodes: expected CORES:GPUS:MEMORY[,...], found '{}'", text);
    }
    node.memory = memory;
    nodes.push_back(node);
    at = end + 1;
  }
  if (nodes.empty()) return Status::Invalid("--nodes: no nodes");
  return nodes;
}

int RunAgentProcess(const AgentProcessOptions& options) {
  auto secret = internal::ReadSessionSecret(options.session_dir);
  if (!secret.ok()) {
    std::fprintf(stderr, "deeprc agent: %s\n", secret.status().message().c_str());
    return 2;
  }
  std::string endpoint;
  auto channel = internal::Channel::Bind(*secret, &endpoint);
  if (!channel.ok()) {
    std::fprintf(stderr, "deeprc agent: %s\n", channel.status().message().c_str());
    return 1;
  }
  auto events = EventLog::Open(options.session_dir + "/events.jsonl");
  if (!events.ok()) {
    std::fprintf(stderr, "deeprc agent: %s\n", events.status().message().c_str());
    return 1;
  }
  internal::Channel& wire = **channel;

  AgentOptions agent_options;
  agent_options.session_dir = options.session_dir;
  agent_options.nodes = options.nodes;
  agent_options.pools = options.pools;
  agent_options.events = events->get();
  agent_options.on_event = [&wire](const TaskEvent& event) {
    wire.Send(nlohmann::json{{"type", "event"},
                             {"uid", event.uid},
                             {"state", static_cast<int>(event.state)},
                             {"time_us", event.time_us},
                             {"reason", event.reason}}
                  .dump());
  };
  agent_options.on_result = [&wire](ExecutionResult result) {
    nlohmann::json body = internal::ResultToJson(result);
    body["type"] = "result";
    wire.Send(body.dump());
  };
  agent_options.runtime = options.runtime;
  agent_options.on_runtime_over = [&wire](const std::string& reason) {
    wire.Send(nlohmann::json{{"type", "runtime_over"}, {"reason", reason}}.dump());
  };
  auto agent = Agent::Make(std::move(agent_options));
  if (!agent.ok()) {
    std::fprintf(stderr, "deeprc agent: %s\n", agent.status().message().c_str());
    return 1;
  }
  {
    std::ofstream info(options.session_dir + "/agent.json");
    info << nlohmann::json{{"pid", static_cast<int64_t>(::getpid())}, {"endpoint", endpoint}}.dump()
         << "\n";
  }
  std::printf("endpoint %s\n", endpoint.c_str());
  std::fflush(stdout);

  int exit_status = 0;
  std::thread stopper;
  auto last_heard = std::chrono::steady_clock::now();
  wire.Run(
      [&](std::string&& text) {
        last_heard = std::chrono::steady_clock::now();
        nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
        if (body.is_discarded() || !body.is_object()) return;
        const std::string type = body.value("type", "");
        if (type == "submit") {
          std::vector<TaskDescription> tasks;
          Status status;
          for (const auto& entry : body["tasks"]) {
            auto task = internal::TaskFromJson(entry);
            if (!task.ok()) {
              status = task.status();
              break;
            }
            tasks.push_back(task.MoveValueUnsafe());
          }
          std::vector<std::string> uids;
          for (const auto& entry : body["tasks"]) uids.push_back(entry.value("uid", ""));
          if (status.ok())
            status = (*agent)->Submit(std::move(tasks), body.value("submitted_us", int64_t{0}));
          if (!status.ok()) {
            // The client checked the batch already; tell it about each task anyway.
            for (const std::string& uid : uids) {
              ExecutionResult result;
              result.uid = uid;
              result.state = TaskState::kFailed;
              result.reason = "the agent rejected the batch: " + status.message();
              nlohmann::json reply = internal::ResultToJson(result);
              reply["type"] = "result";
              wire.Send(reply.dump());
            }
          }
        } else if (type == "cancel") {
          (*agent)->Cancel(body["uids"].get<std::vector<std::string>>());
        } else if (type == "shutdown") {
          // The tasks left are canceled and their results sent before the channel closes.
          if (!stopper.joinable()) {
            stopper = std::thread([&] {
              (*agent)->Shutdown();
              wire.Stop();
            });
          }
        }
      },
      [&] {
        wire.Send(R"({"type":"heartbeat"})");
        if (!options.pools.pools.empty()) {
          nlohmann::json pools = nlohmann::json::array();
          for (const PoolStatus& status : (*agent)->pool_status()) {
            pools.push_back(internal::PoolStatusToJson(status));
          }
          wire.Send(nlohmann::json{{"type", "pools"}, {"pools", std::move(pools)}}.dump());
        }
        if (std::chrono::steady_clock::now() - last_heard > options.heartbeat_timeout) {
          std::fprintf(stderr, "deeprc agent: no word from the client for %lld ms: shutting down\n",
                       static_cast<long long>(options.heartbeat_timeout.count()));
          exit_status = 3;
          wire.Stop();
        }
      },
      options.heartbeat_interval);
  if (stopper.joinable()) stopper.join();
  // Cancels what is left ("agent shut down") and waits for the processes.
  (*agent)->Shutdown();
  (void)(*events)->Flush();
  return exit_status;
}

}  // namespace deeprc::runtime
