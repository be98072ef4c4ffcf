// Autoformer, FEDformer and TimesNet after NeuralForecast 1.7.6 / 2.0 (architectures and
// defaults; the code is our own): series decomposition with auto-correlation or Fourier blocks,
// and 2-D convolutions over FFT periods. Kept apart so that each file compiles alone.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "train/torch/layers_internal.h"

namespace deeprc::train::internal {
namespace nn = torch::nn;
namespace F = torch::nn::functional;
namespace {

// Moving average with the ends repeated (kernel 25 by default): trend; the rest: seasonal.
class SeriesDecomposition : public nn::Module {
 public:
  explicit SeriesDecomposition(int64_t kernel) : kernel_(kernel) {}
  // x [B, T, C] -> (seasonal, trend)
  std::pair<torch::Tensor, torch::Tensor> Forward(const torch::Tensor& x) {
    const int64_t front = (kernel_ - 1) / 2, back = kernel_ - 1 - front;
    torch::Tensor padded =
        torch::cat({x.slice(1, 0, 1).expand({x.size(0), front, x.size(2)}), x,
                    x.slice(1, x.size(1) - 1).expand({x.size(0), back, x.size(2)})},
                   1);
    torch::Tensor trend =
        F::avg_pool1d(padded.permute({0, 2, 1}), F::AvgPool1dFuncOptions(kernel_).stride(1))
            .permute({0, 2, 1});
    return {x - trend, trend};
  }

 private:
  int64_t kernel_;
};

// Autoformer's layer norm for the seasonal part: LayerNorm, then the mean over time removed.
class SeasonalNorm : public nn::Module {
 public:
  explicit SeasonalNorm(int64_t size) {
    norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({size})));
  }
  torch::Tensor Forward(const torch::Tensor& x) {
    torch::Tensor y = norm_->forward(x);
    return y - y.mean(1, true);
  }

 private:
  nn::LayerNorm norm_{nullptr};
};

// The inner mixing of an attention layer: queries, keys, values [B, T, H, E] -> [B, Tq, H, E].
class Mixer : public nn::Module {
 public:
  virtual torch::Tensor Mix(const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v) = 0;
};

// Auto-correlation: correlations of queries and keys by FFT, the top factor·ln(T) delays of each
// sample, and the values rolled by those delays, weighted by the softmax of their correlations
// (the per-sample aggregation, used in training and inference).
class AutoCorrelation : public Mixer {
 public:
  explicit AutoCorrelation(int64_t factor) : factor_(factor) {}
  torch::Tensor Mix(const torch::Tensor& q, const torch::Tensor& k0,
                    const torch::Tensor& v0) override {
    const int64_t length = q.size(1);
    torch::Tensor k = k0, v = v0;
    if (length > k.size(1)) {
      torch::Tensor zeros = torch::zeros_like(q.slice(1, 0, length - k.size(1)));
      k = torch::cat({k, zeros}, 1);
      v = torch::cat({v, zeros}, 1);
    } else {
      k = k.slice(1, 0, length);
      v = v.slice(1, 0, length);
    }
    // [B, H, E, T]
    torch::Tensor qp = q.permute({0, 2, 3, 1}), kp = k.permute({0, 2, 3, 1}),
                  vp = v.permute({0, 2, 3, 1});
    torch::Tensor correlation = torch::fft::irfft(
        torch::fft::rfft(qp, c10::nullopt, -1) * torch::conj(torch::fft::rfft(kp, c10::nullopt, -1)),
        length, -1);
    const int64_t top = std::clamp<int64_t>(
        static_cast<int64_t>(factor_ * std::log(static_cast<double>(length))), 1, length);
    torch::Tensor mean = correlation.mean(1).mean(1);  // [B, T]
    auto [weights, delays] = torch::topk(mean, top, -1);
    weights = torch::softmax(weights, -1);  // [B, top]
    torch::Tensor doubled = torch::cat({vp, vp}, -1);
    torch::Tensor base = torch::arange(length, vp.options().dtype(torch::kLong))
                             .view({1, 1, 1, length})
                             .expand({vp.size(0), vp.size(1), vp.size(2), length});
    torch::Tensor aggregated = torch::zeros_like(vp);
    for (int64_t i = 0; i < top; ++i) {
      torch::Tensor index = base + delays.select(1, i).view({-1, 1, 1, 1});
      aggregated = aggregated + torch::gather(doubled, -1, index) *
                                    weights.select(1, i).view({-1, 1, 1, 1});
    }
    return aggregated.permute({0, 3, 1, 2});  // [B, T, H, E]
  }

 private:
  int64_t factor_;
};

// Frequency indexes as a tensor on the device of the spectrum they select from.
torch::Tensor IndexOn(const std::vector<int64_t>& index, const torch::Device& device) {
  return torch::tensor(index, torch::TensorOptions().dtype(torch::kLong)).to(device);
}

std::vector<int64_t> SampleModes(int64_t length, int64_t modes, std::mt19937_64& random) {
  std::vector<int64_t> index(std::max<int64_t>(length / 2, 1));
  std::iota(index.begin(), index.end(), 0);
  for (size_t i = index.size(); i > 1; --i) std::swap(index[i - 1], index[random() % i]);
  index.resize(std::min<int64_t>(modes, static_cast<int64_t>(index.size())));
  std::sort(index.begin(), index.end());
  return index;
}

// FEDformer's Fourier block: the queries' spectrum at `modes` random frequencies, mixed per
// head by learned complex weights (kept as real pairs), written to the first modes, and back
// to time. As NeuralForecast, keys and values are not used.
class FourierBlock : public Mixer {
 public:
  FourierBlock(int64_t heads, int64_t head_size, int64_t length, int64_t modes,
               std::mt19937_64& random)
      : index_(SampleModes(length, modes, random)) {
    const double scale = 1.0 / static_cast<double>(head_size * head_size);
    weights_ = register_parameter(
        "weights", scale * torch::rand({heads, head_size, head_size,
                                        static_cast<int64_t>(index_.size()), 2}));
  }
  torch::Tensor Mix(const torch::Tensor& q, const torch::Tensor&, const torch::Tensor&) override {
    torch::Tensor x = q.permute({0, 2, 3, 1});  // [B, H, E, T]
    const int64_t length = x.size(-1);
    torch::Tensor spectrum = torch::fft::rfft(x, c10::nullopt, -1);
    torch::Tensor weights = torch::view_as_complex(weights_);
    torch::Tensor out =
        torch::zeros({x.size(0), x.size(1), x.size(2), length / 2 + 1}, spectrum.options());
    for (size_t w = 0; w < index_.size(); ++w) {
      out.select(-1, static_cast<int64_t>(w))
          .copy_(torch::einsum("bhi,hio->bho",
                               {spectrum.select(-1, index_[w]), weights.select(-1, w)}));
    }
    return torch::fft::irfft(out, length, -1).permute({0, 3, 1, 2});
  }

 private:
  std::vector<int64_t> index_;
  torch::Tensor weights_;
};

// FEDformer's Fourier cross-attention: attention between the selected modes of queries and
// keys (tanh of the complex products), applied to the keys' modes, mixed by learned weights.
class FourierCrossAttention : public Mixer {
 public:
  FourierCrossAttention(int64_t heads, int64_t head_size, int64_t length_q, int64_t length_kv,
                        int64_t modes, std::mt19937_64& random)
      : index_q_(SampleModes(length_q, modes, random)),
        index_kv_(SampleModes(length_kv, modes, random)),
        channels_(heads * head_size) {
    const double scale = 1.0 / static_cast<double>(channels_ * channels_);
    weights_ = register_parameter(
        "weights", scale * torch::rand({heads, head_size, head_size,
                                        static_cast<int64_t>(index_q_.size()), 2}));
  }
  torch::Tensor Mix(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor&) override {
    torch::Tensor xq = q.permute({0, 2, 3, 1}), xk = k.permute({0, 2, 3, 1});
    const int64_t length = xq.size(-1);
    auto select = [](const torch::Tensor& spectrum, const std::vector<int64_t>& index) {
      return spectrum.index_select(-1, IndexOn(index, spectrum.device()));
    };
    torch::Tensor q_modes = select(torch::fft::rfft(xq, c10::nullopt, -1), index_q_);
    torch::Tensor k_modes = select(torch::fft::rfft(xk, c10::nullopt, -1), index_kv_);
    torch::Tensor products = torch::tanh(torch::einsum("bhex,bhey->bhxy", {q_modes, k_modes}));
    torch::Tensor mixed = torch::einsum("bhxy,bhey->bhex", {products, k_modes});
    torch::Tensor weighted =
        torch::einsum("bhex,heox->bhox", {mixed, torch::view_as_complex(weights_)});
    torch::Tensor out =
        torch::zeros({xq.size(0), xq.size(1), xq.size(2), length / 2 + 1}, weighted.options());
    out.index_copy_(-1, IndexOn(index_q_, out.device()), weighted);
    const double norm = static_cast<double>(channels_) * static_cast<double>(channels_);
    return torch::fft::irfft(out / norm, length, -1).permute({0, 3, 1, 2});
  }

 private:
  std::vector<int64_t> index_q_, index_kv_;
  int64_t channels_;
  torch::Tensor weights_;
};

// Projections around a mixer (Autoformer's AutoCorrelationLayer).
class MixingLayer : public nn::Module {
 public:
  MixingLayer(std::shared_ptr<Mixer> mixer, int64_t model_size, int64_t heads) : heads_(heads) {
    mixer_ = register_module("mixer", std::move(mixer));
    query_ = register_module("query", nn::Linear(model_size, model_size));
    key_ = register_module("key", nn::Linear(model_size, model_size));
    value_ = register_module("value", nn::Linear(model_size, model_size));
    out_ = register_module("out", nn::Linear(model_size, model_size));
  }
  torch::Tensor Forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    auto heads = [&](const torch::Tensor& x) {
      return x.reshape({x.size(0), x.size(1), heads_, -1});
    };
    torch::Tensor mixed =
        mixer_->Mix(heads(query_->forward(q)), heads(key_->forward(k)), heads(value_->forward(v)));
    return out_->forward(mixed.reshape({q.size(0), q.size(1), -1}));
  }

 private:
  int64_t heads_;
  std::shared_ptr<Mixer> mixer_;
  nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, out_{nullptr};
};

class DecompositionEncoderLayer : public nn::Module {
 public:
  DecompositionEncoderLayer(std::shared_ptr<MixingLayer> attention, int64_t model_size,
                            int64_t hidden, int64_t kernel, double dropout) {
    attention_ = register_module("attention", std::move(attention));
    ff_ = register_module("ff", std::make_shared<ConvFeedForward>(model_size, hidden, dropout, false));
    decomposition_ = register_module("decomposition", std::make_shared<SeriesDecomposition>(kernel));
    dropout_ = register_module("dropout", nn::Dropout(dropout));
  }
  torch::Tensor Forward(torch::Tensor x) {
    x = decomposition_->Forward(x + dropout_->forward(attention_->Forward(x, x, x))).first;
    return decomposition_->Forward(x + ff_->Forward(x)).first;
  }

 private:
  std::shared_ptr<MixingLayer> attention_;
  std::shared_ptr<ConvFeedForward> ff_;
  std::shared_ptr<SeriesDecomposition> decomposition_;
  nn::Dropout dropout_{nullptr};
};

class DecompositionDecoderLayer : public nn::Module {
 public:
  DecompositionDecoderLayer(std::shared_ptr<MixingLayer> self, std::shared_ptr<MixingLayer> cross,
                            int64_t model_size, int64_t hidden, int64_t outputs, int64_t kernel,
                            double dropout) {
    self_ = register_module("self", std::move(self));
    cross_ = register_module("cross", std::move(cross));
    ff_ = register_module("ff", std::make_shared<ConvFeedForward>(model_size, hidden, dropout, false));
    decomposition_ = register_module("decomposition", std::make_shared<SeriesDecomposition>(kernel));
    trend_projection_ = register_module(
        "trend_projection", nn::Conv1d(nn::Conv1dOptions(model_size, outputs, 3)
                                           .padding(1)
                                           .padding_mode(torch::kCircular)
                                           .bias(false)));
    dropout_ = register_module("dropout", nn::Dropout(dropout));
  }
  // (seasonal, trend to add [B, T, outputs])
  std::pair<torch::Tensor, torch::Tensor> Forward(torch::Tensor x, const torch::Tensor& memory) {
    auto [x1, trend1] = decomposition_->Forward(x + dropout_->forward(self_->Forward(x, x, x)));
    auto [x2, trend2] =
        decomposition_->Forward(x1 + dropout_->forward(cross_->Forward(x1, memory, memory)));
    auto [x3, trend3] = decomposition_->Forward(x2 + ff_->Forward(x2));
    torch::Tensor trend = trend1 + trend2 + trend3;
    trend = trend_projection_->forward(trend.permute({0, 2, 1})).permute({0, 2, 1});
    return {x3, trend};
  }

 private:
  std::shared_ptr<MixingLayer> self_, cross_;
  std::shared_ptr<ConvFeedForward> ff_;
  std::shared_ptr<SeriesDecomposition> decomposition_;
  nn::Conv1d trend_projection_{nullptr};
  nn::Dropout dropout_{nullptr};
};

// Autoformer and FEDformer share this skeleton: the encoder reads the window's embedding; the
// decoder starts from the seasonal part of the window's last label_len values followed by zeros
// and the trend part followed by the window mean; trends from every decoder layer accumulate.
// Future exogenous columns enter as NeuralForecast's DataEmbedding has them: a time-feature
// embedding (a linear map without bias) added to the value embedding of the encoder's input
// steps and of the decoder's label + horizon steps.
class DecompositionModel : public ForecastModule {
 public:
  DecompositionModel(ModelShape shape, int64_t model_size, int64_t label_length, int64_t kernel,
                     double dropout, std::vector<std::shared_ptr<DecompositionEncoderLayer>> encoder,
                     std::vector<std::shared_ptr<DecompositionDecoderLayer>> decoder)
      : shape_(shape), label_length_(label_length) {
    const int64_t longest = std::max(shape.input_size, label_length + shape.horizon);
    encoder_embedding_ = register_module(
        "encoder_embedding", std::make_shared<ValueEmbedding>(1, model_size, longest, dropout, false));
    decoder_embedding_ = register_module(
        "decoder_embedding", std::make_shared<ValueEmbedding>(1, model_size, longest, dropout, false));
    for (size_t i = 0; i < encoder.size(); ++i) {
      encoder_.push_back(register_module("encoder" + std::to_string(i), encoder[i]));
    }
    for (size_t i = 0; i < decoder.size(); ++i) {
      decoder_.push_back(register_module("decoder" + std::to_string(i), decoder[i]));
    }
    encoder_norm_ = register_module("encoder_norm", std::make_shared<SeasonalNorm>(model_size));
    decoder_norm_ = register_module("decoder_norm", std::make_shared<SeasonalNorm>(model_size));
    decomposition_ = register_module("decomposition", std::make_shared<SeriesDecomposition>(kernel));
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
    const int64_t batch = x.size(0), h = shape_.horizon, L = x.size(1);
    auto [seasonal, trend] = decomposition_->Forward(x);
    torch::Tensor mean = x.mean(1, true).expand({batch, h, 1});
    torch::Tensor trend_init = torch::cat({trend.slice(1, L - label_length_), mean}, 1);
    torch::Tensor seasonal_init = torch::cat(
        {seasonal.slice(1, L - label_length_), torch::zeros({batch, h, 1}, x.options())}, 1);
    torch::Tensor memory = encoder_embedding_->Forward(x);
    if (shape_.future > 0) memory = memory + encoder_time_->forward(input.x_future.slice(1, 0, L));
    for (auto& layer : encoder_) memory = layer->Forward(memory);
    memory = encoder_norm_->Forward(memory);
    torch::Tensor y = decoder_embedding_->Forward(seasonal_init);
    if (shape_.future > 0) {
      y = y + decoder_time_->forward(input.x_future.slice(1, L - label_length_));
    }
    torch::Tensor total_trend = trend_init;
    for (auto& layer : decoder_) {
      auto [next, residual_trend] = layer->Forward(y, memory);
      y = next;
      total_trend = total_trend + residual_trend;
    }
    torch::Tensor out = total_trend + projection_->forward(decoder_norm_->Forward(y));
    return out.slice(1, label_length_);  // [B, h, outputs]
  }

 private:
  ModelShape shape_;
  int64_t label_length_;
  std::shared_ptr<ValueEmbedding> encoder_embedding_, decoder_embedding_;
  std::vector<std::shared_ptr<DecompositionEncoderLayer>> encoder_;
  std::vector<std::shared_ptr<DecompositionDecoderLayer>> decoder_;
  std::shared_ptr<SeasonalNorm> encoder_norm_, decoder_norm_;
  std::shared_ptr<SeriesDecomposition> decomposition_;
  nn::Linear projection_{nullptr}, encoder_time_{nullptr}, decoder_time_{nullptr};
};

// Autoformer: hidden_size 128, n_head 4, conv_hidden_size 32, encoder_layers 2,
// decoder_layers 1, factor 3, moving_avg_window 25, dropout 0.05,
// decoder_input_size_multiplier 0.5; scaler identity, windows_batch_size 1024,
// learning_rate 1e-4, max_steps 5000.
// FEDformer: the same with Fourier blocks: modes 64 (random), n_head 8.
Result<std::shared_ptr<ForecastModule>> MakeDecompositionModel(bool fourier,
                                                               const ModelShape& shape,
                                                               Settings* s, uint64_t seed) {
  const int64_t model_size = s->Int("hidden_size", 128);
  const int64_t heads = s->Int("n_head", fourier ? 8 : 4);
  const int64_t hidden = s->Int("conv_hidden_size", 32);
  const int64_t encoder_layers = s->Int("encoder_layers", 2);
  const int64_t decoder_layers = s->Int("decoder_layers", 1);
  const int64_t kernel = s->Int("moving_avg_window", 25);
  const double dropout = s->Real("dropout", 0.05);
  const double multiplier = s->Real("decoder_input_size_multiplier", 0.5);
  const int64_t factor = fourier ? 0 : s->Int("factor", 3);
  const int64_t modes = fourier ? s->Int("modes", 64) : 0;
  const char* name = fourier ? "FEDformer" : "Autoformer";
  if (heads < 1 || model_size % heads != 0) {
    return Status::Invalid("{}: hidden_size {} must be a multiple of n_head {}", name, model_size,
                           heads);
  }
  if (kernel < 1 || !(multiplier > 0 && multiplier <= 1) || (fourier && modes < 1)) {
    return Status::Invalid("{}: moving_avg_window and modes must be >= 1, "
                           "decoder_input_size_multiplier in (0, 1]",
                           name);
  }
  const auto label_length = static_cast<int64_t>(
      std::ceil(static_cast<double>(shape.input_size) * multiplier));
  const int64_t decoder_length = label_length + shape.horizon;
  const int64_t head_size = model_size / heads;
  std::mt19937_64 random(seed);  // the Fourier blocks' frequencies
  auto mixer = [&](int64_t length_q, int64_t length_kv, bool cross) -> std::shared_ptr<Mixer> {
    if (!fourier) return std::make_shared<AutoCorrelation>(factor);
    if (cross) {
      return std::make_shared<FourierCrossAttention>(heads, head_size, length_q, length_kv, modes,
                                                     random);
    }
    return std::make_shared<FourierBlock>(heads, head_size, length_q, modes, random);
  };
  std::vector<std::shared_ptr<DecompositionEncoderLayer>> encoder;
  for (int64_t i = 0; i < encoder_layers; ++i) {
    encoder.push_back(std::make_shared<DecompositionEncoderLayer>(
        std::make_shared<MixingLayer>(mixer(shape.input_size, shape.input_size, false), model_size,
                                      heads),
        model_size, hidden, kernel, dropout));
  }
  std::vector<std::shared_ptr<DecompositionDecoderLayer>> decoder;
  for (int64_t i = 0; i < decoder_layers; ++i) {
    decoder.push_back(std::make_shared<DecompositionDecoderLayer>(
        std::make_shared<MixingLayer>(mixer(decoder_length, decoder_length, false), model_size,
                                      heads),
        std::make_shared<MixingLayer>(mixer(decoder_length, shape.input_size, true), model_size,
                                      heads),
        model_size, hidden, shape.outputs, kernel, dropout));
  }
  return std::shared_ptr<ForecastModule>(std::make_shared<DecompositionModel>(
      shape, model_size, label_length, kernel, dropout, std::move(encoder), std::move(decoder)));
}

// ---------------------------------------------------------------------------------------------
// TimesNet: the embedded window is extended to L + h steps by a linear map over time; each
// TimesBlock finds the top_k periods of the batch's spectrum, folds the sequence into a 2-D
// [length / period, period] grid per period, applies two Inception blocks (num_kernels square
// kernels 1, 3, 5, ... averaged) with GELU between, unfolds, and sums the periods weighted by
// the softmax of their amplitudes, plus the residual; LayerNorm after each block.
//   hidden_size 64, conv_hidden_size 64, top_k 5, num_kernels 6, encoder_layers 2, dropout 0.1;
//   scaler standard, windows_batch_size 64, learning_rate 1e-4, max_steps 1000.
// Future exogenous columns: NeuralForecast's DataEmbedding adds their time-feature embedding
// (a linear map without bias) to the input steps. There they stop: its TimesNet never sees
// their values over the horizon, which are what makes them future columns. deeprc adds the
// same embedding of the horizon's values to the h steps the linear map over time appends (a
// deliberate departure, so that a forecast can follow a known future signal).

class Inception : public nn::Module {
 public:
  Inception(int64_t in, int64_t out, int64_t kernels) {
    for (int64_t i = 0; i < kernels; ++i) {
      convs_.push_back(register_module(
          "conv" + std::to_string(i),
          nn::Conv2d(nn::Conv2dOptions(in, out, 2 * i + 1).padding(i))));
    }
  }
  torch::Tensor Forward(const torch::Tensor& x) {
    std::vector<torch::Tensor> outputs;
    for (auto& conv : convs_) outputs.push_back(conv->forward(x));
    return torch::stack(outputs, -1).mean(-1);
  }

 private:
  std::vector<nn::Conv2d> convs_;
};

class TimesBlock : public nn::Module {
 public:
  TimesBlock(int64_t model_size, int64_t hidden, int64_t kernels, int64_t top_k) : top_k_(top_k) {
    first_ = register_module("first", std::make_shared<Inception>(model_size, hidden, kernels));
    second_ = register_module("second", std::make_shared<Inception>(hidden, model_size, kernels));
  }
  torch::Tensor Forward(const torch::Tensor& x) {  // [B, T, N]
    const int64_t batch = x.size(0), length = x.size(1), channels = x.size(2);
    torch::Tensor amplitude = torch::fft::rfft(x, c10::nullopt, 1).abs();  // [B, T/2+1, N]
    torch::Tensor frequency = amplitude.mean(0).mean(-1).detach().clone();
    frequency[0] = 0;
    const int64_t k = std::min<int64_t>(top_k_, frequency.size(0) - 1);
    if (k < 1) return x;
    torch::Tensor top = std::get<1>(torch::topk(frequency, k));
    // The periods shape the folding: read on the host (one synchronization on a GPU, as
    // NeuralForecast's .cpu().numpy()).
    const torch::Tensor top_on_host = top.to(torch::kCPU);
    torch::Tensor weights = amplitude.mean(-1).index_select(1, top);  // [B, k]
    std::vector<torch::Tensor> folded;
    for (int64_t i = 0; i < k; ++i) {
      const int64_t period =
          std::max<int64_t>(length / std::max<int64_t>(top_on_host[i].item<int64_t>(), 1), 1);
      const int64_t padded = (length + period - 1) / period * period;
      torch::Tensor y = x;
      if (padded > length) {
        y = torch::cat({x, torch::zeros({batch, padded - length, channels}, x.options())}, 1);
      }
      y = y.reshape({batch, padded / period, period, channels}).permute({0, 3, 1, 2});
      y = second_->Forward(torch::gelu(first_->Forward(y)));
      y = y.permute({0, 2, 3, 1}).reshape({batch, -1, channels}).slice(1, 0, length);
      folded.push_back(y);
    }
    torch::Tensor stacked = torch::stack(folded, -1);  // [B, T, N, k]
    torch::Tensor mix = torch::softmax(weights, 1).view({batch, 1, 1, k});
    return (stacked * mix).sum(-1) + x;
  }

 private:
  int64_t top_k_;
  std::shared_ptr<Inception> first_, second_;
};

class TimesNetModel : public ForecastModule {
 public:
  TimesNetModel(ModelShape shape, int64_t model_size, int64_t hidden, int64_t kernels,
                int64_t top_k, int64_t layers, double dropout)
      : shape_(shape) {
    embedding_ = register_module(
        "embedding", std::make_shared<ValueEmbedding>(1, model_size, shape.input_size, dropout, true));
    extend_ = register_module("extend", nn::Linear(shape.input_size, shape.input_size + shape.horizon));
    for (int64_t i = 0; i < layers; ++i) {
      blocks_.push_back(register_module("block" + std::to_string(i),
                                        std::make_shared<TimesBlock>(model_size, hidden, kernels, top_k)));
    }
    norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({model_size})));
    projection_ = register_module("projection", nn::Linear(model_size, shape.outputs));
    if (shape.future > 0) {
      time_ = register_module("time", MakeTimeFeatureEmbedding(shape.future, model_size));
    }
  }
  torch::Tensor Forward(const ModelInput& input) override {
    const int64_t L = shape_.input_size;
    torch::Tensor x = embedding_->Forward(input.x.unsqueeze(-1));           // [B, L, N]
    torch::Tensor time;                                                     // [B, L+h, N]
    if (shape_.future > 0) {
      time = time_->forward(input.x_future);
      x = x + time.slice(1, 0, L);
    }
    x = extend_->forward(x.permute({0, 2, 1})).permute({0, 2, 1});          // [B, L+h, N]
    if (time.defined()) {
      x = torch::cat({x.slice(1, 0, L), x.slice(1, L) + time.slice(1, L)}, 1);
    }
    for (auto& block : blocks_) x = norm_->forward(block->Forward(x));
    torch::Tensor out = projection_->forward(x);
    return out.slice(1, shape_.input_size);  // [B, h, outputs]
  }

 private:
  ModelShape shape_;
  std::shared_ptr<ValueEmbedding> embedding_;
  nn::Linear extend_{nullptr}, projection_{nullptr}, time_{nullptr};
  std::vector<std::shared_ptr<TimesBlock>> blocks_;
  nn::LayerNorm norm_{nullptr};
};

Result<std::shared_ptr<ForecastModule>> MakeTimesNet(const ModelShape& shape, Settings* s) {
  const int64_t model_size = s->Int("hidden_size", 64);
  const int64_t hidden = s->Int("conv_hidden_size", 64);
  const int64_t top_k = s->Int("top_k", 5);
  const int64_t kernels = s->Int("num_kernels", 6);
  const int64_t layers = s->Int("encoder_layers", 2);
  const double dropout = s->Real("dropout", 0.1);
  if (model_size < 1 || hidden < 1 || top_k < 1 || kernels < 1 || layers < 1) {
    return Status::Invalid("TimesNet: sizes, top_k, num_kernels and encoder_layers must be >= 1");
  }
  return std::shared_ptr<ForecastModule>(std::make_shared<TimesNetModel>(
      shape, model_size, hidden, kernels, top_k, layers, dropout));
}

}  // namespace

const ModelDefaults* DecompositionDefaults(const std::string& upper) {
  static const ModelDefaults kFormer = MakeDefaults(ScalerType::kIdentity, 1024, 1e-4, 5000);
  static const ModelDefaults kTimesNet = MakeDefaults(ScalerType::kStandard, 64, 1e-4, 1000);
  if (upper == "AUTOFORMER" || upper == "FEDFORMER") return &kFormer;
  if (upper == "TIMESNET") return &kTimesNet;
  return nullptr;
}

Result<std::shared_ptr<ForecastModule>> MakeDecompositionModel(const std::string& upper,
                                                               const ModelShape& shape,
                                                               Settings* settings) {
  if (upper == "AUTOFORMER") return MakeDecompositionModel(false, shape, settings, 0);
  if (upper == "FEDFORMER") {
    return MakeDecompositionModel(true, shape, settings,
                                  static_cast<uint64_t>(torch::randint(1 << 30, {1}).item<int64_t>()));
  }
  if (upper == "TIMESNET") return MakeTimesNet(shape, settings);
  return Status::Internal("no decomposition model '{}'", upper);
}

}  // namespace deeprc::train::internal
