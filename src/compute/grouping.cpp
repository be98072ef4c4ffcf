#include "compute/grouping.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "deeprc/compute/hash.h"
#include "deeprc/core/thread_pool.h"

namespace deeprc::compute::internal {
namespace {

// Below this many rows per part, splitting the work costs more than it saves.
constexpr int64_t kMinRowsPerPart = int64_t{1} << 15;
constexpr int64_t kInitialCapacity = 1024;
// Partitioned grouping aims at partitions of about this many rows (their tables stay in cache).
constexpr int64_t kRowsPerPartition = int64_t{1} << 15;
constexpr int kMaxPartitionBits = 8;

template <size_t kBytes>
struct UnsignedOfSize;
template <>
struct UnsignedOfSize<1> {
  using type = uint8_t;
};
template <>
struct UnsignedOfSize<2> {
  using type = uint16_t;
};
template <>
struct UnsignedOfSize<4> {
  using type = uint32_t;
};
template <>
struct UnsignedOfSize<8> {
  using type = uint64_t;
};

// A single fixed-width key (integers, floats, date32, timestamp). Keys are compared as the bits
// of their normalized value (-0.0 as 0.0, one NaN), so equality is one integer compare. The slot
// holds the key itself: a probe touches one cache line.
template <typename T>
class FixedKeyMapper final : public GroupMapper {
  using Bits = typename UnsignedOfSize<sizeof(T)>::type;
  struct Slot {
    Bits key;
    uint32_t group;
  };

 public:
  // `dense`: integer keys whose values span a small range [dense_min, dense_min + dense_span)
  // are looked up in an array indexed by value instead of the hash table.
  FixedKeyMapper(Column column, bool drop_null_keys, bool dense = false, int64_t dense_min = 0,
                 int64_t dense_span = 0)
      : column_(std::move(column)), drop_null_keys_(drop_null_keys), dense_min_(dense_min) {
    may_skip_ = drop_null_keys_ && column_.has_nulls();
    if (dense) {
      dense_.assign(static_cast<size_t>(dense_span), kSkipGroup);
    } else {
      Rehash(kInitialCapacity);
    }
  }

  std::unique_ptr<GroupMapper> MakeEmpty() const override {
    return std::make_unique<FixedKeyMapper>(column_, drop_null_keys_, !dense_.empty(), dense_min_,
                                            static_cast<int64_t>(dense_.size()));
  }

  void Map(int64_t begin, int64_t end, uint32_t* group_ids) override {
    const T* values = column_.Values<T>();
    if (!dense_.empty() && !column_.has_nulls()) {
      for (int64_t i = begin; i < end; ++i) {
        const size_t index = DenseIndex(values[i]);
        const uint32_t group = dense_[index];
        group_ids[i - begin] =
            group != kSkipGroup ? group : InsertDense(index, ToBits(values[i]), i);
      }
      return;
    }
    if (!column_.has_nulls()) {
      // Hashes first, then probes with the slot of a row kPrefetchDistance ahead already on its
      // way into the cache: the table outgrows L2 with a few hundred thousand groups.
      constexpr int64_t kPrefetchDistance = 16;
      Bits keys[kGroupBatch];
      uint64_t hashes[kGroupBatch];
      const int64_t n = end - begin;
      for (int64_t k = 0; k < n; ++k) {
        keys[k] = ToBits(values[begin + k]);
        hashes[k] = HashWord(keys[k]);
      }
      for (int64_t k = 0; k < n; ++k) {
        if (k + kPrefetchDistance < n) {
          __builtin_prefetch(&slots_[hashes[k + kPrefetchDistance] & mask_]);
        }
        group_ids[k] = FindOrInsert(keys[k], hashes[k], begin + k);
      }
      return;
    }
    const uint8_t* validity = column_.validity_bits();
    const int64_t offset = column_.offset();
    for (int64_t i = begin; i < end; ++i) {
      group_ids[i - begin] =
          bitmap::GetBit(validity, offset + i) ? FindOrInsert(ToBits(values[i]), i) : NullGroup(i);
    }
  }

  void MapRows(const uint32_t* rows, int64_t count, uint32_t* group_ids) override {
    const T* values = column_.Values<T>();
    if (!column_.has_nulls()) {
      for (int64_t k = 0; k < count; ++k)
        group_ids[k] = FindOrInsert(ToBits(values[rows[k]]), rows[k]);
      return;
    }
    const uint8_t* validity = column_.validity_bits();
    const int64_t offset = column_.offset();
    for (int64_t k = 0; k < count; ++k) {
      const int64_t row = rows[k];
      group_ids[k] = bitmap::GetBit(validity, offset + row) ? FindOrInsert(ToBits(values[row]), row)
                                                            : NullGroup(row);
    }
  }

  void Reserve(int64_t groups) override {
    if (!dense_.empty()) return;
    size_t capacity = slots_.size();
    while (capacity < static_cast<size_t>(groups) * 2) capacity *= 2;
    if (capacity > slots_.size()) Rehash(capacity);
    first_rows_.reserve(static_cast<size_t>(groups));
    keys_.reserve(static_cast<size_t>(groups));
  }

  void Clear() override {
    if (!dense_.empty()) {
      // Every group's slot but the null group's (whose key is a placeholder, not a value).
      for (size_t g = 0; g < keys_.size(); ++g) {
        if (g != null_group_) dense_[DenseIndex(FromBits(keys_[g]))] = kSkipGroup;
      }
    }
    std::fill(slots_.begin(), slots_.end(), Slot{0, kSkipGroup});
    used_ = 0;
    first_rows_.clear();
    keys_.clear();
    null_group_ = kSkipGroup;
  }

  bool HasKeyWords() const override { return true; }

  void KeyWords(int64_t begin, int64_t end, uint64_t* words) const override {
    const T* values = column_.Values<T>();
    for (int64_t i = begin; i < end; ++i) words[i - begin] = ToBits(values[i]);
  }

  void MapKeyWords(const uint64_t* words, const uint32_t* rows, int64_t count,
                   uint32_t* group_ids) override {
    if (!column_.has_nulls()) {
      for (int64_t k = 0; k < count; ++k) {
        group_ids[k] = FindOrInsert(static_cast<Bits>(words[k]), rows[k]);
      }
      return;
    }
    const uint8_t* validity = column_.validity_bits();
    const int64_t offset = column_.offset();
    for (int64_t k = 0; k < count; ++k) {
      group_ids[k] = bitmap::GetBit(validity, offset + rows[k])
                         ? FindOrInsert(static_cast<Bits>(words[k]), rows[k])
                         : NullGroup(rows[k]);
    }
  }

  void HashRows(int64_t begin, int64_t end, uint64_t* hashes) const override {
    const T* values = column_.Values<T>();
    for (int64_t i = begin; i < end; ++i) {
      hashes[i - begin] = column_.IsValid(i) ? HashWord(ToBits(values[i])) : kNullHash;
    }
  }

  void Absorb(const GroupMapper& other_base, uint32_t* map) override {
    const auto& other = static_cast<const FixedKeyMapper&>(other_base);
    const auto& rows = other.first_rows();
    for (size_t g = 0; g < rows.size(); ++g) {
      map[g] = g == other.null_group_ ? NullGroup(rows[g]) : FindOrInsert(other.keys_[g], rows[g]);
    }
  }

 private:
  static Bits ToBits(T value) {
    value = NormalizeKey(value);
    Bits bits;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
  }

  uint32_t NullGroup(int64_t row) {
    if (drop_null_keys_) return kSkipGroup;
    if (null_group_ == kSkipGroup) {
      null_group_ = static_cast<uint32_t>(first_rows_.size());
      first_rows_.push_back(row);
      keys_.push_back(0);
    }
    return null_group_;
  }

  static T FromBits(Bits bits) {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
  }

  size_t DenseIndex(T value) const {
    if constexpr (std::is_integral_v<T>) {
      return static_cast<size_t>(static_cast<uint64_t>(static_cast<int64_t>(value)) -
                                 static_cast<uint64_t>(dense_min_));
    } else {
      return 0;  // not reached: only integer keys are dense
    }
  }

  __attribute__((noinline)) uint32_t InsertDense(size_t index, Bits key, int64_t row) {
    const auto group = static_cast<uint32_t>(first_rows_.size());
    dense_[index] = group;
    first_rows_.push_back(row);
    keys_.push_back(key);
    return group;
  }

  uint32_t FindOrInsert(Bits key, int64_t row) {
    if (!dense_.empty()) {
      const size_t index = DenseIndex(FromBits(key));
      const uint32_t group = dense_[index];
      return group != kSkipGroup ? group : InsertDense(index, key, row);
    }
    return FindOrInsert(key, HashWord(key), row);
  }

  inline uint32_t FindOrInsert(Bits key, uint64_t hash, int64_t row) {
    size_t index = hash & mask_;
    while (true) {
      const Slot& slot = slots_[index];
      if (slot.key == key && slot.group != kSkipGroup) return slot.group;
      if (slot.group == kSkipGroup) return Insert(index, key, row);
      index = (index + 1) & mask_;
    }
  }

  __attribute__((noinline)) uint32_t Insert(size_t index, Bits key, int64_t row) {
    const auto group = static_cast<uint32_t>(first_rows_.size());
    slots_[index] = Slot{key, group};
    first_rows_.push_back(row);
    keys_.push_back(key);
    if (++used_ * 2 > slots_.size()) Rehash(slots_.size() * 2);
    return group;
  }

  void Rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{0, kSkipGroup});
    mask_ = capacity - 1;
    for (const Slot& slot : old) {
      if (slot.group == kSkipGroup) continue;
      size_t index = HashWord(slot.key) & mask_;
      while (slots_[index].group != kSkipGroup) index = (index + 1) & mask_;
      slots_[index] = slot;
    }
  }

  Column column_;
  bool drop_null_keys_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t used_ = 0;
  std::vector<Bits> keys_;  // key of each group (0 for the null group)
  uint32_t null_group_ = kSkipGroup;
  int64_t dense_min_ = 0;
  std::vector<uint32_t> dense_;  // group of key dense_min_ + i, when dense
};

// Rows below which a dense key range is not worth a pass to find it.
constexpr int64_t kDenseMinRows = int64_t{1} << 16;
// Largest value range looked up densely: 4M slots (16 MiB), and no more than twice the rows.
constexpr uint64_t kDenseMaxSpan = uint64_t{1} << 22;

// The range of an integer key column as (min, max - min); null slots are included (they only
// widen it).
template <typename T>
std::pair<int64_t, uint64_t> KeyRange(const Column& column) {
  const T* values = column.Values<T>();
  const int64_t n = column.length();
  // Four independent minima and maxima, so that the compares do not wait on each other.
  T low[4] = {values[0], values[0], values[0], values[0]};
  T high[4] = {values[0], values[0], values[0], values[0]};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      low[k] = values[i + k] < low[k] ? values[i + k] : low[k];
      high[k] = values[i + k] > high[k] ? values[i + k] : high[k];
    }
  }
  for (; i < n; ++i) {
    low[0] = std::min(low[0], values[i]);
    high[0] = std::max(high[0], values[i]);
  }
  const T min = std::min({low[0], low[1], low[2], low[3]});
  const T max = std::max({high[0], high[1], high[2], high[3]});
  return {static_cast<int64_t>(min), static_cast<uint64_t>(static_cast<int64_t>(max)) -
                                         static_cast<uint64_t>(static_cast<int64_t>(min))};
}

// Any number of keys of any type: rows are hashed a batch at a time, slots hold the hash and the
// group, and a hash match is confirmed by comparing the row with the group's first row.
class RowKeyMapper final : public GroupMapper {
  struct Slot {
    uint64_t hash;
    uint32_t group;
  };

 public:
  RowKeyMapper(KeyColumns keys, bool drop_null_keys)
      : keys_(std::move(keys)), drop_null_keys_(drop_null_keys) {
    bool any_nulls = false;
    for (int k = 0; k < keys_.num_keys(); ++k) any_nulls |= keys_.key(k).has_nulls();
    check_nulls_ = drop_null_keys_ && any_nulls;
    may_skip_ = check_nulls_;
    Rehash(kInitialCapacity);
  }

  std::unique_ptr<GroupMapper> MakeEmpty() const override {
    return std::make_unique<RowKeyMapper>(keys_, drop_null_keys_);
  }

  void Map(int64_t begin, int64_t end, uint32_t* group_ids) override {
    hashes_.resize(static_cast<size_t>(end - begin));
    keys_.Hash(begin, end, hashes_.data());
    for (int64_t i = begin; i < end; ++i) {
      if (check_nulls_ && keys_.AnyNull(i)) {
        group_ids[i - begin] = kSkipGroup;
        continue;
      }
      group_ids[i - begin] = FindOrInsert(hashes_[i - begin], i);
    }
  }

  void MapRows(const uint32_t* rows, int64_t count, uint32_t* group_ids) override {
    for (int64_t k = 0; k < count; ++k) {
      const int64_t row = rows[k];
      if (check_nulls_ && keys_.AnyNull(row)) {
        group_ids[k] = kSkipGroup;
        continue;
      }
      uint64_t hash;
      keys_.Hash(row, row + 1, &hash);
      group_ids[k] = FindOrInsert(hash, row);
    }
  }

  void HashRows(int64_t begin, int64_t end, uint64_t* hashes) const override {
    keys_.Hash(begin, end, hashes);
  }

  void Reserve(int64_t groups) override {
    size_t capacity = slots_.size();
    while (capacity < static_cast<size_t>(groups) * 2) capacity *= 2;
    if (capacity > slots_.size()) Rehash(capacity);
    first_rows_.reserve(static_cast<size_t>(groups));
    group_hashes_.reserve(static_cast<size_t>(groups));
  }

  void Clear() override {
    std::fill(slots_.begin(), slots_.end(), Slot{0, kSkipGroup});
    used_ = 0;
    first_rows_.clear();
    group_hashes_.clear();
  }

  void Absorb(const GroupMapper& other_base, uint32_t* map) override {
    const auto& other = static_cast<const RowKeyMapper&>(other_base);
    const auto& rows = other.first_rows();
    for (size_t g = 0; g < rows.size(); ++g) map[g] = FindOrInsert(other.group_hashes_[g], rows[g]);
  }

 private:
  uint32_t FindOrInsert(uint64_t hash, int64_t row) {
    size_t index = hash & mask_;
    while (true) {
      Slot& slot = slots_[index];
      if (slot.group == kSkipGroup) {
        const auto group = static_cast<uint32_t>(first_rows_.size());
        slot.hash = hash;
        slot.group = group;
        first_rows_.push_back(row);
        group_hashes_.push_back(hash);
        if (++used_ * 2 > slots_.size()) Rehash(slots_.size() * 2);
        return group;
      }
      if (slot.hash == hash && keys_.RowEquals(row, keys_, first_rows_[slot.group])) {
        return slot.group;
      }
      index = (index + 1) & mask_;
    }
  }

  void Rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{0, kSkipGroup});
    mask_ = capacity - 1;
    for (const Slot& slot : old) {
      if (slot.group == kSkipGroup) continue;
      size_t index = slot.hash & mask_;
      while (slots_[index].group != kSkipGroup) index = (index + 1) & mask_;
      slots_[index] = slot;
    }
  }

  KeyColumns keys_;
  bool drop_null_keys_;
  bool check_nulls_ = false;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t used_ = 0;
  std::vector<uint64_t> group_hashes_;
  std::vector<uint64_t> hashes_;
};

// No keys: one group 0 that exists even when there are no rows (whole-table aggregates).
class SingleGroupMapper final : public GroupMapper {
 public:
  SingleGroupMapper() { first_rows_.push_back(0); }
  std::unique_ptr<GroupMapper> MakeEmpty() const override {
    return std::make_unique<SingleGroupMapper>();
  }
  void Map(int64_t begin, int64_t end, uint32_t* group_ids) override {
    std::fill(group_ids, group_ids + (end - begin), 0u);
  }
  void MapRows(const uint32_t* rows, int64_t count, uint32_t* group_ids) override {
    std::fill(group_ids, group_ids + count, 0u);
  }
  void HashRows(int64_t begin, int64_t end, uint64_t* hashes) const override {
    std::fill(hashes, hashes + (end - begin), uint64_t{0});
  }
  void Absorb(const GroupMapper& other, uint32_t* map) override { map[0] = 0; }
  void Clear() override {}
};

}  // namespace

Result<std::unique_ptr<GroupMapper>> MakeGroupMapper(const Table& table,
                                                     const std::vector<int>& keys,
                                                     bool drop_null_keys, bool allow_dense) {
  if (keys.empty()) return std::unique_ptr<GroupMapper>(std::make_unique<SingleGroupMapper>());
  if (keys.size() == 1) {
    const Column& column = table.column(keys[0]);
    if (IsFixedWidth(column.type_id())) {
      return VisitType(column.type_id(), [&]<typename Tag>(Tag) -> std::unique_ptr<GroupMapper> {
        if constexpr (kIsNumberTag<Tag>) {
          using T = typename Tag::CType;
          // uint64 keys above 2^63 would not fit the int64 range arithmetic: hashed.
          if constexpr (std::is_integral_v<T> && !std::is_same_v<T, uint64_t>) {
            if (allow_dense && column.length() >= kDenseMinRows) {
              const auto [low, span] = KeyRange<T>(column);
              if (span < kDenseMaxSpan && span < static_cast<uint64_t>(column.length()) * 2) {
                return std::make_unique<FixedKeyMapper<T>>(column, drop_null_keys, true, low,
                                                           static_cast<int64_t>(span) + 1);
              }
            }
          }
          return std::make_unique<FixedKeyMapper<T>>(column, drop_null_keys);
        } else {
          return nullptr;  // not reached: fixed-width types are number tags
        }
      });
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(auto key_columns, KeyColumns::Make(table, keys));
  return std::unique_ptr<GroupMapper>(
      std::make_unique<RowKeyMapper>(std::move(key_columns), drop_null_keys));
}

Result<Grouping> GroupRows(const Table& table, const std::vector<int>& keys, bool drop_null_keys,
                           int threads, int max_parts, bool want_row_ids,
                           const GroupBatchFn& on_batch) {
  if (threads <= 0) threads = DefaultThreadCount();
  const int64_t rows = table.num_rows();
  if (rows >= int64_t{kSkipGroup}) {
    return Status::NotImplemented("grouping a table of {} rows (at most {} are supported)", rows,
                                  kSkipGroup - 1);
  }
  int64_t parts = max_parts > 0 ? std::min(max_parts, threads) : threads;
  parts = std::clamp<int64_t>(rows / kMinRowsPerPart, 1, parts);

  Grouping grouping;
  DEEPRC_ASSIGN_OR_RAISE(grouping.mapper, MakeGroupMapper(table, keys, drop_null_keys));
  std::vector<std::unique_ptr<GroupMapper>> mappers(static_cast<size_t>(parts));
  for (int64_t p = 1; p < parts; ++p) mappers[p] = grouping.mapper->MakeEmpty();
  grouping.bounds.resize(static_cast<size_t>(parts + 1));
  for (int64_t p = 0; p <= parts; ++p) grouping.bounds[p] = rows * p / parts;

  try {
    if (want_row_ids) grouping.row_group_ids.resize(static_cast<size_t>(rows));
    ParallelFor(parts, threads, [&](int64_t p) {
      GroupMapper& mapper = p == 0 ? *grouping.mapper : *mappers[p];
      std::vector<uint32_t> local(want_row_ids ? 0 : kGroupBatch);
      for (int64_t begin = grouping.bounds[p]; begin < grouping.bounds[p + 1];
           begin += kGroupBatch) {
        const int64_t end = std::min(begin + kGroupBatch, grouping.bounds[p + 1]);
        uint32_t* ids = want_row_ids ? grouping.row_group_ids.data() + begin : local.data();
        mapper.Map(begin, end, ids);
        if (on_batch) on_batch(static_cast<int>(p), begin, end, ids, mapper.num_groups());
      }
    });
    grouping.part_maps.resize(static_cast<size_t>(parts));
    for (int64_t p = 1; p < parts; ++p) {
      grouping.part_maps[p].resize(static_cast<size_t>(mappers[p]->num_groups()));
      grouping.mapper->Absorb(*mappers[p], grouping.part_maps[p].data());
      mappers[p].reset();
    }
    if (want_row_ids && parts > 1) {
      ParallelFor(parts - 1, threads, [&](int64_t q) {
        const int64_t p = q + 1;
        const uint32_t* map = grouping.part_maps[p].data();
        uint32_t* ids = grouping.row_group_ids.data();
        for (int64_t r = grouping.bounds[p]; r < grouping.bounds[p + 1]; ++r) {
          if (ids[r] != kSkipGroup) ids[r] = map[ids[r]];
        }
      });
    }
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory("out of memory while grouping {} rows", rows);
  }
  if (grouping.mapper->num_groups() >= int64_t{kSkipGroup}) {
    return Status::NotImplemented("more than {} groups", kSkipGroup - 1);
  }
  return grouping;
}

Status GroupRowsPartitioned(const Table& table, const std::vector<int>& keys, bool drop_null_keys,
                            int threads, const PartitionFn& on_partition) {
  if (threads <= 0) threads = DefaultThreadCount();
  const int64_t rows = table.num_rows();
  if (rows >= int64_t{kSkipGroup}) {
    return Status::NotImplemented("grouping a table of {} rows (at most {} are supported)", rows,
                                  kSkipGroup - 1);
  }
  // Partitions spread keys over the whole value range: hash tables, never dense arrays.
  DEEPRC_ASSIGN_OR_RAISE(std::unique_ptr<GroupMapper> prototype,
                         MakeGroupMapper(table, keys, drop_null_keys, /*allow_dense=*/false));
  int bits = 0;
  while (bits < kMaxPartitionBits && (kRowsPerPartition << bits) < rows) ++bits;
  const int partitions = 1 << bits;
  const int64_t ranges = std::clamp<int64_t>(rows / kMinRowsPerPart, 1, threads);
  auto range_begin = [&](int64_t r) { return rows * r / ranges; };
  try {
    // 1. The partition of every row (top bits of its key hash), counted per row range.
    std::vector<uint8_t> partition_of(static_cast<size_t>(bits > 0 ? rows : 0));
    std::vector<int64_t> cursor(static_cast<size_t>(ranges * partitions), 0);
    if (bits > 0) {
      ParallelFor(ranges, threads, [&](int64_t r) {
        uint64_t hashes[kGroupBatch];
        int64_t* counts = cursor.data() + r * partitions;
        for (int64_t begin = range_begin(r); begin < range_begin(r + 1); begin += kGroupBatch) {
          const int64_t end = std::min(begin + kGroupBatch, range_begin(r + 1));
          prototype->HashRows(begin, end, hashes);
          for (int64_t i = begin; i < end; ++i) {
            const auto p = static_cast<uint8_t>(hashes[i - begin] >> (64 - bits));
            partition_of[i] = p;
            ++counts[p];
          }
        }
      });
    } else {
      for (int64_t r = 0; r < ranges; ++r) cursor[r] = range_begin(r + 1) - range_begin(r);
    }
    // 2. Where each (range, partition) piece starts: partition-major, ranges in order, so every
    //    partition lists its rows ascending.
    const std::vector<int64_t> partition_begin =
        ScatterStarts(ranges, partitions,
                      [&](int64_t r, int64_t p) -> int64_t& { return cursor[r * partitions + p]; });
    // Fixed-width keys travel with their rows: reading them back through the row numbers would
    // be a cache miss per row.
    const bool with_words = prototype->HasKeyWords();
    std::vector<uint32_t> ordered(static_cast<size_t>(rows));
    std::vector<uint64_t> ordered_words(static_cast<size_t>(with_words ? rows : 0));
    ParallelFor(ranges, threads, [&](int64_t r) {
      int64_t* next = cursor.data() + r * partitions;
      uint64_t words[kGroupBatch];
      for (int64_t begin = range_begin(r); begin < range_begin(r + 1); begin += kGroupBatch) {
        const int64_t end = std::min(begin + kGroupBatch, range_begin(r + 1));
        if (with_words) prototype->KeyWords(begin, end, words);
        for (int64_t i = begin; i < end; ++i) {
          const int64_t slot = next[bits > 0 ? partition_of[i] : 0]++;
          ordered[slot] = static_cast<uint32_t>(i);
          if (with_words) ordered_words[slot] = words[i - begin];
        }
      }
    });
    partition_of = {};
    // 3. Each partition grouped alone. Partitions hold about as many groups as each other, so
    //    a partition's table is sized after the last one finished (no rehashing as it fills).
    std::atomic<int64_t> groups_seen{0};
    std::atomic<int64_t> next_partition{0};
    // One mapper per thread, cleared between partitions: its memory is reused, not returned to
    // the system and faulted in again.
    ParallelFor(std::min<int64_t>(threads, partitions), threads, [&](int64_t) {
      std::unique_ptr<GroupMapper> mapper = prototype->MakeEmpty();
      std::vector<uint32_t> group_ids;
      for (int64_t p = next_partition.fetch_add(1); p < partitions;
           p = next_partition.fetch_add(1)) {
        const int64_t begin = partition_begin[p];
        const int64_t count = partition_begin[p + 1] - begin;
        mapper->Clear();
        mapper->Reserve(std::min(count, groups_seen.load(std::memory_order_relaxed) * 9 / 8));
        group_ids.resize(static_cast<size_t>(count));
        if (with_words) {
          mapper->MapKeyWords(ordered_words.data() + begin, ordered.data() + begin, count,
                              group_ids.data());
        } else {
          mapper->MapRows(ordered.data() + begin, count, group_ids.data());
        }
        groups_seen.store(mapper->num_groups(), std::memory_order_relaxed);
        on_partition(static_cast<int>(p), ordered.data() + begin, count, group_ids.data(), *mapper);
      }
    });
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory("out of memory while grouping {} rows", rows);
  }
  return Status::OK();
}

}  // namespace deeprc::compute::internal
