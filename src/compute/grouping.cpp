#include "compute/grouping.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "deeprc/compute/hash.h"
#include "deeprc/core/thread_pool.h"

namespace deeprc::compute::internal {
namespace {

// Below this many rows per part, splitting the work costs more than it saves.
constexpr int64_t kMinRowsPerPart = int64_t{1} << 15;
constexpr int64_t kInitialCapacity = 1024;

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
  FixedKeyMapper(Column column, bool drop_null_keys)
      : column_(std::move(column)), drop_null_keys_(drop_null_keys) {
    may_skip_ = drop_null_keys_ && column_.has_nulls();
    Rehash(kInitialCapacity);
  }

  std::unique_ptr<GroupMapper> MakeEmpty() const override {
    return std::make_unique<FixedKeyMapper>(column_, drop_null_keys_);
  }

  void Map(int64_t begin, int64_t end, uint32_t* group_ids) override {
    const T* values = column_.Values<T>();
    if (!column_.has_nulls()) {
      for (int64_t i = begin; i < end; ++i) group_ids[i - begin] = FindOrInsert(ToBits(values[i]), i);
      return;
    }
    const uint8_t* validity = column_.validity_bits();
    const int64_t offset = column_.offset();
    for (int64_t i = begin; i < end; ++i) {
      group_ids[i - begin] = bitmap::GetBit(validity, offset + i)
                                 ? FindOrInsert(ToBits(values[i]), i)
                                 : NullGroup(i);
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

  uint32_t FindOrInsert(Bits key, int64_t row) {
    size_t index = HashWord(key) & mask_;
    while (true) {
      Slot& slot = slots_[index];
      if (slot.group == kSkipGroup) {
        const auto group = static_cast<uint32_t>(first_rows_.size());
        slot.key = key;
        slot.group = group;
        first_rows_.push_back(row);
        keys_.push_back(key);
        if (++used_ * 2 > slots_.size()) Rehash(slots_.size() * 2);
        return group;
      }
      if (slot.key == key) return slot.group;
      index = (index + 1) & mask_;
    }
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
};

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
  void Absorb(const GroupMapper& other, uint32_t* map) override { map[0] = 0; }
};

}  // namespace

Result<std::unique_ptr<GroupMapper>> MakeGroupMapper(const Table& table,
                                                     const std::vector<int>& keys,
                                                     bool drop_null_keys) {
  if (keys.empty()) return std::unique_ptr<GroupMapper>(std::make_unique<SingleGroupMapper>());
  if (keys.size() == 1) {
    const Column& column = table.column(keys[0]);
    if (IsFixedWidth(column.type_id())) {
      return VisitType(column.type_id(), [&]<typename Tag>(Tag) -> std::unique_ptr<GroupMapper> {
        if constexpr (kIsNumberTag<Tag>) {
          return std::make_unique<FixedKeyMapper<typename Tag::CType>>(column, drop_null_keys);
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

}  // namespace deeprc::compute::internal
