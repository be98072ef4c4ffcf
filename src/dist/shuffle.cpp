// The shuffle: hash partitioning and the exchange of rows between ranks. The exchange receives
// in place (InPlaceExchange below): nothing is copied after the bytes arrive.

#include "deeprc/dist/shuffle.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "agreement_internal.h"
#include "deeprc/compute/hash.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/bitmap.h"
#include "shuffle_internal.h"

namespace deeprc::dist {
namespace {

using comm::BufferPtr;

constexpr int64_t kMorsel = int64_t{1} << 16;
// Rows per scatter range: enough that the per-range counts stay small beside the rows.
constexpr int64_t kRangeRows = int64_t{1} << 15;

// The rank of a key hash. The local hash join and grouping take their buckets from the hash's
// top bits (partitions) and low bits (slots); taking the rank from those bits too would leave
// every rank's rows with the same few values there after the shuffle. The hash is therefore mixed
// again with a different constant (every output bit depends on every input bit), and the rank is
// the high half of the 128-bit product with the rank count (no modulo bias, no division).
inline int32_t RankOfHash(uint64_t hash, uint64_t ranks) {
  const uint64_t mixed = compute::HashWord(hash ^ 0x5bd1e9955bd1e995ULL);
  return static_cast<int32_t>((static_cast<unsigned __int128>(mixed) * ranks) >> 64);
}

int ThreadsOf(int threads) { return threads > 0 ? threads : DefaultThreadCount(); }

// Bytes of the table's buffers (its rows only), to size the rounds.
int64_t TableBytes(const Table& table) {
  int64_t bytes = 0;
  const int64_t rows = table.num_rows();
  for (const auto& column : table.columns()) {
    if (column.has_nulls()) bytes += bitmap::BytesForBits(rows);
    switch (column.type_id()) {
      case TypeId::kString:
        bytes += (rows + 1) * 8 + column.StringOffsets()[rows] - column.StringOffsets()[0];
        break;
      case TypeId::kBool:
        bytes += bitmap::BytesForBits(rows);
        break;
      default:
        bytes += rows * ByteWidth(column.type_id());
    }
  }
  return bytes;
}

// Packs `n` bytes of 0 or 1 into bits (bit i = byte i); returns how many are 1.
int64_t PackBytesToBits(const uint8_t* bytes, int64_t n, uint8_t* bits) {
  int64_t ones = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    // Byte j (0 or 1) of the word lands on bit 56 + j of the product; no two partial products
    // meet, so there are no carries.
    const auto packed = static_cast<uint8_t>((word * 0x0102040810204080ULL) >> 56);
    bits[i >> 3] = packed;
    ones += std::popcount(packed);
  }
  if (i < n) {
    uint8_t last = 0;
    for (int64_t j = i; j < n; ++j) last |= static_cast<uint8_t>((bytes[j] & 1) << (j - i));
    bits[i >> 3] = last;
    ones += std::popcount(last);
  }
  return ones;
}

// Receives in place: every byte that arrives lands where the output columns keep it.
//
//  1. Counts: the rows are cut into rounds of about `chunk_bytes`, each round into ranges (one
//     per task); per (round, range, destination) the rows and the string bytes of every string
//     column are counted. One small all-to-all of the per-round totals tells every rank the size
//     of every piece (source, round) it receives, hence the output's size and where each piece
//     starts in it (source order, then round order: the sources' row order).
//  2. The output columns are allocated once. Rows for this rank are scattered straight to their
//     final positions; rows for the others into per-column send buffers, grouped by
//     destination (sized for the largest round, reused by every round).
//  3. Per round, one batch of AllToAllV parts (one per wire buffer of each column, posted
//     together and waited for once) receives at the final positions: fixed-width values as
//     they are; bools and validity one byte per row (packed into bitmaps at the end); strings
//     as uint32 lengths per row, placed in the upper half of the output's offsets buffer and
//     prefix-summed into the offsets in place at the end, plus the bytes.
//  4. With several threads, a partitioning thread scatters round k + 1 into a second set of
//     send buffers while the caller's thread exchanges round k. With one thread per rank the
//     two threads would share the rank's one core with a busy-waiting MPI progress loop, so
//     the rounds then run one after the other (measured at 2 ranks, 1 thread, on a loaded
//     2-core machine: no gain from the overlap, within the noise).
class InPlaceExchange {
 public:
  InPlaceExchange(comm::Communicator& comm, const Table& table, std::span<const int32_t> targets,
                  const ShuffleOptions& options, const std::vector<int64_t>* bounds = nullptr)
      : bounds_(bounds),
        comm_(comm),
        table_(table),
        targets_(targets),
        ranks_(comm.size()),
        rank_(comm.rank()),
        threads_(ThreadsOf(options.threads)),
        chunk_bytes_(std::max<int64_t>(options.chunk_bytes, 1)),
        fuse_below_bytes_(options.fuse_below_bytes) {}

  Result<Table> Run() {
    const int64_t rows = table_.num_rows();
    // Bad input on one rank must fail every rank, not leave the others in the all-to-all; the
    // same reduction agrees on the number of rounds and checks that the schemas match.
    int64_t bad = static_cast<int64_t>(targets_.size()) != rows ? kBadTargets : 0;
    if (bad == 0 && ranks_ == 1) {
      // (With more ranks, CountRounds checks the targets as it counts them.)
      for (int32_t target : targets_) bad = target != 0 ? kBadTargets : bad;
    }
    const int64_t bytes = TableBytes(table_);
    local_rounds_ = rows == 0 ? 0 : std::max<int64_t>(1, (bytes + chunk_bytes_ - 1) / chunk_bytes_);
    rows_per_round_ = local_rounds_ == 0 ? 1 : (rows + local_rounds_ - 1) / local_rounds_;
    for (int c = 0; c < table_.num_columns(); ++c) {
      if (table_.column(c).type_id() == TypeId::kString) string_columns_.push_back(c);
    }
    if (bad == 0 && ranks_ > 1) {
      CountRounds();
      if (target_out_of_range_) {
        bad = kBadTargets;
      } else if (long_string_column_ >= 0) {
        bad = kLongString;
      }
    }
    const auto schema_hash =
        static_cast<int64_t>(std::hash<std::string>{}(table_.schema().ToString()) >> 1);
    int64_t agreed[5] = {bad, local_rounds_, schema_hash, -schema_hash, bytes};
    DEEPRC_RETURN_NOT_OK(comm_.AllReduce(std::span<int64_t>(agreed, 5), comm::ReduceOp::kMax));
    if (bad == kBadTargets) {
      return Status::Invalid("exchange: {} targets for {} rows, or a target outside [0, {})",
                             targets_.size(), rows, ranks_);
    }
    if (bad == kLongString) {
      const auto& column = table_.column(long_string_column_);
      int64_t longest = 0;
      for (int64_t i = 0; i < rows; ++i) {
        longest = std::max<int64_t>(longest, static_cast<int64_t>(column.GetString(i).size()));
      }
      return Status::NotImplemented(
          "exchange: column '{}' holds a string of {} bytes; strings of 4 GiB or more cannot be "
          "exchanged",
          table_.schema().field(long_string_column_).name, longest);
    }
    if (agreed[0] != 0) return Status::Invalid("exchange: another rank passed bad rows or targets");
    if (agreed[2] != -agreed[3]) {
      return Status::Invalid(
          "exchange: the ranks' tables have different schemas; this rank has ({})",
          table_.schema().ToString());
    }
    if (ranks_ == 1) return table_;
    // At least one round even when no rank has rows.
    rounds_ = std::max<int64_t>(agreed[1], 1);
    // Small rounds travel in one message per peer (see ExchangeRoundFused).
    fused_ = agreed[4] / rounds_ < fuse_below_bytes_;
    overlap_ = threads_ > 1 && rounds_ > 1;

    DEEPRC_RETURN_NOT_OK(PlanWire());
    DEEPRC_RETURN_NOT_OK(ExchangeCounts());
    DEEPRC_RETURN_NOT_OK(dist::AgreeOnStatus(comm_, Allocate(), "exchange"));

    if (overlap_) {
      DEEPRC_RETURN_NOT_OK(RunOverlapped());
    } else {
      for (int64_t k = 0; k < rounds_; ++k) {
        ScatterOrAbort(k, 0);
        DEEPRC_RETURN_NOT_OK(fused_ ? ExchangeRoundFused(k, 0) : ExchangeRound(k, 0));
      }
    }
    return Finish();
  }

 private:
  static constexpr int64_t kBadTargets = 1;
  static constexpr int64_t kLongString = 2;

  // How one column travels.
  struct Wire {
    TypeId id = TypeId::kInt64;
    int width = 0;          // wire bytes per row of the per-row buffer
    int string = -1;        // index among the string columns
    bool validity = false;  // some rank has nulls here: one byte per row
  };

  // Counts of one round of this rank's rows.
  struct Round {
    int64_t begin = 0;
    int64_t end = 0;
    int64_t ranges = 1;
    std::vector<int64_t> rows;                // [range * ranks + destination]
    std::vector<std::vector<int64_t>> bytes;  // [string column][range * ranks + destination]
  };

  // Send buffers of one round, per column.
  struct SendSet {
    std::vector<std::shared_ptr<Buffer>> rows;      // per-row wire values
    std::vector<std::shared_ptr<Buffer>> validity;  // one byte per row
    std::vector<std::shared_ptr<Buffer>> bytes;     // per string column
  };

  int64_t RangeBegin(const Round& round, int64_t r) const {
    return round.begin + (round.end - round.begin) * r / round.ranges;
  }

  // Rows and string bytes per (round, range, destination); a target outside [0, ranks) sets
  // target_out_of_range_ (checked in the same pass: a target as unsigned, clamped to `ranks`,
  // counts into one more slot).
  void CountRounds() {
    const int64_t rows = table_.num_rows();
    const size_t strings = string_columns_.size();
    std::vector<std::pair<int64_t, int64_t>> tasks;  // (round, range)
    counts_.resize(static_cast<size_t>(local_rounds_));
    for (int64_t k = 0; k < local_rounds_; ++k) {
      Round& round = counts_[k];
      round.begin = std::min(rows, k * rows_per_round_);
      round.end = std::min(rows, round.begin + rows_per_round_);
      const int64_t n = round.end - round.begin;
      round.ranges = threads_ == 1
                         ? 1
                         : std::max<int64_t>(1, std::min<int64_t>((n + kRangeRows - 1) / kRangeRows,
                                                                  int64_t{4} * threads_));
      round.rows.assign(static_cast<size_t>(round.ranges * ranks_), 0);
      round.bytes.assign(strings, std::vector<int64_t>(round.rows.size(), 0));
      for (int64_t r = 0; r < round.ranges; ++r) tasks.emplace_back(k, r);
    }
    std::vector<uint8_t> too_long(strings, 0);
    uint8_t out_of_range = 0;
    ParallelFor(std::ssize(tasks), threads_, [&](int64_t t) {
      Round& round = counts_[tasks[t].first];
      const int64_t r = tasks[t].second;
      const int64_t lo = RangeBegin(round, r);
      const int64_t hi = RangeBegin(round, r + 1);
      const int32_t* targets = targets_.data();
      // Four interleaved tables: consecutive rows often go to the same rank, and increments of
      // one counter wait on each other (store to load); four chains run side by side.
      const auto slots = static_cast<size_t>(ranks_) + 1;
      std::vector<int64_t> counted(4 * slots, 0);
      const auto limit = static_cast<uint32_t>(ranks_);
      auto slot = [&](int64_t i) { return std::min(static_cast<uint32_t>(targets[i]), limit); };
      int64_t i = lo;
      for (; i + 4 <= hi; i += 4) {
        ++counted[slot(i)];
        ++counted[slots + slot(i + 1)];
        ++counted[2 * slots + slot(i + 2)];
        ++counted[3 * slots + slot(i + 3)];
      }
      for (; i < hi; ++i) ++counted[slot(i)];
      for (size_t d = 0; d < slots; ++d) {
        counted[d] += counted[slots + d] + counted[2 * slots + d] + counted[3 * slots + d];
      }
      if (counted[ranks_] != 0) {
        std::atomic_ref<uint8_t>(out_of_range).store(1, std::memory_order_relaxed);
        return;
      }
      std::copy_n(counted.begin(), ranks_, round.rows.begin() + r * ranks_);
      for (size_t s = 0; s < strings; ++s) {
        const int64_t* offsets = table_.column(string_columns_[s]).StringOffsets();
        int64_t* bytes = round.bytes[s].data() + r * ranks_;
        int64_t longest = 0;
        for (int64_t i = lo; i < hi; ++i) {
          const int64_t size = offsets[i + 1] - offsets[i];
          bytes[targets[i]] += size;
          longest = std::max(longest, size);
        }
        if (longest > int64_t{UINT32_MAX}) {
          std::atomic_ref<uint8_t>(too_long[s]).store(1, std::memory_order_relaxed);
        }
      }
    });
    target_out_of_range_ = out_of_range != 0;
    for (size_t s = 0; s < strings; ++s) {
      if (too_long[s] != 0) {
        long_string_column_ = string_columns_[s];
        break;
      }
    }
  }

  // The wire format of every column; whether it carries validity is agreed by all ranks.
  Status PlanWire() {
    const int columns = table_.num_columns();
    std::vector<int64_t> has_nulls(static_cast<size_t>(columns));
    for (int c = 0; c < columns; ++c) has_nulls[c] = table_.column(c).has_nulls() ? 1 : 0;
    DEEPRC_RETURN_NOT_OK(comm_.AllReduce(std::span<int64_t>(has_nulls), comm::ReduceOp::kMax));
    wire_.resize(static_cast<size_t>(columns));
    int string = 0;
    for (int c = 0; c < columns; ++c) {
      Wire& wire = wire_[c];
      wire.id = table_.column(c).type_id();
      wire.validity = has_nulls[c] != 0;
      if (wire.id == TypeId::kString) {
        wire.width = 4;
        wire.string = string++;
      } else if (wire.id == TypeId::kBool) {
        wire.width = 1;
      } else {
        wire.width = ByteWidth(wire.id);
      }
    }
    return Status::OK();
  }

  // This rank's rows for destination d in round k.
  int64_t RowsTo(int64_t k, int d) const {
    if (k >= local_rounds_) return 0;
    const Round& round = counts_[k];
    int64_t total = 0;
    for (int64_t r = 0; r < round.ranges; ++r) total += round.rows[r * ranks_ + d];
    return total;
  }
  int64_t BytesTo(int64_t k, size_t s, int d) const {
    if (k >= local_rounds_) return 0;
    const Round& round = counts_[k];
    int64_t total = 0;
    for (int64_t r = 0; r < round.ranges; ++r) total += round.bytes[s][r * ranks_ + d];
    return total;
  }

  // Every rank tells every destination the size of each of its rounds for it; then every piece
  // (source, round) has a known place in the output.
  Status ExchangeCounts() {
    const size_t strings = string_columns_.size();
    const int64_t per_round = 1 + static_cast<int64_t>(strings);
    const int64_t per_rank = rounds_ * per_round;
    std::vector<int64_t> out(static_cast<size_t>(ranks_ * per_rank));
    std::vector<int64_t> in(out.size());
    for (int d = 0; d < ranks_; ++d) {
      for (int64_t k = 0; k < rounds_; ++k) {
        int64_t* at = out.data() + d * per_rank + k * per_round;
        at[0] = RowsTo(k, d);
        for (size_t s = 0; s < strings; ++s) at[1 + s] = BytesTo(k, s, d);
      }
    }
    std::vector<int64_t> counts(static_cast<size_t>(ranks_), per_rank * 8);
    std::vector<int64_t> offsets(static_cast<size_t>(ranks_));
    for (int d = 0; d < ranks_; ++d) offsets[d] = d * per_rank * 8;
    DEEPRC_RETURN_NOT_OK(comm_.AllToAllV(
        comm::Bytes(reinterpret_cast<const uint8_t*>(out.data()), out.size() * 8), counts, offsets,
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(in.data()), in.size() * 8), counts, offsets));

    // Pieces in (source, round) order.
    const auto pieces = static_cast<size_t>(ranks_ * rounds_);
    in_rows_.assign(pieces, 0);
    out_row_at_.assign(pieces, 0);
    in_bytes_.assign(strings, std::vector<int64_t>(pieces, 0));
    out_byte_at_.assign(strings, std::vector<int64_t>(pieces, 0));
    out_bytes_.assign(strings, 0);
    out_rows_ = 0;
    for (int src = 0; src < ranks_; ++src) {
      for (int64_t k = 0; k < rounds_; ++k) {
        const int64_t* at = in.data() + src * per_rank + k * per_round;
        const size_t piece = static_cast<size_t>(src * rounds_ + k);
        if (at[0] < 0) return Status::IOError("exchange: rank {} announced {} rows", src, at[0]);
        in_rows_[piece] = at[0];
        out_row_at_[piece] = out_rows_;
        out_rows_ += at[0];
        for (size_t s = 0; s < strings; ++s) {
          in_bytes_[s][piece] = at[1 + s];
          out_byte_at_[s][piece] = out_bytes_[s];
          out_bytes_[s] += at[1 + s];
        }
      }
    }

    // Where each destination's rows start in the send buffers of round k (own rows: none).
    send_row_at_.assign(static_cast<size_t>(rounds_ * ranks_), 0);
    send_rows_.assign(static_cast<size_t>(rounds_ * ranks_), 0);
    send_byte_at_.assign(strings, std::vector<int64_t>(static_cast<size_t>(rounds_ * ranks_), 0));
    send_bytes_.assign(strings, std::vector<int64_t>(static_cast<size_t>(rounds_ * ranks_), 0));
    max_send_rows_ = 0;
    max_send_bytes_.assign(strings, 0);
    for (int64_t k = 0; k < rounds_; ++k) {
      int64_t row_at = 0;
      std::vector<int64_t> byte_at(strings, 0);
      for (int d = 0; d < ranks_; ++d) {
        const size_t cell = static_cast<size_t>(k * ranks_ + d);
        if (d == rank_) continue;
        send_row_at_[cell] = row_at;
        send_rows_[cell] = RowsTo(k, d);
        row_at += send_rows_[cell];
        for (size_t s = 0; s < strings; ++s) {
          send_byte_at_[s][cell] = byte_at[s];
          send_bytes_[s][cell] = BytesTo(k, s, d);
          byte_at[s] += send_bytes_[s][cell];
        }
      }
      max_send_rows_ = std::max(max_send_rows_, row_at);
      for (size_t s = 0; s < strings; ++s) {
        max_send_bytes_[s] = std::max(max_send_bytes_[s], byte_at[s]);
      }
    }
    return Status::OK();
  }

  // The output columns, the byte-per-row landing areas and the send buffers.
  Status Allocate() {
    const int columns = table_.num_columns();
    const int64_t n = out_rows_;
    values_.resize(static_cast<size_t>(columns));
    landing_.resize(static_cast<size_t>(columns));
    validity_landing_.resize(static_cast<size_t>(columns));
    string_bytes_.resize(string_columns_.size());
    for (int c = 0; c < columns; ++c) {
      const Wire& wire = wire_[c];
      if (wire.id == TypeId::kString) {
        // The offsets; the uint32 lengths land in the upper half (see Finish).
        DEEPRC_ASSIGN_OR_RAISE(values_[c], Buffer::Allocate((n + 1) * 8));
        DEEPRC_ASSIGN_OR_RAISE(string_bytes_[wire.string],
                               Buffer::Allocate(out_bytes_[wire.string]));
      } else if (wire.id == TypeId::kBool) {
        DEEPRC_ASSIGN_OR_RAISE(values_[c], Buffer::Allocate(bitmap::BytesForBits(n)));
        DEEPRC_ASSIGN_OR_RAISE(landing_[c], Buffer::Allocate(n));
      } else {
        DEEPRC_ASSIGN_OR_RAISE(values_[c], Buffer::Allocate(n * wire.width));
      }
      if (wire.validity) {
        DEEPRC_ASSIGN_OR_RAISE(validity_landing_[c], Buffer::Allocate(n));
      }
    }
    // A send set is one block, cut into its buffers: each of them alone is often below the
    // memory pool's threshold for large blocks, and small blocks come from malloc, which on
    // this kind of machine faulted them in afresh on every call (measured at 2 ranks, 4M rows
    // with a string column: 1300-2600 page faults per shuffle, a quarter of the first round's
    // scatter); the pool keeps large blocks for the next call.
    auto aligned = [](int64_t bytes) { return (bytes + 63) / 64 * 64; };
    int64_t set_bytes = 0;
    for (int c = 0; c < columns; ++c) {
      set_bytes += aligned(max_send_rows_ * wire_[c].width);
      if (wire_[c].validity) set_bytes += aligned(max_send_rows_);
    }
    for (size_t s = 0; s < string_columns_.size(); ++s) set_bytes += aligned(max_send_bytes_[s]);
    sets_.resize(overlap_ ? 2 : 1);
    for (SendSet& set : sets_) {
      DEEPRC_ASSIGN_OR_RAISE(std::shared_ptr<Buffer> block, Buffer::Allocate(set_bytes));
      int64_t at = 0;
      auto cut = [&](int64_t bytes) {
        auto part = Buffer::Slice(block, at, bytes);
        at += aligned(bytes);
        return part;
      };
      set.rows.resize(static_cast<size_t>(columns));
      set.validity.resize(static_cast<size_t>(columns));
      set.bytes.resize(string_columns_.size());
      for (int c = 0; c < columns; ++c) {
        set.rows[c] = cut(max_send_rows_ * wire_[c].width);
        if (wire_[c].validity) set.validity[c] = cut(max_send_rows_);
      }
      for (size_t s = 0; s < string_columns_.size(); ++s) set.bytes[s] = cut(max_send_bytes_[s]);
    }
    return Status::OK();
  }

  // Where row i of the output receives its per-row wire value.
  uint8_t* RowLanding(int c) const {
    if (wire_[c].id == TypeId::kString) {
      return values_[c]->mutable_data() + LengthsAt(out_rows_);
    }
    return (landing_[c] ? landing_[c] : values_[c])->mutable_data();
  }
  // The uint32 lengths of n rows start at this byte of the (n + 1) int64 offsets.
  static int64_t LengthsAt(int64_t n) { return 4 * (n + 1); }

  void ScatterOrAbort(int64_t k, int set) {
    try {
      Scatter(k, set);
    } catch (const std::exception& e) {
      // The peers are (or will be) in this round's all-to-all.
      comm_.Abort(1, std::string("shuffle: cannot partition this rank's rows: ") + e.what());
    }
  }

  // Round k of this rank's rows: own rows to the output, the others to send set `set`.
  void Scatter(int64_t k, int set) {
    if (k >= local_rounds_) return;
    const Round& round = counts_[k];
    const size_t strings = string_columns_.size();
    const size_t cells = static_cast<size_t>(round.ranges * ranks_);
    const size_t own = static_cast<size_t>(rank_ * rounds_ + k);
    // Per (range, destination): the first row's position in the output (own rows) or the send
    // buffer, and the same for the bytes of every string column.
    std::vector<int64_t> row_start(cells);
    std::vector<std::vector<int64_t>> byte_start(strings, std::vector<int64_t>(cells));
    for (int d = 0; d < ranks_; ++d) {
      const size_t cell = static_cast<size_t>(k * ranks_ + d);
      int64_t at = d == rank_ ? out_row_at_[own] : send_row_at_[cell];
      for (int64_t r = 0; r < round.ranges; ++r) {
        row_start[r * ranks_ + d] = at;
        at += round.rows[r * ranks_ + d];
      }
      for (size_t s = 0; s < strings; ++s) {
        int64_t byte_at = d == rank_ ? out_byte_at_[s][own] : send_byte_at_[s][cell];
        for (int64_t r = 0; r < round.ranges; ++r) {
          byte_start[s][r * ranks_ + d] = byte_at;
          byte_at += round.bytes[s][r * ranks_ + d];
        }
      }
    }
    const int columns = table_.num_columns();
    ParallelFor(round.ranges * columns, threads_, [&](int64_t task) {
      const int64_t r = task / columns;
      const int c = static_cast<int>(task % columns);
      const int64_t* starts = row_start.data() + r * ranks_;
      const int64_t* byte_starts =
          wire_[c].string >= 0 ? byte_start[wire_[c].string].data() + r * ranks_ : nullptr;
      ScatterColumn(RangeBegin(round, r), RangeBegin(round, r + 1), c, sets_[set], starts,
                    byte_starts);
    });
  }

  // Per destination, where its rows of this range go.
  template <typename T>
  std::vector<T*> Destinations(uint8_t* own, const std::shared_ptr<Buffer>& send) const {
    std::vector<T*> out(static_cast<size_t>(ranks_));
    for (int d = 0; d < ranks_; ++d) {
      out[d] = reinterpret_cast<T*>(d == rank_ ? own : send->mutable_data());
    }
    return out;
  }

  template <typename T>
  void ScatterValues(const Column& column, int c, int64_t lo, int64_t hi, const SendSet& set,
                     int64_t* cursor) {
    const T* in = column.Values<T>();
    auto out = Destinations<T>(RowLanding(c), set.rows[c]);
    const int32_t* targets = targets_.data();
    for (int64_t i = lo; i < hi; ++i) {
      const int32_t d = targets[i];
      out[d][cursor[d]++] = in[i];
    }
  }

  // Contiguous slices (ExchangeSlices): values and string bytes move as whole runs.
  void CopyRuns(int64_t lo, int64_t hi, int c, const SendSet& set, const int64_t* starts,
                const int64_t* byte_starts) {
    const Column& column = table_.column(c);
    const Wire& wire = wire_[c];
    const std::vector<int64_t>& bounds = *bounds_;
    if (wire.id == TypeId::kString) {
      const int64_t* offsets = column.StringOffsets();
      const char* bytes = column.StringBytes();
      auto lengths = Destinations<uint32_t>(RowLanding(c), set.rows[c]);
      auto out =
          Destinations<uint8_t>(string_bytes_[wire.string]->mutable_data(), set.bytes[wire.string]);
      for (int d = 0; d < ranks_; ++d) {
        const int64_t a = std::max(lo, bounds[d]);
        const int64_t b = std::min(hi, bounds[d + 1]);
        if (a >= b) continue;
        uint32_t* to = lengths[d] + starts[d];
        for (int64_t i = a; i < b; ++i) *to++ = static_cast<uint32_t>(offsets[i + 1] - offsets[i]);
        std::memcpy(out[d] + byte_starts[d], bytes + offsets[a],
                    static_cast<size_t>(offsets[b] - offsets[a]));
      }
      return;
    }
    const int width = wire.width;
    const uint8_t* in =
        reinterpret_cast<const uint8_t*>(column.values_buffer()->data()) + column.offset() * width;
    auto out = Destinations<uint8_t>(RowLanding(c), set.rows[c]);
    for (int d = 0; d < ranks_; ++d) {
      const int64_t a = std::max(lo, bounds[d]);
      const int64_t b = std::min(hi, bounds[d + 1]);
      if (a < b) {
        std::memcpy(out[d] + starts[d] * width, in + a * width,
                    static_cast<size_t>((b - a) * width));
      }
    }
  }

  void ScatterColumn(int64_t lo, int64_t hi, int c, const SendSet& set, const int64_t* starts,
                     const int64_t* byte_starts) {
    const Column& column = table_.column(c);
    const Wire& wire = wire_[c];
    const int32_t* targets = targets_.data();
    std::vector<int64_t> cursor(starts, starts + ranks_);
    if (bounds_ != nullptr && wire.id != TypeId::kBool) {
      CopyRuns(lo, hi, c, set, starts, byte_starts);
    } else if (wire.id == TypeId::kString) {
      const int64_t* offsets = column.StringOffsets();
      const char* bytes = column.StringBytes();
      auto lengths = Destinations<uint32_t>(RowLanding(c), set.rows[c]);
      auto out =
          Destinations<uint8_t>(string_bytes_[wire.string]->mutable_data(), set.bytes[wire.string]);
      std::vector<int64_t> byte_cursor(byte_starts, byte_starts + ranks_);
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t d = targets[i];
        const int64_t size = offsets[i + 1] - offsets[i];
        lengths[d][cursor[d]++] = static_cast<uint32_t>(size);
        std::memcpy(out[d] + byte_cursor[d], bytes + offsets[i], static_cast<size_t>(size));
        byte_cursor[d] += size;
      }
    } else if (wire.id == TypeId::kBool) {
      const uint8_t* in = column.bool_bits();
      const int64_t offset = column.offset();
      auto out = Destinations<uint8_t>(RowLanding(c), set.rows[c]);
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t d = targets[i];
        out[d][cursor[d]++] = bitmap::GetBit(in, offset + i) ? 1 : 0;
      }
    } else {
      switch (wire.width) {
        case 1:
          ScatterValues<uint8_t>(column, c, lo, hi, set, cursor.data());
          break;
        case 2:
          ScatterValues<uint16_t>(column, c, lo, hi, set, cursor.data());
          break;
        case 4:
          ScatterValues<uint32_t>(column, c, lo, hi, set, cursor.data());
          break;
        default:
          ScatterValues<uint64_t>(column, c, lo, hi, set, cursor.data());
          break;
      }
    }
    if (!wire.validity) return;
    auto out = Destinations<uint8_t>(validity_landing_[c]->mutable_data(), set.validity[c]);
    std::copy(starts, starts + ranks_, cursor.begin());
    const uint8_t* validity = column.validity_bits();
    if (validity == nullptr) {  // no nulls here, but on another rank
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t d = targets[i];
        out[d][cursor[d]++] = 1;
      }
      return;
    }
    const int64_t offset = column.offset();
    for (int64_t i = lo; i < hi; ++i) {
      const int32_t d = targets[i];
      out[d][cursor[d]++] = bitmap::GetBit(validity, offset + i) ? 1 : 0;
    }
  }

  // Counts and offsets of one AllToAllV part (they must outlive the call).
  struct PartLayout {
    std::vector<int64_t> send_counts, send_offsets, receive_counts, receive_offsets;
    explicit PartLayout(int ranks)
        : send_counts(static_cast<size_t>(ranks), 0),
          send_offsets(static_cast<size_t>(ranks), 0),
          receive_counts(static_cast<size_t>(ranks), 0),
          receive_offsets(static_cast<size_t>(ranks), 0) {}
  };

  // Round k: one AllToAllV part per wire buffer of every column, all posted at once (one
  // synchronization per round). Per-row buffers of `width` bytes go from the send set (this
  // round's rows, by destination) to the landing area (row i at landing + i * width).
  Status ExchangeRound(int64_t k, int set) {
    const SendSet& buffers = sets_[set];
    std::deque<PartLayout> layouts;  // stable addresses
    std::vector<comm::Communicator::AllToAllVPart> parts;
    auto add = [&](const Buffer& send, int64_t send_size, uint8_t* landing, int64_t landing_size,
                   const PartLayout& layout) {
      parts.push_back({comm::Bytes(send.data(), send_size), layout.send_counts, layout.send_offsets,
                       std::span<uint8_t>(landing, landing_size), layout.receive_counts,
                       layout.receive_offsets});
    };
    auto rows_layout = [&](int64_t width) -> const PartLayout& {
      PartLayout& layout = layouts.emplace_back(ranks_);
      for (int peer = 0; peer < ranks_; ++peer) {
        if (peer == rank_) continue;
        const size_t cell = static_cast<size_t>(k * ranks_ + peer);
        const size_t piece = static_cast<size_t>(peer * rounds_ + k);
        layout.send_counts[peer] = send_rows_[cell] * width;
        layout.send_offsets[peer] = send_row_at_[cell] * width;
        layout.receive_counts[peer] = in_rows_[piece] * width;
        layout.receive_offsets[peer] = out_row_at_[piece] * width;
      }
      return layout;
    };
    for (int c = 0; c < table_.num_columns(); ++c) {
      const Wire& wire = wire_[c];
      add(*buffers.rows[c], max_send_rows_ * wire.width, RowLanding(c), out_rows_ * wire.width,
          rows_layout(wire.width));
      if (wire.validity) {
        add(*buffers.validity[c], max_send_rows_, validity_landing_[c]->mutable_data(), out_rows_,
            rows_layout(1));
      }
      if (wire.string < 0) continue;
      const auto s = static_cast<size_t>(wire.string);
      PartLayout& layout = layouts.emplace_back(ranks_);
      for (int peer = 0; peer < ranks_; ++peer) {
        if (peer == rank_) continue;
        const size_t cell = static_cast<size_t>(k * ranks_ + peer);
        const size_t piece = static_cast<size_t>(peer * rounds_ + k);
        layout.send_counts[peer] = send_bytes_[s][cell];
        layout.send_offsets[peer] = send_byte_at_[s][cell];
        layout.receive_counts[peer] = in_bytes_[s][piece];
        layout.receive_offsets[peer] = out_byte_at_[s][piece];
      }
      add(*buffers.bytes[s], max_send_bytes_[s], string_bytes_[s]->mutable_data(), out_bytes_[s],
          layout);
    }
    return comm_.AllToAllV(parts);
  }

  // The pieces of round k between this rank and `peer`, in one order both sides know: per
  // column the per-row values, the validity bytes, the string bytes. Sending: where they are in
  // the send set; receiving: where they land.
  struct Piece {
    uint8_t* at;
    int64_t bytes;
  };
  std::vector<Piece> PiecesWith(int64_t k, int peer, const SendSet* sending) const {
    std::vector<Piece> pieces;
    const size_t cell = static_cast<size_t>(k * ranks_ + peer);
    const size_t piece = static_cast<size_t>(peer * rounds_ + k);
    const int64_t rows = sending ? send_rows_[cell] : in_rows_[piece];
    const int64_t row_at = sending ? send_row_at_[cell] : out_row_at_[piece];
    for (int c = 0; c < table_.num_columns(); ++c) {
      const Wire& wire = wire_[c];
      uint8_t* values = sending ? sending->rows[c]->mutable_data() : RowLanding(c);
      pieces.push_back({values + row_at * wire.width, rows * wire.width});
      if (wire.validity) {
        uint8_t* validity =
            sending ? sending->validity[c]->mutable_data() : validity_landing_[c]->mutable_data();
        pieces.push_back({validity + row_at, rows});
      }
      if (wire.string >= 0) {
        const auto s = static_cast<size_t>(wire.string);
        uint8_t* bytes =
            sending ? sending->bytes[s]->mutable_data() : string_bytes_[s]->mutable_data();
        pieces.push_back(sending ? Piece{bytes + send_byte_at_[s][cell], send_bytes_[s][cell]}
                                 : Piece{bytes + out_byte_at_[s][piece], in_bytes_[s][piece]});
      }
    }
    return pieces;
  }

  // Round k in one AllToAllV: every buffer for a peer packed into one message, unpacked into
  // place on arrival. Two more copies, but one collective per round instead of one per buffer:
  // for small rounds the collectives' latency is what counts (and with more ranks than cores
  // each collective costs a scheduling round).
  Status ExchangeRoundFused(int64_t k, int set) {
    std::vector<int64_t> send_counts(static_cast<size_t>(ranks_), 0);
    std::vector<int64_t> send_offsets(static_cast<size_t>(ranks_), 0);
    std::vector<int64_t> receive_counts(static_cast<size_t>(ranks_), 0);
    std::vector<int64_t> receive_offsets(static_cast<size_t>(ranks_), 0);
    std::vector<std::vector<Piece>> outgoing(static_cast<size_t>(ranks_));
    std::vector<std::vector<Piece>> incoming(static_cast<size_t>(ranks_));
    int64_t send_total = 0;
    int64_t receive_total = 0;
    for (int peer = 0; peer < ranks_; ++peer) {
      if (peer == rank_) continue;
      outgoing[peer] = PiecesWith(k, peer, &sets_[set]);
      incoming[peer] = PiecesWith(k, peer, nullptr);
      send_offsets[peer] = send_total;
      for (const Piece& piece : outgoing[peer]) send_counts[peer] += piece.bytes;
      send_total += send_counts[peer];
      receive_offsets[peer] = receive_total;
      for (const Piece& piece : incoming[peer]) receive_counts[peer] += piece.bytes;
      receive_total += receive_counts[peer];
    }
    DEEPRC_ASSIGN_OR_RAISE(auto send, Buffer::Allocate(send_total));
    DEEPRC_ASSIGN_OR_RAISE(auto receive, Buffer::Allocate(receive_total));
    uint8_t* packed = send->mutable_data();
    for (const auto& pieces : outgoing) {
      for (const Piece& piece : pieces) {
        if (piece.bytes > 0) std::memcpy(packed, piece.at, static_cast<size_t>(piece.bytes));
        packed += piece.bytes;
      }
    }
    DEEPRC_RETURN_NOT_OK(comm_.AllToAllV(comm::Bytes(send->data(), send_total), send_counts,
                                         send_offsets,
                                         std::span<uint8_t>(receive->mutable_data(), receive_total),
                                         receive_counts, receive_offsets));
    const uint8_t* unpacked = receive->data();
    for (const auto& pieces : incoming) {
      for (const Piece& piece : pieces) {
        if (piece.bytes > 0) std::memcpy(piece.at, unpacked, static_cast<size_t>(piece.bytes));
        unpacked += piece.bytes;
      }
    }
    return Status::OK();
  }

  // Scatters on a partitioning thread, at most one round ahead of the exchange (two send sets).
  Status RunOverlapped() {
    std::mutex mutex;
    std::condition_variable changed;
    int64_t scattered = 0;
    int64_t exchanged = 0;
    bool stop = false;
    std::thread partitioner([&] {
      for (int64_t k = 0; k < rounds_; ++k) {
        {
          // Set k % 2 is free once round k - 2 has been exchanged.
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return stop || exchanged >= k - 1; });
          if (stop) return;
        }
        ScatterOrAbort(k, static_cast<int>(k % 2));
        std::lock_guard lock(mutex);
        scattered = k + 1;
        changed.notify_all();
      }
    });
    Status status;
    for (int64_t k = 0; k < rounds_ && status.ok(); ++k) {
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return scattered > k; });
      }
      status = fused_ ? ExchangeRoundFused(k, static_cast<int>(k % 2))
                      : ExchangeRound(k, static_cast<int>(k % 2));
      std::lock_guard lock(mutex);
      exchanged = k + 1;
      changed.notify_all();
    }
    {
      std::lock_guard lock(mutex);
      stop = true;
      changed.notify_all();
    }
    partitioner.join();
    return status;
  }

  // Offsets from the lengths, bitmaps from the bytes, and the table.
  Result<Table> Finish() {
    const int columns = table_.num_columns();
    const int64_t n = out_rows_;
    std::vector<Column> out(static_cast<size_t>(columns));
    std::vector<Status> errors(static_cast<size_t>(columns));
    // The landing areas go as soon as their bits are packed.
    ParallelFor(columns, threads_, [&](int64_t task) {
      const int c = static_cast<int>(task);
      const Wire& wire = wire_[c];
      std::shared_ptr<Buffer> validity;
      int64_t nulls = 0;
      if (wire.validity) {
        auto bits = Buffer::Allocate(bitmap::BytesForBits(n));
        if (!bits.ok()) {
          errors[c] = bits.status();
          return;
        }
        validity = *bits;
        nulls = n - PackBytesToBits(validity_landing_[c]->data(), n, validity->mutable_data());
        validity_landing_[c].reset();
        if (nulls == 0) validity.reset();
      }
      const DataType& type = table_.schema().field(c).type;
      if (wire.id == TypeId::kString) {
        // Length i sits at byte 4(n + 1) + 4i and offset i + 1 is written at byte 8(i + 1):
        // the write never passes a length not yet read.
        uint8_t* base = values_[c]->mutable_data();
        const uint8_t* lengths = base + LengthsAt(n);
        int64_t total = 0;
        std::memcpy(base, &total, 8);
        for (int64_t i = 0; i < n; ++i) {
          uint32_t length;
          std::memcpy(&length, lengths + 4 * i, 4);
          total += length;
          std::memcpy(base + 8 * (i + 1), &total, 8);
        }
        if (total != out_bytes_[wire.string]) {
          errors[c] = Status::IOError(
              "exchange: column '{}': the received lengths add up to {} bytes, {} arrived",
              table_.schema().field(c).name, total, out_bytes_[wire.string]);
          return;
        }
        out[c] = Column::MakeString(n, values_[c], string_bytes_[wire.string], validity, nulls);
      } else if (wire.id == TypeId::kBool) {
        PackBytesToBits(landing_[c]->data(), n, values_[c]->mutable_data());
        landing_[c].reset();
        out[c] = Column::Make(type, n, values_[c], validity, nulls);
      } else {
        out[c] = Column::Make(type, n, values_[c], validity, nulls);
      }
    });
    for (const Status& error : errors) DEEPRC_RETURN_NOT_OK(error);
    return Table::Make(table_.schema(), std::move(out), n);
  }

  // Rows [bounds[d], bounds[d + 1]) go to rank d, when the caller says so (the targets agree).
  const std::vector<int64_t>* bounds_;
  comm::Communicator& comm_;
  const Table& table_;
  const std::span<const int32_t> targets_;
  const int ranks_;
  const int rank_;
  const int threads_;
  const int64_t chunk_bytes_;
  const int64_t fuse_below_bytes_;

  int64_t local_rounds_ = 0;
  int64_t rows_per_round_ = 1;
  int64_t rounds_ = 1;
  bool fused_ = false;
  bool overlap_ = false;
  std::vector<int> string_columns_;
  int long_string_column_ = -1;
  bool target_out_of_range_ = false;
  std::vector<Round> counts_;
  std::vector<Wire> wire_;

  // Per piece (source * rounds + round): rows received and their first output row; per string
  // column the same for bytes.
  std::vector<int64_t> in_rows_;
  std::vector<int64_t> out_row_at_;
  std::vector<std::vector<int64_t>> in_bytes_;
  std::vector<std::vector<int64_t>> out_byte_at_;
  int64_t out_rows_ = 0;
  std::vector<int64_t> out_bytes_;

  // Per (round * ranks + destination): rows sent and where they start in the send buffers.
  std::vector<int64_t> send_rows_;
  std::vector<int64_t> send_row_at_;
  std::vector<std::vector<int64_t>> send_bytes_;
  std::vector<std::vector<int64_t>> send_byte_at_;
  int64_t max_send_rows_ = 0;
  std::vector<int64_t> max_send_bytes_;

  // Per column: values (string: offsets), a byte per row for bools, a byte per row of validity;
  // per string column: the bytes.
  std::vector<std::shared_ptr<Buffer>> values_;
  std::vector<std::shared_ptr<Buffer>> landing_;
  std::vector<std::shared_ptr<Buffer>> validity_landing_;
  std::vector<std::shared_ptr<Buffer>> string_bytes_;
  std::vector<SendSet> sets_;
};

// targets[i] for every row: the rank of its key's hash.
Status HashPartitionInto(const Table& table, const std::vector<int>& key_columns, int ranks,
                         int threads, int32_t* targets) {
  if (ranks < 1) return Status::Invalid("hash partitioning into {} ranks", ranks);
  DEEPRC_ASSIGN_OR_RAISE(auto keys, compute::KeyColumns::Make(table, key_columns));
  const int64_t rows = table.num_rows();
  if (ranks == 1) {
    std::fill_n(targets, rows, 0);
    return Status::OK();
  }
  const int64_t morsels = (rows + kMorsel - 1) / kMorsel;
  ParallelFor(morsels, ThreadsOf(threads), [&](int64_t m) {
    const int64_t begin = m * kMorsel;
    const int64_t end = std::min(rows, begin + kMorsel);
    std::vector<uint64_t> hashes(static_cast<size_t>(end - begin));
    keys.Hash(begin, end, hashes.data());
    for (int64_t i = begin; i < end; ++i) {
      targets[i] = RankOfHash(hashes[i - begin], static_cast<uint64_t>(ranks));
    }
  });
  return Status::OK();
}

// A work array of n targets from the memory pool (a fresh std::vector of millions of targets
// costs a page fault per 4 KiB on every call; the pool's large blocks are huge pages, kept for
// the next call).
Result<std::shared_ptr<Buffer>> AllocateTargets(int64_t n) {
  return Buffer::Allocate(std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(int32_t)));
}

}  // namespace

Result<std::shared_ptr<Buffer>> HashPartitionBuffer(const Table& table,
                                                    const std::vector<int>& key_columns, int ranks,
                                                    int threads) {
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, AllocateTargets(table.num_rows()));
  DEEPRC_RETURN_NOT_OK(
      HashPartitionInto(table, key_columns, ranks, threads, buffer->mutable_data_as<int32_t>()));
  return buffer;
}

Result<std::vector<int32_t>> HashPartitionTargets(const Table& table,
                                                  const std::vector<int>& key_columns, int ranks,
                                                  int threads) {
  std::vector<int32_t> targets(static_cast<size_t>(table.num_rows()));
  DEEPRC_RETURN_NOT_OK(HashPartitionInto(table, key_columns, ranks, threads, targets.data()));
  return targets;
}

Result<Table> Exchange(comm::Communicator& comm, const Table& table,
                       std::span<const int32_t> targets, const ShuffleOptions& options) {
  return InPlaceExchange(comm, table, targets, options).Run();
}

Result<Table> ExchangeSlices(comm::Communicator& comm, const Table& table,
                             const std::vector<int64_t>& bounds, const ShuffleOptions& options) {
  const int ranks = comm.size();
  const int64_t rows = table.num_rows();
  bool good = std::ssize(bounds) == ranks + 1 && bounds.front() == 0 && bounds.back() == rows;
  for (int d = 0; good && d < ranks; ++d) good = bounds[d] <= bounds[d + 1];
  // Wrong bounds make every rank fail together (targets of the wrong length); the reason is
  // this rank's.
  const int64_t count = good ? rows : rows + 1;
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, AllocateTargets(count));
  auto* targets = buffer->mutable_data_as<int32_t>();
  if (good) {
    for (int d = 0; d < ranks; ++d) {
      std::fill(targets + bounds[d], targets + bounds[d + 1], d);
    }
  } else {
    std::fill_n(targets, count, 0);
  }
  auto result = InPlaceExchange(comm, table, std::span<const int32_t>(targets, count), options,
                                good ? &bounds : nullptr)
                    .Run();
  if (!good) {
    return Status::Invalid(
        "exchange: {} slice bounds for {} ranks, or not non-decreasing from 0 to the {} rows",
        bounds.size(), ranks, rows);
  }
  return result;
}

Result<Table> Shuffle(comm::Communicator& comm, const Table& table,
                      const std::vector<int>& key_columns, const ShuffleOptions& options) {
  const int64_t rows = table.num_rows();
  auto targets = HashPartitionBuffer(table, key_columns, comm.size(), options.threads);
  if (!targets.ok()) {
    // Exchange agrees on the failure with the other ranks (targets of the wrong length are
    // refused on every rank); keep the reason of this rank.
    std::vector<int32_t> none(rows == 0 ? 1 : 0);
    (void)Exchange(comm, table, none, options);
    return targets.status();
  }
  return Exchange(comm, table, std::span<const int32_t>((*targets)->data_as<int32_t>(), rows),
                  options);
}

}  // namespace deeprc::dist
