#pragma once

// Private to deeprc_compute: maps rows to dense group ids (in order of first appearance) with
// open-addressing hash tables, and runs that over contiguous row ranges on several threads whose
// partial tables are merged in range order. Used by group-by, unique and the set operations.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute::internal {

// The group id of a row that belongs to no group (a null key with drop_null_keys).
inline constexpr uint32_t kSkipGroup = 0xFFFFFFFFu;

// Rows handed to the per-batch callbacks at a time: small enough that a batch's group ids stay in
// L1, large enough that a virtual call per batch costs nothing.
inline constexpr int64_t kGroupBatch = 2048;

class GroupMapper {
 public:
  virtual ~GroupMapper() = default;

  // Assigns group ids to rows [begin, end), which must follow the rows mapped before; a key not
  // seen before gets the next id and `row` as its first row.
  virtual void Map(int64_t begin, int64_t end, uint32_t* group_ids) = 0;
  // Adds the groups of `other` (a mapper over later rows of the same table), in other's order;
  // map[g] receives the id here of other's group g.
  virtual void Absorb(const GroupMapper& other, uint32_t* map) = 0;
  // Like Map, for the rows listed (ascending, after the rows mapped before).
  virtual void MapRows(const uint32_t* rows, int64_t count, uint32_t* group_ids) = 0;
  // The hash Map uses for rows [begin, end) (for partitioning rows by key).
  virtual void HashRows(int64_t begin, int64_t end, uint64_t* hashes) const = 0;
  // Mappers of one fixed-width key can hand out the key of each row as a 64-bit word, so that
  // partitioned grouping moves the keys with the rows and then reads them sequentially.
  virtual bool HasKeyWords() const { return false; }
  virtual void KeyWords(int64_t begin, int64_t end, uint64_t* words) const {}
  // Like MapRows, with the key words of those rows.
  virtual void MapKeyWords(const uint64_t* words, const uint32_t* rows, int64_t count,
                           uint32_t* group_ids) {
    MapRows(rows, count, group_ids);
  }
  // Forgets every group but keeps the memory, for reuse on another partition.
  virtual void Clear() = 0;
  // Makes room for about `groups` groups before any are added.
  virtual void Reserve(int64_t groups) {}
  // A fresh, empty mapper of the same kind over the same keys.
  virtual std::unique_ptr<GroupMapper> MakeEmpty() const = 0;

  int64_t num_groups() const { return static_cast<int64_t>(first_rows_.size()); }
  // First row of each group, ascending (groups are numbered in order of first appearance).
  const std::vector<int64_t>& first_rows() const { return first_rows_; }
  // Whether Map may produce kSkipGroup.
  bool may_skip() const { return may_skip_; }

 protected:
  std::vector<int64_t> first_rows_;
  bool may_skip_ = false;
};

// A mapper over the key columns `keys` of `table`: a specialised one for a single fixed-width key
// (with allow_dense, an integer key whose values span a small range is looked up in an array
// indexed by value, found with one pass over the column), a general one (hashes and row
// comparison) otherwise. With no keys at all, every row (and an empty table too) falls in one
// group 0.
Result<std::unique_ptr<GroupMapper>> MakeGroupMapper(const Table& table,
                                                     const std::vector<int>& keys,
                                                     bool drop_null_keys, bool allow_dense = true);

struct Grouping {
  std::unique_ptr<GroupMapper> mapper;  // groups of the whole table
  // The row ranges the table was split into: part p covers [bounds[p], bounds[p + 1]).
  std::vector<int64_t> bounds;
  // part_maps[p][local id] = global id, for every part but the first (whose ids are global).
  std::vector<std::vector<uint32_t>> part_maps;
  // With want_row_ids: the global group id of every row (kSkipGroup for skipped rows).
  std::vector<uint32_t> row_group_ids;
  int num_parts() const { return static_cast<int>(bounds.size()) - 1; }
};

// Called for each batch of rows [begin, end) of part `part`, with their part-local group ids;
// `groups` is the part's group count after the batch.
using GroupBatchFn = std::function<void(int part, int64_t begin, int64_t end,
                                        const uint32_t* group_ids, int64_t groups)>;

// Splits the table into contiguous ranges, maps each on its own thread with its own mapper
// (calling on_batch), then merges the mappers in range order, so that the merged group ids are
// still in order of first appearance. `max_parts` bounds the number of ranges (0: threads).
// on_batch may be empty.
Result<Grouping> GroupRows(const Table& table, const std::vector<int>& keys, bool drop_null_keys,
                           int threads, int max_parts, bool want_row_ids,
                           const GroupBatchFn& on_batch);

// Called once per hash partition with its rows (ascending), their group ids and the partition's
// mapper. Partitions hold disjoint sets of keys, so their groups are disjoint.
using PartitionFn = std::function<void(int partition, const uint32_t* rows, int64_t count,
                                       const uint32_t* group_ids, const GroupMapper& mapper)>;

// For many groups: splits the rows by the hash of their key into partitions (a radix scatter of
// row numbers), then groups each partition on its own, partitions spread over the threads; no
// partial tables are merged. Group ids are per partition.
Status GroupRowsPartitioned(const Table& table, const std::vector<int>& keys, bool drop_null_keys,
                            int threads, const PartitionFn& on_partition);

}  // namespace deeprc::compute::internal
