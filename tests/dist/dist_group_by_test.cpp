#include "deeprc/dist/group_by.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "partitions.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using compute::Aggregate;
using compute::AggregateKind;
using testing::TestComm;

Table MakeTable(double key_skew, int64_t rows, uint64_t seed) {
  return testing::RandomTable({{"k", DataType::Int64(), 0.1, 30, key_skew},
                               {"s", DataType::String(), 0.1, 5},
                               {"i", DataType::Int32(), 0.15, 0},
                               {"f", DataType::Float64(), 0.15, 0},
                               {"b", DataType::Bool(), 0.1, 0},
                               {"u", DataType::UInt8(), 0.1, 0},
                               {"t", DataType::String(), 0.2, 40},
                               {"d", DataType::Date32(), 0.1, 0},
                               {"n", DataType::Float32(), 1.0, 0}},  // all null
                              rows, seed);
}

Aggregate Make(const std::string& column, AggregateKind kind, int ddof = 1, double q = 0.5) {
  Aggregate aggregate;
  aggregate.column = column;
  aggregate.kind = kind;
  aggregate.ddof = ddof;
  aggregate.quantile = q;
  return aggregate;
}

// Every decomposable aggregate on every column it applies to.
std::vector<Aggregate> DecomposableAggregates() {
  std::vector<Aggregate> aggregates;
  for (const char* column : {"i", "f", "b", "u", "n"}) {
    for (AggregateKind kind :
         {AggregateKind::kSum, AggregateKind::kCount, AggregateKind::kMin, AggregateKind::kMax,
          AggregateKind::kMean, AggregateKind::kVar, AggregateKind::kStd, AggregateKind::kFirst,
          AggregateKind::kLast}) {
      aggregates.push_back(Make(column, kind));
    }
  }
  Aggregate population = Make("f", AggregateKind::kStd, 0);
  population.output_name = "f_std0";
  aggregates.push_back(population);
  Aggregate ddof2 = Make("i", AggregateKind::kVar, 2);
  ddof2.output_name = "i_var2";
  aggregates.push_back(ddof2);
  for (const char* column : {"t", "d", "s"}) {
    for (AggregateKind kind : {AggregateKind::kCount, AggregateKind::kMin, AggregateKind::kMax,
                               AggregateKind::kFirst, AggregateKind::kLast}) {
      aggregates.push_back(Make(column, kind));
    }
  }
  return aggregates;
}

std::vector<Aggregate> HolisticAggregates() {
  std::vector<Aggregate> aggregates = DecomposableAggregates();
  aggregates.push_back(Make("i", AggregateKind::kNunique));
  aggregates.push_back(Make("t", AggregateKind::kNunique));
  aggregates.push_back(Make("f", AggregateKind::kMedian));
  aggregates.push_back(Make("u", AggregateKind::kMedian));
  aggregates.push_back(Make("i", AggregateKind::kQuantile, 1, 0.9));
  aggregates.push_back(Make("b", AggregateKind::kQuantile, 1, 0.25));
  return aggregates;
}

TEST(DistGroupByTest, EveryAggregateGivesTheLocalRows) {
  comm::Communicator& comm = TestComm();
  int round = 0;
  for (double skew : {0.0, 0.9}) {
    const Table global = MakeTable(skew, 700, skew == 0 ? 1 : 2);
    for (const std::vector<std::string>& keys :
         {std::vector<std::string>{"k"}, {"k", "s"}, {"s"}, {"b"}}) {
      for (bool holistic : {false, true}) {
        for (bool drop_null_keys : {false, true}) {
          const testing::Cut cut = testing::AllCuts()[round++ % testing::AllCuts().size()];
          SCOPED_TRACE("skew " + std::to_string(skew) + " keys " + keys[0] + "+" +
                       std::to_string(keys.size() - 1) + " holistic " +
                       std::to_string(holistic) + " drop " + std::to_string(drop_null_keys) +
                       " cut " + testing::CutName(cut));
          DistGroupByOptions options;
          options.group_by.keys = keys;
          options.group_by.aggregates =
              holistic ? HolisticAggregates() : DecomposableAggregates();
          options.group_by.drop_null_keys = drop_null_keys;
          const Table partition = testing::RankSlice(global, comm, cut);
          ASSERT_OK_AND_ASSIGN(Table result, GroupBy(comm, partition, options));
          ASSERT_OK_AND_ASSIGN(Table gathered, testing::GatherAll(comm, result));
          ASSERT_OK_AND_ASSIGN(Table expected, compute::GroupBy(global, options.group_by));
          EXPECT_TRUE(testing::TablesEqualUnordered(expected, gathered, 1e-9));
        }
      }
    }
  }
}

TEST(DistGroupByTest, EmptyTableOnEveryRank) {
  comm::Communicator& comm = TestComm();
  const Table global = MakeTable(0, 0, 3);
  for (bool holistic : {false, true}) {
    DistGroupByOptions options;
    options.group_by.keys = {"k"};
    options.group_by.aggregates = holistic ? HolisticAggregates() : DecomposableAggregates();
    ASSERT_OK_AND_ASSIGN(Table result, GroupBy(comm, global, options));
    ASSERT_OK_AND_ASSIGN(Table expected, compute::GroupBy(global, options.group_by));
    EXPECT_TRUE(testing::TablesEqualUnordered(expected, result));
  }
}

TEST(DistGroupByTest, WholeTableAggregatesOnEveryRank) {
  comm::Communicator& comm = TestComm();
  int round = 0;
  for (int64_t rows : {0, 1, 500}) {
    const Table global = MakeTable(0.9, rows, 4 + rows);
    for (bool holistic : {false, true}) {
      const testing::Cut cut = testing::AllCuts()[round++ % testing::AllCuts().size()];
      SCOPED_TRACE("rows " + std::to_string(rows) + " holistic " + std::to_string(holistic) +
                   " cut " + testing::CutName(cut));
      const std::vector<Aggregate> aggregates =
          holistic ? HolisticAggregates() : DecomposableAggregates();
      const Table partition = testing::RankSlice(global, comm, cut);
      ASSERT_OK_AND_ASSIGN(Table result, AggregateTable(comm, partition, aggregates));
      ASSERT_OK_AND_ASSIGN(Table expected, compute::AggregateTable(global, aggregates));
      ASSERT_EQ(result.num_rows(), 1);
      EXPECT_TRUE(testing::TablesEqualUnordered(expected, result, 1e-9));
    }
  }
}

TEST(DistGroupByTest, BadAggregateIsAnErrorOnEveryRank) {
  comm::Communicator& comm = TestComm();
  const Table partition = testing::RankSlice(MakeTable(0, 100, 5), comm, testing::Cut::kUneven);
  DistGroupByOptions options;
  options.group_by.keys = {"k"};
  options.group_by.aggregates = {Make("t", AggregateKind::kSum)};  // strings cannot be summed
  EXPECT_FALSE(GroupBy(comm, partition, options).ok());
  options.group_by.aggregates = {Make("missing", AggregateKind::kCount)};
  EXPECT_FALSE(GroupBy(comm, partition, options).ok());
  EXPECT_FALSE(AggregateTable(comm, partition, {Make("t", AggregateKind::kMean)}).ok());
  ASSERT_OK(comm.Barrier());
}

}  // namespace
}  // namespace deeprc::dist
