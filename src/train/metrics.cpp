#include "deeprc/train/metrics.h"

#include <cmath>
#include <limits>

namespace deeprc::train {
namespace {

Status CheckPair(std::span<const double> y, std::span<const double> yhat, const char* metric) {
  if (y.size() != yhat.size()) {
    return Status::Invalid("{}: {} actual values but {} forecasts", metric, y.size(),
                           yhat.size());
  }
  if (y.empty()) return Status::Invalid("{}: no values to score", metric);
  return Status::OK();
}

double MeanAbsoluteError(std::span<const double> y, std::span<const double> yhat) {
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += std::abs(y[i] - yhat[i]);
  return sum / static_cast<double>(y.size());
}

}  // namespace

Result<double> Mae(std::span<const double> y, std::span<const double> yhat) {
  DEEPRC_RETURN_NOT_OK(CheckPair(y, yhat, "MAE"));
  return MeanAbsoluteError(y, yhat);
}

Result<double> Rmse(std::span<const double> y, std::span<const double> yhat) {
  DEEPRC_RETURN_NOT_OK(CheckPair(y, yhat, "RMSE"));
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += (y[i] - yhat[i]) * (y[i] - yhat[i]);
  return std::sqrt(sum / static_cast<double>(y.size()));
}

Result<double> Mape(std::span<const double> y, std::span<const double> yhat) {
  DEEPRC_RETURN_NOT_OK(CheckPair(y, yhat, "MAPE"));
  double sum = 0;
  int64_t count = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0) continue;
    sum += std::abs(y[i] - yhat[i]) / std::abs(y[i]);
    ++count;
  }
  if (count == 0) return Status::Invalid("MAPE: every actual value is zero");
  return 100 * sum / static_cast<double>(count);
}

Result<double> Smape(std::span<const double> y, std::span<const double> yhat) {
  DEEPRC_RETURN_NOT_OK(CheckPair(y, yhat, "sMAPE"));
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double denominator = std::abs(y[i]) + std::abs(yhat[i]);
    if (denominator > 0) sum += std::abs(y[i] - yhat[i]) / denominator;
  }
  return 200 * sum / static_cast<double>(y.size());
}

Result<double> Mase(std::span<const double> y, std::span<const double> yhat,
                    std::span<const double> insample, int season) {
  DEEPRC_RETURN_NOT_OK(CheckPair(y, yhat, "MASE"));
  if (season < 1) return Status::Invalid("MASE: season must be at least 1, got {}", season);
  if (insample.size() <= static_cast<size_t>(season)) {
    return Status::Invalid("MASE: {} in-sample values, need more than the season {}",
                           insample.size(), season);
  }
  double scale = 0;
  for (size_t t = season; t < insample.size(); ++t) {
    scale += std::abs(insample[t] - insample[t - season]);
  }
  scale /= static_cast<double>(insample.size() - season);
  if (scale == 0) {
    return Status::Invalid("MASE: the in-sample series does not change at lag {}", season);
  }
  return MeanAbsoluteError(y, yhat) / scale;
}

Result<double> Nse(std::span<const double> y, std::span<const double> yhat) {
  DEEPRC_RETURN_NOT_OK(CheckPair(y, yhat, "NSE"));
  double mean = 0;
  for (double value : y) mean += value;
  mean /= static_cast<double>(y.size());
  double error = 0, spread = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    error += (y[i] - yhat[i]) * (y[i] - yhat[i]);
    spread += (y[i] - mean) * (y[i] - mean);
  }
  if (spread == 0) return Status::Invalid("NSE: the actual values are constant");
  return 1 - error / spread;
}

Result<double> NormalizedNse(std::span<const double> y, std::span<const double> yhat) {
  DEEPRC_ASSIGN_OR_RAISE(double nse, Nse(y, yhat));
  return 1 / (2 - nse);
}

Result<std::vector<double>> SeasonalNaive(std::span<const double> insample, int season,
                                          int horizon) {
  if (season < 1 || horizon < 0) {
    return Status::Invalid("seasonal naive: season {} must be >= 1 and horizon {} >= 0", season,
                           horizon);
  }
  if (insample.size() < static_cast<size_t>(season)) {
    return Status::Invalid("seasonal naive: {} in-sample values, fewer than the season {}",
                           insample.size(), season);
  }
  std::vector<double> forecast(horizon);
  const size_t start = insample.size() - season;
  for (int i = 0; i < horizon; ++i) forecast[i] = insample[start + i % season];
  return forecast;
}

Status ScoreAccumulator::Add(std::span<const double> y, std::span<const double> yhat,
                             std::span<const double> insample) {
  DEEPRC_ASSIGN_OR_RAISE(double mae, Mae(y, yhat));
  DEEPRC_ASSIGN_OR_RAISE(double rmse, Rmse(y, yhat));
  DEEPRC_ASSIGN_OR_RAISE(double smape, Smape(y, yhat));
  sums_.mae += mae;
  sums_.rmse += rmse;
  sums_.smape += smape;
  if (auto mape = Mape(y, yhat); mape.ok()) {
    sums_.mape += *mape;
    ++mape_series_;
  }
  if (season_ > 0) {
    if (auto mase = Mase(y, yhat, insample, season_); mase.ok()) {
      sums_.mase += *mase;
      ++mase_series_;
    }
  }
  ++sums_.series;
  return Status::OK();
}

ForecastScores ScoreAccumulator::Result() const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  ForecastScores scores;
  scores.series = sums_.series;
  if (sums_.series == 0) {
    scores.mae = scores.rmse = scores.mape = scores.smape = scores.mase = kNaN;
    return scores;
  }
  const auto n = static_cast<double>(sums_.series);
  scores.mae = sums_.mae / n;
  scores.rmse = sums_.rmse / n;
  scores.smape = sums_.smape / n;
  scores.mape = mape_series_ ? sums_.mape / static_cast<double>(mape_series_) : kNaN;
  scores.mase = mase_series_ ? sums_.mase / static_cast<double>(mase_series_) : kNaN;
  return scores;
}

}  // namespace deeprc::train
