// forecast.train / forecast.predict / forecast.evaluate as function tasks on a real training pool:
// `deeprc-worker` ranks under mpirun that load libdeeprc_train_plugin.so, started by an agent in
// this process.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deeprc/runtime/agent.h"
#include "deeprc/runtime/session.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/table_file.h"
#include "deeprc/train/metrics.h"
#include "deeprc/train/series.h"
#include "testing/assertions.h"
#include "testing/training_pool.h"

namespace deeprc::train {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using runtime::ExecutionResult;
using runtime::TaskState;

// Random seasonal series with a trend and noise, in long format: the first part of each series
// (train.csv) and its last `h` points (test.csv), integer ds starting at a random point.
struct SeriesFiles {
  std::string train, test;
  int64_t series = 0;
};

SeriesFiles WriteSeries(const std::string& folder, int64_t h, std::mt19937& random) {
  fs::create_directories(folder);
  SeriesFiles files{folder + "/train.csv", folder + "/test.csv", 0};
  std::ofstream train(files.train), test(files.test);
  train << "unique_id,ds,y\n";
  test << "unique_id,ds,y\n";
  files.series = std::uniform_int_distribution<int64_t>(3, 5)(random);
  std::normal_distribution<double> noise(0, 0.3);
  for (int64_t s = 0; s < files.series; ++s) {
    const int64_t length = std::uniform_int_distribution<int64_t>(50, 80)(random);
    const int64_t start = std::uniform_int_distribution<int64_t>(1, 1000)(random);
    const double level = std::uniform_real_distribution<double>(5, 50)(random);
    const double slope = std::uniform_real_distribution<double>(-0.05, 0.05)(random);
    for (int64_t t = 0; t < length; ++t) {
      const double y = level + slope * t + 3 * std::sin(2 * M_PI * t / 6.0) + noise(random);
      (t < length - h ? train : test) << "S" << s << "," << start + t << "," << y << "\n";
    }
  }
  return files;
}

TEST(ForecastFunctionsTest, TwoRankTrainingThenPredictAndEvaluateOnThePool) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  std::mt19937 random(std::random_device{}());
  const int64_t h = 6;
  const SeriesFiles files = WriteSeries(pool.directory() + "/input", h, random);
  const int64_t steps = std::uniform_int_distribution<int64_t>(20, 40)(random);
  const std::string checkpoint = pool.directory() + "/models/mlp.pt";

  // The training data as a partitioned session table (what data functions write): its rows cut
  // at a random point into part-0 and part-1, so that series span both parts.
  {
    ASSERT_OK_AND_ASSIGN(Table rows, csv::ReadCsv(files.train));
    const int64_t cut = std::uniform_int_distribution<int64_t>(1, rows.num_rows() - 1)(random);
    fs::create_directories(pool.directory() + "/data/series");
    ASSERT_OK(WriteTableFile(rows.Slice(0, cut), pool.directory() + "/data/series/part-0.drt"));
    ASSERT_OK(WriteTableFile(rows.Slice(cut, rows.num_rows() - cut),
                             pool.directory() + "/data/series/part-1.drt"));
  }
  // 2 ranks, data-parallel over the task's communicator.
  ExecutionResult trained = pool.Run(Function("train", "forecast.train",
                                              {{"data", "series"},
                                               {"model", "MLP"},
                                               {"h", h},
                                               {"input_size", 12},
                                               {"max_steps", steps},
                                               {"seed", 7},
                                               {"settings", {{"batch_size", 64}}},
                                               {"checkpoint", checkpoint}},
                                              2));
  ASSERT_EQ(trained.state, TaskState::kDone) << trained.reason;
  EXPECT_EQ(trained.value["steps"], steps);
  EXPECT_EQ(trained.value["ranks"], 2);
  EXPECT_EQ(trained.value["series"], files.series);
  EXPECT_GT(trained.value["samples_per_s"].get<double>(), 0);
  EXPECT_TRUE(trained.value["final_loss"].is_number());
  EXPECT_TRUE(fs::exists(checkpoint));

  // Forecasts to a CSV file; ds goes on by each series' last interval, so it is the test's ds.
  const std::string output = pool.directory() + "/forecast.csv";
  ExecutionResult predicted =
      pool.Run(Function("predict", "forecast.predict",
                        {{"checkpoint", checkpoint}, {"data", files.train}, {"output", output}}));
  ASSERT_EQ(predicted.state, TaskState::kDone) << predicted.reason;
  EXPECT_EQ(predicted.value["rows"], files.series * h);
  ASSERT_OK_AND_ASSIGN(Table forecast_table, csv::ReadCsv(output));
  ASSERT_OK_AND_ASSIGN(Table test_table, csv::ReadCsv(files.test));
  ASSERT_OK_AND_ASSIGN(Table train_table, csv::ReadCsv(files.train));
  SeriesOptions as_forecast;
  as_forecast.target_column = "yhat";
  ASSERT_OK_AND_ASSIGN(SeriesSet forecast, SeriesFromTable(forecast_table, as_forecast));
  ASSERT_OK_AND_ASSIGN(SeriesSet test, SeriesFromTable(test_table));
  ASSERT_OK_AND_ASSIGN(SeriesSet train, SeriesFromTable(train_table));
  ASSERT_EQ(forecast.ids, test.ids);
  ASSERT_EQ(forecast.offsets, test.offsets);
  for (int64_t i = 0; i < test.ds.length(); ++i) {
    EXPECT_EQ(forecast.ds.FormatValue(i), test.ds.FormatValue(i)) << "row " << i;
  }

  // The scores evaluate returns are those of the predicted table against the test.
  const int season = 6;
  ScoreAccumulator expected(season);
  for (int64_t s = 0; s < test.num_series(); ++s) {
    ASSERT_OK(expected.Add(test.values(s), forecast.values(s), train.values(s)));
  }
  const ForecastScores scores = expected.Result();
  ExecutionResult evaluated = pool.Run(Function("evaluate", "forecast.evaluate",
                                                {{"checkpoint", checkpoint},
                                                 {"data", files.train},
                                                 {"test", files.test},
                                                 {"season", season}}));
  ASSERT_EQ(evaluated.state, TaskState::kDone) << evaluated.reason;
  EXPECT_EQ(evaluated.value["series"], files.series);
  EXPECT_EQ(evaluated.value["model"], "MLP");
  // The CSV holds the forecasts as text: equal to its precision.
  const double tolerance = 1e-6 * (1 + scores.mae);
  EXPECT_NEAR(evaluated.value["mae"].get<double>(), scores.mae, tolerance);
  EXPECT_NEAR(evaluated.value["rmse"].get<double>(), scores.rmse, tolerance);
  EXPECT_NEAR(evaluated.value["smape"].get<double>(), scores.smape, 1e-6 * (1 + scores.smape));
  EXPECT_NEAR(evaluated.value["mase"].get<double>(), scores.mase, 1e-6 * (1 + scores.mase));

  // Without `test`, the last h points of `data` are held out: the full series give the same.
  {
    std::ofstream all(pool.directory() + "/input/all.csv");
    std::ifstream head(files.train), tail(files.test);
    all << head.rdbuf();
    std::string line;
    std::getline(tail, line);  // header
    while (std::getline(tail, line)) all << line << "\n";
  }
  ExecutionResult held_out = pool.Run(
      Function("held_out", "forecast.evaluate",
               {{"checkpoint", checkpoint}, {"data", "input/all.csv"}, {"season", season}}));
  ASSERT_EQ(held_out.state, TaskState::kDone) << held_out.reason;
  EXPECT_DOUBLE_EQ(held_out.value["mae"].get<double>(), evaluated.value["mae"].get<double>());

  // Into a partitioned session table on 2 ranks: each rank writes its share of the series, the
  // parts together hold the same forecasts as the file.
  ExecutionResult parted = pool.Run(
      Function("parted", "forecast.predict",
               {{"checkpoint", checkpoint}, {"data", files.train}, {"output", "forecasts"}}, 2));
  ASSERT_EQ(parted.state, TaskState::kDone) << parted.reason;
  EXPECT_EQ(parted.value["rows"], files.series * h);
  EXPECT_EQ(parted.value["partitions"], 2);
  std::vector<double> from_parts;
  for (int part = 0; part < 2; ++part) {
    ASSERT_OK_AND_ASSIGN(Table table, ReadTableFile(fmt::format("{}/data/forecasts/part-{}.drt",
                                                                pool.directory(), part)));
    EXPECT_GE(table.num_rows(), h);  // at least 3 series over 2 ranks: one or more each
    ASSERT_OK_AND_ASSIGN(Column yhat, table.GetColumn("yhat"));
    for (int64_t i = 0; i < yhat.length(); ++i) from_parts.push_back(yhat.Value<double>(i));
  }
  ASSERT_EQ(static_cast<int64_t>(from_parts.size()), files.series * h);
  for (size_t i = 0; i < from_parts.size(); ++i) {
    EXPECT_NEAR(from_parts[i], forecast.y[i], 1e-5 * (1 + std::abs(forecast.y[i]))) << i;
  }
}

// Monthly series (month ends, as us_carrier_passenger.csv) whose y follows a random future
// column x: trained with futr_exog, forecast.predict takes x from `future` (and refuses to
// forecast without it, naming the column), forecast.evaluate from the test; a model without
// exogenous columns continues the month ends across a year end and a leap February.
TEST(ForecastFunctionsTest, FutureColumnsAndMonthlyDates) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  // Random data each run, its seed in every failure message (the check below is a ratio).
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 random(seed);
  std::normal_distribution<double> normal(0, 1);
  const int64_t h = 4;
  const std::string folder = pool.directory() + "/input";
  fs::create_directories(folder);
  // Each series ends in a random month of 2023; its test (and future) part starts the month after.
  auto month_end = [](int index) {  // months since January 2000
    const int year = 2000 + index / 12, month = index % 12 + 1;
    int day = (month == 4 || month == 6 || month == 9 || month == 11) ? 30 : 31;
    if (month == 2) day = (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28;
    return fmt::format("{:04d}-{:02d}-{:02d}", year, month, day);
  };
  {
    std::ofstream train(folder + "/train.csv"), test(folder + "/test.csv"),
        future(folder + "/future.csv"), plain(folder + "/plain.csv");
    train << "unique_id,ds,y,x\n";
    test << "unique_id,ds,y,x\n";
    future << "unique_id,ds,x\n";
    plain << "unique_id,ds,y\n";
    for (int s = 0; s < 6; ++s) {
      const int end = 23 * 12 + 9 + static_cast<int>(random() % 3);  // Oct..Dec 2023
      for (int index = end - 60; index < end + h; ++index) {
        const double x = normal(random);
        const std::string row = fmt::format("S{},{},{}", s, month_end(index), 20 + 4 * x);
        (index < end ? train : test) << row << "," << x << "\n";
        if (index >= end) future << "S" << s << "," << month_end(index) << "," << x << "\n";
        if (index < end) plain << row << "\n";
      }
    }
  }
  const json training = {{"data", folder + "/train.csv"},
                         {"model", "LSTM"},
                         {"h", h},
                         {"input_size", 12},
                         {"max_steps", 200},
                         {"futr_exog", {"x"}},
                         {"settings",
                          {{"batch_size", 32},
                           {"encoder_hidden_size", 16},
                           {"decoder_hidden_size", 16},
                           {"learning_rate", 0.005}}},
                         {"checkpoint", "models/lstm.pt"}};
  ExecutionResult trained = pool.Run(Function("train", "forecast.train", training, 2));
  ASSERT_EQ(trained.state, TaskState::kDone) << trained.reason;

  const std::string output = pool.directory() + "/forecast.csv";
  ExecutionResult refused =
      pool.Run(Function("refused", "forecast.predict",
                        {{"checkpoint", "models/lstm.pt"}, {"data", folder + "/train.csv"},
                         {"output", output}}));
  EXPECT_EQ(refused.state, TaskState::kFailed);
  EXPECT_NE(refused.reason.find("future exogenous columns x"), std::string::npos)
      << refused.reason;
  ExecutionResult predicted = pool.Run(Function(
      "predict", "forecast.predict",
      {{"checkpoint", "models/lstm.pt"}, {"data", folder + "/train.csv"},
       {"future", folder + "/future.csv"}, {"output", output}}));
  ASSERT_EQ(predicted.state, TaskState::kDone) << predicted.reason;
  ASSERT_OK_AND_ASSIGN(Table forecast_table, csv::ReadCsv(output));
  ASSERT_OK_AND_ASSIGN(Table test_table, csv::ReadCsv(folder + "/test.csv"));
  SeriesOptions as_forecast;
  as_forecast.target_column = "yhat";
  ASSERT_OK_AND_ASSIGN(SeriesSet forecast, SeriesFromTable(forecast_table, as_forecast));
  ASSERT_OK_AND_ASSIGN(SeriesSet test, SeriesFromTable(test_table));
  ASSERT_EQ(forecast.offsets, test.offsets);
  double error = 0, blind = 0;
  for (size_t i = 0; i < test.y.size(); ++i) {
    EXPECT_EQ(forecast.ds.FormatValue(i), test.ds.FormatValue(i)) << "row " << i;
    error += std::abs(forecast.y[i] - test.y[i]) / static_cast<double>(test.y.size());
    blind += std::abs(20 - test.y[i]) / static_cast<double>(test.y.size());
  }
  // y = 20 + 4x: a forecast blind to x errs by 4|x| at best (here `blind`); one that reads x
  // from `future` errs by a fraction of it (2.7 to 5 times less in 8 trials), one that reads
  // anything else does not.
  EXPECT_LT(error * 1.5, blind) << "the forecast does not follow the future column";
  ExecutionResult evaluated = pool.Run(Function(
      "evaluate", "forecast.evaluate",
      {{"checkpoint", "models/lstm.pt"}, {"data", folder + "/train.csv"},
       {"test", folder + "/test.csv"}}));
  ASSERT_EQ(evaluated.state, TaskState::kDone) << evaluated.reason;
  EXPECT_NEAR(evaluated.value["mae"].get<double>(), error, 1e-3 * std::max(1.0, error));

  // No exogenous columns: ds continues by calendar months.
  json plain = training;
  plain["data"] = folder + "/plain.csv";
  plain.erase("futr_exog");
  plain["max_steps"] = 5;
  plain["checkpoint"] = "models/plain.pt";
  ASSERT_EQ(pool.Run(Function("plain", "forecast.train", plain)).state, TaskState::kDone);
  ExecutionResult continued = pool.Run(Function(
      "continued", "forecast.predict",
      {{"checkpoint", "models/plain.pt"}, {"data", folder + "/plain.csv"}, {"output", output}}));
  ASSERT_EQ(continued.state, TaskState::kDone) << continued.reason;
  ASSERT_OK_AND_ASSIGN(forecast_table, csv::ReadCsv(output));
  ASSERT_OK_AND_ASSIGN(forecast, SeriesFromTable(forecast_table, as_forecast));
  for (size_t i = 0; i < test.y.size(); ++i) {
    EXPECT_EQ(forecast.ds.FormatValue(i), test.ds.FormatValue(i)) << "row " << i;
  }
}

TEST(ForecastFunctionsTest, BadArgumentsFailTheTaskWithTheirMessage) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  std::mt19937 random(std::random_device{}());
  const SeriesFiles files = WriteSeries(pool.directory() + "/input", 4, random);
  const json base = {{"data", files.train},  {"h", 4},
                     {"input_size", 8},      {"max_steps", 5},
                     {"checkpoint", "m.pt"}, {"settings", {{"batch_size", 16}}}};

  json unknown_model = base;
  unknown_model["model"] = "NoSuchModel";
  ExecutionResult unknown = pool.Run(Function("unknown", "forecast.train", unknown_model, 2));
  EXPECT_EQ(unknown.state, TaskState::kFailed);
  EXPECT_NE(unknown.reason.find("NoSuchModel"), std::string::npos) << unknown.reason;

  json missing_file = base;
  missing_file["model"] = "MLP";
  missing_file["data"] = pool.directory() + "/no_such_file.csv";
  ExecutionResult missing = pool.Run(Function("missing", "forecast.train", missing_file, 2));
  EXPECT_EQ(missing.state, TaskState::kFailed);
  EXPECT_NE(missing.reason.find("no_such_file.csv"), std::string::npos) << missing.reason;

  json no_table = base;
  no_table["model"] = "MLP";
  no_table["data"] = "absent_table";
  ExecutionResult absent = pool.Run(Function("absent", "forecast.train", no_table));
  EXPECT_EQ(absent.state, TaskState::kFailed);
  EXPECT_NE(absent.reason.find("absent_table"), std::string::npos) << absent.reason;

  json no_h = base;
  no_h["model"] = "MLP";
  no_h.erase("h");
  ExecutionResult without_h = pool.Run(Function("without_h", "forecast.train", no_h));
  EXPECT_EQ(without_h.state, TaskState::kFailed);
  EXPECT_NE(without_h.reason.find("args.h"), std::string::npos) << without_h.reason;

  ExecutionResult no_checkpoint =
      pool.Run(Function("no_checkpoint", "forecast.evaluate",
                        {{"checkpoint", "never_written.pt"}, {"data", files.train}}));
  EXPECT_EQ(no_checkpoint.state, TaskState::kFailed);
  EXPECT_NE(no_checkpoint.reason.find("never_written.pt"), std::string::npos)
      << no_checkpoint.reason;

  // The pool survived every failure: a good task still runs on it.
  json good = base;
  good["model"] = "MLP";
  ExecutionResult trained = pool.Run(Function("good", "forecast.train", good, 2));
  EXPECT_EQ(trained.state, TaskState::kDone) << trained.reason;
  EXPECT_TRUE(fs::exists(pool.directory() + "/m.pt"));
}

// The device argument on a pool without GPUs and a CPU-only LibTorch: every CUDA form fails the
// task at start naming why; cpu trains as before.
TEST(ForecastFunctionsTest, DeviceArgument) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  std::mt19937 random(std::random_device{}());
  const SeriesFiles files = WriteSeries(pool.directory() + "/input", 4, random);
  const json base = {{"data", files.train},
                     {"model", "MLP"},
                     {"h", 4},
                     {"input_size", 8},
                     {"max_steps", 5},
                     {"checkpoint", "d.pt"},
                     {"settings", {{"batch_size", 16}, {"hidden_size", 16}}}};
  struct Case {
    json device;
    int32_t ranks;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"cuda", 2, "args.device cuda: task cuda_0 was given no GPUs"},
      {"cuda:1", 1, "args.device cuda:1: task cuda_1 was given no GPUs"},
      {"gpu", 1, "args.device: setting device 'gpu': expected cpu, cuda or cuda:N"},
      {7, 1, "args.device: expected a string"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    json args = base;
    args["device"] = cases[i].device;
    const std::string uid = fmt::format("cuda_{}", i);
    ExecutionResult result = pool.Run(Function(uid, "forecast.train", args, cases[i].ranks));
    EXPECT_EQ(result.state, TaskState::kFailed) << uid;
    EXPECT_NE(result.reason.find(cases[i].expected), std::string::npos) << result.reason;
  }
  // In settings too, and for predict and evaluate.
  json in_settings = base;
  in_settings["settings"]["device"] = "cuda";
  ExecutionResult from_settings = pool.Run(Function("settings", "forecast.train", in_settings));
  EXPECT_EQ(from_settings.state, TaskState::kFailed);
  EXPECT_NE(from_settings.reason.find("args.settings.device cuda: task settings was given no GPUs"),
            std::string::npos)
      << from_settings.reason;
  json on_cpu = base;
  on_cpu["device"] = "cpu";
  ExecutionResult trained = pool.Run(Function("cpu", "forecast.train", on_cpu, 2));
  ASSERT_EQ(trained.state, TaskState::kDone) << trained.reason;
  for (const char* function : {"forecast.predict", "forecast.evaluate"}) {
    ExecutionResult result = pool.Run(Function(
        std::string(function) + "_gpu", function,
        {{"checkpoint", "d.pt"}, {"data", files.train}, {"output", "f.csv"}, {"device", "cuda"}}));
    EXPECT_EQ(result.state, TaskState::kFailed) << function;
    EXPECT_NE(result.reason.find("was given no GPUs"), std::string::npos) << result.reason;
  }
  ExecutionResult predicted = pool.Run(Function(
      "predict_cpu", "forecast.predict",
      {{"checkpoint", "d.pt"}, {"data", files.train}, {"output", "f.csv"}, {"device", "cpu"}}));
  EXPECT_EQ(predicted.state, TaskState::kDone) << predicted.reason;
}

// A long training run given a short timeout ends CANCELED by itself: the trainer looks at the
// task's cancellation flag between steps (both ranks stop at the same step), so the pool is not
// killed and restarted, and its next task runs.
TEST(ForecastFunctionsTest, TimeoutCancelsTrainingCooperatively) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  std::mt19937 random(std::random_device{}());
  const SeriesFiles files = WriteSeries(pool.directory() + "/input", 4, random);
  const json args = {{"data", files.train},
                     {"model", "MLP"},
                     {"h", 4},
                     {"input_size", 8},
                     {"max_steps", 100000000},
                     {"checkpoint", "c.pt"},
                     {"settings", {{"batch_size", 16}, {"hidden_size", 16}}}};
  // The pool's ranks up first, so the time printed below is the task's.
  ASSERT_EQ(pool.Run(Function("warm", "noop", json::object(), 2)).state, TaskState::kDone);
  for (int32_t ranks : {2, 1}) {
    runtime::TaskDescription task =
        Function(fmt::format("long_{}", ranks), "forecast.train", args, ranks);
    task.timeout = 0.5 + std::uniform_real_distribution<double>(0, 0.5)(random);
    const auto start = std::chrono::steady_clock::now();
    ExecutionResult result = pool.Run(task);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(result.state, TaskState::kCanceled) << result.reason;
    std::printf("%d rank(s): timeout %.2f s, CANCELED after %.2f s\n", ranks, task.timeout,
                seconds);
    EXPECT_FALSE(fs::exists(pool.directory() + "/c.pt"));  // no checkpoint of a canceled run
    const auto status = pool.agent().pool_status().at(0);
    EXPECT_EQ(status.restarts, 0) << "the pool was killed: training did not stop on its own";
    EXPECT_EQ(status.generation, 1);
  }
  json quick = args;
  quick["max_steps"] = 3;
  ExecutionResult next = pool.Run(Function("next", "forecast.train", quick, 2));
  EXPECT_EQ(next.state, TaskState::kDone) << next.reason;
  EXPECT_EQ(pool.agent().pool_status().at(0).restarts, 0);
}

}  // namespace
}  // namespace deeprc::train
