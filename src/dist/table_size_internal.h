#pragma once

#include <cstdint>

#include "deeprc/table/table.h"

namespace deeprc::dist {

// Bytes the table's rows occupy as columns (values, string offsets and bytes, validity bits):
// about what serializing it sends. Slices count only their rows.
int64_t TableBytes(const Table& table);

}  // namespace deeprc::dist
