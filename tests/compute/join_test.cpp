// Joins checked against pandas.merge (tests/oracle/op_join.py, with SQL null semantics made
// explicit), every join type with both algorithms, plus hand-written edge cases.
#include "deeprc/compute/join.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "deeprc/compute/cast.h"
#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/oracle.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::compute {
namespace {

using testing::RandomColumnSpec;
using testing::RandomTable;

constexpr JoinType kAllTypes[] = {JoinType::kInner, JoinType::kLeft, JoinType::kRight,
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

struct OracleCase {
  int left;
  int right;
  JoinOptions options;
};

std::string Describe(const OracleCase& c, const JoinOptions& variant) {
  std::string keys;
  for (size_t k = 0; k < c.options.left_keys.size(); ++k) {
    keys += c.options.left_keys[k] + "=" + c.options.right_keys[k] + " ";
  }
  return fmt::format("inputs {}/{} {} join on {}nulls_equal={} algorithm={} threads={} bits={}",
                     c.left, c.right, TypeName(c.options.type), keys, c.options.nulls_equal,
                     variant.algorithm == JoinAlgorithm::kSortMerge ? "sort" : "hash",
                     variant.threads, variant.partition_bits);
}

// The variants each case runs with: hash join as chosen, hash join forced to many partitions on
// several threads, sort-merge on one thread and on several (several merge ranges).
std::vector<JoinOptions> Variants(const JoinOptions& options) {
  std::vector<JoinOptions> variants;
  JoinOptions v = options;
  v.algorithm = JoinAlgorithm::kHash;
  variants.push_back(v);
  v.partition_bits = 4;
  v.threads = 3;
  variants.push_back(v);
  v = options;
  v.algorithm = JoinAlgorithm::kSortMerge;
  v.threads = 1;
  variants.push_back(v);
  v.threads = 4;
  variants.push_back(v);
  return variants;
}

// Runs every case through pandas in one oracle call, and through deeprc in every variant (so
// every variant gives the rows pandas gives, hence the same rows as the others).
void CheckAgainstPandas(const std::vector<Table>& inputs, const std::vector<OracleCase>& cases) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : cases) {
    list.push_back({{"left", c.left},
                    {"right", c.right},
                    {"how", TypeName(c.options.type)},
                    {"left_on", c.options.left_keys},
                    {"right_on", c.options.right_keys},
                    {"suffixes", {c.options.left_suffix, c.options.right_suffix}},
                    {"nulls_equal", c.options.nulls_equal}});
  }
  ASSERT_OK_AND_ASSIGN(Table results,
                       testing::RunPandasOracle({{"op", "join"}, {"cases", list}}, inputs,
                                                Schema({{"result", DataType::String()}})));
  ASSERT_EQ(results.num_rows(), static_cast<int64_t>(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    const OracleCase& c = cases[i];
    const auto expected_json = nlohmann::json::parse(results.column(0).GetString(i));
    for (const JoinOptions& variant : Variants(c.options)) {
      SCOPED_TRACE(Describe(c, variant));
      ASSERT_OK_AND_ASSIGN(Table actual, Join(inputs[c.left], inputs[c.right], variant));
      ASSERT_OK_AND_ASSIGN(Table expected, testing::TableFromJson(expected_json, actual.schema()));
      if (c.options.type == JoinType::kSemi || c.options.type == JoinType::kAnti) {
        EXPECT_TRUE(testing::TablesEqualOrdered(expected, actual));
      } else {
        EXPECT_TRUE(testing::TablesEqualUnordered(expected, actual));
      }
    }
  }
}

JoinOptions On(JoinType type, std::vector<std::string> left_keys,
               std::vector<std::string> right_keys = {}, bool nulls_equal = false) {
  JoinOptions options;
  options.type = type;
  options.right_keys = right_keys.empty() ? left_keys : std::move(right_keys);
  options.left_keys = std::move(left_keys);
  options.nulls_equal = nulls_equal;
  return options;
}

// Left and right tables sharing key columns k (int64), s (string), f (float64), d (date32), and a
// clashing payload v.
std::pair<Table, Table> KeyTables(int64_t left_rows, int64_t right_rows, double null_fraction,
                                  double skew, int64_t cardinality, uint64_t seed) {
  auto specs = [&](const std::string& payload) {
    return std::vector<RandomColumnSpec>{
        {"k", DataType::Int64(), null_fraction, cardinality, skew},
        {"s", DataType::String(), null_fraction, cardinality / 2 + 1, skew},
        {"f", DataType::Float64(), null_fraction, cardinality, skew},
        {"d", DataType::Date32(), null_fraction, cardinality, skew},
        {payload, DataType::Int32(), 0.2, 0, 0},
        {"v", DataType::String(), 0.2, 0, 0},
    };
  };
  return {RandomTable(specs("a"), left_rows, seed), RandomTable(specs("b"), right_rows, seed + 1)};
}

void AddKeyCases(int left, int right, std::vector<OracleCase>* cases) {
  const std::vector<std::vector<std::string>> key_sets = {{"k"}, {"k", "s"}, {"f"}, {"d"}};
  for (const auto& keys : key_sets) {
    for (JoinType type : kAllTypes) {
      cases->push_back({left, right, On(type, keys)});
      cases->push_back({left, right, On(type, keys, {}, /*nulls_equal=*/true)});
    }
  }
}

TEST(JoinOracleTest, RandomTablesWithNullsDuplicatesEmptySidesAllNullKeysAndSkew) {
  std::vector<Table> inputs;
  std::vector<OracleCase> cases;
  auto add = [&](std::pair<Table, Table> tables) {
    inputs.push_back(std::move(tables.first));
    inputs.push_back(std::move(tables.second));
    AddKeyCases(static_cast<int>(inputs.size()) - 2, static_cast<int>(inputs.size()) - 1, &cases);
  };
  add(KeyTables(300, 200, 0.1, 0.0, 40, 1));       // many-to-many, nulls
  add(KeyTables(0, 50, 0.1, 0.0, 10, 2));          // empty left
  add(KeyTables(50, 0, 0.1, 0.0, 10, 3));          // empty right
  add(KeyTables(40, 30, 1.0, 0.0, 10, 4));         // every key null
  add(KeyTables(120, 100, 0.05, 0.9, 50, 5));      // 90% of rows on one key
  add(KeyTables(2000, 1500, 0.02, 0.0, 3000, 6));  // mostly unique keys, many partitions
  CheckAgainstPandas(inputs, cases);
}

TEST(JoinOracleTest, EveryKeyType) {
  // Same types and cardinality on both sides draw from the same values, so keys overlap.
  Table left = RandomTable(testing::AllTypesSpec(0.15, 8), 120, 11);
  Table right = RandomTable(testing::AllTypesSpec(0.15, 8), 90, 12);
  std::vector<OracleCase> cases;
  for (const auto& field : left.schema().fields()) {
    for (JoinType type : kAllTypes) cases.push_back({0, 1, On(type, {field.name})});
  }
  cases.push_back({0, 1, On(JoinType::kOuter, {"bool", "string", "timestamp_ms"})});
  cases.push_back({0, 1, On(JoinType::kInner, {"uint8", "date32"}, {}, true)});
  CheckAgainstPandas({left, right}, cases);
}

// A column of the table cast to another type, replacing it.
Table WithCast(const Table& table, const std::string& name, const DataType& type) {
  const int index = table.schema().FieldIndex(name);
  std::vector<Field> fields = table.schema().fields();
  std::vector<Column> columns = table.columns();
  columns[index] = Cast(columns[index], type).ValueOrDie();
  fields[index].type = type;
  return Table::Make(Schema(fields), columns, table.num_rows()).ValueOrDie();
}

TEST(JoinOracleTest, KeyNamesSuffixesAndPromotion) {
  auto specs = [](const std::string& key, const std::string& payload) {
    return std::vector<RandomColumnSpec>{{key, DataType::Int32(), 0.1, 30},
                                         {"s", DataType::String(), 0.1, 10},
                                         {payload, DataType::Int64(), 0.1, 0},
                                         {"v", DataType::Float64(), 0.1, 0}};
  };
  Table left = RandomTable(specs("m", "a"), 150, 21);
  Table right = RandomTable(specs("n", "b"), 120, 22);
  // Right n as int64 and float64 (same values), right m named like the left key.
  Table right_int64 = WithCast(right, "n", DataType::Int64());
  Table right_float = WithCast(right, "n", DataType::Float64());
  Table right_same_name = right_int64.RenameColumns({{"n", "m"}}).ValueOrDie();
  // A right side whose non-key column is named like the left key.
  Table right_named_m = right.RenameColumns({{"s", "m"}}).ValueOrDie();
  const std::vector<Table> inputs = {left,
                                     right,
                                     right_int64,
                                     right_float,
                                     right_same_name,
                                     right_named_m,
                                     WithCast(left, "m", DataType::Int64())};
  std::vector<OracleCase> cases;
  for (JoinType type : kAllTypes) {
    cases.push_back({0, 1, On(type, {"m"}, {"n"})});  // different names
    cases.push_back({0, 2, On(type, {"m"}, {"n"})});  // int32 vs int64
    cases.push_back({0, 3, On(type, {"m"}, {"n"})});  // int32 vs float64
    cases.push_back({6, 3, On(type, {"m"}, {"n"})});  // int64 vs float64
    cases.push_back({0, 4, On(type, {"m", "s"})});    // shared, promoted int32/int64
    cases.push_back({0, 4, On(type, {"s", "m"}, {"s", "m"}, true)});
    cases.push_back({0, 5, On(type, {"m"}, {"n"})});  // right column m clashes with key
    JoinOptions custom = On(type, {"m"}, {"n"});
    custom.left_suffix = "_left";
    custom.right_suffix = "_right";
    cases.push_back({0, 1, custom});
    cases.push_back({0, 1, On(type, {"s", "m"}, {"s", "n"})});  // one shared key, one not
  }
  CheckAgainstPandas(inputs, cases);
}

// ---------------------------------------------------------------------------------------------
// Hand-written semantics.

Table MakeTable(std::vector<std::pair<std::string, Column>> columns) {
  std::vector<Field> fields;
  std::vector<Column> data;
  for (auto& [name, column] : columns) {
    fields.push_back({name, column.type()});
    data.push_back(column);
  }
  const int64_t rows = data.empty() ? 0 : data[0].length();
  return Table::Make(Schema(fields), data, rows).ValueOrDie();
}

Column Ints(std::vector<std::optional<int64_t>> values) {
  return MakeColumn<int64_t>(DataType::Int64(), values).ValueOrDie();
}

Column Strings(std::vector<std::optional<std::string>> values) {
  return MakeStringColumn(values).ValueOrDie();
}

class JoinSemanticsTest : public ::testing::TestWithParam<JoinAlgorithm> {
 protected:
  JoinOptions Options(JoinType type, std::vector<std::string> keys) {
    JoinOptions options = On(type, std::move(keys));
    options.algorithm = GetParam();
    return options;
  }
  // left: k = 1, 2, 2, null, 5; right: k = 2, 2, null, 7, 1
  Table left_ =
      MakeTable({{"k", Ints({1, 2, 2, std::nullopt, 5})}, {"a", Ints({10, 20, 21, 30, 50})}});
  Table right_ =
      MakeTable({{"k", Ints({2, 2, std::nullopt, 7, 1})}, {"b", Ints({200, 201, 300, 700, 100})}});
};

TEST_P(JoinSemanticsTest, InnerJoinIsACrossProductPerKeyAndNullsNeverMatch) {
  ASSERT_OK_AND_ASSIGN(Table out, Join(left_, right_, Options(JoinType::kInner, {"k"})));
  Table expected = MakeTable({{"k", Ints({1, 2, 2, 2, 2})},
                              {"a", Ints({10, 20, 20, 21, 21})},
                              {"b", Ints({100, 200, 201, 200, 201})}});
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, out));
}

TEST_P(JoinSemanticsTest, OuterJoinCoalescesTheSharedKeyAndKeepsNullKeyRowsUnmatched) {
  ASSERT_OK_AND_ASSIGN(Table out, Join(left_, right_, Options(JoinType::kOuter, {"k"})));
  Table expected =
      MakeTable({{"k", Ints({1, 2, 2, 2, 2, std::nullopt, 5, std::nullopt, 7})},
                 {"a", Ints({10, 20, 20, 21, 21, 30, 50, std::nullopt, std::nullopt})},
                 {"b", Ints({100, 200, 201, 200, 201, std::nullopt, std::nullopt, 300, 700})}});
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, out));
}

TEST_P(JoinSemanticsTest, RightJoinTakesKeysFromTheRight) {
  ASSERT_OK_AND_ASSIGN(Table out, Join(left_, right_, Options(JoinType::kRight, {"k"})));
  Table expected = MakeTable({{"k", Ints({1, 2, 2, 2, 2, std::nullopt, 7})},
                              {"a", Ints({10, 20, 20, 21, 21, std::nullopt, std::nullopt})},
                              {"b", Ints({100, 200, 201, 200, 201, 300, 700})}});
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, out));
}

TEST_P(JoinSemanticsTest, NullsEqualMatchesNullKeys) {
  JoinOptions options = Options(JoinType::kInner, {"k"});
  options.nulls_equal = true;
  ASSERT_OK_AND_ASSIGN(Table out, Join(left_, right_, options));
  Table expected = MakeTable({{"k", Ints({1, 2, 2, 2, 2, std::nullopt})},
                              {"a", Ints({10, 20, 20, 21, 21, 30})},
                              {"b", Ints({100, 200, 201, 200, 201, 300})}});
  EXPECT_TRUE(testing::TablesEqualUnordered(expected, out));
}

TEST_P(JoinSemanticsTest, SemiAndAntiKeepLeftRowsOnceInLeftOrder) {
  ASSERT_OK_AND_ASSIGN(Table semi, Join(left_, right_, Options(JoinType::kSemi, {"k"})));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"k", Ints({1, 2, 2})}, {"a", Ints({10, 20, 21})}}), semi));
  ASSERT_OK_AND_ASSIGN(Table anti, Join(left_, right_, Options(JoinType::kAnti, {"k"})));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"k", Ints({std::nullopt, 5})}, {"a", Ints({30, 50})}}), anti));
  JoinOptions options = Options(JoinType::kSemi, {"k"});
  options.nulls_equal = true;
  ASSERT_OK_AND_ASSIGN(Table semi_nulls, Join(left_, right_, options));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"k", Ints({1, 2, 2, std::nullopt})}, {"a", Ints({10, 20, 21, 30})}}),
      semi_nulls));
}

TEST_P(JoinSemanticsTest, SuffixesAndDoubleClashes) {
  Table left = MakeTable({{"k", Ints({1})}, {"v", Ints({1})}, {"v_x", Ints({2})}});
  Table right = MakeTable({{"k", Ints({1})}, {"v", Ints({3})}});
  auto clash = Join(left, right, Options(JoinType::kInner, {"k"}));
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), StatusCode::kInvalid);
  EXPECT_NE(clash.status().message().find("'v_x'"), std::string::npos) << clash.status().ToString();
  JoinOptions options = Options(JoinType::kInner, {"k"});
  options.left_suffix = "_l";
  ASSERT_OK_AND_ASSIGN(Table out, Join(left, right, options));
  EXPECT_EQ(out.schema().names(), (std::vector<std::string>{"k", "v_l", "v_x", "v_y"}));
  options.left_suffix = options.right_suffix = "";
  EXPECT_FALSE(Join(left, right, options).ok());
}

TEST_P(JoinSemanticsTest, Errors) {
  Table strings = MakeTable({{"k", Strings({"1"})}});
  auto missing = Join(left_, right_, Options(JoinType::kInner, {"nope"}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kKeyError);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);

  auto types = Join(left_, strings, Options(JoinType::kInner, {"k"}));
  ASSERT_FALSE(types.ok());
  EXPECT_EQ(types.status().code(), StatusCode::kTypeError);
  EXPECT_NE(types.status().message().find("string"), std::string::npos);

  JoinOptions counts = Options(JoinType::kInner, {"k", "a"});
  counts.right_keys = {"k"};
  auto count_error = Join(left_, right_, counts);
  ASSERT_FALSE(count_error.ok());
  EXPECT_EQ(count_error.status().code(), StatusCode::kInvalid);

  JoinOptions none = Options(JoinType::kInner, {});
  none.left_keys.clear();
  none.right_keys.clear();
  EXPECT_FALSE(Join(left_, right_, none).ok());

  // An int64 key that float64 cannot hold exactly cannot be promoted.
  Table big = MakeTable({{"k", Ints({(int64_t{1} << 53) + 1})}});
  Table floats = MakeTable({{"k", MakeColumn<double>(DataType::Float64(), {1.0}).ValueOrDie()}});
  auto precision = Join(big, floats, Options(JoinType::kInner, {"k"}));
  ASSERT_FALSE(precision.ok());
  EXPECT_NE(precision.status().message().find("left join key 'k'"), std::string::npos)
      << precision.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(Algorithms, JoinSemanticsTest,
                         ::testing::Values(JoinAlgorithm::kHash, JoinAlgorithm::kSortMerge),
                         [](const auto& info) {
                           return info.param == JoinAlgorithm::kHash ? "Hash" : "SortMerge";
                         });

TEST(JoinTest, ParseNames) {
  EXPECT_EQ(*ParseJoinType("full"), JoinType::kOuter);
  EXPECT_EQ(*ParseJoinType("anti"), JoinType::kAnti);
  EXPECT_FALSE(ParseJoinType("cross").ok());
  EXPECT_EQ(*ParseJoinAlgorithm("sort"), JoinAlgorithm::kSortMerge);
  EXPECT_FALSE(ParseJoinAlgorithm("nested").ok());
}

// The (left row, right row) pairs of a join output, identified by the row-number columns
// "row_x" and "row_y" (-1 for a missing side), sorted: an exact, fast comparison for outputs too
// large for the generic table comparison.
std::vector<std::pair<int64_t, int64_t>> RowPairs(const Table& out) {
  const int left = out.schema().FieldIndex("row_x");
  const int right = out.schema().FieldIndex("row_y");
  std::vector<std::pair<int64_t, int64_t>> pairs(static_cast<size_t>(out.num_rows()));
  for (int64_t i = 0; i < out.num_rows(); ++i) {
    const Column& l = out.column(left);
    const Column& r = out.column(right);
    pairs[i] = {l.IsNull(i) ? -1 : l.Value<int64_t>(i), r.IsNull(i) ? -1 : r.Value<int64_t>(i)};
  }
  std::sort(pairs.begin(), pairs.end());
  return pairs;
}

// The left row numbers of a semi or anti join output, in output order.
std::vector<int64_t> LeftRows(const Table& out) {
  const Column& rows = out.column(out.schema().FieldIndex("row"));
  std::vector<int64_t> result(static_cast<size_t>(out.num_rows()));
  for (int64_t i = 0; i < out.num_rows(); ++i) result[i] = rows.Value<int64_t>(i);
  return result;
}

// Pairs of rows whose keys match, found by brute force over a map from key to right rows.
template <typename T>
std::vector<std::pair<int64_t, int64_t>> BruteForceInnerPairs(const Column& left,
                                                              const Column& right) {
  std::map<T, std::vector<int64_t>> right_rows;
  for (int64_t j = 0; j < right.length(); ++j) {
    if (right.IsValid(j)) right_rows[right.Value<T>(j)].push_back(j);
  }
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t i = 0; i < left.length(); ++i) {
    if (left.IsNull(i)) continue;
    auto found = right_rows.find(left.Value<T>(i));
    if (found == right_rows.end()) continue;
    for (int64_t j : found->second) pairs.push_back({i, j});
  }
  std::sort(pairs.begin(), pairs.end());
  return pairs;
}

Table WithRowNumbers(const Table& table) {
  std::vector<std::optional<int64_t>> rows(static_cast<size_t>(table.num_rows()));
  for (int64_t i = 0; i < table.num_rows(); ++i) rows[i] = i;
  return table.AddColumn({"row", DataType::Int64()}, Ints(rows)).ValueOrDie();
}

// Larger than the oracle can take quickly (enough rows for many partitions, parallel partitioning
// and several merge ranges): hash and sort-merge, on 1 and 2 threads, give exactly the same
// (left row, right row) pairs, and the inner join's pairs are those of a brute-force join.
TEST(JoinTest, AlgorithmsAndThreadCountsAgreeOnLargerInputs) {
  for (DataType type : {DataType::Int64(), DataType::Float64(), DataType::Int16()}) {
    // 2% of the rows on one hot key: a run of about 2400 x 2000 matching pairs.
    std::vector<RandomColumnSpec> spec = {{"k", type, 0.05, 20000, 0.02}};
    Table left = WithRowNumbers(RandomTable(spec, 120000, 31));
    Table right = WithRowNumbers(RandomTable(spec, 100000, 32));
    const auto brute_force = type.id == TypeId::kInt64
                                 ? BruteForceInnerPairs<int64_t>(left.column(0), right.column(0))
                             : type.id == TypeId::kFloat64
                                 ? BruteForceInnerPairs<double>(left.column(0), right.column(0))
                                 : BruteForceInnerPairs<int16_t>(left.column(0), right.column(0));
    for (JoinType join_type : kAllTypes) {
      std::optional<std::vector<std::pair<int64_t, int64_t>>> first_pairs;
      std::optional<std::vector<int64_t>> first_rows;
      for (JoinAlgorithm algorithm : {JoinAlgorithm::kHash, JoinAlgorithm::kSortMerge}) {
        for (int threads : {1, 2}) {
          SCOPED_TRACE(fmt::format("{} {} {} threads={}", TypeName(join_type), type.ToString(),
                                   algorithm == JoinAlgorithm::kHash ? "hash" : "sort", threads));
          JoinOptions options = On(join_type, {"k"});
          options.algorithm = algorithm;
          options.threads = threads;
          ASSERT_OK_AND_ASSIGN(Table out, Join(left, right, options));
          if (join_type == JoinType::kSemi || join_type == JoinType::kAnti) {
            auto rows = LeftRows(out);
            EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
            if (first_rows) {
              EXPECT_EQ(*first_rows, rows);
            } else {
              first_rows = rows;
            }
            continue;
          }
          auto pairs = RowPairs(out);
          if (join_type == JoinType::kInner) {
            EXPECT_EQ(brute_force, pairs);
          }
          if (first_pairs) {
            EXPECT_EQ(*first_pairs, pairs);
          } else {
            first_pairs = pairs;
          }
        }
      }
      // Semi join rows are the distinct left rows of the inner pairs; anti rows are the rest.
      if (join_type == JoinType::kSemi || join_type == JoinType::kAnti) {
        std::set<int64_t> matched;
        for (const auto& pair : brute_force) matched.insert(pair.first);
        std::vector<int64_t> expected;
        for (int64_t i = 0; i < left.num_rows(); ++i) {
          if ((matched.count(i) > 0) == (join_type == JoinType::kSemi)) expected.push_back(i);
        }
        EXPECT_EQ(expected, *first_rows);
      }
    }
  }
}

}  // namespace
}  // namespace deeprc::compute
