#pragma once

// Time series in long format (one row per series and time step) turned into contiguous arrays:
// the input of windowing, training and scoring.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::train {

struct SeriesOptions {
  std::string id_column = "unique_id";
  std::string time_column = "ds";
  std::string target_column = "y";
  // Historical exogenous columns (numbers) read beside y: known up to each window's end only
  // (NeuralForecast's hist_exog_list). Empty: none.
  std::vector<std::string> exogenous_columns;
  // Future exogenous columns: known over the horizon too (calendar features, weather
  // forecasts; NeuralForecast's futr_exog_list), so forecasts need their values after each
  // series' end. A column may not be both.
  std::vector<std::string> future_columns;
  // A table without the target column reads as y = 0 (future values: ds and future columns).
  bool target_optional = false;
};

// Series s holds rows [offsets[s], offsets[s + 1]) of `y`, `ds` and each exogenous column,
// ordered by time. Series are ordered by id (as text).
struct SeriesSet {
  std::vector<std::string> ids;
  std::vector<int64_t> offsets{0};
  std::vector<double> y;
  Column ds;  // the time column's values in the same order (any type)
  std::vector<std::string> exogenous_names;
  std::vector<std::vector<double>> exogenous;  // [column][row]
  std::vector<std::string> future_names;
  std::vector<std::vector<double>> future;  // [column][row], the future exogenous columns

  int64_t num_series() const { return static_cast<int64_t>(ids.size()); }
  int64_t length(int64_t s) const { return offsets[s + 1] - offsets[s]; }
  std::span<const double> values(int64_t s) const {
    return {y.data() + offsets[s], static_cast<size_t>(length(s))};
  }
};

// Sorts by (id, time) and gathers the columns. Errors name the column: a missing one, a target or
// exogenous column (of either kind) that is not numeric or has nulls, a repeated (id, time) pair.
Result<SeriesSet> SeriesFromTable(const Table& table, const SeriesOptions& options = {});

// Splits every series into its first length - h points and its last h (the held-out test).
// A series with h or fewer points is an error naming it.
Result<std::pair<SeriesSet, SeriesSet>> SplitLast(const SeriesSet& series, int64_t h);

// Series of `test` matched to those of `train` by id: result[s] is the index in `test` of
// train's series s. Errors name a train series missing from `test`.
Result<std::vector<int64_t>> MatchSeries(const SeriesSet& train, const SeriesSet& test);

// The series at the given indexes, in that order.
Result<SeriesSet> SelectSeries(const SeriesSet& series, const std::vector<int64_t>& order);

// The `horizon` time values after each series' end, continuing its step (its last interval),
// as a series set with the same ids whose y (unknown) is zeros. Dates and timestamps whose last
// two points fall on the same day of the month (or both on a month's last day) at the same time
// of day step by calendar months (monthly, quarterly, yearly data: 31 Jan, 29 Feb, 31 Mar, ...,
// or the 1st of each month); other steps are a fixed count of days, hours, units. Integer and
// float time columns step by their last interval. Errors: a series of fewer than two points, a
// null time value at a series' end, a time column of another type.
Result<SeriesSet> ContinueTime(const SeriesSet& series, int64_t horizon);

}  // namespace deeprc::train
