#pragma once

// The training plugin (libdeeprc_train_plugin.so): the only door through which LibTorch enters
// a deeprc process. `deeprc train` loads it with dlopen when run, so that programs started often
// (tests, the client, the agent) never pay LibTorch's 0.4 s and 160 MB. Training pools load the
// same file as a worker plugin: it also exports `deeprc_register_functions`
// (include/deeprc/runtime/function.h) with the forecast.* runtime functions
// (src/train/plugin/forecast_functions.cpp).
//
// The plugin exports one C symbol, kTrainPluginSymbol, a function returning the table below.
// The plugin holds its own copy of the deeprc layers it uses (hidden: no symbol clashes with the
// host), so host and plugin must come from the same build (abi_version guards against
// mismatches).

#include <cstdint>

extern "C" {

struct DeeprcTrainPlugin {
  uint32_t abi_version;
  // `deeprc train ...`: argv[0] is "deeprc train". Returns the exit status (0 ok, 2 bad input,
  // 1 failure), messages on stderr, the result's JSON line on stdout (rank 0).
  int (*run_command)(int argc, char** argv);
};

// The exported entry: `const DeeprcTrainPlugin* deeprc_train_plugin_v1(void)`.
typedef const DeeprcTrainPlugin* (*DeeprcTrainPluginEntry)();
}

namespace deeprc::train {
inline constexpr uint32_t kTrainPluginAbiVersion = 1;
inline constexpr const char* kTrainPluginSymbol = "deeprc_train_plugin_v1";
inline constexpr const char* kTrainPluginFile = "libdeeprc_train_plugin.so";
}  // namespace deeprc::train
