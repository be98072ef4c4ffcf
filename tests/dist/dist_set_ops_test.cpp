#include "deeprc/dist/set_ops.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "deeprc/compute/selection.h"
#include "deeprc/dist/equals.h"
#include "partitions.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using compute::Keep;
using testing::TestComm;

// Few distinct values per column, so that whole rows repeat within and across the tables.
Table MakeTable(double skew, int64_t rows, uint64_t seed) {
  return testing::RandomTable({{"k", DataType::Int16(), 0.1, 6, skew},
                               {"s", DataType::String(), 0.2, 3},
                               {"b", DataType::Bool(), 0.1, 0},
                               {"f", DataType::Float64(), 0.1, 4},
                               {"ts", DataType::Timestamp(TimeUnit::kMilli), 0.1, 3}},
                              rows, seed);
}

struct SetCase {
  std::string name;
  Table a;
  Table b;
};

std::vector<SetCase> Cases() {
  return {{"plain", MakeTable(0, 400, 1), MakeTable(0, 300, 2)},
          {"skewed", MakeTable(0.9, 400, 3), MakeTable(0.9, 250, 4)},
          {"empty-b", MakeTable(0, 200, 5), MakeTable(0, 0, 6)},
          {"empty-both", MakeTable(0, 0, 7), MakeTable(0, 0, 8)}};
}

TEST(DistSetOpsTest, UniqueEveryKeepAndSubset) {
  comm::Communicator& comm = TestComm();
  for (const SetCase& c : Cases()) {
    for (Keep keep : {Keep::kFirst, Keep::kLast, Keep::kNone}) {
      for (const std::vector<std::string>& subset :
           {std::vector<std::string>{}, {"k"}, {"s", "b"}}) {
        for (testing::Cut cut : testing::AllCuts()) {
        SCOPED_TRACE(c.name + " keep " + std::to_string(static_cast<int>(keep)) + " subset " +
                     std::to_string(subset.size()) + " cut " + testing::CutName(cut));
        compute::UniqueOptions options;
        options.keep = keep;
        options.subset = subset;
        ASSERT_OK_AND_ASSIGN(Table result,
                             Unique(comm, testing::RankSlice(c.a, comm, cut), options));
        ASSERT_OK_AND_ASSIGN(Table gathered, testing::GatherAll(comm, result));
        ASSERT_OK_AND_ASSIGN(Table expected, compute::Unique(c.a, options));
        EXPECT_TRUE(testing::TablesEqualUnordered(expected, gathered));
        }
      }
    }
  }
}

TEST(DistSetOpsTest, UnionIntersectDifference) {
  comm::Communicator& comm = TestComm();
  int round = 0;
  for (const SetCase& c : Cases()) {
    for (int op = 0; op < 4; ++op) {
      for (bool swap : {false, true}) {
        const testing::Cut cut = testing::AllCuts()[round++ % testing::AllCuts().size()];
        SCOPED_TRACE(c.name + " op " + std::to_string(op) + " swap " + std::to_string(swap) +
                     " cut " + testing::CutName(cut));
        const Table& a = swap ? c.b : c.a;
        const Table& b = swap ? c.a : c.b;
        const Table a_here = testing::RankSlice(a, comm, cut);
        // b is cut differently from a.
        const Table b_here = testing::RankSlice(
            b, comm, testing::AllCuts()[(round + 1) % testing::AllCuts().size()]);
        Result<Table> result = Status::OK();
        Result<Table> expected = Status::OK();
        switch (op) {
          case 0:
            result = Union(comm, a_here, b_here, true);
            expected = compute::Union(a, b, true);
            break;
          case 1:
            result = Union(comm, a_here, b_here, false);
            expected = compute::Union(a, b, false);
            break;
          case 2:
            result = Intersect(comm, a_here, b_here);
            expected = compute::Intersect(a, b);
            break;
          default:
            result = Difference(comm, a_here, b_here);
            expected = compute::Difference(a, b);
            break;
        }
        ASSERT_OK(result.status());
        ASSERT_OK(expected.status());
        ASSERT_OK_AND_ASSIGN(Table gathered, testing::GatherAll(comm, *result));
        EXPECT_TRUE(testing::TablesEqualUnordered(*expected, gathered));
      }
    }
  }
}

TEST(DistSetOpsTest, SchemaMismatchIsAnErrorOnEveryRank) {
  comm::Communicator& comm = TestComm();
  const Table a = testing::RankSlice(MakeTable(0, 50, 9), comm, testing::Cut::kEven);
  ASSERT_OK_AND_ASSIGN(Table b, a.SelectColumns(std::vector<int>{0, 1}));
  EXPECT_FALSE(Intersect(comm, a, b).ok());
  EXPECT_FALSE(Union(comm, a, b).ok());
  compute::UniqueOptions options;
  options.subset = {"missing"};
  EXPECT_FALSE(Unique(comm, a, options).ok());
  ASSERT_OK(comm.Barrier());
}

TEST(DistEqualsTest, MultisetAndOrdered) {
  comm::Communicator& comm = TestComm();
  const Table global = MakeTable(0.5, 300, 10);
  // The same rows in another order: rotated by 17 rows.
  ASSERT_OK_AND_ASSIGN(
      Table rotated, compute::Concatenate({global.Slice(17, global.num_rows()), global.Slice(0, 17)}));
  // One row changed: the last row replaced by the first.
  ASSERT_OK_AND_ASSIGN(Table changed, compute::Concatenate({global.Slice(0, global.num_rows() - 1),
                                                            global.Slice(0, 1)}));
  ASSERT_OK_AND_ASSIGN(Table shorter, compute::Concatenate({global.Slice(0, global.num_rows() - 1)}));
  ASSERT_OK_AND_ASSIGN(Table fewer_columns, global.SelectColumns(std::vector<int>{0, 1, 2}));
  for (bool ordered : {false, true}) {
    SCOPED_TRACE("ordered " + std::to_string(ordered));
    EqualsOptions options;
    options.ordered = ordered;
    for (testing::Cut cut_a : testing::AllCuts()) {
      for (testing::Cut cut_b : testing::AllCuts()) {
        SCOPED_TRACE("cuts " + testing::CutName(cut_a) + " " + testing::CutName(cut_b));
        auto equals = [&](const Table& a, const Table& b) {
          return Equals(comm, testing::RankSlice(a, comm, cut_a),
                        testing::RankSlice(b, comm, cut_b), options);
        };
        ASSERT_OK_AND_ASSIGN(bool same, equals(global, global));
        EXPECT_TRUE(same);
        ASSERT_OK_AND_ASSIGN(bool rotated_same, equals(global, rotated));
        EXPECT_EQ(rotated_same, !ordered);
        ASSERT_OK_AND_ASSIGN(bool changed_same, equals(global, changed));
        EXPECT_FALSE(changed_same);
        ASSERT_OK_AND_ASSIGN(bool shorter_same, equals(global, shorter));
        EXPECT_FALSE(shorter_same);
        ASSERT_OK_AND_ASSIGN(bool narrower_same, equals(global, fewer_columns));
        EXPECT_FALSE(narrower_same);
      }
    }
    ASSERT_OK_AND_ASSIGN(bool empty_same,
                         Equals(comm, global.Slice(0, 0), global.Slice(0, 0), options));
    EXPECT_TRUE(empty_same);
  }
}

}  // namespace
}  // namespace deeprc::dist
