// The forecasting model zoo, after NeuralForecast 1.7.6 / 2.0 (the architectures and their
// defaults; the code is our own). Every model sees the scaled input window and returns
// [batch, horizon, outputs]; the trainer owns scaling, losses and optimization.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>

#include "train/torch/model_internal.h"

namespace deeprc::train::internal {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

// ---------------------------------------------------------------------------------------------
// Settings

const std::string* Settings::Find(const std::string& key) {
  used_.insert(key);
  auto found = values_.find(key);
  return found == values_.end() ? nullptr : &found->second;
}

int64_t Settings::Int(const std::string& key, int64_t fallback) {
  const std::string* text = Find(key);
  if (text == nullptr) return fallback;
  int64_t value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end != text->data() + text->size()) {
    if (error_.ok()) error_ = Status::Invalid("setting {}={}: expected an integer", key, *text);
    return fallback;
  }
  return value;
}

double Settings::Real(const std::string& key, double fallback) {
  const std::string* text = Find(key);
  if (text == nullptr) return fallback;
  char* end = nullptr;
  const double value = std::strtod(text->c_str(), &end);
  if (text->empty() || end != text->c_str() + text->size()) {
    if (error_.ok()) error_ = Status::Invalid("setting {}={}: expected a number", key, *text);
    return fallback;
  }
  return value;
}

std::string Settings::Text(const std::string& key, const std::string& fallback) {
  const std::string* text = Find(key);
  return text == nullptr ? fallback : *text;
}

std::vector<std::string> Settings::Texts(const std::string& key,
                                         const std::vector<std::string>& fallback) {
  const std::string* text = Find(key);
  if (text == nullptr) return fallback;
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t comma = text->find(',', start);
    parts.push_back(text->substr(start, comma == std::string::npos ? comma : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

std::vector<int64_t> Settings::Ints(const std::string& key,
                                    const std::vector<int64_t>& fallback) {
  if (values_.find(key) == values_.end()) {
    used_.insert(key);
    return fallback;
  }
  std::vector<int64_t> numbers;
  for (const auto& part : Texts(key, {})) {
    int64_t value = 0;
    auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (error != std::errc() || end != part.data() + part.size()) {
      if (error_.ok()) {
        error_ = Status::Invalid("setting {}={}: expected integers separated by commas", key,
                                 values_[key]);
      }
      return fallback;
    }
    numbers.push_back(value);
  }
  return numbers;
}

Status Settings::Check(const std::string& owner) const {
  DEEPRC_RETURN_NOT_OK(error_);
  for (const auto& [key, value] : values_) {
    if (used_.count(key) == 0) {
      std::string known;
      for (const auto& name : used_) known += (known.empty() ? "" : ", ") + name;
      return Status::Invalid("unknown setting '{}' for {} (known: {})", key, owner, known);
    }
  }
  return Status::OK();
}

Status AddActivation(nn::Sequential& layers, const std::string& name) {
  if (name == "ReLU") {
    layers->push_back(nn::ReLU());
  } else if (name == "Softplus") {
    layers->push_back(nn::Softplus());
  } else if (name == "Tanh") {
    layers->push_back(nn::Tanh());
  } else if (name == "SELU") {
    layers->push_back(nn::SELU());
  } else if (name == "LeakyReLU") {
    layers->push_back(nn::LeakyReLU());
  } else if (name == "PReLU") {
    layers->push_back(nn::PReLU());
  } else if (name == "Sigmoid") {
    layers->push_back(nn::Sigmoid());
  } else if (name == "GELU" || name == "gelu") {
    layers->push_back(nn::GELU());
  } else {
    return Status::Invalid("activation '{}': expected ReLU, Softplus, Tanh, SELU, LeakyReLU, "
                           "PReLU, Sigmoid or GELU",
                           name);
  }
  return Status::OK();
}

namespace {

// NeuralForecast's MLP component: Linear(in, hidden), activation, then (layers - 2) ×
// [Linear(hidden, hidden), activation], then Linear(hidden, out).
Result<nn::Sequential> MakeMlp(int64_t in, int64_t hidden, int64_t out, int64_t layers,
                               const std::string& activation) {
  if (in < 1 || hidden < 1 || out < 1 || layers < 2) {
    return Status::Invalid("MLP of {} -> {} x {} layers -> {}: sizes must be positive and "
                           "layers at least 2",
                           in, hidden, layers, out);
  }
  nn::Sequential mlp;
  mlp->push_back(nn::Linear(in, hidden));
  DEEPRC_RETURN_NOT_OK(AddActivation(mlp, activation));
  for (int64_t i = 0; i < layers - 2; ++i) {
    mlp->push_back(nn::Linear(hidden, hidden));
    DEEPRC_RETURN_NOT_OK(AddActivation(mlp, activation));
  }
  mlp->push_back(nn::Linear(hidden, out));
  return mlp;
}

// ---------------------------------------------------------------------------------------------
// MLP: the window (and historic exogenous values over it, future ones over window and horizon)
// through a plain MLP.
//   hidden_size=1024, num_layers=2 (hidden layers), activation ReLU; scaler identity,
//   windows_batch_size 1024, learning_rate 1e-3, max_steps 1000.

class MlpModel : public ForecastModule {
 public:
  MlpModel(ModelShape shape, nn::Sequential layers) : shape_(shape) {
    layers_ = register_module("layers", std::move(layers));
  }

  torch::Tensor Forward(const ModelInput& input) override {
    torch::Tensor x = input.x;
    if (shape_.exogenous > 0) {
      x = torch::cat({x, input.x_exogenous.reshape({x.size(0), -1})}, 1);
    }
    if (shape_.future > 0) x = torch::cat({x, input.x_future.reshape({x.size(0), -1})}, 1);
    return layers_->forward(x).reshape({x.size(0), shape_.horizon, shape_.outputs});
  }

 private:
  ModelShape shape_;
  nn::Sequential layers_{nullptr};
};

Result<std::shared_ptr<ForecastModule>> MakeMlpModel(const ModelShape& shape, Settings* s) {
  const int64_t hidden = s->Int("hidden_size", 1024);
  const int64_t layers = s->Int("num_layers", 2);
  // num_layers hidden layers, then the output layer.
  DEEPRC_ASSIGN_OR_RAISE(auto mlp,
                         MakeMlp(shape.input_size * (1 + shape.exogenous) +
                                     (shape.input_size + shape.horizon) * shape.future,
                                 hidden,
                                 shape.horizon * shape.outputs, layers + 1, "ReLU"));
  return std::shared_ptr<ForecastModule>(std::make_shared<MlpModel>(shape, std::move(mlp)));
}

// ---------------------------------------------------------------------------------------------
// NBEATS and NHITS: stacks of blocks with doubly residual links. Each block maps the residual
// input to theta; a basis turns theta into a backcast (subtracted from the residual) and a
// forecast (added up). The input is reversed (its last point first) and the forecast starts at
// the last observed value (naive level), as NeuralForecast does.

enum class BasisKind { kIdentity, kTrend, kSeasonality, kInterpolation };

class BasisBlock : public nn::Module {
 public:
  BasisBlock(nn::Sequential layers, BasisKind kind, ModelShape shape, int64_t pool_kernel,
             torch::Tensor backcast_basis, torch::Tensor forecast_basis)
      : kind_(kind), shape_(shape), pool_kernel_(pool_kernel) {
    layers_ = register_module("layers", std::move(layers));
    if (backcast_basis.defined()) {
      backcast_basis_ = register_buffer("backcast_basis", backcast_basis);
      forecast_basis_ = register_buffer("forecast_basis", forecast_basis);
    }
  }

  // (backcast [B, L], forecast [B, h, outputs]). Exogenous values [B, T, E] (historical over
  // the input, future over input and horizon) are pooled as the input is and appended.
  std::pair<torch::Tensor, torch::Tensor> Forward(torch::Tensor residual,
                                                  const torch::Tensor& exogenous,
                                                  const torch::Tensor& future) {
    const int64_t batch = residual.size(0);
    torch::Tensor input = residual;
    if (pool_kernel_ > 1) {
      auto pool = F::MaxPool1dFuncOptions(pool_kernel_).stride(pool_kernel_).ceil_mode(true);
      input = F::max_pool1d(residual.unsqueeze(1), pool).squeeze(1);
    }
    for (const torch::Tensor* values : {&exogenous, &future}) {
      if (!values->defined() || values->size(2) == 0) continue;
      torch::Tensor pooled = values->permute({0, 2, 1});  // [B, E, T]
      if (pool_kernel_ > 1) {
        pooled = F::max_pool1d(
            pooled, F::MaxPool1dFuncOptions(pool_kernel_).stride(pool_kernel_).ceil_mode(true));
      }
      input = torch::cat({input, pooled.permute({0, 2, 1}).reshape({batch, -1})}, 1);
    }
    torch::Tensor theta = layers_->forward(input);
    const int64_t L = shape_.input_size, h = shape_.horizon, q = shape_.outputs;
    switch (kind_) {
      case BasisKind::kIdentity:
        return {theta.slice(1, 0, L), theta.slice(1, L).reshape({batch, h, q})};
      case BasisKind::kInterpolation: {
        torch::Tensor knots = theta.slice(1, L).reshape({batch, q, -1});
        torch::Tensor forecast = F::interpolate(
            knots, F::InterpolateFuncOptions()
                       .size(std::vector<int64_t>{h})
                       .mode(torch::kLinear)
                       .align_corners(false));
        return {theta.slice(1, 0, L), forecast.permute({0, 2, 1})};
      }
      case BasisKind::kTrend:
      case BasisKind::kSeasonality: {
        const int64_t rows = forecast_basis_.size(0);
        torch::Tensor backcast = theta.slice(1, 0, rows).matmul(backcast_basis_);
        torch::Tensor forecast_theta = theta.slice(1, rows).reshape({batch, rows, q});
        torch::Tensor forecast = torch::einsum("bpq,pt->btq", {forecast_theta, forecast_basis_});
        return {backcast, forecast};
      }
    }
    return {};
  }

 private:
  BasisKind kind_;
  ModelShape shape_;
  int64_t pool_kernel_;
  nn::Sequential layers_{nullptr};
  torch::Tensor backcast_basis_, forecast_basis_;
};

class StackModel : public ForecastModule {
 public:
  explicit StackModel(ModelShape shape) : shape_(shape) {}

  void Add(std::shared_ptr<BasisBlock> block) {
    blocks_.push_back(register_module("block" + std::to_string(blocks_.size()), block));
  }

  torch::Tensor Forward(const ModelInput& input) override {
    torch::Tensor residual = input.x.flip({-1});
    torch::Tensor mask = input.x_mask.flip({-1});
    torch::Tensor exogenous;
    if (shape_.exogenous > 0) exogenous = input.x_exogenous.flip({1});
    torch::Tensor future;
    if (shape_.future > 0) future = input.x_future;
    torch::Tensor forecast = input.x.slice(1, input.x.size(1) - 1).unsqueeze(-1);  // [B, 1, 1]
    for (auto& block : blocks_) {
      auto [backcast, block_forecast] = block->Forward(residual, exogenous, future);
      residual = (residual - backcast) * mask;
      forecast = forecast + block_forecast;
    }
    return forecast.expand({input.x.size(0), shape_.horizon, shape_.outputs});
  }

 private:
  ModelShape shape_;
  std::vector<std::shared_ptr<BasisBlock>> blocks_;
};

// Linear(in, units[0]), then per unit: Linear(previous, unit), activation; then Linear(last,
// n_theta) — NeuralForecast's block MLP.
Result<nn::Sequential> BlockLayers(int64_t in, const std::vector<int64_t>& units, int64_t n_theta,
                                   const std::string& activation) {
  if (units.empty()) return Status::Invalid("mlp_units: give at least one width");
  nn::Sequential layers;
  layers->push_back(nn::Linear(in, units[0]));
  int64_t previous = units[0];
  for (int64_t unit : units) {
    layers->push_back(nn::Linear(previous, unit));
    DEEPRC_RETURN_NOT_OK(AddActivation(layers, activation));
    previous = unit;
  }
  layers->push_back(nn::Linear(previous, n_theta));
  return layers;
}

torch::Tensor Polynomials(int64_t size, int64_t count) {
  torch::Tensor t = torch::arange(size, torch::kFloat64) / static_cast<double>(size);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < count; ++i) rows.push_back(t.pow(i));
  return torch::stack(rows).to(torch::kFloat32);
}

// Harmonics: frequencies 0 and arange(H, H/2 * h) / H; cos rows then sin rows.
std::pair<torch::Tensor, torch::Tensor> Harmonics(int64_t harmonics, int64_t backcast,
                                                  int64_t forecast) {
  std::vector<double> frequencies{0.0};
  for (double f = static_cast<double>(harmonics);
       f < static_cast<double>(harmonics) / 2 * static_cast<double>(forecast); f += 1) {
    frequencies.push_back(f / static_cast<double>(harmonics));
  }
  torch::Tensor frequency = torch::tensor(frequencies, torch::kFloat64).unsqueeze(0);
  auto grid = [&](int64_t size, double sign) {
    return sign * 2 * std::numbers::pi *
           (torch::arange(size, torch::kFloat64).unsqueeze(1) / static_cast<double>(forecast)) *
           frequency;  // [size, F]
  };
  torch::Tensor back = grid(backcast, -1), fore = grid(forecast, 1);
  auto basis = [](const torch::Tensor& g) {
    return torch::cat({torch::cos(g).t(), torch::sin(g).t()}, 0).to(torch::kFloat32);
  };
  return {basis(back), basis(fore)};
}

// NBEATS: stack_types identity,trend,seasonality; n_blocks 1,1,1; mlp_units 512,512,512;
// n_harmonics 2; n_polynomials 2; activation ReLU; scaler identity, windows_batch_size 1024,
// learning_rate 1e-3, max_steps 1000.
Result<std::shared_ptr<ForecastModule>> MakeNbeats(const ModelShape& shape, Settings* s) {
  const auto stacks = s->Texts("stack_types", {"identity", "trend", "seasonality"});
  const auto blocks = s->Ints("n_blocks", std::vector<int64_t>(stacks.size(), 1));
  const auto units = s->Ints("mlp_units", {512, 512, 512});
  const int64_t harmonics = s->Int("n_harmonics", 2);
  const int64_t polynomials = s->Int("n_polynomials", 2);
  const std::string activation = s->Text("activation", "ReLU");
  if (blocks.size() != stacks.size()) {
    return Status::Invalid("NBEATS: n_blocks has {} entries for {} stack types", blocks.size(),
                           stacks.size());
  }
  const int64_t L = shape.input_size, h = shape.horizon, q = shape.outputs;
  // NBEATS reads no exogenous values (NBEATSx does); MakeModel refuses them.
  const ModelShape& own = shape;
  auto model = std::make_shared<StackModel>(own);
  for (size_t i = 0; i < stacks.size(); ++i) {
    for (int64_t b = 0; b < blocks[i]; ++b) {
      BasisKind kind;
      int64_t n_theta = 0;
      torch::Tensor backcast_basis, forecast_basis;
      if (stacks[i] == "identity") {
        kind = BasisKind::kIdentity;
        n_theta = L + q * h;
      } else if (stacks[i] == "trend") {
        kind = BasisKind::kTrend;
        backcast_basis = Polynomials(L, polynomials + 1);
        forecast_basis = Polynomials(h, polynomials + 1);
        n_theta = (q + 1) * (polynomials + 1);
      } else if (stacks[i] == "seasonality") {
        kind = BasisKind::kSeasonality;
        std::tie(backcast_basis, forecast_basis) = Harmonics(harmonics, L, h);
        n_theta = (q + 1) * forecast_basis.size(0);
      } else {
        return Status::Invalid("NBEATS: stack type '{}': expected identity, trend or seasonality",
                               stacks[i]);
      }
      DEEPRC_ASSIGN_OR_RAISE(auto layers, BlockLayers(L, units, n_theta, activation));
      model->Add(std::make_shared<BasisBlock>(std::move(layers), kind, own, 1, backcast_basis,
                                              forecast_basis));
    }
  }
  return std::shared_ptr<ForecastModule>(model);
}

// NHITS: three identity stacks of 1 block; mlp_units 512,512,512; n_pool_kernel_size 2,2,1;
// n_freq_downsample 4,2,1; MaxPool1d; linear interpolation; activation ReLU; scaler identity,
// windows_batch_size 1024, learning_rate 1e-3, max_steps 1000.
Result<std::shared_ptr<ForecastModule>> MakeNhits(const ModelShape& shape, Settings* s) {
  const auto blocks = s->Ints("n_blocks", {1, 1, 1});
  const auto units = s->Ints("mlp_units", {512, 512, 512});
  const auto kernels = s->Ints("n_pool_kernel_size", {2, 2, 1});
  const auto downsample = s->Ints("n_freq_downsample", {4, 2, 1});
  const std::string activation = s->Text("activation", "ReLU");
  if (kernels.size() != blocks.size() || downsample.size() != blocks.size()) {
    return Status::Invalid("NHITS: n_blocks, n_pool_kernel_size and n_freq_downsample need one "
                           "entry per stack ({}, {}, {})",
                           blocks.size(), kernels.size(), downsample.size());
  }
  const int64_t L = shape.input_size, h = shape.horizon, q = shape.outputs;
  auto model = std::make_shared<StackModel>(shape);
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (kernels[i] < 1 || downsample[i] < 1) {
      return Status::Invalid("NHITS: pool kernel and downsampling must be >= 1");
    }
    const int64_t pooled = (L + kernels[i] - 1) / kernels[i];
    const int64_t pooled_future = (L + h + kernels[i] - 1) / kernels[i];
    const int64_t knots = std::max<int64_t>(h / downsample[i], 1);
    for (int64_t b = 0; b < blocks[i]; ++b) {
      DEEPRC_ASSIGN_OR_RAISE(
          auto layers, BlockLayers(pooled * (1 + shape.exogenous) + pooled_future * shape.future,
                                   units, L + q * knots, activation));
      model->Add(std::make_shared<BasisBlock>(std::move(layers), BasisKind::kInterpolation,
                                              shape, kernels[i], torch::Tensor(),
                                              torch::Tensor()));
    }
  }
  return std::shared_ptr<ForecastModule>(model);
}

// ---------------------------------------------------------------------------------------------
// The recurrent family (LSTM, GRU, RNN) and TCN: an encoder over the window, its last hidden
// state through a context adapter Linear(hidden, context_size * h), and an MLP decoder applied
// to each horizon step's context (NeuralForecast 2.0's direct, non-recurrent mode). Historical
// and future exogenous values join y at the encoder's input; the future ones of each horizon
// step also join that step's context at the decoder's input.
// Defaults: encoder_n_layers 2, encoder_hidden_size 200, context_size 10,
// decoder_hidden_size 200, decoder_layers 2; scaler robust; RNN activation tanh; TCN
// kernel_size 2, dilations 1,2,4,8,16. Windows are trained in batches of 128 (NeuralForecast
// 1.7 trains these on whole series, 32 series per batch).

enum class EncoderKind { kLstm, kGru, kRnn, kTcn };

// Causal dilated convolution layer of the TCN encoder.
class CausalConvolution : public nn::Module {
 public:
  CausalConvolution(int64_t in, int64_t out, int64_t kernel, int64_t dilation)
      : padding_((kernel - 1) * dilation) {
    conv_ = register_module(
        "conv", nn::Conv1d(nn::Conv1dOptions(in, out, kernel).dilation(dilation)));
  }
  torch::Tensor Forward(const torch::Tensor& x) {  // [B, C, T]
    return torch::relu(conv_->forward(F::pad(x, F::PadFuncOptions({padding_, 0}))));
  }

 private:
  int64_t padding_;
  nn::Conv1d conv_{nullptr};
};

class EncoderDecoderModel : public ForecastModule {
 public:
  EncoderDecoderModel(EncoderKind kind, ModelShape shape, int64_t hidden, int64_t layers,
                      int64_t context, nn::Sequential decoder, int64_t kernel,
                      const std::vector<int64_t>& dilations, const std::string& rnn_activation)
      : kind_(kind), shape_(shape), context_(context) {
    const int64_t features = 1 + shape.exogenous + shape.future;
    switch (kind) {
      case EncoderKind::kLstm:
        lstm_ = register_module(
            "encoder", nn::LSTM(nn::LSTMOptions(features, hidden).num_layers(layers)
                                    .batch_first(true)));
        break;
      case EncoderKind::kGru:
        gru_ = register_module(
            "encoder",
            nn::GRU(nn::GRUOptions(features, hidden).num_layers(layers).batch_first(true)));
        break;
      case EncoderKind::kRnn:
        rnn_ = register_module(
            "encoder", nn::RNN(nn::RNNOptions(features, hidden)
                                   .num_layers(layers)
                                   .nonlinearity(rnn_activation == "relu"
                                                     ? nn::RNNOptions::nonlinearity_t(torch::kReLU)
                                                     : nn::RNNOptions::nonlinearity_t(torch::kTanh))
                                   .batch_first(true)));
        break;
      case EncoderKind::kTcn: {
        int64_t in = features;
        for (size_t i = 0; i < dilations.size(); ++i) {
          tcn_.push_back(register_module("tcn" + std::to_string(i),
                                         std::make_shared<CausalConvolution>(
                                             in, hidden, kernel, dilations[i])));
          in = hidden;
        }
        break;
      }
    }
    adapter_ = register_module("context_adapter", nn::Linear(hidden, context * shape.horizon));
    decoder_ = register_module("decoder", std::move(decoder));
  }

  torch::Tensor Forward(const ModelInput& input) override {
    torch::Tensor x = input.x.unsqueeze(-1);  // [B, L, 1]
    if (shape_.exogenous > 0) x = torch::cat({x, input.x_exogenous}, 2);
    const int64_t L = input.x.size(1);
    if (shape_.future > 0) x = torch::cat({x, input.x_future.slice(1, 0, L)}, 2);
    torch::Tensor states;  // [B, L, hidden]
    switch (kind_) {
      case EncoderKind::kLstm:
        states = std::get<0>(lstm_->forward(x));
        break;
      case EncoderKind::kGru:
        states = std::get<0>(gru_->forward(x));
        break;
      case EncoderKind::kRnn:
        states = std::get<0>(rnn_->forward(x));
        break;
      case EncoderKind::kTcn: {
        torch::Tensor y = x.permute({0, 2, 1});
        for (size_t i = 0; i < tcn_.size(); ++i) {
          torch::Tensor out = tcn_[i]->Forward(y);
          y = i == 0 ? out : out + y;  // residual links once the channels match
        }
        states = y.permute({0, 2, 1});
        break;
      }
    }
    torch::Tensor last = states.select(1, states.size(1) - 1);  // [B, hidden]
    torch::Tensor context = adapter_->forward(last).reshape({x.size(0), shape_.horizon, context_});
    if (shape_.future > 0) context = torch::cat({context, input.x_future.slice(1, L)}, 2);
    return decoder_->forward(context);  // [B, h, outputs]
  }

 private:
  EncoderKind kind_;
  ModelShape shape_;
  int64_t context_;
  nn::LSTM lstm_{nullptr};
  nn::GRU gru_{nullptr};
  nn::RNN rnn_{nullptr};
  std::vector<std::shared_ptr<CausalConvolution>> tcn_;
  nn::Linear adapter_{nullptr};
  nn::Sequential decoder_{nullptr};
};

Result<std::shared_ptr<ForecastModule>> MakeEncoderDecoder(EncoderKind kind,
                                                           const ModelShape& shape, Settings* s) {
  const int64_t hidden = s->Int("encoder_hidden_size", 200);
  const int64_t layers = kind == EncoderKind::kTcn ? 1 : s->Int("encoder_n_layers", 2);
  const int64_t context = s->Int("context_size", 10);
  const int64_t decoder_hidden = s->Int("decoder_hidden_size", 200);
  const int64_t decoder_layers = s->Int("decoder_layers", 2);
  int64_t kernel = 2;
  std::vector<int64_t> dilations;
  std::string rnn_activation = "tanh";
  if (kind == EncoderKind::kTcn) {
    kernel = s->Int("kernel_size", 2);
    dilations = s->Ints("dilations", {1, 2, 4, 8, 16});
    if (kernel < 1 || dilations.empty()) {
      return Status::Invalid("TCN: kernel_size must be >= 1 and dilations not empty");
    }
  }
  if (kind == EncoderKind::kRnn) {
    rnn_activation = s->Text("encoder_activation", "tanh");
    if (rnn_activation != "tanh" && rnn_activation != "relu") {
      return Status::Invalid("RNN: encoder_activation '{}': expected tanh or relu",
                             rnn_activation);
    }
  }
  if (hidden < 1 || layers < 1 || context < 1) {
    return Status::Invalid("encoder_hidden_size, encoder_n_layers and context_size must be >= 1");
  }
  DEEPRC_ASSIGN_OR_RAISE(auto decoder,
                         MakeMlp(context + shape.future, decoder_hidden, shape.outputs,
                                 decoder_layers, "ReLU"));
  return std::shared_ptr<ForecastModule>(std::make_shared<EncoderDecoderModel>(
      kind, shape, hidden, layers, context, std::move(decoder), kernel, dilations,
      rnn_activation));
}

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The hydrology model. The two LSTM layers are one nn::LSTM of two layers: the same as two
// stacked LSTM(320) (the second reads the first's sequence), in one fused call.

HydroModule::HydroModule(int64_t features, int64_t hidden, int64_t outputs, double dropout) {
  input_ = register_module("input", nn::Linear(features, hidden));
  lstm_ = register_module("lstm",
                          nn::LSTM(nn::LSTMOptions(hidden, hidden).num_layers(2).batch_first(true)));
  dropout_ = register_module("dropout", nn::Dropout(dropout));
  head_ = register_module("head", nn::Linear(hidden, hidden));
  output_ = register_module("output", nn::Linear(hidden, outputs));
}

torch::Tensor HydroModule::Forward(const torch::Tensor& x) {
  torch::Tensor days = torch::selu(input_->forward(x));     // [B, L, hidden]
  torch::Tensor states = std::get<0>(lstm_->forward(days));  // [B, L, hidden]
  torch::Tensor last = dropout_->forward(states.select(1, states.size(1) - 1));
  return output_->forward(torch::selu(head_->forward(last)));  // [B, outputs]
}

std::vector<std::string> ModelNames() {
  return {"MLP",    "NBEATS",   "NHITS",              "LSTM",       "GRU",       "RNN",    "TCN",
          "DeepAR", "PatchTST", "VanillaTransformer", "Autoformer", "FEDformer", "TimesNet"};
}

Result<ModelDefaults> DefaultsOf(const std::string& name) {
  const std::string upper = Upper(name);
  ModelDefaults defaults;
  if (upper == "MLP" || upper == "NBEATS" || upper == "NHITS") return defaults;
  if (upper == "LSTM" || upper == "GRU" || upper == "RNN" || upper == "TCN") {
    defaults.scaler = ScalerType::kRobust;
    defaults.windows_batch_size = 128;
    return defaults;
  }
  if (const ModelDefaults* own = TransformerDefaults(upper)) return *own;
  if (const ModelDefaults* own = DecompositionDefaults(upper)) return *own;
  std::string known;
  for (const auto& model : ModelNames()) known += (known.empty() ? "" : ", ") + model;
  return Status::Invalid("unknown model '{}' (known: {})", name, known);
}

// The kinds of exogenous columns a model takes, as NeuralForecast's EXOGENOUS_HIST and
// EXOGENOUS_FUTR (static ones are not supported here).
struct ExogenousKinds {
  bool historical = false, future = false;
};

static ExogenousKinds KindsOf(const std::string& upper) {
  if (upper == "NBEATS" || upper == "PATCHTST") return {false, false};
  if (upper == "DEEPAR" || upper == "VANILLATRANSFORMER" || upper == "AUTOFORMER" ||
      upper == "FEDFORMER" || upper == "TIMESNET") {
    return {false, true};
  }
  return {true, true};  // MLP, NHITS, LSTM, GRU, RNN, TCN
}

static Status CheckExogenousKinds(const std::string& name, const ModelShape& shape) {
  const ExogenousKinds kinds = KindsOf(Upper(name));
  const char* takes = kinds.historical ? "historical and future"
                      : kinds.future   ? "future only"
                                       : "none";
  if (shape.exogenous > 0 && !kinds.historical) {
    return Status::Invalid("{} does not take historical exogenous columns ({} given); the "
                           "exogenous columns it takes: {}",
                           name, shape.exogenous, takes);
  }
  if (shape.future > 0 && !kinds.future) {
    return Status::Invalid("{} does not take future exogenous columns ({} given); the "
                           "exogenous columns it takes: {}",
                           name, shape.future, takes);
  }
  return Status::OK();
}

Result<std::shared_ptr<ForecastModule>> MakeModel(const std::string& name, const ModelShape& shape,
                                                  Settings* settings) {
  DEEPRC_RETURN_NOT_OK(DefaultsOf(name).status());
  if (shape.input_size < 1 || shape.horizon < 1 || shape.outputs < 1) {
    return Status::Invalid("{}: input size {} and horizon {} must be >= 1", name,
                           shape.input_size, shape.horizon);
  }
  DEEPRC_RETURN_NOT_OK(CheckExogenousKinds(name, shape));
  const std::string upper = Upper(name);
  try {
    if (upper == "MLP") return MakeMlpModel(shape, settings);
    if (upper == "NBEATS") return MakeNbeats(shape, settings);
    if (upper == "NHITS") return MakeNhits(shape, settings);
    if (upper == "LSTM") return MakeEncoderDecoder(EncoderKind::kLstm, shape, settings);
    if (upper == "GRU") return MakeEncoderDecoder(EncoderKind::kGru, shape, settings);
    if (upper == "RNN") return MakeEncoderDecoder(EncoderKind::kRnn, shape, settings);
    if (upper == "TCN") return MakeEncoderDecoder(EncoderKind::kTcn, shape, settings);
    if (TransformerDefaults(upper) != nullptr) {
      return MakeTransformerModel(upper, shape, settings);
    }
    if (DecompositionDefaults(upper) != nullptr) {
      return MakeDecompositionModel(upper, shape, settings);
    }
  } catch (const c10::Error& error) {
    return Status::Invalid("{}: LibTorch: {}", name, error.what_without_backtrace());
  }
  return Status::Internal("model '{}' has defaults but no constructor", name);
}

}  // namespace deeprc::train::internal
