#pragma once

// Where the rows of a distributed table are, and moving them in global order. The global order
// of a distributed table is rank order, then row order within a rank: global row g is row
// g - offsets[r] of the rank r with offsets[r] <= g < offsets[r + 1].
//
// Every function is a collective: all ranks call it, in the same order, with the same
// arguments (except their own partition). Each returns this rank's partition of the result.
// Broadcasting a table needs no wrapper: comm::BroadcastTable (comm/table_exchange.h).

#include <cstdint>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

struct RowCounts {
  std::vector<int64_t> counts;   // rows per rank
  std::vector<int64_t> offsets;  // exclusive scan of counts, with size() + 1 entries
  int64_t total = 0;
};

// The row count of every rank (one AllGather of 8 bytes per rank).
Result<RowCounts> GlobalRowCounts(comm::Communicator& comm, int64_t local_rows);
Result<RowCounts> GlobalRowCounts(comm::Communicator& comm, const Table& table);

// Rows per rank when `total` rows are spread evenly: total / ranks each, and one more on the
// first total % ranks ranks.
std::vector<int64_t> EvenCounts(int64_t total, int ranks);

// Moves rows so that rank r holds `counts[r]` rows (counts sum to the global row count), keeping
// the global order. When no row has to move, the table is returned as it is; otherwise the rows
// travel through dist::ExchangeSlices (received in place; `options.threads` is used, the
// compression is not).
Result<Table> Repartition(comm::Communicator& comm, const Table& table,
                          const std::vector<int64_t>& counts,
                          const comm::ExchangeOptions& options = {});
// Evenly: EvenCounts(global rows, ranks).
Result<Table> Repartition(comm::Communicator& comm, const Table& table,
                          const comm::ExchangeOptions& options = {});

// Global rows [offset, offset + length) (clamped to the table), left where they are: each rank
// returns its part of the range (a zero-copy slice; ranks outside the range return no rows).
// Only the row counts travel.
Result<Table> Slice(comm::Communicator& comm, const Table& table, int64_t offset, int64_t length);
// The first / last n global rows (n >= 0), left where they are.
Result<Table> Head(comm::Communicator& comm, const Table& table, int64_t n);
Result<Table> Tail(comm::Communicator& comm, const Table& table, int64_t n);

// The concatenation of all partitions in rank order: on `root` only (the others return an empty
// table of the same schema), or on every rank.
Result<Table> Gather(comm::Communicator& comm, const Table& table, int root = 0,
                     const comm::ExchangeOptions& options = {});
Result<Table> AllGather(comm::Communicator& comm, const Table& table,
                        const comm::ExchangeOptions& options = {});

}  // namespace deeprc::dist
