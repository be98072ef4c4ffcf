#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "deeprc/train/forecaster.h"

namespace deeprc::train {

Result<Table> ForecastTable(const SeriesSet& future, const std::string& model,
                            const Forecast& forecast) {
  if (future.num_series() != forecast.series) {
    return Status::Invalid("forecast table: {} forecast series but {} series of time values",
                           forecast.series, future.num_series());
  }
  std::vector<int64_t> rows;
  std::vector<std::optional<std::string>> ids, models;
  std::vector<std::optional<double>> yhat, lo, hi;
  const bool interval = !forecast.lo.empty();
  for (int64_t s = 0; s < forecast.series; ++s) {
    if (future.length(s) < forecast.horizon) {
      return Status::Invalid("forecast table: series '{}' has {} time values for horizon {}",
                             future.ids[s], future.length(s), forecast.horizon);
    }
    for (int64_t i = 0; i < forecast.horizon; ++i) {
      rows.push_back(future.offsets[s] + i);
      ids.emplace_back(future.ids[s]);
      models.emplace_back(model);
      const int64_t k = s * forecast.horizon + i;
      yhat.emplace_back(forecast.mean[k]);
      if (interval) {
        lo.emplace_back(forecast.lo[k]);
        hi.emplace_back(forecast.hi[k]);
      }
    }
  }
  std::vector<Field> fields{{"unique_id", DataType::String()},
                            {"ds", future.ds.type()},
                            {"model", DataType::String()},
                            {"yhat", DataType::Float64()}};
  std::vector<Column> columns;
  DEEPRC_ASSIGN_OR_RAISE(Column id_column, MakeStringColumn(ids));
  columns.push_back(std::move(id_column));
  DEEPRC_ASSIGN_OR_RAISE(Column ds, compute::Take(future.ds, rows));
  columns.push_back(std::move(ds));
  DEEPRC_ASSIGN_OR_RAISE(Column model_column, MakeStringColumn(models));
  columns.push_back(std::move(model_column));
  DEEPRC_ASSIGN_OR_RAISE(Column yhat_column, MakeColumn<double>(DataType::Float64(), yhat));
  columns.push_back(std::move(yhat_column));
  if (interval) {
    fields.push_back({"yhat_lo_80", DataType::Float64()});
    fields.push_back({"yhat_hi_80", DataType::Float64()});
    DEEPRC_ASSIGN_OR_RAISE(Column lo_column, MakeColumn<double>(DataType::Float64(), lo));
    DEEPRC_ASSIGN_OR_RAISE(Column hi_column, MakeColumn<double>(DataType::Float64(), hi));
    columns.push_back(std::move(lo_column));
    columns.push_back(std::move(hi_column));
  }
  return Table::Make(Schema(std::move(fields)), std::move(columns));
}

}  // namespace deeprc::train
