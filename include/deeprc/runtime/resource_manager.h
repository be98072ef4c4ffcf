#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"

namespace deeprc::runtime {

// The resources one task asks for: `ranks` ranks, each with its cores (and GPUs and memory) on
// one node; the ranks of a task may spread over nodes.
struct ResourceRequest {
  int32_t ranks = 1;
  int32_t cores_per_rank = 1;
  int32_t gpus_per_rank = 0;
  int64_t mem_per_rank = 0;

  int64_t total_cores() const { return int64_t{ranks} * cores_per_rank; }
  int64_t total_gpus() const { return int64_t{ranks} * gpus_per_rank; }
  bool operator==(const ResourceRequest&) const = default;
};

ResourceRequest RequestOf(const TaskDescription& task);

// Where a task's ranks run: for each rank its node, the indexes of its cores on that node and of
// its GPUs. Stored flat, rank r at r × stride: [node, cores_per_rank core indexes, gpus_per_rank
// GPU indexes]. Small allocations (a rank of up to 8 cores and 1 GPU) live inside the object, so
// that ending a task touches one place in memory; larger ones take one heap block.
class Allocation {
 public:
  Allocation() = default;
  explicit Allocation(const ResourceRequest& request)
      : cores_per_rank_(request.cores_per_rank),
        gpus_per_rank_(request.gpus_per_rank),
        mem_per_rank_(request.mem_per_rank) {
    const size_t slots = static_cast<size_t>(request.ranks) * stride();
    if (slots > kInlineSlots) heap_ = std::make_unique<int32_t[]>(slots);
  }
  Allocation(Allocation&&) noexcept = default;
  Allocation& operator=(Allocation&&) noexcept = default;

  int32_t ranks() const { return static_cast<int32_t>(size_ / stride()); }
  int32_t node(int32_t rank) const { return data()[static_cast<size_t>(rank) * stride()]; }
  std::span<const int32_t> cores(int32_t rank) const {
    return {data() + static_cast<size_t>(rank) * stride() + 1,
            static_cast<size_t>(cores_per_rank_)};
  }
  std::span<const int32_t> gpus(int32_t rank) const {
    return {data() + static_cast<size_t>(rank) * stride() + 1 + cores_per_rank_,
            static_cast<size_t>(gpus_per_rank_)};
  }
  int32_t cores_per_rank() const { return cores_per_rank_; }
  int32_t gpus_per_rank() const { return gpus_per_rank_; }
  int64_t mem_per_rank() const { return mem_per_rank_; }
  bool empty() const { return size_ == 0; }

 private:
  friend class ResourceManager;
  static constexpr size_t kInlineSlots = 10;
  size_t stride() const { return 1 + static_cast<size_t>(cores_per_rank_ + gpus_per_rank_); }
  const int32_t* data() const { return heap_ ? heap_.get() : inline_.data(); }
  void Append(int32_t value) { (heap_ ? heap_.get() : inline_.data())[size_++] = value; }

  uint32_t size_ = 0;
  int32_t cores_per_rank_ = 0;
  int32_t gpus_per_rank_ = 0;
  int64_t mem_per_rank_ = 0;
  std::array<int32_t, kInlineSlots> inline_{};
  std::unique_ptr<int32_t[]> heap_;
};

// Nodes × core slots × GPU slots × memory, and which of them are free.
//
// Nodes with free capacity are kept in buckets by (free cores, free GPUs); a bitmap over the
// core levels, and per level a mask of the GPU levels present, finds the fullest node that still
// fits a rank (best fit) in time independent of the node count. Memory is checked on the nodes
// of a bucket in turn (only tasks that ask for memory pay for it). Reserved nodes leave the
// buckets: only an allocation that asks for them (`Unreserve` first) can use them.
class ResourceManager {
 public:
  static constexpr int32_t kMaxGpusPerNode = 63;

  // At most kMaxGpusPerNode GPUs per node; any number of cores.
  static Result<ResourceManager> Make(std::vector<NodeResources> nodes);

  int32_t node_count() const { return static_cast<int32_t>(capacity_.size()); }
  const NodeResources& capacity(int32_t node) const { return capacity_[node]; }
  int32_t free_cores(int32_t node) const { return free_[node].cores; }
  int32_t free_gpus(int32_t node) const { return free_[node].gpus; }
  int64_t free_memory(int32_t node) const { return free_[node].memory; }
  bool is_core_free(int32_t node, int32_t core) const;
  bool is_gpu_free(int32_t node, int32_t gpu) const;
  int64_t total_cores() const { return total_cores_; }
  int64_t total_gpus() const { return total_gpus_; }
  // Free cores and GPUs on nodes that are not reserved.
  int64_t available_cores() const { return available_cores_; }
  int64_t available_gpus() const { return available_gpus_; }

  // OK when the request fits the empty pilot; otherwise the reason, e.g.
  // "needs 8 cores per rank, the largest node has 4".
  Status CheckFits(const ResourceRequest& request) const;

  // Places the request on free, unreserved slots now, or returns false and changes nothing.
  bool TryAllocate(const ResourceRequest& request, Allocation* allocation);
  // Frees what an allocation holds.
  void Release(const Allocation& allocation);

  // Takes unreserved nodes out of use for others, enough that the request fits them once they
  // are free (by capacity); prefers the nodes with the most free cores now, which drain first.
  // Returns the nodes, or none when the unreserved nodes cannot hold it.
  std::vector<int32_t> Reserve(const ResourceRequest& request);
  void Unreserve(std::span<const int32_t> nodes);
  // Reserves these nodes again (after Unreserve, for an attempt that did not fit).
  void ReserveNodes(std::span<const int32_t> nodes);
  bool is_reserved(int32_t node) const { return reserved_[node] != 0; }

 private:
  struct Free {
    int32_t cores = 0;
    int32_t gpus = 0;
    int64_t memory = 0;  // INT64_MAX when the node does not track memory
  };
  static constexpr int32_t kNotInBucket = -1;

  ResourceManager() = default;
  int32_t BucketOf(int32_t cores, int32_t gpus) const { return cores * gpu_levels_ + gpus; }
  void AddToBucket(int32_t node);
  void RemoveFromBucket(int32_t node);
  // The best-fit node for `count` copies of one rank, or -1.
  int32_t FindNode(int32_t cores, int32_t gpus, int64_t memory) const;
  // How many ranks of the request fit in `free` / in a node's capacity.
  static int64_t RanksThatFit(const ResourceRequest& request, int64_t cores, int64_t gpus,
                              int64_t memory);
  void Take(int32_t node, int32_t ranks, const ResourceRequest& request, Allocation* allocation);

  std::vector<NodeResources> capacity_;
  std::vector<Free> free_;
  std::vector<uint8_t> reserved_;
  int32_t words_per_node_ = 0;
  std::vector<uint64_t> free_core_bits_;  // words_per_node_ words per node; 1 = free
  std::vector<uint64_t> free_gpu_bits_;   // one word per node; 1 = free

  int32_t max_cores_ = 0;
  int32_t gpu_levels_ = 1;  // max GPUs per node + 1
  int64_t total_cores_ = 0;
  int64_t total_gpus_ = 0;
  int64_t available_cores_ = 0;
  int64_t available_gpus_ = 0;

  std::vector<std::vector<int32_t>> buckets_;  // by BucketOf(free cores, free GPUs)
  std::vector<int32_t> position_;              // of each node in its bucket, or kNotInBucket
  std::vector<uint64_t> core_levels_;          // bit k: some bucket with k free cores is used
  std::vector<uint64_t> gpu_levels_at_;  // per core level: bit g set when bucket (k, g) is used
};

}  // namespace deeprc::runtime
