#include "train/plugin/series_io.h"

#include <span>
#include <string>
#include <unordered_set>

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

namespace {

// " (missing: d1, d2, ...)": the dates after series s's end (its step continued) that `held_out`
// lacks; empty when they cannot be told.
std::string MissingDates(const SeriesSet& data, const SeriesSet& held_out, int64_t s,
                         int64_t horizon) {
  Result<SeriesSet> one = SelectSeries(data, {s});
  if (!one.ok()) return "";
  Result<SeriesSet> expected = ContinueTime(*one, horizon);
  if (!expected.ok()) return "";
  std::unordered_set<std::string> present;
  for (int64_t row = held_out.offsets[s]; row < held_out.offsets[s + 1]; ++row) {
    present.insert(held_out.ds.FormatValue(row));
  }
  std::string missing;
  for (int64_t row = 0; row < expected->ds.length(); ++row) {
    std::string date = expected->ds.FormatValue(row);
    if (present.count(date) == 0) missing += (missing.empty() ? "" : ", ") + date;
  }
  return missing.empty() ? "" : " (missing: " + missing + ")";
}

// Whether series s of `held_out` starts after series s of `data` ends (true when the time
// columns cannot be compared: different or non-numeric types).
bool StartsAfter(const SeriesSet& data, const SeriesSet& held_out, int64_t s) {
  if (!(data.ds.type() == held_out.ds.type()) || data.length(s) == 0 || held_out.length(s) == 0) {
    return true;
  }
  const int64_t last = data.offsets[s + 1] - 1, first = held_out.offsets[s];
  if (data.ds.IsNull(last) || held_out.ds.IsNull(first)) return true;
  return VisitType(data.ds.type_id(), [&](auto tag) {
    using Tag = decltype(tag);
    if constexpr (requires { typename Tag::CType; }) {
      using T = typename Tag::CType;
      return held_out.ds.Value<T>(first) > data.ds.Value<T>(last);
    } else {
      return true;
    }
  });
}

}  // namespace

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
      return Status::Invalid("{}: series '{}' has {} test points, fewer than h = {}{}", where,
                             held_out.ids[s], held_out.length(s), horizon,
                             MissingDates(result.first, held_out, s, horizon));
    }
    if (test != nullptr && !StartsAfter(result.first, held_out, s)) {
      return Status::Invalid("{}: series '{}' starts at {} = {}, not after the data's last {}",
                             where, held_out.ids[s], options.time_column,
                             held_out.ds.FormatValue(held_out.offsets[s]),
                             result.first.ds.FormatValue(result.first.offsets[s + 1] - 1));
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
