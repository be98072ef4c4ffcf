#include "deeprc/train/windows.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <gtest/gtest.h>

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
