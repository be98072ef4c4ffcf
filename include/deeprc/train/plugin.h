#pragma once

// The training plugin (libdeeprc_train_plugin.so): the only door through which LibTorch enters
// a deeprc process. `deeprc train` loads it with dlopen when run, and worker pools of training
// tasks will load it the same way (issue 5), so that programs started often (tests, the client,
// the agent) never pay LibTorch's 0.4 s and 160 MB.
//
// The plugin exports one C symbol, kTrainPluginSymbol, a function returning the table below.
// The plugin holds its own copy of the deeprc layers it uses (hidden: no symbol clashes with the
// host); a Communicator passed in is the host's object, called through its virtual functions,
// so host and plugin must come from the same build (abi_version guards against mismatches).

#include <cstdint>

namespace deeprc::comm {
class Communicator;
}

extern "C" {

struct DeeprcTrainPlugin {
  uint32_t abi_version;
  // `deeprc train ...`: argv[0] is "deeprc train". Returns the exit status (0 ok, 2 bad input,
  // 1 failure), messages on stderr, the result's JSON line on stdout (rank 0).
  int (*run_command)(int argc, char** argv);
  // Names of the runtime functions served (forecast.train, forecast.predict,
  // forecast.evaluate, hydro.train, hydro.evaluate), null-terminated.
  const char* const* functions;
  // Runs function `name` with JSON arguments on the task's communicator (null: one rank).
  // Writes a malloc'd JSON text to *result (the caller frees it): the result, or on failure
  // {"error": message}. Returns 0 ok, 2 bad arguments, 1 failure.
  int (*call_function)(const char* name, const char* arguments_json,
                       deeprc::comm::Communicator* communicator, char** result);
};

// The exported entry: `const DeeprcTrainPlugin* deeprc_train_plugin_v1(void)`.
typedef const DeeprcTrainPlugin* (*DeeprcTrainPluginEntry)();
}

namespace deeprc::train {
inline constexpr uint32_t kTrainPluginAbiVersion = 1;
inline constexpr const char* kTrainPluginSymbol = "deeprc_train_plugin_v1";
inline constexpr const char* kTrainPluginFile = "libdeeprc_train_plugin.so";
}  // namespace deeprc::train
