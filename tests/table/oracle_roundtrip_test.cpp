// The oracle and the comparison helpers are themselves checked here: a random table of every
// type makes the round trip through pandas unchanged.
#include <gtest/gtest.h>

#include "testing/assertions.h"
#include "testing/oracle.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc {
namespace {

TEST(OracleRoundTripTest, EveryTypeSurvivesPandas) {
  Table table = testing::RandomTable(testing::AllTypesSpec(0.2, 50), 300, 42);
  ASSERT_OK_AND_ASSIGN(Table back,
                       testing::RunPandasOracle({{"op", "identity"}}, {table}, table.schema()));
  EXPECT_TRUE(testing::TablesEqualOrdered(table, back));
  EXPECT_TRUE(testing::TablesEqualUnordered(table, table.Slice(0, 300)));
  EXPECT_FALSE(testing::TablesEqualUnordered(table, table.Slice(1, 299)));
}

}  // namespace
}  // namespace deeprc
