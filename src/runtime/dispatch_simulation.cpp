#include <chrono>
#include <random>

#include "deeprc/runtime/pool.h"
#include "runtime/dispatcher_internal.h"

namespace deeprc::runtime {

Result<DispatchSimulationResult> SimulateDispatch(const DispatchSimulationOptions& options) {
  if (options.masters < 1 || options.workers_per_master < 1 || options.workers_per_node < 1 ||
      options.tasks < 0 || options.pipeline_depth < 1) {
    return Status::Invalid(
        "simulated dispatch: masters, workers, workers per node and depth must "
        "be positive, tasks not negative");
  }
  for (int32_t width : options.widths) {
    if (width < 1 || width > options.workers_per_master) {
      return Status::Invalid("simulated dispatch: a task width of {} does not fit {} workers",
                             width, options.workers_per_master);
    }
  }
  if (options.widths.empty()) return Status::Invalid("simulated dispatch: no task widths");
  std::vector<internal::Dispatcher> masters;
  masters.reserve(static_cast<size_t>(options.masters));
  for (int32_t m = 0; m < options.masters; ++m) {
    std::vector<int32_t> nodes(static_cast<size_t>(options.workers_per_master));
    for (size_t r = 0; r < nodes.size(); ++r) {
      nodes[r] = static_cast<int32_t>(r / static_cast<size_t>(options.workers_per_node));
    }
    masters.emplace_back(std::move(nodes), options.pipeline_depth);
  }
  std::mt19937_64 random(options.seed);
  std::uniform_int_distribution<size_t> pick(0, options.widths.size() - 1);
  // Widths drawn before the clock starts.
  std::vector<int32_t> widths(static_cast<size_t>(options.tasks));
  for (auto& width : widths) width = options.widths[pick(random)];

  DispatchSimulationResult result;
  std::vector<std::vector<int32_t>> busy(masters.size());  // ranks to release, per master
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < options.tasks; ++i) {
    masters[static_cast<size_t>(i % options.masters)].Push(i, 0, widths[static_cast<size_t>(i)]);
  }
  int64_t finished = 0;
  while (finished < options.tasks) {
    ++result.passes;
    int64_t progress = 0;
    for (size_t m = 0; m < masters.size(); ++m) {
      std::vector<int32_t>& ranks = busy[m];
      masters[m].Dispatch(0, [&](int64_t, std::span<const int32_t> chosen) {
        ranks.insert(ranks.end(), chosen.begin(), chosen.end());
        ++progress;
      });
    }
    for (size_t m = 0; m < masters.size(); ++m) {
      for (int32_t rank : busy[m]) masters[m].Release(rank, 0);
      result.assignments += static_cast<int64_t>(busy[m].size());
      busy[m].clear();
    }
    if (progress == 0) return Status::Internal("simulated dispatch made no progress");
    finished += progress;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.tasks = options.tasks;
  return result;
}

}  // namespace deeprc::runtime
