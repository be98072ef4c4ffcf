// Runs the built `deeprc` program on small files and checks what it writes. Expected results are
// worked out by hand from the inputs. A subcommand whose kernel is not linked into this build
// says so, and its test is skipped with that reason.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "deeprc/table/builder.h"
#include "deeprc/table/table_file.h"
#include "testing/assertions.h"
#include "testing/program.h"
#include "testing/table_compare.h"

namespace deeprc {
namespace {

namespace fs = std::filesystem;

using RunResult = testing::ProgramRun;
using testing::ReadText;
using testing::WriteText;

using Ints = std::vector<std::optional<int64_t>>;
using Floats = std::vector<std::optional<double>>;
using Strings = std::vector<std::optional<std::string>>;

Column IntColumn(const Ints& values) {
  return MakeColumn<int64_t>(DataType::Int64(), values).ValueOrDie();
}
Column FloatColumn(const Floats& values) {
  return MakeColumn<double>(DataType::Float64(), values).ValueOrDie();
}
Column StringColumn(const Strings& values) { return MakeStringColumn(values).ValueOrDie(); }

Table MakeTable(const std::vector<std::pair<std::string, Column>>& columns) {
  std::vector<Field> fields;
  std::vector<Column> data;
  for (const auto& [name, column] : columns) {
    fields.push_back({name, column.type()});
    data.push_back(column);
  }
  return Table::Make(Schema(std::move(fields)), std::move(data)).ValueOrDie();
}

class TableCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = testing::DeeprcProgram();
    ASSERT_TRUE(fs::exists(binary_))
        << binary_ << " is not built (cmake --build ... --target deeprc)";
    directory_ = testing::FreshTestDirectory("deeprc_table_command");
  }
  void TearDown() override { fs::remove_all(directory_); }

  std::string PathOf(const std::string& name) const { return (directory_ / name).string(); }

  RunResult Run(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    return testing::RunProgram(binary_, args, directory_, stdin_text);
  }

  void WriteTable(const Table& table, const std::string& name) {
    ASSERT_OK(WriteTableFile(table, PathOf(name)));
  }

  Result<Table> ReadTable(const std::string& name) { return ReadTableFile(PathOf(name)); }

  // Files in the folder, to check that failed commands leave nothing behind.
  std::vector<std::string> Listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(directory_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string binary_;
  fs::path directory_;
};

// Runs the command and expects success.
#define RUN_OK(result_name, ...)            \
  RunResult result_name = Run(__VA_ARGS__); \
  ASSERT_EQ(result_name.exit_status, 0) << result_name.err

// The join inputs: keys with duplicates and nulls on both sides.
Table JoinLeft() {
  return MakeTable({{"k", IntColumn({1, 2, 2, 3, std::nullopt})},
                    {"lv", StringColumn({"a", "b", "c", "d", "e"})}});
}
Table JoinRight() {
  return MakeTable({{"k", IntColumn({2, 3, 3, 4, std::nullopt})},
                    {"rv", FloatColumn({0.5, 1.5, 2.5, 3.5, 4.5})}});
}

TEST_F(TableCommandTest, JoinEveryKind) {
  WriteTable(JoinLeft(), "l.drt");
  WriteTable(JoinRight(), "r.drt");
  const std::optional<std::string> null;
  struct Case {
    std::string how;
    Table expected;
  };
  const std::vector<Case> cases = {
      {"inner", MakeTable({{"k", IntColumn({2, 2, 3, 3})},
                           {"lv", StringColumn({"b", "c", "d", "d"})},
                           {"rv", FloatColumn({0.5, 0.5, 1.5, 2.5})}})},
      {"left", MakeTable({{"k", IntColumn({1, 2, 2, 3, 3, std::nullopt})},
                          {"lv", StringColumn({"a", "b", "c", "d", "d", "e"})},
                          {"rv", FloatColumn({std::nullopt, 0.5, 0.5, 1.5, 2.5, std::nullopt})}})},
      {"right", MakeTable({{"k", IntColumn({2, 2, 3, 3, 4, std::nullopt})},
                           {"lv", StringColumn({"b", "c", "d", "d", null, null})},
                           {"rv", FloatColumn({0.5, 0.5, 1.5, 2.5, 3.5, 4.5})}})},
      {"outer", MakeTable({{"k", IntColumn({1, 2, 2, 3, 3, std::nullopt, 4, std::nullopt})},
                           {"lv", StringColumn({"a", "b", "c", "d", "d", "e", null, null})},
                           {"rv", FloatColumn({std::nullopt, 0.5, 0.5, 1.5, 2.5, std::nullopt, 3.5,
                                               4.5})}})},
      {"semi", MakeTable({{"k", IntColumn({2, 2, 3})}, {"lv", StringColumn({"b", "c", "d"})}})},
      {"anti", MakeTable({{"k", IntColumn({1, std::nullopt})}, {"lv", StringColumn({"a", "e"})}})},
  };
  for (const auto& test_case : cases) {
    for (const char* algorithm : {"hash", "sort"}) {
      SCOPED_TRACE(test_case.how + " " + algorithm);
      const std::string out = "out_" + test_case.how + ".drt";
      RUN_OK(result, {"table", "join", PathOf("l.drt"), PathOf("r.drt"), "--on", "k", "--how",
                      test_case.how, "--algorithm", algorithm, "-o", PathOf(out)});
      ASSERT_OK_AND_ASSIGN(Table actual, ReadTable(out));
      EXPECT_TRUE(testing::TablesEqualUnordered(test_case.expected, actual));
    }
  }
  // Null keys match each other with --nulls-equal.
  RUN_OK(result, {"table", "join", PathOf("l.drt"), PathOf("r.drt"), "--on", "k", "--nulls-equal",
                  "-o", PathOf("nulls.drt")});
  ASSERT_OK_AND_ASSIGN(Table actual, ReadTable("nulls.drt"));
  EXPECT_TRUE(
      testing::TablesEqualUnordered(MakeTable({{"k", IntColumn({2, 2, 3, 3, std::nullopt})},
                                               {"lv", StringColumn({"b", "c", "d", "d", "e"})},
                                               {"rv", FloatColumn({0.5, 0.5, 1.5, 2.5, 4.5})}}),
                                    actual));
}

TEST_F(TableCommandTest, JoinDifferentKeyNamesAndSuffixes) {
  WriteTable(MakeTable({{"a", IntColumn({1, 2})}, {"v", StringColumn({"p", "q"})}}), "l.drt");
  WriteTable(MakeTable({{"b", IntColumn({2, 1, 5})}, {"v", StringColumn({"x", "y", "z"})}}),
             "r.drt");
  RUN_OK(result, {"table", "join", PathOf("l.drt"), PathOf("r.drt"), "--left-on", "a", "--right-on",
                  "b", "--how", "inner", "--suffixes", "_l,_r", "-o", PathOf("out.drt")});
  ASSERT_OK_AND_ASSIGN(Table actual, ReadTable("out.drt"));
  EXPECT_TRUE(testing::TablesEqualUnordered(MakeTable({{"a", IntColumn({1, 2})},
                                                       {"v_l", StringColumn({"p", "q"})},
                                                       {"b", IntColumn({1, 2})},
                                                       {"v_r", StringColumn({"y", "x"})}}),
                                            actual));
}

TEST_F(TableCommandTest, GroupBy) {
  WriteTable(MakeTable({{"k", StringColumn({"x", "y", "x", std::nullopt, "y", "x"})},
                        {"v", IntColumn({1, 2, 3, 4, std::nullopt, 5})},
                        {"w", IntColumn({7, 7, 8, 9, 9, 9})}}),
             "in.drt");
  RUN_OK(result, {"table", "groupby", PathOf("in.drt"), "--by", "k", "--agg",
                  "v:sum,v:mean,w:nunique", "-o", PathOf("out.drt")});
  ASSERT_OK_AND_ASSIGN(Table actual, ReadTable("out.drt"));
  // Groups in order of first appearance; the null key is a group of its own.
  EXPECT_TRUE(testing::TablesEqualOrdered(MakeTable({{"k", StringColumn({"x", "y", std::nullopt})},
                                                     {"v_sum", IntColumn({9, 2, 4})},
                                                     {"v_mean", FloatColumn({3.0, 2.0, 4.0})},
                                                     {"w_nunique", IntColumn({3, 2, 1})}}),
                                          actual));
  // Two keys, written as two options.
  RUN_OK(two, {"table", "groupby", PathOf("in.drt"), "--by", "k", "--by", "w", "--agg", "v:count",
               "-o", PathOf("two.drt")});
  ASSERT_OK_AND_ASSIGN(Table two_keys, ReadTable("two.drt"));
  EXPECT_EQ(two_keys.num_rows(), 6);  // (x,7) (y,7) (x,8) (null,9) (y,9) (x,9)
}

TEST_F(TableCommandTest, SortWithDescendingAndNullsFirst) {
  WriteTable(MakeTable({{"a", IntColumn({3, std::nullopt, 1, 3, 1})},
                        {"b", StringColumn({"p", "q", "r", "s", "t"})}}),
             "in.drt");
  RUN_OK(result, {"table", "sort", PathOf("in.drt"), "--by", "a,b", "--descending", "b",
                  "--nulls-first", "a", "-o", PathOf("out.drt")});
  ASSERT_OK_AND_ASSIGN(Table actual, ReadTable("out.drt"));
  EXPECT_TRUE(
      testing::TablesEqualOrdered(MakeTable({{"a", IntColumn({std::nullopt, 1, 1, 3, 3})},
                                             {"b", StringColumn({"q", "t", "r", "s", "p"})}}),
                                  actual));
}

TEST_F(TableCommandTest, UniqueKeepModes) {
  WriteTable(MakeTable({{"a", IntColumn({1, 1, 2, 2, 3})},
                        {"b", StringColumn({"x", "y", "x", "x", "z"})}}),
             "in.drt");
  struct Case {
    std::vector<std::string> options;
    Table expected;
  };
  const std::vector<Case> cases = {
      {{"--subset", "a", "--keep", "first"},
       MakeTable({{"a", IntColumn({1, 2, 3})}, {"b", StringColumn({"x", "x", "z"})}})},
      {{"--subset", "a", "--keep", "last"},
       MakeTable({{"a", IntColumn({1, 2, 3})}, {"b", StringColumn({"y", "x", "z"})}})},
      {{"--subset", "a", "--keep", "none"},
       MakeTable({{"a", IntColumn({3})}, {"b", StringColumn({"z"})}})},
      {{}, MakeTable({{"a", IntColumn({1, 1, 2, 3})}, {"b", StringColumn({"x", "y", "x", "z"})}})},
  };
  int index = 0;
  for (const auto& test_case : cases) {
    SCOPED_TRACE(index);
    const std::string out = "out" + std::to_string(index++) + ".drt";
    std::vector<std::string> args = {"table", "unique", PathOf("in.drt")};
    args.insert(args.end(), test_case.options.begin(), test_case.options.end());
    args.insert(args.end(), {"-o", PathOf(out)});
    RUN_OK(result, args);
    ASSERT_OK_AND_ASSIGN(Table actual, ReadTable(out));
    EXPECT_TRUE(testing::TablesEqualOrdered(test_case.expected, actual));
  }
}

TEST_F(TableCommandTest, SetOperations) {
  WriteTable(MakeTable({{"x", IntColumn({1, 2, 2})}}), "a.drt");
  WriteTable(MakeTable({{"x", IntColumn({2, 3})}}), "b.drt");
  struct Case {
    std::vector<std::string> args;
    Ints expected;
  };
  const std::vector<Case> cases = {
      {{"union"}, {1, 2, 3}},
      {{"union", "--all"}, {1, 2, 2, 2, 3}},
      {{"intersect"}, {2}},
      {{"difference"}, {1}},
  };
  int index = 0;
  for (const auto& test_case : cases) {
    SCOPED_TRACE(test_case.args[0]);
    const std::string out = "out" + std::to_string(index++) + ".drt";
    std::vector<std::string> args = {"table", test_case.args[0], PathOf("a.drt"), PathOf("b.drt")};
    args.insert(args.end(), test_case.args.begin() + 1, test_case.args.end());
    args.insert(args.end(), {"-o", PathOf(out)});
    RUN_OK(result, args);
    ASSERT_OK_AND_ASSIGN(Table actual, ReadTable(out));
    EXPECT_TRUE(
        testing::TablesEqualUnordered(MakeTable({{"x", IntColumn(test_case.expected)}}), actual));
  }
}

TEST_F(TableCommandTest, FilterOnBinaryInput) {
  WriteTable(MakeTable({{"a", IntColumn({1, 4, 5, std::nullopt, 7})},
                        {"b", StringColumn({"p", std::nullopt, "q", "r", "s"})}}),
             "in.drt");
  RUN_OK(result, {"table", "filter", PathOf("in.drt"), "--where", "a > 3 and b is not null", "-o",
                  PathOf("out.drt")});
  ASSERT_OK_AND_ASSIGN(Table actual, ReadTable("out.drt"));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"a", IntColumn({5, 7})}, {"b", StringColumn({"q", "s"})}}), actual));
}

TEST_F(TableCommandTest, HeadAndTailWithoutCsv) {
  Ints values;
  for (int64_t i = 0; i < 25; ++i) values.push_back(i * 10);
  WriteTable(MakeTable({{"v", IntColumn(values)}}), "in.drt");
  RunResult head = Run({"table", "head", PathOf("in.drt"), "-n", "3", "-o", PathOf("h.drt")});
  ASSERT_EQ(head.exit_status, 0) << head.err;
  ASSERT_OK_AND_ASSIGN(Table h, ReadTable("h.drt"));
  EXPECT_TRUE(testing::TablesEqualOrdered(MakeTable({{"v", IntColumn({0, 10, 20})}}), h));
  RunResult tail = Run({"table", "tail", PathOf("in.drt"), "-o", PathOf("t.drt")});
  ASSERT_EQ(tail.exit_status, 0) << tail.err;
  ASSERT_OK_AND_ASSIGN(Table t, ReadTable("t.drt"));
  ASSERT_EQ(t.num_rows(), 10);  // the default
  EXPECT_EQ(t.column(0).Value<int64_t>(0), 150);
  EXPECT_EQ(t.column(0).Value<int64_t>(9), 240);
  // More rows than there are.
  RunResult all = Run({"table", "tail", PathOf("in.drt"), "-n", "100", "-o", PathOf("a.drt")});
  ASSERT_EQ(all.exit_status, 0) << all.err;
  ASSERT_OK_AND_ASSIGN(Table a, ReadTable("a.drt"));
  EXPECT_EQ(a.num_rows(), 25);
}

TEST_F(TableCommandTest, SchemaOfBinaryFile) {
  Table table = MakeTable({{"id", IntColumn({1})}, {"name", StringColumn({"x"})}});
  std::vector<Field> fields = table.schema().fields();
  fields.push_back({"when", DataType::Timestamp(TimeUnit::kMilli, "UTC")});
  ASSERT_OK_AND_ASSIGN(Column when, MakeColumn<int64_t>(fields.back().type, {5}));
  std::vector<Column> columns = table.columns();
  columns.push_back(when);
  ASSERT_OK_AND_ASSIGN(Table with_time, Table::Make(Schema(fields), columns));
  WriteTable(with_time, "in.drt");
  RunResult result = Run({"table", "schema", PathOf("in.drt")});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_EQ(result.out, "id: int64\nname: string\nwhen: timestamp[ms, UTC]\n(1 rows)\n");
}

// CSV in, CSV out, in the forms of the documentation.
TEST_F(TableCommandTest, CsvConvertRoundTrip) {
  WriteText(PathOf("in.csv"),
            "id,price,name,day\n"
            "1,2.5,plain,2024-01-31\n"
            "2,,\"with, comma\",2024-02-29\n"
            "3,-1.25,\"quote \"\"q\"\"\",\n"
            ",0,grüß,1970-01-01\n");
  RUN_OK(result, {"table", "convert", PathOf("in.csv"), "-o", PathOf("t.drt")});
  ASSERT_OK_AND_ASSIGN(Table table, ReadTable("t.drt"));
  ASSERT_OK_AND_ASSIGN(Column day,
                       MakeColumn<int32_t>(DataType::Date32(), {19753, 19782, std::nullopt, 0}));
  Table expected =
      MakeTable({{"id", IntColumn({1, 2, 3, std::nullopt})},
                 {"price", FloatColumn({2.5, std::nullopt, -1.25, 0.0})},
                 {"name", StringColumn({"plain", "with, comma", "quote \"q\"", "grüß"})},
                 {"day", day}});
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, table));
  // Back to CSV and in again: the same table.
  RUN_OK(back, {"table", "convert", PathOf("t.drt"), "-o", PathOf("back.csv")});
  RUN_OK(again, {"table", "convert", PathOf("back.csv"), "-o", PathOf("again.drt")});
  ASSERT_OK_AND_ASSIGN(Table round_trip, ReadTable("again.drt"));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, round_trip));
  // Binary input is recognized by its magic bytes, whatever its name.
  fs::copy_file(PathOf("t.drt"), PathOf("disguised.csv"));
  RUN_OK(schema, {"table", "schema", PathOf("disguised.csv")});
  EXPECT_EQ(schema.out, "id: int64\nprice: float64\nname: string\nday: date32\n(4 rows)\n");
  // zstd-compressed output reads back the same.
  RUN_OK(packed,
         {"table", "convert", PathOf("in.csv"), "-o", PathOf("z.drt"), "--compression", "zstd"});
  ASSERT_OK_AND_ASSIGN(Table z, ReadTable("z.drt"));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, z));
}

TEST_F(TableCommandTest, CsvOptions) {
  WriteText(PathOf("in.tsv"), "1\tx\tmissing\n2\tmissing\t7\n");
  RUN_OK(result, {"table", "convert", PathOf("in.tsv"), "--delimiter", "\\t", "--no-header",
                  "--null", "missing", "--types", "f0:int32,f2:float64", "-o", PathOf("t.drt")});
  ASSERT_OK_AND_ASSIGN(Table table, ReadTable("t.drt"));
  ASSERT_OK_AND_ASSIGN(Column f0, MakeColumn<int32_t>(DataType::Int32(), {1, 2}));
  EXPECT_TRUE(testing::TablesEqualOrdered(MakeTable({{"f0", f0},
                                                     {"f1", StringColumn({"x", std::nullopt})},
                                                     {"f2", FloatColumn({std::nullopt, 7.0})}}),
                                          table));
}

TEST_F(TableCommandTest, CsvFilterHeadAndStdout) {
  WriteText(PathOf("in.csv"), "a,b\n1,p\n4,\n5,q\n,r\n7,s\n");
  RUN_OK(result, {"table", "filter", PathOf("in.csv"), "--where", "a > 3 and b is not null", "-o",
                  PathOf("out.csv")});
  RUN_OK(convert, {"table", "convert", PathOf("out.csv"), "-o", PathOf("out.drt")});
  ASSERT_OK_AND_ASSIGN(Table actual, ReadTable("out.drt"));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"a", IntColumn({5, 7})}, {"b", StringColumn({"q", "s"})}}), actual));
  // head to standard output: the header and two rows.
  RUN_OK(head, {"table", "head", PathOf("in.csv"), "-n", "2", "-o", "-"});
  std::istringstream lines(head.out);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(line);
  ASSERT_EQ(rows.size(), 3u) << head.out;
  EXPECT_EQ(rows[0], "a,b");
  EXPECT_EQ(rows[1], "1,p");
  EXPECT_EQ(rows[2].substr(0, 2), "4,");
  // CSV from standard input.
  RUN_OK(piped, {"table", "head", "-", "-n", "1"}, "x,y\n9,z\n8,w\n");
  EXPECT_EQ(piped.out, "x,y\n9,z\n");
}

// ----- Bad input: exit status 2, one message naming the fault, no output file.

void ExpectUsageError(const RunResult& result, const std::string& fragment) {
  EXPECT_EQ(result.exit_status, 2) << result.err;
  EXPECT_NE(result.err.find(fragment), std::string::npos) << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
  // One message: a single line.
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST_F(TableCommandTest, BadInputsExitTwoAndLeaveNothing) {
  WriteTable(MakeTable({{"k", IntColumn({1, 2})}, {"v", IntColumn({3, 4})}}), "in.drt");
  const std::vector<std::string> before = Listing();
  const std::string out = PathOf("out.drt");
  ExpectUsageError(Run({"table", "sort", PathOf("missing.csv"), "--by", "k", "-o", out}),
                   "missing.csv");
  ExpectUsageError(Run({"table", "head", PathOf("in.drt"), "-n", "-1", "-o", out}), "-n");
  ExpectUsageError(Run({"table", "nonsense", PathOf("in.drt")}), "nonsense");
  ExpectUsageError(Run({"table", "head", PathOf("in.drt"), "--bogus-option"}), "--bogus-option");
  ExpectUsageError(Run({"table", "join", PathOf("in.drt"), PathOf("in.drt"), "-o", out}), "--on");
  ExpectUsageError(Run({"table", "convert", PathOf("in.drt")}), "--output");
  ExpectUsageError(
      Run({"table", "sort", PathOf("in.drt"), "--by", "k", "--descending", "v", "-o", out}), "'v'");
  ExpectUsageError(Run({"table", "head", PathOf("in.drt"), "-o", PathOf("nowhere/out.csv")}),
                   "nowhere");
  ExpectUsageError(Run({"table", "convert", PathOf("in.drt"), "-o", out, "--compression", "rar"}),
                   "rar");
  ExpectUsageError(Run({"table", "head", PathOf("in.drt"), "--delimiter", "ab"}), "delimiter");
  // A corrupt binary file.
  std::string bytes = ReadText(PathOf("in.drt"));
  bytes[70] = static_cast<char>(bytes[70] ^ 0x55);
  WriteText(PathOf("corrupt.drt"), bytes);
  ExpectUsageError(Run({"table", "convert", PathOf("corrupt.drt"), "-o", out}),
                   "checksum mismatch");
  fs::remove(PathOf("corrupt.drt"));
  EXPECT_EQ(Listing(), before);
}

TEST_F(TableCommandTest, KernelErrorsExitTwoAndLeaveNothing) {
  WriteTable(MakeTable({{"k", IntColumn({1, 2})}, {"v", IntColumn({3, 4})}}), "in.drt");
  WriteTable(MakeTable({{"other", StringColumn({"x"})}}), "other.drt");
  const std::vector<std::string> before = Listing();
  const std::string out = PathOf("out.drt");
  auto check = [&](const std::vector<std::string>& args, const std::string& fragment) {
    ExpectUsageError(Run(args), fragment);
    EXPECT_FALSE(fs::exists(out));
  };
  check({"table", "sort", PathOf("in.drt"), "--by", "nope", "-o", out}, "nope");
  check({"table", "groupby", PathOf("in.drt"), "--by", "nope", "--agg", "v:sum", "-o", out},
        "nope");
  check({"table", "groupby", PathOf("in.drt"), "--by", "k", "--agg", "v:frobnicate", "-o", out},
        "frobnicate");
  check({"table", "join", PathOf("in.drt"), PathOf("in.drt"), "--on", "k", "--how", "sideways",
         "-o", out},
        "sideways");
  check({"table", "join", PathOf("in.drt"), PathOf("other.drt"), "--on", "k", "-o", out}, "k");
  check({"table", "unique", PathOf("in.drt"), "--subset", "nope", "-o", out}, "nope");
  check({"table", "filter", PathOf("in.drt"), "--where", "nope > 1", "-o", out}, "nope");
  check({"table", "union", PathOf("in.drt"), PathOf("other.drt"), "-o", out}, "");
  EXPECT_EQ(Listing(), before);
}

TEST_F(TableCommandTest, MalformedCsvExitsTwo) {
  WriteText(PathOf("bad.csv"), "a,b\n1,2\n3,4,5\n");
  WriteText(PathOf("typed.csv"), "a,b\n1,2\nabc,4\n");
  const std::vector<std::string> before = Listing();
  RunResult ragged = Run({"table", "convert", PathOf("bad.csv"), "-o", PathOf("out.drt")});
  ExpectUsageError(ragged, "bad.csv");
  RunResult typed =
      Run({"table", "convert", PathOf("typed.csv"), "--types", "a:int64", "-o", PathOf("out.csv")});
  ExpectUsageError(typed, "typed.csv");
  ExpectUsageError(Run({"table", "convert", PathOf("typed.csv"), "--types", "a:complex", "-o",
                        PathOf("out.csv")}),
                   "complex");
  EXPECT_EQ(Listing(), before);
}

}  // namespace
}  // namespace deeprc
