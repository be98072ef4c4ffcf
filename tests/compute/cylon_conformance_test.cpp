// Cylon's own conformance data (a copy of ../shared/data/cylon in tests/data/cylon, Apache-2.0,
// LICENSE.cylon beside it): the local operators at world size 1 must give the rows Cylon's tests expect. Rows are compared as unordered sets (values, not
// column names: Cylon names joined columns l_*/r_*), except for sorting, where the key column must
// also come out in the expected order.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "deeprc/compute/group_by.h"
#include "deeprc/compute/join.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/compute/sort.h"
#include "deeprc/table/csv.h"
#include "testing/assertions.h"
#include "testing/cylon_data.h"
#include "testing/table_compare.h"

namespace deeprc {
namespace {

const std::string& kCylonData = testing::CylonDataDirectory();
using testing::NormalizeOrderDate;

Result<Table> Read(const std::string& relative) {
  csv::ReadOptions options;
  return csv::ReadCsv(kCylonData + relative, options);
}

// Gives `table` the column names of `like` (Cylon's expected files name columns differently).
Result<Table> RenameLike(const Table& table, const Table& like) {
  std::vector<std::pair<std::string, std::string>> renames;
  if (table.num_columns() != like.num_columns()) {
    return Status::Invalid("expected {} columns, got {}", like.num_columns(), table.num_columns());
  }
  std::vector<Field> fields;
  for (int c = 0; c < table.num_columns(); ++c) {
    fields.push_back({like.schema().field(c).name, table.schema().field(c).type});
  }
  return Table::Make(Schema(fields), table.columns(), table.num_rows());
}

// Prefixes every column name (so that both sides of a self-describing join keep their keys).
Result<Table> Prefix(const Table& table, const std::string& prefix) {
  std::vector<Field> fields;
  for (const auto& field : table.schema().fields()) fields.push_back({prefix + field.name, field.type});
  return Table::Make(Schema(fields), table.columns(), table.num_rows());
}

class CylonConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(std::filesystem::exists(kCylonData)) << kCylonData; }
};

void CheckJoin(const std::string& left_file, const std::string& right_file,
               const std::vector<std::string>& keys, const std::string& expected_file) {
  ASSERT_OK_AND_ASSIGN(Table left, Read(left_file));
  ASSERT_OK_AND_ASSIGN(Table right, Read(right_file));
  ASSERT_OK_AND_ASSIGN(Table expected, Read(expected_file));
  ASSERT_OK_AND_ASSIGN(left, Prefix(left, "l_"));
  ASSERT_OK_AND_ASSIGN(right, Prefix(right, "r_"));
  for (auto algorithm : {compute::JoinAlgorithm::kHash, compute::JoinAlgorithm::kSortMerge}) {
    compute::JoinOptions options;
    for (const auto& key : keys) {
      options.left_keys.push_back("l_" + key);
      options.right_keys.push_back("r_" + key);
    }
    options.algorithm = algorithm;
    ASSERT_OK_AND_ASSIGN(Table joined, compute::Join(left, right, options));
    ASSERT_OK_AND_ASSIGN(Table renamed, RenameLike(joined, expected));
    EXPECT_TRUE(testing::TablesEqualUnordered(expected, renamed, 1e-9, /*compare_types=*/false))
        << expected_file;
  }
}

TEST_F(CylonConformanceTest, JoinInner) {
  CheckJoin("input/csv1_0.csv", "input/csv2_0.csv", {"0"}, "output/join_inner_1_0.csv");
}

TEST_F(CylonConformanceTest, JoinInnerWithNullValues) {
  CheckJoin("input/csv_with_null1_0.csv", "input/csv_with_null2_0.csv", {"0"},
            "output/join_inner_null_1_0.csv");
}

TEST_F(CylonConformanceTest, MultiKeyJoin) {
  CheckJoin("input/multi_join1.csv", "input/multi_join2.csv", {"a", "b"},
            "output/multi_join_1_0.csv");
}

TEST_F(CylonConformanceTest, SetOperations) {
  ASSERT_OK_AND_ASSIGN(Table a, Read("input/csv1_0.csv"));
  ASSERT_OK_AND_ASSIGN(Table b, Read("input/csv2_0.csv"));
  ASSERT_OK_AND_ASSIGN(Table expected_union, Read("output/union_1_0.csv"));
  ASSERT_OK_AND_ASSIGN(Table expected_subtract, Read("output/subtract_1_0.csv"));
  ASSERT_OK_AND_ASSIGN(Table expected_intersect, Read("output/intersect_1_0.csv"));
  ASSERT_OK_AND_ASSIGN(Table unioned, compute::Union(a, b));
  ASSERT_OK_AND_ASSIGN(Table subtracted, compute::Difference(a, b));
  ASSERT_OK_AND_ASSIGN(Table intersected, compute::Intersect(a, b));
  EXPECT_TRUE(testing::TablesEqualUnordered(expected_union, unioned, 1e-9, false));
  EXPECT_TRUE(testing::TablesEqualUnordered(expected_subtract, subtracted, 1e-9, false));
  EXPECT_TRUE(testing::TablesEqualUnordered(expected_intersect, intersected, 1e-9, false));
}

// Cylon's expected group-by files are the four partitions of one distributed group-by over the
// four city files; at world size 1 their concatenation is the group-by of the whole input.
Result<Table> ReadParts(const std::string& stem) {
  std::vector<Table> parts;
  for (int rank = 0; rank < 4; ++rank) {
    DEEPRC_ASSIGN_OR_RAISE(Table part, Read(stem + std::to_string(rank) + ".csv"));
    parts.push_back(std::move(part));
  }
  return compute::Concatenate(parts);
}

TEST_F(CylonConformanceTest, GroupBySumAndMaxOnCities) {
  ASSERT_OK_AND_ASSIGN(Table cities, ReadParts("input/cities_a_"));
  for (const auto& [kind, stem] :
       {std::pair{compute::AggregateKind::kSum, "output/groupby_sum_cities_a_"},
        std::pair{compute::AggregateKind::kMax, "output/groupby_max_cities_a_"}}) {
    ASSERT_OK_AND_ASSIGN(Table expected, ReadParts(stem));
    compute::GroupByOptions options;
    options.keys = {"state_id"};
    compute::Aggregate aggregate;
    aggregate.column = "population";
    aggregate.kind = kind;
    aggregate.output_name = "population";
    options.aggregates = {aggregate};
    ASSERT_OK_AND_ASSIGN(Table grouped, compute::GroupBy(cities, options));
    EXPECT_EQ(grouped.num_rows(), 38);
    EXPECT_TRUE(testing::TablesEqualUnordered(expected, grouped, 1e-9, false)) << stem;
  }
}

TEST_F(CylonConformanceTest, SortSalesWithNullsAndNonAscii) {
  // Cylon's expected files are the four partitions of a distributed sort of the four inputs by
  // Country (nulls last); at world size 1 their concatenation is the whole sorted table.
  std::vector<Table> inputs, expected_parts;
  for (int rank = 0; rank < 4; ++rank) {
    ASSERT_OK_AND_ASSIGN(Table input,
                         Read("mpiops/sales_nulls_nunascii_" + std::to_string(rank) + ".csv"));
    ASSERT_OK_AND_ASSIGN(input, NormalizeOrderDate(input));
    inputs.push_back(input);
    ASSERT_OK_AND_ASSIGN(Table part, Read("sorting/sales_sorted_" + std::to_string(rank) + ".csv"));
    expected_parts.push_back(part);
  }
  ASSERT_OK_AND_ASSIGN(Table input, compute::Concatenate(inputs));
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Concatenate(expected_parts));
  compute::SortOptions options;
  options.keys = {{"Country", true, false}};
  ASSERT_OK_AND_ASSIGN(Table sorted, compute::Sort(input, options));
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, sorted, 1e-9, false));
  ASSERT_OK_AND_ASSIGN(Table expected_keys, expected.SelectColumns(std::vector<std::string>{"Country"}));
  ASSERT_OK_AND_ASSIGN(Table sorted_keys, sorted.SelectColumns(std::vector<std::string>{"Country"}));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected_keys, sorted_keys));
}

}  // namespace
}  // namespace deeprc
