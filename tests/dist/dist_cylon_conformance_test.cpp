// Cylon's own conformance data (tests/data/cylon, Apache-2.0, LICENSE.cylon beside it) at the
// world size of this run (1, 2 or 4 ranks): rank r reads Cylon's input for rank r, runs the dist
// operator, and the rows of all ranks together must equal the rows of all of Cylon's expected
// partitions output/<op>_<world size>_<r>.csv, as multisets. Which rank holds which row differs
// from Cylon's files: Cylon places rows by its own hash (murmur3 of the key bytes), deeprc by
// compute/hash.h, so only the union over ranks can be compared. Values are compared, not column
// names (Cylon names joined columns l_*/r_*) nor types (an expected file whose column happens to
// hold only integers reads as int64 where the result is float64). Sorting is checked by
// dist_sort_test. (Named dist_...: tests/compute/cylon_conformance_test names the world-size-1
// program.)
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "deeprc/dist/csv.h"
#include "deeprc/dist/group_by.h"
#include "deeprc/dist/join.h"
#include "deeprc/dist/partition.h"
#include "deeprc/dist/set_ops.h"
#include "deeprc/table/csv.h"
#include "testing/assertions.h"
#include "testing/cylon_data.h"
#include "testing/program.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using testing::TestComm;

const std::string& kCylonData = testing::CylonDataDirectory();

// Cylon's expected outputs exist for these world sizes.
bool HasExpectedOutputs(int world_size) {
  return world_size == 1 || world_size == 2 || world_size == 4;
}

// input/<stem>_<r>.csv for every rank r of this world, read by rank r (types joined over ranks).
Result<Table> ReadRankInput(const std::string& stem) {
  auto& comm = TestComm();
  std::vector<std::string> paths;
  for (int r = 0; r < comm.size(); ++r) {
    paths.push_back(kCylonData + "input/" + stem + "_" + std::to_string(r) + ".csv");
  }
  return ReadCsvFiles(comm, paths, {}, FileAssignment::kRoundRobin);
}

// Several CSV files with one header as one table: the files' texts joined, headers but the
// first dropped, read once (so that types are inferred over all of them).
Result<Table> ReadConcatenated(const std::vector<std::string>& relative_paths) {
  std::string text;
  for (const auto& relative : relative_paths) {
    const std::string file = testing::ReadText(kCylonData + relative);
    if (text.empty()) {
      text = file;
    } else {
      const auto newline = file.find('\n');
      if (newline != std::string::npos) text += file.substr(newline + 1);
    }
    if (!text.empty() && text.back() != '\n') text += '\n';
  }
  return csv::ReadCsvText(text, {}, relative_paths.front());
}

// output/<op>_<world size>_<r>.csv for every rank r.
Result<Table> ReadExpected(const std::string& op, int world_size) {
  std::vector<std::string> paths;
  for (int r = 0; r < world_size; ++r) {
    paths.push_back("output/" + op + "_" + std::to_string(world_size) + "_" + std::to_string(r) +
                    ".csv");
  }
  return ReadConcatenated(paths);
}

Result<Table> Rename(const Table& table, const std::string& prefix) {
  std::vector<Field> fields;
  for (const auto& field : table.schema().fields()) {
    fields.push_back({prefix + field.name, field.type});
  }
  return Table::Make(Schema(fields), table.columns(), table.num_rows());
}

// Gives `table` the column names of `like`.
Result<Table> RenameLike(const Table& table, const Table& like) {
  if (table.num_columns() != like.num_columns()) {
    return Status::Invalid("expected {} columns, got {}", like.num_columns(), table.num_columns());
  }
  std::vector<Field> fields;
  for (int c = 0; c < table.num_columns(); ++c) {
    fields.push_back({like.schema().field(c).name, table.schema().field(c).type});
  }
  return Table::Make(Schema(fields), table.columns(), table.num_rows());
}

// Gathers this rank's `part` on rank 0 and compares the whole with `expected` there.
void ExpectAllRanksHold(const Table& expected, const Table& part, const std::string& what) {
  auto& comm = TestComm();
  ASSERT_OK_AND_ASSIGN(Table all, Gather(comm, part));
  if (comm.rank() != 0) return;
  ASSERT_OK_AND_ASSIGN(Table renamed, RenameLike(all, expected));
  EXPECT_GT(expected.num_rows(), 0) << what;
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, renamed, 1e-9, /*compare_types=*/false))
      << what << " at world size " << comm.size();
}

class DistCylonConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kCylonData)) << kCylonData;
    if (!HasExpectedOutputs(TestComm().size())) {
      GTEST_SKIP() << "Cylon has no expected outputs at world size " << TestComm().size();
    }
  }

  // Joins left and right (keys prefixed l_ / r_ so both sides keep them, as Cylon's output
  // does) with every strategy and local algorithm.
  void CheckJoin(const Table& left_part, const Table& right_part,
                 const std::vector<std::string>& keys, const std::string& op) {
    ASSERT_OK_AND_ASSIGN(Table expected, ReadExpected(op, TestComm().size()));
    ASSERT_OK_AND_ASSIGN(Table left, Rename(left_part, "l_"));
    ASSERT_OK_AND_ASSIGN(Table right, Rename(right_part, "r_"));
    for (auto strategy : {JoinStrategy::kShuffle, JoinStrategy::kBroadcast}) {
      for (auto algorithm : {compute::JoinAlgorithm::kHash, compute::JoinAlgorithm::kSortMerge}) {
        DistJoinOptions options;
        for (const auto& key : keys) {
          options.join.left_keys.push_back("l_" + key);
          options.join.right_keys.push_back("r_" + key);
        }
        options.join.algorithm = algorithm;
        options.strategy = strategy;
        ASSERT_OK_AND_ASSIGN(Table joined, Join(TestComm(), left, right, options));
        ExpectAllRanksHold(expected, joined,
                           op + (strategy == JoinStrategy::kShuffle ? " shuffle" : " broadcast") +
                               (algorithm == compute::JoinAlgorithm::kHash ? " hash" : " sort"));
      }
    }
  }
};

TEST_F(DistCylonConformanceTest, JoinInner) {
  ASSERT_OK_AND_ASSIGN(Table left, ReadRankInput("csv1"));
  ASSERT_OK_AND_ASSIGN(Table right, ReadRankInput("csv2"));
  CheckJoin(left, right, {"0"}, "join_inner");
}

TEST_F(DistCylonConformanceTest, JoinInnerWithNullValues) {
  ASSERT_OK_AND_ASSIGN(Table left, ReadRankInput("csv_with_null1"));
  ASSERT_OK_AND_ASSIGN(Table right, ReadRankInput("csv_with_null2"));
  CheckJoin(left, right, {"0"}, "join_inner_null");
}

TEST_F(DistCylonConformanceTest, MultiKeyJoin) {
  // Cylon's test reads the same two files on every rank: at world size W the inputs are W
  // copies of each, and the expected rows W * W copies of the world-size-1 result.
  ASSERT_OK_AND_ASSIGN(Table left, csv::ReadCsv(kCylonData + "input/multi_join1.csv"));
  ASSERT_OK_AND_ASSIGN(Table right, csv::ReadCsv(kCylonData + "input/multi_join2.csv"));
  CheckJoin(left, right, {"a", "b"}, "multi_join");
}

TEST_F(DistCylonConformanceTest, UnionSubtractIntersect) {
  auto& comm = TestComm();
  ASSERT_OK_AND_ASSIGN(Table a, ReadRankInput("csv1"));
  ASSERT_OK_AND_ASSIGN(Table b, ReadRankInput("csv2"));
  ASSERT_OK_AND_ASSIGN(Table expected_union, ReadExpected("union", comm.size()));
  ASSERT_OK_AND_ASSIGN(Table expected_subtract, ReadExpected("subtract", comm.size()));
  ASSERT_OK_AND_ASSIGN(Table expected_intersect, ReadExpected("intersect", comm.size()));
  ASSERT_OK_AND_ASSIGN(Table unioned, Union(comm, a, b));
  ExpectAllRanksHold(expected_union, unioned, "union");
  ASSERT_OK_AND_ASSIGN(Table subtracted, Difference(comm, a, b));
  ExpectAllRanksHold(expected_subtract, subtracted, "subtract");
  ASSERT_OK_AND_ASSIGN(Table intersected, Intersect(comm, a, b));
  ExpectAllRanksHold(expected_intersect, intersected, "intersect");
}

TEST_F(DistCylonConformanceTest, GroupBySumAndMaxOnCities) {
  // Cylon's expected group-by files are the four partitions of its group-by at world size 4
  // over cities_a_0..3. Here file i goes to rank i % W (at 4 ranks Cylon's layout; at 1 and 2
  // ranks several files per rank); the groups of all ranks together do not depend on W.
  auto& comm = TestComm();
  std::vector<std::string> inputs;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(kCylonData + "input/cities_a_" + std::to_string(i) + ".csv");
  }
  ASSERT_OK_AND_ASSIGN(Table cities, ReadCsvFiles(comm, inputs, {}, FileAssignment::kRoundRobin));
  for (const auto& [kind, stem] :
       {std::pair{compute::AggregateKind::kSum, "output/groupby_sum_cities_a_"},
        std::pair{compute::AggregateKind::kMax, "output/groupby_max_cities_a_"}}) {
    std::vector<std::string> parts;
    for (int i = 0; i < 4; ++i) parts.push_back(stem + std::to_string(i) + ".csv");
    ASSERT_OK_AND_ASSIGN(Table expected, ReadConcatenated(parts));
    DistGroupByOptions options;
    options.group_by.keys = {"state_id"};
    compute::Aggregate aggregate;
    aggregate.column = "population";
    aggregate.kind = kind;
    aggregate.output_name = "population";
    options.group_by.aggregates = {aggregate};
    ASSERT_OK_AND_ASSIGN(Table grouped, GroupBy(comm, cities, options));
    ASSERT_OK_AND_ASSIGN(auto counts, GlobalRowCounts(comm, grouped));
    EXPECT_EQ(counts.total, 38);
    ExpectAllRanksHold(expected, grouped, stem);
  }
}

}  // namespace
}  // namespace deeprc::dist
