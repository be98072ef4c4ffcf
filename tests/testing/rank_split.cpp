#include "testing/rank_split.h"

#include <algorithm>
#include <random>

namespace deeprc::testing {

std::vector<int64_t> SplitOffsets(int64_t rows, int ranks, RankSplit split, uint64_t seed) {
  std::vector<int64_t> offsets(ranks + 1, 0);
  switch (split) {
    case RankSplit::kEven:
      for (int r = 0; r <= ranks; ++r) offsets[r] = rows * r / ranks;
      break;
    case RankSplit::kUneven: {
      std::mt19937_64 rng(seed * 31 + 7);
      for (int r = 1; r < ranks; ++r) {
        offsets[r] = static_cast<int64_t>(rng() % static_cast<uint64_t>(rows + 1));
      }
      offsets[ranks] = rows;
      std::sort(offsets.begin(), offsets.end());
      break;
    }
    case RankSplit::kFirstOnly:
      for (int r = 1; r <= ranks; ++r) offsets[r] = rows;
      break;
    case RankSplit::kLastOnly:
      offsets[ranks] = rows;
      break;
    case RankSplit::kEveryOtherEmpty: {
      // Even ranks hold 1, 2, 3, ... parts of the rows.
      std::vector<int64_t> weight(ranks, 0);
      int64_t total = 0;
      for (int r = 0; r < ranks; r += 2) total += (weight[r] = r / 2 + 1);
      int64_t sum = 0;
      for (int r = 0; r < ranks; ++r) {
        sum += weight[r];
        offsets[r + 1] = rows * sum / total;
      }
      break;
    }
  }
  return offsets;
}

Table RankSlice(const Table& global, int rank, int ranks, RankSplit split, uint64_t seed) {
  const auto offsets = SplitOffsets(global.num_rows(), ranks, split, seed);
  return global.Slice(offsets[rank], offsets[rank + 1] - offsets[rank]);
}

const char* RankSplitName(RankSplit split) {
  switch (split) {
    case RankSplit::kEven:
      return "even";
    case RankSplit::kUneven:
      return "uneven";
    case RankSplit::kFirstOnly:
      return "first rank only";
    case RankSplit::kLastOnly:
      return "last rank only";
    case RankSplit::kEveryOtherEmpty:
      return "every other rank empty";
  }
  return "?";
}

}  // namespace deeprc::testing
