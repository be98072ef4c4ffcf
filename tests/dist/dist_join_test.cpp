#include "deeprc/dist/join.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "deeprc/compute/cast.h"
#include "deeprc/table/builder.h"
#include "partitions.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using compute::JoinType;
using testing::TestComm;

const std::vector<JoinType> kAllTypes = {JoinType::kInner, JoinType::kLeft, JoinType::kRight,
                                         JoinType::kOuter, JoinType::kSemi, JoinType::kAnti};

std::string TypeName(JoinType type) {
  switch (type) {
    case JoinType::kInner:
      return "inner";
    case JoinType::kLeft:
      return "left";
    case JoinType::kRight:
      return "right";
    case JoinType::kOuter:
      return "outer";
    case JoinType::kSemi:
      return "semi";
    case JoinType::kAnti:
      return "anti";
  }
  return "?";
}

Table ReplaceColumn(const Table& table, const std::string& name, const DataType& type) {
  std::vector<Field> fields = table.schema().fields();
  std::vector<Column> columns = table.columns();
  const int index = table.schema().FieldIndex(name);
  fields[index].type = type;
  columns[index] = compute::Cast(columns[index], type).ValueOrDie();
  return Table::Make(Schema(fields), columns, table.num_rows()).ValueOrDie();
}

struct JoinCase {
  std::string name;
  Table left;
  Table right;
  std::vector<std::string> left_keys;
  std::vector<std::string> right_keys;
};

std::vector<JoinCase> Cases() {
  std::vector<JoinCase> cases;
  // One int key, int32 on the left and int64 on the right (promoted), a clashing string column;
  // the left side carries a column of every type.
  {
    auto left_spec = testing::AllTypesSpec(0.1, 30);
    left_spec.push_back({"k", DataType::Int32(), 0.1, 40});
    Table left = testing::RandomTable(left_spec, 300, 11);
    Table right = testing::RandomTable({{"k", DataType::Int32(), 0.1, 40},
                                        {"w", DataType::Int64(), 0.1, 0},
                                        {"string", DataType::String(), 0.1, 20}},
                                       200, 12);
    cases.push_back({"promoted-int-key", left, ReplaceColumn(right, "k", DataType::Int64()),
                     {"k"}, {"k"}});
  }
  // Two keys with different names on each side (int64 and string), 90% of rows on one key.
  {
    Table left = testing::RandomTable({{"a", DataType::Int64(), 0.05, 20, 0.9},
                                       {"t", DataType::String(), 0.1, 4},
                                       {"x", DataType::Float32(), 0.1, 0}},
                                      200, 21);
    Table right = testing::RandomTable({{"b", DataType::Int64(), 0.05, 20, 0.9},
                                        {"t", DataType::String(), 0.1, 4},
                                        {"y", DataType::Bool(), 0.1, 0}},
                                       120, 22);
    cases.push_back({"two-keys-skewed", left, right, {"a", "t"}, {"b", "t"}});
  }
  // An empty right side; string keys.
  {
    Table left = testing::RandomTable(
        {{"s", DataType::String(), 0.2, 15}, {"v", DataType::Float64(), 0.1, 0}}, 200, 31);
    Table right = testing::RandomTable(
        {{"s", DataType::String(), 0.2, 15}, {"v", DataType::Date32(), 0.1, 0}}, 0, 32);
    cases.push_back({"empty-right", left, right, {"s"}, {"s"}});
  }
  // An empty left side; date keys.
  {
    Table left = testing::RandomTable(
        {{"d", DataType::Date32(), 0.1, 10}, {"v", DataType::UInt16(), 0.1, 0}}, 0, 41);
    Table right = testing::RandomTable(
        {{"d", DataType::Date32(), 0.1, 10}, {"w", DataType::String(), 0.1, 0}}, 120, 42);
    cases.push_back({"empty-left", left, right, {"d"}, {"d"}});
  }
  return cases;
}

void CheckJoin(const JoinCase& c, const DistJoinOptions& options, testing::Cut cut) {
  comm::Communicator& comm = TestComm();
  SCOPED_TRACE(c.name + " " + TypeName(options.join.type) + " cut " + testing::CutName(cut) +
               " strategy " + std::to_string(static_cast<int>(options.strategy)) +
               " nulls_equal " + std::to_string(options.join.nulls_equal));
  const Table left = testing::RankSlice(c.left, comm, cut);
  const Table right = testing::RankSlice(c.right, comm, cut);
  ASSERT_OK_AND_ASSIGN(Table result, Join(comm, left, right, options));
  ASSERT_OK_AND_ASSIGN(Table gathered, testing::GatherAll(comm, result));
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Join(c.left, c.right, options.join));
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, gathered));
}

TEST(DistJoinTest, EveryTypeAndStrategyGivesTheLocalRows) {
  const std::vector<JoinStrategy> strategies = {JoinStrategy::kShuffle, JoinStrategy::kBroadcast,
                                                JoinStrategy::kAuto};
  for (const JoinCase& c : Cases()) {
    for (size_t t = 0; t < kAllTypes.size(); ++t) {
      const JoinType type = kAllTypes[t];
      for (size_t s = 0; s < strategies.size(); ++s) {
        const JoinStrategy strategy = strategies[s];
        for (bool nulls_equal : {false, true}) {
          {
            // The cuts take turns (every type and every strategy meets every cut), to keep the
            // run short.
            const testing::Cut cut = testing::AllCuts()[(t + s + nulls_equal) % 3];
            DistJoinOptions options;
            options.join.type = type;
            options.join.left_keys = c.left_keys;
            options.join.right_keys = c.right_keys;
            options.join.nulls_equal = nulls_equal;
            options.strategy = strategy;
            CheckJoin(c, options, cut);
          }
        }
      }
    }
  }
}

TEST(DistJoinTest, SortMergeLocalStepAndSuffixes) {
  const JoinCase c = Cases()[0];
  for (JoinType type : kAllTypes) {
    for (JoinStrategy strategy : {JoinStrategy::kShuffle, JoinStrategy::kBroadcast}) {
      DistJoinOptions options;
      options.join.type = type;
      options.join.left_keys = c.left_keys;
      options.join.right_keys = c.right_keys;
      options.join.algorithm = compute::JoinAlgorithm::kSortMerge;
      options.join.left_suffix = "_left";
      options.join.right_suffix = "_right";
      options.join.partition_bits = 2;
      options.strategy = strategy;
      CheckJoin(c, options, testing::Cut::kUneven);
    }
  }
}

TEST(DistJoinTest, PlanBroadcastsOnlyASideWhoseUnmatchedRowsAreNotEmitted) {
  comm::Communicator& comm = TestComm();
  // Left is far larger than right (more than 4 times: the rule holds at 1, 2 and 4 ranks).
  const Table global_left = testing::RandomTable(
      {{"k", DataType::Int64(), 0.1, 300}, {"v", DataType::Float64(), 0.1}}, 4000, 61);
  const Table global_right = testing::RandomTable(
      {{"k", DataType::Int64(), 0.1, 300}, {"w", DataType::Int32(), 0.1}}, 150, 62);
  const Table left = testing::RankSlice(global_left, comm, testing::Cut::kEven);
  const Table right = testing::RankSlice(global_right, comm, testing::Cut::kEven);
  struct Expectation {
    JoinType type;
    JoinSide side;
    JoinStrategy automatic;  // what kAuto takes: the large left side is not broadcast
  };
  for (Expectation e : {Expectation{JoinType::kInner, JoinSide::kRight, JoinStrategy::kBroadcast},
                        Expectation{JoinType::kLeft, JoinSide::kRight, JoinStrategy::kBroadcast},
                        Expectation{JoinType::kSemi, JoinSide::kRight, JoinStrategy::kBroadcast},
                        Expectation{JoinType::kAnti, JoinSide::kRight, JoinStrategy::kBroadcast},
                        Expectation{JoinType::kOuter, JoinSide::kRight, JoinStrategy::kBroadcast},
                        Expectation{JoinType::kRight, JoinSide::kLeft, JoinStrategy::kShuffle}}) {
    SCOPED_TRACE(TypeName(e.type));
    DistJoinOptions options;
    options.join.type = e.type;
    options.join.left_keys = {"k"};
    options.join.right_keys = {"k"};
    ASSERT_OK_AND_ASSIGN(JoinPlan plan, PlanJoin(comm, left, right, options));
    EXPECT_GT(plan.left_bytes, 4 * plan.right_bytes);
    EXPECT_EQ(plan.strategy, e.automatic);  // small inputs: below the threshold
    if (e.automatic == JoinStrategy::kBroadcast) EXPECT_EQ(plan.broadcast, e.side);

    options.broadcast_threshold_bytes = 0;
    ASSERT_OK_AND_ASSIGN(plan, PlanJoin(comm, left, right, options));
    EXPECT_EQ(plan.strategy, JoinStrategy::kShuffle);
    EXPECT_EQ(plan.broadcast, JoinSide::kNone);

    options.strategy = JoinStrategy::kBroadcast;
    ASSERT_OK_AND_ASSIGN(plan, PlanJoin(comm, left, right, options));
    EXPECT_EQ(plan.strategy, JoinStrategy::kBroadcast);
    EXPECT_EQ(plan.broadcast, e.side);

    options.strategy = JoinStrategy::kShuffle;
    options.broadcast_threshold_bytes = int64_t{1} << 40;
    ASSERT_OK_AND_ASSIGN(plan, PlanJoin(comm, left, right, options));
    EXPECT_EQ(plan.strategy, JoinStrategy::kShuffle);
  }
  // Inner joins broadcast the smaller side, whichever it is.
  DistJoinOptions options;
  options.join.left_keys = {"k"};
  options.join.right_keys = {"k"};
  ASSERT_OK_AND_ASSIGN(JoinPlan plan, PlanJoin(comm, right, left, options));
  EXPECT_EQ(plan.strategy, JoinStrategy::kBroadcast);
  EXPECT_EQ(plan.broadcast, JoinSide::kLeft);
  // Sides of one size shuffle, however small: a copy of one on every rank would cost more than
  // moving each rank's share of both.
  ASSERT_OK_AND_ASSIGN(plan, PlanJoin(comm, left, left, options));
  EXPECT_EQ(plan.strategy, comm.size() == 1 ? JoinStrategy::kBroadcast : JoinStrategy::kShuffle);
}

// A key that cannot be promoted on one rank only: every rank gets an error, none hangs.
TEST(DistJoinTest, AnErrorOnOneRankIsAnErrorOnEveryRank) {
  comm::Communicator& comm = TestComm();
  NumberBuilder<uint64_t> keys(DataType::UInt64());
  const int64_t rows = 40;
  for (int64_t i = 0; i < rows; ++i) {
    ASSERT_OK(keys.Append(i == rows - 1 ? uint64_t{1} << 63 : static_cast<uint64_t>(i % 7)));
  }
  ASSERT_OK_AND_ASSIGN(Column key_column, keys.Finish());
  ASSERT_OK_AND_ASSIGN(Table global_left,
                       Table::Make(Schema({{"k", DataType::UInt64()}}), {key_column}, rows));
  Table global_right = ReplaceColumn(
      testing::RandomTable({{"k", DataType::Int8(), 0.1, 7}}, 30, 5), "k", DataType::Int8());
  for (JoinStrategy strategy : {JoinStrategy::kShuffle, JoinStrategy::kBroadcast}) {
    DistJoinOptions options;
    options.join.left_keys = {"k"};
    options.join.right_keys = {"k"};
    options.strategy = strategy;
    const Table left = testing::RankSlice(global_left, comm, testing::Cut::kEven);
    const Table right = testing::RankSlice(global_right, comm, testing::Cut::kEven);
    auto result = Join(comm, left, right, options);
    EXPECT_FALSE(result.ok());
    EXPECT_FALSE(compute::Join(global_left, global_right, options.join).ok());
  }
  DistJoinOptions bad;
  bad.join.left_keys = {"k"};
  bad.join.right_keys = {"missing"};
  EXPECT_FALSE(Join(comm, global_left, global_right, bad).ok());
  // Still in step: a collective after the errors works.
  ASSERT_OK(comm.Barrier());
}

}  // namespace
}  // namespace deeprc::dist
