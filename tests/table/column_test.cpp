#include "deeprc/table/column.h"

#include <gtest/gtest.h>

#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "deeprc/table/table.h"
#include "deeprc/table/temporal.h"
#include "testing/assertions.h"

namespace deeprc {
namespace {

TEST(ColumnTest, BuildsNumbersWithNullsAndSlicesWithoutCopying) {
  ASSERT_OK_AND_ASSIGN(Column column,
                       MakeColumn<int64_t>(DataType::Int64(), {1, std::nullopt, 3, 4, std::nullopt}));
  EXPECT_EQ(column.length(), 5);
  EXPECT_EQ(column.null_count(), 2);
  EXPECT_TRUE(column.IsNull(1));
  EXPECT_EQ(column.Value<int64_t>(3), 4);
  Column slice = column.Slice(2, 3);
  EXPECT_EQ(slice.null_count(), 1);
  EXPECT_EQ(slice.Value<int64_t>(0), 3);
  EXPECT_TRUE(slice.IsNull(2));
  EXPECT_EQ(slice.values_buffer().get(), column.values_buffer().get());
}

TEST(ColumnTest, StringsAndBools) {
  ASSERT_OK_AND_ASSIGN(Column strings, MakeStringColumn({"grüß", std::nullopt, "", "日本"}));
  EXPECT_EQ(strings.GetString(0), "grüß");
  EXPECT_TRUE(strings.IsNull(1));
  EXPECT_EQ(strings.GetString(2), "");
  EXPECT_EQ(strings.Slice(3, 1).GetString(0), "日本");
  ASSERT_OK_AND_ASSIGN(Column bools, MakeBoolColumn({true, false, std::nullopt, true}));
  EXPECT_TRUE(bools.GetBool(0));
  EXPECT_FALSE(bools.GetBool(1));
  EXPECT_TRUE(bools.IsNull(2));
  EXPECT_EQ(bools.Slice(3, 1).FormatValue(0), "true");
}

TEST(ColumnTest, TemporalFormatting) {
  EXPECT_EQ(temporal::FormatDate(0), "1970-01-01");
  EXPECT_EQ(temporal::ParseDate("2024-02-29").value(), 19782);
  EXPECT_FALSE(temporal::ParseDate("2023-02-29").has_value());
  auto ts = temporal::ParseTimestamp("2024-01-02T03:04:05.5+01:00", TimeUnit::kMilli);
  ASSERT_TRUE(ts.has_value());
  EXPECT_EQ(temporal::FormatTimestamp(*ts, TimeUnit::kMilli, true), "2024-01-02T02:04:05.500Z");
  EXPECT_EQ(temporal::FormatTimestamp(-1, TimeUnit::kSecond, false), "1969-12-31T23:59:59");
}

TEST(TableTest, MakeChecksAndTakeConcat) {
  ASSERT_OK_AND_ASSIGN(Column a, MakeColumn<int64_t>(DataType::Int64(), {1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(Column b, MakeStringColumn({"x", std::nullopt, "z"}));
  Schema schema({{"a", DataType::Int64()}, {"b", DataType::String()}});
  ASSERT_OK_AND_ASSIGN(Table table, Table::Make(schema, {a, b}));
  EXPECT_FALSE(Table::Make(schema, {b, a}).ok());
  std::vector<int64_t> indices = {2, -1, 0, 1};
  ASSERT_OK_AND_ASSIGN(Table taken, compute::Take(table, indices));
  EXPECT_EQ(taken.num_rows(), 4);
  EXPECT_EQ(taken.column(0).Value<int64_t>(0), 3);
  EXPECT_TRUE(taken.column(0).IsNull(1));
  EXPECT_EQ(taken.column(1).GetString(2), "x");
  EXPECT_TRUE(taken.column(1).IsNull(3));
  ASSERT_OK_AND_ASSIGN(Table both, compute::Concatenate({table.Slice(1, 2), taken}));
  EXPECT_EQ(both.num_rows(), 6);
  EXPECT_EQ(both.column(1).GetString(1), "z");
  EXPECT_EQ(both.column(1).GetString(2), "z");
  EXPECT_NE(table.ToString().find("[3 rows x 2 columns]"), std::string::npos);
}

}  // namespace
}  // namespace deeprc
