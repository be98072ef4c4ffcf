#include "deeprc/table/arrow_c.h"

#include <cstring>

#include <gtest/gtest.h>

#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc {
namespace {

using arrow::ExportColumn;
using arrow::ExportTable;
using arrow::ImportColumn;
using arrow::ImportTable;

// A hand-made producer, as a foreign library would be: buffers it owns, and a release callback
// that counts its calls.
struct ForeignArray {
  int release_calls = 0;
  std::vector<const void*> buffers;
  ArrowArray array{};
  ArrowSchema schema{};
  std::string format;
  std::string name = "x";

  static void Release(ArrowArray* array) {
    auto* self = static_cast<ForeignArray*>(array->private_data);
    ++self->release_calls;
    array->release = nullptr;
  }
  static void ReleaseSchema(ArrowSchema* schema) { schema->release = nullptr; }

  void Set(std::string format_string, int64_t length, int64_t null_count, int64_t offset,
           std::vector<const void*> buffer_list) {
    format = std::move(format_string);
    buffers = std::move(buffer_list);
    array = {};
    array.length = length;
    array.null_count = null_count;
    array.offset = offset;
    array.n_buffers = static_cast<int64_t>(buffers.size());
    array.buffers = buffers.data();
    array.release = Release;
    array.private_data = this;
    schema = {};
    schema.format = format.c_str();
    schema.name = name.c_str();
    schema.flags = ARROW_FLAG_NULLABLE;
    schema.release = ReleaseSchema;
  }
};

TEST(ArrowCTest, FormatStrings) {
  EXPECT_EQ(arrow::FormatString(DataType::Int64()), "l");
  EXPECT_EQ(arrow::FormatString(DataType::UInt8()), "C");
  EXPECT_EQ(arrow::FormatString(DataType::String()), "U");
  EXPECT_EQ(arrow::FormatString(DataType::Date32()), "tdD");
  EXPECT_EQ(arrow::FormatString(DataType::Timestamp(TimeUnit::kMilli)), "tsm:");
  EXPECT_EQ(arrow::FormatString(DataType::Timestamp(TimeUnit::kNano, "Europe/Paris")),
            "tsn:Europe/Paris");
  for (const char* format : {"b", "c", "C", "s", "S", "i", "I", "l", "L", "f", "g", "U", "tdD",
                             "tss:", "tsm:+02:00", "tsu:UTC", "tsn:"}) {
    ASSERT_OK_AND_ASSIGN(DataType type, arrow::TypeFromFormat(format));
    EXPECT_EQ(arrow::FormatString(type), format);
  }
  auto unsupported = arrow::TypeFromFormat("+l");
  ASSERT_FALSE(unsupported.ok());
  EXPECT_NE(unsupported.status().message().find("'+l'"), std::string::npos);
  EXPECT_FALSE(arrow::TypeFromFormat("tsx:").ok());
  EXPECT_FALSE(arrow::TypeFromFormat("tdm").ok());
}

void ExpectTableRoundTrip(const Table& table) {
  ArrowArray array;
  ArrowSchema schema;
  ASSERT_OK(ExportTable(table, &array, &schema));
  EXPECT_STREQ(schema.format, "+s");
  ASSERT_EQ(schema.n_children, table.num_columns());
  ASSERT_EQ(array.n_children, table.num_columns());
  EXPECT_EQ(array.length, table.num_rows());
  for (int i = 0; i < table.num_columns(); ++i) {
    EXPECT_EQ(schema.children[i]->name, table.schema().field(i).name);
    EXPECT_EQ(schema.children[i]->format, arrow::FormatString(table.schema().field(i).type));
    EXPECT_EQ(array.children[i]->offset, table.column(i).offset());
    EXPECT_EQ(array.children[i]->null_count, table.column(i).null_count());
  }
  ASSERT_OK_AND_ASSIGN(Table back, ImportTable(&array, &schema));
  EXPECT_EQ(array.release, nullptr) << "import must move the array";
  schema.release(&schema);
  EXPECT_EQ(schema.release, nullptr);
  EXPECT_TRUE(back.schema() == table.schema());
  EXPECT_TRUE(testing::TablesEqualOrdered(table, back));
  EXPECT_TRUE(back.Equals(table));
  // Zero copy both ways: the values the imported columns read are the original memory.
  for (int i = 0; i < table.num_columns(); ++i) {
    if (table.num_rows() == 0) continue;
    EXPECT_EQ(back.column(i).values_buffer()->data(), table.column(i).values_buffer()->data())
        << table.schema().field(i).name;
  }
}

TEST(ArrowCTest, RoundTripEveryTypeWithNulls) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.2), 1000, 7);
  ExpectTableRoundTrip(table);
}

TEST(ArrowCTest, RoundTripSlicesWithOddOffsets) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.3), 500, 11);
  for (auto [offset, length] : {std::pair<int64_t, int64_t>{1, 100}, {13, 487}, {499, 1},
                                {250, 0}, {7, 64}}) {
    SCOPED_TRACE(offset);
    Table slice = table.Slice(offset, length);
    ExpectTableRoundTrip(slice);
    // Per column, too.
    for (int i = 0; i < slice.num_columns(); ++i) {
      ArrowArray array;
      ArrowSchema schema;
      ASSERT_OK(ExportColumn(slice.column(i), &array, &schema, slice.schema().field(i).name));
      EXPECT_EQ(array.offset, offset);
      EXPECT_STREQ(schema.name, slice.schema().field(i).name.c_str());
      ASSERT_OK_AND_ASSIGN(Column back, ImportColumn(&array, &schema));
      schema.release(&schema);
      EXPECT_TRUE(back.Equals(slice.column(i))) << slice.schema().field(i).name;
    }
  }
}

TEST(ArrowCTest, RoundTripEmptyTables) {
  Table empty = Table::Empty(testing::RandomTable(testing::AllTypesSpec(), 1, 1).schema());
  ExpectTableRoundTrip(empty);
  ASSERT_OK_AND_ASSIGN(Table no_columns, Table::Make(Schema(), {}, 5));
  ExpectTableRoundTrip(no_columns);
  Table random_empty = testing::RandomTable(testing::AllTypesSpec(), 0, 3);
  ExpectTableRoundTrip(random_empty);
}

TEST(ArrowCTest, TimestampZoneSurvives) {
  ASSERT_OK_AND_ASSIGN(Column column, MakeColumn<int64_t>(DataType::Timestamp(TimeUnit::kNano,
                                                                              "America/New_York"),
                                                          {1, std::nullopt, 3}));
  ArrowArray array;
  ArrowSchema schema;
  ASSERT_OK(ExportColumn(column, &array, &schema, "t"));
  EXPECT_STREQ(schema.format, "tsn:America/New_York");
  EXPECT_EQ(array.null_count, 1);
  ASSERT_OK_AND_ASSIGN(Column back, ImportColumn(&array, &schema));
  schema.release(&schema);
  EXPECT_TRUE(back.type() == column.type());
  EXPECT_TRUE(back.Equals(column));
}

TEST(ArrowCTest, ExportedBuffersOutliveTheColumnUntilRelease) {
  ArrowArray array;
  ArrowSchema schema;
  {
    ASSERT_OK_AND_ASSIGN(Column column, MakeStringColumn({"alpha", std::nullopt, "γ"}));
    ASSERT_OK(ExportColumn(column, &array, &schema));
  }
  ASSERT_EQ(array.n_buffers, 3);
  const auto* offsets = static_cast<const int64_t*>(array.buffers[1]);
  const auto* bytes = static_cast<const char*>(array.buffers[2]);
  EXPECT_EQ(std::string(bytes + offsets[0], offsets[1] - offsets[0]), "alpha");
  EXPECT_EQ(std::string(bytes + offsets[2], offsets[3] - offsets[2]), "γ");
  const auto* validity = static_cast<const uint8_t*>(array.buffers[0]);
  EXPECT_FALSE(bitmap::GetBit(validity, 1));
  array.release(&array);
  EXPECT_EQ(array.release, nullptr);
  schema.release(&schema);
}

TEST(ArrowCTest, ConsumerMayMoveChildrenOut) {
  Table table = testing::RandomTable(testing::AllTypesSpec(), 50, 5);
  ArrowArray array;
  ArrowSchema schema;
  ASSERT_OK(ExportTable(table, &array, &schema));
  // Move child 3 out, as the specification allows, then release the parent.
  ArrowArray moved = *array.children[3];
  array.children[3]->release = nullptr;
  ArrowSchema moved_schema = *schema.children[3];
  schema.children[3]->release = nullptr;
  array.release(&array);
  schema.release(&schema);
  // The moved child still works on its own.
  ASSERT_OK_AND_ASSIGN(Column column, ImportColumn(&moved, &moved_schema));
  moved_schema.release(&moved_schema);
  EXPECT_TRUE(column.Equals(table.column(3)));
}

TEST(ArrowCTest, ImportDoesNotCopyAndReleasesOnceAfterTheLastBuffer) {
  alignas(64) static const int64_t values[] = {10, 20, 30, 40, 50};
  alignas(64) static const uint8_t validity[] = {0b11011};
  ForeignArray foreign;
  foreign.Set("l", 4, -1, 1, {validity, values});
  Column slice;
  {
    ASSERT_OK_AND_ASSIGN(Column column, ImportColumn(&foreign.array, &foreign.schema));
    EXPECT_EQ(foreign.array.release, nullptr);
    EXPECT_EQ(column.Values<int64_t>(), values + 1);  // pointer equality: no copy
    EXPECT_EQ(column.length(), 4);
    EXPECT_EQ(column.null_count(), 1);
    EXPECT_EQ(column.Value<int64_t>(0), 20);
    EXPECT_TRUE(column.IsNull(1));
    EXPECT_EQ(column.Value<int64_t>(3), 50);
    slice = column.Slice(2, 2);
    EXPECT_EQ(foreign.release_calls, 0);
  }
  EXPECT_EQ(foreign.release_calls, 0) << "a slice still holds the buffers";
  EXPECT_EQ(slice.Value<int64_t>(1), 50);
  slice = Column();
  EXPECT_EQ(foreign.release_calls, 1);
}

TEST(ArrowCTest, ImportTableReleasesTheParentOnce) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.2), 100, 9);
  ArrowArray array;
  ArrowSchema schema;
  ASSERT_OK(ExportTable(table, &array, &schema));
  // Interpose a counting release on the exported parent.
  static int calls = 0;
  static void (*original)(ArrowArray*) = nullptr;
  calls = 0;
  original = array.release;
  array.release = [](ArrowArray* a) {
    ++calls;
    a->release = original;
    original(a);
  };
  {
    ASSERT_OK_AND_ASSIGN(Table back, ImportTable(&array, &schema));
    Column keep = back.column(11);
    back = Table();
    EXPECT_EQ(calls, 0);
    EXPECT_TRUE(keep.Equals(table.column(11)));
  }
  EXPECT_EQ(calls, 1);
  schema.release(&schema);
}

TEST(ArrowCTest, ImportsNarrowUtf8ByWideningOffsets) {
  alignas(64) static const int32_t offsets[] = {0, 3, 3, 9, 12, 12};
  static const char bytes[] = "abcgrüßxyz";
  alignas(64) static const uint8_t validity[] = {0b11101};
  ForeignArray foreign;
  foreign.Set("u", 4, 1, 1, {validity, offsets, bytes});
  {
    ASSERT_OK_AND_ASSIGN(Column column, ImportColumn(&foreign.array, &foreign.schema));
    EXPECT_TRUE(column.type() == DataType::String());
    ASSERT_EQ(column.length(), 4);
    EXPECT_TRUE(column.IsNull(0));
    EXPECT_EQ(column.GetString(1), "grüß");
    EXPECT_EQ(column.GetString(2), "xyz");
    EXPECT_EQ(column.GetString(3), "");
    EXPECT_EQ(column.null_count(), 1);
    EXPECT_EQ(column.StringBytes(), bytes) << "string bytes are not copied";
  }
  EXPECT_EQ(foreign.release_calls, 1);
}

TEST(ArrowCTest, ImportsBoolsAndNullBitmapAbsent) {
  alignas(64) static const uint8_t bits[] = {0b10110};
  ForeignArray foreign;
  foreign.Set("b", 4, 0, 1, {nullptr, bits});
  ASSERT_OK_AND_ASSIGN(Column column, ImportColumn(&foreign.array, &foreign.schema));
  EXPECT_EQ(column.null_count(), 0);
  EXPECT_TRUE(column.GetBool(0));
  EXPECT_TRUE(column.GetBool(1));
  EXPECT_FALSE(column.GetBool(2));
  EXPECT_TRUE(column.GetBool(3));
}

TEST(ArrowCTest, RejectsMalformedInput) {
  alignas(64) static const int64_t values[] = {1, 2, 3};
  auto expect_error = [](ForeignArray& foreign, const std::string& fragment) {
    auto result = ImportColumn(&foreign.array, &foreign.schema);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.status().message().find(fragment), std::string::npos)
        << result.status().ToString();
    EXPECT_EQ(foreign.release_calls, 1) << "a failed import still releases the array it took";
  };
  {
    ForeignArray foreign;
    foreign.Set("+l", 3, 0, 0, {nullptr});
    expect_error(foreign, "'+l'");
  }
  {
    ForeignArray foreign;
    foreign.Set("tdm", 3, 0, 0, {nullptr, values});
    expect_error(foreign, "'tdm'");
  }
  {
    ForeignArray foreign;
    foreign.Set("l", 3, 0, 0, {nullptr});
    expect_error(foreign, "needs 2 buffers");
  }
  {
    ForeignArray foreign;
    foreign.Set("l", 3, 2, 0, {nullptr, values});
    expect_error(foreign, "no validity bitmap");
  }
  {
    ForeignArray foreign;
    foreign.Set("l", 3, 0, 0, {nullptr, nullptr});
    expect_error(foreign, "values buffer is null");
  }
  {
    ForeignArray foreign;
    foreign.Set("l", -1, 0, 0, {nullptr, values});
    expect_error(foreign, "negative");
  }
  {
    alignas(64) static const int64_t bad_offsets[] = {5, 2};
    ForeignArray foreign;
    foreign.Set("U", 1, 0, 0, {nullptr, bad_offsets, "abcdef"});
    expect_error(foreign, "not increasing");
  }
  // Already released input.
  ArrowArray released{};
  ArrowSchema schema{};
  EXPECT_FALSE(ImportColumn(&released, &schema).ok());
  // A table must come from a struct.
  {
    ForeignArray foreign;
    foreign.Set("l", 3, 0, 0, {nullptr, values});
    auto result = ImportTable(&foreign.array, &foreign.schema);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.status().message().find("'+s'"), std::string::npos);
    EXPECT_EQ(foreign.release_calls, 1);
  }
}

TEST(ArrowCTest, MisalignedValuesAreCopied) {
  alignas(64) static uint8_t storage[8 * 4 + 1];
  int64_t numbers[] = {4, 5, 6, 7};
  std::memcpy(storage + 1, numbers, sizeof(numbers));
  ForeignArray foreign;
  foreign.Set("l", 4, 0, 0, {nullptr, storage + 1});
  ASSERT_OK_AND_ASSIGN(Column column, ImportColumn(&foreign.array, &foreign.schema));
  EXPECT_EQ(column.Value<int64_t>(2), 6);
  EXPECT_NE(static_cast<const void*>(column.Values<int64_t>()), storage + 1);
}

}  // namespace
}  // namespace deeprc
