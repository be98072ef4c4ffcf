// `deeprc train --model hydro --data DIR ...`: the hydrology model on CAMELS basins, one model
// per basin, trained on the training years and scored (NSE) on the held-out year. This file
// includes no LibTorch header: it drives deeprc_train_torch through deeprc/train/hydrology.h.
#include "train/plugin/hydro_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "deeprc/comm/communicator.h"
#include "deeprc/table/builder.h"
#include "deeprc/train/camels.h"
#include "deeprc/train/hydrology.h"
#include "train/plugin/command_internal.h"
#include "train/plugin/series_io.h"

namespace deeprc::train {
namespace {

struct HydroOptions {
  std::string data, output;
  std::vector<std::string> basins, inputs, settings;
  std::string train_years = "2000-2001";
  int test_year = 2002;
  int64_t sequence_length = 21;
  uint64_t seed = 1;
  int ranks = 0;
  std::string comm = "mpi";
};

std::string Number(double value) {
  if (!std::isfinite(value)) return "null";
  return fmt::format("{:.6g}", value);
}

Status RunHydro(const HydroOptions& options, comm::Communicator* communicator) {
  const bool leader = communicator == nullptr || communicator->rank() == 0;
  HydroDataOptions data_options;
  DEEPRC_ASSIGN_OR_RAISE(auto years, ParseTrainYears(options.train_years));
  data_options.train_first_year = years.first;
  data_options.train_last_year = years.second;
  data_options.test_year = options.test_year;
  data_options.sequence_length = options.sequence_length;
  data_options.inputs = options.inputs;
  DEEPRC_ASSIGN_OR_RAISE(auto settings, ParseSettings(options.settings));
  if (communicator != nullptr && communicator->size() > 1 && settings.count("threads") == 0) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    settings["threads"] =
        std::to_string(std::max(1u, cores / static_cast<unsigned>(communicator->size())));
  }
  std::vector<std::string> basins = options.basins;
  if (basins.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(basins, CamelsBasinIds(options.data));
  }

  // Every basin is read and checked before any trains: bad input fails in a second, not after
  // minutes of training.
  std::vector<HydroDataset> datasets;
  for (const auto& id : basins) {
    DEEPRC_ASSIGN_OR_RAISE(CamelsBasin basin, ReadCamelsBasin(options.data, id));
    DEEPRC_ASSIGN_OR_RAISE(HydroDataset data, HydroDataset::Make(basin, data_options));
    DEEPRC_RETURN_NOT_OK(CheckScorable(data, options.test_year));
    DEEPRC_RETURN_NOT_OK(HydroModel::Make(data.features(), settings, options.seed).status());
    datasets.push_back(std::move(data));
  }
  PredictionRows rows;
  double nse_sum = 0;
  double nse_min = INFINITY;
  for (const HydroDataset& data : datasets) {
    const std::string& id = data.basin();
    DEEPRC_ASSIGN_OR_RAISE(auto model, HydroModel::Make(data.features(), settings, options.seed));
    DEEPRC_ASSIGN_OR_RAISE(TrainReport report, model->Fit(data, communicator));
    DEEPRC_ASSIGN_OR_RAISE(HydroScore score, EvaluateHydro(*model, data, data.test()));
    nse_sum += score.nse;
    nse_min = std::min(nse_min, score.nse);
    if (!leader) continue;
    rows.Add(data, score);
    std::printf(
        "{\"model\": \"hydro\", \"basin\": \"%s\", \"nse\": %s, \"samples\": %lld, "
        "\"train_samples\": %zu, \"steps\": %lld, \"final_loss\": %s, \"train_seconds\": "
        "%s, \"samples_per_s\": %s, \"ranks\": %d}\n",
        id.c_str(), Number(score.nse).c_str(), static_cast<long long>(score.samples),
        data.training().size(), static_cast<long long>(report.steps),
        Number(report.losses.empty() ? NAN : report.losses.back()).c_str(),
        Number(report.train_seconds).c_str(), Number(report.samples_per_s).c_str(),
        communicator ? communicator->size() : 1);
    std::fflush(stdout);
  }
  if (!leader) return Status::OK();
  std::printf(
      "{\"model\": \"hydro\", \"basins\": %zu, \"mean_nse\": %s, \"min_nse\": %s, "
      "\"train_years\": \"%d-%d\", \"test_year\": %d}\n",
      basins.size(), Number(nse_sum / static_cast<double>(basins.size())).c_str(),
      Number(nse_min).c_str(), data_options.train_first_year, data_options.train_last_year,
      data_options.test_year);
  std::fflush(stdout);
  if (!options.output.empty()) DEEPRC_RETURN_NOT_OK(rows.Write(options.output));
  return Status::OK();
}

}  // namespace

Status CheckScorable(const HydroDataset& data, int test_year) {
  const bool scored = std::any_of(data.test().begin(), data.test().end(),
                                  [&](int64_t day) { return !std::isnan(data.Observed(day)); });
  if (scored) return Status::OK();
  return Status::Invalid("basin {}: no observed streamflow in the test year {} to score",
                         data.basin(), test_year);
}

Result<std::pair<int, int>> ParseTrainYears(const std::string& text) {
  int first = 0, last = 0;
  char dash = 0;
  char rest = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &first, &dash, &last, &rest) == 3 && dash == '-') {
    return std::make_pair(first, last);
  }
  if (std::sscanf(text.c_str(), "%d%c", &first, &rest) == 1) return std::make_pair(first, first);
  return Status::Invalid("training years '{}': expected FIRST-LAST (e.g. 2000-2001) or one year",
                         text);
}

void PredictionRows::Add(const HydroDataset& data, const HydroScore& score) {
  for (size_t i = 0; i < data.test().size(); ++i) {
    const int64_t day = data.test()[i];
    basin_.emplace_back(data.basin());
    date_.emplace_back(data.DayOf(day));
    const double observed = data.Observed(day);
    observed_.push_back(std::isnan(observed) ? std::nullopt : std::optional(observed));
    predicted_.emplace_back(score.predicted[i]);
  }
}

Result<Table> PredictionRows::ToTable() const {
  std::vector<Column> columns;
  DEEPRC_ASSIGN_OR_RAISE(Column basins, MakeStringColumn(basin_));
  columns.push_back(std::move(basins));
  DEEPRC_ASSIGN_OR_RAISE(Column dates, MakeColumn<int32_t>(DataType::Date32(), date_));
  columns.push_back(std::move(dates));
  DEEPRC_ASSIGN_OR_RAISE(Column observations, MakeColumn<double>(DataType::Float64(), observed_));
  columns.push_back(std::move(observations));
  DEEPRC_ASSIGN_OR_RAISE(Column predictions, MakeColumn<double>(DataType::Float64(), predicted_));
  columns.push_back(std::move(predictions));
  return Table::Make(Schema({{"basin", DataType::String()},
                             {"date", DataType::Date32()},
                             {"observed", DataType::Float64()},
                             {"predicted", DataType::Float64()}}),
                     std::move(columns));
}

Status PredictionRows::Write(const std::string& path) const {
  DEEPRC_ASSIGN_OR_RAISE(Table table, ToTable());
  return WriteTable(table, path);
}

bool IsHydroCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string value;
    if (std::strcmp(argv[i], "--model") == 0 && i + 1 < argc) value = argv[i + 1];
    if (std::strncmp(argv[i], "--model=", 8) == 0) value = argv[i] + 8;
    if (!value.empty()) return strcasecmp(value.c_str(), "hydro") == 0;
  }
  return false;
}

int RunHydroCommand(int argc, char** argv) {
  CLI::App app{
      "Trains the hydrology model (Dense-LSTM-LSTM-Dense) on each CAMELS basin's "
      "training years and scores its daily streamflow on the test year by NSE; prints "
      "one JSON line per basin and one with the mean.\n  deeprc train --model hydro "
      "--data DIR [--basins ID ...] [--train-years A-B --test-year Y] [--set "
      "key=value ...] [--output FILE] [--ranks N]",
      "deeprc train --model hydro"};
  HydroOptions options;
  std::string model;
  app.add_option("--model", model, "hydro")->required();
  app.add_option("--data", options.data,
                 "CAMELS folder (forcing_daymet/, usgs_streamflow/; see deeprc/train/camels.h)")
      ->required();
  app.add_option("--basins", options.basins, "Basin ids (default: every basin of the folder)");
  app.add_option("--train-years", options.train_years, "Training years FIRST-LAST")
      ->capture_default_str();
  app.add_option("--test-year", options.test_year, "Held-out year scored by NSE")
      ->capture_default_str();
  app.add_option("--sequence-length", options.sequence_length, "Days of forcings per sample")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--inputs", options.inputs,
                 "Forcings the model reads (default: all: dayl prcp srad swe tmax tmin vp)");
  app.add_option("--seed", options.seed, "Seed of the weights and the sample order")
      ->capture_default_str();
  app.add_option("--set", options.settings,
                 "Setting key=value (hidden, dropout, epochs, batch_size, learning_rate, "
                 "num_lr_decays, loss, threads; see deeprc/train/hydrology.h)");
  app.add_option("--output", options.output,
                 "Write the test year's predictions here (CSV, or .drt): basin, date, observed, "
                 "predicted");
  app.add_option("--ranks", options.ranks, "Data-parallel ranks (started by `deeprc train`)");
  app.add_option("--comm", options.comm, "Communicator of the ranks: mpi or gloo");
  return ParseAndRun(
      app, argc, argv, "--model hydro --help",
      [&](comm::Communicator* communicator) { return RunHydro(options, communicator); });
}

}  // namespace deeprc::train
