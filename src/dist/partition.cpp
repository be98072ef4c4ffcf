// Repartition, global slices, gather: row counts first (one small AllGather), then each rank
// computes which contiguous piece of its partition goes where, so the exchange (ExchangeSlices)
// moves whole runs, receives them in place and never reorders rows.
#include "deeprc/dist/partition.h"

#include <algorithm>
#include <numeric>

#include "agreement_internal.h"
#include "deeprc/compute/selection.h"
#include "deeprc/dist/shuffle.h"

namespace deeprc::dist {

Result<RowCounts> GlobalRowCounts(comm::Communicator& comm, int64_t local_rows) {
  DEEPRC_ASSIGN_OR_RAISE(auto gathered, AllGatherInts(comm, {local_rows}));
  RowCounts out;
  out.counts.reserve(gathered.size());
  out.offsets.assign(1, 0);
  for (const auto& values : gathered) {
    out.counts.push_back(values[0]);
    out.offsets.push_back(out.offsets.back() + values[0]);
  }
  out.total = out.offsets.back();
  return out;
}

Result<RowCounts> GlobalRowCounts(comm::Communicator& comm, const Table& table) {
  return GlobalRowCounts(comm, table.num_rows());
}

std::vector<int64_t> EvenCounts(int64_t total, int ranks) {
  std::vector<int64_t> counts(ranks, total / ranks);
  for (int r = 0; r < total % ranks; ++r) ++counts[r];
  return counts;
}

Result<Table> Repartition(comm::Communicator& comm, const Table& table,
                          const std::vector<int64_t>& counts,
                          const comm::ExchangeOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(RowCounts rows, GlobalRowCounts(comm, table));
  // Every rank checks the same arguments against the same totals: they fail together.
  const int ranks = comm.size();
  if (static_cast<int>(counts.size()) != ranks) {
    return Status::Invalid("repartition: {} row counts for {} ranks", counts.size(), ranks);
  }
  int64_t wanted = 0;
  for (int64_t count : counts) {
    if (count < 0) return Status::Invalid("repartition: negative row count {}", count);
    wanted += count;
  }
  if (wanted != rows.total) {
    return Status::Invalid("repartition: the counts add up to {} rows, the table has {}", wanted,
                           rows.total);
  }
  // Target rank d receives global rows [begin[d], begin[d + 1]); this rank holds
  // [mine, mine + n).
  std::vector<int64_t> begin(ranks + 1, 0);
  for (int d = 0; d < ranks; ++d) begin[d + 1] = begin[d] + counts[d];
  const int64_t mine = rows.offsets[comm.rank()];
  const int64_t n = table.num_rows();
  std::vector<int64_t> bounds(ranks + 1);
  for (int d = 0; d <= ranks; ++d) bounds[d] = std::clamp(begin[d] - mine, int64_t{0}, n);
  // Every rank knows every rank's counts: when nothing moves, nobody exchanges (or copies).
  if (ranks == 1 || counts == rows.counts) return table;
  ShuffleOptions shuffle;
  shuffle.exchange = options;
  shuffle.threads = options.threads;
  return ExchangeSlices(comm, table, bounds, shuffle);
}

Result<Table> Repartition(comm::Communicator& comm, const Table& table,
                          const comm::ExchangeOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(
      int64_t total, comm::AllReduceValue<int64_t>(comm, table.num_rows(), comm::ReduceOp::kSum));
  return Repartition(comm, table, EvenCounts(total, comm.size()), options);
}

Result<Table> Slice(comm::Communicator& comm, const Table& table, int64_t offset, int64_t length) {
  if (offset < 0 || length < 0) {
    return Status::Invalid("slice: offset {} and length {} must not be negative", offset, length);
  }
  DEEPRC_ASSIGN_OR_RAISE(RowCounts rows, GlobalRowCounts(comm, table));
  const int64_t mine = rows.offsets[comm.rank()];
  const int64_t end = length > rows.total - offset ? rows.total : offset + length;
  const int64_t lo = std::max(offset, mine);
  const int64_t hi = std::min(end, mine + table.num_rows());
  return table.Slice(std::max<int64_t>(0, lo - mine), std::max<int64_t>(0, hi - lo));
}

Result<Table> Head(comm::Communicator& comm, const Table& table, int64_t n) {
  if (n < 0) return Status::Invalid("head: n = {} must not be negative", n);
  return Slice(comm, table, 0, n);
}

Result<Table> Tail(comm::Communicator& comm, const Table& table, int64_t n) {
  if (n < 0) return Status::Invalid("tail: n = {} must not be negative", n);
  DEEPRC_ASSIGN_OR_RAISE(RowCounts rows, GlobalRowCounts(comm, table));
  const int64_t first = std::max<int64_t>(0, rows.total - n);
  const int64_t mine = rows.offsets[comm.rank()];
  const int64_t lo = std::max(first, mine);
  const int64_t hi = mine + table.num_rows();
  return table.Slice(std::max<int64_t>(0, lo - mine), std::max<int64_t>(0, hi - lo));
}

namespace {

Result<Table> ConcatenateParts(std::vector<Table> parts, const Schema& schema, int threads) {
  std::vector<Table> nonempty;
  for (auto& part : parts) {
    if (part.num_rows() > 0) nonempty.push_back(std::move(part));
  }
  if (nonempty.empty()) return Table::Empty(schema);
  if (nonempty.size() == 1) return nonempty[0];
  return compute::Concatenate(nonempty, threads);
}

}  // namespace

Result<Table> Gather(comm::Communicator& comm, const Table& table, int root,
                     const comm::ExchangeOptions& options) {
  if (root < 0 || root >= comm.size()) {
    return Status::Invalid("gather: root {} is not a rank of {}", root, comm.size());
  }
  if (comm.size() == 1) return table;
  DEEPRC_ASSIGN_OR_RAISE(auto parts, comm::GatherTables(comm, root, table, options));
  if (comm.rank() != root) return Table::Empty(table.schema());
  return ConcatenateParts(std::move(parts), table.schema(), options.threads);
}

Result<Table> AllGather(comm::Communicator& comm, const Table& table,
                        const comm::ExchangeOptions& options) {
  if (comm.size() == 1) return table;
  DEEPRC_ASSIGN_OR_RAISE(auto parts, comm::AllGatherTables(comm, table, options));
  return ConcatenateParts(std::move(parts), table.schema(), options.threads);
}

}  // namespace deeprc::dist
