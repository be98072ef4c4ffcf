#pragma once

#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

enum class Keep { kFirst, kLast, kNone };

struct UniqueOptions {
  // Columns that decide whether two rows are duplicates (empty: all columns).
  std::vector<std::string> subset;
  // Which of the duplicates stays: the first, the last, or none of them (pandas' keep=False).
  Keep keep = Keep::kFirst;
  int threads = 0;
};

// Drops duplicate rows; the rows kept stay in input order. Nulls equal nulls here.
Result<Table> Unique(const Table& table, const UniqueOptions& options = {});

// Set operations on whole rows of two tables with the same schema. Nulls equal nulls.
// Union: distinct rows of both (distinct = true), or all rows of both (UNION ALL).
Result<Table> Union(const Table& a, const Table& b, bool distinct = true, int threads = 0);
// Distinct rows of a that are also in b.
Result<Table> Intersect(const Table& a, const Table& b, int threads = 0);
// Distinct rows of a that are not in b.
Result<Table> Difference(const Table& a, const Table& b, int threads = 0);

}  // namespace deeprc::compute
