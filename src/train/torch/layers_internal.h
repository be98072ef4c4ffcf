#pragma once

// Layers shared by the attention models (transformer_models.cpp, decomposition_models.cpp).

#include <cmath>
#include <string>

#include "train/torch/model_internal.h"

namespace deeprc::train::internal {

// [length, model_size]: sin on even columns, cos on odd ones (Vaswani et al.).
inline torch::Tensor SinusoidalPositions(int64_t length, int64_t model_size) {
  torch::Tensor position = torch::arange(length, torch::kFloat32).unsqueeze(1);
  torch::Tensor divisor = torch::exp(torch::arange(0, model_size, 2, torch::kFloat32) *
                                     (-std::log(10000.0) / static_cast<double>(model_size)));
  torch::Tensor angles = position * divisor;  // [length, ceil(model_size / 2)]
  torch::Tensor table = torch::stack({torch::sin(angles), torch::cos(angles)}, 2)
                            .reshape({length, -1});
  return table.slice(1, 0, model_size).contiguous();
}

// Values [B, T, features] embedded by a circular Conv1d(kernel 3, no bias), plus sinusoidal
// positions when asked (Informer's DataEmbedding; Autoformer's has no positions), then dropout.
class ValueEmbedding : public torch::nn::Module {
 public:
  ValueEmbedding(int64_t features, int64_t model_size, int64_t max_length, double dropout,
                 bool positions) {
    conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(features,
                                                                              model_size, 3)
                                                          .padding(1)
                                                          .padding_mode(torch::kCircular)
                                                          .bias(false)));
    if (positions) {
      positions_ = register_buffer("positions", SinusoidalPositions(max_length, model_size));
    }
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
  }
  torch::Tensor Forward(const torch::Tensor& x) {
    torch::Tensor values = conv_->forward(x.permute({0, 2, 1})).permute({0, 2, 1});
    if (positions_.defined()) values = values + positions_.slice(0, 0, x.size(1));
    return dropout_->forward(values);
  }

 private:
  torch::nn::Conv1d conv_{nullptr};
  torch::Tensor positions_;
  torch::nn::Dropout dropout_{nullptr};
};

// The feed-forward block as 1x1 convolutions with GELU: [B, T, model] -> [B, T, model].
// Informer's layers have biases, Autoformer's do not.
class ConvFeedForward : public torch::nn::Module {
 public:
  ConvFeedForward(int64_t model_size, int64_t hidden, double dropout, bool bias) {
    up_ = register_module(
        "up", torch::nn::Conv1d(torch::nn::Conv1dOptions(model_size, hidden, 1).bias(bias)));
    down_ = register_module(
        "down", torch::nn::Conv1d(torch::nn::Conv1dOptions(hidden, model_size, 1).bias(bias)));
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
  }
  torch::Tensor Forward(const torch::Tensor& x) {
    torch::Tensor y = dropout_->forward(torch::gelu(up_->forward(x.transpose(1, 2))));
    return dropout_->forward(down_->forward(y).transpose(1, 2));
  }

 private:
  torch::nn::Conv1d up_{nullptr}, down_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};

inline ModelDefaults MakeDefaults(ScalerType scaler, int64_t batch, double learning_rate,
                                  int64_t steps, std::string loss = "MAE") {
  ModelDefaults defaults;
  defaults.scaler = scaler;
  defaults.windows_batch_size = batch;
  defaults.learning_rate = learning_rate;
  defaults.max_steps = steps;
  defaults.loss = std::move(loss);
  return defaults;
}

}  // namespace deeprc::train::internal
