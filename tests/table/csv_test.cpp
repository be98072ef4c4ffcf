#include "deeprc/table/csv.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/temporal.h"
#include "testing/assertions.h"
#include "testing/oracle.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc {
namespace {

namespace fs = std::filesystem;
using csv::ReadCsv;
using csv::ReadCsvText;
using csv::ReadOptions;
using csv::WriteOptions;

// A scratch folder per test, removed afterwards.
class CsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        fs::temp_directory_path() / fmt::format("deeprc_csv_test_{}_{}", ::getpid(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteFile(const std::string& name, std::string_view text) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    return path;
  }

  fs::path dir_;
};

Column Int64s(const std::vector<std::optional<int64_t>>& values) {
  return MakeColumn<int64_t>(DataType::Int64(), values).ValueOrDie();
}
Column Float64s(const std::vector<std::optional<double>>& values) {
  return MakeColumn<double>(DataType::Float64(), values).ValueOrDie();
}
Column Strings(const std::vector<std::optional<std::string>>& values) {
  return MakeStringColumn(values).ValueOrDie();
}

Table MakeTable(std::vector<std::pair<std::string, Column>> columns) {
  std::vector<Field> fields;
  std::vector<Column> data;
  for (auto& [name, column] : columns) {
    fields.push_back({name, column.type()});
    data.push_back(column);
  }
  return Table::Make(Schema(fields), data).ValueOrDie();
}

TEST_F(CsvTest, InfersEveryType) {
  const std::string text =
      "i,f,b,d,t,s\n"
      "1,1.5,true,2024-01-31,2024-01-31T10:00:00,x\n"
      "-7,2,False,1999-12-31,2024-02-01 00:00:01.5,y z\n"
      ",NaN,,,,\n";
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText(text));
  EXPECT_EQ(table.schema().ToString(),
            "i: int64, f: float64, b: bool, d: date32, t: timestamp[us], s: string");
  ASSERT_EQ(table.num_rows(), 3);
  EXPECT_EQ(table.column(0).Value<int64_t>(1), -7);
  EXPECT_TRUE(table.column(0).IsNull(2));
  EXPECT_EQ(table.column(1).Value<double>(1), 2.0);
  EXPECT_TRUE(table.column(1).IsNull(2));
  EXPECT_TRUE(table.column(2).GetBool(0));
  EXPECT_FALSE(table.column(2).GetBool(1));
  EXPECT_EQ(table.column(3).Value<int32_t>(0), *temporal::ParseDate("2024-01-31"));
  EXPECT_EQ(table.column(4).Value<int64_t>(1),
            *temporal::ParseTimestamp("2024-02-01T00:00:01.5", TimeUnit::kMicro));
  EXPECT_EQ(table.column(5).GetString(1), "y z");
  EXPECT_TRUE(table.column(5).IsNull(2));
}

TEST_F(CsvTest, QuotedFieldsWithDelimitersQuotesAndNewlines) {
  const std::string text =
      "name,note\n"
      "\"a,b\",\"he said \"\"hi\"\"\"\n"
      "\"multi\nline\",\"crlf\r\ninside\"\n"
      "plain,\"\"\n";
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText(text));
  Table expected = MakeTable({{"name", Strings({"a,b", "multi\nline", "plain"})},
                              {"note", Strings({"he said \"hi\"", "crlf\r\ninside", ""})}});
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, table));
}

TEST_F(CsvTest, CrlfBomAndMissingFinalNewline) {
  const std::string text =
      "\xEF\xBB\xBF"
      "a,b\r\n1,x\r\n2,\"y\"\r\n3,z";
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText(text));
  Table expected = MakeTable({{"a", Int64s({1, 2, 3})}, {"b", Strings({"x", "y", "z"})}});
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, table));
  // Any cut into blocks, also inside the BOM, the CRLF and the last row.
  for (int64_t block_size : {1, 2, 4, 7}) {
    ReadOptions options;
    options.block_size = block_size;
    options.threads = 2;
    ASSERT_OK_AND_ASSIGN(Table blocked, ReadCsvText(text, options));
    EXPECT_TRUE(testing::TablesEqualOrdered(expected, blocked)) << "block_size " << block_size;
    ASSERT_OK_AND_ASSIGN(Table quoted_last, ReadCsvText("a,b\r\n1,x\r\n2,y\r\n3,\"z\"", options));
    EXPECT_TRUE(testing::TablesEqualOrdered(expected, quoted_last)) << "block_size " << block_size;
  }
  // The same without the BOM, with LF and a final newline.
  ASSERT_OK_AND_ASSIGN(Table plain, ReadCsvText("a,b\n1,x\n2,y\n3,z\n"));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, plain));
}

TEST_F(CsvTest, BlankLinesAreSkipped) {
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("a,b\n\n1,2\r\n\r\n3,4\n\n"));
  Table expected = MakeTable({{"a", Int64s({1, 3})}, {"b", Int64s({2, 4})}});
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, table));
  // Blank lines leave gaps where the blocks' rows were placed by count: the same with any block
  // size, with nulls and with a column widened from int64 to float64.
  const std::string text = "a,b,c\n\n1,2,x\n\n\n,4,\n5,,y\r\n\r\n7,8.5,z\n\n";
  ReadOptions single;
  single.threads = 1;
  ASSERT_OK_AND_ASSIGN(Table whole, ReadCsvText(text, single));
  EXPECT_EQ(whole.num_rows(), 4);
  EXPECT_EQ(whole.schema().ToString(), "a: int64, b: float64, c: string");
  for (int64_t block_size : {1, 2, 3, 5, 8, 13}) {
    ReadOptions options;
    options.block_size = block_size;
    options.threads = 2;
    ASSERT_OK_AND_ASSIGN(Table blocked, ReadCsvText(text, options));
    EXPECT_TRUE(testing::TablesEqualOrdered(whole, blocked)) << "block_size " << block_size;
  }
}

TEST_F(CsvTest, OneColumnBlankLinesAreNulls) {
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("a\n1\n\n3\r\n\r\n"));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"a", Int64s({1, std::nullopt, 3, std::nullopt})}}), table));
  Table strings = MakeTable({{"s", Strings({"x", std::nullopt, "", "y"})}});
  std::ostringstream out;
  ASSERT_OK(csv::WriteCsv(strings, out));
  EXPECT_EQ(out.str(), "s\nx\n\n\"\"\ny\n");
  ASSERT_OK_AND_ASSIGN(Table back, ReadCsvText(out.str()));
  EXPECT_TRUE(testing::TablesEqualOrdered(strings, back));
}

TEST_F(CsvTest, NoHeaderAndColumnNames) {
  ReadOptions options;
  options.header = false;
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("1,a\n2,b\n", options));
  EXPECT_TRUE(testing::TablesEqualOrdered(
      MakeTable({{"f0", Int64s({1, 2})}, {"f1", Strings({"a", "b"})}}), table));
  options.column_names = {"id", "tag"};
  ASSERT_OK_AND_ASSIGN(Table named, ReadCsvText("1,a\n2,b\n", options));
  EXPECT_EQ(named.schema().names(), (std::vector<std::string>{"id", "tag"}));
  EXPECT_EQ(named.num_rows(), 2);
  // With a header, column_names replace the header's names.
  options.header = true;
  ASSERT_OK_AND_ASSIGN(Table renamed, ReadCsvText("x,y\n1,a\n", options));
  EXPECT_EQ(renamed.schema().names(), (std::vector<std::string>{"id", "tag"}));
  EXPECT_EQ(renamed.num_rows(), 1);
  options.column_names = {"only"};
  auto wrong = ReadCsvText("x,y\n1,a\n", options);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("2 columns but 1 column names"), std::string::npos)
      << wrong.status().ToString();
}

TEST_F(CsvTest, SkipRowsCountsLinesBeforeTheHeader) {
  ReadOptions options;
  options.skip_rows = 2;
  ASSERT_OK_AND_ASSIGN(Table table,
                       ReadCsvText("# exported by a tool\n# \"not csv\n a,b\n1,2\n", options));
  EXPECT_EQ(table.schema().names(), (std::vector<std::string>{" a", "b"}));
  EXPECT_EQ(table.num_rows(), 1);
  // Error lines still count the skipped lines and the header.
  auto bad = ReadCsvText(
      "junk\njunk\na,b\n1,2\n3,x\n",
      [] {
        ReadOptions o;
        o.skip_rows = 2;
        o.column_types = {{"b", DataType::Int64()}};
        return o;
      }(),
      "skip.csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "skip.csv:5: column 'b' (2): expected int64, found 'x'");
}

TEST_F(CsvTest, IncludeColumnsSelectsAndOrders) {
  ReadOptions options;
  options.include_columns = {"c", "a"};
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("a,b,c\n1,x,2.5\n3,y,\n", options));
  Table expected = MakeTable({{"c", Float64s({2.5, std::nullopt})}, {"a", Int64s({1, 3})}});
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, table));
  options.include_columns = {"nope"};
  auto missing = ReadCsvText("a,b\n1,2\n", options, "in.csv");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kKeyError);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);
  EXPECT_NE(missing.status().message().find("a, b"), std::string::npos);
}

TEST_F(CsvTest, ColumnTypesOverrideInference) {
  ReadOptions options;
  options.column_types = {{"a", DataType::String()},
                          {"b", DataType::Float32()},
                          {"c", DataType::Int16()},
                          {"d", DataType::Timestamp(TimeUnit::kMilli)},
                          {"e", DataType::UInt8()}};
  ASSERT_OK_AND_ASSIGN(Table table,
                       ReadCsvText("a,b,c,d,e\n007,1.25,-300,2020-01-01,255\n", options));
  EXPECT_EQ(table.schema().ToString(),
            "a: string, b: float32, c: int16, d: timestamp[ms], e: uint8");
  EXPECT_EQ(table.column(0).GetString(0), "007");
  EXPECT_EQ(table.column(1).Value<float>(0), 1.25f);
  EXPECT_EQ(table.column(2).Value<int16_t>(0), -300);
  EXPECT_EQ(table.column(3).Value<int64_t>(0), int64_t{1577836800000});
  EXPECT_EQ(table.column(4).Value<uint8_t>(0), 255);
  // Out of range for the declared type is an error, not a wrap-around.
  options.column_types = {{"e", DataType::UInt8()}};
  auto overflow = ReadCsvText("e\n256\n", options, "o.csv");
  ASSERT_FALSE(overflow.ok());
  EXPECT_EQ(overflow.status().message(), "o.csv:2: column 'e' (1): expected uint8, found '256'");
  options.column_types = {{"zz", DataType::Int64()}};
  EXPECT_EQ(ReadCsvText("e\n1\n", options).status().code(), StatusCode::kKeyError);
}

TEST_F(CsvTest, NullTokens) {
  // Unquoted tokens are null; quoted ones are values.
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("n,s\nNA,NA\nnull,\"NULL\"\n,\"\"\n5,N/A\n"));
  EXPECT_EQ(table.column(0).type_id(), TypeId::kInt64);
  EXPECT_EQ(table.column(0).null_count(), 3);
  const Column& s = table.column(1);
  EXPECT_TRUE(s.IsNull(0));
  EXPECT_EQ(s.GetString(1), "NULL");
  EXPECT_EQ(s.GetString(2), "");
  EXPECT_TRUE(s.IsNull(3));

  // Without "" in the list, an empty field is an empty string in a string column, and still
  // null in a numeric one.
  ReadOptions options;
  options.null_values = {"-"};
  ASSERT_OK_AND_ASSIGN(Table custom, ReadCsvText("n,s\n1,\n,-\n-,NA\n", options));
  EXPECT_EQ(custom.column(0).type_id(), TypeId::kInt64);
  EXPECT_EQ(custom.column(0).null_count(), 2);
  EXPECT_EQ(custom.column(1).GetString(0), "");
  EXPECT_TRUE(custom.column(1).IsNull(1));
  EXPECT_EQ(custom.column(1).GetString(2), "NA");
}

TEST_F(CsvTest, AllNullColumnIsStringAndEmptyInputs) {
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("a,b\n1,\n2,NA\n"));
  EXPECT_EQ(table.column(1).type_id(), TypeId::kString);
  EXPECT_EQ(table.column(1).null_count(), 2);

  ASSERT_OK_AND_ASSIGN(Table header_only, ReadCsvText("a,b\n"));
  EXPECT_EQ(header_only.num_rows(), 0);
  EXPECT_EQ(header_only.schema().ToString(), "a: string, b: string");
  ASSERT_OK_AND_ASSIGN(Table empty, ReadCsvText(""));
  EXPECT_EQ(empty.num_rows(), 0);
  EXPECT_EQ(empty.num_columns(), 0);
}

TEST_F(CsvTest, DelimiterCannotBeALineEndOrTheQuote) {
  ReadOptions options;
  options.delimiter = '"';
  auto result = ReadCsvText("a\n1\n", options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            "CSV delimiter '\"' cannot be a line end or the quote character");
  WriteOptions write;
  write.delimiter = '\n';
  std::ostringstream out;
  EXPECT_EQ(csv::WriteCsv(Table(), out, write).code(), StatusCode::kInvalid);
}

TEST_F(CsvTest, DelimiterOption) {
  ReadOptions options;
  options.delimiter = ';';
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("a;b\n1,5;\"x;y\"\n", options));
  EXPECT_EQ(table.column(0).GetString(0), "1,5");
  EXPECT_EQ(table.column(1).GetString(0), "x;y");
  options.delimiter = '\t';
  ASSERT_OK_AND_ASSIGN(Table tabs, ReadCsvText("a\tb\n1\t2\n", options));
  EXPECT_EQ(tabs.column(1).Value<int64_t>(0), 2);
}

// ---- errors ----

TEST_F(CsvTest, TypeErrorNamesFileLineColumnAndValue) {
  ReadOptions options;
  options.column_types = {{"price", DataType::Float64()}};
  auto result = ReadCsvText("id,price\n1,2.5\n2,abc\n", options, "data.csv");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalid);
  EXPECT_EQ(result.status().message(),
            "data.csv:3: column 'price' (2): expected float64, found 'abc'");
}

TEST_F(CsvTest, ErrorLinesCountPhysicalLinesOfQuotedNewlines) {
  ReadOptions options;
  options.column_types = {{"n", DataType::Int64()}};
  // Row 1 spans lines 2-4; the bad value is on line 5.
  const std::string text = "s,n\n\"one\ntwo\nthree\",1\nx,1e3\n";
  auto result = ReadCsvText(text, options, "q.csv");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "q.csv:5: column 'n' (2): expected int64, found '1e3'");
  // The same with tiny blocks and two threads: the first error in file order wins.
  options.block_size = 3;
  options.threads = 2;
  auto blocked = ReadCsvText(text + "y,zz\n", options, "q.csv");
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().message(), "q.csv:5: column 'n' (2): expected int64, found '1e3'");
}

TEST_F(CsvTest, ErrorOnFirstBadValueInFileOrderAcrossColumns) {
  ReadOptions options;
  options.column_types = {{"a", DataType::Int64()}, {"b", DataType::Int64()}};
  auto result = ReadCsvText("a,b\n1,2\n3,x\ny,4\n", options, "o.csv");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "o.csv:3: column 'b' (2): expected int64, found 'x'");
}

TEST_F(CsvTest, WrongFieldCount) {
  auto more = ReadCsvText("a,b\n1,2\n3,4,5\n", {}, "f.csv");
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.status().code(), StatusCode::kInvalid);
  EXPECT_EQ(more.status().message(), "f.csv:3: expected 2 fields, found 3");
  auto fewer = ReadCsvText("a,b,c\n1,2,3\n\"x\ny\",4\n", {}, "f.csv");
  ASSERT_FALSE(fewer.ok());
  EXPECT_EQ(fewer.status().message(), "f.csv:3: expected 3 fields, found 2");
}

TEST_F(CsvTest, UnterminatedQuoteNamesTheLineWhereItStarted) {
  ReadOptions options;
  for (int64_t block_size : {int64_t{4} << 20, int64_t{5}}) {
    options.block_size = block_size;
    auto result = ReadCsvText("a,b\n1,2\n3,\"open\n4,5\n6,7\n", options, "u.csv");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().message(),
              "u.csv:3: unterminated quote: the quoted field of column 'b' (2) opened here never "
              "closes");
  }
}

TEST_F(CsvTest, StrayQuotesAreErrors) {
  auto inside = ReadCsvText("a,b\n1,ab\"c\n", {}, "s.csv");
  ASSERT_FALSE(inside.ok());
  EXPECT_EQ(inside.status().message(),
            "s.csv:2: column 'b' (2): quote character inside an unquoted field (quote the whole "
            "field and double the quotes inside it)");
  auto after = ReadCsvText("a,b\n\"x\"y,1\n", {}, "s.csv");
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().message(),
            "s.csv:2: column 'a' (1): unexpected 'y' after the closing quote (expected the "
            "delimiter or the end of the line)");
}

TEST_F(CsvTest, MissingFileIsAnIOErrorNamingThePath) {
  const std::string path = (dir_ / "does_not_exist.csv").string();
  auto result = ReadCsv(path);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kIOError);
  EXPECT_NE(result.status().message().find(path), std::string::npos);
  EXPECT_EQ(csv::InferSchema(path).status().code(), StatusCode::kIOError);
}

TEST_F(CsvTest, ErrorsFromFilesUseThePath) {
  const std::string path = WriteFile("data.csv", "id,price\n1,2.5\n2,abc\n");
  ReadOptions options;
  options.column_types = {{"price", DataType::Float64()}};
  auto result = ReadCsv(path, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(),
            path + ":3: column 'price' (2): expected float64, found 'abc'");
}

// ---- parallel parsing ----

// A text with quoted newlines, quotes, CRLF, nulls and a column whose type widens late.
std::string TrickyText(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string text = "id,value,label,day,maybe\n";
  for (int64_t i = 0; i < rows; ++i) {
    text += std::to_string(i);
    text += ',';
    // int64 until the last rows, where a float appears
    if (rng() % 10 == 0) {
    } else if (i > rows * 9 / 10 && rng() % 3 == 0) {
      text += std::to_string(i) + ".5";
    } else {
      text += std::to_string(static_cast<int64_t>(rng() % 2000) - 1000);
    }
    text += ',';
    switch (rng() % 6) {
      case 0:
        text += "\"multi\nline " + std::to_string(i) + "\"";
        break;
      case 1:
        text += "\"q\"\"uote,\"\"\"";
        break;
      case 2:
        text += "plain";
        break;
      case 3:
        break;
      case 4:
        text += "\"\r\n\"";
        break;
      default:
        text += "ü日本";
        break;
    }
    text += ',';
    text += temporal::FormatDate(static_cast<int32_t>(rng() % 30000));
    text += ',';
    // null everywhere but near the middle
    if (i == rows / 2) text += "true";
    text += rng() % 2 ? "\r\n" : "\n";
  }
  return text;
}

TEST_F(CsvTest, BlocksAndThreadsGiveTheSameTable) {
  const std::string text = TrickyText(3000, 7);
  ReadOptions single;
  single.threads = 1;
  single.block_size = int64_t{1} << 30;
  ASSERT_OK_AND_ASSIGN(Table expected, ReadCsvText(text, single));
  EXPECT_EQ(expected.num_rows(), 3000);
  EXPECT_EQ(expected.schema().ToString(),
            "id: int64, value: float64, label: string, day: date32, maybe: bool");
  for (int64_t block_size : {1, 7, 64, 1000, 50000}) {
    for (int threads : {1, 2, 4}) {
      ReadOptions options;
      options.block_size = block_size;
      options.threads = threads;
      ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText(text, options));
      EXPECT_TRUE(testing::TablesEqualOrdered(expected, table))
          << "block_size " << block_size << " threads " << threads;
    }
  }
}

TEST_F(CsvTest, InferSchemaFromASample) {
  const std::string path = WriteFile("sample.csv", "a,b,c\n1,x,\n2,2020-01-01,\n2.5,y,NA\n");
  ReadOptions options;
  options.inference_rows = 2;
  ASSERT_OK_AND_ASSIGN(Schema sample, csv::InferSchema(path, options));
  EXPECT_EQ(sample.ToString(), "a: int64, b: string, c: string");
  ASSERT_OK_AND_ASSIGN(Schema full, csv::InferSchema(path));
  EXPECT_EQ(full.ToString(), "a: float64, b: string, c: string");
}

TEST_F(CsvTest, ByteRangesWithoutHeader) {
  const std::string text = "1,\"a\nb\"\n2,c\n3,\"d,\"\"e\"\n";
  ReadOptions options;
  options.header = false;
  ASSERT_OK_AND_ASSIGN(Table whole, ReadCsvText(text, options));
  ASSERT_EQ(whole.num_rows(), 3);
  const int64_t size = static_cast<int64_t>(text.size());
  for (int64_t cut = 0; cut <= size; ++cut) {
    options.range_begin = 0;
    options.range_end = cut;
    ASSERT_OK_AND_ASSIGN(Table head, ReadCsvText(text, options));
    options.range_begin = cut;
    options.range_end = -1;
    ASSERT_OK_AND_ASSIGN(Table tail, ReadCsvText(text, options));
    EXPECT_EQ(head.num_rows() + tail.num_rows(), 3) << "cut " << cut;
    EXPECT_EQ(head.schema().names(), (std::vector<std::string>{"f0", "f1"}));
    // A row belongs to the range holding its first byte.
    const int64_t expected_head = cut == 0 ? 0 : cut <= 8 ? 1 : cut <= 12 ? 2 : 3;
    EXPECT_EQ(head.num_rows(), expected_head) << "cut " << cut;
  }
}

// Random texts from a small alphabet, most of them malformed: any cut into blocks gives the same
// table, or the same error (the first in file order), as one sequential pass.
TEST_F(CsvTest, RandomTextsGiveTheSameResultForAnyBlocks) {
  std::mt19937_64 rng(17);
  const std::string alphabet = "a1,\"\n\r ";
  const std::vector<std::string> fields = {"", "a", "1", "2.5", "\"a,\n\"\"\"", "\"\"", " x"};
  int failures = 0;
  for (int trial = 0; trial < 400; ++trial) {
    // Rows of 2 fields, sometimes 1 or 3, then a few bytes changed at random.
    std::string text;
    const int rows = static_cast<int>(rng() % 12);
    for (int row = 0; row < rows; ++row) {
      const int count = rng() % 10 == 0 ? 1 + static_cast<int>(rng() % 3) : 2;
      for (int i = 0; i < count; ++i) {
        if (i > 0) text += ',';
        text += fields[rng() % fields.size()];
      }
      text += rng() % 3 == 0 ? "\r\n" : "\n";
    }
    const int mutations = static_cast<int>(rng() % 3);
    for (int i = 0; i < mutations && !text.empty(); ++i) {
      text[rng() % text.size()] = alphabet[rng() % alphabet.size()];
    }
    ReadOptions single;
    single.threads = 1;
    single.header = trial % 2 == 0;
    auto expected = ReadCsvText(text, single, "r.csv");
    failures += !expected.ok();
    for (int64_t block_size : {1, 3, 8, 29}) {
      ReadOptions options = single;
      options.block_size = block_size;
      options.threads = 2;
      auto actual = ReadCsvText(text, options, "r.csv");
      ASSERT_EQ(expected.ok(), actual.ok())
          << "text '" << text << "' block_size " << block_size << ": "
          << (expected.ok() ? actual.status() : expected.status()).ToString();
      if (expected.ok()) {
        EXPECT_TRUE(testing::TablesEqualOrdered(*expected, *actual))
            << "text '" << text << "' block_size " << block_size;
      } else {
        EXPECT_EQ(expected.status().message(), actual.status().message())
            << "text '" << text << "' block_size " << block_size;
      }
    }
  }
  // Both kinds of outcome were exercised.
  EXPECT_GT(failures, 40);
  EXPECT_LT(failures, 300);
}

TEST_F(CsvTest, InferenceRowsSamplesTheStart) {
  ReadOptions options;
  options.inference_rows = 2;
  auto result = ReadCsvText("a\n1\n2\n3.5\n", options, "s.csv");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "s.csv:4: column 'a' (1): expected int64, found '3.5'");
  options.inference_rows = 3;
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsvText("a\n1\n2\n3.5\n", options));
  EXPECT_EQ(table.column(0).type_id(), TypeId::kFloat64);
}

// ---- byte ranges ----

TEST_F(CsvTest, ByteRangesThatTileTheFileReadEveryRowOnce) {
  const std::string text = "\xEF\xBB\xBF" + TrickyText(400, 11);
  const std::string path = WriteFile("tiles.csv", text);
  ASSERT_OK_AND_ASSIGN(Table whole, ReadCsv(path));
  ASSERT_OK_AND_ASSIGN(Schema schema, csv::InferSchema(path));
  EXPECT_EQ(schema, whole.schema());
  ReadOptions options;
  for (const auto& field : schema.fields()) options.column_types[field.name] = field.type;
  std::mt19937_64 rng(3);
  const int64_t size = static_cast<int64_t>(text.size());
  for (int trial = 0; trial < 40; ++trial) {
    const int parts = 1 + trial % 7;
    std::vector<int64_t> cuts = {0, size};
    for (int i = 1; i < parts; ++i) cuts.push_back(static_cast<int64_t>(rng() % (size + 1)));
    std::sort(cuts.begin(), cuts.end());
    std::vector<Table> pieces;
    for (int i = 0; i < parts; ++i) {
      options.range_begin = cuts[i];
      options.range_end = cuts[i + 1];
      options.block_size = 1 + static_cast<int64_t>(rng() % 300);
      options.threads = 1 + static_cast<int>(rng() % 2);
      // Odd trials give the quote parity before the range instead of letting the reader count.
      options.quote_parity_before_range =
          trial % 2 == 0
              ? -1
              : static_cast<int>(std::count(text.begin(), text.begin() + cuts[i], '"') % 2);
      ASSERT_OK_AND_ASSIGN(Table piece, ReadCsv(path, options));
      EXPECT_EQ(piece.schema(), schema);
      pieces.push_back(piece);
    }
    ASSERT_OK_AND_ASSIGN(Table joined, compute::Concatenate(pieces));
    ASSERT_TRUE(testing::TablesEqualOrdered(whole, joined)) << "trial " << trial;
  }
  // An open end reads to the end of the file; a range inside the header reads nothing.
  options.quote_parity_before_range = -1;
  options.range_begin = 0;
  options.range_end = 3;
  ASSERT_OK_AND_ASSIGN(Table none, ReadCsv(path, options));
  EXPECT_EQ(none.num_rows(), 0);
  options.range_end = -1;
  ASSERT_OK_AND_ASSIGN(Table all, ReadCsv(path, options));
  EXPECT_EQ(all.num_rows(), whole.num_rows());
}

// ---- writing ----

TEST_F(CsvTest, RoundTripOfEveryType) {
  auto specs = testing::AllTypesSpec(0.15);
  Table table = testing::RandomTable(specs, 5000, 99);
  const std::string path = (dir_ / "round.csv").string();
  WriteOptions write;
  write.threads = 2;
  ASSERT_OK(csv::WriteCsv(table, path, write));
  ReadOptions read;
  for (const auto& field : table.schema().fields()) read.column_types[field.name] = field.type;
  read.block_size = 4096;
  ASSERT_OK_AND_ASSIGN(Table back, ReadCsv(path, read));
  EXPECT_TRUE(testing::TablesEqualOrdered(table, back));
  // Each column alone too: a table of one column writes its nulls as blank lines.
  for (int i = 0; i < table.num_columns(); ++i) {
    ASSERT_OK_AND_ASSIGN(Table single, table.SelectColumns(std::vector<int>{i}));
    std::ostringstream out;
    ASSERT_OK(csv::WriteCsv(single, out));
    ReadOptions options;
    options.column_types = {{single.schema().field(0).name, single.schema().field(0).type}};
    ASSERT_OK_AND_ASSIGN(Table single_back, ReadCsvText(out.str(), options));
    EXPECT_TRUE(testing::TablesEqualOrdered(single, single_back)) << single.schema().ToString();
  }
  // Only the file itself is left: no temporary.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "round.csv");
  }
  EXPECT_EQ(files, 1);
}

TEST_F(CsvTest, TimestampsWithAZoneRoundTripAsUtc) {
  const DataType type = DataType::Timestamp(TimeUnit::kMicro, "UTC");
  ASSERT_OK_AND_ASSIGN(
      Column values, MakeColumn<int64_t>(
                         type, {int64_t{0}, int64_t{-1}, std::nullopt, int64_t{1700000000123456}}));
  Table table = MakeTable({{"t", values}});
  std::ostringstream out;
  ASSERT_OK(csv::WriteCsv(table, out));
  EXPECT_EQ(out.str(),
            "t\n1970-01-01T00:00:00.000000Z\n1969-12-31T23:59:59.999999Z\n\n"
            "2023-11-14T22:13:20.123456Z\n");
  ReadOptions options;
  options.column_types = {{"t", type}};
  ASSERT_OK_AND_ASSIGN(Table back, ReadCsvText(out.str(), options));
  EXPECT_TRUE(testing::TablesEqualOrdered(table, back));
}

TEST_F(CsvTest, WriterQuotesWhatNeedsQuotingAndWritesNulls) {
  Table table = MakeTable(
      {{"s", Strings({"plain", "a,b", "say \"x\"", "two\nlines", "", "NA", std::nullopt, "cr\r"})},
       {"f", Float64s({0.1, 1e300, -2.5, std::nullopt, 3, 1.0 / 3, 0, 5})}});
  std::ostringstream out;
  WriteOptions options;
  options.null_value = "";
  ASSERT_OK(csv::WriteCsv(table, out, options));
  EXPECT_EQ(out.str(),
            "s,f\n"
            "plain,0.1\n"
            "\"a,b\",1e+300\n"
            "\"say \"\"x\"\"\",-2.5\n"
            "\"two\nlines\",\n"
            "\"\",3\n"
            "\"NA\",0.3333333333333333\n"
            ",0\n"
            "\"cr\r\",5\n");
  ASSERT_OK_AND_ASSIGN(Table back, ReadCsvText(out.str()));
  EXPECT_TRUE(testing::TablesEqualOrdered(table, back));

  std::ostringstream custom;
  options.null_value = "\\N";
  options.delimiter = '|';
  options.header = false;
  ASSERT_OK(csv::WriteCsv(table.Slice(5, 3), custom, options));
  EXPECT_EQ(custom.str(), "\"NA\"|0.3333333333333333\n\\N|0\n\"cr\r\"|5\n");
}

TEST_F(CsvTest, FailedWriteLeavesNothingBehind) {
  Table table = MakeTable({{"a", Int64s({1, 2})}});
  const std::string path = (dir_ / "no_such_folder" / "out.csv").string();
  Status status = csv::WriteCsv(table, path);
  EXPECT_EQ(status.code(), StatusCode::kIOError);
  EXPECT_NE(status.message().find(path), std::string::npos) << status.ToString();
  EXPECT_FALSE(fs::exists(path));
  // Overwriting an existing file replaces it whole.
  const std::string existing = WriteFile("existing.csv", "old\n");
  ASSERT_OK(csv::WriteCsv(table, existing));
  ASSERT_OK_AND_ASSIGN(Table back, ReadCsv(existing));
  EXPECT_TRUE(testing::TablesEqualOrdered(table, back));
}

// ---- against pandas ----

TEST_F(CsvTest, MatchesPandasReadCsv) {
  std::mt19937_64 rng(5);
  std::string text = "id,amount,name,day,flag\n";
  const std::vector<std::string> words = {"alpha", "a,b",  "say \"hi\"", "two\nlines",
                                          "ünï",   "東京", "x y"};
  for (int i = 0; i < 2000; ++i) {
    auto maybe_null = [&](const std::string& value) { return rng() % 8 == 0 ? "" : value; };
    const std::string& word = words[rng() % words.size()];
    std::string quoted = "\"";
    for (char c : word) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    // Within 2^53: pandas' nullable Int64 parsing goes through float64 when a column has nulls.
    text += maybe_null(std::to_string(static_cast<int64_t>(rng() % (uint64_t{1} << 53)) -
                                      (int64_t{1} << 52))) +
            ",";
    text += maybe_null(fmt::format("{}", static_cast<double>(rng() % 100000) / 64 - 500)) + ",";
    text += (rng() % 8 == 0 ? std::string() : quoted) + ",";
    text += maybe_null(temporal::FormatDate(static_cast<int32_t>(rng() % 40000))) + ",";
    text += maybe_null(rng() % 2 ? "true" : "False");
    text += i % 3 == 0 ? "\r\n" : "\n";
  }
  const std::string path = WriteFile("oracle.csv", text);
  ReadOptions options;
  options.block_size = 10000;
  options.threads = 2;
  ASSERT_OK_AND_ASSIGN(Table table, ReadCsv(path, options));
  EXPECT_EQ(table.schema().ToString(),
            "id: int64, amount: float64, name: string, day: date32, flag: bool");
  nlohmann::json types;
  for (const auto& field : table.schema().fields()) types[field.name] = field.type.ToString();
  nlohmann::json spec = {{"op", "read_csv"},
                         {"path", path},
                         {"types", types},
                         {"null_values", ReadOptions{}.null_values}};
  ASSERT_OK_AND_ASSIGN(Table expected, testing::RunPandasOracle(spec, {}, table.schema()));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, table));
}

// ---- real files ----

TEST_F(CsvTest, ReadsTheCylonDataFiles) {
  // The copy of Cylon's data the repository carries (tests/data/cylon).
  const fs::path root = fs::path(DEEPRC_SOURCE_DIR) / "tests" / "data" / "cylon";
  ASSERT_TRUE(fs::exists(root)) << root;
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".csv") continue;
    ++files;
    ASSERT_OK_AND_ASSIGN(Table table, ReadCsv(entry.path().string()));
    EXPECT_GT(table.num_columns(), 0) << entry.path();
    // A second read with the inferred types and tiny blocks gives the same table.
    ReadOptions options;
    for (const auto& field : table.schema().fields()) options.column_types[field.name] = field.type;
    options.block_size = 97;
    options.threads = 2;
    ASSERT_OK_AND_ASSIGN(Table again, ReadCsv(entry.path().string(), options));
    EXPECT_TRUE(testing::TablesEqualOrdered(table, again)) << entry.path();
  }
  EXPECT_GT(files, 100);
}

}  // namespace
}  // namespace deeprc
