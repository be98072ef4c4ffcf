#include "deeprc/compute/group_by.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "deeprc/compute/selection.h"
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

// ---------------------------------------------------------------------------------------------
// Helpers

Aggregate Agg(std::string column, AggregateKind kind, std::string name = {}) {
  Aggregate a;
  a.column = std::move(column);
  a.kind = kind;
  a.output_name = std::move(name);
  return a;
}

std::string OutputName(const Aggregate& a) {
  if (!a.output_name.empty()) return a.output_name;
  if (a.kind == AggregateKind::kQuantile) {
    return fmt::format("{}_quantile_{}", a.column, a.quantile);
  }
  return fmt::format("{}_{}", a.column, AggregateKindName(a.kind));
}

// The result type group_by.h documents, written out independently of the implementation.
DataType DocumentedType(AggregateKind kind, const DataType& input) {
  switch (kind) {
    case AggregateKind::kCount:
    case AggregateKind::kNunique:
      return DataType::Int64();
    case AggregateKind::kSum:
      if (IsFloating(input.id)) return DataType::Float64();
      if (IsInteger(input.id) && !IsSignedInteger(input.id)) return DataType::UInt64();
      return DataType::Int64();
    case AggregateKind::kMin:
    case AggregateKind::kMax:
    case AggregateKind::kFirst:
    case AggregateKind::kLast:
      return input;
    default:
      return DataType::Float64();
  }
}

Schema ExpectedSchema(const Table& table, const std::vector<std::string>& keys,
                      const std::vector<Aggregate>& aggregates) {
  std::vector<Field> fields;
  for (const auto& key : keys)
    fields.push_back(table.schema().field(table.schema().FieldIndex(key)));
  for (const auto& a : aggregates) {
    const DataType& input = table.schema().field(table.schema().FieldIndex(a.column)).type;
    fields.push_back({OutputName(a), DocumentedType(a.kind, input)});
  }
  return Schema(std::move(fields));
}

nlohmann::json Spec(const std::vector<std::string>& keys, bool dropna,
                    const std::vector<Aggregate>& aggregates) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& a : aggregates) {
    list.push_back({{"column", a.column},
                    {"kind", std::string(AggregateKindName(a.kind))},
                    {"ddof", a.ddof},
                    {"quantile", a.quantile},
                    {"name", OutputName(a)}});
  }
  return {{"op", "groupby"}, {"keys", keys}, {"dropna", dropna}, {"aggregates", list}};
}

// Many aggregates over every column of `table` that is not a key: the types each aggregate
// accepts, several ddof and quantile values. int64 and uint64 columns hold values near 2^61, so
// they are summed only through the small-valued copies i64s and u64s (a sum would overflow).
std::vector<Aggregate> ManyAggregates(const Table& table, const std::vector<std::string>& keys) {
  std::vector<Aggregate> out;
  int variant = 0;
  for (const auto& field : table.schema().fields()) {
    if (std::find(keys.begin(), keys.end(), field.name) != keys.end()) continue;
    const TypeId id = field.type.id;
    for (auto kind : {AggregateKind::kCount, AggregateKind::kNunique, AggregateKind::kMin,
                      AggregateKind::kMax, AggregateKind::kFirst, AggregateKind::kLast}) {
      out.push_back(Agg(field.name, kind));
    }
    const bool numeric = IsNumeric(id) || id == TypeId::kBool;
    if (!numeric) continue;
    const bool wide = id == TypeId::kInt64 || id == TypeId::kUInt64;
    if (!wide) out.push_back(Agg(field.name, AggregateKind::kSum));
    out.push_back(Agg(field.name, AggregateKind::kMean));
    if (id == TypeId::kBool) continue;
    Aggregate var = Agg(field.name, AggregateKind::kVar);
    var.ddof = variant % 2;
    out.push_back(var);
    Aggregate std_dev = Agg(field.name, AggregateKind::kStd);
    std_dev.ddof = (variant + 1) % 2;
    out.push_back(std_dev);
    out.push_back(Agg(field.name, AggregateKind::kMedian));
    Aggregate q = Agg(field.name, AggregateKind::kQuantile);
    q.quantile = variant % 3 == 0 ? 0.3 : variant % 3 == 1 ? 0.9 : 0.0;
    out.push_back(q);
    ++variant;
  }
  return out;
}

// Adds copies of int32 / uint32 columns as int64 / uint64 (small values, safe to sum).
Table WithSmallWideColumns(const Table& table) {
  auto widen = [&](const std::string& from, DataType to_type) -> Column {
    const Column& source = table.column(table.schema().FieldIndex(from));
    return VisitType(to_type.id, [&]<typename Tag>(Tag) -> Column {
      if constexpr (kIsNumberTag<Tag>) {
        using T = typename Tag::CType;
        NumberBuilder<T> builder(to_type);
        for (int64_t i = 0; i < source.length(); ++i) {
          if (source.IsNull(i)) {
            (void)builder.AppendNull();
          } else if (source.type_id() == TypeId::kInt32) {
            (void)builder.Append(static_cast<T>(source.Value<int32_t>(i)));
          } else {
            (void)builder.Append(static_cast<T>(source.Value<uint32_t>(i)));
          }
        }
        return builder.Finish().ValueOrDie();
      }
      return Column();
    });
  };
  Table out =
      table.AddColumn({"i64s", DataType::Int64()}, widen("int32", DataType::Int64())).ValueOrDie();
  return out.AddColumn({"u64s", DataType::UInt64()}, widen("uint32", DataType::UInt64()))
      .ValueOrDie();
}

// Values of every type, with nulls, plus the given key columns.
Table ValuesWithKeys(const std::vector<RandomColumnSpec>& keys, int64_t rows, uint64_t seed,
                     double value_nulls = 0.15) {
  std::vector<RandomColumnSpec> specs = keys;
  for (auto spec : testing::AllTypesSpec(value_nulls, 40)) specs.push_back(spec);
  return WithSmallWideColumns(RandomTable(specs, rows, seed));
}

void CheckAgainstPandas(const Table& table, const std::vector<std::string>& keys, bool dropna,
                        std::vector<Aggregate> aggregates = {}, int threads = 0) {
  if (aggregates.empty()) aggregates = ManyAggregates(table, keys);
  GroupByOptions options;
  options.keys = keys;
  options.aggregates = aggregates;
  options.drop_null_keys = dropna;
  options.threads = threads;
  ASSERT_OK_AND_ASSIGN(Table actual, GroupBy(table, options));
  const Schema schema = ExpectedSchema(table, keys, aggregates);
  ASSERT_OK_AND_ASSIGN(Table expected,
                       testing::RunPandasOracle(Spec(keys, dropna, aggregates), {table}, schema));
  EXPECT_TRUE(TablesEqualOrdered(expected, actual, 1e-9));
}

Table MakeTable(std::vector<std::pair<std::string, Column>> columns) {
  std::vector<Field> fields;
  std::vector<Column> data;
  for (auto& [name, column] : columns) {
    fields.push_back({name, column.type()});
    data.push_back(std::move(column));
  }
  return Table::Make(Schema(std::move(fields)), std::move(data)).ValueOrDie();
}

template <typename T>
Column Numbers(DataType type, const std::vector<std::optional<T>>& values) {
  return MakeColumn<T>(std::move(type), values).ValueOrDie();
}

Column Int64s(const std::vector<std::optional<int64_t>>& values) {
  return Numbers<int64_t>(DataType::Int64(), values);
}
Column Doubles(const std::vector<std::optional<double>>& values) {
  return Numbers<double>(DataType::Float64(), values);
}
Column Strings(const std::vector<std::optional<std::string>>& values) {
  return MakeStringColumn(values).ValueOrDie();
}

// ---------------------------------------------------------------------------------------------
// Oracle tests against pandas

TEST(GroupByOracle, IntegerKeyWithNullsKeptAndDropped) {
  const Table table = ValuesWithKeys({{"k", DataType::Int32(), 0.1, 25}}, 400, 1);
  CheckAgainstPandas(table, {"k"}, /*dropna=*/false);
  CheckAgainstPandas(table, {"k"}, /*dropna=*/true);
}

TEST(GroupByOracle, StringKeyNonAscii) {
  const Table table = ValuesWithKeys({{"name", DataType::String(), 0.1, 30}}, 400, 2);
  CheckAgainstPandas(table, {"name"}, false);
}

TEST(GroupByOracle, SeveralKeysOfMixedTypes) {
  const Table table = ValuesWithKeys({{"flag", DataType::Bool(), 0.1, 2},
                                      {"day", DataType::Date32(), 0.1, 4},
                                      {"s", DataType::String(), 0.1, 3}},
                                     500, 3);
  CheckAgainstPandas(table, {"flag", "day", "s"}, false);
  CheckAgainstPandas(table, {"flag", "day", "s"}, true);
}

TEST(GroupByOracle, SkewedFloatKey) {
  // 90% of rows share one key: one huge group and many small ones.
  const Table table = ValuesWithKeys({{"x", DataType::Float64(), 0.05, 50, 0.9}}, 400, 4);
  CheckAgainstPandas(table, {"x"}, false);
}

TEST(GroupByOracle, TimestampAndUnsignedKeys) {
  const Table table = ValuesWithKeys(
      {{"ts", DataType::Timestamp(TimeUnit::kMilli), 0.1, 6}, {"u", DataType::UInt8(), 0.1, 5}},
      300, 5);
  CheckAgainstPandas(table, {"ts", "u"}, false);
}

TEST(GroupByOracle, AllNullKeyAndValueColumns) {
  // Every key is null (one group, or none with dropna); every value is null.
  const Table table = ValuesWithKeys({{"k", DataType::Int64(), 1.0, 10}}, 50, 6, 1.0);
  CheckAgainstPandas(table, {"k"}, false);
  CheckAgainstPandas(table, {"k"}, true);
}

TEST(GroupByOracle, EmptyTable) {
  const Table table = ValuesWithKeys({{"k", DataType::String(), 0.1, 10}}, 0, 7);
  CheckAgainstPandas(table, {"k"}, false);
}

TEST(GroupByOracle, SmallRangeIntegerKeysOfEveryWidthLookedUpDensely) {
  // Over 65,536 rows with keys in a small range (negative ones and nulls too): the mapper indexes
  // an array by key value instead of hashing. Also a range just too wide for that, for contrast.
  const int64_t rows = 70000;
  for (const int64_t range : {int64_t{37}, int64_t{1000}, int64_t{3 * rows}}) {
    std::vector<std::optional<int64_t>> keys, values;
    for (int64_t i = 0; i < rows; ++i) {
      keys.push_back(i % 11 == 0 ? std::nullopt
                                 : std::optional<int64_t>((i * 7919) % range - range / 2));
      values.push_back(i % 5 == 0 ? std::nullopt : std::optional<int64_t>(i % 1009));
    }
    std::vector<std::optional<int32_t>> narrow(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i]) narrow[i] = static_cast<int32_t>(*keys[i] % 100);
    }
    const Table table = MakeTable({{"k64", Int64s(keys)},
                                   {"k32", Numbers<int32_t>(DataType::Int32(), narrow)},
                                   {"day", Numbers<int32_t>(DataType::Date32(), narrow)},
                                   {"v", Int64s(values)}});
    const std::vector<Aggregate> aggregates = {Agg("v", AggregateKind::kSum),
                                               Agg("v", AggregateKind::kCount),
                                               Agg("v", AggregateKind::kMax)};
    for (const char* key : {"k64", "k32", "day"}) {
      for (const bool dropna : {false, true}) {
        SCOPED_TRACE(::testing::Message() << key << " range " << range << " dropna " << dropna);
        CheckAgainstPandas(table, {key}, dropna, aggregates, dropna ? 1 : 2);
      }
    }
  }
}

TEST(GroupByOracle, ManyRowsOnTwoThreadsMergePartialTables) {
  // Enough rows that the table is split into ranges whose partial tables are merged.
  const Table table = RandomTable({{"k", DataType::Int64(), 0.02, 3000},
                                   {"s", DataType::String(), 0.02, 50},
                                   {"v", DataType::Int32(), 0.1, 1000},
                                   {"f", DataType::Float64(), 0.1, 1000}},
                                  80000, 8);
  std::vector<Aggregate> aggregates;
  for (const char* column : {"v", "f"}) {
    for (auto kind :
         {AggregateKind::kSum, AggregateKind::kCount, AggregateKind::kMin, AggregateKind::kMax,
          AggregateKind::kMean, AggregateKind::kVar, AggregateKind::kFirst, AggregateKind::kLast,
          AggregateKind::kMedian, AggregateKind::kNunique}) {
      aggregates.push_back(Agg(column, kind));
    }
  }
  aggregates.push_back(Agg("s", AggregateKind::kFirst));
  aggregates.push_back(Agg("s", AggregateKind::kMax));
  CheckAgainstPandas(table, {"k"}, false, aggregates, 2);
  CheckAgainstPandas(table.SelectColumns({"s", "v", "f"}).ValueOrDie(), {"s"}, false,
                     std::vector<Aggregate>(aggregates.begin(), aggregates.end() - 2), 2);
}

TEST(AggregateTableOracle, WholeTableAndEmptyTable) {
  const Table table = ValuesWithKeys({}, 300, 9);
  const std::vector<Aggregate> aggregates = ManyAggregates(table, {});
  for (const Table& input : {table, table.Slice(0, 0)}) {
    ASSERT_OK_AND_ASSIGN(Table actual, AggregateTable(input, aggregates));
    ASSERT_OK_AND_ASSIGN(Table expected,
                         testing::RunPandasOracle(Spec({}, false, aggregates), {input},
                                                  ExpectedSchema(input, {}, aggregates)));
    ASSERT_EQ(actual.num_rows(), 1);
    EXPECT_TRUE(TablesEqualOrdered(expected, actual, 1e-9));
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-written edge semantics

TEST(GroupBy, GroupsInOrderOfFirstAppearanceWithNullGroup) {
  const Table table = MakeTable({{"k", Int64s({3, std::nullopt, 1, 3, std::nullopt, 2, 1})},
                                 {"v", Int64s({1, 2, 3, 4, 5, 6, 7})}});
  GroupByOptions options{{"k"}, {Agg("v", AggregateKind::kSum)}};
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, options));
  const Table expected =
      MakeTable({{"k", Int64s({3, std::nullopt, 1, 2})}, {"v_sum", Int64s({5, 7, 10, 6})}});
  EXPECT_TRUE(TablesEqualOrdered(expected, result));

  options.drop_null_keys = true;
  ASSERT_OK_AND_ASSIGN(result, GroupBy(table, options));
  EXPECT_TRUE(TablesEqualOrdered(
      MakeTable({{"k", Int64s({3, 1, 2})}, {"v_sum", Int64s({5, 10, 6})}}), result));
}

TEST(GroupBy, NaNIsOneGroupAndNegativeZeroIsZero) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double other_nan = -std::numeric_limits<double>::quiet_NaN();
  const Table table = MakeTable({{"x", Doubles({0.0, nan, -0.0, other_nan, 1.5, std::nullopt})},
                                 {"v", Int64s({1, 2, 3, 4, 5, 6})}});
  for (int keys = 1; keys <= 2; ++keys) {
    // One key takes the fixed-width path, two keys the general one; both agree.
    Table input = table;
    std::vector<std::string> key_names = {"x"};
    if (keys == 2) {
      input = table.AddColumn({"c", DataType::String()}, Strings({"a", "a", "a", "a", "a", "a"}))
                  .ValueOrDie();
      key_names.push_back("c");
    }
    GroupByOptions options{key_names, {Agg("v", AggregateKind::kSum)}};
    ASSERT_OK_AND_ASSIGN(Table result, GroupBy(input, options));
    ASSERT_EQ(result.num_rows(), 4) << result.ToString();
    const Column& x = result.column(0);
    EXPECT_EQ(x.Value<double>(0), 0.0);
    EXPECT_TRUE(std::isnan(x.Value<double>(1)));
    EXPECT_EQ(x.Value<double>(2), 1.5);
    EXPECT_TRUE(x.IsNull(3));
    const Column& sums = result.column(keys);
    EXPECT_EQ(sums.Value<int64_t>(0), 4);
    EXPECT_EQ(sums.Value<int64_t>(1), 6);
    EXPECT_EQ(sums.Value<int64_t>(2), 5);
    EXPECT_EQ(sums.Value<int64_t>(3), 6);
  }
}

TEST(GroupBy, NaNValuesInMinMaxSumAndNunique) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Table table =
      MakeTable({{"k", Int64s({1, 1, 1, 2, 2})}, {"f", Doubles({2.0, nan, -1.0, nan, nan})}});
  GroupByOptions options{{"k"},
                         {Agg("f", AggregateKind::kMin), Agg("f", AggregateKind::kMax),
                          Agg("f", AggregateKind::kSum), Agg("f", AggregateKind::kNunique)}};
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, options));
  // NaN is a value, ordered above every number: min skips it unless all are NaN, max is NaN.
  EXPECT_EQ(result.column(1).Value<double>(0), -1.0);
  EXPECT_TRUE(std::isnan(result.column(1).Value<double>(1)));
  EXPECT_TRUE(std::isnan(result.column(2).Value<double>(0)));
  EXPECT_TRUE(std::isnan(result.column(3).Value<double>(0)));
  EXPECT_EQ(result.column(4).Value<int64_t>(0), 3);
  EXPECT_EQ(result.column(4).Value<int64_t>(1), 1);
}

TEST(GroupBy, InfinitiesInSumsAndMeans) {
  const double inf = std::numeric_limits<double>::infinity();
  const Table table = MakeTable(
      {{"k", Int64s({1, 1, 2, 2, 3, 3})}, {"f", Doubles({inf, 1.0, inf, -inf, 1e308, 1e308})}});
  ASSERT_OK_AND_ASSIGN(
      Table result,
      GroupBy(table, {{"k"}, {Agg("f", AggregateKind::kSum), Agg("f", AggregateKind::kMean)}}));
  EXPECT_EQ(result.column(1).Value<double>(0), inf);
  EXPECT_EQ(result.column(2).Value<double>(0), inf);
  EXPECT_TRUE(std::isnan(result.column(1).Value<double>(1)));
  EXPECT_TRUE(std::isnan(result.column(2).Value<double>(1)));
  EXPECT_EQ(result.column(1).Value<double>(2), inf);  // overflows to inf, as pandas
}

TEST(GroupBy, AllNullGroupGivesNullsButZeroCounts) {
  const Table table = MakeTable({{"k", Strings({"a", "b", "a"})},
                                 {"v", Int64s({std::nullopt, 4, std::nullopt})},
                                 {"s", Strings({std::nullopt, "x", std::nullopt})}});
  GroupByOptions options{{"k"},
                         {Agg("v", AggregateKind::kSum), Agg("v", AggregateKind::kCount),
                          Agg("v", AggregateKind::kNunique), Agg("v", AggregateKind::kMean),
                          Agg("v", AggregateKind::kMedian), Agg("s", AggregateKind::kMin),
                          Agg("s", AggregateKind::kFirst)}};
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, options));
  ASSERT_EQ(result.num_rows(), 2);
  for (int c : {1, 4, 5, 6, 7}) EXPECT_TRUE(result.column(c).IsNull(0)) << c;
  EXPECT_EQ(result.column(2).Value<int64_t>(0), 0);
  EXPECT_EQ(result.column(3).Value<int64_t>(0), 0);
  EXPECT_EQ(result.column(1).Value<int64_t>(1), 4);
  EXPECT_EQ(result.column(6).GetString(1), "x");
}

TEST(GroupBy, VarianceNeedsMoreValuesThanDdof) {
  const Table table = MakeTable({{"k", Int64s({1, 2, 2})}, {"v", Doubles({5, 1, 2})}});
  Aggregate sample = Agg("v", AggregateKind::kVar, "sample");
  Aggregate population = Agg("v", AggregateKind::kVar, "population");
  population.ddof = 0;
  Aggregate std_dev = Agg("v", AggregateKind::kStd, "std");
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, {{"k"}, {sample, population, std_dev}}));
  EXPECT_TRUE(result.column(1).IsNull(0));
  EXPECT_EQ(result.column(2).Value<double>(0), 0.0);
  EXPECT_EQ(result.column(1).Value<double>(1), 0.5);
  EXPECT_EQ(result.column(2).Value<double>(1), 0.25);
  EXPECT_DOUBLE_EQ(result.column(3).Value<double>(1), std::sqrt(0.5));
}

TEST(GroupBy, VarianceIsNumericallyStable) {
  // Large offset, tiny spread: the naive sum-of-squares formula loses every digit here.
  std::vector<std::optional<double>> values;
  std::vector<std::optional<int64_t>> keys;
  for (int i = 0; i < 100000; ++i) {
    values.push_back(1e9 + (i % 4));
    keys.push_back(i % 2);
  }
  const Table table = MakeTable({{"k", Int64s(keys)}, {"v", Doubles(values)}});
  Aggregate var = Agg("v", AggregateKind::kVar);
  var.ddof = 0;
  for (int threads : {1, 2}) {
    ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, {{"k"}, {var}, false, threads}));
    EXPECT_NEAR(result.column(1).Value<double>(0), 1.0, 1e-9);  // 0, 2: var 1
    EXPECT_NEAR(result.column(1).Value<double>(1), 1.0, 1e-9);  // 1, 3: var 1
  }
}

TEST(GroupBy, QuantileInterpolatesLinearly) {
  const Table table = MakeTable({{"k", Int64s({1, 1, 1, 1})}, {"v", Int64s({4, 1, 3, 2})}});
  Aggregate q = Agg("v", AggregateKind::kQuantile);
  q.quantile = 0.9;
  Aggregate q0 = Agg("v", AggregateKind::kQuantile, "q0");
  q0.quantile = 0;
  Aggregate q1 = Agg("v", AggregateKind::kQuantile, "q1");
  q1.quantile = 1;
  ASSERT_OK_AND_ASSIGN(Table result,
                       GroupBy(table, {{"k"}, {q, q0, q1, Agg("v", AggregateKind::kMedian)}}));
  EXPECT_EQ(result.schema().field(1).name, "v_quantile_0.9");
  EXPECT_DOUBLE_EQ(result.column(1).Value<double>(0), 3.7);  // 3 + 0.7 * (4 - 3)
  EXPECT_EQ(result.column(2).Value<double>(0), 1.0);
  EXPECT_EQ(result.column(3).Value<double>(0), 4.0);
  EXPECT_EQ(result.column(4).Value<double>(0), 2.5);
}

TEST(GroupBy, MinMaxFirstLastKeepStringBoolAndDateTypes) {
  const Table table =
      MakeTable({{"k", Int64s({1, 1, 1})},
                 {"s", Strings({"b", std::nullopt, "a"})},
                 {"b", MakeBoolColumn({true, false, std::nullopt}).ValueOrDie()},
                 {"d", Numbers<int32_t>(DataType::Date32(), {std::nullopt, 20000, 10})},
                 {"t", Numbers<int64_t>(DataType::Timestamp(TimeUnit::kNano, "UTC"), {5, 7, 6})}});
  std::vector<Aggregate> aggregates;
  for (const char* c : {"s", "b", "d", "t"}) {
    for (auto kind :
         {AggregateKind::kMin, AggregateKind::kMax, AggregateKind::kFirst, AggregateKind::kLast}) {
      aggregates.push_back(Agg(c, kind));
    }
  }
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, {{"k"}, aggregates}));
  EXPECT_EQ(result.schema().field(1).type, DataType::String());
  EXPECT_EQ(result.schema().field(5).type, DataType::Bool());
  EXPECT_EQ(result.schema().field(9).type, DataType::Date32());
  EXPECT_EQ(result.schema().field(13).type, DataType::Timestamp(TimeUnit::kNano, "UTC"));
  EXPECT_EQ(result.column(1).GetString(0), "a");
  EXPECT_EQ(result.column(2).GetString(0), "b");
  EXPECT_EQ(result.column(3).GetString(0), "b");
  EXPECT_EQ(result.column(4).GetString(0), "a");
  EXPECT_FALSE(result.column(5).GetBool(0));
  EXPECT_TRUE(result.column(6).GetBool(0));
  EXPECT_TRUE(result.column(7).GetBool(0));
  EXPECT_FALSE(result.column(8).GetBool(0));
  EXPECT_EQ(result.column(9).Value<int32_t>(0), 10);
  EXPECT_EQ(result.column(10).Value<int32_t>(0), 20000);
  EXPECT_EQ(result.column(11).Value<int32_t>(0), 20000);
  EXPECT_EQ(result.column(12).Value<int32_t>(0), 10);
  EXPECT_EQ(result.column(13).Value<int64_t>(0), 5);
  EXPECT_EQ(result.column(14).Value<int64_t>(0), 7);
}

TEST(GroupBy, SumTypesAndOverflowIsAnError) {
  const Table table = MakeTable(
      {{"k", Int64s({1, 1})},
       {"i8", Numbers<int8_t>(DataType::Int8(), {100, 100})},
       {"u8", Numbers<uint8_t>(DataType::UInt8(), {200, 200})},
       {"b", MakeBoolColumn({true, true}).ValueOrDie()},
       {"big", Int64s({std::numeric_limits<int64_t>::max(), 1})},
       {"ubig", Numbers<uint64_t>(DataType::UInt64(), {std::numeric_limits<uint64_t>::max(), 1})},
       {"f", Numbers<float>(DataType::Float32(), {0.5f, 0.25f})}});
  ASSERT_OK_AND_ASSIGN(
      Table result, GroupBy(table, {{"k"},
                                    {Agg("i8", AggregateKind::kSum), Agg("u8", AggregateKind::kSum),
                                     Agg("b", AggregateKind::kSum), Agg("f", AggregateKind::kSum),
                                     Agg("big", AggregateKind::kMean)}}));
  EXPECT_EQ(result.column(1).type(), DataType::Int64());
  EXPECT_EQ(result.column(1).Value<int64_t>(0), 200);
  EXPECT_EQ(result.column(2).type(), DataType::UInt64());
  EXPECT_EQ(result.column(2).Value<uint64_t>(0), 400u);
  EXPECT_EQ(result.column(3).Value<int64_t>(0), 2);
  EXPECT_EQ(result.column(4).type(), DataType::Float64());
  EXPECT_EQ(result.column(4).Value<double>(0), 0.75);
  // The mean is exact even where the int64 sum would overflow.
  EXPECT_DOUBLE_EQ(result.column(5).Value<double>(0), 4611686018427387904.0);

  for (const char* column : {"big", "ubig"}) {
    auto overflow = GroupBy(table, {{"k"}, {Agg(column, AggregateKind::kSum)}});
    ASSERT_FALSE(overflow.ok());
    EXPECT_NE(overflow.status().message().find(fmt::format("sum of column '{}' overflows", column)),
              std::string::npos)
        << overflow.status().ToString();
    auto whole = AggregateTable(table, {Agg(column, AggregateKind::kSum)});
    EXPECT_FALSE(whole.ok());
  }
}

TEST(GroupBy, EmptyTableKeepsSchema) {
  const Table table = MakeTable({{"k", Strings({})}, {"v", Int64s({})}});
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, {{"k"},
                                                     {Agg("v", AggregateKind::kSum),
                                                      Agg("v", AggregateKind::kMedian),
                                                      Agg("k", AggregateKind::kMax)}}));
  EXPECT_EQ(result.num_rows(), 0);
  EXPECT_EQ(result.schema().ToString(),
            "k: string, v_sum: int64, v_median: float64, k_max: string");
}

TEST(GroupBy, NoAggregatesGivesDistinctKeys) {
  const Table table = MakeTable({{"k", Strings({"x", "y", "x"})}});
  ASSERT_OK_AND_ASSIGN(Table result, GroupBy(table, {{"k"}, {}}));
  EXPECT_TRUE(TablesEqualOrdered(MakeTable({{"k", Strings({"x", "y"})}}), result));
}

TEST(GroupBy, SameResultOnOneTwoAndFourThreads) {
  const Table table = RandomTable({{"a", DataType::Int32(), 0.05, 20000},
                                   {"b", DataType::String(), 0.05, 7},
                                   {"v", DataType::Float64(), 0.2, 0},
                                   {"w", DataType::Int16(), 0.2, 0}},
                                  300000, 11);
  std::vector<Aggregate> aggregates;
  for (auto kind : {AggregateKind::kSum, AggregateKind::kCount, AggregateKind::kMin,
                    AggregateKind::kMax, AggregateKind::kMean, AggregateKind::kVar,
                    AggregateKind::kStd, AggregateKind::kNunique, AggregateKind::kFirst,
                    AggregateKind::kLast, AggregateKind::kMedian, AggregateKind::kQuantile}) {
    aggregates.push_back(Agg("v", kind));
    aggregates.push_back(Agg("w", kind));
  }
  for (const std::vector<std::string>& keys :
       {std::vector<std::string>{"a"}, std::vector<std::string>{"a", "b"}}) {
    for (bool drop : {false, true}) {
      ASSERT_OK_AND_ASSIGN(Table one, GroupBy(table, {keys, aggregates, drop, 1}));
      for (int threads : {2, 4}) {
        ASSERT_OK_AND_ASSIGN(Table many, GroupBy(table, {keys, aggregates, drop, threads}));
        EXPECT_TRUE(TablesEqualOrdered(one, many, 1e-12)) << threads;
      }
    }
  }
}

TEST(AggregateTable, EmptyTableGivesZeroCountsAndNulls) {
  const Table table = MakeTable({{"v", Int64s({})}, {"s", Strings({})}});
  ASSERT_OK_AND_ASSIGN(
      Table result,
      AggregateTable(table, {Agg("v", AggregateKind::kCount), Agg("v", AggregateKind::kSum),
                             Agg("v", AggregateKind::kMin), Agg("s", AggregateKind::kNunique),
                             Agg("s", AggregateKind::kFirst), Agg("v", AggregateKind::kStd)}));
  ASSERT_EQ(result.num_rows(), 1);
  EXPECT_EQ(result.column(0).Value<int64_t>(0), 0);
  EXPECT_TRUE(result.column(1).IsNull(0));
  EXPECT_TRUE(result.column(2).IsNull(0));
  EXPECT_EQ(result.column(3).Value<int64_t>(0), 0);
  EXPECT_TRUE(result.column(4).IsNull(0));
  EXPECT_TRUE(result.column(5).IsNull(0));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(GroupByErrors, EveryMessageNamesWhatIsWrong) {
  const Table table = MakeTable({{"k", Int64s({1})}, {"s", Strings({"a"})}, {"v", Int64s({1})}});
  auto expect_error = [&](const Result<Table>& result, StatusCode code, const std::string& text) {
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.status().code(), code) << result.status().ToString();
    EXPECT_NE(result.status().message().find(text), std::string::npos)
        << result.status().ToString();
  };
  expect_error(GroupBy(table, {{}, {Agg("v", AggregateKind::kSum)}}), StatusCode::kInvalid,
               "at least one key");
  expect_error(GroupBy(table, {{"k", "k"}, {}}), StatusCode::kInvalid, "key 'k' is given twice");
  expect_error(GroupBy(table, {{"nope"}, {}}), StatusCode::kKeyError, "no column named 'nope'");
  expect_error(GroupBy(table, {{"k"}, {Agg("w", AggregateKind::kSum)}}), StatusCode::kKeyError,
               "aggregate sum of column 'w': no column named 'w'");
  expect_error(GroupBy(table, {{"k"}, {Agg("s", AggregateKind::kMean)}}), StatusCode::kTypeError,
               "aggregate mean needs a numeric or bool column, but column 's' is string");
  expect_error(
      GroupBy(table, {{"k"}, {Agg("v", AggregateKind::kSum), Agg("v", AggregateKind::kSum)}}),
      StatusCode::kInvalid, "output column 'v_sum' would appear twice");
  expect_error(GroupBy(table, {{"k"}, {Agg("v", AggregateKind::kMin, "k")}}), StatusCode::kInvalid,
               "output column 'k' would appear twice");
  Aggregate q = Agg("v", AggregateKind::kQuantile);
  q.quantile = 1.5;
  expect_error(GroupBy(table, {{"k"}, {q}}), StatusCode::kInvalid,
               "quantile 1.5 of column 'v' is not in [0, 1]");
  Aggregate var = Agg("v", AggregateKind::kVar);
  var.ddof = -1;
  expect_error(GroupBy(table, {{"k"}, {var}}), StatusCode::kInvalid,
               "ddof -1 of var of column 'v'");
  expect_error(AggregateTable(table, {Agg("s", AggregateKind::kSum)}), StatusCode::kTypeError,
               "column 's' is string");
}

// ---------------------------------------------------------------------------------------------
// ParseAggregate

TEST(ParseAggregate, ReadsEveryForm) {
  ASSERT_OK_AND_ASSIGN(Aggregate a, ParseAggregate("v:sum"));
  EXPECT_EQ(a.column, "v");
  EXPECT_EQ(a.kind, AggregateKind::kSum);
  EXPECT_EQ(a.output_name, "");
  ASSERT_OK_AND_ASSIGN(a, ParseAggregate("v:sum=total"));
  EXPECT_EQ(a.output_name, "total");
  ASSERT_OK_AND_ASSIGN(a, ParseAggregate("w:nunique"));
  EXPECT_EQ(a.kind, AggregateKind::kNunique);
  ASSERT_OK_AND_ASSIGN(a, ParseAggregate("v:std(ddof=0)"));
  EXPECT_EQ(a.kind, AggregateKind::kStd);
  EXPECT_EQ(a.ddof, 0);
  ASSERT_OK_AND_ASSIGN(a, ParseAggregate("v:var(2)=v2"));
  EXPECT_EQ(a.kind, AggregateKind::kVar);
  EXPECT_EQ(a.ddof, 2);
  EXPECT_EQ(a.output_name, "v2");
  ASSERT_OK_AND_ASSIGN(a, ParseAggregate("v:var"));
  EXPECT_EQ(a.ddof, 1);
  ASSERT_OK_AND_ASSIGN(a, ParseAggregate("price:quantile(0.9)=p90"));
  EXPECT_EQ(a.column, "price");
  EXPECT_EQ(a.kind, AggregateKind::kQuantile);
  EXPECT_DOUBLE_EQ(a.quantile, 0.9);
  EXPECT_EQ(a.output_name, "p90");
  for (auto kind :
       {AggregateKind::kSum, AggregateKind::kCount, AggregateKind::kMin, AggregateKind::kMax,
        AggregateKind::kMean, AggregateKind::kVar, AggregateKind::kStd, AggregateKind::kNunique,
        AggregateKind::kFirst, AggregateKind::kLast, AggregateKind::kMedian}) {
    ASSERT_OK_AND_ASSIGN(a, ParseAggregate(fmt::format("col x:{}", AggregateKindName(kind))));
    EXPECT_EQ(a.kind, kind);
    EXPECT_EQ(a.column, "col x");
  }
}

TEST(ParseAggregate, ErrorsNameTheBadPart) {
  auto expect_error = [](std::string_view text, const std::string& message) {
    auto result = ParseAggregate(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalid);
    EXPECT_EQ(result.status().message(), message);
  };
  expect_error("v:avg",
               "unknown aggregate 'avg' in 'v:avg' (expected sum, count, min, max, mean, var, std, "
               "nunique, first, last, median, quantile)");
  expect_error("v", "aggregate 'v' is not of the form COLUMN:AGGREGATE (e.g. 'v:sum')");
  expect_error(":sum", "missing column before ':' in aggregate ':sum'");
  expect_error("v:quantile",
               "quantile needs a fraction in [0, 1], as in 'v:quantile(0.9)', in 'v:quantile'");
  expect_error("v:quantile(1.5)", "quantile '1.5' in 'v:quantile(1.5)' is not a number in [0, 1]");
  expect_error("v:quantile(abc)", "quantile 'abc' in 'v:quantile(abc)' is not a number in [0, 1]");
  expect_error("v:quantile(0.5",
               "missing ')' after the arguments of 'quantile' in 'v:quantile(0.5'");
  expect_error("v:std(ddof=x)", "ddof 'x' in 'v:std(ddof=x)' is not a non-negative integer");
  expect_error("v:std(ddof=-1)", "ddof '-1' in 'v:std(ddof=-1)' is not a non-negative integer");
  expect_error("v:std(dof=1)", "ddof 'dof=1' in 'v:std(dof=1)' is not a non-negative integer");
  expect_error("v:sum(3)", "aggregate 'sum' takes no arguments, got '(3)' in 'v:sum(3)'");
  expect_error("v:sum=", "missing output name after '=' in 'v:sum='");
  expect_error("v:sum x",
               "unknown aggregate 'sum x' in 'v:sum x' (expected sum, count, min, max, mean, "
               "var, std, nunique, first, last, median, quantile)");
  expect_error("v:mean(2)x",
               "unexpected 'x' after 'mean' in 'v:mean(2)x' (expected '=NAME' or the end)");
}

}  // namespace
}  // namespace deeprc::compute
