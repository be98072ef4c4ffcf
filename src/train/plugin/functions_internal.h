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

// The device a training function runs on, from args.device (or args.settings.device): "cpu"
// (default), "cuda" = the task's first assigned GPU, "cuda:N" = its N-th. The pool starts each
// rank with CUDA_VISIBLE_DEVICES holding exactly that rank's GPUs (TaskContext::gpus), so the
// N-th of them is CUDA device N in the process and the result is "cpu" or "cuda:N". Checked
// before any data is read: a task given no GPUs, N beyond them, a build or LibTorch without
// CUDA, and an unknown form are errors naming the argument (task_device.cpp).
Result<std::string> TaskDevice(const runtime::TaskContext& context);

}  // namespace deeprc::train
