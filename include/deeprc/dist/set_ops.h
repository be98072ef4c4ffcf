#pragma once

// Distributed unique and set operations, with compute/set_ops.h's semantics (nulls equal
// nulls). Every rank passes its partitions and gets its partition of the result; the rows of all
// result partitions together are the local operator's rows on the concatenated partitions (row
// order aside).

#include "deeprc/comm/communicator.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

// Collective. keep first/last: duplicates are dropped on each rank, the rest shuffled on the
// subset columns and dropped again; the shuffle keeps source-rank order, so the row kept is the
// first (last) of the concatenated input. keep none: rows are shuffled first.
Result<Table> Unique(comm::Communicator& comm, const Table& table,
                     const compute::UniqueOptions& options = {},
                     const ShuffleOptions& shuffle = {});

// Collective. distinct: both sides deduplicated locally, shuffled on all columns, then the local
// operator; UNION ALL moves no rows (each rank's rows of both sides stay where they are).
Result<Table> Union(comm::Communicator& comm, const Table& a, const Table& b, bool distinct = true,
                    const ShuffleOptions& shuffle = {});
// Collective: both sides deduplicated locally, shuffled on all columns, then the local operator.
Result<Table> Intersect(comm::Communicator& comm, const Table& a, const Table& b,
                        const ShuffleOptions& shuffle = {});
Result<Table> Difference(comm::Communicator& comm, const Table& a, const Table& b,
                         const ShuffleOptions& shuffle = {});

}  // namespace deeprc::dist
