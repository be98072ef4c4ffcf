#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "deeprc/table/table.h"

namespace deeprc::testing {

struct RandomColumnSpec {
  std::string name;
  DataType type;
  double null_fraction = 0.1;
  // Number of distinct non-null values drawn from (0: about one per row). Small values give
  // many duplicates.
  int64_t cardinality = 0;
  // Fraction of rows that all take one "hot" value (0.9 = 90% of rows on one key).
  double skew = 0.0;
};

// Deterministic for a seed. Strings mix ASCII, accented Latin, CJK, emoji and the empty string;
// floats are multiples of 1/8 (exact in binary, so sums do not depend on order); no NaN.
Table RandomTable(const std::vector<RandomColumnSpec>& columns, int64_t rows, uint64_t seed);

// One column per type of the engine, named after the type (bool, int8, ..., string, date32,
// timestamp_ms), each with nulls; for tests that must cover every type.
std::vector<RandomColumnSpec> AllTypesSpec(double null_fraction = 0.1, int64_t cardinality = 0);

}  // namespace deeprc::testing
