#include "deeprc/compute/hash.h"

#include <xxhash.h>

#include "deeprc/core/thread_pool.h"

namespace deeprc::compute {

uint64_t HashBytes(const void* data, size_t size) { return XXH3_64bits(data, size); }

void HashColumn(const Column& column, int64_t begin, int64_t end, bool combine, uint64_t* out) {
  VisitType(column.type_id(), [&]<typename Tag>(Tag) {
    for (int64_t i = begin; i < end; ++i) {
      uint64_t h;
      if (column.IsNull(i)) {
        h = kNullHash;
      } else if constexpr (std::is_same_v<Tag, BoolTag>) {
        h = HashWord(column.GetBool(i) ? 1 : 2);
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        h = HashString(column.GetString(i));
      } else {
        h = HashNumber(column.Value<typename Tag::CType>(i));
      }
      uint64_t& slot = out[i - begin];
      slot = combine ? HashCombine(slot, h) : h;
    }
  });
}

Result<KeyColumns> KeyColumns::Make(const Table& table, const std::vector<int>& keys) {
  if (keys.empty()) return Status::Invalid("no key columns given");
  KeyColumns result;
  result.num_rows_ = table.num_rows();
  for (int key : keys) {
    if (key < 0 || key >= table.num_columns()) {
      return Status::Invalid("key column index {} out of range", key);
    }
    result.columns_.push_back(table.column(key));
  }
  return result;
}

Result<KeyColumns> KeyColumns::Make(const Table& table, const std::vector<std::string>& keys) {
  DEEPRC_ASSIGN_OR_RAISE(auto indices, table.schema().GetFieldIndices(keys));
  return Make(table, indices);
}

void KeyColumns::Hash(int64_t begin, int64_t end, uint64_t* out) const {
  for (size_t k = 0; k < columns_.size(); ++k) HashColumn(columns_[k], begin, end, k > 0, out);
}

std::vector<uint64_t> KeyColumns::HashAll(int threads) const {
  std::vector<uint64_t> hashes(static_cast<size_t>(num_rows_));
  constexpr int64_t kMorsel = 1 << 16;
  const int64_t morsels = (num_rows_ + kMorsel - 1) / kMorsel;
  ParallelFor(morsels, threads, [&](int64_t m) {
    const int64_t begin = m * kMorsel;
    const int64_t end = std::min(num_rows_, begin + kMorsel);
    Hash(begin, end, hashes.data() + begin);
  });
  return hashes;
}

bool KeyColumns::AnyNull(int64_t row) const {
  for (const auto& column : columns_) {
    if (column.IsNull(row)) return true;
  }
  return false;
}

bool KeyColumns::RowEquals(int64_t i, const KeyColumns& other, int64_t j) const {
  for (size_t k = 0; k < columns_.size(); ++k) {
    const Column& a = columns_[k];
    const Column& b = other.columns_[k];
    const bool a_null = a.IsNull(i);
    const bool b_null = b.IsNull(j);
    if (a_null || b_null) {
      if (a_null != b_null) return false;
      continue;
    }
    const bool equal = VisitType(a.type_id(), [&]<typename Tag>(Tag) {
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        return a.GetBool(i) == b.GetBool(j);
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        return a.GetString(i) == b.GetString(j);
      } else {
        using T = typename Tag::CType;
        return KeyValuesEqual(a.Value<T>(i), b.Value<T>(j));
      }
    });
    if (!equal) return false;
  }
  return true;
}

Status KeyColumns::CheckComparable(const KeyColumns& other) const {
  if (other.num_keys() != num_keys()) {
    return Status::Invalid("{} key columns on one side and {} on the other", num_keys(),
                           other.num_keys());
  }
  for (int k = 0; k < num_keys(); ++k) {
    if (!(columns_[k].type() == other.columns_[k].type())) {
      return Status::TypeError("key {} is {} on one side and {} on the other", k,
                               columns_[k].type().ToString(), other.columns_[k].type().ToString());
    }
  }
  return Status::OK();
}

}  // namespace deeprc::compute
