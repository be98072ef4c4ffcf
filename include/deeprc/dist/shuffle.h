#pragma once

// Moving rows between ranks: the first step of every hash-based distributed operator.

#include <cstdint>
#include <span>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

struct ShuffleOptions {
  comm::ExchangeOptions exchange;
  // Rows are partitioned and exchanged in chunks of about this many bytes per rank, so that
  // partitioning one chunk overlaps sending the previous one and memory stays bounded.
  int64_t chunk_bytes = int64_t{64} << 20;
  // Rounds of fewer bytes than this (on the rank with the most) travel as one message per peer
  // and are copied into place on arrival; larger rounds are received in place, one all-to-all
  // per column buffer (see src/dist/shuffle.cpp). 0: always in place.
  int64_t fuse_below_bytes = int64_t{4} << 20;
  int threads = 0;
};

// Rank of every row: hash of `key_columns` (the same hash on every rank, for every key type,
// nulls hashed as a value of their own) modulo comm.size(). Rows with equal keys go to the same
// rank, whatever rank they start on.
Result<std::vector<int32_t>> HashPartitionTargets(const Table& table,
                                                  const std::vector<int>& key_columns,
                                                  int ranks, int threads = 0);

// Sends row i to rank targets[i] (0 <= targets[i] < comm.size()); returns the rows this rank
// received. Row order: by source rank, and within one source in the source's order. Every rank
// passes a table of the same schema. The received bytes land in the output columns' buffers
// (no concatenation); `options.exchange` is not used (nothing is compressed).
Result<Table> Exchange(comm::Communicator& comm, const Table& table,
                       std::span<const int32_t> targets, const ShuffleOptions& options = {});

// Sends rows [bounds[d], bounds[d + 1]) to rank d: `bounds` holds comm.size() + 1 row numbers,
// non-decreasing from 0 to table.num_rows(). The exchange of sort and repartition: the same
// order and guarantees as Exchange, the values moving as whole runs.
Result<Table> ExchangeSlices(comm::Communicator& comm, const Table& table,
                             const std::vector<int64_t>& bounds,
                             const ShuffleOptions& options = {});

// Hash-partitions on `key_columns` and exchanges: afterwards all rows with equal keys are on
// one rank.
Result<Table> Shuffle(comm::Communicator& comm, const Table& table,
                      const std::vector<int>& key_columns, const ShuffleOptions& options = {});

}  // namespace deeprc::dist
