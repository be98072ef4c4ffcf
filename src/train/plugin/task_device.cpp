// The `device` of a training function task (see functions_internal.h).
#include <fmt/format.h>

#include "deeprc/train/forecaster.h"
#include "train/plugin/functions_internal.h"

namespace deeprc::train {

Result<std::string> TaskDevice(const runtime::TaskContext& context) {
  const nlohmann::json& args = context.args();
  std::string requested = "cpu";
  const char* where = "args.device";
  auto found = args.find("device");
  auto settings = args.find("settings");
  if (found != args.end()) {
    if (!found->is_string())
      return Status::Invalid("args.device: expected a string (cpu, cuda or cuda:N)");
    requested = found->get<std::string>();
  } else if (settings != args.end() && settings->is_object() && settings->contains("device") &&
             settings->at("device").is_string()) {
    requested = settings->at("device").get<std::string>();
    where = "args.settings.device";
  }
  if (requested == "cpu") return requested;
  const std::string prefix = "cuda:";
  const bool indexed =
      requested.starts_with(prefix) && requested.size() > prefix.size() &&
      requested.size() <= prefix.size() + 6 &&
      requested.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
  if (requested != "cuda" && !indexed) {
    // Not a device form at all: CheckDevice names the accepted ones.
    return CheckDevice(requested).WithContext(where);
  }
  // The pool starts each rank with CUDA_VISIBLE_DEVICES set to exactly its assigned GPUs, so
  // gpus()[i] is CUDA device i in this process: `cuda` is the first (cuda:0), `cuda:N` the N-th.
  const auto& gpus = context.gpus();
  if (gpus.empty()) {
    return Status::Invalid("{} {}: task {} was given no GPUs (its pool has gpus_per_worker 0)",
                           where, requested, context.uid());
  }
  const int64_t index = indexed ? std::stoll(requested.substr(prefix.size())) : 0;
  if (index >= static_cast<int64_t>(gpus.size())) {
    return Status::Invalid("{} {}: task {} was given {} GPU(s) ({}), so N must be below {}", where,
                           requested, context.uid(), gpus.size(), fmt::join(gpus, ","),
                           gpus.size());
  }
  const std::string device = fmt::format("cuda:{}", index);
  DEEPRC_RETURN_NOT_OK(CheckDevice(device).WithContext(where));
  return device;
}

}  // namespace deeprc::train
