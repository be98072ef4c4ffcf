// The model zoo and the trainer (LibTorch, one process).
#include <cmath>
#include <filesystem>
#include <numbers>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "deeprc/table/builder.h"
#include "deeprc/train/forecaster.h"
#include "testing/assertions.h"
#include "train/torch/model_internal.h"

namespace deeprc::train {
namespace {

// Small widths keep each model's test in the seconds; the architecture is the same.
std::map<std::string, std::string> SmallSettings(const std::string& model) {
  if (model == "MLP") return {{"hidden_size", "64"}};
  if (model == "NBEATS" || model == "NHITS") return {{"mlp_units", "64,64"}};
  if (model == "PatchTST") {
    return {{"hidden_size", "16"}, {"n_heads", "4"}, {"linear_hidden_size", "32"}};
  }
  if (model == "VanillaTransformer") {
    return {{"hidden_size", "32"}, {"n_head", "2"}, {"conv_hidden_size", "32"}, {"dropout", "0"}};
  }
  if (model == "Autoformer" || model == "FEDformer") {
    return {{"hidden_size", "32"}, {"n_head", "2"}, {"conv_hidden_size", "32"}, {"dropout", "0"},
            {"moving_avg_window", "5"}};
  }
  if (model == "TimesNet") {
    return {{"hidden_size", "8"}, {"conv_hidden_size", "8"}, {"num_kernels", "3"}, {"top_k", "2"}};
  }
  if (model == "DeepAR") return {{"lstm_hidden_size", "16"}, {"trajectory_samples", "10"}};
  if (model == "TCN") {
    return {{"encoder_hidden_size", "32"}, {"decoder_hidden_size", "32"}, {"dilations", "1,2,4,8"}};
  }
  return {{"encoder_hidden_size", "32"}, {"decoder_hidden_size", "32"}};
}

// One noisy seasonal series with a level far from zero.
SeriesSet OneSeries(int length, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> noise(0, 0.05);
  SeriesSet series;
  series.ids = {"only"};
  for (int t = 0; t < length; ++t) {
    series.y.push_back(20 + 3 * std::sin(2 * std::numbers::pi * t / 12.0) + 0.05 * t +
                       noise(random));
  }
  series.offsets = {0, length};
  std::vector<std::optional<int64_t>> ds;
  for (int t = 0; t < length; ++t) ds.emplace_back(t + 1);
  series.ds = *MakeColumn<int64_t>(DataType::Int64(), ds);
  return series;
}

class ModelTest : public ::testing::TestWithParam<std::string> {};

// The kinds of exogenous columns each model takes (NeuralForecast's EXOGENOUS_HIST / _FUTR).
bool TakesHistorical(const std::string& model) {
  return model == "MLP" || model == "NHITS" || model == "LSTM" || model == "GRU" ||
         model == "RNN" || model == "TCN";
}
bool TakesFuture(const std::string& model) { return model != "NBEATS" && model != "PatchTST"; }

TEST_P(ModelTest, OutputShape) {
  std::mt19937_64 random(11);
  const bool deepar = GetParam() == "DeepAR";
  for (int64_t outputs : {1, 2}) {
    for (int64_t exogenous : {0, 2}) {
      for (int64_t future : {0, 3}) {
        if (deepar && outputs == 1) continue;  // Normal only
        const internal::ModelShape shape{.input_size = 13 + static_cast<int64_t>(random() % 10),
                                         .horizon = 1 + static_cast<int64_t>(random() % 7),
                                         .exogenous = exogenous,
                                         .outputs = outputs,
                                         .future = future};
        internal::Settings settings(SmallSettings(GetParam()));
        auto made = internal::MakeModel(GetParam(), shape, &settings);
        if ((exogenous > 0 && !TakesHistorical(GetParam())) ||
            (future > 0 && !TakesFuture(GetParam()))) {
          // Refused as NeuralForecast refuses it, naming the model and what it takes.
          ASSERT_FALSE(made.ok()) << GetParam() << " took " << exogenous << " historical and "
                                  << future << " future columns";
          const std::string message = made.status().ToString();
          EXPECT_NE(message.find(GetParam()), std::string::npos) << message;
          EXPECT_NE(message.find(exogenous > 0 && !TakesHistorical(GetParam()) ? "historical"
                                                                                : "future"),
                    std::string::npos)
              << message;
          EXPECT_NE(message.find("it takes"), std::string::npos) << message;
          continue;
        }
        ASSERT_OK_AND_ASSIGN(auto model, std::move(made));
        ASSERT_OK(settings.Check(GetParam()));
        const int64_t batch = 5;
        internal::ModelInput input{torch::randn({batch, shape.input_size}),
                                   torch::ones({batch, shape.input_size}),
                                   torch::randn({batch, shape.input_size, exogenous}),
                                   torch::randn({batch, shape.input_size + shape.horizon, future})};
        if (deepar) input.y = torch::randn({batch, shape.horizon});  // teacher forcing
        torch::Tensor output = model->Forward(input);
        EXPECT_EQ(output.sizes().vec(),
                  (std::vector<int64_t>{batch, shape.horizon, shape.outputs}))
            << GetParam() << " L=" << shape.input_size << " h=" << shape.horizon
            << " future=" << future;
        EXPECT_TRUE(torch::isfinite(output).all().item<bool>());
        if (deepar) {  // sampled paths at inference
          input.y = torch::Tensor();
          torch::NoGradGuard no_grad;
          EXPECT_EQ(model->Forward(input).sizes().vec(),
                    (std::vector<int64_t>{batch, shape.horizon, 2}));
        }
      }
    }
  }
}

TEST_P(ModelTest, OverfitsOneShortSeries) {
  const SeriesSet series = OneSeries(72, 5);
  TrainOptions options;
  options.model = GetParam();
  options.horizon = 6;
  options.input_size = 24;
  options.max_steps = 200;
  options.settings = SmallSettings(GetParam());
  options.settings["batch_size"] = "32";
  // The point is whether the model can fit, so no scaler that hides the level.
  options.settings["scaler"] = "identity";
  options.settings["num_lr_decays"] = "-1";
  options.settings["learning_rate"] = "0.001";
  if (GetParam() == "VanillaTransformer" || GetParam() == "Autoformer" ||
      GetParam() == "FEDformer" || GetParam() == "TimesNet") {
    // Their output comes from a LayerNorm through one linear layer, whose bias Adam moves by about
    // the learning rate per step: a level of 20 is out of reach in 200 steps without a scaler.
    options.settings["scaler"] = "standard";
  }
  ASSERT_OK_AND_ASSIGN(auto forecaster, Forecaster::Make(options));
  ASSERT_OK_AND_ASSIGN(TrainReport report, forecaster->Fit(series));
  ASSERT_EQ(report.steps, 200);
  auto mean = [&](size_t begin, size_t end) {
    return std::accumulate(report.losses.begin() + begin, report.losses.begin() + end, 0.0) /
           static_cast<double>(end - begin);
  };
  const double first = report.losses.front();
  const double last = mean(report.losses.size() - 20, report.losses.size());
  if (GetParam() == "DeepAR") {
    // A negative log-likelihood may end below zero, which passes too.
    EXPECT_LT(last, first / 10) << "DeepAR: loss " << first << " -> " << last;
  } else {
    EXPECT_LE(last * 10, first) << GetParam() << ": loss " << first << " -> " << last;
  }
  ASSERT_OK_AND_ASSIGN(Forecast forecast, forecaster->Predict(series));
  EXPECT_EQ(forecast.mean.size(), 6u);
}

// Series whose target is a known function of a random future column x (white noise: the past
// of y says nothing about the next x): y_t = 10 + 3 x_t + small noise.
SeriesSet SeriesDrivenByFuture(int count, int length, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0, 1);
  SeriesSet series;
  series.future_names = {"x"};
  series.future.resize(1);
  std::vector<std::optional<int64_t>> ds;
  for (int s = 0; s < count; ++s) {
    series.ids.push_back("s" + std::to_string(s));
    for (int t = 0; t < length; ++t) {
      const double x = normal(random);
      series.future[0].push_back(x);
      series.y.push_back(10 + 3 * x + 0.05 * normal(random));
      ds.emplace_back(t + 1);
    }
    series.offsets.push_back(static_cast<int64_t>(series.y.size()));
  }
  series.ds = *MakeColumn<int64_t>(DataType::Int64(), ds);
  return series;
}

// The same series without the column.
SeriesSet WithoutFuture(SeriesSet series) {
  series.future_names.clear();
  series.future.clear();
  return series;
}

class FutureExogenousTest : public ::testing::TestWithParam<std::string> {};

// A model given the future column fits the target far better than the same model without it,
// in training and in its forecast of held-out points (whose x comes from the held-out part).
TEST_P(FutureExogenousTest, ForecastsFollowTheFutureColumn) {
  // Six series: enough windows that a model without x cannot memorize the training targets.
  const SeriesSet all = SeriesDrivenByFuture(6, 90, 23);
  ASSERT_OK_AND_ASSIGN(auto split, SplitLast(all, 6));
  const SeriesSet& train = split.first;
  const SeriesSet& test = split.second;
  const bool deepar = GetParam() == "DeepAR";
  TrainOptions options;
  options.model = GetParam();
  options.horizon = 6;
  options.input_size = 24;
  // Short runs: the attention models are slow per step; the MLP-based ones are cheap.
  const bool cheap = GetParam() == "MLP" || GetParam() == "NHITS" || GetParam() == "TCN";
  options.max_steps = cheap ? 100 : deepar ? 150 : 80;
  options.settings = SmallSettings(GetParam());
  options.settings["batch_size"] = "32";
  options.settings["num_lr_decays"] = "-1";
  options.settings["learning_rate"] = deepar ? "0.005" : "0.003";
  options.settings["scaler"] = "standard";
  struct Outcome {
    double loss = 0, mae = 0;
  };
  auto run = [&](bool with_column) -> Outcome {
    const SeriesSet fit = with_column ? train : WithoutFuture(train);
    auto made = Forecaster::Make(options, {}, with_column ? std::vector<std::string>{"x"}
                                                           : std::vector<std::string>{});
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return {};
    auto forecaster = std::move(made).ValueOrDie();
    auto report = forecaster->Fit(fit);
    EXPECT_TRUE(report.ok()) << report.status().ToString();
    if (!report.ok()) return {};
    const auto& losses = report->losses;
    Outcome outcome;
    outcome.loss =
        std::accumulate(losses.end() - 20, losses.end(), 0.0) / 20.0;
    auto forecast = forecaster->Predict(fit, with_column ? &test : nullptr);
    EXPECT_TRUE(forecast.ok()) << forecast.status().ToString();
    if (!forecast.ok()) return outcome;
    EXPECT_EQ(forecast->mean.size(), static_cast<size_t>(6 * 6));
    for (int64_t s = 0; s < 6; ++s) {
      for (int64_t i = 0; i < 6; ++i) {
        outcome.mae += std::abs(forecast->mean[s * 6 + i] - test.values(s)[i]) / 36.0;
      }
    }
    return outcome;
  };
  const Outcome with = run(true), without = run(false);
  if (deepar) {
    // Negative log-likelihoods: knowing x shrinks the Normal's scale (by e^1.5 at least).
    EXPECT_LT(with.loss + 1.5, without.loss)
        << GetParam() << ": loss with x " << with.loss << ", without " << without.loss;
  } else {
    EXPECT_LT(with.loss * 2, without.loss)
        << GetParam() << ": loss with x " << with.loss << ", without " << without.loss;
  }
  EXPECT_LT(with.mae * 2.5, without.mae)
      << GetParam() << ": held-out MAE with x " << with.mae << ", without " << without.mae;

  // Without the future values a forecast is refused, naming the column.
  ASSERT_OK_AND_ASSIGN(auto forecaster, Forecaster::Make(options, {}, {"x"}));
  auto refused = forecaster->Predict(train);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().ToString().find("x"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Future, FutureExogenousTest,
                         ::testing::Values("Autoformer", "FEDformer", "TimesNet", "DeepAR", "LSTM",
                                           "TCN", "NHITS", "MLP", "VanillaTransformer"),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(Zoo, ModelTest,
                         ::testing::Values("MLP", "NBEATS", "NHITS", "LSTM", "GRU", "RNN", "TCN",
                                           "DeepAR", "PatchTST", "VanillaTransformer",
                                           "Autoformer", "FEDformer", "TimesNet"),
                         [](const auto& info) { return info.param; });

TrainOptions SmallNhits() {
  TrainOptions options;
  options.model = "NHITS";
  options.horizon = 4;
  options.input_size = 12;
  options.max_steps = 30;
  options.settings = {{"mlp_units", "32,32"}, {"batch_size", "16"}};
  return options;
}

TEST(TrainerTest, SeededTrainingIsDeterministic) {
  const SeriesSet series = OneSeries(50, 1);
  ASSERT_OK_AND_ASSIGN(auto a, Forecaster::Make(SmallNhits()));
  ASSERT_OK_AND_ASSIGN(auto b, Forecaster::Make(SmallNhits()));
  ASSERT_OK_AND_ASSIGN(TrainReport ra, a->Fit(series));
  ASSERT_OK_AND_ASSIGN(TrainReport rb, b->Fit(series));
  EXPECT_EQ(ra.losses, rb.losses);
  EXPECT_EQ(a->FlatParameters(), b->FlatParameters());
  TrainOptions other = SmallNhits();
  other.seed = 2;
  ASSERT_OK_AND_ASSIGN(auto c, Forecaster::Make(other));
  EXPECT_NE(a->FlatParameters(), c->FlatParameters());
}

TEST(TrainerTest, CheckpointRoundTripAndForecastTable) {
  const SeriesSet series = OneSeries(50, 2);
  ASSERT_OK_AND_ASSIGN(auto trained, Forecaster::Make(SmallNhits()));
  ASSERT_OK(trained->Fit(series).status());
  const std::string path = ::testing::TempDir() + "/nhits_checkpoint.pt";
  ASSERT_OK(trained->Save(path));
  TrainOptions other = SmallNhits();
  other.seed = 9;
  ASSERT_OK_AND_ASSIGN(auto loaded, Forecaster::Make(other));
  ASSERT_OK(loaded->Load(path));
  EXPECT_EQ(trained->FlatParameters(), loaded->FlatParameters());
  ASSERT_OK_AND_ASSIGN(Forecast a, trained->Predict(series));
  ASSERT_OK_AND_ASSIGN(Forecast b, loaded->Predict(series));
  EXPECT_EQ(a.mean, b.mean);
  TrainOptions mlp = SmallNhits();
  mlp.model = "MLP";
  mlp.settings = {{"hidden_size", "8"}};
  ASSERT_OK_AND_ASSIGN(auto wrong, Forecaster::Make(mlp));
  EXPECT_FALSE(wrong->Load(path).ok());
  // Restore builds the model from the checkpoint's own options (model, sizes, settings).
  ASSERT_OK_AND_ASSIGN(auto restored, Forecaster::Restore(path, {{"threads", "1"}}));
  EXPECT_EQ(restored->options().model, trained->options().model);
  EXPECT_EQ(restored->options().horizon, trained->options().horizon);
  EXPECT_EQ(restored->options().input_size, trained->options().input_size);
  EXPECT_EQ(restored->options().settings.at("threads"), "1");
  ASSERT_OK_AND_ASSIGN(Forecast c, restored->Predict(series));
  EXPECT_EQ(a.mean, c.mean);
  std::filesystem::remove(path);
  EXPECT_FALSE(Forecaster::Restore(path).ok());  // gone: the error names the file
  EXPECT_NE(Forecaster::Restore(path).status().message().find(path), std::string::npos);

  ASSERT_OK_AND_ASSIGN(auto split, SplitLast(series, 4));
  ASSERT_OK_AND_ASSIGN(Table table, ForecastTable(split.second, "NHITS", a));
  EXPECT_EQ(table.num_rows(), 4);
  EXPECT_EQ(table.schema().names(),
            (std::vector<std::string>{"unique_id", "ds", "model", "yhat"}));
}

TEST(TrainerTest, NormalLossGivesAnInterval) {
  const SeriesSet series = OneSeries(50, 3);
  TrainOptions options = SmallNhits();
  options.settings["loss"] = "Normal";
  ASSERT_OK_AND_ASSIGN(auto forecaster, Forecaster::Make(options));
  ASSERT_OK(forecaster->Fit(series).status());
  ASSERT_OK_AND_ASSIGN(Forecast forecast, forecaster->Predict(series));
  ASSERT_EQ(forecast.lo.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_LT(forecast.lo[i], forecast.mean[i]);
    EXPECT_GT(forecast.hi[i], forecast.mean[i]);
  }
}

TEST(TrainerTest, EarlyStoppingAndBadSettings) {
  const SeriesSet series = OneSeries(80, 4);
  TrainOptions options = SmallNhits();
  options.max_steps = 400;
  options.settings["val_size"] = "8";
  options.settings["val_check_steps"] = "10";
  options.settings["early_stop_patience_steps"] = "2";
  options.settings["learning_rate"] = "0.05";  // too fast: validation stalls early
  ASSERT_OK_AND_ASSIGN(auto forecaster, Forecaster::Make(options));
  ASSERT_OK_AND_ASSIGN(TrainReport report, forecaster->Fit(series));
  EXPECT_FALSE(report.validation_losses.empty());
  EXPECT_EQ(report.steps, static_cast<int64_t>(report.validation_losses.size()) * 10);
  EXPECT_LT(report.steps, 400);

  TrainOptions bad = SmallNhits();
  bad.settings["hiden_size"] = "3";
  auto made = Forecaster::Make(bad);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("hiden_size"), std::string::npos);
  bad = SmallNhits();
  bad.model = "Prophet";
  EXPECT_FALSE(Forecaster::Make(bad).ok());
  bad = SmallNhits();
  bad.settings["loss"] = "MAPE";
  EXPECT_FALSE(Forecaster::Make(bad).ok());
}

}  // namespace
}  // namespace deeprc::train
