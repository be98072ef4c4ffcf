// The model zoo and the trainer (LibTorch, one process).
#include <cmath>
#include <filesystem>
#include <numbers>
#include <numeric>
#include <random>
#include <set>

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/StringUtil.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/library.h>

#include "deeprc/table/builder.h"
#include "deeprc/train/forecaster.h"
#include "deeprc/train/hydrology.h"
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

// Device checks on a CPU-only machine: a model's parameters, buffers and inputs are moved to
// LibTorch's meta device (shapes, no values), and a dispatcher mode sees every operator call of
// its forward. The mode demands that all tensor arguments of a call be on one device, as CUDA
// does: a tensor the forward makes on the CPU by default (zeros, ones, arange, masks, index
// tensors, FFT buffers, hidden states, noise) meets meta tensors there and fails with "Expected
// all tensors to be on the same device". Meta's own kernels cannot do this in LibTorch 1.13:
// cat, matmul, masked_fill, index_select and gather accept a CPU argument, and relu,
// convolution, var and repeat_interleave have no C++ meta kernel at all. So the mode runs each
// meta call on CPU stand-ins (of the same shapes and types; values do not matter for where
// tensors live) and hands back meta results: every model runs, its shapes are real, and
// only the placement is checked. An explicit `.to(kCPU)` (a host read, as TimesNet's periods)
// stays legal and gives a CPU tensor.

bool IsMeta(const c10::IValue& value) {
  return value.isTensor() && value.toTensor().defined() && value.toTensor().is_meta();
}

// Integer stand-ins hold this value: a valid index into every dimension the models index, and
// one that sends data-dependent shapes down their less common branch (TimesNet: period
// length / 3, so the series is padded to whole periods).
constexpr int64_t kIntegerStandIn = 3;

// A meta tensor as a CPU stand-in (zeros, or kIntegerStandIn for integers); anything else as it
// is. Lists element by element.
c10::IValue OnCpu(const c10::IValue& value) {
  if (IsMeta(value)) {
    const torch::Tensor& tensor = value.toTensor();
    const auto options = tensor.options().device(torch::kCPU);
    if (c10::isIntegralType(tensor.scalar_type(), /*includeBool=*/false)) {
      return torch::full(tensor.sizes(), kIntegerStandIn, options);
    }
    return torch::zeros(tensor.sizes(), options);
  }
  if (value.isDevice() && value.toDevice().is_meta())
    return c10::IValue(torch::Device(torch::kCPU));
  if (value.isList()) {
    c10::List<c10::IValue> list = value.toList().copy();
    for (size_t j = 0; j < list.size(); ++j) list.set(j, OnCpu(list.get(j)));
    return list;
  }
  return value;
}

void CheckOneDevice(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  c10::impl::ExcludeDispatchKeyGuard inner(c10::DispatchKey::TESTING_ONLY_GenericMode);
  const c10::FunctionSchema& schema = op.schema();
  const size_t count = schema.arguments().size();
  const size_t first = stack->size() - count;
  std::set<std::string> devices;
  bool meta = false;
  std::optional<torch::Device> asked;  // a device argument (factories, to)
  auto note = [&](const c10::IValue& value) {
    if (value.isTensor() && value.toTensor().defined()) {
      devices.insert(value.toTensor().device().str());
      meta = meta || value.toTensor().is_meta();
    }
  };
  for (size_t i = first; i < stack->size(); ++i) {
    const c10::IValue& value = (*stack)[i];
    if (value.isList()) {
      const c10::List<c10::IValue> list = value.toList();
      for (size_t j = 0; j < list.size(); ++j) note(list.get(j));
    } else if (value.isDevice()) {
      asked = value.toDevice();
    } else {
      note(value);
    }
  }
  TORCH_CHECK(devices.size() <= 1, "Expected all tensors to be on the same device, but ",
              schema.name(), " got tensors on ", c10::Join(", ", devices));
  const bool to_meta = asked ? asked->is_meta() : meta;
  if (!meta && !to_meta) {
    op.callBoxed(stack);
    return;
  }
  const std::vector<c10::IValue> given(stack->begin() + static_cast<std::ptrdiff_t>(first),
                                       stack->end());
  for (size_t i = first; i < stack->size(); ++i) (*stack)[i] = OnCpu((*stack)[i]);
  op.callBoxed(stack);
  // Results back on meta; what an in-place call returns is its own (meta) argument.
  const size_t results = schema.returns().size();
  for (size_t k = 0; k < results; ++k) {
    c10::IValue& result = (*stack)[stack->size() - results + k];
    const c10::AliasInfo* alias = schema.returns()[k].alias_info();
    if (alias != nullptr && alias->isWrite()) {
      for (size_t j = 0; j < count; ++j) {
        const c10::AliasInfo* argument = schema.arguments()[j].alias_info();
        if (argument != nullptr && argument->isWrite()) result = given[j];
      }
    } else if (to_meta && result.isTensor() && result.toTensor().defined()) {
      result = result.toTensor().to(torch::kMeta);
    } else if (to_meta && result.isTensorList()) {
      std::vector<torch::Tensor> tensors = result.toTensorVector();
      for (auto& tensor : tensors) tensor = tensor.to(torch::kMeta);
      result = c10::IValue(tensors);
    }
  }
}

TORCH_LIBRARY_IMPL(_, TESTING_ONLY_GenericMode, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&CheckOneDevice>());
}

class OneDeviceMode {
 private:
  c10::impl::IncludeDispatchKeyGuard include_{c10::DispatchKey::TESTING_ONLY_GenericMode};
};

// Module::to(kMeta) refuses (set_data between CPU and meta tensors is not allowed in 1.13), so
// the test moves every parameter and buffer in place the way set_data does inside, without its
// check: every handle to them (a layer's `weight`, the module's lists, LSTM's flat weights) sees
// the meta tensor.
void MoveToMeta(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto tensors : {module.parameters(), module.buffers()}) {
    for (auto& tensor : tensors) {
      tensor.unsafeGetTensorImpl()->shallow_copy_from(tensor.to(torch::kMeta).getIntrusivePtr());
    }
  }
}

std::string ErrorOf(const std::function<void()>& run) {
  try {
    run();
    return "";
  } catch (const c10::Error& error) {
    return error.what_without_backtrace();
  }
}

TEST(TrainerTest, TheDeviceCheckCatchesAHostTensor) {
  const auto meta = torch::TensorOptions().device(torch::kMeta);
  torch::Tensor on_meta = torch::empty({2, 3}, meta);
  const std::vector<std::pair<std::string, std::function<void()>>> mixes = {
      {"cat",
       [&] {
         torch::cat({on_meta, torch::zeros({2, 3})}, 0);
       }},
      {"matmul",
       [&] {
         torch::matmul(on_meta, torch::zeros({3, 2}));
       }},
      {"index_select",
       [&] {
         on_meta.index_select(1, torch::tensor({0, 2}));
       }},
      {"masked_fill",
       [&] {
         on_meta.masked_fill(torch::ones({2, 3}, torch::kBool), 0);
       }},
      {"add",
       [&] {
         (void)(on_meta + torch::zeros({2, 3}));
       }},
  };
  for (const auto& [name, mix] : mixes) {
    OneDeviceMode mode;
    const std::string error = ErrorOf(mix);
    EXPECT_NE(error.find("Expected all tensors to be on the same device"), std::string::npos)
        << name << ": " << error;
  }
  OneDeviceMode mode;
  EXPECT_EQ(ErrorOf([&] { torch::cat({on_meta, torch::zeros({2, 3}, meta)}, 0); }), "");
  // Calls without a meta kernel of their own run, with meta results of the right shape; an
  // explicit host read gives a CPU tensor; in-place calls return their own argument.
  torch::Tensor relu = torch::relu(on_meta.reshape({3, 2}));
  EXPECT_TRUE(relu.is_meta());
  EXPECT_EQ(relu.sizes().vec(), (std::vector<int64_t>{3, 2}));
  EXPECT_TRUE(on_meta.to(torch::kCPU).is_cpu());
  torch::Tensor filled = on_meta.fill_(1);
  EXPECT_TRUE(filled.is_same(on_meta));
  EXPECT_TRUE(torch::zeros({4}, on_meta.options()).is_meta());
}

TEST_P(ModelTest, ForwardStaysOnTheInputsDevice) {
  const bool deepar = GetParam() == "DeepAR";
  // Two historical and two future exogenous columns where the model takes that kind (so that
  // the exogenous paths of its forward are checked too), none where it refuses them.
  const auto takes = [&](internal::ModelShape shape) {
    internal::Settings settings(SmallSettings(GetParam()));
    return internal::MakeModel(GetParam(), shape, &settings).ok();
  };
  internal::ModelShape shape{.input_size = 24, .horizon = 5, .outputs = 2};
  shape.exogenous = takes({.input_size = 24, .horizon = 5, .exogenous = 2, .outputs = 2}) ? 2 : 0;
  shape.future = takes({.input_size = 24, .horizon = 5, .outputs = 2, .future = 2}) ? 2 : 0;
  internal::Settings settings(SmallSettings(GetParam()));
  ASSERT_OK_AND_ASSIGN(auto model, internal::MakeModel(GetParam(), shape, &settings));
  MoveToMeta(*model);
  for (const auto& parameter : model->parameters()) ASSERT_TRUE(parameter.is_meta());
  for (const auto& buffer : model->buffers()) ASSERT_TRUE(buffer.is_meta());
  const int64_t batch = 3;
  const auto meta = torch::TensorOptions().device(torch::kMeta);
  internal::ModelInput input;
  input.x = torch::empty({batch, shape.input_size}, meta);
  input.x_mask = torch::empty({batch, shape.input_size}, meta);
  input.x_exogenous = torch::empty({batch, shape.input_size, shape.exogenous}, meta);
  input.x_future = torch::empty({batch, shape.input_size + shape.horizon, shape.future}, meta);
  // y: teacher forcing (DeepAR), undefined for the others.
  if (deepar) input.y = torch::empty({batch, shape.horizon}, meta);
  for (bool training : {true, false}) {
    model->train(training);
    if (deepar && !training) input.y = torch::Tensor();  // Monte-Carlo paths
    torch::Tensor output;
    const std::string error = ErrorOf([&] {
      OneDeviceMode mode;
      output = model->Forward(input);
    });
    ASSERT_EQ(error, "") << GetParam() << " (historical " << shape.exogenous << ", future "
                         << shape.future << ")";
    EXPECT_TRUE(output.is_meta()) << GetParam();
    EXPECT_EQ(output.sizes().vec(), (std::vector<int64_t>{batch, shape.horizon, 2}));
  }
}

TEST(TrainerTest, HydroModelStaysOnTheInputsDevice) {
  internal::HydroModule model(5, 16, 1, 0.0);
  MoveToMeta(model);
  OneDeviceMode mode;
  torch::Tensor output =
      model.Forward(torch::empty({4, 21, 5}, torch::TensorOptions().device(torch::kMeta)));
  EXPECT_TRUE(output.is_meta());
  EXPECT_EQ(output.sizes().vec(), (std::vector<int64_t>{4, 1}));
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

TEST(TrainerTest, DeviceSetting) {
  const SeriesSet series = OneSeries(50, 6);
  // cpu is the default: the same training, step for step.
  TrainOptions on_cpu = SmallNhits();
  on_cpu.settings["device"] = "cpu";
  ASSERT_OK_AND_ASSIGN(auto a, Forecaster::Make(SmallNhits()));
  ASSERT_OK_AND_ASSIGN(auto b, Forecaster::Make(on_cpu));
  EXPECT_EQ(a->device(), "cpu");
  EXPECT_EQ(b->device(), "cpu");
  ASSERT_OK_AND_ASSIGN(TrainReport ra, a->Fit(series));
  ASSERT_OK_AND_ASSIGN(TrainReport rb, b->Fit(series));
  EXPECT_EQ(ra.losses, rb.losses);
  EXPECT_EQ(a->FlatParameters(), b->FlatParameters());
  // The device is where the weights were trained, not part of them: a checkpoint keeps none.
  const std::string path = ::testing::TempDir() + "/device_checkpoint.pt";
  ASSERT_OK(b->Save(path));
  ASSERT_OK_AND_ASSIGN(auto restored, Forecaster::Restore(path));
  EXPECT_EQ(restored->options().settings.count("device"), 0u);
  std::filesystem::remove(path);

  // This LibTorch is CPU-only: CUDA fails at Make, before any model is built, saying why.
  ASSERT_TRUE(!torch::cuda::is_available()) << "this test expects a machine without CUDA";
  for (const std::string device : {"cuda", "cuda:0", "cuda:3"}) {
    TrainOptions options = SmallNhits();
    options.settings["device"] = device;
    auto made = Forecaster::Make(options);
    ASSERT_FALSE(made.ok()) << device;
    EXPECT_EQ(made.status().code(), StatusCode::kInvalid);
    const std::string& message = made.status().message();
    EXPECT_NE(message.find("device " + device + " requested"), std::string::npos) << message;
    EXPECT_TRUE(message.find("no CUDA support") != std::string::npos ||
                message.find("DEEPRC_WITH_CUDA") != std::string::npos)
        << message;
    EXPECT_EQ(CheckDevice(device).message(), message);
  }
  for (const std::string device : {"gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cpu:0", ""}) {
    const Status status = CheckDevice(device);
    ASSERT_FALSE(status.ok()) << device;
    EXPECT_NE(status.message().find("setting device '" + device + "'"), std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("expected cpu, cuda or cuda:N"), std::string::npos);
  }
  EXPECT_OK(CheckDevice("cpu"));
  EXPECT_OK(CheckBackend("communicator"));
  TrainOptions nccl = SmallNhits();
  nccl.settings["backend"] = "nccl";
  auto made = Forecaster::Make(nccl);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("setting backend nccl: deeprc has no NCCL backend"),
            std::string::npos)
      << made.status().message();
  EXPECT_FALSE(CheckBackend("mpi").ok());
  auto hydro = HydroModel::Make(3, {{"device", "cuda"}, {"hidden", "8"}});
  ASSERT_FALSE(hydro.ok());
  EXPECT_NE(hydro.status().message().find("device cuda requested"), std::string::npos);
}

TEST(TrainerTest, CancelStopsBetweenSteps) {
  const SeriesSet series = OneSeries(50, 7);
  TrainOptions options = SmallNhits();
  options.max_steps = 1000;
  ASSERT_OK_AND_ASSIGN(auto forecaster, Forecaster::Make(options));
  std::mt19937_64 random(7);
  const int stop_after = 3 + static_cast<int>(random() % 20);
  int checks = 0;
  auto result = forecaster->Fit(series, nullptr, [&] { return ++checks > stop_after; });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCancelled);
  EXPECT_NE(result.status().message().find("canceled at step " + std::to_string(stop_after)),
            std::string::npos)
      << result.status().message();
  EXPECT_EQ(checks, stop_after + 1);  // one look per step, none after stopping
  // A check that never fires changes nothing.
  ASSERT_OK_AND_ASSIGN(auto again, Forecaster::Make(SmallNhits()));
  ASSERT_OK_AND_ASSIGN(auto plain, Forecaster::Make(SmallNhits()));
  ASSERT_OK_AND_ASSIGN(TrainReport with_check, again->Fit(series, nullptr, [] { return false; }));
  ASSERT_OK_AND_ASSIGN(TrainReport without, plain->Fit(series));
  EXPECT_EQ(with_check.losses, without.losses);
}

}  // namespace
}  // namespace deeprc::train
