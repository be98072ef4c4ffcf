#pragma once

// Cutting one global table into the partitions of a distributed test: every rank builds the same
// global table from a seed and keeps rows [offsets[rank], offsets[rank + 1]).

#include <cstdint>
#include <vector>

#include "deeprc/table/table.h"

namespace deeprc::testing {

enum class RankSplit : uint8_t {
  kEven,             // about rows / ranks each
  kUneven,           // random cut points (seeded): sizes differ, some ranks may be empty
  kFirstOnly,        // every row on rank 0
  kLastOnly,         // every row on the last rank
  kEveryOtherEmpty,  // odd ranks hold nothing; even ranks share the rows unevenly
};

// ranks + 1 offsets, from 0 to rows, non-decreasing; the same on every rank for the same seed.
std::vector<int64_t> SplitOffsets(int64_t rows, int ranks, RankSplit split, uint64_t seed);

// This rank's slice of `global`.
Table RankSlice(const Table& global, int rank, int ranks, RankSplit split, uint64_t seed);

const char* RankSplitName(RankSplit split);
inline constexpr RankSplit kAllRankSplits[] = {RankSplit::kEven, RankSplit::kUneven,
                                               RankSplit::kFirstOnly, RankSplit::kLastOnly,
                                               RankSplit::kEveryOtherEmpty};

}  // namespace deeprc::testing
