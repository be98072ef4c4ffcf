#pragma once

#include <string>
#include <vector>

#include "deeprc/runtime/function.h"

namespace deeprc::worker {

// table.<op> for every distributed operator, and table.pipeline (data_functions.cpp, whose
// header says the arguments). Their names are among runtime::BuiltinFunctionNames() (the agent
// checks them at submission).
Status RegisterDataFunctions(runtime::FunctionRegistry& registry);

// bench.cylon (bench_functions.cpp): the Radical-Cylon join or sort, timed inside the task.
Status RegisterBenchFunctions(runtime::FunctionRegistry& registry);

}  // namespace deeprc::worker
