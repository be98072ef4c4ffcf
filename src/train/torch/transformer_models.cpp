// Attention and sampling models after NeuralForecast 1.7.6 / 2.0: PatchTST, VanillaTransformer
// and DeepAR (architectures and defaults; the code is our own). Kept apart from models.cpp so
// that each compiles alone.
#include <cmath>
#include <numbers>

#include "train/torch/layers_internal.h"

namespace deeprc::train::internal {
namespace nn = torch::nn;
namespace F = torch::nn::functional;
namespace {

// Multi-head scaled dot-product attention. `previous` (optional) holds the previous layer's
// pre-softmax scores, added to this layer's (PatchTST's residual attention); the scores are
// returned for the next layer.
class Attention : public nn::Module {
 public:
  Attention(int64_t model_size, int64_t heads, double dropout) : heads_(heads) {
    query_ = register_module("query", nn::Linear(model_size, model_size));
    key_ = register_module("key", nn::Linear(model_size, model_size));
    value_ = register_module("value", nn::Linear(model_size, model_size));
    out_ = register_module("out", nn::Linear(model_size, model_size));
    dropout_ = register_module("dropout", nn::Dropout(dropout));
  }

  std::pair<torch::Tensor, torch::Tensor> Forward(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, bool causal,
                                                  const torch::Tensor& previous = {}) {
    const int64_t batch = q.size(0), lq = q.size(1), lk = k.size(1);
    const int64_t head_size = q.size(2) / heads_;
    auto split = [&](const torch::Tensor& x, int64_t length) {
      return x.reshape({batch, length, heads_, head_size}).permute({0, 2, 1, 3});
    };
    torch::Tensor qh = split(query_->forward(q), lq), kh = split(key_->forward(k), lk),
                  vh = split(value_->forward(v), lk);
    torch::Tensor scores =
        torch::matmul(qh, kh.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_size));
    if (previous.defined()) scores = scores + previous;
    torch::Tensor masked = scores;
    if (causal) {
      torch::Tensor mask = torch::ones({lq, lk}, scores.options().dtype(torch::kBool)).triu(1);
      masked = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
    }
    torch::Tensor weights = dropout_->forward(torch::softmax(masked, -1));
    torch::Tensor context =
        torch::matmul(weights, vh).permute({0, 2, 1, 3}).reshape({batch, lq, heads_ * head_size});
    return {out_->forward(context), scores};
  }

 private:
  int64_t heads_;
  nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, out_{nullptr};
  nn::Dropout dropout_{nullptr};
};

// ---------------------------------------------------------------------------------------------
// PatchTST: the window split in patches (patch_len, stride; padded at the end by `stride`
// repeated values), each patch embedded linearly plus a learned position, a Transformer encoder
// with residual attention and post-norm, then a flatten head to the horizon. RevIN normalizes
// each window and maps the forecast back.
//   encoder_layers 3, n_heads 16, hidden_size 128, linear_hidden_size 256, dropout 0.2,
//   fc_dropout 0.2, head_dropout 0, attn_dropout 0, patch_len 16, stride 8, revin true,
//   activation gelu; scaler identity, windows_batch_size 1024, learning_rate 1e-4,
//   max_steps 5000.

class PatchEncoderLayer : public nn::Module {
 public:
  PatchEncoderLayer(int64_t model_size, int64_t heads, int64_t ff_size, double dropout,
                    double attention_dropout) {
    attention_ = register_module("attention",
                                 std::make_shared<Attention>(model_size, heads, attention_dropout));
    norm_attention_ = register_module("norm_attention", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    norm_ff_ = register_module("norm_ff", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    ff_ = register_module("ff", nn::Sequential(nn::Linear(model_size, ff_size), nn::GELU(),
                                               nn::Dropout(dropout), nn::Linear(ff_size, model_size)));
    dropout_ = register_module("dropout", nn::Dropout(dropout));
  }

  std::pair<torch::Tensor, torch::Tensor> Forward(torch::Tensor x, const torch::Tensor& previous) {
    auto [attended, scores] = attention_->Forward(x, x, x, false, previous);
    x = norm_attention_->forward(x + dropout_->forward(attended));
    x = norm_ff_->forward(x + dropout_->forward(ff_->forward(x)));
    return {x, scores};
  }

 private:
  std::shared_ptr<Attention> attention_;
  nn::LayerNorm norm_attention_{nullptr}, norm_ff_{nullptr};
  nn::Sequential ff_{nullptr};
  nn::Dropout dropout_{nullptr};
};

class PatchTstModel : public ForecastModule {
 public:
  PatchTstModel(ModelShape shape, int64_t layers, int64_t heads, int64_t model_size,
                int64_t ff_size, double dropout, double head_dropout, double attention_dropout,
                int64_t patch_len, int64_t stride, bool revin)
      : shape_(shape), patch_len_(patch_len), stride_(stride), revin_(revin) {
    patches_ = (shape.input_size + stride - patch_len) / stride + 1;
    embed_ = register_module("embed", nn::Linear(patch_len, model_size));
    positions_ = register_parameter("positions",
                                    torch::empty({patches_, model_size}).uniform_(-0.02, 0.02));
    dropout_ = register_module("dropout", nn::Dropout(dropout));
    for (int64_t i = 0; i < layers; ++i) {
      layers_.push_back(register_module(
          "layer" + std::to_string(i),
          std::make_shared<PatchEncoderLayer>(model_size, heads, ff_size, dropout,
                                              attention_dropout)));
    }
    head_dropout_ = register_module("head_dropout", nn::Dropout(head_dropout));
    head_ = register_module("head", nn::Linear(model_size * patches_, shape.horizon * shape.outputs));
    if (revin_) {
      revin_weight_ = register_parameter("revin_weight", torch::ones({1}));
      revin_bias_ = register_parameter("revin_bias", torch::zeros({1}));
    }
  }

  torch::Tensor Forward(const ModelInput& input) override {
    torch::Tensor x = input.x;  // [B, L]
    const int64_t batch = x.size(0);
    torch::Tensor mean, deviation;
    if (revin_) {
      mean = x.mean(1, true).detach();
      deviation = torch::sqrt(x.var(1, false, true) + 1e-5).detach();
      x = (x - mean) / deviation * revin_weight_ + revin_bias_;
    }
    // Replicate the last value `stride` times, then cut patches.
    x = torch::cat({x, x.slice(1, x.size(1) - 1).expand({batch, stride_})}, 1);
    torch::Tensor patches = x.unfold(1, patch_len_, stride_);  // [B, P, patch_len]
    torch::Tensor z = dropout_->forward(embed_->forward(patches) + positions_);
    torch::Tensor scores;
    for (auto& layer : layers_) std::tie(z, scores) = layer->Forward(z, scores);
    torch::Tensor out = head_->forward(head_dropout_->forward(z.flatten(1)));
    out = out.reshape({batch, shape_.horizon, shape_.outputs});
    if (revin_) {
      // Only the location output is denormalized; a scale output stays in RevIN's units times
      // the deviation.
      torch::Tensor loc = (out.select(2, 0) - revin_bias_) / (revin_weight_ + 1e-10) * deviation + mean;
      if (shape_.outputs == 1) return loc.unsqueeze(-1);
      return torch::stack({loc, out.select(2, 1)}, 2);
    }
    return out;
  }

 private:
  ModelShape shape_;
  int64_t patch_len_, stride_, patches_ = 0;
  bool revin_;
  nn::Linear embed_{nullptr}, head_{nullptr};
  torch::Tensor positions_, revin_weight_, revin_bias_;
  nn::Dropout dropout_{nullptr}, head_dropout_{nullptr};
  std::vector<std::shared_ptr<PatchEncoderLayer>> layers_;
};

Result<std::shared_ptr<ForecastModule>> MakePatchTst(const ModelShape& shape, Settings* s) {
  const int64_t layers = s->Int("encoder_layers", 3);
  const int64_t heads = s->Int("n_heads", 16);
  const int64_t model_size = s->Int("hidden_size", 128);
  const int64_t ff_size = s->Int("linear_hidden_size", 256);
  const double dropout = s->Real("dropout", 0.2);
  s->Real("fc_dropout", 0.2);  // used by NeuralForecast's pretraining head only
  const double head_dropout = s->Real("head_dropout", 0.0);
  const double attention_dropout = s->Real("attn_dropout", 0.0);
  const int64_t patch_len = s->Int("patch_len", 16);
  const int64_t stride = s->Int("stride", 8);
  const bool revin = s->Int("revin", 1) != 0;
  if (heads < 1 || model_size % heads != 0) {
    return Status::Invalid("PatchTST: hidden_size {} must be a multiple of n_heads {}",
                           model_size, heads);
  }
  if (patch_len < 1 || stride < 1 || shape.input_size + stride < patch_len) {
    return Status::Invalid("PatchTST: input size {} plus stride {} is shorter than patch_len {}",
                           shape.input_size, stride, patch_len);
  }
  return std::shared_ptr<ForecastModule>(std::make_shared<PatchTstModel>(
      shape, layers, heads, model_size, ff_size, dropout, head_dropout, attention_dropout,
      patch_len, stride, revin));
}

// ---------------------------------------------------------------------------------------------
// VanillaTransformer: the encoder-decoder Transformer of Informer's code base. Values are
// embedded by a circular Conv1d(kernel 3) plus sinusoidal positions; the encoder reads the
// window; the decoder reads the window's last ceil(L * decoder_input_size_multiplier) values
// followed by h zeros, with causal self-attention and cross-attention; feed-forward blocks are
// 1x1 convolutions; post-norm. The last h decoder outputs are the forecast. Future exogenous
// columns enter as NeuralForecast's DataEmbedding has them: a time-feature embedding (a linear
// map without bias) added to the encoder's input steps and to the decoder's label + horizon
// steps.
//   hidden_size 128, n_head 4, conv_hidden_size 32, encoder_layers 2, decoder_layers 1,
//   dropout 0.05, activation gelu, decoder_input_size_multiplier 0.5; scaler identity,
//   windows_batch_size 1024, learning_rate 1e-4, max_steps 5000.

class TransformerLayer : public nn::Module {
 public:
  TransformerLayer(int64_t model_size, int64_t heads, int64_t hidden, double dropout, bool decoder)
      : decoder_(decoder) {
    self_ = register_module("self", std::make_shared<Attention>(model_size, heads, dropout));
    if (decoder) {
      cross_ = register_module("cross", std::make_shared<Attention>(model_size, heads, dropout));
      norm_cross_ = register_module("norm_cross", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    }
    norm_self_ = register_module("norm_self", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    norm_ff_ = register_module("norm_ff", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    ff_ = register_module("ff", std::make_shared<ConvFeedForward>(model_size, hidden, dropout, true));
    dropout_ = register_module("dropout", nn::Dropout(dropout));
  }
  torch::Tensor Forward(torch::Tensor x, const torch::Tensor& memory) {
    x = norm_self_->forward(x + dropout_->forward(self_->Forward(x, x, x, decoder_).first));
    if (decoder_) {
      x = norm_cross_->forward(
          x + dropout_->forward(cross_->Forward(x, memory, memory, false).first));
    }
    return norm_ff_->forward(x + ff_->Forward(x));
  }

 private:
  bool decoder_;
  std::shared_ptr<Attention> self_, cross_;
  nn::LayerNorm norm_self_{nullptr}, norm_cross_{nullptr}, norm_ff_{nullptr};
  std::shared_ptr<ConvFeedForward> ff_;
  nn::Dropout dropout_{nullptr};
};

class VanillaTransformerModel : public ForecastModule {
 public:
  VanillaTransformerModel(ModelShape shape, int64_t model_size, int64_t heads, int64_t hidden,
                          int64_t encoder_layers, int64_t decoder_layers, double dropout,
                          int64_t label_length)
      : shape_(shape), label_length_(label_length) {
    const int64_t longest = std::max(shape.input_size, label_length + shape.horizon);
    encoder_embedding_ = register_module(
        "encoder_embedding", std::make_shared<ValueEmbedding>(1, model_size, longest, dropout, true));
    decoder_embedding_ = register_module(
        "decoder_embedding", std::make_shared<ValueEmbedding>(1, model_size, longest, dropout, true));
    for (int64_t i = 0; i < encoder_layers; ++i) {
      encoder_.push_back(register_module(
          "encoder" + std::to_string(i),
          std::make_shared<TransformerLayer>(model_size, heads, hidden, dropout, false)));
    }
    for (int64_t i = 0; i < decoder_layers; ++i) {
      decoder_.push_back(register_module(
          "decoder" + std::to_string(i),
          std::make_shared<TransformerLayer>(model_size, heads, hidden, dropout, true)));
    }
    encoder_norm_ = register_module("encoder_norm", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    decoder_norm_ = register_module("decoder_norm", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    projection_ = register_module("projection", nn::Linear(model_size, shape.outputs));
    if (shape.future > 0) {
      encoder_time_ = register_module("encoder_time",
                                      MakeTimeFeatureEmbedding(shape.future, model_size));
      decoder_time_ = register_module("decoder_time",
                                      MakeTimeFeatureEmbedding(shape.future, model_size));
    }
  }

  torch::Tensor Forward(const ModelInput& input) override {
    torch::Tensor x = input.x.unsqueeze(-1);  // [B, L, 1]
    const int64_t L = x.size(1);
    torch::Tensor memory = encoder_embedding_->Forward(x);
    if (shape_.future > 0) memory = memory + encoder_time_->forward(input.x_future.slice(1, 0, L));
    for (auto& layer : encoder_) memory = layer->Forward(memory, {});
    memory = encoder_norm_->forward(memory);
    torch::Tensor start = x.slice(1, x.size(1) - label_length_);
    torch::Tensor decoder_input =
        torch::cat({start, torch::zeros({x.size(0), shape_.horizon, 1}, x.options())}, 1);
    torch::Tensor y = decoder_embedding_->Forward(decoder_input);
    if (shape_.future > 0) {
      y = y + decoder_time_->forward(input.x_future.slice(1, L - label_length_));
    }
    for (auto& layer : decoder_) y = layer->Forward(y, memory);
    y = projection_->forward(decoder_norm_->forward(y));
    return y.slice(1, label_length_);  // [B, h, outputs]
  }

 private:
  ModelShape shape_;
  int64_t label_length_;
  std::shared_ptr<ValueEmbedding> encoder_embedding_, decoder_embedding_;
  std::vector<std::shared_ptr<TransformerLayer>> encoder_, decoder_;
  nn::LayerNorm encoder_norm_{nullptr}, decoder_norm_{nullptr};
  nn::Linear projection_{nullptr}, encoder_time_{nullptr}, decoder_time_{nullptr};
};

Result<std::shared_ptr<ForecastModule>> MakeVanillaTransformer(const ModelShape& shape,
                                                               Settings* s) {
  const int64_t model_size = s->Int("hidden_size", 128);
  const int64_t heads = s->Int("n_head", 4);
  const int64_t hidden = s->Int("conv_hidden_size", 32);
  const int64_t encoder_layers = s->Int("encoder_layers", 2);
  const int64_t decoder_layers = s->Int("decoder_layers", 1);
  const double dropout = s->Real("dropout", 0.05);
  const double multiplier = s->Real("decoder_input_size_multiplier", 0.5);
  if (heads < 1 || model_size % heads != 0) {
    return Status::Invalid("VanillaTransformer: hidden_size {} must be a multiple of n_head {}",
                           model_size, heads);
  }
  if (!(multiplier > 0 && multiplier <= 1)) {
    return Status::Invalid("VanillaTransformer: decoder_input_size_multiplier must be in (0, 1]");
  }
  const auto label_length = static_cast<int64_t>(
      std::ceil(static_cast<double>(shape.input_size) * multiplier));
  return std::shared_ptr<ForecastModule>(std::make_shared<VanillaTransformerModel>(
      shape, model_size, heads, hidden, encoder_layers, decoder_layers, dropout, label_length));
}

// ---------------------------------------------------------------------------------------------
// DeepAR: an LSTM over the series whose every step emits a Normal (loc, scale). Training uses
// teacher forcing: the inputs are the window followed by the true targets shifted by one, and
// the loss is the Normal likelihood of the h targets. Inference draws trajectory_samples paths,
// each sampled value fed back as the next input; the forecast is the paths' mean, its scale
// their standard deviation (returned as softplus⁻¹ so the trainer's Normal mapping recovers it).
// Future exogenous columns join the LSTM's input at each step, as NeuralForecast's DeepAR has
// them: the step that reads the value at time t reads them at t + 1, the time it forecasts.
//   lstm_n_layers 2, lstm_hidden_size 128, lstm_dropout 0.1, decoder_hidden_layers 0,
//   decoder_hidden_size 0, trajectory_samples 100; loss Normal, scaler identity,
//   windows_batch_size 1024, learning_rate 1e-3, max_steps 1000.

class DeepArModel : public ForecastModule {
 public:
  DeepArModel(ModelShape shape, int64_t hidden, int64_t layers, double dropout,
              nn::Sequential decoder, int64_t samples)
      : shape_(shape), samples_(samples) {
    lstm_ = register_module("lstm", nn::LSTM(nn::LSTMOptions(1 + shape.future, hidden)
                                                 .num_layers(layers)
                                                 .dropout(layers > 1 ? dropout : 0.0)
                                                 .batch_first(true)));
    decoder_ = register_module("decoder", std::move(decoder));
  }

  torch::Tensor Forward(const ModelInput& input) override {
    const int64_t batch = input.x.size(0), L = input.x.size(1), h = shape_.horizon;
    // The future columns the step reading time t sees: those of time t + 1 (t < L + h - 1).
    torch::Tensor future;
    if (shape_.future > 0) future = input.x_future.slice(1, 1);  // [B, L + h - 1, F]
    if (input.y.defined()) {
      torch::Tensor sequence = torch::cat({input.x, input.y.slice(1, 0, h - 1)}, 1).unsqueeze(-1);
      if (future.defined()) sequence = torch::cat({sequence, future}, 2);
      torch::Tensor states = std::get<0>(lstm_->forward(sequence));
      return decoder_->forward(states.slice(1, L - 1, L - 1 + h));  // [B, h, 2]
    }
    // Monte-Carlo paths: batch × samples rows.
    // output_size given: the row count is known without looking at values (any device).
    torch::Tensor x = input.x.repeat_interleave(samples_, 0, batch * samples_).unsqueeze(-1);
    if (future.defined()) {
      future = future.repeat_interleave(samples_, 0, batch * samples_);
      x = torch::cat({x, future.slice(1, 0, L)}, 2);
    }
    auto [states, memory] = lstm_->forward(x);
    torch::Tensor last = states.select(1, L - 1);
    std::vector<torch::Tensor> path;
    for (int64_t t = 0; t < h; ++t) {
      torch::Tensor parameters = decoder_->forward(last);
      torch::Tensor loc = parameters.select(1, 0);
      torch::Tensor scale = torch::softplus(parameters.select(1, 1)) + 1e-3;
      torch::Tensor value = loc + scale * torch::randn_like(loc);
      path.push_back(value);
      if (t + 1 == h) break;
      torch::Tensor next = value.reshape({-1, 1, 1});
      if (future.defined()) next = torch::cat({next, future.slice(1, L + t, L + t + 1)}, 2);
      auto step = lstm_->forward(next, memory);
      last = std::get<0>(step).select(1, 0);
      memory = std::get<1>(step);
    }
    torch::Tensor paths = torch::stack(path, 1).reshape({batch, samples_, h});
    torch::Tensor mean = paths.mean(1);
    torch::Tensor spread = (paths.std(1, false) - 1e-3).clamp_min(1e-6);
    torch::Tensor raw_scale = torch::log(torch::expm1(spread));  // softplus⁻¹
    return torch::stack({mean, raw_scale}, 2);
  }

 private:
  ModelShape shape_;
  int64_t samples_;
  nn::LSTM lstm_{nullptr};
  nn::Sequential decoder_{nullptr};
};

Result<std::shared_ptr<ForecastModule>> MakeDeepAr(const ModelShape& shape, Settings* s) {
  const int64_t layers = s->Int("lstm_n_layers", 2);
  const int64_t hidden = s->Int("lstm_hidden_size", 128);
  const double dropout = s->Real("lstm_dropout", 0.1);
  const int64_t decoder_layers = s->Int("decoder_hidden_layers", 0);
  const int64_t decoder_hidden = s->Int("decoder_hidden_size", 0);
  const int64_t samples = s->Int("trajectory_samples", 100);
  if (shape.outputs != 2) {
    return Status::Invalid("DeepAR trains with the Normal distribution loss (loss=Normal)");
  }
  if (layers < 1 || hidden < 1 || samples < 2) {
    return Status::Invalid("DeepAR: lstm_n_layers, lstm_hidden_size >= 1, trajectory_samples "
                           ">= 2");
  }
  nn::Sequential decoder;
  int64_t in = hidden;
  for (int64_t i = 0; i < decoder_layers; ++i) {
    decoder->push_back(nn::Linear(in, decoder_hidden));
    decoder->push_back(nn::ReLU());
    in = decoder_hidden;
  }
  decoder->push_back(nn::Linear(in, 2));
  return std::shared_ptr<ForecastModule>(
      std::make_shared<DeepArModel>(shape, hidden, layers, dropout, std::move(decoder), samples));
}

}  // namespace

const ModelDefaults* TransformerDefaults(const std::string& upper) {
  static const ModelDefaults kPatchTst = MakeDefaults(ScalerType::kIdentity, 1024, 1e-4, 5000);
  static const ModelDefaults kVanilla = MakeDefaults(ScalerType::kIdentity, 1024, 1e-4, 5000);
  static const ModelDefaults kDeepAr = MakeDefaults(ScalerType::kIdentity, 1024, 1e-3, 1000, "Normal");
  if (upper == "PATCHTST") return &kPatchTst;
  if (upper == "VANILLATRANSFORMER") return &kVanilla;
  if (upper == "DEEPAR") return &kDeepAr;
  return nullptr;
}

Result<std::shared_ptr<ForecastModule>> MakeTransformerModel(const std::string& upper,
                                                             const ModelShape& shape,
                                                             Settings* settings) {
  if (upper == "PATCHTST") return MakePatchTst(shape, settings);
  if (upper == "VANILLATRANSFORMER") return MakeVanillaTransformer(shape, settings);
  if (upper == "DEEPAR") return MakeDeepAr(shape, settings);
  return Status::Internal("no transformer model '{}'", upper);
}

}  // namespace deeprc::train::internal
