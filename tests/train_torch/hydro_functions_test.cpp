// hydro.train / hydro.evaluate as function tasks on a real training pool (two deeprc-worker ranks
// that load the training plugin), on a shipped CAMELS basin.
#include <cmath>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deeprc/table/csv.h"
#include "testing/assertions.h"
#include "testing/training_pool.h"

namespace deeprc::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kShipped = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/hydrology";

TEST(HydroFunctionsTest, TwoRankTrainingThenEvaluateOnThePool) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  std::mt19937 random(std::random_device{}());
  const int64_t seed = std::uniform_int_distribution<int64_t>(1, 1000)(random);
  const json settings = {{"hidden", 8}, {"epochs", 1}, {"batch_size", 64}};

  ExecutionResult trained = pool.Run(Function("train", "hydro.train",
                                              {{"data", kShipped},
                                               {"basins", {"01547700"}},
                                               {"seed", seed},
                                               {"settings", settings},
                                               {"checkpoint", "models"}},
                                              2));
  ASSERT_EQ(trained.state, TaskState::kDone) << trained.reason;
  EXPECT_EQ(trained.value["ranks"], 2);
  ASSERT_EQ(trained.value["basins"].size(), 1u) << trained.value.dump();
  const json& basin = trained.value["basins"][0];
  EXPECT_EQ(basin["basin"], "01547700");
  EXPECT_EQ(basin["samples"], 365);
  EXPECT_EQ(basin["steps"], (366 + 365 - 20 + 63) / 64);
  ASSERT_TRUE(basin["nse"].is_number()) << trained.value.dump();
  EXPECT_TRUE(fs::exists(pool.directory() + "/models/01547700.pt"));
  EXPECT_TRUE(fs::exists(pool.directory() + "/models/01547700.json"));

  // The restored model scores the same test year the same (one rank, from the checkpoint).
  ExecutionResult evaluated = pool.Run(Function("evaluate", "hydro.evaluate",
                                                {{"data", kShipped},
                                                 {"basins", {"01547700"}},
                                                 {"checkpoint", "models"},
                                                 {"output", "predictions.csv"}}));
  ASSERT_EQ(evaluated.state, TaskState::kDone) << evaluated.reason;
  const json& scored = evaluated.value["basins"][0];
  EXPECT_EQ(scored["samples"], 365);
  EXPECT_NEAR(scored["nse"].get<double>(), basin["nse"].get<double>(), 1e-9);
  EXPECT_NEAR(evaluated.value["mean_nse"].get<double>(), basin["nse"].get<double>(), 1e-9);
  ASSERT_OK_AND_ASSIGN(Table predictions, csv::ReadCsv(pool.directory() + "/predictions.csv"));
  EXPECT_EQ(predictions.num_rows(), 365);
  EXPECT_EQ(predictions.num_columns(), 4);

  // Bad input fails the task with a message naming it.
  ExecutionResult missing =
      pool.Run(Function("missing", "hydro.evaluate",
                        {{"data", kShipped}, {"basins", {"02064000"}}, {"checkpoint", "models"}}));
  EXPECT_EQ(missing.state, TaskState::kFailed);
  EXPECT_NE(missing.reason.find("02064000.json"), std::string::npos) << missing.reason;
  ExecutionResult bad = pool.Run(Function(
      "bad", "hydro.train", {{"data", kShipped}, {"checkpoint", "m"}, {"test_year", "2002"}}, 2));
  EXPECT_EQ(bad.state, TaskState::kFailed);
  EXPECT_NE(bad.reason.find("args.test_year"), std::string::npos) << bad.reason;
  // No streamflow in 2003: refused before any training.
  ExecutionResult unscored = pool.Run(Function("unscored", "hydro.train",
                                               {{"data", kShipped},
                                                {"basins", {"01022500"}},
                                                {"checkpoint", "m"},
                                                {"train_years", "2000-2002"},
                                                {"test_year", 2003}},
                                               2));
  EXPECT_EQ(unscored.state, TaskState::kFailed);
  EXPECT_NE(unscored.reason.find("basin 01022500: no observed streamflow in the test year 2003"),
            std::string::npos)
      << unscored.reason;
}

// hydro.train stops between steps when its task times out (the pool is not restarted), and a
// CUDA device on a pool without GPUs fails at start naming it.
TEST(HydroFunctionsTest, TimeoutCancelsAndDeviceIsChecked) {
  TrainingPool pool;
  ASSERT_OK(pool.made());
  runtime::TaskDescription task = Function("long", "hydro.train",
                                           {{"data", kShipped},
                                            {"basins", {"01547700"}},
                                            {"settings", {{"hidden", 8}, {"epochs", 100000}}},
                                            {"checkpoint", "long"}},
                                           2);
  task.timeout = 0.5;
  ExecutionResult canceled = pool.Run(task);
  EXPECT_EQ(canceled.state, TaskState::kCanceled) << canceled.reason;
  EXPECT_EQ(pool.agent().pool_status().at(0).restarts, 0);
  EXPECT_FALSE(fs::exists(pool.directory() + "/long/01547700.pt"));

  for (const char* function : {"hydro.train", "hydro.evaluate"}) {
    ExecutionResult gpu = pool.Run(Function(
        std::string(function) + "_gpu", function,
        {{"data", kShipped}, {"basins", {"01547700"}}, {"checkpoint", "m"}, {"device", "cuda:0"}}));
    EXPECT_EQ(gpu.state, TaskState::kFailed) << function;
    EXPECT_NE(gpu.reason.find("args.device cuda:0"), std::string::npos) << gpu.reason;
    EXPECT_NE(gpu.reason.find("was given no GPUs"), std::string::npos) << gpu.reason;
  }
  ExecutionResult next = pool.Run(Function("next", "hydro.train",
                                           {{"data", kShipped},
                                            {"basins", {"01547700"}},
                                            {"settings", {{"hidden", 8}, {"epochs", 1}}},
                                            {"checkpoint", "m"}}));
  EXPECT_EQ(next.state, TaskState::kDone) << next.reason;
  EXPECT_EQ(pool.agent().pool_status().at(0).restarts, 0);
}

}  // namespace
}  // namespace deeprc::train
