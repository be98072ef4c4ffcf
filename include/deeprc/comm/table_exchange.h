#pragma once

// Tables over a communicator. A table travels as whole column buffers in the layout of the
// binary table file (table/table_file.h): a header, each buffer aligned to 64 bytes, metadata
// with the schema — no per-row work on either side, and the receiver's columns point into the
// received buffer without a copy (unless the sender compressed).

#include <memory>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/table/table.h"
#include "deeprc/table/table_file.h"

namespace deeprc::comm {

struct ExchangeOptions {
  // Per-buffer lz4/zstd (a buffer that does not shrink travels as it is). Pays on slow links and
  // compressible columns; on one machine the copy through shared memory is usually cheaper.
  TableFileCompression compression = TableFileCompression::kNone;
  int threads = 0;
};

// The table as one contiguous message, and back.
Result<BufferPtr> SerializeTable(const Table& table, const ExchangeOptions& options = {});
Result<Table> DeserializeTable(BufferPtr message, int threads = 0);

Status SendTable(Communicator& comm, int destination, int tag, const Table& table,
                 const ExchangeOptions& options = {});
Result<Table> ReceiveTable(Communicator& comm, int source, int tag, int threads = 0);

// `parts[d]` goes to rank d; returns what every rank sent here, in rank order (one table per
// source; all share `parts`' schema).
Result<std::vector<Table>> AllToAllTables(Communicator& comm, const std::vector<Table>& parts,
                                          const ExchangeOptions& options = {});

// The root gets every rank's table in rank order; the others get an empty vector.
Result<std::vector<Table>> GatherTables(Communicator& comm, int root, const Table& table,
                                        const ExchangeOptions& options = {});
Result<std::vector<Table>> AllGatherTables(Communicator& comm, const Table& table,
                                           const ExchangeOptions& options = {});

// The root's table on every rank (`table` is read on the root only).
Result<Table> BroadcastTable(Communicator& comm, int root, const Table& table,
                             const ExchangeOptions& options = {});

}  // namespace deeprc::comm
