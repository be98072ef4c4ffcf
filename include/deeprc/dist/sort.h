#pragma once

// Distributed sort: sample sort with regular sampling.
//
//  1. Each rank sorts its partition with compute::SortIndices (stable).
//  2. Each rank picks regularly spaced samples of its sorted rows, about as many per rank as
//     its share of the global rows (so a rank with many rows weighs more), each tagged with
//     (source rank, position in the sorted partition).
//  3. The samples are gathered on every rank and sorted by (keys, source rank, position); every
//     rank picks the same size() - 1 splitters at the weighted quantiles.
//  4. A row goes to the rank whose range holds its (keys, rank, position): since the local rows
//     are sorted, each destination gets one contiguous slice (found by binary search), and the
//     slices travel with dist::ExchangeSlices (received in place, in source-rank order).
//  5. Each rank sorts what it received (stably; the pieces arrive in source-rank order).
//
// The result: concatenating rank 0, 1, ... gives exactly compute::Sort of the concatenated input
// (rank order, then row order) — the same row order, including the order of equal keys, because
// ties are broken by (source rank, position) everywhere, which is the global input order. Equal
// keys spread over ranks (90% of the rows on one key still split evenly), ranks may hold no rows
// (even all but one), and all-null keys, NaN and strings order as in compute::Sort. Collective:
// all ranks call it with the same options; every rank's partition must have the same schema.

#include "deeprc/comm/communicator.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/compute/sort.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

struct SampleSortOptions {
  // Samples per rank on average (the gathered sample has about size() * this many rows); more
  // samples give more even partitions.
  int samples_per_rank = 64;
  // For the gathered samples (the rows themselves travel through dist::ExchangeSlices).
  comm::ExchangeOptions exchange;
};

Result<Table> Sort(comm::Communicator& comm, const Table& table,
                   const compute::SortOptions& options, const SampleSortOptions& sample = {});

}  // namespace deeprc::dist
