// Repartition, head, tail, slice, gather and the global row counts, at 1, 2 and 4 ranks, against
// slices of the global table: every rank builds the same global table, keeps its slice (even,
// uneven, all on one rank, every other rank empty), and the results must be exactly the rows
// the global order says, on the ranks it says.
#include "deeprc/dist/partition.h"

#include <gtest/gtest.h>

#include <random>

#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/rank_split.h"
#include "testing/ranks.h"
#include "testing/table_compare.h"

namespace deeprc::dist {
namespace {

using testing::RankSplit;
using testing::TestComm;

Table GlobalTable(int64_t rows, uint64_t seed) {
  return testing::RandomTable(testing::AllTypesSpec(0.2, 50), rows, seed);
}

TEST(DistPartitionTest, GlobalRowCountsAreTheSlicesOffsets) {
  auto& comm = TestComm();
  const Table global = GlobalTable(333, 1);
  for (RankSplit split : testing::kAllRankSplits) {
    const auto offsets = testing::SplitOffsets(333, comm.size(), split, 4);
    const Table local =
        global.Slice(offsets[comm.rank()], offsets[comm.rank() + 1] - offsets[comm.rank()]);
    ASSERT_OK_AND_ASSIGN(RowCounts counts, GlobalRowCounts(comm, local));
    EXPECT_EQ(counts.total, 333);
    EXPECT_EQ(counts.offsets, offsets);
    for (int r = 0; r < comm.size(); ++r) {
      EXPECT_EQ(counts.counts[r], offsets[r + 1] - offsets[r]);
    }
  }
}

TEST(DistPartitionTest, EvenCounts) {
  EXPECT_EQ(EvenCounts(10, 4), (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(EvenCounts(2, 4), (std::vector<int64_t>{1, 1, 0, 0}));
  EXPECT_EQ(EvenCounts(0, 3), (std::vector<int64_t>{0, 0, 0}));
}

TEST(DistPartitionTest, RepartitionEvenlyAndToGivenCounts) {
  auto& comm = TestComm();
  const int ranks = comm.size();
  for (uint64_t seed = 0; seed < 4; ++seed) {
    for (int64_t rows : {0, 1, 5, 777}) {
      const Table global = GlobalTable(rows, seed);
      for (RankSplit split : testing::kAllRankSplits) {
        SCOPED_TRACE(std::string(testing::RankSplitName(split)) + ", rows " + std::to_string(rows) +
                     ", seed " + std::to_string(seed));
        const Table local = testing::RankSlice(global, comm.rank(), ranks, split, seed);
        // Evenly.
        ASSERT_OK_AND_ASSIGN(Table even, Repartition(comm, local));
        const auto even_counts = EvenCounts(rows, ranks);
        int64_t start = 0;
        for (int r = 0; r < comm.rank(); ++r) start += even_counts[r];
        EXPECT_TRUE(
            testing::TablesEqualOrdered(global.Slice(start, even_counts[comm.rank()]), even, 0.0));
        // To random counts (the same on every rank: the same seed), with empty ranks.
        std::mt19937_64 rng(seed + 1000 * rows);
        const auto cuts = testing::SplitOffsets(rows, ranks, RankSplit::kUneven, rng());
        std::vector<int64_t> counts(ranks);
        for (int r = 0; r < ranks; ++r) counts[r] = cuts[r + 1] - cuts[r];
        ASSERT_OK_AND_ASSIGN(Table moved, Repartition(comm, local, counts));
        EXPECT_TRUE(testing::TablesEqualOrdered(
            global.Slice(cuts[comm.rank()], counts[comm.rank()]), moved, 0.0));
      }
    }
  }
}

TEST(DistPartitionTest, RepartitionRejectsCountsThatDoNotAddUp) {
  auto& comm = TestComm();
  const Table global = GlobalTable(10, 3);
  const Table local = testing::RankSlice(global, comm.rank(), comm.size(), RankSplit::kEven, 0);
  std::vector<int64_t> counts(comm.size(), 0);
  counts[0] = 11;
  EXPECT_FALSE(Repartition(comm, local, counts).ok());
  EXPECT_FALSE(Repartition(comm, local, std::vector<int64_t>(comm.size() + 1, 0)).ok());
}

// The rows of global [lo, hi) that this rank holds, given its slice at `offset`.
Table Expected(const Table& global, int64_t lo, int64_t hi, int64_t mine, int64_t n) {
  const int64_t a = std::max(lo, mine);
  const int64_t b = std::min(hi, mine + n);
  return global.Slice(a, std::max<int64_t>(0, b - a));
}

TEST(DistPartitionTest, HeadTailAndSliceInGlobalOrder) {
  auto& comm = TestComm();
  const int64_t rows = 101;
  const Table global = GlobalTable(rows, 5);
  for (RankSplit split : testing::kAllRankSplits) {
    const auto offsets = testing::SplitOffsets(rows, comm.size(), split, 6);
    const int64_t mine = offsets[comm.rank()];
    const int64_t n = offsets[comm.rank() + 1] - mine;
    const Table local = global.Slice(mine, n);
    for (int64_t k : {0, 1, 13, 50, 100, 101, 500}) {
      SCOPED_TRACE(std::string(testing::RankSplitName(split)) + ", k = " + std::to_string(k));
      ASSERT_OK_AND_ASSIGN(Table head, Head(comm, local, k));
      EXPECT_TRUE(testing::TablesEqualOrdered(Expected(global, 0, k, mine, n), head, 0.0));
      ASSERT_OK_AND_ASSIGN(Table tail, Tail(comm, local, k));
      EXPECT_TRUE(testing::TablesEqualOrdered(
          Expected(global, std::max<int64_t>(0, rows - k), rows, mine, n), tail, 0.0));
      for (int64_t offset : {0, 7, 60, 101, 200}) {
        ASSERT_OK_AND_ASSIGN(Table slice, Slice(comm, local, offset, k));
        EXPECT_TRUE(testing::TablesEqualOrdered(
            Expected(global, offset, std::min(rows, offset + k), mine, n), slice, 0.0));
      }
    }
    // The pieces, gathered, are the global slice.
    ASSERT_OK_AND_ASSIGN(Table piece, Slice(comm, local, 20, 61));
    ASSERT_OK_AND_ASSIGN(Table gathered, AllGather(comm, piece));
    EXPECT_TRUE(testing::TablesEqualOrdered(global.Slice(20, 61), gathered, 0.0));
  }
  EXPECT_FALSE(Head(comm, global, -1).ok());
  EXPECT_FALSE(Slice(comm, global, -1, 3).ok());
}

TEST(DistPartitionTest, GatherAndAllGatherConcatenateInRankOrder) {
  auto& comm = TestComm();
  const Table global = GlobalTable(400, 8);
  for (RankSplit split : testing::kAllRankSplits) {
    const Table local = testing::RankSlice(global, comm.rank(), comm.size(), split, 9);
    for (int root = 0; root < comm.size(); ++root) {
      ASSERT_OK_AND_ASSIGN(Table gathered, Gather(comm, local, root));
      if (comm.rank() == root) {
        EXPECT_TRUE(testing::TablesEqualOrdered(global, gathered, 0.0));
      } else {
        EXPECT_EQ(gathered.num_rows(), 0);
        EXPECT_TRUE(gathered.schema() == global.schema());
      }
    }
    ASSERT_OK_AND_ASSIGN(Table all, AllGather(comm, local));
    EXPECT_TRUE(testing::TablesEqualOrdered(global, all, 0.0));
  }
}

}  // namespace
}  // namespace deeprc::dist
