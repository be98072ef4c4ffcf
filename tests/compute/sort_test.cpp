// Sort checked against pandas (sort_values, stable, nulls placed per key) on random tables: every
// type, nulls, duplicates, skew, non-ASCII strings, several keys in mixed directions, and the
// parallel paths at 1 and 2 threads. The oracle returns the sorted order of row numbers, so the
// comparison is exact: it checks stability as well as the order of the keys.
#include "deeprc/compute/sort.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/oracle.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::compute {
namespace {

using KeyList = std::vector<SortKey>;

nlohmann::json KeysToJson(const KeyList& keys) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& key : keys) {
    out.push_back(
        {{"column", key.column}, {"ascending", key.ascending}, {"nulls_first", key.nulls_first}});
  }
  return out;
}

std::string KeysToString(const KeyList& keys) {
  std::string out;
  for (const auto& key : keys) {
    out += key.column + (key.ascending ? " asc" : " desc") +
           (key.nulls_first ? " nulls first, " : " nulls last, ");
  }
  return out;
}

// The row orders pandas gives for each key list.
std::vector<std::vector<int64_t>> OracleOrders(const Table& table,
                                               const std::vector<KeyList>& sorts) {
  nlohmann::json spec = {{"op", "sort"}, {"sorts", nlohmann::json::array()}};
  std::vector<Field> fields;
  for (size_t j = 0; j < sorts.size(); ++j) {
    spec["sorts"].push_back(KeysToJson(sorts[j]));
    fields.push_back({"order_" + std::to_string(j), DataType::Int64()});
  }
  auto result = testing::RunPandasOracle(spec, {table}, Schema(fields));
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  std::vector<std::vector<int64_t>> orders;
  if (!result.ok()) return orders;
  const Table& oracle = *result;
  for (int c = 0; c < oracle.num_columns(); ++c) {
    const Column& column = oracle.column(c);
    orders.emplace_back(column.Values<int64_t>(), column.Values<int64_t>() + column.length());
  }
  return orders;
}

// Checks SortIndices and Sort for each key list against pandas, at the given thread counts.
void CheckAgainstOracle(const Table& table, const std::vector<KeyList>& sorts,
                        std::vector<int> thread_counts = {1, 2}) {
  const auto orders = OracleOrders(table, sorts);
  ASSERT_EQ(orders.size(), sorts.size());
  for (size_t j = 0; j < sorts.size(); ++j) {
    SCOPED_TRACE("keys: " + KeysToString(sorts[j]));
    ASSERT_EQ(static_cast<int64_t>(orders[j].size()), table.num_rows());
    ASSERT_OK_AND_ASSIGN(Table expected, Take(table, orders[j], 1));
    for (int threads : thread_counts) {
      SCOPED_TRACE("threads: " + std::to_string(threads));
      SortOptions options{sorts[j], threads};
      ASSERT_OK_AND_ASSIGN(auto indices, SortIndices(table, options));
      ASSERT_EQ(indices.size(), orders[j].size());
      int64_t first_difference = -1;
      for (size_t i = 0; i < indices.size(); ++i) {
        if (indices[i] != orders[j][i]) {
          first_difference = static_cast<int64_t>(i);
          break;
        }
      }
      ASSERT_EQ(first_difference, -1)
          << "row " << first_difference << ": got input row " << indices[first_difference]
          << ", pandas has input row " << orders[j][first_difference];
      ASSERT_OK_AND_ASSIGN(Table sorted, Sort(table, options));
      ASSERT_TRUE(testing::TablesEqualOrdered(expected, sorted));
    }
  }
}

std::vector<KeyList> EveryDirection(const std::string& column) {
  return {{{column, true, false}},
          {{column, true, true}},
          {{column, false, false}},
          {{column, false, true}}};
}

TEST(SortTest, EveryTypeEveryDirectionMatchesPandas) {
  for (int64_t cardinality : {0, 7}) {
    SCOPED_TRACE("cardinality " + std::to_string(cardinality));
    const Table table = testing::RandomTable(testing::AllTypesSpec(0.15, cardinality), 2000,
                                             11 + static_cast<uint64_t>(cardinality));
    std::vector<KeyList> sorts;
    for (const auto& field : table.schema().fields()) {
      for (auto& keys : EveryDirection(field.name)) sorts.push_back(keys);
    }
    CheckAgainstOracle(table, sorts);
  }
}

TEST(SortTest, ManyKeysMixedDirectionsMatchPandas) {
  auto specs = testing::AllTypesSpec(0.2, 5);
  specs.push_back({"wide_int64", DataType::Int64(), 0.1, 0});
  specs.push_back({"skewed", DataType::Int32(), 0.05, 100, 0.9});
  specs.push_back({"text", DataType::String(), 0.1, 40});
  const Table table = testing::RandomTable(specs, 3000, 5);
  std::mt19937_64 rng(99);
  std::vector<KeyList> sorts;
  for (int s = 0; s < 60; ++s) {
    KeyList keys;
    const int count = 1 + static_cast<int>(rng() % 5);
    for (int k = 0; k < count; ++k) {
      const auto& field = table.schema().field(static_cast<int>(rng() % table.num_columns()));
      keys.push_back({field.name, rng() % 2 == 0, rng() % 2 == 0});
    }
    sorts.push_back(std::move(keys));
  }
  CheckAgainstOracle(table, sorts);
}

TEST(SortTest, LargeTablesUseTheParallelPathsAndMatchPandas) {
  // Above the parallel threshold, with a skewed key (one radix bucket holds most rows), a wide
  // key (key and row number do not fit in one word), strings and a packed pair of small keys.
  const Table table = testing::RandomTable({{"skewed", DataType::Int64(), 0.01, 1000, 0.7},
                                            {"wide", DataType::Int64(), 0.02, 0},
                                            {"small", DataType::UInt8(), 0.1, 0},
                                            {"day", DataType::Date32(), 0.0, 0},
                                            {"text", DataType::String(), 0.05, 5000},
                                            {"x", DataType::Float64(), 0.1, 0}},
                                           120000, 3);
  CheckAgainstOracle(table, {{{"skewed", true, false}},
                             {{"wide", false, true}},
                             {{"text", true, false}},
                             {{"text", false, true}, {"small", true, false}},
                             {{"small", false, false}, {"day", true, false}},
                             {{"small", true, true}},
                             {{"x", true, true}},
                             {{"skewed", false, true}, {"wide", true, false}}});
}

TEST(SortTest, PayloadColumnsCarriedThroughTheRadixSortMatchPandas) {
  // Key and row number fit one word, so fixed-width payload columns without nulls travel with
  // the words (up to 24 bytes a row); the others are gathered by position. At 1 and 2 threads.
  const Table table = testing::RandomTable({{"key", DataType::Int32(), 0.0, 20000},
                                            {"day", DataType::Date32(), 0.0, 0},
                                            {"p8", DataType::Int8(), 0.0, 0},
                                            {"p16", DataType::UInt16(), 0.0, 0},
                                            {"p32", DataType::Float32(), 0.0, 0},
                                            {"p64", DataType::Float64(), 0.0, 0},
                                            {"q64", DataType::Int64(), 0.0, 0},
                                            {"r64", DataType::UInt64(), 0.0, 0},
                                            {"flag", DataType::Bool(), 0.0, 0},
                                            {"text", DataType::String(), 0.1, 0},
                                            {"nullable", DataType::Int64(), 0.2, 0}},
                                           60000, 21);
  CheckAgainstOracle(table, {{{"key", true, false}},
                             {{"key", false, false}},
                             {{"day", false, true}},
                             {{"day", true, false}, {"p16", false, false}}});
  CheckAgainstOracle(table.SelectColumns(std::vector<std::string>{"key", "p64", "p8"}).ValueOrDie(),
                     {{{"key", true, false}}, {{"p64", false, true}}});
}

TEST(SortTest, WideKeysCrowdedInAFewValuesMatchPandas) {
  // The key spans the whole int64 range, so only its high bits share a word with the row
  // number; most values sit in [0, 5000), where the high bits are all equal and the low bits
  // decide. Payloads: one carried (no nulls), one gathered (nulls). With and without nulls in
  // the key (without, the key column is decoded from the sorted words).
  for (int64_t rows : {3000, 90000}) {
    for (bool key_nulls : {true, false}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + (key_nulls ? " with" : " without") + " nulls");
      NumberBuilder<int64_t> key(DataType::Int64());
      NumberBuilder<int32_t> payload(DataType::Int32());
      std::mt19937_64 rng(rows);
      for (int64_t i = 0; i < rows; ++i) {
        if (i % 1000 == 0) {
          ASSERT_OK(key.Append(i % 2000 == 0 ? std::numeric_limits<int64_t>::min()
                                             : std::numeric_limits<int64_t>::max()));
        } else if (key_nulls && i % 97 == 0) {
          ASSERT_OK(key.AppendNull());
        } else {
          ASSERT_OK(key.Append(static_cast<int64_t>(rng() % 5000)));
        }
        ASSERT_OK(payload.Append(static_cast<int32_t>(i)));
      }
      const Table text = testing::RandomTable({{"text", DataType::String(), 0.3, 50}}, rows, 3);
      ASSERT_OK_AND_ASSIGN(
          Table table,
          Table::Make(Schema({{"key", DataType::Int64()},
                              {"payload", DataType::Int32()},
                              {"text", DataType::String()}}),
                      {key.Finish().ValueOrDie(), payload.Finish().ValueOrDie(), text.column(0)}));
      CheckAgainstOracle(table, {{{"key", true, false}},
                                 {{"key", false, true}},
                                 {{"key", true, true}, {"text", false, false}}});
      ASSERT_OK_AND_ASSIGN(Table two,
                           table.SelectColumns(std::vector<std::string>{"payload", "key"}));
      CheckAgainstOracle(two, {{{"key", false, false}}});
    }
  }
}

TEST(SortTest, SameResultAtOneAndTwoThreads) {
  const Table table = testing::RandomTable({{"a", DataType::Int32(), 0.05, 50000, 0.3},
                                            {"b", DataType::String(), 0.05, 300},
                                            {"c", DataType::Float32(), 0.05, 0},
                                            {"d", DataType::Timestamp(TimeUnit::kNano), 0.0, 0}},
                                           400000, 8);
  for (const KeyList& keys : std::vector<KeyList>{{{"a", true, false}},
                                                  {{"b", false, true}, {"a", true, true}},
                                                  {{"c", false, false}},
                                                  {{"d", true, false}}}) {
    SCOPED_TRACE(KeysToString(keys));
    ASSERT_OK_AND_ASSIGN(auto one, SortIndices(table, {keys, 1}));
    ASSERT_OK_AND_ASSIGN(auto two, SortIndices(table, {keys, 2}));
    ASSERT_EQ(one, two);
  }
}

TEST(SortTest, EmptyTableAndSingleRow) {
  const Table table = testing::RandomTable(testing::AllTypesSpec(0.5, 0), 0, 1);
  ASSERT_OK_AND_ASSIGN(Table sorted,
                       Sort(table, {{{"int64", true, false}, {"string", false, true}}}));
  EXPECT_EQ(sorted.num_rows(), 0);
  EXPECT_EQ(sorted.schema(), table.schema());
  const Table one = testing::RandomTable(testing::AllTypesSpec(0.5, 0), 1, 1);
  ASSERT_OK_AND_ASSIGN(Table sorted_one, Sort(one, {{{"int64", false, false}}}));
  EXPECT_TRUE(sorted_one.Equals(one));
}

TEST(SortTest, AllNullAndConstantColumnsKeepInputOrder) {
  const Table table = testing::RandomTable({{"nulls", DataType::Float64(), 1.0, 0},
                                            {"text_nulls", DataType::String(), 1.0, 0},
                                            {"constant", DataType::Int16(), 0.0, 1},
                                            {"b", DataType::Int8(), 0.3, 3}},
                                           1000, 4);
  ASSERT_EQ(table.column(0).null_count(), 1000);
  for (const KeyList& keys : std::vector<KeyList>{
           {{"nulls", true, false}}, {{"text_nulls", false, true}}, {{"constant", false, false}}}) {
    ASSERT_OK_AND_ASSIGN(auto indices, SortIndices(table, {keys, 2}));
    for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(indices[i], i);
  }
  CheckAgainstOracle(table,
                     {{{"nulls", true, false}, {"b", false, true}},
                      {{"constant", true, true}, {"text_nulls", true, false}, {"b", true, false}}});
}

TEST(SortTest, SlicedInputMatchesPandas) {
  const Table table = testing::RandomTable({{"v", DataType::Int64(), 0.2, 30},
                                            {"s", DataType::String(), 0.2, 30},
                                            {"flag", DataType::Bool(), 0.2, 0}},
                                           5000, 12);
  const Table slice = table.Slice(333, 4000);
  CheckAgainstOracle(slice, {{{"v", true, false}, {"s", false, true}},
                             {{"flag", false, true}, {"v", false, false}},
                             {{"s", true, true}}});
}

Column Float64Column(const std::vector<std::optional<double>>& values) {
  NumberBuilder<double> builder(DataType::Float64());
  for (const auto& value : values) EXPECT_OK(builder.Append(value));
  return builder.Finish().ValueOrDie();
}

std::vector<std::string> Formatted(const Table& table, int column) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < table.num_rows(); ++i) {
    const Column& c = table.column(column);
    if (c.IsValid(i) && c.type_id() == TypeId::kFloat64) {
      const double v = c.Value<double>(i);
      out.push_back(std::isnan(v)   ? "nan"
                    : std::isinf(v) ? (v > 0 ? "inf" : "-inf")
                                    : std::to_string(static_cast<int>(v)));
    } else {
      out.push_back(c.FormatValue(i));
    }
  }
  return out;
}

// NaN is a value above +inf (as in DuckDB and PostgreSQL): last of the values ascending, first
// descending; all NaNs are equal, -0.0 equals 0.0; nulls go where nulls_first says.
TEST(SortTest, NaNIsTheLargestValue) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Column x =
      Float64Column({3.0, nan, std::nullopt, -inf, -nan, inf, -0.0, 0.0, std::nullopt, -5.0});
  NumberBuilder<int64_t> ids(DataType::Int64());
  for (int64_t i = 0; i < x.length(); ++i) ASSERT_OK(ids.Append(i));
  ASSERT_OK_AND_ASSIGN(Column id, ids.Finish());
  ASSERT_OK_AND_ASSIGN(
      Table table,
      Table::Make(Schema({{"x", DataType::Float64()}, {"id", DataType::Int64()}}), {x, id}));
  ASSERT_OK_AND_ASSIGN(Table ascending, Sort(table, {{{"x", true, false}}, 1}));
  EXPECT_EQ(Formatted(ascending, 1),
            (std::vector<std::string>{"3", "9", "6", "7", "0", "5", "1", "4", "2", "8"}));
  ASSERT_OK_AND_ASSIGN(Table descending, Sort(table, {{{"x", false, true}}, 2}));
  EXPECT_EQ(Formatted(descending, 1),
            (std::vector<std::string>{"2", "8", "1", "4", "5", "0", "6", "7", "9", "3"}));
  EXPECT_EQ(Formatted(descending, 0), (std::vector<std::string>{"null", "null", "nan", "nan", "inf",
                                                                "3", "0", "0", "-5", "-inf"}));
}

Column StringColumn(const std::vector<std::optional<std::string>>& values) {
  StringBuilder builder;
  for (const auto& value : values) {
    if (value) {
      EXPECT_OK(builder.Append(*value));
    } else {
      EXPECT_OK(builder.AppendNull());
    }
  }
  return builder.Finish().ValueOrDie();
}

// Strings order by the bytes of their UTF-8 form (code point order), shorter first on a common
// prefix; long common prefixes and embedded zero bytes are told apart.
TEST(SortTest, StringsOrderByUtf8Bytes) {
  const std::string zero("ab\0c", 4);
  Column s = StringColumn({"東京", "abcdefghij2", "é", "", "abcdefghij1", "Z", std::nullopt,
                           "abcdefgh", "🙂", "ab", zero, "abcdefghij", "a"});
  ASSERT_OK_AND_ASSIGN(Table table, Table::Make(Schema({{"s", DataType::String()}}), {s}));
  ASSERT_OK_AND_ASSIGN(auto indices, SortIndices(table, {{{"s", true, false}}, 1}));
  EXPECT_EQ(indices, (std::vector<int64_t>{3, 5, 12, 9, 10, 7, 11, 4, 1, 2, 0, 8, 6}));
  ASSERT_OK_AND_ASSIGN(auto reversed, SortIndices(table, {{{"s", false, true}}, 1}));
  EXPECT_EQ(reversed, (std::vector<int64_t>{6, 8, 0, 2, 1, 4, 11, 7, 10, 9, 12, 5, 3}));
}

TEST(SortTest, ExtremeIntegersAndBools) {
  NumberBuilder<int64_t> big(DataType::Int64());
  NumberBuilder<uint64_t> unsigned_big(DataType::UInt64());
  BoolBuilder flags;
  const std::vector<int64_t> values = {0,  std::numeric_limits<int64_t>::max(),
                                       -1, std::numeric_limits<int64_t>::min(),
                                       1,  std::numeric_limits<int64_t>::min() + 1};
  for (int64_t v : values) {
    ASSERT_OK(big.Append(v));
    ASSERT_OK(unsigned_big.Append(static_cast<uint64_t>(v)));
    ASSERT_OK(flags.Append(v < 0));
  }
  ASSERT_OK(big.AppendNull());
  ASSERT_OK(unsigned_big.AppendNull());
  ASSERT_OK(flags.AppendNull());
  ASSERT_OK_AND_ASSIGN(Column a, big.Finish());
  ASSERT_OK_AND_ASSIGN(Column b, unsigned_big.Finish());
  ASSERT_OK_AND_ASSIGN(Column c, flags.Finish());
  ASSERT_OK_AND_ASSIGN(
      Table table,
      Table::Make(
          Schema({{"a", DataType::Int64()}, {"b", DataType::UInt64()}, {"c", DataType::Bool()}}),
          {a, b, c}));
  ASSERT_OK_AND_ASSIGN(auto by_a, SortIndices(table, {{{"a", true, false}}}));
  EXPECT_EQ(by_a, (std::vector<int64_t>{3, 5, 2, 0, 4, 1, 6}));
  ASSERT_OK_AND_ASSIGN(auto by_b, SortIndices(table, {{{"b", false, false}}}));
  EXPECT_EQ(by_b, (std::vector<int64_t>{2, 5, 3, 1, 4, 0, 6}));
  ASSERT_OK_AND_ASSIGN(auto by_c, SortIndices(table, {{{"c", false, true}, {"a", false, false}}}));
  EXPECT_EQ(by_c, (std::vector<int64_t>{6, 2, 5, 3, 1, 4, 0}));
  // The decoded key column of the one-pass path holds the same values as a gather.
  ASSERT_OK_AND_ASSIGN(Table no_nulls,
                       Table::Make(Schema({{"a", DataType::Int64()}}), {a.Slice(0, 6)}));
  ASSERT_OK_AND_ASSIGN(Table sorted, Sort(no_nulls, {{{"a", false, false}}}));
  ASSERT_OK_AND_ASSIGN(auto order, SortIndices(no_nulls, {{{"a", false, false}}}));
  ASSERT_OK_AND_ASSIGN(Table gathered, Take(no_nulls, order));
  EXPECT_TRUE(sorted.Equals(gathered));
  EXPECT_EQ(sorted.column(0).Value<int64_t>(0), std::numeric_limits<int64_t>::max());
}

TEST(SortTest, ErrorsNameTheProblem) {
  const Table table = testing::RandomTable({{"a", DataType::Int32(), 0.0, 0}}, 10, 1);
  auto missing = SortIndices(table, {{{"nope", true, false}}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kKeyError);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos)
      << missing.status().ToString();
  auto no_keys = Sort(table, SortOptions{});
  ASSERT_FALSE(no_keys.ok());
  EXPECT_EQ(no_keys.status().code(), StatusCode::kInvalid);
}

}  // namespace
}  // namespace deeprc::compute
