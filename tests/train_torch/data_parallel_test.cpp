// Data-parallel training over the job's communicator (run at 1 and 2 ranks, mpi and gloo): the
// weights end identical on every rank, and the loss curve and weights match one process
// training on the same global batches.
#include <cmath>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "deeprc/comm/communicator.h"
#include "deeprc/table/builder.h"
#include "deeprc/train/forecaster.h"
#include "testing/assertions.h"
#include "testing/ranks.h"

namespace deeprc::train {
namespace {

SeriesSet RandomSeries(uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> noise(0, 1);
  SeriesSet series;
  std::vector<std::optional<int64_t>> ds;
  for (int s = 0; s < 3; ++s) {
    series.ids.push_back("s" + std::to_string(s));
    const double level = 10 + 5 * s;
    for (int t = 0; t < 60; ++t) {
      series.y.push_back(level + 2 * std::sin(t / 3.0 + s) + 0.3 * noise(random));
      ds.emplace_back(t);
    }
    series.offsets.push_back(static_cast<int64_t>(series.y.size()));
  }
  series.ds = *MakeColumn<int64_t>(DataType::Int64(), ds);
  return series;
}

class DataParallelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DataParallelTest, SameWeightsOnEveryRankAndSameCurveAsOneRank) {
  comm::Communicator& communicator = testing::TestComm();
  const SeriesSet series = RandomSeries(17);  // the same on every rank
  TrainOptions options;
  options.model = GetParam();
  options.horizon = 4;
  options.input_size = 12;
  options.max_steps = 25;
  options.seed = 5;
  options.settings = {{"batch_size", "16"}};
  if (GetParam() == "MLP") options.settings["hidden_size"] = "32";
  if (GetParam() == "LSTM") {
    options.settings["encoder_hidden_size"] = "16";
    options.settings["decoder_hidden_size"] = "16";
  }
  if (GetParam() == "NHITS") options.settings["mlp_units"] = "32,32";

  ASSERT_OK_AND_ASSIGN(auto parallel, Forecaster::Make(options));
  ASSERT_OK_AND_ASSIGN(TrainReport parallel_report, parallel->Fit(series, &communicator));
  ASSERT_OK_AND_ASSIGN(auto single, Forecaster::Make(options));
  ASSERT_OK_AND_ASSIGN(TrainReport single_report, single->Fit(series));

  ASSERT_EQ(parallel_report.losses.size(), single_report.losses.size());
  for (size_t i = 0; i < single_report.losses.size(); ++i) {
    EXPECT_NEAR(parallel_report.losses[i], single_report.losses[i],
                1e-4 * std::max(1.0, std::abs(single_report.losses[i])))
        << "step " << i;
  }
  const std::vector<float> weights = parallel->FlatParameters();
  const std::vector<float> reference = single->FlatParameters();
  ASSERT_EQ(weights.size(), reference.size());
  double largest = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    largest = std::max(largest, static_cast<double>(std::abs(weights[i] - reference[i])));
  }
  EXPECT_LT(largest, 1e-3) << "weights drift from one-rank training";

  // Bit-identical weights on every rank.
  auto gathered = communicator.AllGather(
      {reinterpret_cast<const uint8_t*>(weights.data()), weights.size() * sizeof(float)});
  ASSERT_OK(gathered.status());
  for (int r = 0; r < communicator.size(); ++r) {
    const auto& buffer = (*gathered)[r];
    ASSERT_EQ(buffer->size(), static_cast<int64_t>(weights.size() * sizeof(float)));
    EXPECT_EQ(std::memcmp(buffer->data(), weights.data(), buffer->size()), 0)
        << "rank " << r << " has other weights";
  }
}

// Cancellation seen by one rank only (the last) stops every rank at the same step: the flag rides
// on the step's loss all-reduce, so no rank is left waiting in a collective.
TEST(DataParallelCancelTest, OneRanksCancelStopsAllAtTheSameStep) {
  comm::Communicator& communicator = testing::TestComm();
  const SeriesSet series = RandomSeries(3);
  TrainOptions options;
  options.model = "MLP";
  options.horizon = 4;
  options.input_size = 12;
  options.max_steps = 1000;
  options.settings = {{"batch_size", "16"}, {"hidden_size", "16"}};
  // The same step on every rank: drawn from a seed all share.
  std::mt19937_64 random(communicator.size() * 1000 + 11);
  const int stop_after = 2 + static_cast<int>(random() % 30);
  const bool watcher = communicator.rank() == communicator.size() - 1;
  int checks = 0;
  ASSERT_OK_AND_ASSIGN(auto forecaster, Forecaster::Make(options));
  auto result =
      forecaster->Fit(series, &communicator, [&] { return watcher && ++checks > stop_after; });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCancelled);
  EXPECT_NE(result.status().message().find("canceled at step " + std::to_string(stop_after)),
            std::string::npos)
      << "rank " << communicator.rank() << ": " << result.status().message();
  // Every rank is still in step: one more collective completes.
  ASSERT_OK_AND_ASSIGN(int64_t sum,
                       comm::AllReduceValue<int64_t>(communicator, 1, comm::ReduceOp::kSum));
  EXPECT_EQ(sum, communicator.size());
}

INSTANTIATE_TEST_SUITE_P(Models, DataParallelTest, ::testing::Values("MLP", "NHITS", "LSTM"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace deeprc::train
