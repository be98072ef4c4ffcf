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
  is_reserved_.assign(rank_nodes_.size(), 0);
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
  held_.clear();
  free_held_ = -1;
  first_.assign(load_.size(), -1);
  last_.assign(load_.size(), -1);
  pending_us_.assign(load_.size(), 0);
  unknown_.assign(load_.size(), 0);
  head_start_us_.assign(load_.size(), 0);
  for (int32_t rank : reserved_) is_reserved_[static_cast<size_t>(rank)] = 0;
  reserved_.clear();
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

int64_t Dispatcher::estimate_us(int32_t kind) const {
  if (kind < 0 || static_cast<size_t>(kind) >= kind_estimate_us_.size()) return -1;
  return kind_estimate_us_[static_cast<size_t>(kind)];
}

void Dispatcher::Assign(int32_t rank, int32_t kind, int64_t now_us) {
  const size_t r = static_cast<size_t>(rank);
  if (load_[r] == 0) head_start_us_[r] = now_us;
  const int64_t estimate = estimate_us(kind);
  int32_t index = free_held_;
  if (index >= 0) {
    free_held_ = held_[static_cast<size_t>(index)].next;
    held_[static_cast<size_t>(index)] = {estimate, kind, -1};
  } else {
    index = static_cast<int32_t>(held_.size());
    held_.push_back({estimate, kind, -1});
  }
  if (last_[r] >= 0) {
    held_[static_cast<size_t>(last_[r])].next = index;
  } else {
    first_[r] = index;
  }
  last_[r] = index;
  if (estimate >= 0) {
    pending_us_[r] += estimate;
  } else {
    ++unknown_[r];
  }
  Move(rank, load_[r] + 1);
}

void Dispatcher::Release(int32_t rank, int64_t now_us) {
  const size_t r = static_cast<size_t>(rank);
  const int32_t load = load_[r];
  if (load <= 0) return;
  Move(rank, load - 1);
  const int32_t index = first_[r];
  if (index < 0) return;
  const Held held = held_[static_cast<size_t>(index)];
  first_[r] = held.next;
  if (first_[r] < 0) last_[r] = -1;
  held_[static_cast<size_t>(index)].next = free_held_;
  free_held_ = index;
  if (held.estimate_us >= 0) {
    pending_us_[r] -= held.estimate_us;
  } else {
    --unknown_[r];
  }
  if (held.kind >= 0) {
    // Learn the kind's duration: from the rank starting it (idle when assigned, else the
    // release of its predecessor) to now. A moving average that weighs recent runs.
    const size_t kind = static_cast<size_t>(held.kind);
    if (kind >= kind_estimate_us_.size()) kind_estimate_us_.resize(kind + 1, -1);
    const int64_t observed = std::max<int64_t>(0, now_us - head_start_us_[r]);
    int64_t& estimate = kind_estimate_us_[kind];
    estimate = estimate < 0 ? observed : estimate + (observed - estimate) / 8;
  }
  head_start_us_[r] = now_us;
}

void Dispatcher::Push(int64_t id, int32_t priority, int32_t ranks, int32_t kind) {
  queue_[priority].push_back({id, ranks, kind});
  ++queued_;
}

void Dispatcher::PushFront(int64_t id, int32_t priority, int32_t ranks, int32_t kind) {
  queue_[priority].push_front({id, ranks, kind});
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

int64_t Dispatcher::FreeAt(int32_t rank, int64_t now_us) const {
  const size_t r = static_cast<size_t>(rank);
  if (load_[r] == 0) return now_us;
  if (unknown_[r] > 0) return kNever;
  return std::max(now_us, head_start_us_[r] + pending_us_[r]);
}

bool Dispatcher::Allowed(int32_t rank, int64_t estimate_us, int64_t now_us) const {
  if (!is_reserved_[static_cast<size_t>(rank)]) return true;
  if (!backfill_onto_reserved_ || estimate_us < 0) return false;
  const int64_t free_at = FreeAt(rank, now_us);
  return free_at != kNever && free_at + estimate_us <= reserved_limit_us_;
}

void Dispatcher::Reserve(const Entry& head, int64_t now_us) {
  // The k ranks expected to free first (ties: the less loaded).
  scratch_.resize(load_.size());
  for (size_t r = 0; r < scratch_.size(); ++r) scratch_[r] = static_cast<int32_t>(r);
  const size_t k = std::min(scratch_.size(), static_cast<size_t>(std::max(1, head.ranks)));
  auto earlier = [&](int32_t a, int32_t b) {
    const int64_t free_a = FreeAt(a, now_us), free_b = FreeAt(b, now_us);
    if (free_a != free_b) return free_a < free_b;
    return load_[static_cast<size_t>(a)] < load_[static_cast<size_t>(b)];
  };
  std::nth_element(scratch_.begin(), scratch_.begin() + static_cast<long>(k) - 1, scratch_.end(),
                   earlier);
  reserved_.assign(scratch_.begin(), scratch_.begin() + static_cast<long>(k));
  int64_t start = now_us;
  for (int32_t rank : reserved_) {
    is_reserved_[static_cast<size_t>(rank)] = 1;
    start = std::max(start, FreeAt(rank, now_us));
  }
  backfill_onto_reserved_ = start != kNever;
  const int64_t head_estimate = estimate_us(head.kind);
  reserved_limit_us_ =
      backfill_onto_reserved_ ? start + (head_estimate > 0 ? head_estimate / 16 : 0) : start;
}

bool Dispatcher::Choose(const Entry& entry, int64_t now_us, std::vector<int32_t>* chosen) {
  chosen->clear();
  const int32_t k = entry.ranks;
  const bool reserving = !reserved_.empty();
  const int64_t estimate = reserving ? estimate_us(entry.kind) : -1;
  if (k <= 1) {
    if (free_ < 1) return false;
    for (int32_t level = 0; level < depth_; ++level) {
      for (int32_t rank : buckets_[static_cast<size_t>(level)]) {
        if (reserving && !Allowed(rank, estimate, now_us)) continue;
        chosen->push_back(rank);
        return true;
      }
    }
    return false;
  }
  // Ranks that may start it together: idle ones, or busy ones expected to free within a
  // tolerance of each other (then the task queues on them and starts without a round trip to
  // the master; with durations unknown only idle ranks qualify).
  const int64_t own_estimate = estimate_us(entry.kind);
  const int64_t tolerance = own_estimate > 0 ? own_estimate / 16 : 0;
  if (free_ < k) return false;
  // Unknown duration: only idle ranks can qualify (no tolerance), and without a reservation or
  // several nodes any k of them do.
  const int32_t levels = own_estimate >= 0 ? depth_ : 1;
  if (levels == 1 && !reserving && nodes_ == 1) {
    if (static_cast<int32_t>(buckets_[0].size()) < k) return false;
    chosen->assign(buckets_[0].begin(), buckets_[0].begin() + k);
    return true;
  }
  aligned_.clear();
  for (int32_t level = 0; level < levels; ++level) {
    for (int32_t rank : buckets_[static_cast<size_t>(level)]) {
      if (reserving && !Allowed(rank, estimate, now_us)) continue;
      const int64_t free_at = FreeAt(rank, now_us);
      if (free_at != kNever) aligned_.push_back({free_at, rank});
    }
  }
  if (static_cast<int32_t>(aligned_.size()) < k) return false;
  std::nth_element(aligned_.begin(), aligned_.begin() + (k - 1), aligned_.end());
  const int64_t start = aligned_[static_cast<size_t>(k - 1)].first;
  int64_t earliest = start;
  for (int32_t i = 0; i < k; ++i) earliest = std::min(earliest, aligned_[static_cast<size_t>(i)].first);
  if (start - earliest > tolerance) return false;
  if (start == now_us && nodes_ > 1) {
    // All idle: one node with k of them, the one with the most.
    std::vector<int32_t> per_node(static_cast<size_t>(nodes_), 0);
    for (const auto& [free_at, rank] : aligned_) {
      if (free_at == now_us) ++per_node[static_cast<size_t>(rank_nodes_[static_cast<size_t>(rank)])];
    }
    const auto most = std::max_element(per_node.begin(), per_node.end());
    if (*most >= k) {
      const int32_t best = static_cast<int32_t>(most - per_node.begin());
      for (const auto& [free_at, rank] : aligned_) {
        if (free_at != now_us || rank_nodes_[static_cast<size_t>(rank)] != best) continue;
        chosen->push_back(rank);
        if (static_cast<int32_t>(chosen->size()) == k) break;
      }
      return true;
    }
  }
  for (int32_t i = 0; i < k; ++i) chosen->push_back(aligned_[static_cast<size_t>(i)].second);
  return true;
}

void Dispatcher::Dispatch(int64_t now_us,
                          const std::function<void(int64_t, std::span<const int32_t>)>& assign) {
  for (int32_t rank : reserved_) is_reserved_[static_cast<size_t>(rank)] = 0;
  reserved_.clear();
  auto place = [&](const Entry& entry) {
    for (int32_t rank : chosen_) Assign(rank, entry.kind, now_us);
    std::sort(chosen_.begin(), chosen_.end());
    assign(entry.id, chosen_);
  };
  while (!queue_.empty()) {
    auto head = queue_.begin();
    const Entry entry = head->second.front();
    if (!Choose(entry, now_us, &chosen_)) break;
    head->second.pop_front();
    if (head->second.empty()) queue_.erase(head);
    --queued_;
    place(entry);
  }
  if (queue_.empty()) return;
  // The head is blocked: it reserves, later tasks backfill around it.
  Reserve(queue_.begin()->second.front(), now_us);
  int32_t scanned = 0;
  for (auto level = queue_.begin(); level != queue_.end() && scanned < kBackfillScan;) {
    if (free_ == 0) break;  // no rank takes anything
    auto& entries = level->second;
    size_t i = level == queue_.begin() ? 1 : 0;
    while (i < entries.size() && scanned < kBackfillScan) {
      ++scanned;
      if (!Choose(entries[i], now_us, &chosen_)) {
        ++i;
        continue;
      }
      const Entry entry = entries[i];
      entries.erase(entries.begin() + static_cast<long>(i));
      --queued_;
      place(entry);
    }
    if (entries.empty()) {
      level = queue_.erase(level);
    } else {
      ++level;
    }
  }
}

}  // namespace deeprc::runtime::internal
