// deeprc-worker: one rank of a function-task worker pool, started by the agent under mpirun
// (runtime/pool.h). Not meant to be run by hand.
//   deeprc-worker --endpoint tcp://127.0.0.1:P --session DIR --pool NAME --generation G
//                 [--heartbeat-ms N] [--heartbeat-timeout-ms N] [--plugin LIB.so]...
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "data_functions.h"
#include "deeprc/runtime/pool.h"

int main(int argc, char** argv) {
  deeprc::runtime::WorkerOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "deeprc-worker: %s needs a value\n", argv[i]);
      return 2;
    }
    const std::string value = argv[++i];
    if (flag == "--endpoint") {
      options.endpoint = value;
    } else if (flag == "--session") {
      options.session_dir = value;
    } else if (flag == "--pool") {
      options.pool = value;
    } else if (flag == "--generation") {
      options.generation = std::atoi(value.c_str());
    } else if (flag == "--heartbeat-ms") {
      options.heartbeat_interval = std::chrono::milliseconds(std::atoll(value.c_str()));
    } else if (flag == "--heartbeat-timeout-ms") {
      options.heartbeat_timeout = std::chrono::milliseconds(std::atoll(value.c_str()));
    } else if (flag == "--plugin") {
      options.plugins.push_back(value);
    } else {
      std::fprintf(stderr, "deeprc-worker: unknown option %s\n", argv[i - 1]);
      return 2;
    }
  }
  if (options.endpoint.empty() || options.session_dir.empty()) {
    std::fprintf(stderr, "deeprc-worker: --endpoint and --session are required\n");
    return 2;
  }
  options.register_functions = [](deeprc::runtime::FunctionRegistry& registry) {
    DEEPRC_RETURN_NOT_OK(deeprc::worker::RegisterDataFunctions(registry));
    return deeprc::worker::RegisterBenchFunctions(registry);
  };
  return deeprc::runtime::RunWorker(options);
}
