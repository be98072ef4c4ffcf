#pragma once

// Cutting one global table into the ranks' partitions and gathering a distributed result, for the
// tests of the distributed operators: every rank builds the same global table from a seed, keeps
// its own slice, runs the operator, and compares the gathered result with the local operator on
// the global table.

#include <string>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/compute/selection.h"
#include "deeprc/table/table.h"

namespace deeprc::testing {

enum class Cut {
  kEven,     // equal slices
  kUneven,   // slices of different sizes; with more than 2 ranks, rank 1 empty
  kOneRank,  // every row on the last rank, the others empty
};

inline std::string CutName(Cut cut) {
  switch (cut) {
    case Cut::kEven:
      return "even";
    case Cut::kUneven:
      return "uneven";
    case Cut::kOneRank:
      return "one-rank";
  }
  return "?";
}

inline const std::vector<Cut>& AllCuts() {
  static const std::vector<Cut> cuts = {Cut::kEven, Cut::kUneven, Cut::kOneRank};
  return cuts;
}

// This rank's slice of `global`.
inline Table RankSlice(const Table& global, const comm::Communicator& comm, Cut cut) {
  const int size = comm.size();
  std::vector<int64_t> weights(static_cast<size_t>(size), 1);
  for (int r = 0; r < size; ++r) {
    // 2 ranks: 1, 3; 4 ranks: 3, 0, 2, 5.
    if (cut == Cut::kUneven) weights[r] = size == 2 ? 1 + 2 * r : (r == 1 ? 0 : (r * 3 + 2) % 7 + 1);
    if (cut == Cut::kOneRank) weights[r] = r == size - 1 ? 1 : 0;
  }
  int64_t total = 0;
  for (int64_t w : weights) total += w;
  const int64_t rows = global.num_rows();
  int64_t before = 0;
  for (int r = 0; r < comm.rank(); ++r) before += weights[r];
  const int64_t begin = rows * before / total;
  const int64_t end = rows * (before + weights[comm.rank()]) / total;
  return global.Slice(begin, end - begin);
}

// Every rank's partition, concatenated in rank order, on every rank.
inline Result<Table> GatherAll(comm::Communicator& comm, const Table& partition) {
  DEEPRC_ASSIGN_OR_RAISE(std::vector<Table> parts, comm::AllGatherTables(comm, partition));
  return compute::Concatenate(parts);
}

}  // namespace deeprc::testing
