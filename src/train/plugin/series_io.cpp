#include "train/plugin/series_io.h"

#include <span>

#include "deeprc/table/csv.h"
#include "deeprc/table/table_file.h"

namespace deeprc::train {

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Result<Table> ReadTable(const std::string& path) {
  if (EndsWith(path, ".drt")) return ReadTableFile(path);
  return csv::ReadCsv(path);
}

Status WriteTable(const Table& table, const std::string& path) {
  if (EndsWith(path, ".drt")) return WriteTableFile(table, path);
  return csv::WriteCsv(table, path);
}

Result<std::pair<SeriesSet, SeriesSet>> TrainAndTest(SeriesSet data, const Table* test,
                                                     int64_t horizon, const SeriesOptions& options,
                                                     const std::string& where) {
  std::pair<SeriesSet, SeriesSet> result;
  if (test == nullptr) {
    DEEPRC_ASSIGN_OR_RAISE(result, SplitLast(data, horizon));
  } else {
    result.first = std::move(data);
    // The held-out part needs the future exogenous columns (the forecast reads them), not the
    // historical ones.
    SeriesOptions held_out_options = options;
    held_out_options.exogenous_columns.clear();
    Result<SeriesSet> read = SeriesFromTable(*test, held_out_options);
    if (!read.ok()) return read.status().WithContext(where);
    SeriesSet unordered = std::move(read).ValueOrDie();
    DEEPRC_ASSIGN_OR_RAISE(auto matched, MatchSeries(result.first, unordered));
    DEEPRC_ASSIGN_OR_RAISE(result.second, SelectSeries(unordered, matched));
  }
  const SeriesSet& held_out = result.second;
  for (int64_t s = 0; s < held_out.num_series(); ++s) {
    if (held_out.length(s) < horizon) {
      return Status::Invalid("{}: series '{}' has {} test points, fewer than h = {}", where,
                             held_out.ids[s], held_out.length(s), horizon);
    }
  }
  return result;
}

Result<ForecastScores> ScoreForecast(const SeriesSet& train, const SeriesSet& test,
                                     const Forecast& forecast, int season) {
  if (forecast.series != train.num_series() || test.num_series() != train.num_series()) {
    return Status::Invalid("scoring: {} forecasts for {} series with {} test series",
                           forecast.series, train.num_series(), test.num_series());
  }
  const auto h = static_cast<size_t>(forecast.horizon);
  ScoreAccumulator scores(season);
  for (int64_t s = 0; s < train.num_series(); ++s) {
    DEEPRC_RETURN_NOT_OK(scores.Add(test.values(s).first(h),
                                    std::span<const double>(forecast.mean).subspan(s * h, h),
                                    train.values(s)));
  }
  return scores.Result();
}

}  // namespace deeprc::train
