#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

struct SortKey {
  std::string column;
  bool ascending = true;
  // Nulls sort last by default (as pandas and DuckDB do), first with nulls_first, in either
  // direction. NaN is a value above +inf (as in DuckDB and PostgreSQL): the last value ascending,
  // the first value descending; all NaNs are equal, and -0.0 equals 0.0. Strings order by the
  // bytes of their UTF-8 form (that is, by code point).
  bool nulls_first = false;
};

struct SortOptions {
  std::vector<SortKey> keys;
  int threads = 0;
};

// The row order that sorts the table; stable (equal keys keep their input order).
Result<std::vector<int64_t>> SortIndices(const Table& table, const SortOptions& options);
Result<Table> Sort(const Table& table, const SortOptions& options);

}  // namespace deeprc::compute
