#pragma once

#include <string>

#include <gtest/gtest.h>

#include "deeprc/table/table.h"

namespace deeprc::testing {

// Compares two tables as multisets of rows (row order ignored): same column names, same number
// of rows, and after sorting, equal values; floating values equal within a relative tolerance.
// Column types must match unless `compare_types` is false (then values are compared as text or
// numbers). On failure the message shows the first differing rows.
::testing::AssertionResult TablesEqualUnordered(const Table& expected, const Table& actual,
                                                double tolerance = 1e-9,
                                                bool compare_types = true);
// The same, but rows must also be in the same order.
::testing::AssertionResult TablesEqualOrdered(const Table& expected, const Table& actual,
                                              double tolerance = 1e-9, bool compare_types = true);

}  // namespace deeprc::testing
