// A function plugin for pool_test: loaded with dlopen by `deeprc-worker` ranks. Its symbols
// from deeprc (FunctionRegistry::Register) resolve against the worker program, which exports
// them.
#include "deeprc/runtime/function.h"

extern "C" deeprc::Status deeprc_register_functions(deeprc::runtime::FunctionRegistry& registry) {
  return registry.Register(
      "test.add", [](deeprc::runtime::TaskContext& context) -> deeprc::Result<nlohmann::json> {
        return nlohmann::json(context.args().value("a", 0) + context.args().value("b", 0));
      });
}
