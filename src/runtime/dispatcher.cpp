#include "runtime/dispatcher_internal.h"

#include <algorithm>

namespace deeprc::runtime::internal {

Dispatcher::Dispatcher(std::vector<int32_t> rank_nodes, int32_t depth)
    : depth_(std::max(1, depth)) {
  SetRanks(std::move(rank_nodes));
}

void Dispatcher::SetRanks(std::vector<int32_t> rank_nodes) {
  rank_nodes_ = std::move(rank_nodes);
  nodes_ = 1;
  for (int32_t node : rank_nodes_) nodes_ = std::max(nodes_, node + 1);
  load_.assign(rank_nodes_.size(), 0);
  position_.assign(rank_nodes_.size(), 0);
  buckets_.resize(static_cast<size_t>(depth_) + 1);
  free_per_node_.assign(static_cast<size_t>(nodes_), 0);
  ResetLoads();
}

void Dispatcher::ResetLoads() {
  for (auto& bucket : buckets_) bucket.clear();
  std::fill(free_per_node_.begin(), free_per_node_.end(), 0);
  for (size_t r = 0; r < load_.size(); ++r) {
    load_[r] = 0;
    position_[r] = buckets_[0].size();
    buckets_[0].push_back(static_cast<int32_t>(r));
    ++free_per_node_[static_cast<size_t>(rank_nodes_[r])];
  }
  free_ = static_cast<int64_t>(load_.size());
}

void Dispatcher::Move(int32_t rank, int32_t to) {
  const size_t r = static_cast<size_t>(rank);
  const int32_t from = load_[r];
  auto& source = buckets_[static_cast<size_t>(from)];
  const int32_t last = source.back();
  source[position_[r]] = last;
  position_[static_cast<size_t>(last)] = position_[r];
  source.pop_back();
  auto& target = buckets_[static_cast<size_t>(to)];
  position_[r] = target.size();
  target.push_back(rank);
  load_[r] = to;
  const size_t node = static_cast<size_t>(rank_nodes_[r]);
  if (from < depth_ && to >= depth_) {
    --free_per_node_[node];
    --free_;
  } else if (from >= depth_ && to < depth_) {
    ++free_per_node_[node];
    ++free_;
  }
}

void Dispatcher::Release(int32_t rank) {
  const int32_t load = load_[static_cast<size_t>(rank)];
  if (load > 0) Move(rank, load - 1);
}

void Dispatcher::Push(int64_t id, int32_t priority, int32_t ranks) {
  queue_[priority].push_back({id, ranks});
  ++queued_;
}

void Dispatcher::PushFront(int64_t id, int32_t priority, int32_t ranks) {
  queue_[priority].push_front({id, ranks});
  ++queued_;
}

bool Dispatcher::Remove(int64_t id, int32_t priority) {
  auto found = queue_.find(priority);
  if (found == queue_.end()) return false;
  auto& entries = found->second;
  auto at = std::find_if(entries.begin(), entries.end(),
                         [id](const Entry& entry) { return entry.id == id; });
  if (at == entries.end()) return false;
  entries.erase(at);
  if (entries.empty()) queue_.erase(found);
  --queued_;
  return true;
}

std::vector<int64_t> Dispatcher::QueuedIds() const {
  std::vector<int64_t> ids;
  for (const auto& [priority, entries] : queue_) {
    for (const Entry& entry : entries) ids.push_back(entry.id);
  }
  return ids;
}

void Dispatcher::Clear() {
  queue_.clear();
  queued_ = 0;
}

bool Dispatcher::Choose(int32_t k, std::vector<int32_t>* chosen) {
  chosen->clear();
  if (free_ < k) return false;
  if (k > 1 && nodes_ > 1) {
    // One node with k ranks free: the one with the most.
    int32_t best = -1;
    for (int32_t node = 0; node < nodes_; ++node) {
      if (free_per_node_[static_cast<size_t>(node)] >= k &&
          (best < 0 ||
           free_per_node_[static_cast<size_t>(node)] > free_per_node_[static_cast<size_t>(best)])) {
        best = node;
      }
    }
    if (best >= 0) {
      for (int32_t level = 0; level < depth_ && static_cast<int32_t>(chosen->size()) < k; ++level) {
        for (int32_t rank : buckets_[static_cast<size_t>(level)]) {
          if (rank_nodes_[static_cast<size_t>(rank)] != best) continue;
          chosen->push_back(rank);
          if (static_cast<int32_t>(chosen->size()) == k) break;
        }
      }
      return true;
    }
  }
  for (int32_t level = 0; level < depth_ && static_cast<int32_t>(chosen->size()) < k; ++level) {
    for (int32_t rank : buckets_[static_cast<size_t>(level)]) {
      chosen->push_back(rank);
      if (static_cast<int32_t>(chosen->size()) == k) break;
    }
  }
  return true;
}

void Dispatcher::Dispatch(const std::function<void(int64_t, std::span<const int32_t>)>& assign) {
  while (!queue_.empty()) {
    auto head = queue_.begin();
    const Entry entry = head->second.front();
    if (!Choose(entry.ranks, &chosen_)) return;
    head->second.pop_front();
    if (head->second.empty()) queue_.erase(head);
    --queued_;
    for (int32_t rank : chosen_) Move(rank, load_[static_cast<size_t>(rank)] + 1);
    std::sort(chosen_.begin(), chosen_.end());
    assign(entry.id, chosen_);
  }
}

}  // namespace deeprc::runtime::internal
