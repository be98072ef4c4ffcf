#include "deeprc/dist/shuffle.h"

#include <algorithm>
#include <cstdint>

#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"

namespace deeprc::dist {
namespace {

constexpr int64_t kMorsel = int64_t{1} << 16;

// The rank of a key hash. The local hash join and grouping take their buckets from the hash's
// top bits (partitions) and low bits (slots); taking the rank from those bits too would leave
// every rank's rows with the same few values there after the shuffle. The hash is therefore mixed
// again with a different constant (every output bit depends on every input bit), and the rank is
// the high half of the 128-bit product with the rank count (no modulo bias, no division).
inline int32_t RankOfHash(uint64_t hash, uint64_t ranks) {
  const uint64_t mixed = compute::HashWord(hash ^ 0x5bd1e9955bd1e995ULL);
  return static_cast<int32_t>((static_cast<unsigned __int128>(mixed) * ranks) >> 64);
}

int ThreadsOf(int threads) { return threads > 0 ? threads : DefaultThreadCount(); }

}  // namespace

Result<std::vector<int32_t>> HashPartitionTargets(const Table& table,
                                                  const std::vector<int>& key_columns, int ranks,
                                                  int threads) {
  if (ranks < 1) return Status::Invalid("hash partitioning into {} ranks", ranks);
  DEEPRC_ASSIGN_OR_RAISE(auto keys, compute::KeyColumns::Make(table, key_columns));
  const int64_t rows = table.num_rows();
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  if (ranks == 1) return targets;
  const int64_t morsels = (rows + kMorsel - 1) / kMorsel;
  ParallelFor(morsels, ThreadsOf(threads), [&](int64_t m) {
    const int64_t begin = m * kMorsel;
    const int64_t end = std::min(rows, begin + kMorsel);
    std::vector<uint64_t> hashes(static_cast<size_t>(end - begin));
    keys.Hash(begin, end, hashes.data());
    for (int64_t i = begin; i < end; ++i) {
      targets[i] = RankOfHash(hashes[i - begin], static_cast<uint64_t>(ranks));
    }
  });
  return targets;
}

Result<Table> Exchange(comm::Communicator& comm, const Table& table,
                       const std::vector<int32_t>& targets, const ShuffleOptions& options) {
  const int ranks = comm.size();
  const int64_t rows = table.num_rows();
  // Bad input on one rank must fail every rank, not leave the others in the all-to-all.
  int64_t bad = static_cast<int64_t>(targets.size()) != rows ? 1 : 0;
  if (bad == 0) {
    for (int32_t target : targets) {
      if (target < 0 || target >= ranks) {
        bad = 1;
        break;
      }
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(int64_t any_bad, comm::AllReduceValue(comm, bad, comm::ReduceOp::kMax));
  if (any_bad != 0) {
    if (bad != 0) {
      return Status::Invalid("exchange: {} targets for {} rows, or a target outside [0, {})",
                             targets.size(), rows, ranks);
    }
    return Status::Invalid("exchange: another rank passed bad targets");
  }

  // Row indices grouped by destination, each group in row order.
  std::vector<int64_t> starts(static_cast<size_t>(ranks) + 1, 0);
  for (int32_t target : targets) ++starts[static_cast<size_t>(target) + 1];
  for (int d = 0; d < ranks; ++d) starts[d + 1] += starts[d];
  std::vector<int64_t> order(static_cast<size_t>(rows));
  {
    std::vector<int64_t> cursor(starts.begin(), starts.end() - 1);
    for (int64_t i = 0; i < rows; ++i) order[cursor[targets[i]]++] = i;
  }
  std::vector<Table> parts;
  parts.reserve(static_cast<size_t>(ranks));
  for (int d = 0; d < ranks; ++d) {
    std::span<const int64_t> indices(order.data() + starts[d],
                                     static_cast<size_t>(starts[d + 1] - starts[d]));
    auto part = compute::Take(table, indices, options.threads);
    if (!part.ok()) comm.Abort(1, "exchange: cannot gather rows: " + part.status().ToString());
    parts.push_back(part.MoveValueUnsafe());
  }
  comm::ExchangeOptions exchange = options.exchange;
  if (exchange.threads == 0) exchange.threads = options.threads;
  DEEPRC_ASSIGN_OR_RAISE(auto received, comm::AllToAllTables(comm, parts, exchange));
  parts.clear();
  if (received.size() == 1) return std::move(received[0]);
  return compute::Concatenate(received, options.threads);
}

Result<Table> Shuffle(comm::Communicator& comm, const Table& table,
                      const std::vector<int>& key_columns, const ShuffleOptions& options) {
  auto targets = HashPartitionTargets(table, key_columns, comm.size(), options.threads);
  // Bad key columns are the same mistake on every rank; still, agree before exchanging.
  const int64_t bad = targets.ok() ? 0 : 1;
  DEEPRC_ASSIGN_OR_RAISE(int64_t any_bad, comm::AllReduceValue(comm, bad, comm::ReduceOp::kMax));
  if (!targets.ok()) return targets.status();
  if (any_bad != 0) return Status::Invalid("shuffle: another rank has bad key columns");
  return Exchange(comm, table, *targets, options);
}

}  // namespace deeprc::dist
