// Distributed CSV at 1, 2 and 4 ranks against the local reader and writer: one file read by byte
// ranges (quoted fields with newlines, delimiters and quotes across the range boundaries; types
// that only a later range decides; columns null in whole ranges) must give, in rank order,
// exactly csv::ReadCsv of the file; several files (a list, a glob, by size) give the rows of the
// local reads; writes per rank and into one file give the bytes of the local writer; errors name
// the file and line on every rank.
#include "deeprc/dist/csv.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "deeprc/compute/selection.h"
#include "deeprc/dist/partition.h"
#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/rank_split.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

namespace fs = std::filesystem;
using testing::RankSplit;
using testing::TestComm;

// A folder for this test run (rank 0 names it; every rank sees it), removed at the end.
class DistCsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& comm = TestComm();
    std::string name;
    if (comm.rank() == 0) {
      name = std::string(DEEPRC_BINARY_DIR) + "/dist_csv_test." + std::to_string(comm.size()) +
             "." + std::to_string(::getpid()) + "." +
             ::testing::UnitTest::GetInstance()->current_test_info()->name();
      fs::remove_all(name);
      fs::create_directories(name);
    }
    comm::BufferPtr buffer;
    if (comm.rank() == 0) buffer = Buffer::CopyOf(name.data(), std::ssize(name)).ValueOrDie();
    ASSERT_OK(comm.Broadcast(0, &buffer));
    dir_ = std::string(reinterpret_cast<const char*>(buffer->data()), buffer->size());
  }
  void TearDown() override {
    auto& comm = TestComm();
    (void)comm.Barrier();
    if (comm.rank() == 0) fs::remove_all(dir_);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // Rank 0 writes `table` to `name` with the local writer; afterwards every rank sees it.
  void WriteOnRankZero(const Table& table, const std::string& name,
                       const csv::WriteOptions& options = {}) {
    auto& comm = TestComm();
    if (comm.rank() == 0) ASSERT_OK(csv::WriteCsv(table, Path(name), options));
    ASSERT_OK(comm.Barrier());
  }
  void WriteTextOnRankZero(const std::string& text, const std::string& name) {
    auto& comm = TestComm();
    if (comm.rank() == 0) std::ofstream(Path(name), std::ios::binary) << text;
    ASSERT_OK(comm.Barrier());
  }
  std::string dir_;
};

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Random rows with text that needs quoting (newlines, delimiters, quotes), a column that is
// int64 in its first rows and float64 later, one that is null in its first 70% of rows, and one
// that turns from numbers to text at the end.
Table TrickyTable(int64_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  StringBuilder text;
  NumberBuilder<double> late_float(DataType::Float64());
  StringBuilder late_values;
  StringBuilder mixed;
  const char* pieces[] = {"a", "b\nc", "\"", ",", "x y", "é\n", "\r\n", "日本", ""};
  for (int64_t i = 0; i < rows; ++i) {
    if (rng() % 10 == 0) {
      (void)text.AppendNull();
    } else {
      std::string value;
      for (int k = static_cast<int>(rng() % 4); k > 0; --k) value += pieces[rng() % 9];
      if (value.empty()) value = "v";  // an empty string would read back as null
      (void)text.Append(value);
    }
    const bool late = i >= rows * 4 / 5;
    (void)late_float.Append(late ? static_cast<double>(rng() % 1000) / 4 + 0.25
                                 : static_cast<double>(rng() % 1000));
    if (i < rows * 7 / 10 || rng() % 5 == 0) {
      (void)late_values.AppendNull();
    } else {
      (void)late_values.Append(std::to_string(rng() % 100));
    }
    (void)mixed.Append(i >= rows - 2 ? std::string("word") : std::to_string(rng() % 50));
  }
  const Table random = testing::RandomTable({{"id", DataType::Int64(), 0.0},
                                             {"name", DataType::String(), 0.1, 20},
                                             {"price", DataType::Float64(), 0.1},
                                             {"flag", DataType::Bool(), 0.2},
                                             {"day", DataType::Date32(), 0.1}},
                                            rows, seed + 1);
  std::vector<Field> fields = random.schema().fields();
  std::vector<Column> columns = random.columns();
  fields.push_back({"text", DataType::String()});
  columns.push_back(text.Finish().ValueOrDie());
  fields.push_back({"late_float", DataType::Float64()});
  columns.push_back(late_float.Finish().ValueOrDie());
  fields.push_back({"late_values", DataType::String()});
  columns.push_back(late_values.Finish().ValueOrDie());
  fields.push_back({"mixed", DataType::String()});
  columns.push_back(mixed.Finish().ValueOrDie());
  return Table::Make(Schema(fields), columns, rows).ValueOrDie();
}

TEST_F(DistCsvTest, OneFileByByteRangesEqualsTheLocalRead) {
  auto& comm = TestComm();
  for (int64_t rows : {0, 1, 3, 40, 2500}) {
    const std::string name = "tricky_" + std::to_string(rows) + ".csv";
    WriteOnRankZero(TrickyTable(rows, 17 + rows), name);
    std::vector<csv::ReadOptions> variants(4);
    variants[1].column_types["late_float"] = DataType::Float64();
    variants[1].include_columns = {"text", "late_float", "id", "late_values"};
    variants[2].inference_rows = 10;  // types from the first rows: a later misfit is an error
    variants[2].column_types["late_float"] = DataType::Float64();
    variants[2].column_types["mixed"] = DataType::String();
    variants[2].column_types["late_values"] = DataType::String();
    variants[3].block_size = 64;  // many blocks per range
    for (size_t v = 0; v < variants.size(); ++v) {
      SCOPED_TRACE("rows " + std::to_string(rows) + ", options " + std::to_string(v));
      ASSERT_OK_AND_ASSIGN(Table expected, csv::ReadCsv(Path(name), variants[v]));
      ASSERT_OK_AND_ASSIGN(Table mine, ReadCsv(comm, Path(name), variants[v]));
      EXPECT_TRUE(mine.schema() == expected.schema())
          << mine.schema().ToString() << " vs " << expected.schema().ToString();
      ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, mine));
      EXPECT_TRUE(testing::TablesEqualOrdered(expected, gathered, 0.0));
    }
    if (rows == 2500) {
      // The types really were decided late: the local read joined them.
      ASSERT_OK_AND_ASSIGN(Table expected, csv::ReadCsv(Path(name)));
      EXPECT_EQ(expected.schema().field(6).type.id, TypeId::kFloat64);
      EXPECT_EQ(expected.schema().field(7).type.id, TypeId::kInt64);
      EXPECT_EQ(expected.schema().field(8).type.id, TypeId::kString);
    }
  }
}

TEST_F(DistCsvTest, ASubRangeOfTheFileIsSplitToo) {
  auto& comm = TestComm();
  WriteOnRankZero(TrickyTable(1000, 3), "range.csv");
  const int64_t size = static_cast<int64_t>(fs::file_size(Path("range.csv")));
  csv::ReadOptions options;
  options.range_begin = size / 3;
  options.range_end = size * 3 / 4;
  options.column_types = {{"late_float", DataType::Float64()},
                          {"mixed", DataType::String()},
                          {"late_values", DataType::Int64()}};
  ASSERT_OK_AND_ASSIGN(Table expected, csv::ReadCsv(Path("range.csv"), options));
  ASSERT_OK_AND_ASSIGN(Table mine, ReadCsv(comm, Path("range.csv"), options));
  ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, mine));
  EXPECT_GT(expected.num_rows(), 0);
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, gathered, 0.0));
}

TEST_F(DistCsvTest, BadValueIsReportedWithFileAndLineByEveryRank) {
  auto& comm = TestComm();
  // 400 rows; line 301 (the header is line 1) holds text in a declared int64 column.
  std::string text = "k,v\n";
  for (int i = 0; i < 400; ++i) {
    text +=
        std::to_string(i) + "," + (i == 299 ? std::string("abc") : std::to_string(i * 3)) + "\n";
  }
  WriteTextOnRankZero(text, "bad.csv");
  csv::ReadOptions options;
  options.column_types["v"] = DataType::Int64();
  auto local = csv::ReadCsv(Path("bad.csv"), options);
  ASSERT_FALSE(local.ok());
  EXPECT_NE(local.status().message().find("bad.csv:301"), std::string::npos)
      << local.status().ToString();
  auto mine = ReadCsv(comm, Path("bad.csv"), options);
  ASSERT_FALSE(mine.ok());
  EXPECT_NE(mine.status().message().find(local.status().message()), std::string::npos)
      << mine.status().ToString();
  // Inferred, the column is text and the read succeeds everywhere.
  ASSERT_OK_AND_ASSIGN(Table inferred, ReadCsv(comm, Path("bad.csv")));
  ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, inferred));
  ASSERT_OK_AND_ASSIGN(Table expected, csv::ReadCsv(Path("bad.csv")));
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, gathered, 0.0));

  // Malformed quoting in the middle of the file.
  std::string quoted = "a,b\n";
  for (int i = 0; i < 300; ++i) quoted += (i == 200 ? "x\"y" : "\"q\nq\"") + std::string(",1\n");
  WriteTextOnRankZero(quoted, "quotes.csv");
  auto local_quotes = csv::ReadCsv(Path("quotes.csv"));
  ASSERT_FALSE(local_quotes.ok());
  auto mine_quotes = ReadCsv(comm, Path("quotes.csv"));
  ASSERT_FALSE(mine_quotes.ok());
  EXPECT_NE(mine_quotes.status().message().find(local_quotes.status().message()), std::string::npos)
      << mine_quotes.status().ToString() << " vs " << local_quotes.status().ToString();

  auto missing = ReadCsv(comm, Path("no_such_file.csv"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no_such_file.csv"), std::string::npos);
}

// Six files of one table's rows (one without rows, one where a column is all null, one where a
// column holds floats), and the same rows in one file: the local read of that file is the
// oracle for the joined schema and the rows.
class DistCsvFilesTest : public DistCsvTest {
 protected:
  void WriteParts() {
    global_ = TrickyTable(600, 5);
    const int64_t cuts[] = {0, 100, 220, 220, 330, 500, 600};
    std::vector<Field> fields = global_.schema().fields();
    for (int f = 0; f < 6; ++f) {
      Table part = global_.Slice(cuts[f], cuts[f + 1] - cuts[f]);
      if (f == 1) {
        // "price" all null in this file: its local read types it string.
        std::vector<Column> columns = part.columns();
        columns[2] = Column::MakeAllNull(DataType::Float64(), part.num_rows()).ValueOrDie();
        part = Table::Make(part.schema(), columns, part.num_rows()).ValueOrDie();
      }
      parts_.push_back(part);
      paths_.push_back(Path("part_" + std::to_string(f) + ".csv"));
      WriteOnRankZero(part, "part_" + std::to_string(f) + ".csv");
    }
    WriteOnRankZero(compute::Concatenate(parts_).ValueOrDie(), "whole.csv");
  }
  Table global_;
  std::vector<Table> parts_;
  std::vector<std::string> paths_;
};

TEST_F(DistCsvFilesTest, ListGlobAndBySizeGiveTheRowsOfTheLocalReads) {
  auto& comm = TestComm();
  WriteParts();
  ASSERT_OK_AND_ASSIGN(Table expected, csv::ReadCsv(Path("whole.csv")));
  // The files do disagree on their own.
  ASSERT_OK_AND_ASSIGN(Table file1, csv::ReadCsv(paths_[1]));
  EXPECT_EQ(file1.schema().field(2).type.id, TypeId::kString);

  struct Case {
    std::vector<std::string> entries;
    FileAssignment assignment;
  };
  const std::vector<Case> cases = {{paths_, FileAssignment::kRoundRobin},
                                   {{Path("part_*.csv")}, FileAssignment::kRoundRobin},
                                   {paths_, FileAssignment::kBySize}};
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    ASSERT_OK_AND_ASSIGN(Table mine, ReadCsvFiles(comm, cases[c].entries, {}, cases[c].assignment));
    EXPECT_TRUE(mine.schema() == expected.schema())
        << mine.schema().ToString() << " vs " << expected.schema().ToString();
    ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, mine));
    EXPECT_TRUE(testing::TablesEqualUnordered(expected, gathered, 0.0));
    if (cases[c].assignment == FileAssignment::kRoundRobin) {
      // Rank r holds files r, r + size, ... in order, read with the joined types.
      csv::ReadOptions typed;
      for (const auto& field : expected.schema().fields())
        typed.column_types[field.name] = field.type;
      std::vector<Table> own;
      for (size_t f = comm.rank(); f < paths_.size(); f += comm.size()) {
        ASSERT_OK_AND_ASSIGN(Table part, csv::ReadCsv(paths_[f], typed));
        own.push_back(part);
      }
      Table own_rows = Table::Empty(expected.schema());
      if (!own.empty()) {
        ASSERT_OK_AND_ASSIGN(own_rows, compute::Concatenate(own));
      }
      EXPECT_TRUE(testing::TablesEqualOrdered(own_rows, mine, 0.0));
    }
  }
}

TEST_F(DistCsvFilesTest, DifferentColumnsOrNoMatchFailOnEveryRank) {
  auto& comm = TestComm();
  WriteParts();
  WriteTextOnRankZero("id,other\n1,2\n", "odd.csv");
  std::vector<std::string> entries = paths_;
  entries.push_back(Path("odd.csv"));
  auto mixed = ReadCsvFiles(comm, entries);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("odd.csv"), std::string::npos)
      << mixed.status().ToString();
  auto none = ReadCsvFiles(comm, {Path("nothing_*.csv")});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("nothing_*.csv"), std::string::npos);
  auto missing = ReadCsvFiles(comm, {paths_[0], Path("missing.csv")});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.csv"), std::string::npos);
}

TEST_F(DistCsvTest, WritePerRankAndIntoOneFileThenReadBack) {
  auto& comm = TestComm();
  const Table global = TrickyTable(700, 23);
  WriteOnRankZero(global, "expected.csv");
  ASSERT_OK_AND_ASSIGN(Table expected, csv::ReadCsv(Path("expected.csv")));
  for (RankSplit split : testing::kAllRankSplits) {
    SCOPED_TRACE(testing::RankSplitName(split));
    const Table local = testing::RankSlice(global, comm.rank(), comm.size(), split, 2);
    // One file per rank: each holds the local writer's bytes of the partition.
    ASSERT_OK(WriteCsvPerRank(comm, local, Path("out_{rank}.csv")));
    std::ostringstream bytes;
    ASSERT_OK(csv::WriteCsv(local, bytes));
    EXPECT_EQ(ReadBytes(Path("out_" + std::to_string(comm.rank()) + ".csv")), bytes.str());
    // One file: the local writer's bytes of the global table.
    ASSERT_OK(WriteCsv(comm, local, Path("all.csv")));
    EXPECT_EQ(ReadBytes(Path("all.csv")), ReadBytes(Path("expected.csv")));
    ASSERT_OK_AND_ASSIGN(Table read, ReadCsv(comm, Path("all.csv")));
    ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, read));
    EXPECT_TRUE(testing::TablesEqualOrdered(expected, gathered, 0.0));
    ASSERT_OK(comm.Barrier());
  }
  EXPECT_EQ(RankFileName("d/x.csv", 3), "d/x_3.csv");
  EXPECT_EQ(RankFileName("d.v/x", 2), "d.v/x_2");
  EXPECT_EQ(RankFileName("part-{rank}-of.csv", 1), "part-1-of.csv");
  // A folder that does not exist: every rank fails, nothing is left behind.
  EXPECT_FALSE(WriteCsv(comm, global, Path("missing/all.csv")).ok());
  EXPECT_FALSE(WriteCsvPerRank(comm, global, Path("missing/out_{rank}.csv")).ok());
  EXPECT_FALSE(fs::exists(Path("missing")));
}

}  // namespace
}  // namespace deeprc::dist
