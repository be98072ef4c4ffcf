#include "deeprc/train/metrics.h"

#include <cmath>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "deeprc/table/csv.h"
#include "deeprc/train/series.h"
#include "testing/assertions.h"

namespace deeprc::train {
namespace {

// Worked by hand: errors 1, 0, 2, 0.
TEST(MetricsTest, HandComputedValues) {
  const std::vector<double> y{1, 2, 3, 4}, yhat{2, 2, 1, 4};
  EXPECT_DOUBLE_EQ(*Mae(y, yhat), 0.75);
  EXPECT_DOUBLE_EQ(*Rmse(y, yhat), std::sqrt(5.0 / 4));
  EXPECT_DOUBLE_EQ(*Mape(y, yhat), 100 * (1.0 + 2.0 / 3) / 4);
  EXPECT_DOUBLE_EQ(*Smape(y, yhat), 200 * (1.0 / 3 + 2.0 / 4) / 4);
  // Mean 2.5: spread 2.25 + 0.25 + 0.25 + 2.25 = 5 = the squared error: NSE 0, NNSE 1/2.
  EXPECT_DOUBLE_EQ(*Nse(y, yhat), 0.0);
  EXPECT_DOUBLE_EQ(*NormalizedNse(y, yhat), 0.5);
  EXPECT_DOUBLE_EQ(*Nse(y, y), 1.0);
  EXPECT_DOUBLE_EQ(*NormalizedNse(y, y), 1.0);
  // Season 2 differences of the in-sample series are all 1: MASE = MAE.
  const std::vector<double> insample{1, 3, 2, 4, 3, 5};
  EXPECT_DOUBLE_EQ(*Mase(y, yhat, insample, 2), 0.75);
  // Season 1 differences: 2, 1, 2, 1, 2 -> scale 8/5.
  EXPECT_DOUBLE_EQ(*Mase(y, yhat, insample, 1), 0.75 / (8.0 / 5));
  EXPECT_EQ(*SeasonalNaive(insample, 2, 5), (std::vector<double>{3, 5, 3, 5, 3}));
}

TEST(MetricsTest, ZerosAndBadInput) {
  const std::vector<double> y{0, 2}, yhat{0, 1};
  EXPECT_DOUBLE_EQ(*Mape(y, yhat), 50.0);              // y = 0 left out
  EXPECT_DOUBLE_EQ(*Smape(y, yhat), 200 * (1.0 / 3) / 2);  // 0/0 counts 0
  EXPECT_FALSE(Mae(y, std::vector<double>{1}).ok());
  EXPECT_FALSE(Mae({}, {}).ok());
  EXPECT_FALSE(Mase(y, yhat, std::vector<double>{1, 2}, 2).ok());
  EXPECT_FALSE(Mase(y, yhat, std::vector<double>{1, 1, 1}, 1).ok());
  EXPECT_FALSE(Nse(std::vector<double>{3, 3}, yhat).ok());
}

// Random series against the definitions written out again as plain loops.
TEST(MetricsTest, RandomAgainstDefinitions) {
  std::mt19937_64 random(7);
  std::normal_distribution<double> noise(10, 3);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 1 + random() % 50;
    std::vector<double> y(n), yhat(n);
    for (size_t i = 0; i < n; ++i) y[i] = noise(random), yhat[i] = noise(random);
    double abs_sum = 0, sq_sum = 0, pct = 0, spct = 0;
    for (size_t i = 0; i < n; ++i) {
      const double e = y[i] - yhat[i];
      abs_sum += std::fabs(e), sq_sum += e * e;
      pct += std::fabs(e / y[i]);
      spct += 2 * std::fabs(e) / (std::fabs(y[i]) + std::fabs(yhat[i]));
    }
    EXPECT_NEAR(*Mae(y, yhat), abs_sum / n, 1e-9);
    EXPECT_NEAR(*Rmse(y, yhat), std::sqrt(sq_sum / n), 1e-9);
    EXPECT_NEAR(*Mape(y, yhat), 100 * pct / n, 1e-9);
    EXPECT_NEAR(*Smape(y, yhat), 100 * spct / n, 1e-9);
  }
}

// The M4 Hourly seasonal naive benchmark (season 24, h = 48): the published sMAPE 13.912 and
// MASE 1.193, averaged over the 414 series (the data ships in tests/data/forecast).
TEST(MetricsTest, M4HourlySeasonalNaive) {
  const std::string folder = DEEPRC_SOURCE_DIR "/tests/data/forecast/";
  ASSERT_TRUE(std::filesystem::exists(folder + "m4_hourly_train.csv")) << "no M4 data at " << folder;
  ASSERT_OK_AND_ASSIGN(Table train_table, csv::ReadCsv(folder + "m4_hourly_train.csv"));
  ASSERT_OK_AND_ASSIGN(Table test_table, csv::ReadCsv(folder + "m4_hourly_test.csv"));
  ASSERT_OK_AND_ASSIGN(SeriesSet train, SeriesFromTable(train_table));
  ASSERT_OK_AND_ASSIGN(SeriesSet test, SeriesFromTable(test_table));
  ASSERT_EQ(train.num_series(), 414);
  ASSERT_OK_AND_ASSIGN(auto matched, MatchSeries(train, test));
  ScoreAccumulator scores(24);
  for (int64_t s = 0; s < train.num_series(); ++s) {
    auto actual = test.values(matched[s]);
    ASSERT_EQ(actual.size(), 48u) << train.ids[s];
    ASSERT_OK_AND_ASSIGN(auto forecast, SeasonalNaive(train.values(s), 24, 48));
    ASSERT_OK(scores.Add(actual, forecast, train.values(s)));
  }
  const ForecastScores result = scores.Result();
  EXPECT_EQ(result.series, 414);
  EXPECT_NEAR(result.smape, 13.912, 5e-4);
  EXPECT_NEAR(result.mase, 1.193, 5e-4);
}

TEST(SeriesTest, SortsSplitsAndNamesErrors) {
  ASSERT_OK_AND_ASSIGN(Table table, csv::ReadCsvText("unique_id,ds,y,x\n"
                                                     "b,2,5,1\n"
                                                     "a,3,3,0\n"
                                                     "a,1,1,0\n"
                                                     "b,1,4,1\n"
                                                     "a,2,2,0\n"
                                                     "b,3,6,1\n"));
  SeriesOptions options;
  options.exogenous_columns = {"x"};
  ASSERT_OK_AND_ASSIGN(SeriesSet series, SeriesFromTable(table, options));
  EXPECT_EQ(series.ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(series.y, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(series.exogenous[0], (std::vector<double>{0, 0, 0, 1, 1, 1}));
  ASSERT_OK_AND_ASSIGN(auto split, SplitLast(series, 1));
  EXPECT_EQ(split.first.y, (std::vector<double>{1, 2, 4, 5}));
  EXPECT_EQ(split.second.y, (std::vector<double>{3, 6}));
  EXPECT_EQ(split.second.ds.FormatValue(1), "3");
  EXPECT_FALSE(SplitLast(series, 3).ok());
  ASSERT_OK_AND_ASSIGN(Table repeated,
                       csv::ReadCsvText("unique_id,ds,y\na,1,1\na,1,2\n"));
  auto bad = SeriesFromTable(repeated);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("two rows"), std::string::npos);
  EXPECT_FALSE(SeriesFromTable(table, SeriesOptions{.target_column = "z"}).ok());
}

}  // namespace
}  // namespace deeprc::train
