#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

// Gathers rows by index. A negative index yields a null row (outer joins use this).
// Indices must be < the row count; they are checked only in debug builds.
Result<Column> Take(const Column& column, std::span<const int64_t> indices);
// Columns are gathered in parallel, and long index lists in parallel ranges.
Result<Table> Take(const Table& table, std::span<const int64_t> indices, int threads = 0);

// Rows where mask is true (and not null); mask is a bool column of the table's length.
Result<Table> FilterByMask(const Table& table, const Column& mask, int threads = 0);

// Appends columns of one type / tables of one schema, in order.
Result<Column> Concatenate(const std::vector<Column>& columns);
Result<Table> Concatenate(const std::vector<Table>& tables, int threads = 0);

}  // namespace deeprc::compute
