#pragma once

// The master's queue and choice of ranks, apart from its sockets, so that the same code runs
// against real ranks (master.cpp) and virtual ones (the simulated dispatch benchmark).
//
// Tasks wait in FIFO queues by priority (higher first). A dispatch pass assigns the head task
// while it fits and stops at the first that does not (a wide task is not passed forever by
// narrow ones). A rank holds at most `depth` assignments. Ranks are kept in buckets by load, so
// choosing the least loaded ranks costs O(k) for a k-rank task, not a scan over the pool; a
// multi-rank task on a pool spread over several nodes first looks for one node with k ranks
// free (the one with the most), and takes the least loaded overall otherwise.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <vector>

namespace deeprc::runtime::internal {

class Dispatcher {
 public:
  // rank_nodes[r]: the node index of pool rank r.
  Dispatcher(std::vector<int32_t> rank_nodes, int32_t depth);
  // A new set of ranks (a restarted pool), all idle; the queue stays.
  void SetRanks(std::vector<int32_t> rank_nodes);

  void Push(int64_t id, int32_t priority, int32_t ranks);
  // Back at the head of its priority (a task that never started on a lost pool).
  void PushFront(int64_t id, int32_t priority, int32_t ranks);
  // A queued task leaves the queue; false when it is not queued.
  bool Remove(int64_t id, int32_t priority);
  // Assigns queued tasks in order until the head does not fit; `assign(id, ranks)` for each,
  // ranks ascending (the task's communicator ranks follow pool rank order).
  void Dispatch(const std::function<void(int64_t, std::span<const int32_t>)>& assign);
  // A rank finished one of its assignments.
  void Release(int32_t rank);
  // Every assignment of every rank is gone (the pool was lost); the queue stays.
  void ResetLoads();

  int64_t queued() const { return queued_; }
  int32_t load(int32_t rank) const { return load_[static_cast<size_t>(rank)]; }
  int32_t ranks() const { return static_cast<int32_t>(load_.size()); }
  // Ids of the queued tasks, in queue order (for failing or canceling them all).
  std::vector<int64_t> QueuedIds() const;
  void Clear();

 private:
  struct Entry {
    int64_t id;
    int32_t ranks;
  };
  bool Choose(int32_t k, std::vector<int32_t>* chosen);
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
};

}  // namespace deeprc::runtime::internal
