#pragma once

// Distributed sort: sample sort, partition first.
//
//  1. Each rank picks samples of its unsorted rows, about as many per rank as its share of the
//     global rows (so a rank with many rows weighs more): one random row of each of `count`
//     equal strides, tagged with (source rank, position in the partition).
//  2. The samples are gathered on every rank and sorted by (keys, source rank, position); every
//     rank picks the same size() - 1 splitters at the weighted quantiles.
//  3. A row goes to the rank whose range holds its (keys, rank, position) (a binary search over
//     the splitters, run column by column over blocks of rows), and the rows travel with
//     dist::Exchange (received in place, in source-rank order, each source's rows in its order).
//  4. Each rank sorts what it received, stably: its only full sort (sorting before the exchange
//     as well measured 1.15x the one-rank time at two ranks before anything moved).
// With one fixed-width key and only fixed-width columns, none with nulls, steps 3 and 4 are
// fused: each row is written once, as the word its destination's radix sort reads, into a
// bucket of its destination's top digit; each rank then sorts its buckets in cache.
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
  // samples give more even partitions: a splitter's place in the global order is off by about
  // total / (2 sqrt(size() * samples_per_rank)) rows (one standard deviation), so a partition
  // by about sqrt(size() / samples_per_rank) / 2 of its share. 0: 2500 * size() (1% of a
  // share), but at most 2^18 / size() and total rows / (16 size()), and at least 1024.
  int samples_per_rank = 0;
  // For the gathered samples (the rows themselves travel through dist::ExchangeSlices).
  comm::ExchangeOptions exchange;
};

Result<Table> Sort(comm::Communicator& comm, const Table& table,
                   const compute::SortOptions& options, const SampleSortOptions& sample = {});

}  // namespace deeprc::dist
