// The plugin's entry for worker pools (include/deeprc/runtime/function.h): a pool that names
// libdeeprc_train_plugin.so in its plugins loads it on every rank, and only such pools load
// LibTorch. Each family of functions registers itself from its own file.
#include "train/plugin/functions_internal.h"
#include "train/plugin/malloc_tuning.h"

extern "C" __attribute__((visibility("default"))) deeprc::Status deeprc_register_functions(
    deeprc::runtime::FunctionRegistry& registry) {
  // This rank is a training process from now on.
  deeprc::train::KeepFreedMemoryForReuse();
  DEEPRC_RETURN_NOT_OK(deeprc::train::RegisterForecastFunctions(registry));
  return deeprc::train::RegisterHydroFunctions(registry);
}
