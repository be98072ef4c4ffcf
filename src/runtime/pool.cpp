#include "deeprc/runtime/pool.h"

#include <nlohmann/json.hpp>

namespace deeprc::runtime {

std::string PoolOptionsToJson(const PoolOptions& options) {
  nlohmann::json pools = nlohmann::json::array();
  for (const PoolDescription& pool : options.pools) {
    pools.push_back({{"name", pool.name},
                     {"workers", pool.workers},
                     {"cores_per_worker", pool.cores_per_worker},
                     {"gpus_per_worker", pool.gpus_per_worker},
                     {"plugins", pool.plugins},
                     {"program", pool.program},
                     {"pipeline_depth", pool.pipeline_depth}});
  }
  return nlohmann::json{{"pools", pools},
                        {"routing", MasterRoutingName(options.routing)},
                        {"heartbeat_ms", options.heartbeat_interval.count()},
                        {"heartbeat_timeout_ms", options.heartbeat_timeout.count()},
                        {"cancel_grace_ms", options.cancel_grace.count()},
                        {"startup_timeout_ms", options.startup_timeout.count()}}
      .dump();
}

Result<PoolOptions> PoolOptionsFromJson(const std::string& text) {
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    PoolOptions options;
    for (const auto& entry : json.at("pools")) {
      PoolDescription pool;
      pool.name = entry.at("name").get<std::string>();
      pool.workers = entry.at("workers").get<int32_t>();
      pool.cores_per_worker = entry.at("cores_per_worker").get<int32_t>();
      pool.gpus_per_worker = entry.at("gpus_per_worker").get<int32_t>();
      pool.plugins = entry.at("plugins").get<std::vector<std::string>>();
      pool.program = entry.at("program").get<std::string>();
      pool.pipeline_depth = entry.at("pipeline_depth").get<int32_t>();
      options.pools.push_back(std::move(pool));
    }
    options.routing = json.at("routing").get<std::string>() == "least_loaded"
                          ? MasterRouting::kLeastLoaded
                          : MasterRouting::kRoundRobin;
    options.heartbeat_interval = std::chrono::milliseconds(json.at("heartbeat_ms").get<int64_t>());
    options.heartbeat_timeout =
        std::chrono::milliseconds(json.at("heartbeat_timeout_ms").get<int64_t>());
    options.cancel_grace = std::chrono::milliseconds(json.at("cancel_grace_ms").get<int64_t>());
    options.startup_timeout =
        std::chrono::milliseconds(json.at("startup_timeout_ms").get<int64_t>());
    return options;
  } catch (const std::exception& error) {
    return Status::Invalid("--pools: malformed pool options: {}", error.what());
  }
}

}  // namespace deeprc::runtime
