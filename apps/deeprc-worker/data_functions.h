#pragma once

#include <string>
#include <vector>

#include "deeprc/runtime/function.h"

namespace deeprc::worker {

// table.sort, table.join, table.pipeline (data_functions.cpp).
// Their names are among runtime::BuiltinFunctionNames() (the agent checks them at submission).
Status RegisterDataFunctions(runtime::FunctionRegistry& registry);

}  // namespace deeprc::worker
