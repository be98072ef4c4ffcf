#pragma once

// Cylon's conformance data, a copy of ../shared/data/cylon in tests/data/cylon (Apache-2.0,
// LICENSE.cylon beside it), and what its files need before they compare with deeprc's output.

#include <string>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::testing {

// The folder, ending in '/'.
const std::string& CylonDataDirectory();

// Cylon's sales data writes "Order Date" as M/D/YYYY and its expected output as YYYY-MM-DD: the
// column as date32 (a table whose column is not text is returned as it is).
Result<Table> NormalizeOrderDate(const Table& table);

}  // namespace deeprc::testing
