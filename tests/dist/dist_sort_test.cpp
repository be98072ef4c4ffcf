// Distributed sort against the local sort of the global table, at 1, 2 and 4 ranks: every rank
// builds the same global table, keeps its slice (even, uneven, all rows on one rank, every other
// rank empty), sorts, and the gathered result must equal compute::Sort of the global table row
// for row (the sort is stable across ranks), with partitions of about equal size even when 90%
// of the rows share one key. Cylon's sort conformance data is checked at the matching world size.
#include "deeprc/dist/sort.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "deeprc/compute/selection.h"
#include "deeprc/dist/csv.h"
#include "deeprc/dist/partition.h"
#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/cylon_data.h"
#include "testing/random_table.h"
#include "testing/rank_split.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using testing::RankSplit;
using testing::TestComm;

std::string Describe(const compute::SortOptions& options) {
  std::string out;
  for (const auto& key : options.keys) {
    out += key.column + (key.ascending ? " asc" : " desc") +
           (key.nulls_first ? " nulls first; " : " nulls last; ");
  }
  return out;
}

// Sorts the rank's slice of `global` and checks the result against the local sort: same rows in
// the same order, and no rank holding much more than its share.
void CheckSort(const Table& global, const compute::SortOptions& options, RankSplit split,
               uint64_t seed) {
  auto& comm = TestComm();
  SCOPED_TRACE(std::string("split: ") + testing::RankSplitName(split) + ", seed " +
               std::to_string(seed) + ", keys: " + Describe(options));
  const Table local = testing::RankSlice(global, comm.rank(), comm.size(), split, seed);
  ASSERT_OK_AND_ASSIGN(Table sorted, Sort(comm, local, options));
  ASSERT_TRUE(sorted.schema() == global.schema());
  ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, sorted));
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Sort(global, options));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, gathered, 0.0));
  EXPECT_TRUE(expected.Equals(gathered));  // exact, NaN included
  // Balance: the splitters come from samples, so a partition may exceed its share by about
  // two sample spacings (rows / samples_per_rank / ranks each, from each rank).
  ASSERT_OK_AND_ASSIGN(RowCounts counts, GlobalRowCounts(comm, sorted));
  const int64_t n = global.num_rows();
  const int ranks = comm.size();
  for (int r = 0; r < ranks; ++r) {
    EXPECT_LE(counts.counts[r], n / ranks + n / 16 + ranks) << "rank " << r << " of " << ranks;
  }
}

const std::vector<compute::SortOptions> KeyLists() {
  return {
      {{{"int64", true, false}}},
      {{{"int64", false, true}}},
      {{{"string", false, true}, {"int32", true, false}, {"float64", false, false}}},
      {{{"bool", true, true},
        {"date32", false, false},
        {"timestamp_ms", true, true},
        {"uint64", false, false}}},
      {{{"float32", true, true}, {"string", true, false}}},
      {{{"int8", false, false}, {"uint16", true, true}, {"string", false, false}}},
  };
}

TEST(DistSortTest, RandomTablesEveryTypeMixedDirections) {
  for (uint64_t seed = 0; seed < 3; ++seed) {
    // Few distinct values: many equal keys, so the order of ties is checked too.
    const Table global =
        testing::RandomTable(testing::AllTypesSpec(0.15, 40), 1500 + 500 * seed, 100 + seed);
    for (const auto& options : KeyLists()) {
      for (RankSplit split : testing::kAllRankSplits) CheckSort(global, options, split, seed);
    }
  }
}

TEST(DistSortTest, NinetyPercentOfRowsOnOneKeySpreadOverRanks) {
  const Table global = testing::RandomTable({{"key", DataType::Int64(), 0.02, 200, 0.9},
                                             {"name", DataType::String(), 0.1, 30, 0.9},
                                             {"value", DataType::Float64(), 0.1}},
                                            6000, 7);
  for (RankSplit split : testing::kAllRankSplits) {
    CheckSort(global, {{{"key", true, false}}}, split, 1);
    CheckSort(global, {{{"name", false, true}, {"key", true, false}}}, split, 2);
  }
}

// One numeric key without nulls takes the partitioning's fast path (order bits, one pass);
// ties on the splitters' keys, NaN, -0.0 and both directions must still give compute::Sort's
// row order.
TEST(DistSortTest, OneNumericKeyWithoutNulls) {
  const Table skewed = testing::RandomTable({{"key", DataType::Int64(), 0.0, 200, 0.9},
                                             {"small", DataType::Int16(), 0.0, 5},
                                             {"wide", DataType::UInt64(), 0.0},
                                             {"value", DataType::Float64(), 0.1}},
                                            5000, 21);
  for (RankSplit split : testing::kAllRankSplits) {
    for (bool ascending : {true, false}) {
      CheckSort(skewed, {{{"key", ascending, false}}}, split, 6);
      CheckSort(skewed, {{{"small", ascending, true}}}, split, 7);
      CheckSort(skewed, {{{"wide", ascending, false}}}, split, 8);
    }
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const double specials[] = {nan, -nan, inf, -inf, 0.0, -0.0, 1.5, -2.25};
  NumberBuilder<double> keys(DataType::Float64());
  NumberBuilder<float> narrow(DataType::Float32());
  NumberBuilder<int64_t> ids(DataType::Int64());
  for (int64_t i = 0; i < 3000; ++i) {
    const uint64_t h = (static_cast<uint64_t>(i) * 2654435761u) >> 9;
    ASSERT_OK(keys.Append(specials[h % 8]));
    ASSERT_OK(narrow.Append(static_cast<float>(specials[(h >> 3) % 8])));
    ASSERT_OK(ids.Append(i));
  }
  ASSERT_OK_AND_ASSIGN(Column key_column, keys.Finish());
  ASSERT_OK_AND_ASSIGN(Column narrow_column, narrow.Finish());
  ASSERT_OK_AND_ASSIGN(Column id_column, ids.Finish());
  ASSERT_OK_AND_ASSIGN(Table floats, Table::Make(Schema({{"key", DataType::Float64()},
                                                         {"narrow", DataType::Float32()},
                                                         {"id", DataType::Int64()}}),
                                                 {key_column, narrow_column, id_column}));
  for (RankSplit split : testing::kAllRankSplits) {
    for (bool ascending : {true, false}) {
      CheckSort(floats, {{{"key", ascending, false}}}, split, 9);
      CheckSort(floats, {{{"narrow", ascending, true}}}, split, 10);
    }
  }
}

// One fixed-width key and only fixed-width columns, none with nulls: the fused path (partition,
// top radix digit and exchange in one scatter; the key decoded from the sorted words when it is
// an integer, travelling as itself when it is a float). Skewed and narrow keys, keys whose range
// with the row positions needs more than 64 bits (the fused path declines on every rank and the
// general path sorts), enough rows for many buckets, and two threads per rank.
TEST(DistSortTest, OneKeyFixedWidthColumnsWithoutNulls) {
  const Table global = testing::RandomTable({{"key", DataType::Int64(), 0.0, 300, 0.9},
                                             {"id", DataType::Int32(), 0.0},
                                             {"small", DataType::Int8(), 0.0, 7},
                                             {"wide", DataType::UInt64(), 0.0},
                                             {"day", DataType::Date32(), 0.0},
                                             {"at", DataType::Timestamp(TimeUnit::kMilli), 0.0},
                                             {"price", DataType::Float64(), 0.0},
                                             {"ratio", DataType::Float32(), 0.0, 50}},
                                            40000, 31);
  const char* keys[] = {"key", "id", "small", "wide", "day", "at", "price", "ratio"};
  uint64_t seed = 40;
  for (RankSplit split : testing::kAllRankSplits) {
    // Four keys per split; over the splits every key in both directions.
    for (int k = 0; k < 4; ++k, ++seed) {
      compute::SortOptions options{{{keys[seed % 8], (seed / 8) % 2 == 0, false}}};
      options.threads = 1 + static_cast<int>(seed % 3 == 0);
      CheckSort(global, options, split, seed);
    }
  }
}

TEST(DistSortTest, AllNullKeys) {
  const Table global = testing::RandomTable({{"key", DataType::String(), 1.0},
                                             {"other", DataType::Int32(), 1.0},
                                             {"value", DataType::Int64(), 0.0}},
                                            2000, 9);
  for (RankSplit split : testing::kAllRankSplits) {
    CheckSort(global, {{{"key", true, false}}}, split, 3);
    CheckSort(global, {{{"key", false, true}, {"other", true, true}}}, split, 4);
  }
}

TEST(DistSortTest, NanInfinityAndSignedZero) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const double specials[] = {nan, -nan, inf, -inf, 0.0, -0.0, 1.5, -2.25};
  NumberBuilder<double> keys(DataType::Float64());
  NumberBuilder<int64_t> ids(DataType::Int64());
  for (int64_t i = 0; i < 3000; ++i) {
    const uint64_t h = (static_cast<uint64_t>(i) * 2654435761u) >> 7;
    if (h % 10 == 0) {
      ASSERT_OK(keys.AppendNull());
    } else {
      ASSERT_OK(keys.Append(specials[h % 8]));
    }
    ASSERT_OK(ids.Append(i));
  }
  ASSERT_OK_AND_ASSIGN(Column key_column, keys.Finish());
  ASSERT_OK_AND_ASSIGN(Column id_column, ids.Finish());
  ASSERT_OK_AND_ASSIGN(
      Table global, Table::Make(Schema({{"key", DataType::Float64()}, {"id", DataType::Int64()}}),
                                {key_column, id_column}));
  for (RankSplit split : testing::kAllRankSplits) {
    for (bool ascending : {true, false}) {
      for (bool nulls_first : {false, true}) {
        CheckSort(global, {{{"key", ascending, nulls_first}}}, split, 5);
      }
    }
  }
}

TEST(DistSortTest, EmptyGlobalTableAndTinyTables) {
  const Table global = testing::RandomTable(testing::AllTypesSpec(0.2, 3), 7, 11);
  for (int64_t rows : {0, 1, 2, 3, 7}) {
    for (RankSplit split : testing::kAllRankSplits) {
      CheckSort(global.Slice(0, rows), {{{"int16", true, false}, {"string", false, true}}}, split,
                static_cast<uint64_t>(rows));
    }
  }
}

TEST(DistSortTest, MissingKeyFailsOnEveryRank) {
  auto& comm = TestComm();
  const Table global = testing::RandomTable({{"a", DataType::Int64()}}, 100, 1);
  const Table local = testing::RankSlice(global, comm.rank(), comm.size(), RankSplit::kUneven, 1);
  auto result = Sort(comm, local, {{{"missing", true, false}}});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("missing"), std::string::npos)
      << result.status().ToString();
  // The ranks are still in step: a collective afterwards works.
  ASSERT_OK_AND_ASSIGN(RowCounts counts, GlobalRowCounts(comm, local));
  EXPECT_EQ(counts.total, 100);
}

// --- Cylon's conformance data (tests/data/cylon; Apache-2.0, LICENSE.cylon beside it).

const std::string& kCylonData = testing::CylonDataDirectory();
using testing::NormalizeOrderDate;

TEST(DistSortTest, CylonSalesWithNullsAndNonAsciiAtThisWorldSize) {
  // Cylon's test sorts the four files sales_nulls_nunascii_<r> (one per rank at world size 4)
  // by Country, nulls last; sorting/sales_sorted_<r> are the four sorted partitions. Here file i
  // goes to rank i % size (at 4 ranks: Cylon's layout; at 1 and 2 ranks: several files per
  // rank), and the ranks' results in rank order must be the rows of the expected files with
  // Country in the expected order. (The rows per rank differ from Cylon's: its splitters come
  // from other samples.)
  auto& comm = TestComm();
  std::vector<std::string> inputs, outputs;
  for (int r = 0; r < 4; ++r) {
    inputs.push_back(kCylonData + "mpiops/sales_nulls_nunascii_" + std::to_string(r) + ".csv");
    outputs.push_back(kCylonData + "sorting/sales_sorted_" + std::to_string(r) + ".csv");
  }
  ASSERT_OK_AND_ASSIGN(Table local, ReadCsvFiles(comm, inputs));
  ASSERT_OK_AND_ASSIGN(local, NormalizeOrderDate(local));
  ASSERT_OK_AND_ASSIGN(Table sorted, Sort(comm, local, {{{"Country", true, false}}}));
  ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, sorted));

  std::vector<Table> expected_parts;
  for (const auto& output : outputs) {
    ASSERT_OK_AND_ASSIGN(Table part, csv::ReadCsv(output));
    expected_parts.push_back(part);
  }
  ASSERT_OK_AND_ASSIGN(Table expected, compute::Concatenate(expected_parts));
  ASSERT_EQ(gathered.num_rows(), 100);
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, gathered, 1e-9, false));
  ASSERT_OK_AND_ASSIGN(Table expected_keys,
                       expected.SelectColumns(std::vector<std::string>{"Country"}));
  ASSERT_OK_AND_ASSIGN(Table sorted_keys,
                       gathered.SelectColumns(std::vector<std::string>{"Country"}));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected_keys, sorted_keys));
}

}  // namespace
}  // namespace deeprc::dist
