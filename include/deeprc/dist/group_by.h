#pragma once

// Distributed group-by and whole-table aggregates. Every rank passes its partition; the rows of
// all result partitions together are compute::GroupBy's rows on the concatenation of all
// partitions (floating results within rounding: partial results are combined in another order).

#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/compute/group_by.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

struct DistGroupByOptions {
  // Keys, aggregates, drop_null_keys and threads of the local steps.
  compute::GroupByOptions group_by;
  ShuffleOptions shuffle;
};

// Collective. When every aggregate is decomposable (sum, count, min, max, mean, var, std, first,
// last) each rank aggregates its rows first and only one row of partial results per group and
// rank travels: sums, counts, minima, maxima, first and last values, and for mean, var and std
// the count, mean and sum of squared deviations of each part, combined with Chan's formula.
// first and last stay exact because the shuffle keeps rows in source-rank order. With any of
// nunique, median or quantile, the rows themselves (keys and aggregated columns only) are
// shuffled on the keys and aggregated once. Null keys form one group unless drop_null_keys.
// Each group is on one rank; a rank's groups come in an unspecified order.
// All ranks return an error if one rank fails.
Result<Table> GroupBy(comm::Communicator& comm, const Table& table,
                      const DistGroupByOptions& options);

// Collective: compute::AggregateTable over the rows of all partitions; every rank gets the same
// one-row table. Decomposable aggregates travel as one row of partial results per rank; with
// nunique, median or quantile the aggregated columns are sent to rank 0, which computes the row
// and broadcasts it.
Result<Table> AggregateTable(comm::Communicator& comm, const Table& table,
                             const std::vector<compute::Aggregate>& aggregates,
                             const ShuffleOptions& options = {});

}  // namespace deeprc::dist
