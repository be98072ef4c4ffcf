// Predicates checked against pandas: random predicate trees are written both as deeprc text
// and as a JSON tree that tests/oracle/op_filter.py evaluates with pandas' nullable dtypes
// (Kleene logic, which is SQL's). The three-valued result of every predicate is compared, then
// the rows Filter keeps. Parse and evaluation errors are checked by their messages.
#include "deeprc/compute/filter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>

#include "deeprc/table/builder.h"
#include "deeprc/table/temporal.h"
#include "testing/assertions.h"
#include "testing/oracle.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::compute {
namespace {

using nlohmann::json;

Table OracleTable(int64_t rows, uint64_t seed, double null_fraction = 0.2) {
  return testing::RandomTable({{"i8", DataType::Int8(), null_fraction, 40},
                               {"i32", DataType::Int32(), null_fraction, 30},
                               {"i64", DataType::Int64(), null_fraction, 30},
                               {"u8", DataType::UInt8(), null_fraction, 30},
                               {"u16", DataType::UInt16(), null_fraction, 30},
                               {"u32", DataType::UInt32(), null_fraction, 30},
                               {"u64", DataType::UInt64(), null_fraction, 30},
                               {"f32", DataType::Float32(), null_fraction, 30},
                               {"f64", DataType::Float64(), null_fraction, 30},
                               {"s", DataType::String(), null_fraction, 12},
                               {"t", DataType::String(), null_fraction, 12},
                               {"b", DataType::Bool(), null_fraction, 0},
                               {"c", DataType::Bool(), null_fraction, 0},
                               {"d", DataType::Date32(), null_fraction, 30},
                               {"ts", DataType::Timestamp(TimeUnit::kMilli), null_fraction, 30},
                               {"my col", DataType::Int16(), null_fraction, 30}},
                              rows, seed);
}

// Random predicates over OracleTable, as text and as the oracle's JSON tree.
class PredicateGenerator {
 public:
  PredicateGenerator(const Table& table, uint64_t seed) : table_(table), rng_(seed) {}

  std::pair<std::string, json> Make(int depth) {
    const int choice = static_cast<int>(rng_() % 10);
    if (depth <= 0 || choice < 4) return Leaf();
    if (choice < 6) {
      auto [text, tree] = Make(depth - 1);
      const bool bare = tree["kind"] != "and" && tree["kind"] != "or" && Chance(2);
      return {Keyword("not") + (bare ? " " + text : " (" + text + ")"),
              {{"kind", "not"}, {"arg", tree}}};
    }
    const bool is_and = choice < 8;
    std::string text;
    json args = json::array();
    const int count = 2 + static_cast<int>(rng_() % 2);
    for (int k = 0; k < count; ++k) {
      auto [child_text, child_tree] = Make(depth - 1);
      if (k > 0) text += " " + Keyword(is_and ? "and" : "or") + " ";
      text += "(" + child_text + ")";
      args.push_back(child_tree);
    }
    return {text, {{"kind", is_and ? "and" : "or"}, {"args", args}}};
  }

 private:
  bool Chance(int one_in) { return rng_() % one_in == 0; }

  std::string Keyword(const std::string& word) {
    if (!Chance(3)) return word;
    std::string upper = word;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return upper;
  }

  std::string Name(const std::string& name) {
    return name == "my col" || Chance(4) ? "`" + name + "`" : name;
  }

  const Column& ColumnNamed(const std::string& name) {
    return table_.column(table_.schema().FieldIndex(name));
  }

  // A constant for comparing with column `name`: usually a value of the column (so that
  // equality holds somewhere), as (text, JSON value).
  std::pair<std::string, json> ConstantFor(const std::string& name) {
    const Column& column = ColumnNamed(name);
    int64_t row = static_cast<int64_t>(rng_() % static_cast<uint64_t>(column.length()));
    for (int tries = 0; tries < 20 && column.IsNull(row); ++tries) {
      row = static_cast<int64_t>(rng_() % static_cast<uint64_t>(column.length()));
    }
    const bool valid = column.IsValid(row);
    switch (column.type_id()) {
      case TypeId::kString: {
        static const std::vector<std::string> others = {"", "b", "é", "日本", "🙂x", "Zq"};
        std::string value = valid && !Chance(4) ? std::string(column.GetString(row))
                                                : others[rng_() % others.size()];
        return {"'" + value + "'", value};
      }
      case TypeId::kBool: {
        const bool value = Chance(2);
        return {value ? Keyword("true") : Keyword("false"), value};
      }
      case TypeId::kDate32: {
        const int32_t days = valid ? column.Value<int32_t>(row) : 12345;
        return {"'" + temporal::FormatDate(days) + "'", days};
      }
      case TypeId::kTimestamp: {
        const int64_t value = valid ? column.Value<int64_t>(row) : 1700000000000;
        return {"'" + temporal::FormatTimestamp(value, TimeUnit::kMilli, false) + "'", value};
      }
      case TypeId::kFloat32:
      case TypeId::kFloat64: {
        const double value =
            valid && !Chance(3)
                ? (column.type_id() == TypeId::kFloat32 ? column.Value<float>(row)
                                                        : column.Value<double>(row))
                : static_cast<double>(static_cast<int64_t>(rng_() % 2001) - 1000) / 4;
        return {fmt::format("{}", value), value};
      }
      default: {
        int64_t value = 0;
        VisitType(column.type_id(), [&]<typename Tag>(Tag) {
          if constexpr (kIsNumberTag<Tag>) {
            if (valid) value = static_cast<int64_t>(column.Value<typename Tag::CType>(row));
          }
        });
        if (Chance(5)) {
          // A fraction between two integers: compared through double.
          const double half = static_cast<double>(value) + 0.5;
          if (std::abs(half) < 1e15) return {fmt::format("{}", half), half};
        }
        return {std::to_string(value), value};
      }
    }
  }

  std::string OpText(const std::string& op) {
    if (op == "==" && Chance(3)) return "=";
    if (op == "!=" && Chance(3)) return "<>";
    return op;
  }

  std::pair<std::string, json> Leaf() {
    static const std::vector<std::string> columns = {"i8",  "i32", "i64", "u8",    "u16", "u32",
                                                     "u64", "f32", "f64", "s",     "t",   "b",
                                                     "c",   "d",   "ts",  "my col"};
    static const std::vector<std::string> ops = {"==", "!=", "<", "<=", ">", ">="};
    static const std::vector<std::pair<std::string, std::string>> pairs = {
        {"i32", "i64"},   {"i64", "f64"}, {"u16", "i8"},  {"f32", "f64"}, {"s", "t"},
        {"i8", "my col"}, {"b", "c"},     {"u16", "u64"}, {"u8", "i32"},  {"u32", "i64"}};
    const int kind = static_cast<int>(rng_() % 20);
    const std::string& op = ops[rng_() % ops.size()];
    if (kind < 9) {
      const std::string& name = columns[rng_() % columns.size()];
      auto [text, value] = ConstantFor(name);
      return {Name(name) + " " + OpText(op) + " " + text,
              {{"kind", "cmp"},
               {"op", op},
               {"left", {{"column", name}}},
               {"right", {{"constant", value}}}}};
    }
    if (kind < 11) {
      const std::string& name = columns[rng_() % columns.size()];
      auto [text, value] = ConstantFor(name);
      return {text + " " + OpText(op) + " " + Name(name),
              {{"kind", "cmp"},
               {"op", op},
               {"left", {{"constant", value}}},
               {"right", {{"column", name}}}}};
    }
    if (kind < 14) {
      auto [a, b] = pairs[rng_() % pairs.size()];
      if (Chance(2)) std::swap(a, b);
      return {Name(a) + " " + OpText(op) + " " + Name(b),
              {{"kind", "cmp"}, {"op", op}, {"left", {{"column", a}}}, {"right", {{"column", b}}}}};
    }
    if (kind < 16) {
      const std::string& name = columns[rng_() % columns.size()];
      const bool negated = Chance(2);
      return {Name(name) + " " + Keyword("is") + (negated ? " " + Keyword("not") : "") + " " +
                  Keyword("null"),
              {{"kind", "isnull"}, {"arg", {{"column", name}}}, {"negated", negated}}};
    }
    if (kind < 19) {
      static const std::vector<std::string> listed = {"i8", "i32", "u64", "s", "t", "d", "my col"};
      const std::string& name = listed[rng_() % listed.size()];
      const bool negated = Chance(3);
      std::string text =
          Name(name) + (negated ? " " + Keyword("not") : "") + " " + Keyword("in") + " (";
      json values = json::array();
      const int count = 1 + static_cast<int>(rng_() % 4);
      for (int k = 0; k < count; ++k) {
        auto [constant_text, value] = ConstantFor(name);
        if (value.is_number_float()) {
          constant_text = std::to_string(static_cast<int64_t>(std::floor(value.get<double>())));
          value = static_cast<int64_t>(std::floor(value.get<double>()));
        }
        text += (k > 0 ? ", " : "") + constant_text;
        values.push_back({{"constant", value}});
      }
      return {
          text + ")",
          {{"kind", "in"}, {"arg", {{"column", name}}}, {"values", values}, {"negated", negated}}};
    }
    const std::string name = Chance(2) ? "b" : "c";
    return {Name(name), {{"kind", "term"}, {"arg", {{"column", name}}}}};
  }

  const Table& table_;
  std::mt19937_64 rng_;
};

std::string MaskToString(const Column& mask, int64_t row) {
  return mask.IsNull(row) ? "null" : (mask.GetBool(row) ? "true" : "false");
}

TEST(FilterTest, RandomPredicatesMatchPandas) {
  const Table table = OracleTable(1500, 77);
  PredicateGenerator generator(table, 2024);
  std::vector<std::string> texts;
  json trees = json::array();
  std::vector<Field> fields;
  for (int j = 0; j < 200; ++j) {
    auto [text, tree] = generator.Make(j % 4);
    // DEEPRC_PRINT_PREDICATES=1 shows what the generator makes.
    if (std::getenv("DEEPRC_PRINT_PREDICATES")) std::printf("%s\n", text.c_str());
    texts.push_back(text);
    trees.push_back(tree);
    fields.push_back({"mask_" + std::to_string(j), DataType::Bool()});
  }
  ASSERT_OK_AND_ASSIGN(
      Table masks,
      testing::RunPandasOracle({{"op", "filter"}, {"predicates", trees}}, {table}, Schema(fields)));
  int64_t kept = 0;
  int64_t unknown = 0;
  for (int j = 0; j < static_cast<int>(texts.size()); ++j) {
    SCOPED_TRACE(texts[j]);
    ASSERT_OK_AND_ASSIGN(Predicate predicate, Predicate::Parse(texts[j]));
    ASSERT_OK_AND_ASSIGN(Column mask, predicate.Evaluate(table, 1));
    const Column& expected = masks.column(j);
    for (int64_t i = 0; i < table.num_rows(); ++i) {
      ASSERT_EQ(MaskToString(mask, i), MaskToString(expected, i)) << "row " << i;
      kept += mask.IsValid(i) && mask.GetBool(i);
      unknown += mask.IsNull(i);
    }
  }
  // The predicates are not trivial: some rows are kept, some unknown.
  EXPECT_GT(kept, 200 * 1500 / 10);
  EXPECT_GT(unknown, 200 * 1500 / 20);
}

TEST(FilterTest, FilteredRowsMatchPandasAtOneAndTwoThreads) {
  // Long enough for the parallel evaluation, and sliced so that bitmaps start mid-byte.
  const Table table = OracleTable(70003, 5).Slice(3, 70000);
  PredicateGenerator generator(table, 7);
  for (int j = 0; j < 4; ++j) {
    auto [text, tree] = generator.Make(3);
    SCOPED_TRACE(text);
    ASSERT_OK_AND_ASSIGN(
        Table expected,
        testing::RunPandasOracle({{"op", "filter"}, {"predicate", tree}}, {table}, table.schema()));
    for (int threads : {1, 2}) {
      ASSERT_OK_AND_ASSIGN(Table actual, Filter(table, text, threads));
      ASSERT_TRUE(testing::TablesEqualOrdered(expected, actual)) << "threads " << threads;
    }
  }
}

// A small table for hand-checked cases.
Table SmallTable() {
  NumberBuilder<int8_t> a(DataType::Int8());
  NumberBuilder<uint64_t> u(DataType::UInt64());
  NumberBuilder<double> x(DataType::Float64());
  StringBuilder s;
  BoolBuilder flag;
  NumberBuilder<int32_t> day(DataType::Date32());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::optional<int8_t>> as = {1, -128, 127, std::nullopt, 5};
  const std::vector<std::optional<uint64_t>> us = {0, std::numeric_limits<uint64_t>::max(), 7, 8,
                                                   std::nullopt};
  const std::vector<std::optional<double>> xs = {1.5, nan, std::nullopt, -0.0, 1e300};
  const std::vector<std::optional<std::string>> ss = {"it's", "", std::nullopt, "日本", "b"};
  const std::vector<std::optional<bool>> flags = {true, false, std::nullopt, true, false};
  const std::vector<std::optional<int32_t>> days = {0, 19753, std::nullopt, -1, 19754};
  for (size_t i = 0; i < as.size(); ++i) {
    EXPECT_OK(a.Append(as[i]));
    EXPECT_OK(u.Append(us[i]));
    EXPECT_OK(x.Append(xs[i]));
    EXPECT_OK(ss[i] ? s.Append(*ss[i]) : s.AppendNull());
    EXPECT_OK(flag.Append(flags[i]));
    EXPECT_OK(day.Append(days[i]));
  }
  return Table::Make(
             Schema({{"a", DataType::Int8()},
                     {"u", DataType::UInt64()},
                     {"x", DataType::Float64()},
                     {"odd `name`", DataType::String()},
                     {"flag", DataType::Bool()},
                     {"day", DataType::Date32()}}),
             {a.Finish().ValueOrDie(), u.Finish().ValueOrDie(), x.Finish().ValueOrDie(),
              s.Finish().ValueOrDie(), flag.Finish().ValueOrDie(), day.Finish().ValueOrDie()})
      .ValueOrDie();
}

// The mask as text, one letter per row: t, f or n (null).
std::string Evaluate(const Table& table, const std::string& text) {
  auto predicate = Predicate::Parse(text);
  if (!predicate.ok()) return predicate.status().ToString();
  auto mask = predicate->Evaluate(table);
  if (!mask.ok()) return mask.status().ToString();
  std::string out;
  for (int64_t i = 0; i < mask->length(); ++i)
    out += mask->IsNull(i) ? 'n' : (mask->GetBool(i) ? 't' : 'f');
  return out;
}

TEST(FilterTest, ThreeValuedLogic) {
  const Table table = SmallTable();
  EXPECT_EQ(Evaluate(table, "a > 2"), "fftnt");
  EXPECT_EQ(Evaluate(table, "a > 2 and false"), "fffff");
  EXPECT_EQ(Evaluate(table, "a > 2 or true"), "ttttt");
  EXPECT_EQ(Evaluate(table, "not a > 2"), "ttfnf");
  EXPECT_EQ(Evaluate(table, "a > 2 or a is null"), "ffttt");
  EXPECT_EQ(Evaluate(table, "a is not null and not (a in (1, 127))"), "ftfft");
  EXPECT_EQ(Evaluate(table, "a not in (1, 127)"), "ftfnt");
  EXPECT_EQ(Evaluate(table, "a in (1, null)"), "tnnnn");
  EXPECT_EQ(Evaluate(table, "a == null or flag"), "tnntn");
  EXPECT_EQ(Evaluate(table, "NOT flag"), "ftnft");
  EXPECT_EQ(Evaluate(table, "flag == true AND a >= 1"), "tfnnf");
  EXPECT_EQ(Evaluate(table, "1 < 2"), "ttttt");
  EXPECT_EQ(Evaluate(table, "'a' > 'b' or null"), "nnnnn");
}

TEST(FilterTest, NumbersCompareExactly) {
  const Table table = SmallTable();
  // Constants outside the column's range decide every valid row.
  EXPECT_EQ(Evaluate(table, "a > -129"), "tttnt");
  EXPECT_EQ(Evaluate(table, "a < 128"), "tttnt");
  EXPECT_EQ(Evaluate(table, "a == 1000"), "fffnf");
  EXPECT_EQ(Evaluate(table, "u > -1"), "ttttn");
  EXPECT_EQ(Evaluate(table, "u == 18446744073709551615"), "ftffn");
  EXPECT_EQ(Evaluate(table, "u > a"), "ftfnn");
  EXPECT_EQ(Evaluate(table, "a < 1.5 and a >= 0.5"), "tffnf");
  EXPECT_EQ(Evaluate(table, "a = +5"), "fffnt");
  // NaN equals NaN and is above every number; -0.0 equals 0.
  EXPECT_EQ(Evaluate(table, "x > 1e299"), "ftnft");
  EXPECT_EQ(Evaluate(table, "x == x"), "ttntt");
  EXPECT_EQ(Evaluate(table, "x = 0"), "ffntf");
  EXPECT_EQ(Evaluate(table, "x < a"), "ffnnf");
}

TEST(FilterTest, StringsNamesAndDates) {
  const Table table = SmallTable();
  EXPECT_EQ(Evaluate(table, "`odd ``name``` == 'it''s'"), "tfnff");
  EXPECT_EQ(Evaluate(table, "`odd ``name``` > 'b'"), "tfntf");
  EXPECT_EQ(Evaluate(table, "`odd ``name``` in ('', '日本')"), "ftntf");
  EXPECT_EQ(Evaluate(table, "day >= '2024-01-31'"), "ftnft");
  EXPECT_EQ(Evaluate(table, "day < '1970-01-01' or day == '2024-02-01'"), "ffntt");
  EXPECT_EQ(Evaluate(table, "day == day"), "ttntt");
}

TEST(FilterTest, ParseErrorsShowWhere) {
  const Table table = SmallTable();
  auto message = [](const std::string& text) {
    auto parsed = Predicate::Parse(text);
    EXPECT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalid) << text;
    return parsed.ok() ? std::string() : parsed.status().message();
  };
  EXPECT_EQ(message("a > 3 and (b"),
            "filter: expected ')', found the end at column 13 in 'a > 3 and (b'");
  EXPECT_EQ(message("a > "),
            "filter: expected a column, a constant or '(', found the end at column 5 in 'a > '");
  EXPECT_EQ(message("a >> 3"),
            "filter: expected a column, a constant or '(', found '>' at column 4 in 'a >> 3'");
  EXPECT_EQ(message("a == 'abc"), "filter: unterminated 'string' at column 6 in 'a == 'abc'");
  EXPECT_EQ(message("`abc == 1"), "filter: unterminated `name` at column 1 in '`abc == 1'");
  EXPECT_EQ(message("a is nul"),
            "filter: expected 'null' after 'is', found 'nul' at column 6 in 'a is nul'");
  EXPECT_EQ(message("a in 1, 2"), "filter: expected '(', found '1' at column 6 in 'a in 1, 2'");
  EXPECT_EQ(message("a in (1, b)"),
            "filter: expected a constant in the 'in' list at column 10 in 'a in (1, b)'");
  EXPECT_EQ(message("a > 3 b"),
            "filter: expected 'and', 'or' or the end, found 'b' at column 7 in 'a > 3 b'");
  EXPECT_EQ(message("a ? 3"), "filter: unexpected character '?' at column 3 in 'a ? 3'");
  EXPECT_EQ(message("a > 3e"), "filter: '3e' is not a number at column 5 in 'a > 3e'");
  EXPECT_EQ(message(""), "filter: expected a condition at column 1 in ''");
  EXPECT_EQ(message("a not b"),
            "filter: expected 'in' after 'not', found 'b' at column 7 in 'a not b'");
}

TEST(FilterTest, EvaluationErrorsNameTheColumn) {
  const Table table = SmallTable();
  auto status = [&](const std::string& text) {
    auto predicate = Predicate::Parse(text);
    EXPECT_TRUE(predicate.ok()) << predicate.status().ToString();
    auto mask = predicate->Evaluate(table);
    EXPECT_FALSE(mask.ok()) << text;
    return mask.ok() ? Status::OK() : mask.status();
  };
  Status missing = status("a > 1 and nope < 3");
  EXPECT_EQ(missing.code(), StatusCode::kKeyError);
  EXPECT_EQ(
      missing.message(),
      "filter: no column named 'nope' (columns: a, u, x, odd `name`, flag, day) at column 11 in "
      "'a > 1 and nope < 3'");
  Status mixed = status("a == 'x'");
  EXPECT_EQ(mixed.code(), StatusCode::kTypeError);
  EXPECT_EQ(
      mixed.message(),
      "filter: cannot compare column 'a' (int8) with 'x' (a string) at column 3 in 'a == 'x''");
  EXPECT_EQ(
      status("'x' < x").message(),
      "filter: cannot compare column 'x' (float64) with 'x' (a string) at column 5 in ''x' < x'");
  EXPECT_EQ(status("day > a").code(), StatusCode::kTypeError);
  EXPECT_EQ(status("a").message(),
            "filter: column 'a' is int8, not bool: compare it with something at column 1 in 'a'");
  EXPECT_EQ(status("day > '2024-13-01'").message(),
            "filter: '2024-13-01' is not a date (YYYY-MM-DD) at column 7 in 'day > '2024-13-01''");
  EXPECT_EQ(status("flag < 1").code(), StatusCode::kTypeError);
  // Filter reports the same errors.
  EXPECT_EQ(Filter(table, "a > (").status().code(), StatusCode::kInvalid);
  EXPECT_EQ(Filter(table, "nope").status().code(), StatusCode::kKeyError);
}

TEST(FilterTest, EmptyTableAndAllNullColumn) {
  const Table empty = OracleTable(0, 1);
  ASSERT_OK_AND_ASSIGN(Table none, Filter(empty, "i8 > 3 or s == 'b'"));
  EXPECT_EQ(none.num_rows(), 0);
  EXPECT_EQ(none.schema(), empty.schema());
  const Table nulls = OracleTable(100, 2, 1.0);
  ASSERT_OK_AND_ASSIGN(Table kept, Filter(nulls, "i8 > 3 or not (s == 'b')"));
  EXPECT_EQ(kept.num_rows(), 0);
  ASSERT_OK_AND_ASSIGN(Table all, Filter(nulls, "i8 is null and `my col` is null"));
  EXPECT_TRUE(all.Equals(nulls));
}

}  // namespace
}  // namespace deeprc::compute
