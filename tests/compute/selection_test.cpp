// FilterByMask against a row-by-row reference: masks with nulls, slices at every bit offset,
// lengths around word boundaries, every type, 1 to 4 threads.
#include <optional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::compute {
namespace {

std::vector<std::optional<bool>> RandomMask(int64_t length, double keep, std::mt19937_64& rng) {
  std::vector<std::optional<bool>> mask;
  std::uniform_real_distribution<double> unit(0, 1);
  for (int64_t i = 0; i < length; ++i) {
    const double draw = unit(rng);
    if (draw < 0.1) {
      mask.push_back(std::nullopt);
    } else {
      mask.push_back(unit(rng) < keep);
    }
  }
  return mask;
}

// The kept rows, one by one: true and not null.
std::vector<int64_t> KeptRows(const std::vector<std::optional<bool>>& mask, int64_t offset,
                              int64_t length) {
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < length; ++i) {
    const auto& value = mask[static_cast<size_t>(offset + i)];
    if (value.has_value() && *value) rows.push_back(i);
  }
  return rows;
}

TEST(FilterByMask, MatchesRowByRowReference) {
  std::mt19937_64 rng(7);
  for (const int64_t length : {0, 1, 63, 64, 65, 127, 1000, 70000}) {
    const Table table = testing::RandomTable(testing::AllTypesSpec(), length + 9, 100 + length);
    for (const double keep : {0.0, 0.3, 1.0}) {
      const auto mask_values = RandomMask(length + 9, keep, rng);
      ASSERT_OK_AND_ASSIGN(Column whole_mask, MakeBoolColumn(mask_values));
      for (const int64_t offset : {0, 1, 3, 8, 9}) {
        const Column mask = whole_mask.Slice(offset, length);
        const Table input = table.Slice(offset, length);
        ASSERT_OK_AND_ASSIGN(Table expected, Take(input, KeptRows(mask_values, offset, length), 1));
        for (const int threads : {1, 2, 4}) {
          ASSERT_OK_AND_ASSIGN(Table filtered, FilterByMask(input, mask, threads));
          EXPECT_TRUE(testing::TablesEqualOrdered(expected, filtered))
              << "length " << length << " keep " << keep << " offset " << offset << " threads "
              << threads;
        }
      }
    }
  }
}

TEST(FilterByMask, RejectsAMaskOfTheWrongTypeOrLength) {
  const Table table = testing::RandomTable(testing::AllTypesSpec(), 10, 1);
  ASSERT_OK_AND_ASSIGN(Column short_mask, MakeBoolColumn({true, false}));
  EXPECT_FALSE(FilterByMask(table, short_mask, 1).ok());
  EXPECT_FALSE(FilterByMask(table, table.column(1), 1).ok());
}

}  // namespace
}  // namespace deeprc::compute
