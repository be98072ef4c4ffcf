// The hydro.* runtime functions of the training plugin (see functions_internal.h): the hydrology
// model of `deeprc train --model hydro` as function tasks on a training pool.
//
// Paths (`data`, `checkpoint`, `output`) are absolute or relative to the session directory.
//
//   hydro.train     {data, checkpoint, [basins: [id...]], [train_years: "2000-2001"],
//                   [test_year: 2002], [sequence_length: 21], [inputs: [forcing...]], [seed: 1],
//                   [settings: {key: value}], [device]}
//                   one model per basin (default: every basin of the CAMELS folder `data`),
//                   data-parallel over the task's ranks; rank 0 writes <checkpoint>/<basin>.pt
//                   and <basin>.json (the data options evaluation needs). The NSE on the test
//                   year comes with it.
//                   -> {basins: [{basin, nse, samples, steps, final_loss, train_seconds}],
//                       mean_nse, ranks, checkpoint}
//   hydro.evaluate  {data, checkpoint, [basins], [test_year], [output], [device]}
//                   restores each basin's model (the training years and inputs from its .json),
//                   scores the test year (default: the one it was trained for) by NSE; `output`
//                   (CSV or .drt): basin, date, observed, predicted. Rank 0 evaluates.
//                   -> {basins: [{basin, nse, samples}], mean_nse}
// `settings` are those of deeprc/train/hydrology.h; threads defaults to the machine's cores over
// the task's ranks. `device`: cpu (default), cuda (the task's first GPU) or cuda:N (see
// TaskDevice in functions_internal.h). Training looks at the task's cancellation flag between
// steps and ends Cancelled (the pool lives on).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "deeprc/train/camels.h"
#include "deeprc/train/hydrology.h"
#include "train/plugin/functions_internal.h"
#include "train/plugin/hydro_command.h"

namespace deeprc::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using runtime::TaskContext;

// args[key] as T, or `fallback` when absent; an error naming the key when of another type.
template <typename T>
Result<T> Arg(const json& args, const char* key, std::optional<T> fallback = std::nullopt) {
  auto found = args.find(key);
  if (found == args.end()) {
    if (fallback) return *fallback;
    return Status::Invalid("args.{}: missing", key);
  }
  try {
    return found->get<T>();
  } catch (const json::exception&) {
    return Status::Invalid("args.{}: {} is not of the expected type", key, found->dump());
  }
}

Result<std::map<std::string, std::string>> Settings(const TaskContext& context) {
  std::map<std::string, std::string> settings;
  auto found = context.args().find("settings");
  if (found != context.args().end()) {
    if (!found->is_object()) return Status::Invalid("args.settings: expected {{key: value}}");
    for (const auto& [key, value] : found->items()) {
      settings[key] = value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(settings["device"], TaskDevice(context));
  if (settings.count("threads") == 0) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    settings["threads"] =
        std::to_string(std::max(1u, cores / static_cast<unsigned>(context.size())));
  }
  return settings;
}

Result<std::vector<std::string>> Basins(const json& args, const std::string& data) {
  DEEPRC_ASSIGN_OR_RAISE(auto basins,
                         Arg<std::vector<std::string>>(args, "basins", std::vector<std::string>{}));
  if (basins.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(basins, CamelsBasinIds(data));
  }
  return basins;
}

Result<HydroDataOptions> DataOptions(const json& args) {
  HydroDataOptions options;
  DEEPRC_ASSIGN_OR_RAISE(std::string years,
                         Arg<std::string>(args, "train_years", std::string("2000-2001")));
  DEEPRC_ASSIGN_OR_RAISE(auto parsed, ParseTrainYears(years));
  options.train_first_year = parsed.first;
  options.train_last_year = parsed.second;
  DEEPRC_ASSIGN_OR_RAISE(options.test_year, Arg<int>(args, "test_year", 2002));
  DEEPRC_ASSIGN_OR_RAISE(options.sequence_length, Arg<int64_t>(args, "sequence_length", 21));
  DEEPRC_ASSIGN_OR_RAISE(options.inputs,
                         Arg<std::vector<std::string>>(args, "inputs", std::vector<std::string>{}));
  return options;
}

json DataOptionsJson(const HydroDataOptions& options, const std::vector<std::string>& inputs) {
  return {{"train_years", fmt::format("{}-{}", options.train_first_year, options.train_last_year)},
          {"test_year", options.test_year},
          {"sequence_length", options.sequence_length},
          {"inputs", inputs}};
}

json Finite(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

Result<json> Train(TaskContext& context) {
  const json& args = context.args();
  DEEPRC_ASSIGN_OR_RAISE(auto settings, Settings(context));
  DEEPRC_ASSIGN_OR_RAISE(std::string data, Arg<std::string>(args, "data"));
  DEEPRC_ASSIGN_OR_RAISE(std::string checkpoint, Arg<std::string>(args, "checkpoint"));
  data = context.SessionPath(data);
  checkpoint = context.SessionPath(checkpoint);
  DEEPRC_ASSIGN_OR_RAISE(HydroDataOptions options, DataOptions(args));
  DEEPRC_ASSIGN_OR_RAISE(uint64_t seed, Arg<uint64_t>(args, "seed", 1));
  DEEPRC_ASSIGN_OR_RAISE(auto basins, Basins(args, data));
  // Every rank reads the same files, so bad input fails on every rank alike before training's
  // collectives; only rank 0's writes can fail alone, and the ranks agree on those.
  std::vector<HydroDataset> datasets;
  for (const auto& id : basins) {
    DEEPRC_ASSIGN_OR_RAISE(CamelsBasin basin, ReadCamelsBasin(data, id));
    DEEPRC_ASSIGN_OR_RAISE(HydroDataset dataset, HydroDataset::Make(basin, options));
    DEEPRC_RETURN_NOT_OK(CheckScorable(dataset, options.test_year));
    datasets.push_back(std::move(dataset));
  }
  comm::Communicator* communicator = context.size() > 1 ? &context.comm() : nullptr;
  json results = json::array();
  double nse_sum = 0;
  for (const HydroDataset& dataset : datasets) {
    if (context.canceled()) return Status::Cancelled("hydro.train canceled");
    DEEPRC_ASSIGN_OR_RAISE(auto model, HydroModel::Make(dataset.features(), settings, seed));
    DEEPRC_ASSIGN_OR_RAISE(TrainReport report, model->Fit(dataset, communicator, [&context] {
      return context.canceled();
    }));
    DEEPRC_ASSIGN_OR_RAISE(HydroScore score, EvaluateHydro(*model, dataset, dataset.test()));
    Status saved;
    if (context.rank() == 0) {
      const fs::path base = fs::path(checkpoint) / dataset.basin();
      std::error_code error;
      fs::create_directories(checkpoint, error);
      saved = error ? Status::IOError("args.checkpoint: cannot create {}: {}", checkpoint,
                                      error.message())
                    : model->Save(base.string() + ".pt");
      if (saved.ok()) {
        std::ofstream(base.string() + ".json")
            << DataOptionsJson(options, dataset.input_names()).dump() << "\n";
      }
    }
    DEEPRC_ASSIGN_OR_RAISE(
        int64_t failed,
        comm::AllReduceValue<int64_t>(context.comm(), saved.ok() ? 0 : 1, comm::ReduceOp::kSum));
    DEEPRC_RETURN_NOT_OK(saved);
    if (failed > 0) return Status::IOError("rank 0 could not write the checkpoint");
    nse_sum += score.nse;
    results.push_back({{"basin", dataset.basin()},
                       {"nse", Finite(score.nse)},
                       {"samples", score.samples},
                       {"steps", report.steps},
                       {"final_loss", Finite(report.losses.empty() ? NAN : report.losses.back())},
                       {"train_seconds", report.train_seconds}});
  }
  return json{{"basins", results},
              {"mean_nse", Finite(nse_sum / static_cast<double>(datasets.size()))},
              {"ranks", context.size()},
              {"checkpoint", checkpoint}};
}

Result<json> Evaluate(TaskContext& context) {
  if (context.rank() != 0) return json(nullptr);
  const json& args = context.args();
  DEEPRC_ASSIGN_OR_RAISE(std::string device, TaskDevice(context));
  DEEPRC_ASSIGN_OR_RAISE(std::string data, Arg<std::string>(args, "data"));
  DEEPRC_ASSIGN_OR_RAISE(std::string checkpoint, Arg<std::string>(args, "checkpoint"));
  data = context.SessionPath(data);
  checkpoint = context.SessionPath(checkpoint);
  DEEPRC_ASSIGN_OR_RAISE(auto basins, Basins(args, data));
  DEEPRC_ASSIGN_OR_RAISE(std::string output, Arg<std::string>(args, "output", std::string()));
  PredictionRows rows;
  json results = json::array();
  double nse_sum = 0;
  for (const auto& id : basins) {
    const fs::path base = fs::path(checkpoint) / id;
    std::ifstream file(base.string() + ".json");
    const json saved = json::parse(file, nullptr, false);
    if (!file || saved.is_discarded() || !saved.is_object()) {
      return Status::IOError("basin {}: no data options in {}.json (written by hydro.train)", id,
                             base.string());
    }
    DEEPRC_ASSIGN_OR_RAISE(HydroDataOptions options, DataOptions(saved));
    DEEPRC_ASSIGN_OR_RAISE(options.test_year, Arg<int>(args, "test_year", options.test_year));
    DEEPRC_ASSIGN_OR_RAISE(auto model,
                           HydroModel::Restore(base.string() + ".pt", {{"device", device}}));
    DEEPRC_ASSIGN_OR_RAISE(CamelsBasin basin, ReadCamelsBasin(data, id));
    DEEPRC_ASSIGN_OR_RAISE(HydroDataset dataset, HydroDataset::Make(basin, options));
    DEEPRC_ASSIGN_OR_RAISE(HydroScore score, EvaluateHydro(*model, dataset, dataset.test()));
    rows.Add(dataset, score);
    nse_sum += score.nse;
    results.push_back({{"basin", id}, {"nse", Finite(score.nse)}, {"samples", score.samples}});
  }
  if (!output.empty()) DEEPRC_RETURN_NOT_OK(rows.Write(context.SessionPath(output)));
  return json{{"basins", results},
              {"mean_nse", Finite(nse_sum / static_cast<double>(basins.size()))}};
}

}  // namespace

Status RegisterHydroFunctions(runtime::FunctionRegistry& registry) {
  DEEPRC_RETURN_NOT_OK(registry.Register("hydro.train", Train));
  return registry.Register("hydro.evaluate", Evaluate);
}

}  // namespace deeprc::train
