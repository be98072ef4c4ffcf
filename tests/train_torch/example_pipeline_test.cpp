// The main job's pipeline (examples/forecast_pipeline.yaml, what scripts/demo.sh runs) as a
// user runs it: `deeprc tasks run` on a local pilot whose pool loads the training plugin, with
// few training steps. Every stage must be DONE and its outputs complete and right.
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/program.h"

namespace deeprc::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::vector<std::string>> ReadCsvRows(const fs::path& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream text(ReadText(path));
  std::string line;
  while (std::getline(text, line)) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) fields.push_back(cell);
    rows.push_back(std::move(fields));
  }
  return rows;
}

TEST(ExamplePipelineTest, EveryStageDoneAndOutputsComplete) {
  const fs::path directory = FreshTestDirectory("example_pipeline");
  const std::string source = DEEPRC_SOURCE_DIR;
  ::setenv("DEEPRC_TRAIN_PLUGIN", (std::string(DEEPRC_BINARY_DIR) + "/lib/libdeeprc_train_plugin.so").c_str(), 1);
  ::setenv("MAX_STEPS", "10", 1);
  const ProgramRun run = RunProgram(
      DeeprcProgram(),
      {"tasks", "run", source + "/examples/forecast_pipeline.yaml", "--session-root", "sessions"},
      directory);
  ::unsetenv("MAX_STEPS");
  ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
  const fs::path session = run.out.substr(0, run.out.find('\n'));
  ASSERT_TRUE(fs::is_directory(session)) << run.out;

  const nlohmann::json summary = nlohmann::json::parse(ReadText(session / "summary.json"));
  std::map<std::string, nlohmann::json> values;
  for (const auto& task : summary["results"]) {
    EXPECT_EQ(task["state"], "DONE") << task.dump();
    values[task["name"].get<std::string>()] = task.value("value", nlohmann::json());
  }
  EXPECT_EQ(values.size(), 6u);
  EXPECT_EQ(values["train"]["steps"], 10);
  EXPECT_EQ(values["train"]["ranks"], 2);
  for (const char* metric : {"mae", "rmse", "smape", "mase"}) {
    ASSERT_TRUE(values["score"][metric].is_number()) << values["score"].dump();
    EXPECT_TRUE(std::isfinite(values["score"][metric].get<double>())) << metric;
  }

  // The bundled data, read here independently: 414 series, the last 48 hours of each held out.
  const auto train = ReadCsvRows(source + "/tests/data/forecast/m4_hourly_train.csv");
  const auto test = ReadCsvRows(source + "/tests/data/forecast/m4_hourly_test.csv");
  std::map<std::string, int64_t> points;
  for (size_t i = 1; i < train.size(); ++i) ++points[train[i][0]];
  std::map<std::pair<std::string, std::string>, std::string> actual;
  for (size_t i = 1; i < test.size(); ++i) actual[{test[i][0], test[i][1]}] = test[i][2];
  ASSERT_EQ(points.size(), 414u);

  // series_stats.csv: one row per series with its number of points, in unique_id order.
  const auto stats = ReadCsvRows(session / "series_stats.csv");
  ASSERT_EQ(stats.size(), points.size() + 1);
  EXPECT_EQ(stats[0], (std::vector<std::string>{"unique_id", "points", "y_mean", "y_std", "y_min",
                                                 "y_max"}));
  auto expected = points.begin();
  for (size_t i = 1; i < stats.size(); ++i, ++expected) {
    EXPECT_EQ(stats[i][0], expected->first);
    EXPECT_EQ(std::stoll(stats[i][1]), expected->second) << stats[i][0];
  }

  // forecast_vs_actual.csv: every held-out hour of every series once, the actual value the test
  // file's, the forecast a finite number.
  const auto compared = ReadCsvRows(session / "forecast_vs_actual.csv");
  ASSERT_EQ(compared.size(), actual.size() + 1);
  EXPECT_EQ(compared[0], (std::vector<std::string>{"unique_id", "ds", "model", "yhat", "y"}));
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 1; i < compared.size(); ++i) {
    const std::pair<std::string, std::string> key{compared[i][0], compared[i][1]};
    ASSERT_TRUE(actual.count(key)) << compared[i][0] << " " << compared[i][1];
    EXPECT_EQ(std::stod(compared[i][4]), std::stod(actual[key]));
    EXPECT_EQ(compared[i][2], "NHITS");
    EXPECT_TRUE(std::isfinite(std::stod(compared[i][3])));
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), actual.size());
  fs::remove_all(directory);
}

}  // namespace
}  // namespace deeprc::testing
