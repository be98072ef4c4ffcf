// Sorting: the permutation that orders a table by several keys, stable.
//
// How it works. Every key is turned into one or two "fields" of unsigned bits whose unsigned
// order is the wanted order: a null flag (when the column has nulls) and the value bits
// (order-preserving integer form of the value, minus the column's minimum, complemented for
// descending order, so that only bit_width(max - min) bits are needed). Consecutive fields are
// packed into groups of at most 64 bits; the table is then sorted by the groups from the last to
// the first, each pass a stable radix sort (LSD over groups). In the common case there is one
// group, and the key and the row number fit together in one 64-bit word, so the radix sort moves
// 8-byte words and stability comes for free. String keys are sorted by comparison (8-byte
// big-endian prefixes first, then the full bytes), in parallel parts that are then merged.
//
// The radix sort is MSD on the top digit (parallel histogram and scatter), then each bucket —
// small enough to stay in cache — is sorted by LSD passes on the remaining bits, buckets in
// parallel. Ties in the full element (key, position) order are impossible because positions are
// unique and ascending in the input, so small buckets may use std::sort on the whole element.
//
// When key and row number do not fit in 64 bits, the word holds the key's high bits and the low
// bits go to a side array; runs of equal high bits are then sorted by those (SortRunsByLowBits).
// Sort (the table, not just the order) avoids random gathers where it can: integer key columns
// without nulls are decoded from the sorted words, and fixed-width columns without nulls are
// moved along in the top-level scatter (ColumnCarry), so that gathering them afterwards stays
// inside one cache-sized bucket. Other columns are gathered by Take.
#include "deeprc/compute/sort.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <utility>

#include <sys/mman.h>

#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/buffer.h"

namespace deeprc::compute {
namespace {

// Below this many rows one thread sorts.
constexpr int64_t kParallelSortRows = 1 << 15;
// Buckets up to this size are sorted with std::sort on the whole element.
constexpr int64_t kSmallSortRows = 256;
// At most this many bits per radix digit.
constexpr int kMaxDigitBits = 11;

int ResolveThreads(int threads) { return threads <= 0 ? DefaultThreadCount() : threads; }

// ---------------------------------------------------------------------------------------------
// Elements of the radix sort: a packed word (key in the high bits, position in the low bits) or
// a pair when the two do not fit in 64 bits.

struct PairElement {
  uint64_t key;
  uint64_t position;
};

inline bool FullLess(uint64_t a, uint64_t b) { return a < b; }
inline bool FullLess(const PairElement& a, const PairElement& b) {
  return a.key < b.key || (a.key == b.key && a.position < b.position);
}

struct PackedKey {
  int shift;
  uint64_t operator()(uint64_t word) const { return word >> shift; }
};
struct PairKey {
  uint64_t operator()(const PairElement& element) const { return element.key; }
};

// Bits of the digit of an MSD step inside a bucket (256 sub-buckets: the counts stay in L1).
constexpr int kBucketDigitBits = 8;

// Sorts src[0, n) by key bits [0, bits) (higher key bits equal across the range) into dst;
// src is clobbered. Small ranges are sorted by comparison, ranges with up to three digits left by
// LSD passes (measured: three in-cache LSD passes beat an MSD step plus many tiny sorts), wider
// keys (only (key, position) pairs have them) by one MSD step and recursion.
template <typename E, typename KeyFn>
void SortInto(E* src, E* dst, int64_t n, int bits, KeyFn key) {
  if (n <= kSmallSortRows || bits <= 0) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(E));
    if (bits > 0 && n > 1) {
      std::sort(dst, dst + n, [](const E& a, const E& b) { return FullLess(a, b); });
    }
    return;
  }
  if (bits > 3 * kMaxDigitBits) {
    const int shift = bits - kBucketDigitBits;
    constexpr int kBuckets = 1 << kBucketDigitBits;
    int64_t counts[kBuckets + 1] = {};
    for (int64_t i = 0; i < n; ++i) ++counts[((key(src[i]) >> shift) & (kBuckets - 1)) + 1];
    for (int b = 1; b <= kBuckets; ++b) counts[b] += counts[b - 1];
    int64_t next[kBuckets];
    std::copy(counts, counts + kBuckets, next);
    for (int64_t i = 0; i < n; ++i) dst[next[(key(src[i]) >> shift) & (kBuckets - 1)]++] = src[i];
    for (int b = 0; b < kBuckets; ++b) {
      const int64_t begin = counts[b];
      const int64_t size = counts[b + 1] - begin;
      if (size < 2) continue;
      SortInto(dst + begin, src + begin, size, shift, key);
      std::memcpy(dst + begin, src + begin, static_cast<size_t>(size) * sizeof(E));
    }
    return;
  }
  const int passes = (bits + kMaxDigitBits - 1) / kMaxDigitBits;
  const int digit_bits = (bits + passes - 1) / passes;
  const uint64_t mask = (uint64_t{1} << digit_bits) - 1;
  std::vector<int64_t> counts(static_cast<size_t>(mask) + 1);
  // Ping-pong between the two arrays; the result is copied to dst if it ends in src.
  E* from = src;
  E* to = dst;
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = pass * digit_bits;
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t i = 0; i < n; ++i) ++counts[(key(from[i]) >> shift) & mask];
    if (counts[(key(from[0]) >> shift) & mask] == n) continue;  // constant digit
    int64_t sum = 0;
    for (auto& count : counts) {
      const int64_t c = count;
      count = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; ++i) to[counts[(key(from[i]) >> shift) & mask]++] = from[i];
    std::swap(from, to);
  }
  if (from != dst) std::memcpy(dst, from, static_cast<size_t>(n) * sizeof(E));
}

// Work done alongside the top-level scatter of RadixSort: nothing here; see ColumnCarry.
struct NoCarry {
  static constexpr bool kActive = false;
};

// Sorts data[0, n) by key bits [0, bits), stable, using scratch; the result is in data.
// With an active carry, the top-level MSD scatter (when there is one) also moves the carry's
// columns to the same places, and each element is relabeled with its place after that scatter;
// carry.ran tells whether it happened.
template <typename E, typename KeyFn, typename Carry = NoCarry>
void RadixSort(E* data, E* scratch, int64_t n, int bits, KeyFn key, int threads,
               Carry* carry = nullptr) {
  if (n < 2 || bits <= 0) return;
  if (n < kParallelSortRows) threads = 1;
  if (n <= 4096) {
    SortInto(data, scratch, n, bits, key);
    std::memcpy(data, scratch, static_cast<size_t>(n) * sizeof(E));
    return;
  }
  // MSD pass on the top digit: parallel histograms, then a stable parallel scatter. Keys of up to
  // one digit are done after it (every bucket holds one key), still in parallel.
  const int digit_bits = std::min(kMaxDigitBits, bits);
  const int shift = bits - digit_bits;
  const int64_t buckets = int64_t{1} << digit_bits;
  const uint64_t mask = static_cast<uint64_t>(buckets - 1);
  const int parts = threads;
  std::vector<int64_t> offsets(static_cast<size_t>(parts * buckets), 0);
  ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
    int64_t* counts = offsets.data() + part * buckets;
    for (int64_t i = begin; i < end; ++i) ++counts[(key(data[i]) >> shift) & mask];
  });
  const std::vector<int64_t> bucket_begin = ScatterStarts(
      parts, buckets, [&](int64_t p, int64_t b) -> int64_t& { return offsets[p * buckets + b]; });
  if constexpr (Carry::kActive) {
    carry->Scatter(n, parts, threads, offsets.data(), buckets,
                   [&](int64_t i) { return (key(data[i]) >> shift) & mask; });
    ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
      int64_t* next = offsets.data() + part * buckets;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t slot = next[(key(data[i]) >> shift) & mask]++;
        scratch[slot] = carry->Relabel(data[i], slot);
      }
    });
  } else {
    ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
      int64_t* next = offsets.data() + part * buckets;
      for (int64_t i = begin; i < end; ++i)
        scratch[next[(key(data[i]) >> shift) & mask]++] = data[i];
    });
  }
  // Buckets: huge ones (skewed keys) recursively with all threads, the rest in parallel.
  const int64_t huge = std::max<int64_t>(n / 8, kParallelSortRows);
  std::vector<int64_t> small;
  small.reserve(static_cast<size_t>(buckets));
  for (int64_t b = 0; b < buckets; ++b) {
    const int64_t begin = bucket_begin[b];
    const int64_t size = bucket_begin[b + 1] - begin;
    if (size == 0) continue;
    if (size > huge && threads > 1) {
      RadixSort(scratch + begin, data + begin, size, shift, key, threads);
      ParallelRanges(size, threads, threads, [&](int64_t, int64_t b0, int64_t e0) {
        std::memcpy(data + begin + b0, scratch + begin + b0,
                    static_cast<size_t>(e0 - b0) * sizeof(E));
      });
    } else {
      small.push_back(b);
    }
  }
  // Hand buckets out in batches of about 64k elements to keep the task overhead low.
  std::vector<std::pair<size_t, size_t>> batches;
  for (size_t i = 0; i < small.size();) {
    size_t j = i;
    int64_t total = 0;
    while (j < small.size() && total < (1 << 16)) {
      total += bucket_begin[small[j] + 1] - bucket_begin[small[j]];
      ++j;
    }
    batches.emplace_back(i, j);
    i = j;
  }
  ParallelFor(static_cast<int64_t>(batches.size()), threads, [&](int64_t t) {
    for (size_t i = batches[t].first; i < batches[t].second; ++i) {
      const int64_t begin = bucket_begin[small[i]];
      const int64_t size = bucket_begin[small[i] + 1] - begin;
      SortInto(scratch + begin, data + begin, size, shift, key);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Keys as fields of unsigned bits.

// Order-preserving unsigned form of a value; NaN (any) above +inf, -0.0 as 0.0.
template <typename T>
inline uint64_t NormalizeNumber(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    if (value != value) value = std::copysign(std::numeric_limits<T>::quiet_NaN(), T{1});
    if (value == 0) value = T{0};
    Bits bits;
    std::memcpy(&bits, &value, sizeof(T));
    constexpr Bits kSign = Bits{1} << (sizeof(Bits) * 8 - 1);
    bits = (bits & kSign) ? static_cast<Bits>(~bits) : static_cast<Bits>(bits | kSign);
    return bits;
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<uint64_t>(static_cast<int64_t>(value)) ^ (uint64_t{1} << 63);
  } else {
    return static_cast<uint64_t>(value);
  }
}

struct Field {
  const Column* column = nullptr;
  bool is_null_flag = false;  // the null flag of the column, else its value bits
  bool nulls_first = false;
  bool ascending = true;
  uint64_t min = 0;
  uint64_t max = 0;
  int bits = 0;
};

// min and max of the normalized non-null values; false when every value is null.
bool NormalizedRange(const Column& column, int threads, uint64_t* min_out, uint64_t* max_out) {
  const int64_t n = column.length();
  const int parts = n >= kParallelSortRows ? threads : 1;
  std::vector<uint64_t> mins(parts, ~uint64_t{0});
  std::vector<uint64_t> maxs(parts, 0);
  std::vector<char> any(parts, 0);
  const uint8_t* validity = column.validity_bits();
  const int64_t offset = column.offset();
  VisitType(column.type_id(), [&]<typename Tag>(Tag) {
    ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
      uint64_t lo = ~uint64_t{0};
      uint64_t hi = 0;
      bool seen = false;
      for (int64_t i = begin; i < end; ++i) {
        if (validity != nullptr && !bitmap::GetBit(validity, offset + i)) continue;
        uint64_t u;
        if constexpr (std::is_same_v<Tag, BoolTag>) {
          u = column.GetBool(i) ? 1 : 0;
        } else if constexpr (std::is_same_v<Tag, StringTag>) {
          u = 0;
        } else {
          u = NormalizeNumber(column.Values<typename Tag::CType>()[i]);
        }
        lo = std::min(lo, u);
        hi = std::max(hi, u);
        seen = true;
      }
      mins[part] = lo;
      maxs[part] = hi;
      any[part] = seen;
    });
  });
  bool seen = false;
  for (int p = 0; p < parts; ++p) {
    if (!any[p]) continue;
    *min_out = seen ? std::min(*min_out, mins[p]) : mins[p];
    *max_out = seen ? std::max(*max_out, maxs[p]) : maxs[p];
    seen = true;
  }
  return seen;
}

// words[j] = (words[j] << field.bits) | value of the field, for j in [0, count), of row
// first_row + j (kIdentity) or row perm[j].
template <bool kIdentity>
void AppendField(const Field& field, const int64_t* perm, int64_t first_row, int64_t count,
                 uint64_t* words) {
  const Column& column = *field.column;
  const uint8_t* validity = column.validity_bits();
  const int64_t offset = column.offset();
  const int bits = field.bits;
  auto row_of = [&](int64_t i) { return kIdentity ? first_row + i : perm[i]; };
  const int64_t begin = 0;
  const int64_t end = count;
  if (field.is_null_flag) {
    const bool flag_when_valid = field.nulls_first;
    for (int64_t i = begin; i < end; ++i) {
      const bool valid = bitmap::GetBit(validity, offset + row_of(i));
      words[i] = (words[i] << 1) | static_cast<uint64_t>(valid == flag_when_valid);
    }
    return;
  }
  const uint64_t min = field.min;
  const uint64_t max = field.max;
  const bool ascending = field.ascending;
  VisitType(column.type_id(), [&]<typename Tag>(Tag) {
    if constexpr (std::is_same_v<Tag, StringTag>) {
      return;  // strings are never radix fields
    } else {
      auto value_of = [&](int64_t row) -> uint64_t {
        if constexpr (std::is_same_v<Tag, BoolTag>) {
          return column.GetBool(row) ? 1 : 0;
        } else {
          return NormalizeNumber(column.Values<typename Tag::CType>()[row]);
        }
      };
      // bits may be 64 (then words[i] starts at 0 and the shift is skipped).
      auto shifted = [&](uint64_t w) { return bits >= 64 ? uint64_t{0} : (w << bits); };
      if (validity == nullptr) {
        if (ascending) {
          for (int64_t i = begin; i < end; ++i)
            words[i] = shifted(words[i]) | (value_of(row_of(i)) - min);
        } else {
          for (int64_t i = begin; i < end; ++i)
            words[i] = shifted(words[i]) | (max - value_of(row_of(i)));
        }
      } else {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t row = row_of(i);
          uint64_t v = 0;
          if (bitmap::GetBit(validity, offset + row)) {
            const uint64_t u = value_of(row);
            v = ascending ? u - min : max - u;
          }
          words[i] = shifted(words[i]) | v;
        }
      }
    }
  });
}

// Large work arrays are written once at scattered places; backed by 2 MB pages they take 512
// times fewer page faults and far fewer TLB misses. Linux often enables transparent huge pages
// only for ranges that ask ("madvise" mode), so ask; elsewhere this does nothing.
void AdviseHugePages(Buffer& buffer) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  if (buffer.size() < static_cast<int64_t>(4 * kHugePage)) return;
  const auto start = reinterpret_cast<uintptr_t>(buffer.data());
  const uintptr_t begin = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (start + static_cast<uintptr_t>(buffer.size())) & ~(kHugePage - 1);
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
}

// A buffer of n elements from the memory pool.
template <typename E>
Result<std::shared_ptr<Buffer>> AllocateElements(int64_t n) {
  DEEPRC_ASSIGN_OR_RAISE(
      auto buffer, Buffer::Allocate(std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(E))));
  AdviseHugePages(*buffer);
  return buffer;
}

// Columns moved along with the sorted keys in the top-level scatter of the radix sort. Each
// key is relabeled with its place after that scatter, so that gathering a column afterwards
// reads within one bucket (in cache) instead of anywhere in the input: a random gather over a
// large column costs a cache and TLB miss per row. Fixed-width columns without nulls qualify;
// a carried column of row numbers yields the input positions for the others.
struct ColumnCarry {
  static constexpr bool kActive = true;
  static constexpr int kRowNumbers = -1;
  static constexpr int kLowBits = -2;  // the low key bits of SortedKeys
  struct Carried {
    int column = kRowNumbers;         // the table column, or one of the two above
    const uint8_t* values = nullptr;  // its values (advanced to the first row); null: row numbers
    int width = 8;
    std::shared_ptr<Buffer> moved;  // the values after the top-level scatter
  };
  int position_bits = 0;
  std::vector<Carried> columns;
  bool ran = false;

  uint64_t Relabel(uint64_t word, int64_t slot) const {
    return ((word >> position_bits) << position_bits) | static_cast<uint64_t>(slot);
  }
  PairElement Relabel(const PairElement& pair, int64_t slot) const {
    return {pair.key, static_cast<uint64_t>(slot)};
  }

  // offsets: per part, the first place of each bucket (as the scatter of the words uses them).
  template <typename DigitFn>
  void Scatter(int64_t n, int parts, int threads, const int64_t* offsets, int64_t buckets,
               DigitFn digit) {
    ran = true;
    for (auto& carried : columns) {
      auto scatter = [&]<typename T>(T) {
        T* out = carried.moved->mutable_data_as<T>();
        const T* in = reinterpret_cast<const T*>(carried.values);
        ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
          std::vector<int64_t> next(offsets + part * buckets, offsets + (part + 1) * buckets);
          if (in == nullptr) {
            for (int64_t i = begin; i < end; ++i) out[next[digit(i)]++] = static_cast<T>(i);
          } else {
            for (int64_t i = begin; i < end; ++i) out[next[digit(i)]++] = in[i];
          }
        });
      };
      switch (carried.width) {
        case 1:
          scatter(uint8_t{});
          break;
        case 2:
          scatter(uint16_t{});
          break;
        case 4:
          scatter(uint32_t{});
          break;
        default:
          scatter(uint64_t{});
          break;
      }
    }
  }
};

int KeyBits(const std::vector<Field>& fields) {
  int key_bits = 0;
  for (const auto& field : fields) key_bits += field.bits;
  return key_bits;
}

int PositionBits(int64_t n) {
  return std::bit_width(static_cast<uint64_t>(std::max<int64_t>(n, 2) - 1));
}

// words[j] for j in [0, count) = the group's fields, packed, of row first_row + j (perm null)
// or row perm[j].
void FillKeys(const std::vector<Field>& fields, const int64_t* perm, int64_t first_row,
              int64_t count, uint64_t* words) {
  constexpr int64_t kChunk = 4096;
  for (int64_t b = 0; b < count; b += kChunk) {
    const int64_t e = std::min(count, b + kChunk);
    std::fill(words + b, words + e, 0);
    for (const auto& field : fields) {
      if (perm == nullptr) {
        AppendField<true>(field, nullptr, first_row + b, e - b, words + b);
      } else {
        AppendField<false>(field, perm + b, 0, e - b, words + b);
      }
    }
  }
}

// The rows sorted by one group of fixed-width fields: packed words (key << position_bits |
// position) when key and position fit in 64 bits, else (key, position) pairs. `scratch` is a
// work array of the same size that the caller may reuse.
// The rows sorted by one group of fixed-width fields, as packed words (key << position_bits |
// position). When key and position do not fit in 64 bits, the words hold the key's high bits
// and the low `low_bits` bits go to a side array (by position); runs of equal high bits are
// then sorted by those low bits. With more than 2^32 rows, (key, position) pairs are sorted
// instead. `scratch` is a work array of the same size as the words that the caller may reuse.
struct SortedKeys {
  bool packed = true;
  int position_bits = 0;
  int low_bits = 0;
  int64_t rows = 0;
  std::shared_ptr<Buffer> data;
  std::shared_ptr<Buffer> scratch;
  std::shared_ptr<Buffer> low_buffer;  // uint32 low key bits by position, when low_bits > 0
  const uint32_t* low = nullptr;

  const uint64_t* words() const { return data->data_as<uint64_t>(); }
  const PairElement* pairs() const { return data->data_as<PairElement>(); }
  // The group's key bits of the i-th row in sorted order.
  uint64_t Key(int64_t i) const {
    if (!packed) return pairs()[i].key;
    const uint64_t high = words()[i] >> position_bits;
    return low_bits == 0 ? high : (high << low_bits) | low[Position(i)];
  }
  int64_t Position(int64_t i) const {
    return packed ? static_cast<int64_t>(words()[i] & (~uint64_t{0} >> (64 - position_bits)))
                  : static_cast<int64_t>(pairs()[i].position);
  }
};

// Sorts each run of words with equal high key bits by (low bits, position): the positions in a
// run are in input order, so this is the stable order of the full keys. Runs are rare unless
// the high bits repeat (many equal keys, or values crowded in a small part of a wide range).
void SortRunsByLowBits(SortedKeys& sorted, int threads) {
  const int64_t n = sorted.rows;
  uint64_t* words = sorted.data->mutable_data_as<uint64_t>();
  const int shift = sorted.position_bits;
  const uint64_t position_mask = ~uint64_t{0} >> (64 - shift);
  const uint32_t* low = sorted.low;
  const int parts = n >= kParallelSortRows ? threads : 1;
  // Part boundaries moved forward to the start of a run, so that no run is split.
  std::vector<int64_t> starts(static_cast<size_t>(parts) + 1);
  for (int p = 0; p <= parts; ++p) {
    int64_t i = n * p / parts;
    while (i > 0 && i < n && (words[i] >> shift) == (words[i - 1] >> shift)) ++i;
    starts[p] = std::max(i, p > 0 ? starts[p - 1] : int64_t{0});
  }
  ParallelFor(parts, threads, [&](int64_t p) {
    int64_t i = starts[p];
    const int64_t end = starts[p + 1];
    while (i < end) {
      int64_t j = i + 1;
      while (j < n && (words[j] >> shift) == (words[i] >> shift)) ++j;
      if (j - i > 1) {
        std::sort(words + i, words + j, [&](uint64_t a, uint64_t b) {
          const uint32_t low_a = low[a & position_mask];
          const uint32_t low_b = low[b & position_mask];
          return low_a < low_b || (low_a == low_b && (a & position_mask) < (b & position_mask));
        });
      }
      i = j;
    }
  });
}

// With a carry, the carry's columns are moved in the top-level scatter and the positions in the
// sorted keys are places in those moved columns (when carry->ran).
Result<SortedKeys> SortByFields(const std::vector<Field>& fields, int64_t n, const int64_t* perm_in,
                                int threads, ColumnCarry* carry = nullptr) {
  SortedKeys sorted;
  const int key_bits = KeyBits(fields);
  sorted.position_bits = PositionBits(n);
  sorted.low_bits = std::max(0, key_bits + sorted.position_bits - 64);
  sorted.packed = sorted.low_bits <= 32;
  sorted.rows = n;
  const int parts = n >= kParallelSortRows ? threads : 1;
  if (sorted.packed) {
    DEEPRC_ASSIGN_OR_RAISE(sorted.data, AllocateElements<uint64_t>(n));
    DEEPRC_ASSIGN_OR_RAISE(sorted.scratch, AllocateElements<uint64_t>(n));
    uint32_t* low = nullptr;
    if (sorted.low_bits > 0) {
      DEEPRC_ASSIGN_OR_RAISE(sorted.low_buffer, AllocateElements<uint32_t>(n));
      low = sorted.low_buffer->mutable_data_as<uint32_t>();
    }
    uint64_t* words = sorted.data->mutable_data_as<uint64_t>();
    const int position_bits = sorted.position_bits;
    const int low_bits = sorted.low_bits;
    const uint64_t low_mask = (uint64_t{1} << low_bits) - 1;
    ParallelRanges(n, parts, threads, [&](int64_t, int64_t begin, int64_t end) {
      FillKeys(fields, perm_in == nullptr ? nullptr : perm_in + begin, begin, end - begin,
               words + begin);
      if (low_bits == 0) {
        for (int64_t i = begin; i < end; ++i) {
          words[i] = (words[i] << position_bits) | static_cast<uint64_t>(i);
        }
      } else {
        for (int64_t i = begin; i < end; ++i) {
          low[i] = static_cast<uint32_t>(words[i] & low_mask);
          words[i] = ((words[i] >> low_bits) << position_bits) | static_cast<uint64_t>(i);
        }
      }
    });
    if (carry != nullptr) {
      if (low_bits > 0) {
        // The low bits travel with the words, so that the runs read them near by.
        ColumnCarry::Carried carried;
        carried.column = ColumnCarry::kLowBits;
        carried.values = sorted.low_buffer->data();
        carried.width = 4;
        DEEPRC_ASSIGN_OR_RAISE(carried.moved, AllocateElements<uint32_t>(n));
        carry->columns.push_back(std::move(carried));
      }
      RadixSort(words, sorted.scratch->mutable_data_as<uint64_t>(), n, key_bits - low_bits,
                PackedKey{position_bits}, threads, carry);
      if (low_bits > 0 && carry->ran) {
        sorted.low_buffer = carry->columns.back().moved;
      }
    } else {
      RadixSort(words, sorted.scratch->mutable_data_as<uint64_t>(), n, key_bits - low_bits,
                PackedKey{position_bits}, threads);
    }
    if (low_bits > 0) {
      sorted.low = sorted.low_buffer->data_as<uint32_t>();
      SortRunsByLowBits(sorted, threads);
    }
    return sorted;
  }
  DEEPRC_ASSIGN_OR_RAISE(sorted.data, AllocateElements<PairElement>(n));
  DEEPRC_ASSIGN_OR_RAISE(sorted.scratch, AllocateElements<PairElement>(n));
  PairElement* pairs = sorted.data->mutable_data_as<PairElement>();
  ParallelRanges(n, parts, threads, [&](int64_t, int64_t begin, int64_t end) {
    // Keys are built in cache-sized chunks, then paired with their positions.
    constexpr int64_t kChunk = 2048;
    uint64_t keys[kChunk];
    for (int64_t b = begin; b < end; b += kChunk) {
      const int64_t e = std::min(end, b + kChunk);
      FillKeys(fields, perm_in == nullptr ? nullptr : perm_in + b, b, e - b, keys);
      for (int64_t i = b; i < e; ++i) pairs[i] = {keys[i - b], static_cast<uint64_t>(i)};
    }
  });
  if (carry != nullptr) {
    RadixSort(pairs, sorted.scratch->mutable_data_as<PairElement>(), n, key_bits, PairKey{},
              threads, carry);
  } else {
    RadixSort(pairs, sorted.scratch->mutable_data_as<PairElement>(), n, key_bits, PairKey{},
              threads);
  }
  return sorted;
}

// perm_out[i] = perm_in[position of the i-th sorted row] (or the position itself).
void SortedPositions(const SortedKeys& sorted, const int64_t* perm_in, int64_t* perm_out,
                     int threads) {
  const int64_t n = sorted.rows;
  const int parts = n >= kParallelSortRows ? threads : 1;
  ParallelRanges(n, parts, threads, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t position = sorted.Position(i);
      perm_out[i] = perm_in == nullptr ? position : perm_in[position];
    }
  });
}

// One stable pass over a group of fixed-width fields: perm_out = perm_in stably reordered by the
// group (perm_in null means the identity).
Status FixedPass(const std::vector<Field>& fields, int64_t n, const int64_t* perm_in,
                 int64_t* perm_out, int threads) {
  DEEPRC_ASSIGN_OR_RAISE(SortedKeys sorted, SortByFields(fields, n, perm_in, threads));
  SortedPositions(sorted, perm_in, perm_out, threads);
  return Status::OK();
}

struct StringElement {
  uint64_t prefix;  // first 8 bytes, big-endian, zero-padded
  int64_t position;
  const char* data;
  int64_t size;
};

// One stable pass by a string key.
Status StringPass(const Column& column, const SortKey& key, int64_t n, const int64_t* perm_in,
                  int64_t* perm_out, int threads) {
  const int64_t* offsets = column.StringOffsets();
  const char* bytes = column.StringBytes();
  std::vector<int64_t> nulls;
  DEEPRC_ASSIGN_OR_RAISE(auto element_buffer, AllocateElements<StringElement>(n));
  StringElement* elements = element_buffer->mutable_data_as<StringElement>();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = perm_in == nullptr ? i : perm_in[i];
    if (column.IsNull(row)) {
      nulls.push_back(i);
      continue;
    }
    const char* data = bytes + offsets[row];
    const int64_t size = offsets[row + 1] - offsets[row];
    uint64_t prefix = 0;
    std::memcpy(&prefix, data, static_cast<size_t>(std::min<int64_t>(size, 8)));
    if constexpr (std::endian::native == std::endian::little) prefix = __builtin_bswap64(prefix);
    elements[count++] = {prefix, i, data, size};
  }
  const bool ascending = key.ascending;
  auto less = [ascending](const StringElement& a, const StringElement& b) {
    if (a.prefix != b.prefix) return ascending ? a.prefix < b.prefix : a.prefix > b.prefix;
    if (a.size > 8 || b.size > 8 || a.size != b.size) {
      // Equal prefixes: when both strings have 8 bytes or more, those bytes are equal.
      const int skip = a.size >= 8 && b.size >= 8 ? 8 : 0;
      const int c =
          std::string_view(a.data + skip, static_cast<size_t>(a.size - skip))
              .compare(std::string_view(b.data + skip, static_cast<size_t>(b.size - skip)));
      if (c != 0) return ascending ? c < 0 : c > 0;
    }
    return a.position < b.position;
  };
  const int parts = count >= kParallelSortRows ? threads : 1;
  std::vector<int64_t> bounds(parts + 1);
  for (int p = 0; p <= parts; ++p) bounds[p] = count * p / parts;
  ParallelFor(parts, threads,
              [&](int64_t p) { std::sort(elements + bounds[p], elements + bounds[p + 1], less); });
  if (parts > 1) {
    DEEPRC_ASSIGN_OR_RAISE(auto merge_buffer, AllocateElements<StringElement>(count));
    StringElement* from = elements;
    StringElement* to = merge_buffer->mutable_data_as<StringElement>();
    for (int width = 1; width < parts; width *= 2) {
      std::vector<int> starts;
      for (int p = 0; p < parts; p += 2 * width) starts.push_back(p);
      ParallelFor(static_cast<int64_t>(starts.size()), threads, [&](int64_t s) {
        const int p = starts[s];
        const int64_t begin = bounds[p];
        const int64_t middle = bounds[std::min(parts, p + width)];
        const int64_t end = bounds[std::min(parts, p + 2 * width)];
        std::merge(from + begin, from + middle, from + middle, from + end, to + begin, less);
      });
      std::swap(from, to);
    }
    if (from != elements)
      std::memcpy(elements, from, static_cast<size_t>(count) * sizeof(StringElement));
  }
  int64_t at = 0;
  auto emit = [&](int64_t position) {
    perm_out[at++] = perm_in == nullptr ? position : perm_in[position];
  };
  if (key.nulls_first) {
    for (int64_t position : nulls) emit(position);
  }
  for (int64_t i = 0; i < count; ++i) emit(elements[i].position);
  if (!key.nulls_first) {
    for (int64_t position : nulls) emit(position);
  }
  return Status::OK();
}

// A pass of the LSD-over-groups sort: fixed fields packed in one group, or one string key.
struct Pass {
  std::vector<Field> fields;
  int string_key = -1;
  SortKey string_options;
};

struct SortPlan {
  std::vector<const Column*> columns;  // one per key
  std::vector<Pass> passes;            // most significant first
  int threads = 1;
  int64_t rows = 0;
};

Result<SortPlan> MakePlan(const Table& table, const SortOptions& options) {
  SortPlan plan;
  plan.threads = ResolveThreads(options.threads);
  plan.rows = table.num_rows();
  if (options.keys.empty()) return Status::Invalid("sort needs at least one key column");
  for (const auto& key : options.keys) {
    const int index = table.schema().FieldIndex(key.column);
    if (index < 0) {
      return Status::KeyError("sort key '{}' is not a column of the table; columns: {}", key.column,
                              table.schema().ToString());
    }
    plan.columns.push_back(&table.column(index));
  }
  Pass current;
  int current_bits = 0;
  auto flush = [&] {
    if (!current.fields.empty()) plan.passes.push_back(std::move(current));
    current = Pass{};
    current_bits = 0;
  };
  auto add_field = [&](const Field& field) {
    if (field.bits == 0) return;
    if (current_bits + field.bits > 64) flush();
    current.fields.push_back(field);
    current_bits += field.bits;
  };
  for (size_t k = 0; k < options.keys.size(); ++k) {
    const Column& column = *plan.columns[k];
    const SortKey& key = options.keys[k];
    if (column.type_id() == TypeId::kString) {
      flush();
      Pass pass;
      pass.string_key = static_cast<int>(k);
      pass.string_options = key;
      plan.passes.push_back(std::move(pass));
      continue;
    }
    Field base;
    base.column = &column;
    base.ascending = key.ascending;
    base.nulls_first = key.nulls_first;
    uint64_t min = 0;
    uint64_t max = 0;
    const bool any_valid = NormalizedRange(column, plan.threads, &min, &max);
    if (column.null_count() > 0 && column.null_count() < column.length()) {
      Field flag = base;
      flag.is_null_flag = true;
      flag.bits = 1;
      add_field(flag);
    }
    if (any_valid) {
      Field value = base;
      value.min = min;
      value.max = max;
      value.bits = std::bit_width(max - min);
      add_field(value);
    }
  }
  flush();
  return plan;
}

// Fills perm (rows entries) with the sorted order.
Status SortIndicesInto(const SortPlan& plan, int64_t* perm) {
  const int64_t n = plan.rows;
  const auto& passes = plan.passes;
  if (passes.empty() || n <= 1) {
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
    return Status::OK();
  }
  // LSD over passes: the last (least significant) first. Ping-pong between perm and a scratch.
  std::shared_ptr<Buffer> other_buffer;
  if (passes.size() > 1) {
    DEEPRC_ASSIGN_OR_RAISE(other_buffer, AllocateElements<int64_t>(n));
  }
  int64_t* other = other_buffer ? other_buffer->mutable_data_as<int64_t>() : nullptr;
  // Choose where the first pass writes so that the last pass writes into perm.
  int64_t* out = (passes.size() % 2 == 1) ? perm : other;
  const int64_t* in = nullptr;
  for (size_t p = passes.size(); p-- > 0;) {
    const Pass& pass = passes[p];
    if (pass.string_key >= 0) {
      DEEPRC_RETURN_NOT_OK(StringPass(*plan.columns[pass.string_key], pass.string_options, n, in,
                                      out, plan.threads));
    } else {
      DEEPRC_RETURN_NOT_OK(FixedPass(pass.fields, n, in, out, plan.threads));
    }
    in = out;
    out = (out == perm) ? other : perm;
  }
  return Status::OK();
}

// Integer-like key columns without nulls can be rebuilt from the sorted keys (sequential
// writes instead of a random gather). Returns the index of the field for `column`, or -1.
int DecodableField(const Pass& pass, const Column& column) {
  if (column.null_count() != 0) return -1;
  const TypeId id = column.type_id();
  if (!IsInteger(id) && id != TypeId::kDate32 && id != TypeId::kTimestamp) return -1;
  for (size_t f = 0; f < pass.fields.size(); ++f) {
    if (pass.fields[f].column == &column && !pass.fields[f].is_null_flag)
      return static_cast<int>(f);
  }
  return -1;
}

// The values of a key column in sorted order, decoded from the sorted keys. Writes into `into`
// when given (it may be the packed words themselves: each word is read before it is written),
// else into a new buffer.
Result<Column> DecodeColumn(const Pass& pass, int field_index, const SortedKeys& sorted,
                            int threads, std::shared_ptr<Buffer> into = nullptr) {
  int shift = 0;
  for (size_t f = field_index + 1; f < pass.fields.size(); ++f) shift += pass.fields[f].bits;
  const Field& field = pass.fields[field_index];
  const uint64_t mask = field.bits >= 64 ? ~uint64_t{0} : ((uint64_t{1} << field.bits) - 1);
  const Column& column = *field.column;
  const int64_t n = sorted.rows;
  const int parts = n >= kParallelSortRows ? threads : 1;
  return VisitType(column.type_id(), [&]<typename Tag>(Tag) -> Result<Column> {
    if constexpr (kIsNumberTag<Tag>) {
      using T = typename Tag::CType;
      std::shared_ptr<Buffer> values = std::move(into);
      if (values == nullptr) {
        DEEPRC_ASSIGN_OR_RAISE(values, AllocateElements<T>(n));
      }
      T* out = values->template mutable_data_as<T>();
      const uint64_t min = field.min;
      const uint64_t max = field.max;
      const bool ascending = field.ascending;
      ParallelRanges(n, parts, threads, [&](int64_t, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const uint64_t v = (sorted.Key(i) >> shift) & mask;
          const uint64_t u = ascending ? v + min : max - v;
          if constexpr (std::is_signed_v<T>) {
            out[i] = static_cast<T>(static_cast<int64_t>(u ^ (uint64_t{1} << 63)));
          } else {
            out[i] = static_cast<T>(u);
          }
        }
      });
      return Column::Make(column.type(), n, std::move(values), nullptr, 0);
    } else {
      return Status::Internal("column of type {} cannot be decoded from sort keys",
                              column.type().ToString());
    }
  });
}

// out[i] = moved[place of the i-th sorted word], for carried columns.
// Writes into `into` when given (a free work array of at least n * width bytes).
Result<Column> GatherCarried(const ColumnCarry::Carried& carried, const Column& column,
                             const SortedKeys& sorted, int threads,
                             std::shared_ptr<Buffer> into = nullptr) {
  const int64_t n = sorted.rows;
  const int parts = n >= kParallelSortRows ? threads : 1;
  std::shared_ptr<Buffer> values = std::move(into);
  if (values == nullptr) {
    DEEPRC_ASSIGN_OR_RAISE(values, Buffer::Allocate(std::max<int64_t>(n, 1) * carried.width));
  }
  auto gather = [&]<typename T>(T) {
    const T* in = carried.moved->data_as<T>();
    T* out = values->mutable_data_as<T>();
    ParallelRanges(n, parts, threads, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = in[sorted.Position(i)];
    });
  };
  switch (carried.width) {
    case 1:
      gather(uint8_t{});
      break;
    case 2:
      gather(uint16_t{});
      break;
    case 4:
      gather(uint32_t{});
      break;
    default:
      gather(uint64_t{});
      break;
  }
  return Column::Make(column.type(), n, std::move(values), nullptr, 0);
}

// Sort by one group of fixed-width fields: key columns are decoded from the sorted keys,
// fixed-width columns without nulls carried through the radix sort's top-level scatter, the
// other columns gathered by the sorted positions.
Result<Table> SortOneFixedPass(const Table& table, const Pass& pass, int threads) {
  const int64_t n = table.num_rows();
  std::vector<Column> columns(table.num_columns());
  std::vector<int> taken;
  std::vector<std::pair<int, int>> decoded;  // (column, field)
  for (int c = 0; c < table.num_columns(); ++c) {
    const int field = DecodableField(pass, table.column(c));
    if (field < 0) {
      taken.push_back(c);
    } else {
      decoded.emplace_back(c, field);
    }
  }
  ColumnCarry carry;
  carry.position_bits = PositionBits(n);
  std::vector<int> gathered_columns;  // taken columns that are not carried
  // Carried columns exist twice at once (moved and final), so their bytes per row are capped:
  // a wide table is not doubled in memory; the rest are gathered.
  constexpr int kMaxCarriedBytesPerRow = 24;
  int carried_bytes = 0;
  for (int c : taken) {
    const Column& column = table.column(c);
    if (IsFixedWidth(column.type_id()) && column.null_count() == 0 &&
        carried_bytes + ByteWidth(column.type_id()) <= kMaxCarriedBytesPerRow) {
      carried_bytes += ByteWidth(column.type_id());
      ColumnCarry::Carried carried;
      carried.column = c;
      carried.width = ByteWidth(column.type_id());
      carried.values = column.values_buffer()->data() + column.offset() * carried.width;
      carry.columns.push_back(std::move(carried));
    } else {
      gathered_columns.push_back(c);
    }
  }
  if (!carry.columns.empty() && !gathered_columns.empty()) {
    carry.columns.push_back(ColumnCarry::Carried{});  // the row numbers
  }
  for (auto& carried : carry.columns) {
    DEEPRC_ASSIGN_OR_RAISE(carried.moved,
                           Buffer::Allocate(std::max<int64_t>(n, 1) * carried.width));
    AdviseHugePages(*carried.moved);
  }
  DEEPRC_ASSIGN_OR_RAISE(SortedKeys sorted, SortByFields(pass.fields, n, nullptr, threads,
                                                         carry.columns.empty() ? nullptr : &carry));
  if (!carry.ran) {
    // No top-level scatter happened (small input or few key bits): gather everything.
    gathered_columns = taken;
    carry.columns.clear();
  }
  // Without gathered columns the scratch array is free: the first carried column takes it.
  bool scratch_free = gathered_columns.empty();
  for (auto& carried : carry.columns) {
    if (carried.column < 0) continue;
    std::shared_ptr<Buffer> into;
    if (scratch_free) into = std::exchange(sorted.scratch, nullptr);
    scratch_free = false;
    DEEPRC_ASSIGN_OR_RAISE(
        columns[carried.column],
        GatherCarried(carried, table.column(carried.column), sorted, threads, std::move(into)));
    carried.moved.reset();
  }
  if (!gathered_columns.empty()) {
    // The input positions go to the scratch array, free now.
    int64_t* indices = sorted.scratch->mutable_data_as<int64_t>();
    const int64_t* row_numbers = nullptr;
    for (const auto& carried : carry.columns) {
      if (carried.column == ColumnCarry::kRowNumbers)
        row_numbers = carried.moved->data_as<int64_t>();
    }
    SortedPositions(sorted, row_numbers, indices, threads);
    DEEPRC_ASSIGN_OR_RAISE(Table rest, table.SelectColumns(gathered_columns));
    DEEPRC_ASSIGN_OR_RAISE(
        Table gathered,
        Take(rest, std::span<const int64_t>(indices, static_cast<size_t>(n)), threads));
    for (size_t t = 0; t < gathered_columns.size(); ++t) {
      columns[gathered_columns[t]] = gathered.column(static_cast<int>(t));
    }
  }
  // One 8-byte key column may take over the packed words as its values; it is decoded last.
  int in_place = -1;
  if (sorted.packed) {
    for (size_t d = 0; d < decoded.size(); ++d) {
      if (ByteWidth(table.column(decoded[d].first).type_id()) == 8) in_place = static_cast<int>(d);
    }
  }
  for (size_t d = 0; d < decoded.size(); ++d) {
    if (static_cast<int>(d) == in_place) continue;
    DEEPRC_ASSIGN_OR_RAISE(columns[decoded[d].first],
                           DecodeColumn(pass, decoded[d].second, sorted, threads));
  }
  if (in_place >= 0) {
    DEEPRC_ASSIGN_OR_RAISE(
        columns[decoded[in_place].first],
        DecodeColumn(pass, decoded[in_place].second, sorted, threads, sorted.data));
  }
  return Table::Make(table.schema(), std::move(columns), n);
}

}  // namespace

Result<std::vector<int64_t>> SortIndices(const Table& table, const SortOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(SortPlan plan, MakePlan(table, options));
  std::vector<int64_t> indices(static_cast<size_t>(table.num_rows()));
  DEEPRC_RETURN_NOT_OK(SortIndicesInto(plan, indices.data()));
  return indices;
}

Result<Table> Sort(const Table& table, const SortOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(SortPlan plan, MakePlan(table, options));
  const int64_t n = table.num_rows();
  if (n > 1 && plan.passes.size() == 1 && plan.passes[0].string_key < 0) {
    return SortOneFixedPass(table, plan.passes[0], plan.threads);
  }
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, AllocateElements<int64_t>(n));
  int64_t* indices = buffer->mutable_data_as<int64_t>();
  DEEPRC_RETURN_NOT_OK(SortIndicesInto(plan, indices));
  return Take(table, std::span<const int64_t>(indices, static_cast<size_t>(n)), plan.threads);
}

}  // namespace deeprc::compute
