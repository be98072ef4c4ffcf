#pragma once

// Moving rows between ranks: the first step of every hash-based distributed operator.

#include <cstdint>
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
  int threads = 0;
};

// Rank of every row: hash of `key_columns` (the same hash on every rank, for every key type,
// nulls hashed as a value of their own) modulo comm.size(). Rows with equal keys go to the same
// rank, whatever rank they start on.
Result<std::vector<int32_t>> HashPartitionTargets(const Table& table,
                                                  const std::vector<int>& key_columns,
                                                  int ranks, int threads = 0);

// Sends row i to rank targets[i] (0 <= targets[i] < comm.size()); returns the rows this rank
// received. Row order: by source rank, and within one source in the source's order.
Result<Table> Exchange(comm::Communicator& comm, const Table& table,
                       const std::vector<int32_t>& targets, const ShuffleOptions& options = {});

// Hash-partitions on `key_columns` and exchanges: afterwards all rows with equal keys are on
// one rank.
Result<Table> Shuffle(comm::Communicator& comm, const Table& table,
                      const std::vector<int>& key_columns, const ShuffleOptions& options = {});

}  // namespace deeprc::dist
