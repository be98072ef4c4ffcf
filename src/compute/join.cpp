// Joins: key preparation (promotion), two matching algorithms (radix-partitioned hash join and
// sort-merge join) that produce row-index pairs, and materialization of the output with Take.
#include "deeprc/compute/join.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "deeprc/compute/cast.h"
#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"

namespace deeprc::compute {

Result<JoinType> ParseJoinType(std::string_view text) {
  if (text == "inner") return JoinType::kInner;
  if (text == "left") return JoinType::kLeft;
  if (text == "right") return JoinType::kRight;
  if (text == "outer" || text == "full") return JoinType::kOuter;
  if (text == "semi") return JoinType::kSemi;
  if (text == "anti") return JoinType::kAnti;
  return Status::Invalid(
      "unknown join type '{}': expected inner, left, right, outer, full, semi or anti", text);
}

Result<JoinAlgorithm> ParseJoinAlgorithm(std::string_view text) {
  if (text == "auto") return JoinAlgorithm::kAuto;
  if (text == "hash") return JoinAlgorithm::kHash;
  if (text == "sort" || text == "sort-merge" || text == "sort_merge")
    return JoinAlgorithm::kSortMerge;
  return Status::Invalid("unknown join algorithm '{}': expected auto, hash or sort", text);
}

namespace {

// ---------------------------------------------------------------------------------------------
// What a join type asks of the matching step.

struct JoinFlags {
  bool pairs = false;            // inner, left, right, outer: emit (left row, right row) pairs
  bool left_unmatched = false;   // left, outer: emit (left row, -1) for unmatched left rows
  bool right_unmatched = false;  // right, outer: emit (-1, right row) for unmatched right rows
  bool left_marks = false;       // semi, anti: mark left rows that have a match
};

JoinFlags FlagsFor(JoinType type) {
  JoinFlags flags;
  flags.pairs = type != JoinType::kSemi && type != JoinType::kAnti;
  flags.left_marks = !flags.pairs;
  flags.left_unmatched = type == JoinType::kLeft || type == JoinType::kOuter;
  flags.right_unmatched = type == JoinType::kRight || type == JoinType::kOuter;
  return flags;
}

// ---------------------------------------------------------------------------------------------
// Output of matching: row-index pairs, appended in a deterministic order.

// A growable pair of int64 arrays for one task's matches.
class PairSink {
 public:
  void Push(int64_t left, int64_t right) {
    if (count_ == capacity_ && !Grow()) return;
    left_[count_] = left;
    right_[count_] = right;
    ++count_;
  }
  int64_t count() const { return count_; }
  const int64_t* left() const { return left_; }
  const int64_t* right() const { return right_; }
  const Status& status() const { return status_; }
  void Clear() { count_ = 0; }

 private:
  bool Grow() {
    if (!status_.ok()) return false;
    const int64_t capacity = std::max<int64_t>(1024, capacity_ * 2);
    status_ = left_buffer_.Resize(capacity * 8);
    if (status_.ok()) status_ = right_buffer_.Resize(capacity * 8);
    if (!status_.ok()) return false;
    left_ = reinterpret_cast<int64_t*>(left_buffer_.data());
    right_ = reinterpret_cast<int64_t*>(right_buffer_.data());
    capacity_ = capacity;
    return true;
  }

  GrowableBuffer left_buffer_;
  GrowableBuffer right_buffer_;
  int64_t* left_ = nullptr;
  int64_t* right_ = nullptr;
  int64_t count_ = 0;
  int64_t capacity_ = 0;
  Status status_;
};

// The matches of a join: index pairs for pair joins, a mark per left row for semi/anti joins.
struct Matches {
  GrowableBuffer left;
  GrowableBuffer right;
  int64_t count = 0;
  std::shared_ptr<Buffer> left_marks;  // one byte per left row, for semi/anti

  Status Reserve(int64_t pairs) {
    DEEPRC_RETURN_NOT_OK(left.Reserve(pairs * 8));
    return right.Reserve(pairs * 8);
  }
  Status Append(const int64_t* l, const int64_t* r, int64_t n) {
    DEEPRC_RETURN_NOT_OK(Reserve(count + n));
    std::memcpy(left.data() + count * 8, l, static_cast<size_t>(n) * 8);
    std::memcpy(right.data() + count * 8, r, static_cast<size_t>(n) * 8);
    count += n;
    left.UnsafeSetSize(count * 8);
    right.UnsafeSetSize(count * 8);
    return Status::OK();
  }
  Status Push(int64_t l, int64_t r) { return Append(&l, &r, 1); }
  uint8_t* marks() { return left_marks ? left_marks->mutable_data() : nullptr; }
};

// Runs body(task, sink) for every task on the threads, and appends each task's pairs to `out` in
// task order. All tasks run in one parallel loop and the copy is parallel too: each barrier
// costs a whole scheduler time slice when a helper thread is descheduled on a busy machine, so
// there are two, rather than a pair of them per wave of tasks.
Status RunTasks(int64_t tasks, int threads, Matches* out,
                const std::function<void(int64_t, PairSink&)>& body) {
  if (tasks <= 0) return Status::OK();
  std::vector<PairSink> sinks(static_cast<size_t>(tasks));
  ParallelFor(tasks, threads, [&](int64_t t) { body(t, sinks[t]); });
  std::vector<int64_t> offsets(static_cast<size_t>(tasks) + 1, out->count);
  for (int64_t t = 0; t < tasks; ++t) {
    DEEPRC_RETURN_NOT_OK(sinks[t].status());
    offsets[t + 1] = offsets[t] + sinks[t].count();
  }
  const int64_t total = offsets[tasks];
  DEEPRC_RETURN_NOT_OK(out->Reserve(total));
  int64_t* left = reinterpret_cast<int64_t*>(out->left.data());
  int64_t* right = reinterpret_cast<int64_t*>(out->right.data());
  ParallelFor(tasks, threads, [&](int64_t t) {
    const size_t bytes = static_cast<size_t>(sinks[t].count()) * 8;
    if (bytes == 0) return;
    std::memcpy(left + offsets[t], sinks[t].left(), bytes);
    std::memcpy(right + offsets[t], sinks[t].right(), bytes);
  });
  out->count = total;
  out->left.UnsafeSetSize(total * 8);
  out->right.UnsafeSetSize(total * 8);
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Keys.

// A single fixed-width key as a 64-bit word: equal keys give equal words and different keys
// different words (both sides have the same type after promotion).
template <typename T>
inline uint64_t KeyWord(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    const double normalized = static_cast<double>(NormalizeKey(value));
    uint64_t bits;
    std::memcpy(&bits, &normalized, 8);
    return bits;
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<uint64_t>(static_cast<int64_t>(value));
  } else {
    return static_cast<uint64_t>(value);
  }
}

// Three-way comparison of key values across two columns of one type; nulls first and equal to
// each other; NaN after every number and equal to NaN.
using CompareFunction = int (*)(const Column&, int64_t, const Column&, int64_t);

template <typename Tag>
int CompareKeyValues(const Column& a, int64_t i, const Column& b, int64_t j) {
  const bool a_null = a.IsNull(i);
  const bool b_null = b.IsNull(j);
  if (a_null || b_null) return static_cast<int>(b_null) - static_cast<int>(a_null);
  if constexpr (std::is_same_v<Tag, BoolTag>) {
    return static_cast<int>(a.GetBool(i)) - static_cast<int>(b.GetBool(j));
  } else if constexpr (std::is_same_v<Tag, StringTag>) {
    const int c = a.GetString(i).compare(b.GetString(j));
    return (c > 0) - (c < 0);
  } else {
    using T = typename Tag::CType;
    const T x = a.Value<T>(i);
    const T y = b.Value<T>(j);
    if (x < y) return -1;
    if (y < x) return 1;
    if constexpr (std::is_floating_point_v<T>) {
      const bool x_nan = x != x;
      const bool y_nan = y != y;
      return static_cast<int>(x_nan) - static_cast<int>(y_nan);
    }
    return 0;
  }
}

// Compares key rows of side a with key rows of side b (same number and types of keys).
class RowComparator {
 public:
  RowComparator(const std::vector<Column>& a, const std::vector<Column>& b) : a_(&a), b_(&b) {
    for (const auto& column : a) {
      functions_.push_back(VisitType(column.type_id(), []<typename Tag>(Tag) -> CompareFunction {
        return &CompareKeyValues<Tag>;
      }));
    }
  }
  int operator()(int64_t i, int64_t j) const {
    for (size_t k = 0; k < functions_.size(); ++k) {
      const int c = functions_[k]((*a_)[k], i, (*b_)[k], j);
      if (c != 0) return c;
    }
    return 0;
  }

 private:
  const std::vector<Column>* a_;
  const std::vector<Column>* b_;
  std::vector<CompareFunction> functions_;
};

// Key columns of one side, promoted to the common types.
struct SideKeys {
  std::vector<Column> columns;
  int64_t rows = 0;

  bool AnyNull(int64_t row) const {
    for (const auto& column : columns) {
      if (column.IsNull(row)) return true;
    }
    return false;
  }
};

// ---------------------------------------------------------------------------------------------
// Partitioning: rows whose keys take part in matching become (word, row) entries, grouped by
// the top bits of their hash; the others (null keys) are listed apart, in row order.

struct Entry {
  uint64_t word;  // the key itself (one fixed-width key) or its hash (other keys)
  int64_t row;
};

struct PartitionedSide {
  std::shared_ptr<Buffer> buffer;
  std::vector<int64_t> begin;     // partition p is entries()[begin[p], begin[p + 1])
  std::vector<int64_t> excluded;  // rows left out of matching, ascending

  Entry* entries() { return buffer->mutable_data_as<Entry>(); }
  int64_t size() const { return begin.back(); }
};

inline uint64_t PartitionOf(uint64_t hash, int bits) { return bits == 0 ? 0 : hash >> (64 - bits); }

// Source: bool(int64_t row, uint64_t* word, uint64_t* hash), false to leave the row out.
template <typename Source>
Result<PartitionedSide> PartitionRows(int64_t rows, int bits, int threads, const Source& source) {
  const int64_t partitions = int64_t{1} << bits;
  const int chunks = rows >= (1 << 16) ? threads : 1;
  std::vector<std::vector<int64_t>> counts(chunks, std::vector<int64_t>(partitions + 1, 0));
  std::vector<std::vector<int64_t>> excluded(chunks);
  ParallelRanges(rows, chunks, threads, [&](int64_t chunk, int64_t begin, int64_t end) {
    int64_t* count = counts[chunk].data();
    for (int64_t i = begin; i < end; ++i) {
      uint64_t word, hash;
      if (source(i, &word, &hash)) {
        ++count[PartitionOf(hash, bits)];
      } else {
        excluded[chunk].push_back(i);
      }
    }
  });
  PartitionedSide out;
  // Positions: partition-major, chunk-minor.
  out.begin = ScatterStarts(chunks, partitions,
                            [&](int64_t c, int64_t p) -> int64_t& { return counts[c][p]; });
  const int64_t position = out.begin.back();
  DEEPRC_ASSIGN_OR_RAISE(out.buffer, Buffer::Allocate(std::max<int64_t>(position, 1) * 16));
  Entry* entries = out.entries();
  ParallelRanges(rows, chunks, threads, [&](int64_t chunk, int64_t begin, int64_t end) {
    int64_t* cursor = counts[chunk].data();
    for (int64_t i = begin; i < end; ++i) {
      uint64_t word, hash;
      if (source(i, &word, &hash)) entries[cursor[PartitionOf(hash, bits)]++] = {word, i};
    }
  });
  for (auto& list : excluded) out.excluded.insert(out.excluded.end(), list.begin(), list.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hash join of one partition: build a table on one side, probe it with the other.

struct HashTableScratch {
  std::vector<uint64_t> slot_word;
  std::vector<int32_t> slot_head;
  std::vector<int32_t> next;
  std::vector<uint8_t> build_matched;
};

// kGeneric: words are hashes, and equal words still need build_equal(build row, build row) while
// building and probe_equal(build row, probe row) while probing.
template <bool kGeneric, typename BuildEqual, typename ProbeEqual>
void JoinPartition(const Entry* build, int64_t build_count, const Entry* probe, int64_t probe_count,
                   bool build_is_left, const JoinFlags& flags, const BuildEqual& build_equal,
                   const ProbeEqual& probe_equal, uint8_t* left_marks, PairSink& sink) {
  if (build_count == 0 && probe_count == 0) return;
  thread_local HashTableScratch scratch;
  const bool probe_unmatched = build_is_left ? flags.right_unmatched : flags.left_unmatched;
  const bool build_unmatched = build_is_left ? flags.left_unmatched : flags.right_unmatched;
  auto emit = [&](int64_t build_row, int64_t probe_row) {
    if (build_is_left) {
      sink.Push(build_row, probe_row);
    } else {
      sink.Push(probe_row, build_row);
    }
  };
  if (build_count == 0) {
    if (probe_unmatched) {
      for (int64_t i = 0; i < probe_count; ++i) emit(-1, probe[i].row);
    }
    return;
  }
  uint64_t capacity = 16;
  while (capacity < static_cast<uint64_t>(build_count) * 2) capacity <<= 1;
  const uint64_t mask = capacity - 1;
  scratch.slot_word.resize(capacity);
  scratch.slot_head.assign(capacity, -1);
  scratch.next.resize(static_cast<size_t>(build_count));
  uint64_t* slot_word = scratch.slot_word.data();
  int32_t* slot_head = scratch.slot_head.data();
  int32_t* next = scratch.next.data();
  auto hash_of = [](uint64_t word) { return kGeneric ? word : HashWord(word); };

  // Build, last entry first, so that chains list rows in ascending order.
  for (int64_t j = build_count - 1; j >= 0; --j) {
    const uint64_t word = build[j].word;
    uint64_t slot = hash_of(word) & mask;
    while (true) {
      const int32_t head = slot_head[slot];
      if (head < 0) {
        slot_word[slot] = word;
        slot_head[slot] = static_cast<int32_t>(j);
        next[j] = -1;
        break;
      }
      if (slot_word[slot] == word && (!kGeneric || build_equal(build[head].row, build[j].row))) {
        next[j] = head;
        slot_head[slot] = static_cast<int32_t>(j);
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  const bool need_build_marks = build_unmatched || (flags.left_marks && build_is_left);
  uint8_t* build_matched = nullptr;
  if (need_build_marks) {
    scratch.build_matched.assign(static_cast<size_t>(build_count), 0);
    build_matched = scratch.build_matched.data();
  }
  for (int64_t i = 0; i < probe_count; ++i) {
    const uint64_t word = probe[i].word;
    const int64_t probe_row = probe[i].row;
    uint64_t slot = hash_of(word) & mask;
    int32_t found = -1;
    while (true) {
      const int32_t head = slot_head[slot];
      if (head < 0) break;
      if (slot_word[slot] == word && (!kGeneric || probe_equal(build[head].row, probe_row))) {
        found = head;
        break;
      }
      slot = (slot + 1) & mask;
    }
    if (found < 0) {
      if (probe_unmatched) emit(-1, probe_row);
      continue;
    }
    if (flags.pairs) {
      for (int32_t j = found; j >= 0; j = next[j]) {
        emit(build[j].row, probe_row);
        if (build_matched != nullptr) build_matched[j] = 1;
      }
    } else if (build_is_left) {
      // Semi/anti with the left side built: mark the whole chain once.
      if (!build_matched[found]) {
        for (int32_t j = found; j >= 0; j = next[j]) {
          build_matched[j] = 1;
          left_marks[build[j].row] = 1;
        }
      }
    } else {
      left_marks[probe_row] = 1;
    }
  }
  if (build_unmatched) {
    for (int64_t j = 0; j < build_count; ++j) {
      if (!build_matched[j]) emit(build[j].row, -1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sort-merge join.

// LSD radix sort of entries by word, one pass per byte that differs between entries.
Status RadixSortEntries(Entry* entries, int64_t n) {
  if (n < 2) return Status::OK();
  uint64_t differing = 0;
  const uint64_t first = entries[0].word;
  for (int64_t i = 1; i < n; ++i) differing |= entries[i].word ^ first;
  if (differing == 0) return Status::OK();
  if (n < 256) {
    std::stable_sort(entries, entries + n,
                     [](const Entry& a, const Entry& b) { return a.word < b.word; });
    return Status::OK();
  }
  DEEPRC_ASSIGN_OR_RAISE(auto temporary, Buffer::Allocate(n * 16));
  Entry* from = entries;
  Entry* to = temporary->mutable_data_as<Entry>();
  for (int byte = 0; byte < 8; ++byte) {
    const int shift = byte * 8;
    if (((differing >> shift) & 0xff) == 0) continue;
    int64_t counts[256] = {};
    for (int64_t i = 0; i < n; ++i) ++counts[(from[i].word >> shift) & 0xff];
    int64_t position = 0;
    for (auto& count : counts) {
      const int64_t c = count;
      count = position;
      position += c;
    }
    for (int64_t i = 0; i < n; ++i) to[counts[(from[i].word >> shift) & 0xff]++] = from[i];
    std::swap(from, to);
  }
  if (from != entries) std::memcpy(entries, from, static_cast<size_t>(n) * 16);
  return Status::OK();
}

// Merges sorted left [l0, l1) with sorted right [r0, r1). Access is through callbacks so that the
// fixed-width path (entries by word) and the generic path (rows by comparator) share the logic.
// compare(i, j): left position i against right position j; same_left(i, i2), same_right(j, j2).
template <typename Compare, typename SameLeft, typename SameRight, typename LeftRow,
          typename RightRow>
void MergeRange(int64_t l0, int64_t l1, int64_t r0, int64_t r1, const JoinFlags& flags,
                const Compare& compare, const SameLeft& same_left, const SameRight& same_right,
                const LeftRow& left_row, const RightRow& right_row, uint8_t* left_marks,
                PairSink& sink) {
  int64_t i = l0;
  int64_t j = r0;
  while (i < l1 && j < r1) {
    const int c = compare(i, j);
    if (c < 0) {
      if (flags.left_unmatched) sink.Push(left_row(i), -1);
      ++i;
    } else if (c > 0) {
      if (flags.right_unmatched) sink.Push(-1, right_row(j));
      ++j;
    } else {
      int64_t i_end = i + 1;
      while (i_end < l1 && same_left(i, i_end)) ++i_end;
      int64_t j_end = j + 1;
      while (j_end < r1 && same_right(j, j_end)) ++j_end;
      if (flags.pairs) {
        for (int64_t a = i; a < i_end; ++a) {
          const int64_t l = left_row(a);
          for (int64_t b = j; b < j_end; ++b) sink.Push(l, right_row(b));
        }
      } else {
        for (int64_t a = i; a < i_end; ++a) left_marks[left_row(a)] = 1;
      }
      i = i_end;
      j = j_end;
    }
  }
  if (flags.left_unmatched) {
    for (; i < l1; ++i) sink.Push(left_row(i), -1);
  }
  if (flags.right_unmatched) {
    for (; j < r1; ++j) sink.Push(-1, right_row(j));
  }
}

// Splits sorted sides into `tasks` merge ranges that never cut a run of equal left keys; the
// right ranges start where the left ranges' first keys would go.
template <typename SameLeft, typename RightLowerBound>
std::vector<std::pair<int64_t, int64_t>> MergeBounds(int64_t nl, int64_t nr, int64_t tasks,
                                                     const SameLeft& same_left,
                                                     const RightLowerBound& lower_bound) {
  std::vector<std::pair<int64_t, int64_t>> bounds;
  bounds.push_back({0, 0});
  for (int64_t t = 1; t < tasks; ++t) {
    int64_t l = std::max(bounds.back().first, nl * t / tasks);
    while (l > 0 && l < nl && same_left(l - 1, l)) ++l;
    if (l >= nl) break;
    if (l == bounds.back().first) continue;
    bounds.push_back({l, std::max(bounds.back().second, lower_bound(l))});
  }
  bounds.push_back({nl, nr});
  return bounds;
}

// ---------------------------------------------------------------------------------------------
// Matching drivers.

struct MatchContext {
  JoinFlags flags;
  JoinAlgorithm algorithm;
  bool nulls_equal;
  int threads;
  int partition_bits;
  int64_t left_rows;
  int64_t right_rows;
};

int ChoosePartitionBits(int64_t build_rows, int threads, int requested) {
  if (requested >= 0) return std::min(requested, 16);
  int bits = 0;
  while (bits < 14 && (build_rows >> bits) > 8192) ++bits;
  if (threads > 1 && build_rows > 100000) bits = std::max(bits, 4);
  return bits;
}

// Handles the rows left out of matching: null keys. With `null_group`, null keys match each other
// (one fixed-width key with nulls_equal); otherwise they are unmatched.
Status AppendExcluded(const std::vector<int64_t>& left_excluded,
                      const std::vector<int64_t>& right_excluded, bool null_group,
                      const JoinFlags& flags, Matches* matches) {
  const bool cross = null_group && !left_excluded.empty() && !right_excluded.empty();
  if (cross) {
    if (flags.pairs) {
      for (int64_t l : left_excluded) {
        for (int64_t r : right_excluded) DEEPRC_RETURN_NOT_OK(matches->Push(l, r));
      }
    } else {
      for (int64_t l : left_excluded) matches->marks()[l] = 1;
    }
    return Status::OK();
  }
  if (flags.left_unmatched) {
    for (int64_t l : left_excluded) DEEPRC_RETURN_NOT_OK(matches->Push(l, -1));
  }
  if (flags.right_unmatched) {
    for (int64_t r : right_excluded) DEEPRC_RETURN_NOT_OK(matches->Push(-1, r));
  }
  return Status::OK();
}

// Both algorithms over partitioned/compacted entries. kGeneric: words are hashes, `equal` and
// `compare` look at the key columns.
template <bool kGeneric, typename Source, typename LeftSource>
Status MatchEntries(const MatchContext& context, const LeftSource& left_source,
                    const Source& right_source, const SideKeys& left_keys,
                    const SideKeys& right_keys, Matches* matches) {
  const JoinFlags& flags = context.flags;
  const int threads = context.threads;
  uint8_t* marks = matches->marks();
  if (context.algorithm == JoinAlgorithm::kSortMerge) {
    DEEPRC_ASSIGN_OR_RAISE(auto left, PartitionRows(context.left_rows, 0, threads, left_source));
    DEEPRC_ASSIGN_OR_RAISE(auto right, PartitionRows(context.right_rows, 0, threads, right_source));
    const int64_t nl = left.size();
    const int64_t nr = right.size();
    Entry* le = left.entries();
    Entry* re = right.entries();
    RowComparator left_left(left_keys.columns, left_keys.columns);
    RowComparator right_right(right_keys.columns, right_keys.columns);
    RowComparator left_right(left_keys.columns, right_keys.columns);
    // Sort both sides, one per thread.
    std::vector<Status> statuses(2);
    ParallelFor(2, threads, [&](int64_t side) {
      Entry* entries = side == 0 ? le : re;
      const int64_t n = side == 0 ? nl : nr;
      if constexpr (kGeneric) {
        const RowComparator& self = side == 0 ? left_left : right_right;
        std::sort(entries, entries + n, [&](const Entry& a, const Entry& b) {
          const int c = self(a.row, b.row);
          return c < 0 || (c == 0 && a.row < b.row);
        });
      } else {
        statuses[side] = RadixSortEntries(entries, n);
      }
    });
    for (const auto& status : statuses) DEEPRC_RETURN_NOT_OK(status);
    auto compare = [&](int64_t i, int64_t j) -> int {
      if constexpr (kGeneric) {
        return left_right(le[i].row, re[j].row);
      } else {
        return le[i].word < re[j].word ? -1 : (le[i].word > re[j].word ? 1 : 0);
      }
    };
    auto same_left = [&](int64_t a, int64_t b) {
      if constexpr (kGeneric) {
        return left_left(le[a].row, le[b].row) == 0;
      } else {
        return le[a].word == le[b].word;
      }
    };
    auto same_right = [&](int64_t a, int64_t b) {
      if constexpr (kGeneric) {
        return right_right(re[a].row, re[b].row) == 0;
      } else {
        return re[a].word == re[b].word;
      }
    };
    auto lower_bound = [&](int64_t l) {
      int64_t lo = 0, hi = nr;
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (compare(l, mid) > 0) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    };
    const auto bounds = MergeBounds(nl, nr, int64_t{4} * threads, same_left, lower_bound);
    auto left_row = [&](int64_t i) { return le[i].row; };
    auto right_row = [&](int64_t j) { return re[j].row; };
    DEEPRC_RETURN_NOT_OK(RunTasks(
        static_cast<int64_t>(bounds.size()) - 1, threads, matches, [&](int64_t t, PairSink& sink) {
          MergeRange(bounds[t].first, bounds[t + 1].first, bounds[t].second, bounds[t + 1].second,
                     flags, compare, same_left, same_right, left_row, right_row, marks, sink);
        }));
    return AppendExcluded(left.excluded, right.excluded, !kGeneric && context.nulls_equal, flags,
                          matches);
  }

  // Hash join: build on the smaller side.
  const bool build_is_left = context.left_rows < context.right_rows;
  const int bits = ChoosePartitionBits(std::min(context.left_rows, context.right_rows), threads,
                                       context.partition_bits);
  DEEPRC_ASSIGN_OR_RAISE(auto left, PartitionRows(context.left_rows, bits, threads, left_source));
  DEEPRC_ASSIGN_OR_RAISE(auto right,
                         PartitionRows(context.right_rows, bits, threads, right_source));
  PartitionedSide& build = build_is_left ? left : right;
  PartitionedSide& probe = build_is_left ? right : left;
  const SideKeys& build_keys = build_is_left ? left_keys : right_keys;
  const SideKeys& probe_keys = build_is_left ? right_keys : left_keys;
  RowComparator build_build(build_keys.columns, build_keys.columns);
  RowComparator build_probe(build_keys.columns, probe_keys.columns);
  for (size_t p = 0; p + 1 < build.begin.size(); ++p) {
    if (build.begin[p + 1] - build.begin[p] > std::numeric_limits<int32_t>::max()) {
      return Status::NotImplemented("hash join partition of {} rows (more than 2^31)",
                                    build.begin[p + 1] - build.begin[p]);
    }
  }
  if (flags.pairs) {
    DEEPRC_RETURN_NOT_OK(matches->Reserve(std::max(left.size(), right.size()) +
                                          static_cast<int64_t>(left.excluded.size()) +
                                          static_cast<int64_t>(right.excluded.size())));
  }
  Entry* build_entries = build.entries();
  Entry* probe_entries = probe.entries();
  const int64_t partitions = int64_t{1} << bits;
  DEEPRC_RETURN_NOT_OK(RunTasks(partitions, threads, matches, [&](int64_t p, PairSink& sink) {
    const Entry* b = build_entries + build.begin[p];
    const int64_t nb = build.begin[p + 1] - build.begin[p];
    const Entry* q = probe_entries + probe.begin[p];
    const int64_t nq = probe.begin[p + 1] - probe.begin[p];
    if constexpr (kGeneric) {
      JoinPartition<true>(
          b, nb, q, nq, build_is_left, flags,
          [&](int64_t x, int64_t y) { return build_build(x, y) == 0; },
          [&](int64_t x, int64_t y) { return build_probe(x, y) == 0; }, marks, sink);
    } else {
      auto unused = [](int64_t, int64_t) { return true; };
      JoinPartition<false>(b, nb, q, nq, build_is_left, flags, unused, unused, marks, sink);
    }
  }));
  return AppendExcluded(left.excluded, right.excluded, !kGeneric && context.nulls_equal, flags,
                        matches);
}

// Fills `out` with the key hashes of every row (the same hash for equal keys on both sides).
Result<std::shared_ptr<Buffer>> HashKeys(const SideKeys& keys, int threads) {
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, Buffer::Allocate(std::max<int64_t>(keys.rows, 1) * 8));
  uint64_t* hashes = buffer->mutable_data_as<uint64_t>();
  constexpr int64_t kMorsel = 1 << 14;
  const int64_t morsels = (keys.rows + kMorsel - 1) / kMorsel;
  ParallelFor(morsels, threads, [&](int64_t m) {
    const int64_t begin = m * kMorsel;
    const int64_t end = std::min(keys.rows, begin + kMorsel);
    for (size_t k = 0; k < keys.columns.size(); ++k) {
      HashColumn(keys.columns[k], begin, end, k > 0, hashes + begin);
    }
  });
  return buffer;
}

Result<Matches> Match(const MatchContext& context, const SideKeys& left, const SideKeys& right) {
  Matches matches;
  if (context.flags.left_marks) {
    DEEPRC_ASSIGN_OR_RAISE(matches.left_marks,
                           Buffer::AllocateZeroed(std::max<int64_t>(context.left_rows, 1)));
  }
  const bool fixed_width = left.columns.size() == 1 && left.columns[0].type_id() != TypeId::kString;
  if (fixed_width) {
    // One fixed-width key: the key value is the word; no per-row type dispatch.
    const Column& lc = left.columns[0];
    const Column& rc = right.columns[0];
    Status status = VisitType(lc.type_id(), [&]<typename Tag>(Tag) -> Status {
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        auto source = [](const Column& column) {
          return [&column](int64_t i, uint64_t* word, uint64_t* hash) {
            if (column.IsNull(i)) return false;
            *word = column.GetBool(i) ? 1 : 0;
            *hash = HashWord(*word);
            return true;
          };
        };
        return MatchEntries<false>(context, source(lc), source(rc), left, right, &matches);
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        return Status::Internal("string key on the fixed-width path");
      } else {
        using T = typename Tag::CType;
        auto source = [](const Column& column) {
          const T* values = column.Values<T>();
          const uint8_t* validity = column.validity_bits();
          const int64_t offset = column.offset();
          return [values, validity, offset](int64_t i, uint64_t* word, uint64_t* hash) {
            if (validity != nullptr && !bitmap::GetBit(validity, offset + i)) return false;
            *word = KeyWord(values[i]);
            *hash = HashWord(*word);
            return true;
          };
        };
        return MatchEntries<false>(context, source(lc), source(rc), left, right, &matches);
      }
    });
    DEEPRC_RETURN_NOT_OK(status);
    return matches;
  }
  DEEPRC_ASSIGN_OR_RAISE(auto left_hashes, HashKeys(left, context.threads));
  DEEPRC_ASSIGN_OR_RAISE(auto right_hashes, HashKeys(right, context.threads));
  auto source = [&context](const SideKeys& keys, const std::shared_ptr<Buffer>& hashes) {
    const uint64_t* h = hashes->data_as<uint64_t>();
    return [&keys, h, &context](int64_t i, uint64_t* word, uint64_t* hash) {
      if (!context.nulls_equal && keys.AnyNull(i)) return false;
      *word = *hash = h[i];
      return true;
    };
  };
  DEEPRC_RETURN_NOT_OK(MatchEntries<true>(context, source(left, left_hashes),
                                          source(right, right_hashes), left, right, &matches));
  return matches;
}

DataType IntegerOfWidth(int width, bool is_signed) {
  switch (width) {
    case 1:
      return is_signed ? DataType::Int8() : DataType::UInt8();
    case 2:
      return is_signed ? DataType::Int16() : DataType::UInt16();
    case 4:
      return is_signed ? DataType::Int32() : DataType::UInt32();
    default:
      return is_signed ? DataType::Int64() : DataType::UInt64();
  }
}

// The type both keys are compared in; an error when they cannot be compared.
Result<DataType> CommonKeyType(const DataType& a, const DataType& b) {
  if (a == b) return a;
  if (!IsNumeric(a.id) || !IsNumeric(b.id)) {
    return Status::TypeError("{} cannot be compared with {}", a.ToString(), b.ToString());
  }
  if (IsFloating(a.id) || IsFloating(b.id)) return DataType::Float64();
  const int wa = ByteWidth(a.id);
  const int wb = ByteWidth(b.id);
  const bool sa = IsSignedInteger(a.id);
  const bool sb = IsSignedInteger(b.id);
  if (sa == sb) return IntegerOfWidth(std::max(wa, wb), sa);
  const int signed_width = sa ? wa : wb;
  const int unsigned_width = sa ? wb : wa;
  if (signed_width > unsigned_width) return IntegerOfWidth(signed_width, true);
  return IntegerOfWidth(std::min(8, unsigned_width * 2), true);
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "'" : ", '") + name + "'";
  return text;
}

}  // namespace

Result<Table> Join(const Table& left, const Table& right, const JoinOptions& options) {
  if (options.left_keys.empty() || options.right_keys.empty()) {
    return Status::Invalid(
        "join needs at least one key column on each side (left keys: [{}], "
        "right keys: [{}])",
        JoinNames(options.left_keys), JoinNames(options.right_keys));
  }
  if (options.left_keys.size() != options.right_keys.size()) {
    return Status::Invalid(
        "join has {} left keys ([{}]) and {} right keys ([{}]); the counts "
        "must match",
        options.left_keys.size(), JoinNames(options.left_keys), options.right_keys.size(),
        JoinNames(options.right_keys));
  }
  auto left_index = left.schema().GetFieldIndices(options.left_keys);
  if (!left_index.ok()) return left_index.status().WithContext("left join key");
  auto right_index = right.schema().GetFieldIndices(options.right_keys);
  if (!right_index.ok()) return right_index.status().WithContext("right join key");
  const std::vector<int>& left_key_columns = *left_index;
  const std::vector<int>& right_key_columns = *right_index;
  const size_t num_keys = options.left_keys.size();

  SideKeys left_keys;
  SideKeys right_keys;
  left_keys.rows = left.num_rows();
  right_keys.rows = right.num_rows();
  for (size_t k = 0; k < num_keys; ++k) {
    const Column& lc = left.column(left_key_columns[k]);
    const Column& rc = right.column(right_key_columns[k]);
    auto common = CommonKeyType(lc.type(), rc.type());
    if (!common.ok()) {
      return Status::TypeError(
          "join key '{}' (left, {}) cannot be compared with key '{}' "
          "(right, {}): {}",
          options.left_keys[k], lc.type().ToString(), options.right_keys[k], rc.type().ToString(),
          common.status().message());
    }
    auto lcast = Cast(lc, *common);
    if (!lcast.ok()) {
      return lcast.status().WithContext("promoting left join key '" + options.left_keys[k] + "'");
    }
    auto rcast = Cast(rc, *common);
    if (!rcast.ok()) {
      return rcast.status().WithContext("promoting right join key '" + options.right_keys[k] + "'");
    }
    left_keys.columns.push_back(lcast.MoveValueUnsafe());
    right_keys.columns.push_back(rcast.MoveValueUnsafe());
  }

  MatchContext context;
  context.flags = FlagsFor(options.type);
  context.algorithm =
      options.algorithm == JoinAlgorithm::kAuto ? JoinAlgorithm::kHash : options.algorithm;
  context.nulls_equal = options.nulls_equal;
  context.threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  context.partition_bits = options.partition_bits;
  context.left_rows = left.num_rows();
  context.right_rows = right.num_rows();
  const int threads = context.threads;

  // Output names, checked before any work.
  std::vector<int> shared_of_left(left.num_columns(), -1);  // key index for shared key columns
  std::vector<bool> right_dropped(right.num_columns(), false);
  for (size_t k = 0; k < num_keys; ++k) {
    if (options.left_keys[k] == options.right_keys[k]) {
      shared_of_left[left_key_columns[k]] = static_cast<int>(k);
      right_dropped[right_key_columns[k]] = true;
    }
  }
  std::vector<int> right_output;
  for (int c = 0; c < right.num_columns(); ++c) {
    if (!right_dropped[c]) right_output.push_back(c);
  }
  std::unordered_set<std::string> left_names;
  std::unordered_set<std::string> right_names;
  for (const auto& field : left.schema().fields()) left_names.insert(field.name);
  for (int c : right_output) right_names.insert(right.schema().field(c).name);

  DEEPRC_ASSIGN_OR_RAISE(Matches matches, Match(context, left_keys, right_keys));

  if (!context.flags.pairs) {
    const uint8_t* marks = matches.left_marks->data();
    const bool want = options.type == JoinType::kSemi;
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < left.num_rows(); ++i) {
      if ((marks[i] != 0) == want) rows.push_back(i);
    }
    return Take(left, rows, threads);
  }

  std::vector<Field> fields;
  std::unordered_set<std::string> seen;
  auto add_name = [&](std::string name, const DataType& type, std::string_view side,
                      std::string_view original) -> Status {
    if (!seen.insert(name).second) {
      return Status::Invalid(
          "join output would have two columns named '{}' (from {} column "
          "'{}'); choose other suffixes than '{}' and '{}'",
          name, side, original, options.left_suffix, options.right_suffix);
    }
    fields.push_back({std::move(name), type});
    return Status::OK();
  };
  for (int c = 0; c < left.num_columns(); ++c) {
    const Field& field = left.schema().field(c);
    const DataType type =
        shared_of_left[c] >= 0 ? left_keys.columns[shared_of_left[c]].type() : field.type;
    const bool clash = right_names.count(field.name) > 0;
    DEEPRC_RETURN_NOT_OK(
        add_name(clash ? field.name + options.left_suffix : field.name, type, "left", field.name));
  }
  for (int c : right_output) {
    const Field& field = right.schema().field(c);
    const bool clash = left_names.count(field.name) > 0;
    DEEPRC_RETURN_NOT_OK(add_name(clash ? field.name + options.right_suffix : field.name,
                                  field.type, "right", field.name));
  }

  const int64_t n = matches.count;
  std::span<const int64_t> left_rows(reinterpret_cast<const int64_t*>(matches.left.data()),
                                     static_cast<size_t>(n));
  std::span<const int64_t> right_rows(reinterpret_cast<const int64_t*>(matches.right.data()),
                                      static_cast<size_t>(n));
  const bool coalesce = options.type == JoinType::kOuter;
  const bool keys_from_right = options.type == JoinType::kRight;

  // Left columns (shared keys in their common type, unless they come from elsewhere).
  std::vector<Field> left_fields;
  std::vector<Column> left_columns;
  std::vector<int> left_position(left.num_columns(), -1);
  for (int c = 0; c < left.num_columns(); ++c) {
    if (shared_of_left[c] >= 0 && (coalesce || keys_from_right)) continue;
    left_position[c] = static_cast<int>(left_columns.size());
    left_fields.push_back(fields[c]);
    left_columns.push_back(shared_of_left[c] >= 0 ? left_keys.columns[shared_of_left[c]]
                                                  : left.column(c));
  }
  DEEPRC_ASSIGN_OR_RAISE(Table left_input,
                         Table::Make(Schema(left_fields), left_columns, left.num_rows()));
  DEEPRC_ASSIGN_OR_RAISE(Table left_taken, Take(left_input, left_rows, threads));

  // Right columns, then shared keys taken from the right (right join) or coalesced (outer).
  std::vector<Field> right_fields;
  std::vector<Column> right_columns;
  for (size_t i = 0; i < right_output.size(); ++i) {
    right_fields.push_back(fields[left.num_columns() + i]);
    right_columns.push_back(right.column(right_output[i]));
  }
  std::vector<int> shared_position(num_keys, -1);
  if (keys_from_right) {
    for (int c = 0; c < left.num_columns(); ++c) {
      if (shared_of_left[c] < 0) continue;
      shared_position[shared_of_left[c]] = static_cast<int>(right_columns.size());
      right_fields.push_back(fields[c]);
      right_columns.push_back(right_keys.columns[shared_of_left[c]]);
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(Table right_input,
                         Table::Make(Schema(right_fields), right_columns, right.num_rows()));
  DEEPRC_ASSIGN_OR_RAISE(Table right_taken, Take(right_input, right_rows, threads));

  std::vector<Column> coalesced(num_keys);
  if (coalesce) {
    std::vector<int64_t> combined(static_cast<size_t>(n));
    const int64_t offset = left.num_rows();
    for (int64_t i = 0; i < n; ++i) {
      combined[i] =
          left_rows[i] >= 0 ? left_rows[i] : (right_rows[i] >= 0 ? offset + right_rows[i] : -1);
    }
    for (size_t k = 0; k < num_keys; ++k) {
      if (options.left_keys[k] != options.right_keys[k]) continue;
      DEEPRC_ASSIGN_OR_RAISE(Column both,
                             Concatenate({left_keys.columns[k], right_keys.columns[k]}));
      DEEPRC_ASSIGN_OR_RAISE(Table both_table, Table::Make(Schema({Field{"key", both.type()}}),
                                                           {both}, both.length()));
      DEEPRC_ASSIGN_OR_RAISE(Table taken, Take(both_table, combined, threads));
      coalesced[k] = taken.column(0);
    }
  }

  std::vector<Column> columns;
  columns.reserve(fields.size());
  for (int c = 0; c < left.num_columns(); ++c) {
    if (left_position[c] >= 0) {
      columns.push_back(left_taken.column(left_position[c]));
    } else if (coalesce) {
      columns.push_back(coalesced[shared_of_left[c]]);
    } else {
      columns.push_back(right_taken.column(shared_position[shared_of_left[c]]));
    }
  }
  for (size_t i = 0; i < right_output.size(); ++i) {
    columns.push_back(right_taken.column(static_cast<int>(i)));
  }
  return Table::Make(Schema(std::move(fields)), std::move(columns), n);
}

}  // namespace deeprc::compute
