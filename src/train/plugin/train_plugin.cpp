// The training plugin's entry and `deeprc train` (see deeprc/train/plugin.h). This file includes
// no LibTorch header: it drives deeprc_train_torch through deeprc/train/forecaster.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "deeprc/comm/communicator.h"
#include "deeprc/train/forecaster.h"
#include "deeprc/train/metrics.h"
#include "deeprc/train/plugin.h"
#include "train/plugin/command_internal.h"
#include "train/plugin/hydro_command.h"
#include "train/plugin/malloc_tuning.h"
#include "train/plugin/series_io.h"

namespace deeprc::train {
namespace {

std::string Number(double value) {
  if (!std::isfinite(value)) return "null";
  return fmt::format("{:.6g}", value);
}

std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

struct CommandOptions {
  std::string model, data, test, output, checkpoint;
  int64_t horizon = 0, input_size = 0, max_steps = 1000;
  int season = 1;
  uint64_t seed = 1;
  int ranks = 0;
  std::string comm = "mpi";
  std::vector<std::string> settings, exogenous, future;
};

Status RunTraining(const CommandOptions& options, comm::Communicator* communicator) {
  const bool leader = communicator == nullptr || communicator->rank() == 0;
  TrainOptions train_options;
  train_options.model = options.model;
  train_options.horizon = options.horizon;
  train_options.input_size = options.input_size;
  train_options.max_steps = options.max_steps;
  train_options.seed = options.seed;
  DEEPRC_ASSIGN_OR_RAISE(train_options.settings, ParseSettings(options.settings));
  SeriesOptions series_options;
  series_options.exogenous_columns = options.exogenous;
  series_options.future_columns = options.future;
  DEEPRC_ASSIGN_OR_RAISE(Table data, ReadTable(options.data));
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet all, SeriesFromTable(data, series_options));
  Table test_table;
  if (!options.test.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(test_table, ReadTable(options.test));
  }
  DEEPRC_ASSIGN_OR_RAISE(
      auto split,
      TrainAndTest(std::move(all), options.test.empty() ? nullptr : &test_table, options.horizon,
                   series_options, options.test.empty() ? options.data : options.test));
  const SeriesSet& train = split.first;
  const SeriesSet& test = split.second;

  if (communicator != nullptr && communicator->size() > 1 &&
      train_options.settings.count("threads") == 0) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    train_options.settings["threads"] =
        std::to_string(std::max(1u, cores / static_cast<unsigned>(communicator->size())));
  }
  DEEPRC_ASSIGN_OR_RAISE(auto forecaster,
                         Forecaster::Make(train_options, options.exogenous, options.future));
  DEEPRC_ASSIGN_OR_RAISE(TrainReport report, forecaster->Fit(train, communicator));
  // The held-out part gives the future exogenous columns over the horizon.
  DEEPRC_ASSIGN_OR_RAISE(Forecast forecast, forecaster->Predict(train, &test));
  if (!leader) return Status::OK();

  DEEPRC_ASSIGN_OR_RAISE(const ForecastScores result,
                         ScoreForecast(train, test, forecast, options.season));
  if (!options.output.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(Table table, ForecastTable(test, options.model, forecast));
    DEEPRC_RETURN_NOT_OK(WriteTable(table, options.output));
  }
  if (!options.checkpoint.empty()) DEEPRC_RETURN_NOT_OK(forecaster->Save(options.checkpoint));
  std::printf(
      "{\"model\": %s, \"series\": %lld, \"mae\": %s, \"rmse\": %s, \"mape\": %s, \"smape\": %s, "
      "\"mase\": %s, \"train_seconds\": %s, \"samples_per_s\": %s, \"ranks\": %d, \"steps\": "
      "%lld, \"final_loss\": %s, \"cpu_seconds\": %s}\n",
      Quoted(options.model).c_str(), static_cast<long long>(result.series),
      Number(result.mae).c_str(), Number(result.rmse).c_str(), Number(result.mape).c_str(),
      Number(result.smape).c_str(), Number(result.mase).c_str(),
      Number(report.train_seconds).c_str(), Number(report.samples_per_s).c_str(),
      communicator ? communicator->size() : 1, static_cast<long long>(report.steps),
      Number(report.losses.empty() ? NAN : report.losses.back()).c_str(),
      Number(report.cpu_seconds).c_str());
  std::fflush(stdout);
  return Status::OK();
}

int RunCommand(int argc, char** argv) {
  KeepFreedMemoryForReuse();
  if (IsHydroCommand(argc, argv)) return RunHydroCommand(argc, argv);
  std::string models;
  for (const auto& name : ForecastModelNames()) models += (models.empty() ? "" : ", ") + name;
  CLI::App app{"Trains a forecasting model on a long-format table (unique_id, ds, y) and scores "
               "its forecast of the held-out points; prints one JSON line.\n  deeprc train "
               "--model NAME --data FILE [--test FILE] --h H --input-size L --max-steps S "
               "[--season M] [--ranks N] [--set key=value ...] [--hist-exog a,b] "
               "[--futr-exog c,d]",
               "deeprc train"};
  CommandOptions options;
  app.add_option("--model", options.model,
                 "Model: " + models + "; or hydro (CAMELS basins: see --model hydro --help)")
      ->required();
  app.add_option("--data", options.data, "Training data (CSV or .drt), columns by name")
      ->required();
  app.add_option("--test", options.test,
                 "Held-out data; without it the last h points of each series are held out");
  app.add_option("--h", options.horizon, "Forecast horizon")->required()->check(CLI::PositiveNumber);
  app.add_option("--input-size", options.input_size, "Input window length")
      ->required()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-steps", options.max_steps, "Training steps")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--season", options.season, "Season length for MASE")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", options.seed, "Seed of the weights and the window order")
      ->capture_default_str();
  app.add_option("--set", options.settings,
                 "Model or trainer setting key=value (see deeprc/train/forecaster.h)");
  app.add_option("--hist-exog,--exogenous", options.exogenous,
                 "Historical exogenous columns (known up to each window's end), comma-separated")
      ->delimiter(',');
  app.add_option("--futr-exog", options.future,
                 "Future exogenous columns (known over the horizon too: the test data gives "
                 "their values there), comma-separated")
      ->delimiter(',');
  app.add_option("--output", options.output, "Write the forecasts here (CSV, or .drt)");
  app.add_option("--checkpoint", options.checkpoint, "Save the trained weights here");
  app.add_option("--ranks", options.ranks, "Data-parallel ranks (started by `deeprc train`)");
  app.add_option("--comm", options.comm, "Communicator of the ranks: mpi or gloo");
  return ParseAndRun(app, argc, argv, "--help", [&](comm::Communicator* communicator) {
    return RunTraining(options, communicator);
  });
}

const DeeprcTrainPlugin kPlugin{kTrainPluginAbiVersion, RunCommand};

}  // namespace
}  // namespace deeprc::train

extern "C" __attribute__((visibility("default"))) const DeeprcTrainPlugin* deeprc_train_plugin_v1() {
  return &deeprc::train::kPlugin;
}
