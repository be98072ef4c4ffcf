#include "deeprc/train/windows.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "deeprc/table/builder.h"
#include "deeprc/table/temporal.h"
#include "testing/assertions.h"

namespace deeprc::train {
namespace {

SeriesSet RandomSeries(std::mt19937_64& random, int count, int min_length, int max_length) {
  SeriesSet series;
  std::normal_distribution<double> noise(50, 10);
  for (int s = 0; s < count; ++s) {
    series.ids.push_back("s" + std::to_string(s));
    const int length = min_length + static_cast<int>(random() % (max_length - min_length + 1));
    for (int t = 0; t < length; ++t) series.y.push_back(noise(random));
    series.offsets.push_back(static_cast<int64_t>(series.y.size()));
  }
  return series;
}

TEST(WindowsTest, WindowsCoverTheTrainingPart) {
  std::mt19937_64 random(3);
  for (int trial = 0; trial < 10; ++trial) {
    const SeriesSet series = RandomSeries(random, 5, 30, 60);
    WindowOptions options;
    options.input_size = 1 + random() % 12;
    options.horizon = 1 + random() % 6;
    options.step = 1 + random() % 3;
    options.validation_size = random() % 8;
    ASSERT_OK_AND_ASSIGN(WindowSet windows, WindowSet::Make(series, options));
    int64_t expected = 0;
    for (int64_t s = 0; s < series.num_series(); ++s) {
      const int64_t last_end = series.length(s) - options.validation_size - options.horizon;
      expected += (last_end - options.input_size) / options.step + 1;
    }
    EXPECT_EQ(static_cast<int64_t>(windows.training().size()), expected);
    for (const Window& w : windows.training()) {
      EXPECT_GE(w.end, options.input_size);
      EXPECT_LE(w.end + options.horizon, series.length(w.series) - options.validation_size);
    }
    for (const Window& w : windows.validation()) {
      EXPECT_EQ(w.end + options.horizon > series.length(w.series) - options.validation_size,
                true);
      EXPECT_LE(w.end + options.horizon, series.length(w.series));
    }
    if (options.validation_size > 0) EXPECT_FALSE(windows.validation().empty());
    // Identity windows hold the series values.
    Batch batch;
    windows.Fill(windows.training(), &batch);
    for (int64_t b = 0; b < batch.size; ++b) {
      const Window& w = windows.training()[b];
      auto values = series.values(w.series);
      for (int64_t i = 0; i < options.input_size; ++i) {
        EXPECT_FLOAT_EQ(batch.x[b * options.input_size + i],
                        static_cast<float>(values[w.end - options.input_size + i]));
      }
      for (int64_t i = 0; i < options.horizon; ++i) {
        EXPECT_FLOAT_EQ(batch.y[b * options.horizon + i], static_cast<float>(values[w.end + i]));
      }
    }
  }
}

TEST(WindowsTest, ScalersNormalizeTheInput) {
  std::mt19937_64 random(5);
  const SeriesSet series = RandomSeries(random, 3, 40, 40);
  for (auto scaler : {ScalerType::kStandard, ScalerType::kRobust, ScalerType::kMinMax}) {
    WindowOptions options{.input_size = 9, .horizon = 3, .step = 4, .scaler = scaler};
    ASSERT_OK_AND_ASSIGN(WindowSet windows, WindowSet::Make(series, options));
    Batch batch;
    windows.Fill(windows.training(), &batch);
    for (int64_t b = 0; b < batch.size; ++b) {
      std::vector<float> x(batch.x.begin() + b * 9, batch.x.begin() + (b + 1) * 9);
      std::vector<float> sorted = x;
      std::sort(sorted.begin(), sorted.end());
      if (scaler == ScalerType::kStandard) {
        double mean = 0, squares = 0;
        for (float v : x) mean += v / 9;
        for (float v : x) squares += (v - mean) * (v - mean) / 9;
        EXPECT_NEAR(mean, 0, 1e-5);
        EXPECT_NEAR(squares, 1, 1e-4);
      } else if (scaler == ScalerType::kRobust) {
        EXPECT_NEAR(sorted[4], 0, 1e-6);  // median
      } else {
        EXPECT_NEAR(sorted.front(), 0, 1e-6);
        EXPECT_NEAR(sorted.back(), 1, 1e-6);
      }
      // Targets are scaled by the same numbers.
      const Window& w = windows.training()[b];
      const float original = static_cast<float>(series.values(w.series)[w.end]);
      EXPECT_NEAR(batch.y[b * 3] * batch.scale[b] + batch.loc[b], original, 1e-3);
    }
  }
  EXPECT_FALSE(ParseScaler("zscore").ok());
}

TEST(WindowsTest, ShortSeriesArePaddedAndBadSizesRejected) {
  SeriesSet series;
  series.ids = {"short"};
  series.y = {1, 2, 3, 4, 5};
  series.offsets = {0, 5};
  ASSERT_OK_AND_ASSIGN(WindowSet windows,
                       WindowSet::Make(series, {.input_size = 10, .horizon = 2}));
  ASSERT_EQ(windows.training().size(), 1u);
  Batch batch;
  windows.Fill(windows.training(), &batch);
  EXPECT_EQ(std::count(batch.x_mask.begin(), batch.x_mask.end(), 1.0f), 3);
  EXPECT_EQ(batch.y, (std::vector<float>{4, 5}));
  EXPECT_FALSE(WindowSet::Make(series, {.input_size = 3, .horizon = 5}).ok());
  EXPECT_FALSE(WindowSet::Make(series, {.input_size = 0, .horizon = 1}).ok());
}

TEST(WindowsTest, FutureColumnsCoverInputAndHorizon) {
  std::mt19937_64 random(7);
  std::normal_distribution<double> normal(0, 1);
  SeriesSet series = RandomSeries(random, 3, 20, 30);
  series.future_names = {"a", "b"};
  series.future.resize(2);
  for (auto& column : series.future) {
    for (size_t i = 0; i < series.y.size(); ++i) column.push_back(normal(random));
  }
  const int64_t input = 6, h = 4;
  ASSERT_OK_AND_ASSIGN(WindowSet windows, WindowSet::Make(series, {.input_size = input,
                                                                   .horizon = h}));
  Batch batch;
  windows.Fill(windows.training(), &batch);
  ASSERT_EQ(batch.future, 2);
  ASSERT_EQ(batch.x_future.size(), static_cast<size_t>(batch.size * (input + h) * 2));
  for (int64_t b = 0; b < batch.size; ++b) {
    const Window& w = windows.training()[b];
    for (int64_t i = 0; i < input + h; ++i) {
      for (int64_t e = 0; e < 2; ++e) {
        const double expected =
            series.future[e][series.offsets[w.series] + w.end - input + i];
        EXPECT_FLOAT_EQ(batch.x_future[(b * (input + h) + i) * 2 + e],
                        static_cast<float>(expected));
      }
    }
  }

  // Forecast windows read the points past each series' end from `ahead`.
  SeriesSet ahead;
  ahead.future_names = series.future_names;
  ahead.future.resize(2);
  for (int64_t s = 0; s < series.num_series(); ++s) {
    ahead.ids.push_back(series.ids[s]);
    for (int64_t i = 0; i < h + 1; ++i) {
      ahead.y.push_back(0);
      for (auto& column : ahead.future) column.push_back(normal(random));
    }
    ahead.offsets.push_back(static_cast<int64_t>(ahead.y.size()));
  }
  ASSERT_OK_AND_ASSIGN(WindowSet forecast,
                       WindowSet::Make(series, {.input_size = input, .horizon = h,
                                                .forecast_only = true},
                                       &ahead));
  const auto last = forecast.ForecastWindows();
  forecast.Fill(last, &batch);
  for (int64_t s = 0; s < series.num_series(); ++s) {
    for (int64_t i = 0; i < input + h; ++i) {
      const int64_t t = series.length(s) - input + i;
      const double expected = t < series.length(s)
                                  ? series.future[1][series.offsets[s] + t]
                                  : ahead.future[1][ahead.offsets[s] + t - series.length(s)];
      EXPECT_FLOAT_EQ(batch.x_future[(s * (input + h) + i) * 2 + 1], static_cast<float>(expected));
    }
  }

  // Too few future dates, or a missing column: errors naming them.
  SeriesSet short_ahead = ahead;
  short_ahead.offsets = {0, h + 1, 2 * h + 1, 3 * h};
  auto too_short = WindowSet::Make(series, {.input_size = input, .horizon = h}, &short_ahead);
  ASSERT_FALSE(too_short.ok());
  EXPECT_NE(too_short.status().ToString().find("series 's2'"), std::string::npos)
      << too_short.status().ToString();
  SeriesSet lacking = ahead;
  lacking.future_names = {"a"};
  lacking.future.resize(1);
  auto missing = WindowSet::Make(series, {.input_size = input, .horizon = h}, &lacking);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().ToString().find("'b'"), std::string::npos)
      << missing.status().ToString();
}

// A one-series set whose time column holds `ds` (date32 days).
SeriesSet DatedSeries(const std::vector<int32_t>& days) {
  SeriesSet series;
  series.ids = {"s"};
  series.y.assign(days.size(), 1.0);
  series.offsets = {0, static_cast<int64_t>(days.size())};
  std::vector<std::optional<int32_t>> values(days.begin(), days.end());
  series.ds = *MakeColumn<int32_t>(DataType::Date32(), values);
  return series;
}

int32_t Date(int year, int month, int day) {
  return *temporal::ParseDate(fmt::format("{:04d}-{:02d}-{:02d}", year, month, day));
}

// Days of a month, counted independently of the code under test.
int LastDay(int year, int month) {
  if (month == 2) return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28;
  return (month == 4 || month == 6 || month == 9 || month == 11) ? 30 : 31;
}

TEST(ContinueTimeTest, MonthlyDatesStepByCalendarMonths) {
  std::mt19937_64 random(17);
  for (int trial = 0; trial < 20; ++trial) {
    // Month ends or a fixed day of the month, one month or a quarter apart, starting anywhere;
    // 14 steps cross at least one year end and one February.
    const int year = 1990 + static_cast<int>(random() % 40);
    const int month = 1 + static_cast<int>(random() % 12);
    const int every = trial % 3 == 0 ? 3 : 1;
    const bool month_end = trial % 2 == 0;
    const int fixed_day = 1 + static_cast<int>(random() % 28);
    auto point = [&](int k) {
      const int index = (year * 12 + month - 1) + k * every;
      const int y = index / 12, m = index % 12 + 1;
      return Date(y, m, month_end ? LastDay(y, m) : fixed_day);
    };
    const SeriesSet series = DatedSeries({point(0), point(1), point(2)});
    ASSERT_OK_AND_ASSIGN(SeriesSet future, ContinueTime(series, 14));
    ASSERT_EQ(future.length(0), 14);
    for (int k = 0; k < 14; ++k) {
      EXPECT_EQ(future.ds.Value<int32_t>(k), point(3 + k))
          << "trial " << trial << " step " << k << ": " << future.ds.FormatValue(k);
    }
  }
  // us_carrier_passenger.csv's shape: month ends, into a leap February and over a year end.
  ASSERT_OK_AND_ASSIGN(SeriesSet future,
                       ContinueTime(DatedSeries({Date(2023, 10, 31), Date(2023, 11, 30)}), 4));
  EXPECT_EQ(future.ds.FormatValue(0), "2023-12-31");
  EXPECT_EQ(future.ds.FormatValue(1), "2024-01-31");
  EXPECT_EQ(future.ds.FormatValue(2), "2024-02-29");
  EXPECT_EQ(future.ds.FormatValue(3), "2024-03-31");
  // The 1st of each month, and yearly.
  ASSERT_OK_AND_ASSIGN(future, ContinueTime(DatedSeries({Date(2022, 12, 1), Date(2023, 1, 1)}), 2));
  EXPECT_EQ(future.ds.FormatValue(1), "2023-03-01");
  ASSERT_OK_AND_ASSIGN(future,
                       ContinueTime(DatedSeries({Date(2021, 12, 31), Date(2022, 12, 31)}), 2));
  EXPECT_EQ(future.ds.FormatValue(1), "2024-12-31");
}

TEST(ContinueTimeTest, FixedStepsStayFixed) {
  std::mt19937_64 random(19);
  for (int trial = 0; trial < 20; ++trial) {
    // Days (including 7 and 30: weeks and 30-day steps are not months) and plain integers.
    const int32_t start = Date(2000, 1, 1) + static_cast<int32_t>(random() % 9000);
    const int32_t step = std::vector<int32_t>{1, 7, 30, 2}[trial % 4];
    ASSERT_OK_AND_ASSIGN(SeriesSet future,
                         ContinueTime(DatedSeries({start, start + step, start + 2 * step}), 5));
    const bool same_day = [&] {
      int64_t y1, y2;
      unsigned m1, m2, d1, d2;
      temporal::CivilFromDays(start + step, &y1, &m1, &d1);
      temporal::CivilFromDays(start + 2 * step, &y2, &m2, &d2);
      return d1 == d2;
    }();
    if (same_day) continue;  // a 30-day step that happens to land on the same day: a month
    for (int k = 0; k < 5; ++k) EXPECT_EQ(future.ds.Value<int32_t>(k), start + (3 + k) * step);
  }
  // Hourly timestamps step by the hour, integers by their interval.
  SeriesSet hourly = DatedSeries({0, 0});
  const int64_t hour = 3600LL * 1000000;
  hourly.ds = *MakeColumn<int64_t>(DataType::Timestamp(TimeUnit::kMicro),
                                   {std::optional<int64_t>(5 * hour), 6 * hour});
  ASSERT_OK_AND_ASSIGN(SeriesSet future, ContinueTime(hourly, 30));
  EXPECT_EQ(future.ds.Value<int64_t>(29), 36 * hour);
  SeriesSet counted = DatedSeries({0, 0});
  counted.ds = *MakeColumn<int64_t>(DataType::Int64(), {std::optional<int64_t>(10), 13});
  ASSERT_OK_AND_ASSIGN(future, ContinueTime(counted, 3));
  EXPECT_EQ(future.ds.Value<int64_t>(2), 22);
  EXPECT_FALSE(ContinueTime(DatedSeries({Date(2000, 1, 1)}), 3).ok());
}

TEST(WindowsTest, ShufflerIsSeededAndVisitsEverySample) {
  Shuffler a(100, 42), b(100, 42), c(100, 43);
  auto first = a.Next(100);
  EXPECT_EQ(first, b.Next(100));
  EXPECT_NE(first, c.Next(100));
  EXPECT_EQ(std::set<int64_t>(first.begin(), first.end()).size(), 100u);
  EXPECT_EQ(a.Next(30).size(), 30u);
}

}  // namespace
}  // namespace deeprc::train
