#include "deeprc/train/series.h"

#include <algorithm>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "deeprc/compute/cast.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/sort.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/temporal.h"

namespace deeprc::train {
namespace {

Result<std::vector<double>> NumbersOf(const Column& column, const std::string& name) {
  if (!IsNumeric(column.type_id()) && column.type_id() != TypeId::kBool) {
    return Status::TypeError("column '{}' must hold numbers, found {}", name,
                             column.type().ToString());
  }
  if (column.has_nulls()) {
    for (int64_t i = 0; i < column.length(); ++i) {
      if (column.IsNull(i)) {
        return Status::Invalid("column '{}' has a missing value in row {} (after sorting by id "
                               "and time); fill or drop it first",
                               name, i);
      }
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(Column doubles, compute::Cast(column, DataType::Float64()));
  const double* values = doubles.Values<double>();
  return std::vector<double>(values, values + doubles.length());
}

// The id as text: ids may be integers (us_carrier_passenger.csv) or strings (M4).
std::string IdText(const Column& column, int64_t row) {
  if (column.type_id() == TypeId::kString) return std::string(column.GetString(row));
  return column.FormatValue(row);
}

struct Piece {
  int64_t series, begin, length;
};

// The pieces, in order, as the series of a new set.
Result<SeriesSet> Select(const SeriesSet& series, const std::vector<Piece>& pieces) {
  if (series.ds.length() != static_cast<int64_t>(series.y.size())) {
    return Status::Invalid("series: {} time values for {} values", series.ds.length(),
                           series.y.size());
  }
  SeriesSet out;
  out.exogenous_names = series.exogenous_names;
  out.exogenous.resize(series.exogenous.size());
  out.future_names = series.future_names;
  out.future.resize(series.future.size());
  std::vector<int64_t> rows;
  for (const Piece& piece : pieces) {
    out.ids.push_back(series.ids[piece.series]);
    for (int64_t i = 0; i < piece.length; ++i) {
      rows.push_back(series.offsets[piece.series] + piece.begin + i);
    }
    out.offsets.push_back(out.offsets.back() + piece.length);
  }
  out.y.reserve(rows.size());
  for (int64_t row : rows) out.y.push_back(series.y[row]);
  for (size_t c = 0; c < series.exogenous.size(); ++c) {
    for (int64_t row : rows) out.exogenous[c].push_back(series.exogenous[c][row]);
  }
  for (size_t c = 0; c < series.future.size(); ++c) {
    for (int64_t row : rows) out.future[c].push_back(series.future[c][row]);
  }
  DEEPRC_ASSIGN_OR_RAISE(out.ds, compute::Take(series.ds, rows));
  return out;
}

// A point in time on the calendar: its day (since the epoch), its date and the time of day in
// the column's units.
struct CalendarPoint {
  int64_t days = 0, time = 0, year = 0;
  unsigned month = 0, day = 0;
  int64_t month_index() const { return year * 12 + static_cast<int64_t>(month) - 1; }
};

int64_t FirstDayOfMonth(int64_t month_index) {
  const int64_t year = month_index >= 0 ? month_index / 12 : (month_index - 11) / 12;
  return temporal::DaysFromCivil(year, static_cast<unsigned>(month_index - year * 12 + 1), 1);
}

CalendarPoint ToCalendar(int64_t value, int64_t units_per_day) {
  CalendarPoint point;
  point.days = value >= 0 ? value / units_per_day : -((-value + units_per_day - 1) / units_per_day);
  point.time = value - point.days * units_per_day;
  temporal::CivilFromDays(point.days, &point.year, &point.month, &point.day);
  return point;
}

bool IsLastDayOfMonth(const CalendarPoint& point) {
  return FirstDayOfMonth(point.month_index() + 1) == point.days + 1;
}

// Values after `end` stepping by calendar months when `before` -> `end` is a whole number of
// months (same day of the month, or both a month's last day, at the same time of day); nothing
// otherwise.
std::optional<std::vector<int64_t>> CalendarSteps(int64_t before, int64_t end,
                                                  int64_t units_per_day, int64_t horizon) {
  const CalendarPoint a = ToCalendar(before, units_per_day), b = ToCalendar(end, units_per_day);
  const int64_t months = b.month_index() - a.month_index();
  if (a.time != b.time || months < 1) return std::nullopt;
  const bool month_ends = IsLastDayOfMonth(a) && IsLastDayOfMonth(b);
  if (!month_ends && a.day != b.day) return std::nullopt;
  std::vector<int64_t> values;
  for (int64_t i = 1; i <= horizon; ++i) {
    const int64_t month = b.month_index() + months * i;
    const int64_t first = FirstDayOfMonth(month);
    const int64_t length = FirstDayOfMonth(month + 1) - first;
    // The same day of the month, or the month's last day (also when the day does not exist).
    const int64_t day = month_ends ? length : std::min<int64_t>(b.day, length);
    values.push_back((first + day - 1) * units_per_day + b.time);
  }
  return values;
}

}  // namespace

Result<SeriesSet> ContinueTime(const SeriesSet& series, int64_t horizon) {
  SeriesSet future;
  future.ids = series.ids;
  for (int64_t s = 0; s < series.num_series(); ++s) {
    if (series.length(s) < 2) {
      return Status::Invalid("series '{}' has {} point(s): its time cannot be continued by its "
                             "last interval; give the future time values",
                             series.ids[s], series.length(s));
    }
    future.offsets.push_back(future.offsets.back() + horizon);
  }
  future.y.assign(static_cast<size_t>(future.offsets.back()), 0.0);  // unknown: not read
  const Column& ds = series.ds;
  const TypeId type = ds.type_id();
  int64_t units_per_day = 0;  // 0: no calendar
  if (type == TypeId::kDate32) units_per_day = 1;
  if (type == TypeId::kTimestamp) units_per_day = 86400 * temporal::UnitsPerSecond(ds.type().unit);
  return VisitType(type, [&](auto tag) -> Result<SeriesSet> {
    using Tag = decltype(tag);
    if constexpr (requires { typename Tag::CType; }) {
      using T = typename Tag::CType;
      std::vector<std::optional<T>> values;
      for (int64_t s = 0; s < series.num_series(); ++s) {
        const int64_t last = series.offsets[s + 1] - 1;
        if (ds.IsNull(last) || ds.IsNull(last - 1)) {
          return Status::Invalid("series '{}': null time value at its end", series.ids[s]);
        }
        const T end = ds.Value<T>(last), before = ds.Value<T>(last - 1);
        if constexpr (std::is_integral_v<T>) {
          if (units_per_day > 0) {
            if (auto steps = CalendarSteps(before, end, units_per_day, horizon)) {
              for (int64_t value : *steps) values.emplace_back(static_cast<T>(value));
              continue;
            }
          }
        }
        const T step = static_cast<T>(end - before);
        for (int64_t i = 1; i <= horizon; ++i) values.emplace_back(static_cast<T>(end + step * i));
      }
      DEEPRC_ASSIGN_OR_RAISE(future.ds, MakeColumn<T>(ds.type(), values));
      return std::move(future);
    } else {
      return Status::TypeError("time column of type {} cannot be continued: give the future "
                               "time values",
                               ds.type().ToString());
    }
  });
}

Result<SeriesSet> SeriesFromTable(const Table& table, const SeriesOptions& options) {
  const Schema& schema = table.schema();
  DEEPRC_ASSIGN_OR_RAISE(int id_index, schema.GetFieldIndex(options.id_column));
  DEEPRC_RETURN_NOT_OK(schema.GetFieldIndex(options.time_column).status());
  const bool has_target = schema.GetFieldIndex(options.target_column).ok();
  if (!has_target && !options.target_optional) {
    DEEPRC_RETURN_NOT_OK(schema.GetFieldIndex(options.target_column).status());
  }
  // Ids sort as text so that the series order does not depend on how the ids were typed.
  Table keyed = table;
  std::string id_sort_column = options.id_column;
  if (table.column(id_index).type_id() != TypeId::kString) {
    DEEPRC_ASSIGN_OR_RAISE(Column text, compute::Cast(table.column(id_index), DataType::String()));
    id_sort_column = "__deeprc_id_text";
    DEEPRC_ASSIGN_OR_RAISE(keyed, table.AddColumn({id_sort_column, DataType::String()}, text));
  }
  compute::SortOptions sort;
  sort.keys = {{id_sort_column}, {options.time_column}};
  DEEPRC_ASSIGN_OR_RAISE(Table sorted, compute::Sort(keyed, sort));

  SeriesSet series;
  DEEPRC_ASSIGN_OR_RAISE(Column ids, sorted.GetColumn(options.id_column));
  DEEPRC_ASSIGN_OR_RAISE(series.ds, sorted.GetColumn(options.time_column));
  if (has_target) {
    DEEPRC_ASSIGN_OR_RAISE(Column target, sorted.GetColumn(options.target_column));
    DEEPRC_ASSIGN_OR_RAISE(series.y, NumbersOf(target, options.target_column));
  } else {
    series.y.assign(static_cast<size_t>(sorted.num_rows()), 0.0);
  }
  for (const auto& name : options.exogenous_columns) {
    DEEPRC_ASSIGN_OR_RAISE(Column column, sorted.GetColumn(name));
    DEEPRC_ASSIGN_OR_RAISE(auto values, NumbersOf(column, name));
    series.exogenous_names.push_back(name);
    series.exogenous.push_back(std::move(values));
  }
  for (const auto& name : options.future_columns) {
    if (std::find(options.exogenous_columns.begin(), options.exogenous_columns.end(), name) !=
        options.exogenous_columns.end()) {
      return Status::Invalid("column '{}' is named as both a historical and a future exogenous "
                             "column",
                             name);
    }
    DEEPRC_ASSIGN_OR_RAISE(Column column, sorted.GetColumn(name));
    DEEPRC_ASSIGN_OR_RAISE(auto values, NumbersOf(column, name));
    series.future_names.push_back(name);
    series.future.push_back(std::move(values));
  }
  const int64_t rows = sorted.num_rows();
  for (int64_t row = 0; row < rows; ++row) {
    if (ids.IsNull(row)) {
      return Status::Invalid("column '{}' has a missing id", options.id_column);
    }
    if (row > 0 && ids.IsValid(row - 1) && IdText(ids, row) == IdText(ids, row - 1)) {
      if (series.ds.FormatValue(row) == series.ds.FormatValue(row - 1)) {
        return Status::Invalid("series '{}' has two rows at {} = {}", IdText(ids, row),
                               options.time_column, series.ds.FormatValue(row));
      }
      continue;
    }
    if (row > 0) series.offsets.push_back(row);
    series.ids.push_back(IdText(ids, row));
  }
  if (rows > 0) series.offsets.push_back(rows);
  return series;
}

Result<std::pair<SeriesSet, SeriesSet>> SplitLast(const SeriesSet& series, int64_t h) {
  if (h < 1) return Status::Invalid("the held-out horizon must be at least 1, got {}", h);
  std::vector<Piece> head, tail;
  for (int64_t s = 0; s < series.num_series(); ++s) {
    const int64_t length = series.length(s);
    if (length <= h) {
      return Status::Invalid("series '{}' has {} points, not more than the horizon {}",
                             series.ids[s], length, h);
    }
    head.push_back({s, 0, length - h});
    tail.push_back({s, length - h, h});
  }
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet train, Select(series, head));
  DEEPRC_ASSIGN_OR_RAISE(SeriesSet test, Select(series, tail));
  return std::make_pair(std::move(train), std::move(test));
}

Result<SeriesSet> SelectSeries(const SeriesSet& series, const std::vector<int64_t>& order) {
  std::vector<Piece> pieces;
  for (int64_t s : order) {
    if (s < 0 || s >= series.num_series()) {
      return Status::Invalid("series index {} out of range ({} series)", s, series.num_series());
    }
    pieces.push_back({s, 0, series.length(s)});
  }
  return Select(series, pieces);
}

Result<std::vector<int64_t>> MatchSeries(const SeriesSet& train, const SeriesSet& test) {
  std::unordered_map<std::string, int64_t> index;
  for (int64_t s = 0; s < test.num_series(); ++s) index.emplace(test.ids[s], s);
  std::vector<int64_t> matched;
  for (const auto& id : train.ids) {
    auto found = index.find(id);
    if (found == index.end()) return Status::KeyError("series '{}' is not in the test data", id);
    matched.push_back(found->second);
  }
  return matched;
}

}  // namespace deeprc::train
