// The plugin's entry for worker pools (include/deeprc/runtime/function.h): a pool that names
// libdeeprc_train_plugin.so in its plugins loads it on every rank, and only such pools load
// LibTorch. Each family of functions registers itself from its own file.
#include "train/plugin/functions_internal.h"

extern "C" __attribute__((visibility("default"))) deeprc::Status deeprc_register_functions(
    deeprc::runtime::FunctionRegistry& registry) {
  DEEPRC_RETURN_NOT_OK(deeprc::train::RegisterForecastFunctions(registry));
  return deeprc::train::RegisterHydroFunctions(registry);
}
