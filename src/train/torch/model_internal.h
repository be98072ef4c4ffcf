#pragma once

// The model zoo's internal interface (LibTorch): every forecasting model maps a batch of scaled
// input windows to [batch, horizon, outputs] (outputs = 1 for point losses, 2 for the Normal
// distribution's loc and pre-softplus scale). Only src/train/torch/*.cpp include this header:
// each file that includes <torch/torch.h> costs ~20 s and 1.3 GB to compile.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "deeprc/core/result.h"
#include "deeprc/train/windows.h"

namespace deeprc::train::internal {

// `--set key=value` settings of one model or trainer, read by name with a default. Keys nobody
// asked for and values that do not parse are reported by Check, naming the key.
class Settings {
 public:
  explicit Settings(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  int64_t Int(const std::string& key, int64_t fallback);
  double Real(const std::string& key, double fallback);
  std::string Text(const std::string& key, const std::string& fallback);
  // Comma-separated lists: "1,1,1".
  std::vector<int64_t> Ints(const std::string& key, const std::vector<int64_t>& fallback);
  std::vector<std::string> Texts(const std::string& key, const std::vector<std::string>& fallback);

  // The first bad value, or a key that no Int/Real/... call asked for (a misspelling).
  Status Check(const std::string& owner) const;

 private:
  const std::string* Find(const std::string& key);
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
  Status error_;
};

struct ModelInput {
  torch::Tensor x;            // [B, L] scaled target history
  torch::Tensor x_mask;       // [B, L] 1 where observed
  torch::Tensor x_exogenous;  // [B, L, E] historic exogenous values (E may be 0)
  torch::Tensor x_future;     // [B, L + h, F] future exogenous values over input and horizon
                              // (F may be 0; undefined in tests of models without them)
  torch::Tensor y;            // [B, h] scaled targets, set only for training steps (teacher
                              // forcing in DeepAR); undefined at inference
};

class ForecastModule : public torch::nn::Module {
 public:
  // [B, horizon, outputs]
  virtual torch::Tensor Forward(const ModelInput& input) = 0;
};

struct ModelShape {
  int64_t input_size = 0;
  int64_t horizon = 0;
  int64_t exogenous = 0;  // historical exogenous columns
  int64_t outputs = 1;
  int64_t future = 0;     // future exogenous columns
};

// Trainer defaults a model brings (NeuralForecast's per-model defaults).
struct ModelDefaults {
  ScalerType scaler = ScalerType::kIdentity;
  int64_t windows_batch_size = 1024;
  double learning_rate = 1e-3;
  int64_t max_steps = 1000;
  std::string loss = "MAE";
};

// The attention and sampling models (transformer_models.cpp): PatchTST, VanillaTransformer,
// DeepAR. Null when `upper` (the upper-cased name) is none of them.
const ModelDefaults* TransformerDefaults(const std::string& upper);
Result<std::shared_ptr<ForecastModule>> MakeTransformerModel(const std::string& upper,
                                                             const ModelShape& shape,
                                                             Settings* settings);
// Autoformer, FEDformer, TimesNet (decomposition_models.cpp), the same way.
const ModelDefaults* DecompositionDefaults(const std::string& upper);
Result<std::shared_ptr<ForecastModule>> MakeDecompositionModel(const std::string& upper,
                                                               const ModelShape& shape,
                                                               Settings* settings);
// Time-feature embedding of the future exogenous columns (NeuralForecast's
// TimeFeatureEmbedding: Linear(F, model_size) without bias), added to the value embedding of
// the attention models' DataEmbedding. Null when F = 0.
inline torch::nn::Linear MakeTimeFeatureEmbedding(int64_t future, int64_t model_size) {
  if (future == 0) return torch::nn::Linear(nullptr);
  return torch::nn::Linear(torch::nn::LinearOptions(future, model_size).bias(false));
}

// The activation layers by NeuralForecast's names (ReLU, GELU, ...), appended to `layers`.
Status AddActivation(torch::nn::Sequential& layers, const std::string& name);

// The hydrology model (models.cpp; see deeprc/train/hydrology.h): Dense(hidden, selu) on each
// day -> two stacked LSTM(hidden) -> Dense(hidden, selu) on the last day's state -> Dense(outputs).
// x [B, days, features] -> [B, outputs].
class HydroModule : public torch::nn::Module {
 public:
  HydroModule(int64_t features, int64_t hidden, int64_t outputs, double dropout);
  torch::Tensor Forward(const torch::Tensor& x);

 private:
  torch::nn::Linear input_{nullptr}, head_{nullptr}, output_{nullptr};
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};

// The models by name (case-insensitive): MLP, NBEATS, NHITS, LSTM, GRU, RNN, TCN, and those of
// TransformerDefaults.
std::vector<std::string> ModelNames();
Result<ModelDefaults> DefaultsOf(const std::string& name);
// Reads the model's own settings from `settings` (unknown ones are left for Check). A model
// given a kind of exogenous column it does not take is an error naming the kinds it takes.
Result<std::shared_ptr<ForecastModule>> MakeModel(const std::string& name, const ModelShape& shape,
                                                  Settings* settings);

}  // namespace deeprc::train::internal
