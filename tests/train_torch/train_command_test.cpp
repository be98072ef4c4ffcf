// `deeprc train` as a user runs it: the program loads the LibTorch plugin, trains, and prints
// one JSON line.
#include <cmath>
#include <cstdlib>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/program.h"

namespace deeprc::testing {
namespace {

// Three random seasonal series in long format with integer time steps.
std::string RandomLongCsv(uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> noise(0, 1);
  std::ostringstream out;
  out << "unique_id,ds,y\n";
  for (int s = 0; s < 3; ++s) {
    for (int t = 1; t <= 80; ++t) {
      out << "series" << s << "," << t << "," << 50 + 10 * s + 5 * std::sin(t / 2.0) + noise(random)
          << "\n";
    }
  }
  return out.str();
}

nlohmann::json LastJsonLine(const std::string& out) {
  const size_t start = out.rfind('{');
  if (start == std::string::npos) return {};
  return nlohmann::json::parse(out.substr(start), nullptr, false);
}

const std::vector<std::string> kSmallMlp = {"--model", "MLP",        "--data", "series.csv",
                                            "--h",     "6",          "--input-size", "12",
                                            "--max-steps", "5",      "--season", "4",
                                            "--set",   "hidden_size=16", "--set", "batch_size=8"};

TEST(TrainCommandTest, TrainsScoresAndWritesForecasts) {
  const auto directory = FreshTestDirectory("train_command");
  WriteText(directory / "series.csv", RandomLongCsv(3));
  auto args = kSmallMlp;
  args.insert(args.end(), {"--output", "forecasts.csv"});
  args.insert(args.begin(), "train");
  const ProgramRun run = RunProgram(DeeprcProgram(), args, directory);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const nlohmann::json line = LastJsonLine(run.out);
  ASSERT_TRUE(line.is_object()) << run.out;
  for (const char* key : {"model", "series", "mae", "rmse", "mape", "smape", "mase",
                          "train_seconds", "samples_per_s"}) {
    EXPECT_TRUE(line.contains(key)) << key << " missing in " << run.out;
  }
  EXPECT_EQ(line["model"], "MLP");
  EXPECT_EQ(line["series"], 3);
  EXPECT_TRUE(line["mae"].is_number() && line["mae"].get<double>() >= 0);
  EXPECT_TRUE(line["mase"].is_number());
  const std::string forecasts = ReadText(directory / "forecasts.csv");
  EXPECT_EQ(forecasts.substr(0, forecasts.find('\n')), "unique_id,ds,model,yhat");
  EXPECT_EQ(std::count(forecasts.begin(), forecasts.end(), '\n'), 1 + 3 * 6);
  // The held-out points are ds 75..80.
  EXPECT_NE(forecasts.find("series2,80,MLP,"), std::string::npos);
}

TEST(TrainCommandTest, TwoRanksScoreAsOne) {
  const auto directory = FreshTestDirectory("train_command_ranks");
  WriteText(directory / "series.csv", RandomLongCsv(4));
  auto one = kSmallMlp;
  one.insert(one.begin(), "train");
  auto two = one;
  two.insert(two.end(), {"--ranks", "2"});
  const ProgramRun single = RunProgram(DeeprcProgram(), one, directory);
  const ProgramRun ranks = RunProgram(DeeprcProgram(), two, directory);
  ASSERT_EQ(single.exit_status, 0) << single.err;
  ASSERT_EQ(ranks.exit_status, 0) << ranks.err;
  const nlohmann::json a = LastJsonLine(single.out), b = LastJsonLine(ranks.out);
  ASSERT_TRUE(a.is_object() && b.is_object()) << single.out << ranks.out;
  EXPECT_EQ(b["ranks"], 2);
  EXPECT_NEAR(a["mae"].get<double>(), b["mae"].get<double>(),
              1e-3 * std::max(1.0, a["mae"].get<double>()));
}

TEST(TrainCommandTest, BadInputAndMissingPlugin) {
  const auto directory = FreshTestDirectory("train_command_errors");
  WriteText(directory / "series.csv", RandomLongCsv(5));
  auto args = kSmallMlp;
  args.insert(args.begin(), "train");
  args[2] = "Prophet";
  ProgramRun run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("unknown model 'Prophet'"), std::string::npos) << run.err;

  args = kSmallMlp;
  args.insert(args.begin(), "train");
  args.insert(args.end(), {"--set", "hiden_size=3"});
  run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("hiden_size"), std::string::npos) << run.err;

  args = kSmallMlp;
  args.insert(args.begin(), "train");
  args[6] = "100";  // --h longer than the series
  run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("series0"), std::string::npos) << run.err;

  ::setenv("DEEPRC_TRAIN_PLUGIN", (directory / "no_plugin.so").c_str(), 1);
  run = RunProgram(DeeprcProgram(), {"train", "--help"}, directory);
  ::unsetenv("DEEPRC_TRAIN_PLUGIN");
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_NE(run.err.find("could not be loaded"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace deeprc::testing
