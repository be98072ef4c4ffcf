// `deeprc train --model hydro` as a user runs it on the shipped CAMELS basins: one JSON line per
// basin and one with the mean, the predictions as a table, clear errors.
#include <algorithm>
#include <cmath>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/program.h"

namespace deeprc::testing {
namespace {

const std::string kShipped = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/hydrology";

std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line, nullptr, false));
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

TEST(HydroCommandTest, PrintsNsePerBasinAndWritesPredictions) {
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

TEST(HydroCommandTest, TwoRanksScoreAsOne) {
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

TEST(HydroCommandTest, BadInputFailsBeforeTraining) {
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
