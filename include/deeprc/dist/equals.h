#pragma once

// Whether two distributed tables hold the same rows.

#include "deeprc/comm/communicator.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

struct EqualsOptions {
  // false: equal as multisets of rows (every row occurs as often in both; where a row sits and
  // in which order does not matter). true: the concatenations of the partitions in rank order
  // are equal row by row; the two tables may be cut into partitions differently.
  bool ordered = false;
  ShuffleOptions shuffle;
};

// Collective; every rank gets the same answer. Same schema (names and types) and the same rows;
// values compare as Column::Equals does (NaN equals NaN, nulls equal nulls).
Result<bool> Equals(comm::Communicator& comm, const Table& a, const Table& b,
                    const EqualsOptions& options = {});

}  // namespace deeprc::dist
