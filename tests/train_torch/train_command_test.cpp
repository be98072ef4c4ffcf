// `deeprc train` as a user runs it: the program loads the LibTorch plugin, trains, and prints
// one JSON line.
#include <algorithm>
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

// --set device=...: checked before the data is read (a missing data file is not what fails),
// with the reason; device=cpu trains as the default does.
TEST(TrainCommandTest, DeviceSetting) {
  const auto directory = FreshTestDirectory("train_command_device");
  WriteText(directory / "series.csv", RandomLongCsv(7));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cuda", "--set device: device cuda requested but this"},
      {"cuda:2", "--set device: device cuda:2 requested but this"},
      {"tpu", "--set device: setting device 'tpu': expected cpu, cuda or cuda:N"},
  };
  for (const auto& [device, expected] : cases) {
    auto args = kSmallMlp;
    args.insert(args.begin(), "train");
    args[4] = "no_such_file.csv";  // --data: never read
    args.insert(args.end(), {"--set", "device=" + device});
    ProgramRun run = RunProgram(DeeprcProgram(), args, directory);
    EXPECT_EQ(run.exit_status, 2) << device;
    EXPECT_NE(run.err.find(expected), std::string::npos) << run.err;
    EXPECT_EQ(run.err.find("no_such_file"), std::string::npos) << run.err;
  }
  auto args = kSmallMlp;
  args.insert(args.begin(), "train");
  args.insert(args.end(), {"--set", "backend=nccl"});
  ProgramRun run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("setting backend nccl: deeprc has no NCCL backend"), std::string::npos)
      << run.err;
  // Hydro too.
  const std::string shipped = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/hydrology";
  run = RunProgram(DeeprcProgram(),
                   {"train", "--model", "hydro", "--data", shipped, "--basins", "01547700", "--set",
                    "device=cuda"},
                   directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("--set device: device cuda requested"), std::string::npos) << run.err;

  args = kSmallMlp;
  args.insert(args.begin(), "train");
  ProgramRun plain = RunProgram(DeeprcProgram(), args, directory);
  args.insert(args.end(), {"--set", "device=cpu"});
  ProgramRun on_cpu = RunProgram(DeeprcProgram(), args, directory);
  ASSERT_EQ(plain.exit_status, 0) << plain.err;
  ASSERT_EQ(on_cpu.exit_status, 0) << on_cpu.err;
  EXPECT_EQ(LastJsonLine(plain.out)["mae"], LastJsonLine(on_cpu.out)["mae"]);
  EXPECT_EQ(LastJsonLine(plain.out)["final_loss"], LastJsonLine(on_cpu.out)["final_loss"]);
}

// Series whose y follows a random future column x; a held-out test file gives x over the
// horizon. With --futr-exog x the forecast follows x; NBEATS refuses the column; a test file
// without it is an error naming it.
TEST(TrainCommandTest, FutureExogenousColumns) {
  const auto directory = FreshTestDirectory("train_command_future");
  // Random data each run, its seed in every failure message (the check below is a ratio).
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0, 1);
  std::ostringstream train, test, bare, gap;
  train << "unique_id,ds,y,x,w\n";
  test << "unique_id,ds,y,x\n";
  bare << "unique_id,ds,y\n";
  gap << "unique_id,ds,y,x\n";
  for (int s = 0; s < 3; ++s) {
    for (int t = 1; t <= 100; ++t) {
      const double x = normal(random);
      const std::string row = "s" + std::to_string(s) + "," + std::to_string(t) + "," +
                              std::to_string(30 + 5 * x);
      if (t <= 94) {
        train << row << "," << x << "," << normal(random) << "\n";
      } else {
        test << row << "," << x << "\n";
        bare << row << "\n";
        if (s != 2 || t < 99) gap << row << "," << x << "\n";  // s2 lacks ds 99 and 100
      }
    }
  }
  WriteText(directory / "train.csv", train.str());
  WriteText(directory / "test.csv", test.str());
  WriteText(directory / "bare.csv", bare.str());
  WriteText(directory / "gap.csv", gap.str());
  const std::vector<std::string> base = {
      "train", "--data", "train.csv", "--test", "test.csv", "--h", "6", "--input-size", "12",
      "--max-steps", "300", "--set", "hidden_size=32", "--set", "batch_size=32", "--set",
      "learning_rate=0.003", "--set", "scaler=standard", "--model", "MLP"};
  auto with = base;
  with.insert(with.end(), {"--futr-exog", "x", "--hist-exog", "w"});
  ProgramRun run = RunProgram(DeeprcProgram(), with, directory);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const nlohmann::json followed = LastJsonLine(run.out);
  run = RunProgram(DeeprcProgram(), base, directory);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const nlohmann::json blind = LastJsonLine(run.out);
  ASSERT_TRUE(followed.is_object() && blind.is_object()) << run.out;
  // 2.4 to 4.8 times lower in 8 trials; a forecast that does not read x from the test file
  // would be no better than the blind one.
  EXPECT_LT(followed["mae"].get<double>() * 1.5, blind["mae"].get<double>())
      << "with x: " << followed["mae"] << ", without: " << blind["mae"];

  auto nbeats = base;
  nbeats.back() = "NBEATS";
  nbeats.insert(nbeats.end(), {"--futr-exog", "x"});
  run = RunProgram(DeeprcProgram(), nbeats, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("NBEATS does not take future exogenous columns"), std::string::npos)
      << run.err;

  auto missing = with;
  missing[4] = "bare.csv";
  run = RunProgram(DeeprcProgram(), missing, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("'x'"), std::string::npos) << run.err;
  missing[4] = "gap.csv";
  run = RunProgram(DeeprcProgram(), missing, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("series 's2'"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("missing: 99, 100"), std::string::npos) << run.err;
  missing[4] = "train.csv";  // dates that are not after the data's
  run = RunProgram(DeeprcProgram(), missing, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("not after the data's last"), std::string::npos) << run.err;
}

// `deeprc train --model hydro` on the shipped CAMELS basins: one JSON line per basin and one
// with the mean, the predictions as a table, clear errors.

const std::string kShipped = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/hydrology";

std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') {
      lines.push_back(nlohmann::json::parse(line, nullptr, false));
    }
  }
  return lines;
}

// A tiny model, one short epoch: the command's plumbing, not the model's quality.
std::vector<std::string> TinyRun(std::vector<std::string> basins) {
  std::vector<std::string> args = {"train", "--model", "hydro", "--data", kShipped,
                                   "--set", "hidden=8", "--set", "epochs=1", "--set",
                                   "batch_size=64", "--basins"};
  args.insert(args.end(), basins.begin(), basins.end());
  return args;
}

TEST(TrainCommandTest, HydroPrintsNsePerBasinAndWritesPredictions) {
  const auto directory = FreshTestDirectory("hydro_command");
  auto args = TinyRun({"02064000", "01547700"});
  args.insert(args.end(), {"--output", "predictions.csv"});
  const ProgramRun run = RunProgram(DeeprcProgram(), args, directory);
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const auto lines = JsonLines(run.out);
  ASSERT_EQ(lines.size(), 3u) << run.out;
  double sum = 0;
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(lines[i].is_object()) << run.out;
    EXPECT_EQ(lines[i]["model"], "hydro");
    EXPECT_EQ(lines[i]["basin"], i == 0 ? "02064000" : "01547700");
    EXPECT_EQ(lines[i]["samples"], 365);  // every day of 2002 is observed
    ASSERT_TRUE(lines[i]["nse"].is_number()) << run.out;
    EXPECT_LE(lines[i]["nse"].get<double>(), 1.0);
    sum += lines[i]["nse"].get<double>();
  }
  EXPECT_EQ(lines[2]["basins"], 2);
  EXPECT_NEAR(lines[2]["mean_nse"].get<double>(), sum / 2, 1e-5 * std::max(1.0, std::abs(sum)));
  EXPECT_EQ(lines[2]["test_year"], 2002);
  const std::string table = ReadText(directory / "predictions.csv");
  EXPECT_EQ(table.substr(0, table.find('\n')), "basin,date,observed,predicted");
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1 + 2 * 365);
  EXPECT_NE(table.find("02064000,2002-12-31,"), std::string::npos);
  EXPECT_NE(table.find("01547700,2002-01-01,"), std::string::npos);
}

TEST(TrainCommandTest, HydroTwoRanksScoreAsOne) {
  const auto directory = FreshTestDirectory("hydro_command_ranks");
  auto one = TinyRun({"01547700"});
  auto two = one;
  two.insert(two.end(), {"--ranks", "2"});
  const ProgramRun single = RunProgram(DeeprcProgram(), one, directory);
  const ProgramRun ranks = RunProgram(DeeprcProgram(), two, directory);
  ASSERT_EQ(single.exit_status, 0) << single.err;
  ASSERT_EQ(ranks.exit_status, 0) << ranks.err;
  const auto a = JsonLines(single.out), b = JsonLines(ranks.out);
  ASSERT_EQ(a.size(), 2u) << single.out;
  ASSERT_EQ(b.size(), 2u) << ranks.out;
  EXPECT_EQ(b[0]["ranks"], 2);
  EXPECT_NEAR(a[0]["nse"].get<double>(), b[0]["nse"].get<double>(), 1e-3);
}

TEST(TrainCommandTest, HydroBadInputFailsBeforeTraining) {
  const auto directory = FreshTestDirectory("hydro_command_errors");
  // No basin has streamflow in 2003 (01022500's forcings reach it, its streamflow does not).
  auto args = TinyRun({"01022500"});
  args.insert(args.end(), {"--train-years", "2000-2002", "--test-year", "2003"});
  ProgramRun run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("basin 01022500: no observed streamflow in the test year 2003"),
            std::string::npos)
      << run.err;
  args = TinyRun({"01547700"});
  args.insert(args.end(), {"--test-year", "2003"});
  run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("no day of the test year 2003"), std::string::npos) << run.err;

  run = RunProgram(DeeprcProgram(), TinyRun({"09999999"}), directory);
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_NE(run.err.find("09999999_lump_cida_forcing_leap.txt"), std::string::npos) << run.err;

  args = TinyRun({"01547700"});
  args.insert(args.end(), {"--set", "hiden=3"});
  run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("hiden"), std::string::npos) << run.err;

  args = TinyRun({"01547700"});
  args.insert(args.end(), {"--train-years", "2001-2000"});
  run = RunProgram(DeeprcProgram(), args, directory);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("training years 2001-2000"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace deeprc::testing
