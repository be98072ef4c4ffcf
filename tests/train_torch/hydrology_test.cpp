// The hydrology model (LibTorch, one process) on the shipped CAMELS basins and on random data.
#include "deeprc/train/hydrology.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deeprc/table/temporal.h"
#include "testing/assertions.h"

namespace deeprc::train {
namespace {

const std::string kShipped = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/hydrology";

// A random basin of 2000-2002 with `features` forcings; every `missing_every`-th streamflow day
// missing (0: none).
CamelsBasin RandomBasin(std::mt19937_64& random, int features, int missing_every) {
  CamelsBasin basin;
  basin.id = "random";
  basin.area_m2 = 1e8;
  const int32_t first = static_cast<int32_t>(temporal::DaysFromCivil(2000, 1, 1));
  std::normal_distribution<double> normal(0, 1);
  basin.forcings.assign(features, {});
  for (int f = 0; f < features; ++f) basin.forcing_names.push_back(fmt::format("f{}", f));
  for (int t = 0; t < 366 + 365 + 365; ++t) {
    basin.days.push_back(first + t);
    for (int f = 0; f < features; ++f) basin.forcings[f].push_back(normal(random));
    const bool missing = missing_every > 0 && t % missing_every == 0;
    basin.streamflow.push_back(missing ? NAN : std::exp(normal(random)));
  }
  return basin;
}

TEST(HydrologyTest, OutputShapeAndParameterCount) {
  std::mt19937_64 random(1);
  for (int features : {1, 3, 7}) {
    const CamelsBasin basin = RandomBasin(random, features, 0);
    HydroDataOptions options;
    options.sequence_length = 5 + static_cast<int64_t>(random() % 20);
    ASSERT_OK_AND_ASSIGN(HydroDataset data, HydroDataset::Make(basin, options));
    const int64_t hidden = 8 + static_cast<int64_t>(random() % 16);
    ASSERT_OK_AND_ASSIGN(auto model,
                         HydroModel::Make(features, {{"hidden", std::to_string(hidden)}}));
    // Dense(features -> h), LSTM(h -> h) twice (4 gates: input and recurrent weights, two
    // biases), Dense(h -> h), Dense(h -> 1).
    const int64_t lstm_layer = 4 * hidden * (hidden + hidden) + 2 * 4 * hidden;
    EXPECT_EQ(model->ParameterCount(), (features * hidden + hidden) + 2 * lstm_layer +
                                           (hidden * hidden + hidden) + (hidden + 1));
    const std::vector<int64_t> samples(data.test().begin(), data.test().begin() + 37);
    ASSERT_OK_AND_ASSIGN(auto predicted, model->Predict(data, samples));
    ASSERT_EQ(predicted.size(), samples.size());
    for (double value : predicted) EXPECT_TRUE(std::isfinite(value));
  }
  // The default is the 320-wide model.
  ASSERT_OK_AND_ASSIGN(auto full, HydroModel::Make(7, {}));
  EXPECT_EQ(full->ParameterCount(),
            (7 * 320 + 320) + 2 * (4 * 320 * 640 + 8 * 320) + (320 * 320 + 320) + 321);
  auto bad = HydroModel::Make(7, {{"hiden", "3"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("hiden"), std::string::npos);
}

TEST(HydrologyTest, MaskedStepsAddNoGradient) {
  std::mt19937_64 random(2);
  const CamelsBasin basin = RandomBasin(random, 4, 3);  // days 0, 3, 6, ... missing
  ASSERT_OK_AND_ASSIGN(HydroDataset data, HydroDataset::Make(basin, {}));
  for (const char* loss : {"MSE", "MAE", "Huber"}) {
    ASSERT_OK_AND_ASSIGN(auto model,
                         HydroModel::Make(4, {{"hidden", "16"}, {"loss", loss}}, random()));
    std::vector<int64_t> observed, masked;
    for (int64_t day : data.training()) {
      (std::isnan(data.Observed(day)) ? masked : observed).push_back(day);
    }
    ASSERT_GT(masked.size(), 10u);
    // A batch of masked steps only: zero loss, zero gradient.
    const std::vector<int64_t> only_masked(masked.begin(), masked.begin() + 8);
    ASSERT_OK_AND_ASSIGN(auto none, model->LossGradient(data, only_masked));
    EXPECT_EQ(none.first, 0.0);
    for (float g : none.second) ASSERT_EQ(g, 0.0f);
    // Observed steps with masked ones mixed in give the gradient of the observed steps alone.
    std::vector<int64_t> some(observed.begin(), observed.begin() + 6);
    ASSERT_OK_AND_ASSIGN(auto alone, model->LossGradient(data, some));
    std::vector<int64_t> mixed = some;
    mixed.insert(mixed.begin() + 2, masked.begin(), masked.begin() + 5);
    ASSERT_OK_AND_ASSIGN(auto with_masked, model->LossGradient(data, mixed));
    EXPECT_NEAR(with_masked.first, alone.first, 1e-6 * std::max(1.0, alone.first));
    ASSERT_EQ(with_masked.second.size(), alone.second.size());
    double largest = 0;
    for (size_t i = 0; i < alone.second.size(); ++i) {
      largest = std::max(largest, std::abs(static_cast<double>(alone.second[i])));
      ASSERT_NEAR(with_masked.second[i], alone.second[i], 1e-5 * (1 + std::abs(alone.second[i])))
          << loss << " parameter " << i;
    }
    EXPECT_GT(largest, 0.0) << "the observed steps must have a gradient";
  }
}

TEST(HydrologyTest, CheckpointsRestoreTheSameModel) {
  std::mt19937_64 random(4);
  const CamelsBasin basin = RandomBasin(random, 3, 5);
  ASSERT_OK_AND_ASSIGN(HydroDataset data, HydroDataset::Make(basin, {}));
  const std::map<std::string, std::string> settings = {{"hidden", "12"}, {"dropout", "0.25"}};
  ASSERT_OK_AND_ASSIGN(auto model, HydroModel::Make(3, settings, random()));
  ASSERT_OK_AND_ASSIGN(auto other, HydroModel::Make(3, settings, random()));
  const auto path = std::filesystem::temp_directory_path() /
                    ("hydrology_test_" + std::to_string(::getpid()) + ".pt");
  ASSERT_OK(model->Save(path.string()));
  ASSERT_OK_AND_ASSIGN(auto restored, HydroModel::Restore(path.string()));
  EXPECT_EQ(restored->FlatParameters(), model->FlatParameters());
  EXPECT_NE(other->FlatParameters(), model->FlatParameters());
  ASSERT_OK_AND_ASSIGN(auto a, model->Predict(data, data.test()));
  ASSERT_OK_AND_ASSIGN(auto b, restored->Predict(data, data.test()));
  EXPECT_EQ(a, b);
  std::filesystem::remove(path);
  auto missing = HydroModel::Restore(path.string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(path.string()), std::string::npos);
}

TEST(HydrologyTest, ShortRunImprovesNseOnOneBasin) {
  ASSERT_OK_AND_ASSIGN(CamelsBasin basin, ReadCamelsBasin(kShipped, "01547700"));
  HydroDataOptions options;
  options.train_first_year = 2000;
  options.train_last_year = 2001;
  options.test_year = 2002;
  ASSERT_OK_AND_ASSIGN(HydroDataset data, HydroDataset::Make(basin, options));
  // A narrow model and few steps keep this in seconds; the architecture is the issue's.
  ASSERT_OK_AND_ASSIGN(auto model, HydroModel::Make(data.features(), {{"hidden", "32"},
                                                                      {"epochs", "6"},
                                                                      {"batch_size", "64"},
                                                                      {"learning_rate", "5e-3"},
                                                                      {"threads", "1"}}));
  ASSERT_OK_AND_ASSIGN(HydroScore before, EvaluateHydro(*model, data, data.test()));
  ASSERT_OK_AND_ASSIGN(TrainReport report, model->Fit(data));
  ASSERT_OK_AND_ASSIGN(HydroScore after, EvaluateHydro(*model, data, data.test()));
  EXPECT_EQ(after.samples, 365);
  EXPECT_EQ(report.steps, 6 * ((static_cast<int64_t>(data.training().size()) + 63) / 64));
  // The mean of the first and last tenth of the steps' losses: training lowered it.
  const size_t tenth = report.losses.size() / 10;
  double first = 0, last = 0;
  for (size_t i = 0; i < tenth; ++i) {
    first += report.losses[i];
    last += report.losses[report.losses.size() - 1 - i];
  }
  EXPECT_LT(last, first);
  std::printf("NSE on 2002 before training %.3f, after %.3f\n", before.nse, after.nse);
  EXPECT_GT(after.nse, before.nse) << "before " << before.nse << ", after " << after.nse;
  EXPECT_GT(after.nse, 0.0) << "a trained model beats the mean on the held-out year";
}

}  // namespace
}  // namespace deeprc::train
