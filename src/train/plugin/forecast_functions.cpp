// The forecast.* runtime functions of the training plugin (see functions_internal.h).
//
// Tables (`data`, `test`, `future`) are a file (CSV, or `.drt`; a relative path is taken in the
// session directory) or the name of a partitioned table in the session
// (<session>/data/NAME/part-<r>.drt, as the data functions write them: every part is read).
// Every rank reads every series: training splits the windows, not the series.
//
//   forecast.train     {data, model, h, input_size, max_steps, checkpoint, [seed], [settings:
//                      {key: value}], [hist_exog: [col...]] (or exogenous), [futr_exog:
//                      [col...]], [holdout: false], [device]}
//                      data-parallel over the task's ranks (each step's global batch split over
//                      them, gradients summed); rank 0 writes the checkpoint (weights and the
//                      model's options). holdout: train without the last h points of each
//                      series (what forecast.evaluate without `test` scores against).
//                      -> {model, series, steps, ranks, train_seconds, samples_per_s,
//                          cpu_seconds (rank 0's), final_loss, checkpoint}
//   forecast.predict   {checkpoint, data, output, [future], [device]}
//                      the h points after each series' end. `future` gives their ds values
//                      and the future exogenous columns (its first h rows per series; needed
//                      when the model reads future columns); without it ds goes on by the
//                      series' step (calendar months for monthly dates: see ContinueTime);
//                      `future` is a table like `test` (unique_id, ds, the future columns; y
//                      may be absent and is not read). output: a file (rank 0 forecasts every
//                      series), or a session table name (rank r forecasts its contiguous share
//                      of the series and writes part-r). -> {rows, partitions, output}
//   forecast.evaluate  {checkpoint, data, [test], [season: 1], [device]}
//                      forecasts from `data` and scores them against `test` (or, without it, the
//                      last h points of each series of `data`, held out; either gives the
//                      future exogenous columns' values). Rank 0 scores.
//                      -> {model, series, h, mae, rmse, mape, smape, mase}
// `settings` hold the model's and the trainer's settings of deeprc/train/forecaster.h; threads
// defaults to the machine's cores over the task's ranks. `device`: cpu (default), cuda (the
// task's first GPU) or cuda:N (see TaskDevice in functions_internal.h). Training looks at the
// task's cancellation flag between steps and ends Cancelled (the pool lives on).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/table_file.h"
#include "train/plugin/functions_internal.h"
#include "train/plugin/series_io.h"

namespace deeprc::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using runtime::TaskContext;

Result<std::string> TextArg(const json& args, const char* key) {
  auto found = args.find(key);
  if (found == args.end() || !found->is_string() || found->get<std::string>().empty()) {
    return Status::Invalid("args.{}: expected a non-empty string", key);
  }
  return found->get<std::string>();
}

Result<int64_t> IntArg(const json& args, const char* key, int64_t minimum,
                       std::optional<int64_t> fallback = std::nullopt) {
  auto found = args.find(key);
  if (found == args.end() && fallback) return *fallback;
  if (found == args.end() || !found->is_number_integer()) {
    return Status::Invalid("args.{}: expected an integer", key);
  }
  const int64_t value = found->get<int64_t>();
  if (value < minimum)
    return Status::Invalid("args.{}: must be >= {}, got {}", key, minimum, value);
  return value;
}

// A file path: absolute, or relative to the session directory.
// A plain name (no '/', no file suffix) is a partitioned session table.
bool IsSessionTable(const std::string& name) {
  return name.find('/') == std::string::npos && !EndsWith(name, ".csv") &&
         !EndsWith(name, ".drt") && name.find("..") == std::string::npos;
}

std::string PartitionPath(const TaskContext& context, const std::string& name, int64_t part) {
  return fmt::format("{}/data/{}/part-{}.drt", context.session_dir(), name, part);
}

Result<Table> ReadInput(const TaskContext& context, const json& args, const char* key) {
  DEEPRC_ASSIGN_OR_RAISE(std::string name, TextArg(args, key));
  if (!IsSessionTable(name)) {
    Result<Table> table = ReadTable(context.SessionPath(name));
    if (!table.ok()) return table.status().WithContext(fmt::format("args.{}", key));
    return table;
  }
  std::vector<Table> parts;
  for (int64_t part = 0; fs::exists(PartitionPath(context, name, part)); ++part) {
    DEEPRC_ASSIGN_OR_RAISE(Table table, ReadTableFile(PartitionPath(context, name, part)));
    parts.push_back(std::move(table));
  }
  if (parts.empty()) {
    return Status::IOError(
        "args.{}: no table '{}' in the session (no {}) and not a file path "
        "(name a .csv or .drt file)",
        key, name, PartitionPath(context, name, 0));
  }
  if (parts.size() == 1) return std::move(parts.front());
  return compute::Concatenate(parts);
}

Result<SeriesSet> ReadSeries(const TaskContext& context, const json& args, const char* key,
                             const SeriesOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(Table table, ReadInput(context, args, key));
  Result<SeriesSet> series = SeriesFromTable(table, options);
  if (!series.ok()) return series.status().WithContext(fmt::format("args.{}", key));
  return series;
}

// Collective: every rank learns whether some rank failed before the next collective, so none
// waits in it for a rank that gave up. A failing rank keeps its own message.
Status Agree(comm::Communicator& comm, const Status& local) {
  DEEPRC_ASSIGN_OR_RAISE(int64_t failed, comm::AllReduceValue<int64_t>(comm, local.ok() ? 0 : 1,
                                                                       comm::ReduceOp::kSum));
  if (failed == 0) return Status::OK();
  if (!local.ok()) return local;
  return Status::Invalid("{} other rank(s) of the task failed", failed);
}

std::string ThreadsPerRank(const TaskContext& context) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return std::to_string(std::max(1u, cores / static_cast<unsigned>(context.size())));
}

Result<std::map<std::string, std::string>> SettingsArg(const json& args) {
  std::map<std::string, std::string> settings;
  auto found = args.find("settings");
  if (found == args.end()) return settings;
  if (!found->is_object()) return Status::Invalid("args.settings: expected {{key: value, ...}}");
  for (const auto& [key, value] : found->items()) {
    if (value.is_string()) {
      settings[key] = value.get<std::string>();
    } else if (value.is_number() || value.is_boolean()) {
      settings[key] = value.dump();
    } else {
      return Status::Invalid("args.settings.{}: expected a string or a number", key);
    }
  }
  return settings;
}

// A list of column names under `key` (or its older name `alias`); none when absent.
Result<std::vector<std::string>> ColumnsArg(const json& args, const char* key,
                                            const char* alias = nullptr) {
  auto found = args.find(key);
  if (found == args.end() && alias != nullptr) {
    found = args.find(alias);
    key = alias;
  }
  if (found == args.end()) return std::vector<std::string>{};
  if (!found->is_array()) return Status::Invalid("args.{}: expected a list of columns", key);
  std::vector<std::string> names;
  for (const auto& entry : *found) {
    if (!entry.is_string()) return Status::Invalid("args.{}: expected column names", key);
    names.push_back(entry.get<std::string>());
  }
  return names;
}

// The options that read the series a forecaster was trained on.
SeriesOptions SeriesOptionsOf(const Forecaster& forecaster) {
  SeriesOptions options;
  options.exogenous_columns = forecaster.exogenous();
  options.future_columns = forecaster.future_exogenous();
  return options;
}

Result<std::unique_ptr<Forecaster>> RestoreArg(const TaskContext& context, const json& args) {
  DEEPRC_ASSIGN_OR_RAISE(std::string device, TaskDevice(context));
  DEEPRC_ASSIGN_OR_RAISE(std::string path, TextArg(args, "checkpoint"));
  path = context.SessionPath(path);
  if (!fs::exists(path)) return Status::IOError("args.checkpoint: no file {}", path);
  std::map<std::string, std::string> overrides;
  overrides["threads"] = ThreadsPerRank(context);
  overrides["device"] = device;
  return Forecaster::Restore(path, overrides);
}

json Finite(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

Result<json> Train(TaskContext& context) {
  const json& args = context.args();
  TrainOptions options;
  Status parsed = [&]() -> Status {
    DEEPRC_ASSIGN_OR_RAISE(options.model, TextArg(args, "model"));
    DEEPRC_ASSIGN_OR_RAISE(options.horizon, IntArg(args, "h", 1));
    DEEPRC_ASSIGN_OR_RAISE(options.input_size, IntArg(args, "input_size", 1));
    DEEPRC_ASSIGN_OR_RAISE(options.max_steps, IntArg(args, "max_steps", 1));
    DEEPRC_ASSIGN_OR_RAISE(int64_t seed, IntArg(args, "seed", 0, 1));
    options.seed = static_cast<uint64_t>(seed);
    DEEPRC_ASSIGN_OR_RAISE(options.settings, SettingsArg(args));
    DEEPRC_ASSIGN_OR_RAISE(options.settings["device"], TaskDevice(context));
    DEEPRC_RETURN_NOT_OK(TextArg(args, "checkpoint").status());
    return Status::OK();
  }();
  DEEPRC_RETURN_NOT_OK(parsed);
  if (options.settings.count("threads") == 0) options.settings["threads"] = ThreadsPerRank(context);
  DEEPRC_ASSIGN_OR_RAISE(std::vector<std::string> exogenous,
                         ColumnsArg(args, "hist_exog", "exogenous"));
  DEEPRC_ASSIGN_OR_RAISE(std::vector<std::string> future, ColumnsArg(args, "futr_exog"));
  const std::string checkpoint = context.SessionPath(args.at("checkpoint").get<std::string>());

  // Everything that can fail on one rank alone happens before the ranks agree; training's
  // collectives follow only when every rank is ready.
  SeriesSet series;
  std::unique_ptr<Forecaster> forecaster;
  Status ready = [&]() -> Status {
    SeriesOptions series_options;
    series_options.exogenous_columns = exogenous;
    series_options.future_columns = future;
    DEEPRC_ASSIGN_OR_RAISE(series, ReadSeries(context, args, "data", series_options));
    if (args.value("holdout", false)) {
      DEEPRC_ASSIGN_OR_RAISE(auto split, SplitLast(series, options.horizon));
      series = std::move(split.first);
    }
    DEEPRC_ASSIGN_OR_RAISE(forecaster, Forecaster::Make(options, exogenous, future));
    return Status::OK();
  }();
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), ready));
  comm::Communicator* communicator = context.size() > 1 ? &context.comm() : nullptr;
  DEEPRC_ASSIGN_OR_RAISE(TrainReport report, forecaster->Fit(series, communicator, [&context] {
    return context.canceled();
  }));
  Status saved;
  if (context.rank() == 0) {
    std::error_code error;
    fs::create_directories(fs::path(checkpoint).parent_path(), error);
    saved = error ? Status::IOError("args.checkpoint: cannot create the folder of {}: {}",
                                    checkpoint, error.message())
                  : forecaster->Save(checkpoint);
  }
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), saved));
  return json{{"model", options.model},
              {"series", series.num_series()},
              {"steps", report.steps},
              {"ranks", context.size()},
              {"train_seconds", report.train_seconds},
              {"samples_per_s", report.samples_per_s},
              {"cpu_seconds", report.cpu_seconds},
              {"final_loss", Finite(report.losses.empty() ? NAN : report.losses.back())},
              {"checkpoint", checkpoint}};
}

// This rank's forecasts (all series, or its share of them when `share`), as a table.
Result<Table> ForecastRows(const TaskContext& context, const json& args, bool share) {
  DEEPRC_ASSIGN_OR_RAISE(auto forecaster, RestoreArg(context, args));
  const TrainOptions& options = forecaster->options();
  const SeriesOptions series_options = SeriesOptionsOf(*forecaster);
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet all, ReadSeries(context, args, "data", series_options));
  SeriesSet future_all;
  if (args.contains("future")) {
    DEEPRC_ASSIGN_OR_RAISE(Table table, ReadInput(context, args, "future"));
    SeriesOptions future_options = series_options;
    future_options.target_optional = true;  // y is not read
    DEEPRC_ASSIGN_OR_RAISE(
        auto split, TrainAndTest(all, &table, options.horizon, future_options, "args.future"));
    future_all = std::move(split.second);
  } else if (!forecaster->future_exogenous().empty()) {
    return Status::Invalid("args.future: {} reads the future exogenous columns {}: give `future`, "
                           "a table with their values over the {} dates after each series' end",
                           options.model, fmt::join(forecaster->future_exogenous(), ", "),
                           options.horizon);
  } else {
    DEEPRC_ASSIGN_OR_RAISE(future_all, ContinueTime(all, options.horizon));
  }
  const int64_t count = all.num_series();
  const int64_t begin = share ? count * context.rank() / context.size() : 0;
  const int64_t end = share ? count * (context.rank() + 1) / context.size() : count;
  std::vector<int64_t> mine(static_cast<size_t>(end - begin));
  std::iota(mine.begin(), mine.end(), begin);
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet series, SelectSeries(all, mine));
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet future, SelectSeries(future_all, mine));
  Forecast forecast;
  forecast.horizon = options.horizon;
  if (series.num_series() > 0) {
    DEEPRC_ASSIGN_OR_RAISE(forecast, forecaster->Predict(series, &future));
  }
  return ForecastTable(future, options.model, forecast);
}

Status WriteOutput(const Table& table, const std::string& path) {
  std::error_code error;
  fs::create_directories(fs::path(path).parent_path(), error);
  if (error) {
    return Status::IOError("args.output: cannot create the folder of {}: {}", path,
                           error.message());
  }
  return WriteTable(table, path);
}

Result<json> Predict(TaskContext& context) {
  const json& args = context.args();
  DEEPRC_ASSIGN_OR_RAISE(std::string output, TextArg(args, "output"));
  if (!IsSessionTable(output)) {
    // A file: rank 0 forecasts every series and writes it.
    if (context.rank() != 0) return json(nullptr);
    const std::string path = context.SessionPath(output);
    DEEPRC_ASSIGN_OR_RAISE(Table table, ForecastRows(context, args, false));
    DEEPRC_RETURN_NOT_OK(WriteOutput(table, path));
    return json{{"rows", table.num_rows()}, {"partitions", 1}, {"output", path}};
  }
  // A session table: rank r writes part-r with its share of the series.
  Result<Table> table = ForecastRows(context, args, true);
  Status written = table.status();
  if (written.ok()) written = WriteOutput(*table, PartitionPath(context, output, context.rank()));
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), written));
  DEEPRC_ASSIGN_OR_RAISE(
      int64_t rows,
      comm::AllReduceValue<int64_t>(context.comm(), table->num_rows(), comm::ReduceOp::kSum));
  return json{{"rows", rows}, {"partitions", context.size()}, {"output", output}};
}

Result<json> Evaluate(TaskContext& context) {
  if (context.rank() != 0) return json(nullptr);
  const json& args = context.args();
  DEEPRC_ASSIGN_OR_RAISE(auto forecaster, RestoreArg(context, args));
  const TrainOptions& options = forecaster->options();
  DEEPRC_ASSIGN_OR_RAISE(int64_t season, IntArg(args, "season", 1, 1));
  const SeriesOptions series_options = SeriesOptionsOf(*forecaster);
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet data, ReadSeries(context, args, "data", series_options));
  Table test_table;
  const bool has_test = args.contains("test");
  if (has_test) {
    DEEPRC_ASSIGN_OR_RAISE(test_table, ReadInput(context, args, "test"));
  }
  DEEPRC_ASSIGN_OR_RAISE(
      auto split, TrainAndTest(std::move(data), has_test ? &test_table : nullptr, options.horizon,
                               series_options, has_test ? "args.test" : "args.data"));
  DEEPRC_ASSIGN_OR_RAISE(Forecast forecast, forecaster->Predict(split.first, &split.second));
  DEEPRC_ASSIGN_OR_RAISE(ForecastScores scores, ScoreForecast(split.first, split.second, forecast,
                                                              static_cast<int>(season)));
  return json{{"model", options.model},        {"series", scores.series},
              {"h", options.horizon},          {"mae", Finite(scores.mae)},
              {"rmse", Finite(scores.rmse)},   {"mape", Finite(scores.mape)},
              {"smape", Finite(scores.smape)}, {"mase", Finite(scores.mase)}};
}

}  // namespace

Status RegisterForecastFunctions(runtime::FunctionRegistry& registry) {
  DEEPRC_RETURN_NOT_OK(registry.Register("forecast.train", Train));
  DEEPRC_RETURN_NOT_OK(registry.Register("forecast.predict", Predict));
  return registry.Register("forecast.evaluate", Evaluate);
}

}  // namespace deeprc::train
