#pragma once

// The master's queue and choice of ranks, apart from its sockets, so that the same code runs
// against real ranks (master.cpp) and virtual ones (the simulated dispatch benchmark).
//
// Tasks wait in FIFO queues by priority (higher first); a dispatch pass assigns the head task
// while it fits. A one-rank task fits a rank holding fewer than `depth` assignments (the rank
// queues it behind the others: no round trip to the master between two short tasks); a
// multi-rank task fits ranks that are idle or expected to free within 1/16 of its own estimate
// of each other (only idle ones while its duration or theirs is unknown), so its ranks start it
// together instead of idling in MPI_Comm_create_group while the slowest drains its queue.
//
// When the head does not fit, it reserves the k ranks expected to free first, and the pass
// goes on past it (backfill, at most kBackfillScan tasks): a later task may use any rank that is
// not reserved, and a reserved rank only when it is expected to be done before the reserved
// task could start anyway. Durations are not declared, so they are learned: the time from a
// rank starting an assignment to its release, averaged per task kind (the master's kinds are
// function name × ranks). A rank is expected to free at max(now, start of its current
// assignment + the estimates of what it holds); an overrun makes that optimistic, which only
// makes backfill stricter. A task of a kind never seen, or a rank holding one, is never
// backfilled onto reserved ranks. A backfilled task may delay the reserved one by at most 1/16
// of the reserved task's own estimate (timing jitter; without it a task that started 0.1 ms
// after its neighbours would never fit the gap they leave).
//
// Ranks are kept in buckets by load, so choosing the least loaded rank of a one-rank task costs
// O(1) and a pass with nothing blocked never looks at every rank; a multi-rank task scans the
// ranks with room (when all k are idle, one node with k of them first, the one with the most).

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <vector>

namespace deeprc::runtime::internal {

class Dispatcher {
 public:
  // Tasks scanned past a blocked head in one pass.
  static constexpr int32_t kBackfillScan = 256;
  // A task kind whose duration is not learned (never estimated, never backfilled).
  static constexpr int32_t kNoKind = -1;

  // rank_nodes[r]: the node index of pool rank r.
  Dispatcher(std::vector<int32_t> rank_nodes, int32_t depth);
  // A new set of ranks (a restarted pool), all idle; the queue stays.
  void SetRanks(std::vector<int32_t> rank_nodes);

  // `kind`: tasks of one kind are expected to take about as long (kNoKind or 0, 1, 2, ...).
  void Push(int64_t id, int32_t priority, int32_t ranks, int32_t kind = kNoKind);
  // Back at the head of its priority (a task that never started on a lost pool).
  void PushFront(int64_t id, int32_t priority, int32_t ranks, int32_t kind = kNoKind);
  // A queued task leaves the queue; false when it is not queued.
  bool Remove(int64_t id, int32_t priority);
  // Assigns queued tasks (see above); `assign(id, ranks)` for each, ranks ascending (the task's
  // communicator ranks follow pool rank order). `now_us`: any clock that only moves forward.
  void Dispatch(int64_t now_us, const std::function<void(int64_t, std::span<const int32_t>)>& assign);
  // A rank finished its oldest assignment (ranks run theirs in order).
  void Release(int32_t rank, int64_t now_us);
  // Every assignment of every rank is gone (the pool was lost); the queue stays.
  void ResetLoads();

  int64_t queued() const { return queued_; }
  int32_t load(int32_t rank) const { return load_[static_cast<size_t>(rank)]; }
  int32_t ranks() const { return static_cast<int32_t>(load_.size()); }
  // The ranks the last pass reserved for its blocked head (empty when nothing was blocked).
  const std::vector<int32_t>& reserved() const { return reserved_; }
  // The learned duration of a kind in µs, -1 before its first release.
  int64_t estimate_us(int32_t kind) const;
  // Ids of the queued tasks, in queue order (for failing or canceling them all).
  std::vector<int64_t> QueuedIds() const;
  void Clear();

 private:
  struct Entry {
    int64_t id;
    int32_t ranks;
    int32_t kind;
  };
  // One assignment held by a rank, in a free-list pool (a deque per rank would cost its
  // minimum allocation per rank: 1,000,000 virtual ranks in the simulation).
  struct Held {
    int64_t estimate_us;  // -1: unknown
    int32_t kind;
    int32_t next;
  };
  static constexpr int64_t kNever = INT64_MAX;

  bool Choose(const Entry& entry, int64_t now_us, std::vector<int32_t>* chosen);
  void Reserve(const Entry& head, int64_t now_us);
  // May `rank` take a task of `estimate_us` without delaying the reserved task?
  bool Allowed(int32_t rank, int64_t estimate_us, int64_t now_us) const;
  int64_t FreeAt(int32_t rank, int64_t now_us) const;
  void Assign(int32_t rank, int32_t kind, int64_t now_us);
  void Move(int32_t rank, int32_t to);

  int32_t depth_;
  std::vector<int32_t> rank_nodes_;
  int32_t nodes_ = 1;
  std::vector<int32_t> load_;
  // buckets_[l]: the ranks whose load is l (l < depth); position_[r]: r's index in its bucket.
  std::vector<std::vector<int32_t>> buckets_;
  std::vector<size_t> position_;
  // Ranks with room (load < depth), per node.
  std::vector<int32_t> free_per_node_;
  int64_t free_ = 0;
  std::map<int32_t, std::deque<Entry>, std::greater<>> queue_;
  int64_t queued_ = 0;
  std::vector<int32_t> chosen_;

  // What each rank holds, oldest first (indexes into held_), and the sum of its known estimates.
  std::vector<Held> held_;
  int32_t free_held_ = -1;
  std::vector<int32_t> first_, last_;
  std::vector<int64_t> pending_us_;
  std::vector<int32_t> unknown_;
  std::vector<int64_t> head_start_us_;
  std::vector<int64_t> kind_estimate_us_;

  // The reservation of the current pass.
  std::vector<int32_t> reserved_;
  std::vector<char> is_reserved_;
  int64_t reserved_limit_us_ = 0;  // backfill onto reserved ranks ends by then
  bool backfill_onto_reserved_ = false;  // false: a reserved rank's free time is unknown
  std::vector<int32_t> scratch_;
  std::vector<std::pair<int64_t, int32_t>> aligned_;  // (expected free time, rank)
};

}  // namespace deeprc::runtime::internal
