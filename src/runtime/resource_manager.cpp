#include "deeprc/runtime/resource_manager.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "deeprc/core/check.h"

namespace deeprc::runtime {
namespace {

constexpr int64_t kUntrackedMemory = std::numeric_limits<int64_t>::max();

// The first set bit at or after `from`, or -1.
int32_t NextSetBit(const std::vector<uint64_t>& words, int32_t from) {
  if (from < 0) from = 0;
  size_t word = static_cast<size_t>(from) / 64;
  if (word >= words.size()) return -1;
  uint64_t bits = words[word] & (~uint64_t{0} << (from % 64));
  while (true) {
    if (bits != 0) return static_cast<int32_t>(word * 64 + std::countr_zero(bits));
    if (++word == words.size()) return -1;
    bits = words[word];
  }
}

// The last set bit at or before `from`, or -1.
int32_t PreviousSetBit(const std::vector<uint64_t>& words, int32_t from) {
  if (from < 0) return -1;
  int64_t word = from / 64;
  if (static_cast<size_t>(word) >= words.size()) {
    word = static_cast<int64_t>(words.size()) - 1;
    from = static_cast<int32_t>(word * 64 + 63);
  }
  const int shift = 63 - from % 64;
  uint64_t bits = words[word] & (~uint64_t{0} >> shift);
  while (true) {
    if (bits != 0) return static_cast<int32_t>(word * 64 + 63 - std::countl_zero(bits));
    if (--word < 0) return -1;
    bits = words[word];
  }
}

std::string Plural(int64_t count, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", count, count == 1 ? one : many);
}

}  // namespace

ResourceRequest RequestOf(const TaskDescription& task) {
  return {task.ranks, task.cores_per_rank, task.gpus_per_rank, task.mem_per_rank};
}

Result<ResourceManager> ResourceManager::Make(std::vector<NodeResources> nodes) {
  if (nodes.empty()) return Status::Invalid("a pilot needs at least one node");
  ResourceManager manager;
  int32_t max_gpus = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& node = nodes[i];
    if (node.cores < 0 || node.gpus < 0 || node.memory < 0) {
      return Status::Invalid("node {}: cores, GPUs and memory must not be negative", i);
    }
    if (node.gpus > kMaxGpusPerNode) {
      return Status::Invalid("node {}: {} GPUs, at most {} per node are supported", i, node.gpus,
                             kMaxGpusPerNode);
    }
    manager.max_cores_ = std::max(manager.max_cores_, node.cores);
    max_gpus = std::max(max_gpus, node.gpus);
    manager.total_cores_ += node.cores;
    manager.total_gpus_ += node.gpus;
  }
  manager.gpu_levels_ = max_gpus + 1;
  manager.words_per_node_ = std::max(1, (manager.max_cores_ + 63) / 64);
  manager.capacity_ = std::move(nodes);
  const size_t count = manager.capacity_.size();
  manager.free_.resize(count);
  manager.reserved_.assign(count, 0);
  manager.free_core_bits_.assign(count * manager.words_per_node_, 0);
  manager.free_gpu_bits_.assign(count, 0);
  manager.buckets_.resize(static_cast<size_t>(manager.max_cores_ + 1) * manager.gpu_levels_);
  manager.position_.assign(count, kNotInBucket);
  manager.core_levels_.assign((manager.max_cores_ + 1 + 63) / 64, 0);
  manager.gpu_levels_at_.assign(manager.max_cores_ + 1, 0);
  for (size_t i = 0; i < count; ++i) {
    const auto& node = manager.capacity_[i];
    manager.free_[i] = {node.cores, node.gpus, node.memory == 0 ? kUntrackedMemory : node.memory};
    uint64_t* bits = &manager.free_core_bits_[i * manager.words_per_node_];
    for (int32_t core = 0; core < node.cores; ++core) bits[core / 64] |= uint64_t{1} << (core % 64);
    manager.free_gpu_bits_[i] = node.gpus == 0 ? 0 : (~uint64_t{0} >> (64 - node.gpus));
    manager.AddToBucket(static_cast<int32_t>(i));
  }
  manager.available_cores_ = manager.total_cores_;
  manager.available_gpus_ = manager.total_gpus_;
  return manager;
}

bool ResourceManager::is_core_free(int32_t node, int32_t core) const {
  return (free_core_bits_[static_cast<size_t>(node) * words_per_node_ + core / 64] >> (core % 64)) &
         1;
}

bool ResourceManager::is_gpu_free(int32_t node, int32_t gpu) const {
  return (free_gpu_bits_[node] >> gpu) & 1;
}

void ResourceManager::AddToBucket(int32_t node) {
  DEEPRC_DCHECK(position_[node] == kNotInBucket);
  const Free& free = free_[node];
  auto& bucket = buckets_[BucketOf(free.cores, free.gpus)];
  position_[node] = static_cast<int32_t>(bucket.size());
  bucket.push_back(node);
  core_levels_[free.cores / 64] |= uint64_t{1} << (free.cores % 64);
  gpu_levels_at_[free.cores] |= uint64_t{1} << free.gpus;
}

void ResourceManager::RemoveFromBucket(int32_t node) {
  const Free& free = free_[node];
  auto& bucket = buckets_[BucketOf(free.cores, free.gpus)];
  const int32_t position = position_[node];
  DEEPRC_DCHECK(position != kNotInBucket && bucket[position] == node);
  const int32_t last = bucket.back();
  bucket[position] = last;
  position_[last] = position;
  bucket.pop_back();
  position_[node] = kNotInBucket;
  if (bucket.empty()) {
    uint64_t& gpu_mask = gpu_levels_at_[free.cores];
    gpu_mask &= ~(uint64_t{1} << free.gpus);
    if (gpu_mask == 0) core_levels_[free.cores / 64] &= ~(uint64_t{1} << (free.cores % 64));
  }
}

int32_t ResourceManager::FindNode(int32_t cores, int32_t gpus, int64_t memory) const {
  if (cores > max_cores_ || gpus >= gpu_levels_) return -1;
  for (int32_t level = NextSetBit(core_levels_, cores); level >= 0;
       level = NextSetBit(core_levels_, level + 1)) {
    uint64_t mask = gpu_levels_at_[level] >> gpus;
    while (mask != 0) {
      const int32_t gpu_level = gpus + std::countr_zero(mask);
      mask &= mask - 1;
      const auto& bucket = buckets_[BucketOf(level, gpu_level)];
      if (memory <= 0) return bucket.back();
      for (auto it = bucket.rbegin(); it != bucket.rend(); ++it) {
        if (free_[*it].memory >= memory) return *it;
      }
    }
  }
  return -1;
}

int64_t ResourceManager::RanksThatFit(const ResourceRequest& request, int64_t cores, int64_t gpus,
                                      int64_t memory) {
  int64_t ranks = cores / request.cores_per_rank;
  if (request.gpus_per_rank > 0) ranks = std::min(ranks, gpus / request.gpus_per_rank);
  if (request.mem_per_rank > 0) ranks = std::min(ranks, memory / request.mem_per_rank);
  return ranks;
}

void ResourceManager::Take(int32_t node, int32_t ranks, const ResourceRequest& request,
                           Allocation* allocation) {
  if (position_[node] != kNotInBucket) RemoveFromBucket(node);
  uint64_t* core_bits = &free_core_bits_[static_cast<size_t>(node) * words_per_node_];
  uint64_t& gpu_bits = free_gpu_bits_[node];
  int32_t word = 0;
  for (int32_t rank = 0; rank < ranks; ++rank) {
    allocation->Append(node);
    for (int32_t taken = 0; taken < request.cores_per_rank; ++taken) {
      while (core_bits[word] == 0) ++word;
      const int bit = std::countr_zero(core_bits[word]);
      core_bits[word] &= core_bits[word] - 1;
      allocation->Append(word * 64 + bit);
    }
    for (int32_t taken = 0; taken < request.gpus_per_rank; ++taken) {
      const int bit = std::countr_zero(gpu_bits);
      gpu_bits &= gpu_bits - 1;
      allocation->Append(bit);
    }
  }
  Free& free = free_[node];
  const int32_t cores = ranks * request.cores_per_rank;
  const int32_t gpus = ranks * request.gpus_per_rank;
  DEEPRC_DCHECK_LE(cores, free.cores);
  DEEPRC_DCHECK_LE(gpus, free.gpus);
  free.cores -= cores;
  free.gpus -= gpus;
  if (free.memory != kUntrackedMemory) free.memory -= ranks * request.mem_per_rank;
  available_cores_ -= cores;
  available_gpus_ -= gpus;
  AddToBucket(node);
}

bool ResourceManager::TryAllocate(const ResourceRequest& request, Allocation* allocation) {
  if (available_cores_ < request.total_cores() || available_gpus_ < request.total_gpus()) {
    return false;
  }
  *allocation = Allocation(request);
  // The whole task on one node when a node fits it: best fit, so that large holes stay whole.
  const int64_t cores = request.total_cores();
  const int64_t gpus = request.total_gpus();
  if (cores <= max_cores_ && gpus < gpu_levels_) {
    const int32_t node = FindNode(static_cast<int32_t>(cores), static_cast<int32_t>(gpus),
                                  request.ranks * request.mem_per_rank);
    if (node >= 0) {
      Take(node, request.ranks, request, allocation);
      return true;
    }
    if (request.ranks == 1) return false;
  }
  // Spread the ranks: the node with the most free cores first, so that a task takes few nodes.
  struct Pick {
    int32_t node;
    int32_t ranks;
  };
  std::vector<Pick> picks;
  int32_t remaining = request.ranks;
  while (remaining > 0) {
    int32_t found = -1;
    for (int32_t level = PreviousSetBit(core_levels_, max_cores_);
         level >= request.cores_per_rank && found < 0;
         level = PreviousSetBit(core_levels_, level - 1)) {
      uint64_t mask =
          request.gpus_per_rank < gpu_levels_ ? gpu_levels_at_[level] >> request.gpus_per_rank : 0;
      for (; mask != 0 && found < 0; mask &= mask - 1) {
        const int32_t gpu_level = request.gpus_per_rank + std::countr_zero(mask);
        for (int32_t node : buckets_[BucketOf(level, gpu_level)]) {
          if (free_[node].memory >= request.mem_per_rank) {
            found = node;
            break;
          }
        }
      }
    }
    if (found < 0) break;
    const Free& free = free_[found];
    const auto ranks = static_cast<int32_t>(
        std::min<int64_t>(remaining, RanksThatFit(request, free.cores, free.gpus, free.memory)));
    RemoveFromBucket(found);  // so that the search does not find it again
    picks.push_back({found, ranks});
    remaining -= ranks;
  }
  if (remaining > 0) {
    for (const Pick& pick : picks) AddToBucket(pick.node);
    return false;
  }
  for (const Pick& pick : picks) Take(pick.node, pick.ranks, request, allocation);
  return true;
}

void ResourceManager::Release(const Allocation& allocation) {
  const int32_t ranks = allocation.ranks();
  for (int32_t rank = 0; rank < ranks; ++rank) {
    const int32_t node = allocation.node(rank);
    if (position_[node] != kNotInBucket) RemoveFromBucket(node);
    uint64_t* core_bits = &free_core_bits_[static_cast<size_t>(node) * words_per_node_];
    for (int32_t core : allocation.cores(rank)) {
      DEEPRC_DCHECK(((core_bits[core / 64] >> (core % 64)) & 1) == 0);
      core_bits[core / 64] |= uint64_t{1} << (core % 64);
    }
    for (int32_t gpu : allocation.gpus(rank)) {
      DEEPRC_DCHECK(((free_gpu_bits_[node] >> gpu) & 1) == 0);
      free_gpu_bits_[node] |= uint64_t{1} << gpu;
    }
    Free& free = free_[node];
    free.cores += allocation.cores_per_rank_;
    free.gpus += allocation.gpus_per_rank_;
    if (free.memory != kUntrackedMemory) free.memory += allocation.mem_per_rank_;
    if (reserved_[node] == 0) {
      available_cores_ += allocation.cores_per_rank_;
      available_gpus_ += allocation.gpus_per_rank_;
      AddToBucket(node);
    }
  }
}

Status ResourceManager::CheckFits(const ResourceRequest& request) const {
  int32_t max_gpus = gpu_levels_ - 1;
  if (request.cores_per_rank > max_cores_) {
    return Status::Invalid("needs {} per rank, the largest node has {}",
                           Plural(request.cores_per_rank, "core", "cores"), max_cores_);
  }
  if (request.gpus_per_rank > max_gpus) {
    return Status::Invalid("needs {} per rank, the largest node has {}",
                           Plural(request.gpus_per_rank, "GPU", "GPUs"), max_gpus);
  }
  int64_t ranks = 0;
  int64_t max_memory = 0;
  for (const auto& node : capacity_) {
    const int64_t memory = node.memory == 0 ? kUntrackedMemory : node.memory;
    max_memory = std::max(max_memory, memory);
    ranks += RanksThatFit(request, node.cores, node.gpus, memory);
  }
  if (request.mem_per_rank > max_memory) {
    return Status::Invalid("needs {} bytes of memory per rank, the largest node has {}",
                           request.mem_per_rank, max_memory);
  }
  if (ranks == 0) {
    return Status::Invalid(
        "needs {}, {} and {} bytes of memory on one node for a rank, no node "
        "has them all",
        Plural(request.cores_per_rank, "core", "cores"),
        Plural(request.gpus_per_rank, "GPU", "GPUs"), request.mem_per_rank);
  }
  if (ranks < request.ranks) {
    return Status::Invalid(
        "needs {} of {}{}, the pilot holds at most {} such ranks",
        Plural(request.ranks, "rank", "ranks"), Plural(request.cores_per_rank, "core", "cores"),
        request.gpus_per_rank > 0
            ? fmt::format(" and {}", Plural(request.gpus_per_rank, "GPU", "GPUs"))
            : std::string(),
        ranks);
  }
  return Status::OK();
}

std::vector<int32_t> ResourceManager::Reserve(const ResourceRequest& request) {
  std::vector<int32_t> picks;
  int64_t remaining = request.ranks;
  for (int32_t level = PreviousSetBit(core_levels_, max_cores_); level >= 0 && remaining > 0;
       level = PreviousSetBit(core_levels_, level - 1)) {
    // More free GPUs first as well: those nodes drain sooner for a GPU task.
    for (int32_t gpu_level = gpu_levels_ - 1; gpu_level >= 0 && remaining > 0; --gpu_level) {
      if (((gpu_levels_at_[level] >> gpu_level) & 1) == 0) continue;
      for (int32_t node : buckets_[BucketOf(level, gpu_level)]) {
        const auto& capacity = capacity_[node];
        const int64_t ranks =
            RanksThatFit(request, capacity.cores, capacity.gpus,
                         capacity.memory == 0 ? kUntrackedMemory : capacity.memory);
        if (ranks <= 0) continue;
        picks.push_back(node);
        remaining -= ranks;
        if (remaining <= 0) break;
      }
    }
  }
  if (remaining > 0) return {};
  ReserveNodes(picks);
  return picks;
}

void ResourceManager::ReserveNodes(std::span<const int32_t> nodes) {
  for (int32_t node : nodes) {
    if (reserved_[node] != 0) continue;
    RemoveFromBucket(node);
    reserved_[node] = 1;
    available_cores_ -= free_[node].cores;
    available_gpus_ -= free_[node].gpus;
  }
}

void ResourceManager::Unreserve(std::span<const int32_t> nodes) {
  for (int32_t node : nodes) {
    if (reserved_[node] == 0) continue;
    reserved_[node] = 0;
    available_cores_ += free_[node].cores;
    available_gpus_ += free_[node].gpus;
    AddToBucket(node);
  }
}

}  // namespace deeprc::runtime
