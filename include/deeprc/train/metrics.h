#pragma once

// Forecast accuracy. Each metric takes the actual values `y` and the forecast `yhat` of one
// series (same length, at least one value) and returns the score; `Score*` helpers average a
// metric over many series, one value per series, as the M4 competition does.
//
//   MAE   mean |y - yhat|
//   RMSE  sqrt(mean (y - yhat)^2)
//   MAPE  100 * mean |y - yhat| / |y|            (percent; points with y = 0 are left out)
//   sMAPE 200 * mean |y - yhat| / (|y| + |yhat|)  (percent, the M4 definition; 0/0 counts 0)
//   MASE  MAE / mean |x_t - x_{t-m}| over the in-sample series x (seasonal naive scale, m = season)
//   NSE   1 - sum (y - yhat)^2 / sum (y - mean y)^2   (Nash-Sutcliffe efficiency)
//   NNSE  1 / (2 - NSE)                               (normalized NSE, in (0, 1])

#include <span>
#include <vector>

#include "deeprc/core/result.h"

namespace deeprc::train {

Result<double> Mae(std::span<const double> y, std::span<const double> yhat);
Result<double> Rmse(std::span<const double> y, std::span<const double> yhat);
Result<double> Mape(std::span<const double> y, std::span<const double> yhat);
Result<double> Smape(std::span<const double> y, std::span<const double> yhat);
// `insample` must be longer than `season` and not constant at lag `season`.
Result<double> Mase(std::span<const double> y, std::span<const double> yhat,
                    std::span<const double> insample, int season);
Result<double> Nse(std::span<const double> y, std::span<const double> yhat);
Result<double> NormalizedNse(std::span<const double> y, std::span<const double> yhat);

// The seasonal naive forecast: the last `season` in-sample values repeated over `horizon`.
Result<std::vector<double>> SeasonalNaive(std::span<const double> insample, int season,
                                          int horizon);

// Metrics averaged over series (each series weighs the same).
struct ForecastScores {
  int64_t series = 0;
  double mae = 0, rmse = 0, mape = 0, smape = 0, mase = 0;
};

// Adds one series at a time; MASE is left out (NaN in the result) when `season` <= 0 or a
// series' seasonal naive scale is zero.
class ScoreAccumulator {
 public:
  explicit ScoreAccumulator(int season) : season_(season) {}
  Status Add(std::span<const double> y, std::span<const double> yhat,
             std::span<const double> insample);
  ForecastScores Result() const;

 private:
  int season_;
  ForecastScores sums_;
  int64_t mape_series_ = 0, mase_series_ = 0;
};

}  // namespace deeprc::train
