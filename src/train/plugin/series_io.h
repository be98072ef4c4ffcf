#pragma once

// What `deeprc train` and the forecast.* runtime functions share: tables read and written by
// name (a `.drt` name is the binary table file, anything else CSV), the training part and the
// held-out test of a data set, and the scores of a forecast against the test.

#include <string>
#include <utility>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"
#include "deeprc/train/forecaster.h"
#include "deeprc/train/metrics.h"
#include "deeprc/train/series.h"

namespace deeprc::train {

bool EndsWith(const std::string& text, const std::string& suffix);
Result<Table> ReadTable(const std::string& path);
Status WriteTable(const Table& table, const std::string& path);

// The series to train on and the held-out series (same order, at least h points each): with
// `test` null, the last h points of every series of `data` are held out; otherwise `test`'s
// series, matched to `data`'s by id, read with the future exogenous columns of `options` (not
// its historical ones). `where` names the inputs in errors.
Result<std::pair<SeriesSet, SeriesSet>> TrainAndTest(SeriesSet data, const Table* test,
                                                     int64_t horizon, const SeriesOptions& options,
                                                     const std::string& where);

// The forecast's first h points per series scored against the held-out series (MASE against
// the training series with this season).
Result<ForecastScores> ScoreForecast(const SeriesSet& train, const SeriesSet& test,
                                     const Forecast& forecast, int season);

}  // namespace deeprc::train
