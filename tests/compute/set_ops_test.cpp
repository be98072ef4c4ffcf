#include "deeprc/compute/set_ops.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/oracle.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::compute {
namespace {

using testing::RandomColumnSpec;
using testing::RandomTable;
using testing::TablesEqualOrdered;
using testing::TablesEqualUnordered;

Table MakeTable(std::vector<std::pair<std::string, Column>> columns) {
  std::vector<Field> fields;
  std::vector<Column> data;
  for (auto& [name, column] : columns) {
    fields.push_back({name, column.type()});
    data.push_back(std::move(column));
  }
  return Table::Make(Schema(std::move(fields)), std::move(data)).ValueOrDie();
}

Column Int64s(const std::vector<std::optional<int64_t>>& values) {
  return MakeColumn<int64_t>(DataType::Int64(), values).ValueOrDie();
}
Column Doubles(const std::vector<std::optional<double>>& values) {
  return MakeColumn<double>(DataType::Float64(), values).ValueOrDie();
}
Column Strings(const std::vector<std::optional<std::string>>& values) {
  return MakeStringColumn(values).ValueOrDie();
}

std::string KeepName(Keep keep) {
  switch (keep) {
    case Keep::kFirst: return "first";
    case Keep::kLast: return "last";
    case Keep::kNone: return "none";
  }
  return "";
}

// Every type, few distinct values per column (so whole rows repeat), with nulls.
Table DuplicateRows(int64_t rows, uint64_t seed) {
  std::vector<RandomColumnSpec> specs;
  for (auto spec : testing::AllTypesSpec(0.2, 2)) specs.push_back(spec);
  return RandomTable(specs, rows, seed);
}

void CheckUniqueAgainstPandas(const Table& table, const std::vector<std::string>& subset,
                              Keep keep, int threads = 0) {
  UniqueOptions options;
  options.subset = subset;
  options.keep = keep;
  options.threads = threads;
  ASSERT_OK_AND_ASSIGN(Table actual, Unique(table, options));
  nlohmann::json spec = {{"op", "unique"}, {"keep", KeepName(keep)}, {"subset", subset}};
  ASSERT_OK_AND_ASSIGN(Table expected, testing::RunPandasOracle(spec, {table}, table.schema()));
  // Kept rows are in input order: the comparison is ordered.
  EXPECT_TRUE(TablesEqualOrdered(expected, actual)) << KeepName(keep);
}

// ---------------------------------------------------------------------------------------------
// Unique

TEST(UniqueOracle, WholeRowsOfEveryType) {
  // Few columns with two values each, so whole rows repeat.
  const Table table = RandomTable({{"b", DataType::Bool(), 0.2, 2},
                                   {"s", DataType::String(), 0.2, 2},
                                   {"f", DataType::Float64(), 0.2, 2},
                                   {"d", DataType::Date32(), 0.2, 2}},
                                  300, 21);
  CheckUniqueAgainstPandas(table, {}, Keep::kFirst);
  CheckUniqueAgainstPandas(table, {}, Keep::kNone);
}

TEST(UniqueOracle, SubsetsAndKeepModes) {
  const Table table = DuplicateRows(400, 22);
  CheckUniqueAgainstPandas(table, {"string", "int32"}, Keep::kLast);
  CheckUniqueAgainstPandas(table, {"timestamp_ms"}, Keep::kNone);
  CheckUniqueAgainstPandas(table, {"uint64", "bool", "float32"}, Keep::kFirst);
}

TEST(UniqueOracle, SkewedKeyAndEmptyTable) {
  const Table table = RandomTable({{"k", DataType::Int64(), 0.05, 100, 0.9},
                                   {"s", DataType::String(), 0.1, 0}},
                                  300, 23);
  CheckUniqueAgainstPandas(table, {"k"}, Keep::kLast);
  CheckUniqueAgainstPandas(table.Slice(0, 0), {"k"}, Keep::kFirst);
}

TEST(UniqueOracle, ManyRowsOnTwoThreads) {
  const Table table = RandomTable({{"k", DataType::Int32(), 0.01, 20000},
                                   {"s", DataType::String(), 0.01, 3}},
                                  70000, 24);
  CheckUniqueAgainstPandas(table, {"k"}, Keep::kFirst, 2);
  CheckUniqueAgainstPandas(table, {"k", "s"}, Keep::kNone, 2);
}

TEST(Unique, KeepModesAndNullsEqualNulls) {
  const Table table = MakeTable({{"k", Int64s({1, std::nullopt, 2, 1, std::nullopt, 3})},
                                 {"v", Int64s({10, 20, 30, 40, 50, 60})}});
  UniqueOptions options;
  options.subset = {"k"};
  ASSERT_OK_AND_ASSIGN(Table first, Unique(table, options));
  EXPECT_TRUE(TablesEqualOrdered(MakeTable({{"k", Int64s({1, std::nullopt, 2, 3})},
                                            {"v", Int64s({10, 20, 30, 60})}}),
                                 first));
  options.keep = Keep::kLast;
  ASSERT_OK_AND_ASSIGN(Table last, Unique(table, options));
  EXPECT_TRUE(TablesEqualOrdered(
      MakeTable({{"k", Int64s({2, 1, std::nullopt, 3})}, {"v", Int64s({30, 40, 50, 60})}}), last));
  options.keep = Keep::kNone;
  ASSERT_OK_AND_ASSIGN(Table none, Unique(table, options));
  EXPECT_TRUE(
      TablesEqualOrdered(MakeTable({{"k", Int64s({2, 3})}, {"v", Int64s({30, 60})}}), none));
}

TEST(Unique, NaNEqualsNaNAndNegativeZeroEqualsZero) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Table table = MakeTable({{"x", Doubles({nan, 0.0, -0.0, -nan, 1.0})}});
  ASSERT_OK_AND_ASSIGN(Table result, Unique(table));
  ASSERT_EQ(result.num_rows(), 3);
  EXPECT_TRUE(std::isnan(result.column(0).Value<double>(0)));
  EXPECT_EQ(result.column(0).Value<double>(1), 0.0);
  EXPECT_EQ(result.column(0).Value<double>(2), 1.0);
}

TEST(Unique, SameResultOnOneTwoAndFourThreads) {
  const Table table = RandomTable({{"a", DataType::Int64(), 0.01, 50000},
                                   {"s", DataType::String(), 0.01, 4}},
                                  300000, 25);
  for (Keep keep : {Keep::kFirst, Keep::kLast, Keep::kNone}) {
    for (const std::vector<std::string>& subset :
         {std::vector<std::string>{"a"}, std::vector<std::string>{}}) {
      ASSERT_OK_AND_ASSIGN(Table one, Unique(table, {subset, keep, 1}));
      for (int threads : {2, 4}) {
        ASSERT_OK_AND_ASSIGN(Table many, Unique(table, {subset, keep, threads}));
        EXPECT_TRUE(TablesEqualOrdered(one, many)) << KeepName(keep) << " " << threads;
      }
    }
  }
}

TEST(Unique, Errors) {
  const Table table = MakeTable({{"k", Int64s({1})}});
  auto missing = Unique(table, {{"nope"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kKeyError);
  EXPECT_NE(missing.status().message().find("unique subset: no column named 'nope'"),
            std::string::npos)
      << missing.status().ToString();
  auto no_columns = Unique(Table::Empty(Schema()));
  ASSERT_FALSE(no_columns.ok());
  EXPECT_EQ(no_columns.status().message(), "unique of a table without columns");
}

// ---------------------------------------------------------------------------------------------
// Set operations

void CheckSetOperationAgainstPandas(const Table& a, const Table& b, const std::string& operation,
                                    const Table& actual) {
  ASSERT_OK_AND_ASSIGN(Table expected,
                       testing::RunPandasOracle({{"op", "setops"}, {"operation", operation}},
                                                {a, b}, a.schema()));
  EXPECT_TRUE(TablesEqualUnordered(expected, actual)) << operation;
}

TEST(SetOpsOracle, EveryOperationOnOverlappingTables) {
  // The same cardinality draws from the same dictionary, so different seeds give overlapping
  // rows; nulls and duplicates in both.
  auto make = [](int64_t rows, uint64_t seed) {
    return RandomTable({{"i", DataType::Int32(), 0.2, 3},
                        {"s", DataType::String(), 0.2, 3},
                        {"f", DataType::Float64(), 0.2, 2},
                        {"t", DataType::Timestamp(TimeUnit::kMilli), 0.2, 2}},
                       rows, seed);
  };
  const Table a = make(150, 31);
  const Table b = make(120, 32);
  ASSERT_OK_AND_ASSIGN(Table u, Union(a, b));
  CheckSetOperationAgainstPandas(a, b, "union", u);
  ASSERT_OK_AND_ASSIGN(Table all, Union(a, b, /*distinct=*/false));
  CheckSetOperationAgainstPandas(a, b, "union_all", all);
  ASSERT_OK_AND_ASSIGN(Table intersect, Intersect(a, b));
  CheckSetOperationAgainstPandas(a, b, "intersect", intersect);
  ASSERT_OK_AND_ASSIGN(Table difference, Difference(a, b));
  CheckSetOperationAgainstPandas(a, b, "difference", difference);
  EXPECT_GT(intersect.num_rows(), 0);
  EXPECT_GT(difference.num_rows(), 0);
  EXPECT_LT(u.num_rows(), all.num_rows());
  // One side empty.
  const Table none = a.Slice(0, 0);
  ASSERT_OK_AND_ASSIGN(Table with_empty, Difference(a, none));
  CheckSetOperationAgainstPandas(a, none, "difference", with_empty);
  ASSERT_OK_AND_ASSIGN(Table empty_intersect, Intersect(none, b));
  EXPECT_EQ(empty_intersect.num_rows(), 0);
}

TEST(SetOps, DistinctRowsNullsEqualAndOrderOfFirstAppearance) {
  const Table a = MakeTable({{"k", Int64s({1, 2, 2, std::nullopt, 3, std::nullopt})},
                             {"s", Strings({"x", "y", "y", "z", "w", "z"})}});
  const Table b = MakeTable({{"k", Int64s({std::nullopt, 2, 5, 5})},
                             {"s", Strings({"z", "y", "v", "v"})}});
  ASSERT_OK_AND_ASSIGN(Table u, Union(a, b));
  EXPECT_TRUE(TablesEqualOrdered(
      MakeTable({{"k", Int64s({1, 2, std::nullopt, 3, 5})}, {"s", Strings({"x", "y", "z", "w", "v"})}}),
      u));
  ASSERT_OK_AND_ASSIGN(Table all, Union(a, b, false));
  EXPECT_EQ(all.num_rows(), 10);
  ASSERT_OK_AND_ASSIGN(Table intersect, Intersect(a, b));
  EXPECT_TRUE(TablesEqualOrdered(
      MakeTable({{"k", Int64s({2, std::nullopt})}, {"s", Strings({"y", "z"})}}), intersect));
  ASSERT_OK_AND_ASSIGN(Table difference, Difference(a, b));
  EXPECT_TRUE(TablesEqualOrdered(
      MakeTable({{"k", Int64s({1, 3})}, {"s", Strings({"x", "w"})}}), difference));
  ASSERT_OK_AND_ASSIGN(Table reverse, Difference(b, a));
  EXPECT_TRUE(
      TablesEqualOrdered(MakeTable({{"k", Int64s({5})}, {"s", Strings({"v"})}}), reverse));
}

TEST(SetOps, ManyRowsSameOnOneAndTwoThreads) {
  const Table a = RandomTable({{"k", DataType::Int64(), 0.01, 40000}}, 150000, 33);
  const Table b = RandomTable({{"k", DataType::Int64(), 0.01, 40000}}, 100000, 34);
  for (auto op : {0, 1, 2}) {
    auto run = [&](int threads) {
      return op == 0 ? Union(a, b, true, threads)
                     : op == 1 ? Intersect(a, b, threads) : Difference(a, b, threads);
    };
    ASSERT_OK_AND_ASSIGN(Table one, run(1));
    ASSERT_OK_AND_ASSIGN(Table two, run(2));
    EXPECT_TRUE(TablesEqualOrdered(one, two)) << op;
    EXPECT_GT(one.num_rows(), 0);
  }
}

TEST(SetOps, SchemasMustMatch) {
  const Table a = MakeTable({{"k", Int64s({1})}, {"s", Strings({"x"})}});
  const Table fewer = MakeTable({{"k", Int64s({1})}});
  const Table other_type = MakeTable({{"k", Doubles({1})}, {"s", Strings({"x"})}});
  const Table other_name = MakeTable({{"k", Int64s({1})}, {"t", Strings({"x"})}});
  auto count = Union(a, fewer);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().message(),
            "union needs tables with the same columns: the first has 2 (k: int64, s: string), "
            "the second 1 (k: int64)");
  auto type = Intersect(a, other_type);
  ASSERT_FALSE(type.ok());
  EXPECT_EQ(type.status().code(), StatusCode::kTypeError);
  EXPECT_EQ(type.status().message(),
            "intersect needs tables with the same columns: column 0 is 'k: int64' in the first "
            "and 'k: float64' in the second");
  auto name = Difference(a, other_name);
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.status().message(),
            "difference needs tables with the same columns: column 1 is 's: string' in the "
            "first and 't: string' in the second");
  auto all = Union(a, fewer, false);
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.status().message().find("union all needs tables with the same columns"),
            std::string::npos);
  auto no_columns = Union(Table::Empty(Schema()), Table::Empty(Schema()));
  ASSERT_FALSE(no_columns.ok());
  EXPECT_EQ(no_columns.status().message(), "union of tables without columns");
}

}  // namespace
}  // namespace deeprc::compute
