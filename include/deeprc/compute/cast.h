#pragma once

#include "deeprc/core/result.h"
#include "deeprc/table/column.h"

namespace deeprc::compute {

// Converts a column to another type. Nulls stay nulls. Supported:
//  - the same type: the column itself (no copy);
//  - numbers (integers, floating point) to numbers, and bool to numbers (0/1). The cast is safe:
//    an integer that does not fit the target range, a floating value that is not integral, not
//    finite or out of range for an integer target, an integer that a floating target cannot hold
//    exactly (e.g. int64 above 2^53 to float64), and a finite float64 too large for float32 are
//    errors (TypeError naming the value, its row and both types). float64 to float32 rounds to
//    nearest otherwise; NaN and infinities carry over between floating types;
//  - numbers, bool, date32 and timestamps to string: integers in decimal, floating values in the
//    shortest form that reads back exactly, bool as true/false, dates as YYYY-MM-DD, timestamps
//    as ISO 8601 (with "Z" when the type has a time zone).
// Anything else is NotImplemented.
Result<Column> Cast(const Column& column, const DataType& type);

}  // namespace deeprc::compute
