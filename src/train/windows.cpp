#include "deeprc/train/windows.h"

#include <algorithm>
#include <cmath>

namespace deeprc::train {
namespace {

constexpr float kMinScale = 1e-6f;

float Median(std::vector<float>& values) {
  const size_t middle = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + middle, values.end());
  const float upper = values[middle];
  if (values.size() % 2 == 1) return upper;
  const float lower = *std::max_element(values.begin(), values.begin() + middle);
  return (lower + upper) / 2;
}

// (loc, scale) of the observed points of one input.
std::pair<float, float> Statistics(ScalerType scaler, std::span<const float> x,
                                   std::span<const float> mask, std::vector<float>* scratch) {
  scratch->clear();
  for (size_t i = 0; i < x.size(); ++i) {
    if (mask[i] > 0) scratch->push_back(x[i]);
  }
  if (scaler == ScalerType::kIdentity || scratch->empty()) return {0.0f, 1.0f};
  float loc = 0, scale = 1;
  switch (scaler) {
    case ScalerType::kIdentity:
      break;
    case ScalerType::kStandard: {
      double sum = 0, squares = 0;
      for (float v : *scratch) sum += v;
      const double mean = sum / static_cast<double>(scratch->size());
      for (float v : *scratch) squares += (v - mean) * (v - mean);
      loc = static_cast<float>(mean);
      scale = static_cast<float>(std::sqrt(squares / static_cast<double>(scratch->size())));
      break;
    }
    case ScalerType::kRobust: {
      loc = Median(*scratch);
      for (float& v : *scratch) v = std::abs(v - loc);
      scale = Median(*scratch);
      break;
    }
    case ScalerType::kMinMax: {
      const auto [low, high] = std::minmax_element(scratch->begin(), scratch->end());
      loc = *low;
      scale = *high - *low;
      break;
    }
  }
  if (!(scale >= kMinScale)) scale = 1;
  return {loc, scale};
}

}  // namespace

Result<ScalerType> ParseScaler(std::string_view text) {
  if (text == "identity") return ScalerType::kIdentity;
  if (text == "standard") return ScalerType::kStandard;
  if (text == "robust") return ScalerType::kRobust;
  if (text == "minmax") return ScalerType::kMinMax;
  return Status::Invalid("unknown scaler '{}': expected identity, standard, robust or minmax",
                         text);
}

std::string_view ScalerName(ScalerType scaler) {
  switch (scaler) {
    case ScalerType::kIdentity: return "identity";
    case ScalerType::kStandard: return "standard";
    case ScalerType::kRobust: return "robust";
    case ScalerType::kMinMax: return "minmax";
  }
  return "?";
}

Result<WindowSet> WindowSet::Make(const SeriesSet& series, const WindowOptions& options,
                                  const SeriesSet* ahead) {
  if (options.input_size < 1 || options.horizon < 1 || options.step < 1 ||
      options.validation_size < 0) {
    return Status::Invalid("windows: input size {}, horizon {} and step {} must be >= 1 and the "
                           "validation size {} >= 0",
                           options.input_size, options.horizon, options.step,
                           options.validation_size);
  }
  if (ahead != nullptr) {
    for (const auto& name : series.future_names) {
      if (std::find(ahead->future_names.begin(), ahead->future_names.end(), name) ==
          ahead->future_names.end()) {
        return Status::KeyError("the future values lack the future exogenous column '{}'", name);
      }
    }
    if (ahead->future_names != series.future_names) {
      return Status::Invalid("the future values' exogenous columns are not in the series' order");
    }
    if (ahead->num_series() != series.num_series()) {
      return Status::Invalid("future values of {} series for {} series", ahead->num_series(),
                             series.num_series());
    }
    for (int64_t s = 0; s < series.num_series(); ++s) {
      if (ahead->length(s) < options.horizon) {
        return Status::Invalid("series '{}': the future exogenous values cover {} dates after its "
                               "end, the horizon needs {}",
                               series.ids[s], ahead->length(s), options.horizon);
      }
    }
  }
  WindowSet set;
  set.series_ = &series;
  set.ahead_ = ahead;
  set.options_ = options;
  const int64_t input = options.input_size, h = options.horizon;
  for (int64_t s = 0; s < series.num_series(); ++s) {
    const int64_t length = series.length(s);
    if (options.forecast_only) {
      if (length < 1) return Status::Invalid("series '{}' has no point", series.ids[s]);
      continue;
    }
    const int64_t train_end = length - options.validation_size;  // training targets end here
    if (train_end - h < 1) {
      return Status::Invalid("series '{}' has {} points: too few for horizon {} plus {} "
                             "validation points and at least one input point",
                             series.ids[s], length, h, options.validation_size);
    }
    // Windows with a full input, or one padded window when the series is too short for any.
    for (int64_t end = std::min(input, train_end - h); end + h <= train_end; end += options.step) {
      set.training_.push_back({s, end});
    }
    if (options.validation_size > 0) {
      // Targets inside the validation points (overlapping the training part when the
      // validation part is shorter than the horizon).
      for (int64_t end = std::max<int64_t>(std::min(train_end, length - h), 1); end + h <= length;
           end += options.step) {
        set.validation_.push_back({s, end});
      }
    }
  }
  return set;
}

std::vector<Window> WindowSet::ForecastWindows() const {
  std::vector<Window> windows;
  for (int64_t s = 0; s < series_->num_series(); ++s) windows.push_back({s, series_->length(s)});
  return windows;
}

void WindowSet::Fill(std::span<const Window> windows, Batch* batch) const {
  const int64_t input = options_.input_size, h = options_.horizon;
  const int64_t exogenous = static_cast<int64_t>(series_->exogenous.size());
  const int64_t future = static_cast<int64_t>(series_->future.size());
  const auto size = static_cast<int64_t>(windows.size());
  batch->size = size;
  batch->input_size = input;
  batch->horizon = h;
  batch->exogenous = exogenous;
  batch->future = future;
  batch->x.assign(size * input, 0.0f);
  batch->x_mask.assign(size * input, 0.0f);
  batch->x_exogenous.assign(size * input * exogenous, 0.0f);
  batch->x_future.assign(size * (input + h) * future, 0.0f);
  batch->y.assign(size * h, 0.0f);
  batch->y_mask.assign(size * h, 0.0f);
  batch->loc.assign(size, 0.0f);
  batch->scale.assign(size, 1.0f);
  std::vector<float> scratch;
  for (int64_t b = 0; b < size; ++b) {
    const Window& window = windows[b];
    const int64_t offset = series_->offsets[window.series];
    const int64_t length = series_->length(window.series);
    float* x = batch->x.data() + b * input;
    float* x_mask = batch->x_mask.data() + b * input;
    for (int64_t i = 0; i < input; ++i) {
      const int64_t t = window.end - input + i;
      if (t < 0 || t >= length) continue;
      x[i] = static_cast<float>(series_->y[offset + t]);
      x_mask[i] = 1;
      for (int64_t e = 0; e < exogenous; ++e) {
        batch->x_exogenous[(b * input + i) * exogenous + e] =
            static_cast<float>(series_->exogenous[e][offset + t]);
      }
    }
    // Future columns over input + horizon: the series' own values, then (past its end) those of
    // `ahead`; zeros before the series' start and where nothing is known.
    float* x_future = batch->x_future.data() + b * (input + h) * future;
    for (int64_t i = 0; future > 0 && i < input + h; ++i) {
      const int64_t t = window.end - input + i;
      const std::vector<std::vector<double>>* source = &series_->future;
      int64_t row = offset + t;
      if (t < 0) continue;
      if (t >= length) {
        if (ahead_ == nullptr || t - length >= ahead_->length(window.series)) continue;
        source = &ahead_->future;
        row = ahead_->offsets[window.series] + (t - length);
      }
      for (int64_t e = 0; e < future; ++e) {
        x_future[i * future + e] = static_cast<float>((*source)[e][row]);
      }
    }
    float* y = batch->y.data() + b * h;
    float* y_mask = batch->y_mask.data() + b * h;
    for (int64_t i = 0; i < h; ++i) {
      const int64_t t = window.end + i;
      if (t >= length) continue;
      y[i] = static_cast<float>(series_->y[offset + t]);
      y_mask[i] = 1;
    }
    const auto [loc, scale] = Statistics(options_.scaler, {x, static_cast<size_t>(input)},
                                         {x_mask, static_cast<size_t>(input)}, &scratch);
    batch->loc[b] = loc;
    batch->scale[b] = scale;
    for (int64_t i = 0; i < input; ++i) {
      if (x_mask[i] > 0) x[i] = (x[i] - loc) / scale;
    }
    for (int64_t i = 0; i < h; ++i) {
      if (y_mask[i] > 0) y[i] = (y[i] - loc) / scale;
    }
  }
}

Shuffler::Shuffler(int64_t count, uint64_t seed) : random_(seed), order_(count) {
  for (int64_t i = 0; i < count; ++i) order_[i] = i;
  Permute();
}

void Shuffler::Permute() {
  for (size_t i = order_.size(); i > 1; --i) {
    const size_t j = random_() % i;
    std::swap(order_[i - 1], order_[j]);
  }
  position_ = 0;
}

std::vector<int64_t> Shuffler::Next(int64_t batch_size) {
  std::vector<int64_t> batch;
  if (order_.empty()) return batch;
  while (static_cast<int64_t>(batch.size()) < batch_size) {
    if (position_ == order_.size()) Permute();
    batch.push_back(order_[position_++]);
  }
  return batch;
}

}  // namespace deeprc::train
