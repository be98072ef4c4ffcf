#pragma once

// Windowed datasets: each sample is `input_size` points of one series (the input) followed by
// `horizon` points (the target), as NeuralForecast's windows-based models see them.
//
// Training windows have their target inside the training part of the series (the last
// `validation_size` points are kept for validation windows, whose targets lie there). Windows
// end every `step` points. A series too short for a full input gets one window whose input is
// padded on the left with zeros (mask 0), so that no series is dropped.
//
// Scalers work per window, on the input's observed points, as NeuralForecast's TemporalNorm:
//   identity  loc 0, scale 1
//   standard  loc mean, scale standard deviation (population)
//   robust    loc median, scale median absolute deviation from the median
//   minmax    loc min, scale max - min
// A scale below 1e-6 becomes 1 (a flat input). Inputs and targets are scaled by the same
// (loc, scale); forecasts are mapped back with them.

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/train/series.h"

namespace deeprc::train {

enum class ScalerType : uint8_t { kIdentity, kStandard, kRobust, kMinMax };
Result<ScalerType> ParseScaler(std::string_view text);
std::string_view ScalerName(ScalerType scaler);

struct WindowOptions {
  int64_t input_size = 0;
  int64_t horizon = 0;
  int64_t step = 1;
  int64_t validation_size = 0;
  ScalerType scaler = ScalerType::kIdentity;
  // Only forecast windows will be filled: no training or validation windows are made, and a
  // series needs just one point.
  bool forecast_only = false;
};

// A window of series `series` whose input ends (exclusive) at point `end`.
struct Window {
  int64_t series = 0;
  int64_t end = 0;
};

// A batch in row-major float arrays: x [size, input_size] (and x_exogenous [size, input_size,
// exogenous], unscaled), x_mask [size, input_size], y and y_mask [size, horizon] (y_mask 0 where
// the target lies past the series end, only for forecast windows), loc and scale [size].
// x_future [size, input_size + horizon, future] holds the future exogenous columns (unscaled)
// over the input and the horizon: from the series itself, and past its end (forecast windows)
// from the `ahead` series given to Make.
struct Batch {
  int64_t size = 0, input_size = 0, horizon = 0, exogenous = 0, future = 0;
  std::vector<float> x, x_mask, x_exogenous, x_future, y, y_mask, loc, scale;
};

class WindowSet {
 public:
  // Errors: non-positive sizes, or a series with no point for training. `ahead` (optional, kept
  // by pointer as `series` is): series s of it holds the future exogenous values of the points
  // after series s's end, which forecast windows read; it needs the same future columns and at
  // least `horizon` points per series (errors name the column or the series).
  static Result<WindowSet> Make(const SeriesSet& series, const WindowOptions& options,
                                const SeriesSet* ahead = nullptr);

  const WindowOptions& options() const { return options_; }
  const std::vector<Window>& training() const { return training_; }
  const std::vector<Window>& validation() const { return validation_; }
  // One window per series whose input is the series' last input_size points: the forecast.
  std::vector<Window> ForecastWindows() const;

  // Fills `batch` with the given windows (targets past a series' end are 0 with mask 0).
  void Fill(std::span<const Window> windows, Batch* batch) const;

 private:
  const SeriesSet* series_ = nullptr;
  const SeriesSet* ahead_ = nullptr;
  WindowOptions options_;
  std::vector<Window> training_, validation_;
};

// Seeded order of `count` samples: a fresh permutation per epoch, the same for a given seed on
// every machine (std::mt19937_64 and our own Fisher-Yates, not std::shuffle, whose algorithm the
// standard leaves open).
class Shuffler {
 public:
  Shuffler(int64_t count, uint64_t seed);
  // The next `batch_size` sample indices; a new permutation starts when one is used up.
  std::vector<int64_t> Next(int64_t batch_size);

 private:
  void Permute();
  std::mt19937_64 random_;
  std::vector<int64_t> order_;
  size_t position_ = 0;
};

}  // namespace deeprc::train
