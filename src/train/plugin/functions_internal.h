#pragma once

// The runtime functions of the training plugin, registered by its `deeprc_register_functions`
// entry (register_functions.cpp) when a training pool's ranks load it.

#include "deeprc/core/status.h"
#include "deeprc/runtime/function.h"

namespace deeprc::train {

// forecast.train, forecast.predict, forecast.evaluate (forecast_functions.cpp).
Status RegisterForecastFunctions(runtime::FunctionRegistry& registry);
// hydro.train, hydro.evaluate (hydro_functions.cpp).
Status RegisterHydroFunctions(runtime::FunctionRegistry& registry);

}  // namespace deeprc::train
