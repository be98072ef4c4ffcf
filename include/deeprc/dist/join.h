#pragma once

// Distributed join: every rank passes its partitions of the left and right tables and gets its
// partition of the result. The rows of all result partitions together are the rows of
// compute::Join on the concatenations of all left and all right partitions (row order aside).

#include <cstdint>

#include "deeprc/comm/communicator.h"
#include "deeprc/compute/join.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

enum class JoinStrategy : uint8_t {
  // Broadcast when a side that may be broadcast for this join type is below
  // broadcast_threshold_bytes globally and size() times it is at most the other side's global
  // size, else shuffle.
  kAuto,
  // Both sides hash-partitioned on the (promoted) keys, then a local join per rank.
  kShuffle,
  // One side gathered on every rank (AllGather), local join with the other side's partition.
  kBroadcast,
};

// Which side a broadcast join replicates. A side may be broadcast only when the join emits no
// unmatched rows of it (otherwise every rank would emit them):
//   inner            either side (the smaller one)
//   left, semi, anti the right side
//   right            the left side
//   outer            the right side, handled exactly: every rank left-joins its left partition
//                    with the whole right side and marks the right rows it matched; the marks are
//                    combined (AllGather, OR) and rank 0 adds the right rows no rank matched, as
//                    compute::Join's outer join emits them (left columns null).
enum class JoinSide : uint8_t { kNone, kLeft, kRight };

struct DistJoinOptions {
  // Keys, type, suffixes, nulls_equal and the local algorithm (hash or sort) of the local step.
  compute::JoinOptions join;
  JoinStrategy strategy = JoinStrategy::kAuto;
  // kAuto broadcasts a side whose serialized size summed over all ranks is at most this (and
  // at most the other side's divided by the rank count).
  int64_t broadcast_threshold_bytes = int64_t{16} << 20;
  ShuffleOptions shuffle;
};

struct JoinPlan {
  JoinStrategy strategy = JoinStrategy::kShuffle;  // kShuffle or kBroadcast
  JoinSide broadcast = JoinSide::kNone;            // the side replicated by kBroadcast
  int64_t left_bytes = 0;                          // global sizes (AllReduce)
  int64_t right_bytes = 0;
};

// The strategy Join takes for these partitions (collective: every rank calls it; every rank gets
// the same plan).
Result<JoinPlan> PlanJoin(comm::Communicator& comm, const Table& left, const Table& right,
                          const DistJoinOptions& options);

// Collective. Key columns whose types differ between the sides are promoted as compute::Join
// does (compute::Cast) before rows are hash-partitioned, so equal keys meet on one rank whatever
// their types; the output has compute::Join's columns and types. With nulls_equal false, rows
// whose key has a null match nothing and stay on their rank (no null-key hot spot). Semi and
// anti joins move only the right side's distinct keys.
// All ranks return an error if one rank fails (its own error there, a note on the others).
Result<Table> Join(comm::Communicator& comm, const Table& left, const Table& right,
                   const DistJoinOptions& options);

}  // namespace deeprc::dist
