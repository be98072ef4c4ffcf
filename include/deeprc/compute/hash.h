#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

// Hashes are the same on every process and machine (no random seed), so that ranks of a
// distributed operator agree on which partition a key goes to.

inline constexpr uint64_t kNullHash = 0x9e3779b97f4a7c15ULL;

// A strong 64-bit mixer (the murmur3 finalizer): every input bit affects every output bit.
inline uint64_t HashWord(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline uint64_t HashCombine(uint64_t seed, uint64_t value) {
  return HashWord(seed * 0x9ddfea08eb382d69ULL + value);
}

uint64_t HashBytes(const void* data, size_t size);
inline uint64_t HashString(std::string_view text) { return HashBytes(text.data(), text.size()); }

// Floating-point keys: -0.0 hashes and compares as 0.0, and every NaN as one NaN.
template <typename T>
inline T NormalizeKey(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    if (value != value) return std::numeric_limits<T>::quiet_NaN();
    if (value == 0) return T{0};
  }
  return value;
}

template <typename T>
inline uint64_t HashNumber(T value) {
  value = NormalizeKey(value);
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return HashWord(bits);
}

template <typename T>
inline bool KeyValuesEqual(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return a == b || (a != a && b != b);
  } else {
    return a == b;
  }
}

// Hashes rows [begin, end) of `column` into out[0 .. end - begin). With `combine`, mixes into the
// hashes already in `out` (for multi-column keys). Nulls hash to kNullHash.
void HashColumn(const Column& column, int64_t begin, int64_t end, bool combine, uint64_t* out);

// A borrowed view of the key columns of a table, for hashing and comparing rows.
class KeyColumns {
 public:
  static Result<KeyColumns> Make(const Table& table, const std::vector<int>& keys);
  static Result<KeyColumns> Make(const Table& table, const std::vector<std::string>& keys);

  int num_keys() const { return static_cast<int>(columns_.size()); }
  const Column& key(int i) const { return columns_[i]; }
  int64_t num_rows() const { return num_rows_; }

  // Hash of rows [begin, end); the same key values hash the same in every table.
  void Hash(int64_t begin, int64_t end, uint64_t* out) const;
  std::vector<uint64_t> HashAll(int threads = 0) const;
  bool AnyNull(int64_t row) const;
  // Key of row i here equals key of row j in other (which must have the same key types).
  // Nulls equal nulls (grouping semantics); callers that want SQL join semantics drop null keys.
  bool RowEquals(int64_t i, const KeyColumns& other, int64_t j) const;
  // Checks that other's key types can be compared with these.
  Status CheckComparable(const KeyColumns& other) const;

 private:
  std::vector<Column> columns_;
  int64_t num_rows_ = 0;
};

}  // namespace deeprc::compute
