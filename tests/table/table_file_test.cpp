#include "deeprc/table/table_file.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc {
namespace {

namespace fs = std::filesystem;

class TableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = fs::path(::testing::TempDir()) /
                 ("deeprc_table_file_" + std::to_string(::getpid()) + "_" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(directory_);
    fs::create_directories(directory_);
  }
  void TearDown() override { fs::remove_all(directory_); }

  std::string PathOf(const std::string& name) const { return (directory_ / name).string(); }

  std::vector<char> ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  void WriteBytes(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  // Files in the test folder (to check that no temporary file stays behind).
  std::vector<std::string> Listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(directory_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  static std::string ErrorOf(const Result<Table>& result) {
    return result.ok() ? std::string("(no error)") : result.status().message();
  }

  fs::path directory_;
};

void ExpectSame(const Table& expected, const Table& actual) {
  EXPECT_TRUE(expected.schema() == actual.schema())
      << expected.schema().ToString() << " vs " << actual.schema().ToString();
  EXPECT_TRUE(testing::TablesEqualOrdered(expected, actual));
  EXPECT_TRUE(expected.Equals(actual));
  for (int i = 0; i < actual.num_columns(); ++i) {
    EXPECT_EQ(actual.column(i).null_count(), expected.column(i).null_count());
  }
}

TEST_F(TableFileTest, RoundTripEveryTypeWithNullsUnderEveryOption) {
  auto specs = testing::AllTypesSpec(0.2, 40);  // repeated values so that compression bites
  specs.push_back({"ts_zone", DataType::Timestamp(TimeUnit::kNano, "Asia/Tokyo"), 0.1});
  specs.push_back({"no_nulls", DataType::Int32(), 0.0});
  specs.push_back({"all_null", DataType::String(), 1.0});
  Table table = testing::RandomTable(specs, 3000, 21);
  for (const char* compression : {"none", "zstd", "lz4"}) {
    auto parsed = ParseTableFileCompression(compression);
    if (!parsed.ok()) {
      ADD_FAILURE() << parsed.status().ToString();
      continue;
    }
    TableFileWriteOptions write;
    write.compression = *parsed;
    const std::string path = PathOf(std::string("t_") + compression + ".drt");
    ASSERT_OK(WriteTableFile(table, path, write));
    EXPECT_TRUE(IsTableFile(path));
    for (bool memory_map : {true, false}) {
      for (bool verify : {true, false}) {
        SCOPED_TRACE(std::string(compression) + (memory_map ? " mmap" : " read") +
                     (verify ? " verify" : ""));
        TableFileReadOptions read;
        read.memory_map = memory_map;
        read.verify_checksums = verify;
        ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(path, read));
        ExpectSame(table, back);
      }
    }
  }
  EXPECT_LT(fs::file_size(PathOf("t_zstd.drt")), fs::file_size(PathOf("t_none.drt")));
  EXPECT_LT(fs::file_size(PathOf("t_lz4.drt")), fs::file_size(PathOf("t_none.drt")));
}

TEST_F(TableFileTest, BufferHoldsTheFileBytesAndReadsWithoutCopy) {
  auto specs = testing::AllTypesSpec(0.2, 40);
  Table table = testing::RandomTable(specs, 5000, 22).Slice(37, 4000);  // unaligned slice
  const std::string path = PathOf("same.drt");
  ASSERT_OK(WriteTableFile(table, path));
  ASSERT_OK_AND_ASSIGN(auto buffer, WriteTableToBuffer(table));
  const std::vector<char> file = ReadBytes(path);
  ASSERT_EQ(static_cast<int64_t>(file.size()), buffer->size());
  EXPECT_EQ(std::memcmp(file.data(), buffer->data(), file.size()), 0);

  std::shared_ptr<const Buffer> message = buffer;
  const int64_t before = DefaultMemoryPool()->bytes_allocated();
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFromBuffer(message));
  EXPECT_LT(DefaultMemoryPool()->bytes_allocated() - before, 4096) << "must slice, not copy";
  ExpectSame(table, back);
  for (const auto& column : back.columns()) {
    const uint8_t* data = column.values_buffer()->data();
    EXPECT_TRUE(data >= message->data() && data < message->data() + message->size());
  }

  // Without checksums: still readable with verification on (unchecked buffers are skipped), and
  // compressed buffers are copied out.
  for (auto compression : {TableFileCompression::kNone, TableFileCompression::kZstd}) {
    TableFileWriteOptions write;
    write.checksums = false;
    write.compression = compression;
    ASSERT_OK_AND_ASSIGN(auto unchecked, WriteTableToBuffer(table, write));
    ASSERT_OK_AND_ASSIGN(Table again, ReadTableFromBuffer(unchecked));
    ExpectSame(table, again);
  }

  // A damaged checksummed buffer is found; a truncated one is refused.
  ASSERT_OK_AND_ASSIGN(auto damaged, WriteTableToBuffer(table));
  damaged->mutable_data()[64 + 3] ^= 0x40;
  EXPECT_FALSE(ReadTableFromBuffer(damaged).ok());
  ASSERT_OK_AND_ASSIGN(auto whole, WriteTableToBuffer(table));
  EXPECT_FALSE(ReadTableFromBuffer(Buffer::Slice(whole, 0, whole->size() - 1)).ok());
  EXPECT_FALSE(ReadTableFromBuffer(Buffer::Slice(whole, 0, 10)).ok());
}

TEST_F(TableFileTest, ImageWrittenInPlaceReadsBack) {
  // Fill an image from a table's values by hand, as the shuffle does.
  const Table table = testing::RandomTable({{"i", DataType::Int64(), 0.2},
                                            {"b", DataType::Bool(), 0.3},
                                            {"s", DataType::String(), 0.1},
                                            {"d", DataType::Float64(), 0.0},
                                            {"t", DataType::String(), 0.0}},
                                           777, 23);
  const int64_t rows = table.num_rows();
  std::vector<TableImageWriter::ColumnSizes> sizes;
  for (const auto& column : table.columns()) {
    TableImageWriter::ColumnSizes size;
    size.validity = true;  // even without nulls: Finish drops the bitmap then
    if (column.type_id() == TypeId::kString) {
      size.string_bytes = column.StringOffsets()[rows] - column.StringOffsets()[0];
    }
    sizes.push_back(size);
  }
  ASSERT_OK_AND_ASSIGN(auto writer, TableImageWriter::Make(table.schema(), rows, sizes));
  std::vector<int64_t> nulls;
  for (int c = 0; c < table.num_columns(); ++c) {
    const Column& column = table.column(c);
    nulls.push_back(column.null_count());
    for (int64_t i = 0; i < rows; ++i) {
      if (column.IsValid(i)) bitmap::SetBit(writer.validity(c), i);
    }
    if (column.type_id() == TypeId::kString) {
      int64_t* offsets = writer.offsets(c);
      offsets[0] = 0;
      for (int64_t i = 0; i < rows; ++i) {
        const auto text = column.GetString(i);
        std::memcpy(writer.values(c) + offsets[i], text.data(), text.size());
        offsets[i + 1] = offsets[i] + static_cast<int64_t>(text.size());
      }
    } else if (column.type_id() == TypeId::kBool) {
      for (int64_t i = 0; i < rows; ++i) {
        if (column.GetBool(i)) bitmap::SetBit(writer.values(c), i);
      }
    } else {
      std::memcpy(writer.values(c), column.Values<int64_t>(), static_cast<size_t>(rows * 8));
    }
  }
  ASSERT_OK_AND_ASSIGN(auto image, writer.Finish(nulls));
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFromBuffer(image));
  ExpectSame(table, back);
  EXPECT_EQ(back.column(3).validity_buffer(), nullptr) << "no nulls: no bitmap";
}

TEST_F(TableFileTest, MemoryMappedLoadDoesNotCopy) {
  Table table = testing::RandomTable(
      {{"a", DataType::Int64()}, {"s", DataType::String()}, {"f", DataType::Float64(), 0.5}},
      200000, 3);
  const std::string path = PathOf("big.drt");
  ASSERT_OK(WriteTableFile(table, path));
  const int64_t before = DefaultMemoryPool()->bytes_allocated();
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(path));
  const int64_t growth = DefaultMemoryPool()->bytes_allocated() - before;
  EXPECT_LT(growth, 4096) << "a memory-mapped load must wrap the file, not copy it";
  ExpectSame(table, back);
  // Buffers start 64-byte aligned in the mapping.
  for (const auto& column : back.columns()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(column.values_buffer()->data()) % 64, 0u);
  }
  // The mapping outlives the file name (pipeline stages delete their inputs).
  fs::remove(path);
  Column kept = back.column(1);
  back = Table();
  EXPECT_EQ(kept.GetString(5), table.column(1).GetString(5));
}

TEST_F(TableFileTest, SlicesWriteOnlyTheirRows) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.3), 2000, 8);
  const std::string full = PathOf("full.drt");
  ASSERT_OK(WriteTableFile(table, full));
  for (auto [offset, length] : {std::pair<int64_t, int64_t>{1, 500}, {13, 1987}, {1999, 1},
                                {700, 0}, {64, 128}, {3, 9}}) {
    SCOPED_TRACE(offset);
    Table slice = table.Slice(offset, length);
    const std::string path = PathOf("slice.drt");
    ASSERT_OK(WriteTableFile(slice, path));
    ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(path));
    ExpectSame(slice, back);
    for (const auto& column : back.columns()) EXPECT_EQ(column.offset(), 0);
    if (length <= 500) {
      EXPECT_LT(fs::file_size(path), fs::file_size(full) / 2);
    }
  }
  // Slices of slices, with zstd.
  Table inner = table.Slice(5, 1000).Slice(3, 400);
  TableFileWriteOptions zstd;
  zstd.compression = TableFileCompression::kZstd;
  ASSERT_OK(WriteTableFile(inner, PathOf("inner.drt"), zstd));
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(PathOf("inner.drt")));
  ExpectSame(inner, back);
}

TEST_F(TableFileTest, EmptyTablesAndNoColumns) {
  Table empty = Table::Empty(testing::RandomTable(testing::AllTypesSpec(), 1, 1).schema());
  ASSERT_OK(WriteTableFile(empty, PathOf("empty.drt")));
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(PathOf("empty.drt")));
  ExpectSame(empty, back);
  EXPECT_EQ(back.num_rows(), 0);

  ASSERT_OK_AND_ASSIGN(Table no_columns, Table::Make(Schema(), {}, 12));
  ASSERT_OK(WriteTableFile(no_columns, PathOf("none.drt")));
  ASSERT_OK_AND_ASSIGN(Table back2, ReadTableFile(PathOf("none.drt")));
  EXPECT_EQ(back2.num_columns(), 0);
  EXPECT_EQ(back2.num_rows(), 12);

  ASSERT_OK_AND_ASSIGN(Table nothing, Table::Make(Schema(), {}, 0));
  ASSERT_OK(WriteTableFile(nothing, PathOf("nothing.drt")));
  ASSERT_OK_AND_ASSIGN(Table back3, ReadTableFile(PathOf("nothing.drt")));
  EXPECT_EQ(back3.num_rows(), 0);
}

TEST_F(TableFileTest, InfoReadsSchemaAndRows) {
  Table table = testing::RandomTable(testing::AllTypesSpec(), 77, 2);
  ASSERT_OK(WriteTableFile(table, PathOf("t.drt")));
  ASSERT_OK_AND_ASSIGN(TableFileInfo info, ReadTableFileInfo(PathOf("t.drt")));
  EXPECT_TRUE(info.schema == table.schema());
  EXPECT_EQ(info.num_rows, 77);
  EXPECT_EQ(info.version, kTableFileVersion);
  EXPECT_EQ(info.file_size, static_cast<int64_t>(fs::file_size(PathOf("t.drt"))));
}

TEST_F(TableFileTest, EveryFlippedByteIsCaught) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.2), 300, 4);
  const std::string path = PathOf("t.drt");
  ASSERT_OK(WriteTableFile(table, path));
  const std::vector<char> good = ReadBytes(path);
  const std::string bad_path = PathOf("bad.drt");
  // Every byte of the file, header, data, padding and metadata, is covered by a checksum or
  // by a structural check: flip bytes at a stride through all of it.
  int caught = 0;
  for (size_t position = 0; position < good.size(); position += 7) {
    std::vector<char> bytes = good;
    bytes[position] = static_cast<char>(bytes[position] ^ 0x10);
    WriteBytes(bad_path, bytes);
    auto result = ReadTableFile(bad_path);
    EXPECT_FALSE(result.ok()) << "flip at byte " << position << " went unnoticed";
    if (!result.ok()) {
      ++caught;
      const std::string& message = result.status().message();
      EXPECT_NE(message.find(bad_path), std::string::npos) << message;
      if (position >= 64) {
        EXPECT_NE(message.find("checksum mismatch"), std::string::npos)
            << "at byte " << position << ": " << message;
      }
    }
  }
  EXPECT_GT(caught, 100);
  // A flip in the data names the column.
  std::vector<char> bytes = good;
  bytes[64 + 3] ^= 1;
  WriteBytes(bad_path, bytes);
  EXPECT_NE(ErrorOf(ReadTableFile(bad_path)).find("column '"), std::string::npos);
  // Verification can be skipped: the data flip then goes through.
  TableFileReadOptions trusting;
  trusting.verify_checksums = false;
  EXPECT_TRUE(ReadTableFile(bad_path, trusting).ok());
}

TEST_F(TableFileTest, TruncationNamesTheByte) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.2), 100, 5);
  const std::string path = PathOf("t.drt");
  ASSERT_OK(WriteTableFile(table, path));
  const std::vector<char> good = ReadBytes(path);
  for (size_t keep : {size_t{0}, size_t{5}, size_t{40}, size_t{64}, size_t{1000},
                      good.size() / 2, good.size() - 1}) {
    SCOPED_TRACE(keep);
    WriteBytes(PathOf("cut.drt"), std::vector<char>(good.begin(), good.begin() + keep));
    const std::string message = ErrorOf(ReadTableFile(PathOf("cut.drt")));
    if (keep == 0) {
      EXPECT_NE(message.find("not a deeprc table file"), std::string::npos) << message;
    } else {
      EXPECT_NE(message.find("truncated at byte " + std::to_string(keep)), std::string::npos)
          << message;
    }
    EXPECT_NE(message.find("cut.drt"), std::string::npos);
  }
  // Extra bytes at the end are also refused.
  std::vector<char> longer = good;
  longer.push_back('x');
  WriteBytes(PathOf("long.drt"), longer);
  EXPECT_NE(ErrorOf(ReadTableFile(PathOf("long.drt"))).find("unexpected bytes"),
            std::string::npos);
}

TEST_F(TableFileTest, WrongMagicAndVersion) {
  WriteBytes(PathOf("data.csv"), {'a', ',', 'b', '\n', '1', ',', '2', '\n'});
  EXPECT_FALSE(IsTableFile(PathOf("data.csv")));
  std::string message = ErrorOf(ReadTableFile(PathOf("data.csv")));
  EXPECT_NE(message.find("is not a deeprc table file"), std::string::npos) << message;
  EXPECT_NE(message.find("data.csv"), std::string::npos);

  Table table = testing::RandomTable(testing::AllTypesSpec(), 10, 6);
  ASSERT_OK(WriteTableFile(table, PathOf("t.drt")));
  std::vector<char> bytes = ReadBytes(PathOf("t.drt"));
  bytes[8] = 7;  // version field
  WriteBytes(PathOf("future.drt"), bytes);
  message = ErrorOf(ReadTableFile(PathOf("future.drt")));
  EXPECT_NE(message.find("version 7 unsupported (this build reads " +
                         std::to_string(kTableFileVersion) + ")"),
            std::string::npos)
      << message;
  EXPECT_FALSE(ReadTableFileInfo(PathOf("future.drt")).ok());

  message = ErrorOf(ReadTableFile(PathOf("missing.drt")));
  EXPECT_NE(message.find("missing.drt"), std::string::npos) << message;
  EXPECT_FALSE(IsTableFile(PathOf("missing.drt")));
}

TEST_F(TableFileTest, WritesAreAtomic) {
  Table first = testing::RandomTable(testing::AllTypesSpec(), 50, 1);
  Table second = testing::RandomTable(testing::AllTypesSpec(), 70, 2);
  const std::string path = PathOf("t.drt");
  ASSERT_OK(WriteTableFile(first, path));
  // A reader holding the old file keeps its data when the file is replaced.
  ASSERT_OK_AND_ASSIGN(Table old_view, ReadTableFile(path));
  ASSERT_OK(WriteTableFile(second, path));
  ExpectSame(first, old_view);
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(path));
  ExpectSame(second, back);
  EXPECT_EQ(Listing(), std::vector<std::string>{"t.drt"}) << "no temporary file stays behind";
  // A write that cannot happen leaves nothing.
  Status status = WriteTableFile(first, PathOf("no/such/folder/t.drt"));
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no/such/folder/t.drt"), std::string::npos);
  EXPECT_EQ(Listing(), std::vector<std::string>{"t.drt"});
}

// More than 2 GiB of string bytes (offsets beyond 32 bits). Slow: only with DEEPRC_LONG_TESTS=1.
TEST_F(TableFileTest, HugeStringColumn) {
  const char* long_tests = std::getenv("DEEPRC_LONG_TESTS");
  if (long_tests == nullptr || std::string(long_tests) != "1") {
    GTEST_SKIP() << "set DEEPRC_LONG_TESTS=1 to write and read a 2.2 GiB string column";
  }
  const int64_t rows = 2300;
  const std::string piece(1 << 20, 'q');  // 1 MiB per row: 2.25 GiB in total
  StringBuilder builder;
  ASSERT_OK(builder.Reserve(rows, rows * static_cast<int64_t>(piece.size())));
  for (int64_t i = 0; i < rows; ++i) {
    if (i % 100 == 7) {
      ASSERT_OK(builder.AppendNull());
    } else {
      std::string value = piece;
      value[0] = static_cast<char>('a' + i % 26);
      ASSERT_OK(builder.Append(value));
    }
  }
  ASSERT_OK_AND_ASSIGN(Column column, builder.Finish());
  ASSERT_GT(column.StringOffsets()[rows], int64_t{1} << 31);
  ASSERT_OK_AND_ASSIGN(Table table, Table::Make(Schema({{"s", DataType::String()}}), {column}));
  const std::string path = PathOf("huge.drt");
  ASSERT_OK(WriteTableFile(table.Slice(1, rows - 1), path));
  ASSERT_OK_AND_ASSIGN(Table back, ReadTableFile(path));
  ASSERT_EQ(back.num_rows(), rows - 1);
  for (int64_t i = 0; i < rows - 1; ++i) {
    ASSERT_EQ(back.column(0).IsNull(i), column.IsNull(i + 1)) << i;
    if (column.IsValid(i + 1)) {
      ASSERT_EQ(back.column(0).GetString(i), column.GetString(i + 1));
    }
  }
}

}  // namespace
}  // namespace deeprc
