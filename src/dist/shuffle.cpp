// The shuffle: hash partitioning and the exchange of rows between ranks.
//
// Exchange works in rounds of about `chunk_bytes` of this rank's rows. For each round, the rows
// are scattered straight into one message per destination, already in the table-file layout
// (TableImageWriter): count rows (and string bytes) per destination and range of rows, turn the
// counts into positions, then every range copies its values, offsets, bytes and validity bits to
// their places — one copy, no gathered table in between. The messages of round k travel in one
// all-to-all on the calling thread (the only one that talks to the communicator) while a
// partitioning thread scatters round k + 1 with the worker threads; at most two rounds of
// messages exist at a time. The receiver reads every message without copying and concatenates
// them at the end (by source rank, then round: the sources' row order).

#include "deeprc/dist/shuffle.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/bitmap.h"
#include "deeprc/table/table_file.h"

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

// Sets bit i of a bitmap that ranges fill in parallel: the bytes at either end of this range's
// span [first_byte, last_byte] may be shared with the neighbouring ranges.
inline void SetSharedBit(uint8_t* bits, int64_t i, int64_t first_byte, int64_t last_byte) {
  const int64_t byte = i >> 3;
  const auto mask = static_cast<uint8_t>(1u << (i & 7));
  if (byte == first_byte || byte == last_byte) {
    std::atomic_ref<uint8_t>(bits[byte]).fetch_or(mask, std::memory_order_relaxed);
  } else {
    bits[byte] |= mask;
  }
}

// One round's scatter of rows [begin, end) into one message per destination.
class ChunkScatter {
 public:
  ChunkScatter(const Table& table, const std::vector<int32_t>& targets, int64_t begin,
               int64_t end, int ranks, int threads)
      : table_(table),
        targets_(targets.data() + begin),
        begin_(begin),
        rows_(end - begin),
        ranks_(ranks),
        threads_(threads) {
    ranges_ = std::max<int64_t>(1, std::min<int64_t>((rows_ + kRangeRows - 1) / kRangeRows,
                                                     int64_t{16} * threads_));
  }

  Result<std::vector<BufferPtr>> Run() {
    const int columns = table_.num_columns();
    const auto cells = static_cast<size_t>(ranges_ * ranks_);
    // Rows and string bytes per (range, destination), then where each starts.
    row_start_.assign(cells, 0);
    for (int c = 0; c < columns; ++c) {
      if (table_.column(c).type_id() == TypeId::kString) string_columns_.push_back(c);
    }
    byte_start_.assign(string_columns_.size(), std::vector<int64_t>(cells, 0));
    ParallelFor(ranges_, threads_, [&](int64_t r) { Count(r); });
    const auto row_total = ScatterStarts(ranges_, ranks_, [&](int64_t r, int64_t d) -> int64_t& {
      return row_start_[r * ranks_ + d];
    });
    std::vector<std::vector<int64_t>> byte_total;
    for (auto& starts : byte_start_) {
      byte_total.push_back(ScatterStarts(ranges_, ranks_, [&](int64_t r, int64_t d) -> int64_t& {
        return starts[r * ranks_ + d];
      }));
    }
    // Positions relative to each destination's message.
    for (int64_t r = 0; r < ranges_; ++r) {
      for (int d = 0; d < ranks_; ++d) {
        row_start_[r * ranks_ + d] -= row_total[d];
        for (size_t s = 0; s < byte_start_.size(); ++s) {
          byte_start_[s][r * ranks_ + d] -= byte_total[s][d];
        }
      }
    }
    row_end_.resize(cells);
    for (int64_t r = 0; r < ranges_; ++r) {
      for (int d = 0; d < ranks_; ++d) {
        row_end_[r * ranks_ + d] = r + 1 < ranges_ ? row_start_[(r + 1) * ranks_ + d]
                                                   : row_total[d + 1] - row_total[d];
      }
    }

    images_.clear();
    for (int d = 0; d < ranks_; ++d) {
      std::vector<TableImageWriter::ColumnSizes> sizes(static_cast<size_t>(columns));
      for (int c = 0; c < columns; ++c) sizes[c].validity = table_.column(c).has_nulls();
      for (size_t s = 0; s < string_columns_.size(); ++s) {
        sizes[string_columns_[s]].string_bytes = byte_total[s][d + 1] - byte_total[s][d];
      }
      DEEPRC_ASSIGN_OR_RAISE(auto image, TableImageWriter::Make(
                                             table_.schema(), row_total[d + 1] - row_total[d],
                                             sizes));
      images_.push_back(std::move(image));
    }

    nulls_.assign(static_cast<size_t>(ranges_ * columns * ranks_), 0);
    ParallelFor(ranges_ * columns, threads_, [&](int64_t task) {
      ScatterColumn(task / columns, static_cast<int>(task % columns));
    });

    std::vector<BufferPtr> messages;
    for (int d = 0; d < ranks_; ++d) {
      std::vector<int64_t> null_counts(static_cast<size_t>(columns), 0);
      for (int c = 0; c < columns; ++c) {
        for (int64_t r = 0; r < ranges_; ++r) null_counts[c] += nulls_[(r * columns + c) * ranks_ + d];
      }
      for (size_t s = 0; s < string_columns_.size(); ++s) {
        const int64_t rows = images_[d].num_rows();
        images_[d].offsets(string_columns_[s])[rows] = byte_total[s][d + 1] - byte_total[s][d];
      }
      DEEPRC_ASSIGN_OR_RAISE(auto message, images_[d].Finish(null_counts));
      messages.push_back(std::move(message));
    }
    return messages;
  }

 private:
  int64_t RangeBegin(int64_t r) const { return rows_ * r / ranges_; }

  void Count(int64_t r) {
    const int64_t lo = RangeBegin(r);
    const int64_t hi = RangeBegin(r + 1);
    int64_t* rows = row_start_.data() + r * ranks_;
    for (int64_t i = lo; i < hi; ++i) ++rows[targets_[i]];
    for (size_t s = 0; s < string_columns_.size(); ++s) {
      const int64_t* offsets = table_.column(string_columns_[s]).StringOffsets() + begin_;
      int64_t* bytes = byte_start_[s].data() + r * ranks_;
      for (int64_t i = lo; i < hi; ++i) bytes[targets_[i]] += offsets[i + 1] - offsets[i];
    }
  }

  template <typename T>
  void ScatterValues(const Column& column, int c, int64_t lo, int64_t hi, int64_t* cursor) {
    const T* in = column.Values<T>() + begin_;
    std::vector<T*> out(static_cast<size_t>(ranks_));
    for (int d = 0; d < ranks_; ++d) out[d] = reinterpret_cast<T*>(images_[d].values(c));
    for (int64_t i = lo; i < hi; ++i) {
      const int32_t d = targets_[i];
      out[d][cursor[d]++] = in[i];
    }
  }

  void ScatterColumn(int64_t r, int c) {
    const Column& column = table_.column(c);
    const int64_t lo = RangeBegin(r);
    const int64_t hi = RangeBegin(r + 1);
    const int64_t* starts = row_start_.data() + r * ranks_;
    const int64_t* ends = row_end_.data() + r * ranks_;
    std::vector<int64_t> cursor(starts, starts + ranks_);
    // Bitmap bytes this range shares with its neighbours, per destination.
    std::vector<int64_t> first_byte(static_cast<size_t>(ranks_));
    std::vector<int64_t> last_byte(static_cast<size_t>(ranks_));
    for (int d = 0; d < ranks_; ++d) {
      first_byte[d] = starts[d] >> 3;
      last_byte[d] = (ends[d] - 1) >> 3;
    }
    const TypeId id = column.type_id();
    if (id == TypeId::kString) {
      const size_t s = static_cast<size_t>(
          std::find(string_columns_.begin(), string_columns_.end(), c) - string_columns_.begin());
      const int64_t* offsets = column.StringOffsets() + begin_;
      const char* bytes = column.StringBytes();
      std::vector<int64_t> byte_cursor(byte_start_[s].data() + r * ranks_,
                                       byte_start_[s].data() + (r + 1) * ranks_);
      std::vector<int64_t*> out_offsets(static_cast<size_t>(ranks_));
      std::vector<uint8_t*> out_bytes(static_cast<size_t>(ranks_));
      for (int d = 0; d < ranks_; ++d) {
        out_offsets[d] = images_[d].offsets(c);
        out_bytes[d] = images_[d].values(c);
      }
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t d = targets_[i];
        const int64_t size = offsets[i + 1] - offsets[i];
        out_offsets[d][cursor[d]++] = byte_cursor[d];
        std::memcpy(out_bytes[d] + byte_cursor[d], bytes + offsets[i], static_cast<size_t>(size));
        byte_cursor[d] += size;
      }
    } else if (id == TypeId::kBool) {
      const uint8_t* in = column.bool_bits();
      const int64_t offset = column.offset() + begin_;
      for (int64_t i = lo; i < hi; ++i) {
        const int32_t d = targets_[i];
        const int64_t at = cursor[d]++;
        if (bitmap::GetBit(in, offset + i)) {
          SetSharedBit(images_[d].values(c), at, first_byte[d], last_byte[d]);
        }
      }
    } else {
      switch (ByteWidth(id)) {
        case 1: ScatterValues<uint8_t>(column, c, lo, hi, cursor.data()); break;
        case 2: ScatterValues<uint16_t>(column, c, lo, hi, cursor.data()); break;
        case 4: ScatterValues<uint32_t>(column, c, lo, hi, cursor.data()); break;
        default: ScatterValues<uint64_t>(column, c, lo, hi, cursor.data()); break;
      }
    }
    if (!column.has_nulls()) return;
    const uint8_t* validity = column.validity_bits();
    const int64_t offset = column.offset() + begin_;
    std::copy(starts, starts + ranks_, cursor.begin());
    int64_t* nulls = nulls_.data() + (r * table_.num_columns() + c) * ranks_;
    for (int64_t i = lo; i < hi; ++i) {
      const int32_t d = targets_[i];
      const int64_t at = cursor[d]++;
      if (bitmap::GetBit(validity, offset + i)) {
        SetSharedBit(images_[d].validity(c), at, first_byte[d], last_byte[d]);
      } else {
        ++nulls[d];
      }
    }
  }

  const Table& table_;
  const int32_t* targets_;
  int64_t begin_;
  int64_t rows_;
  int ranks_;
  int threads_;
  int64_t ranges_ = 1;
  std::vector<int> string_columns_;
  // Per (range, destination): first row, end row, and per string column first byte, in the
  // destination's message.
  std::vector<int64_t> row_start_;
  std::vector<int64_t> row_end_;
  std::vector<std::vector<int64_t>> byte_start_;
  // Per (range, column, destination).
  std::vector<int64_t> nulls_;
  std::vector<TableImageWriter> images_;
};

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

// Scatters the rounds on its own thread, at most one round ahead of the exchange.
class Partitioner {
 public:
  Partitioner(const Table& table, const std::vector<int32_t>& targets, int64_t rows_per_round,
              int64_t rounds, int ranks, int threads)
      : table_(table),
        targets_(targets),
        rows_per_round_(rows_per_round),
        rounds_(rounds),
        ranks_(ranks),
        threads_(threads),
        thread_([this] { Loop(); }) {}

  ~Partitioner() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  // The messages of round k (rounds are taken in order).
  Result<std::vector<BufferPtr>> Take(int64_t k) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return ready_ > k || !status_.ok(); });
    if (!status_.ok()) return status_;
    taken_ = k + 1;
    changed_.notify_all();
    return std::move(messages_);
  }

 private:
  void Loop() {
    for (int64_t k = 0; k < rounds_; ++k) {
      {
        // Round k is scattered once round k - 1 is taken: one round exchanged, one being built.
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || taken_ >= k; });
        if (stop_) return;
      }
      const int64_t begin = std::min(table_.num_rows(), k * rows_per_round_);
      const int64_t end = std::min(table_.num_rows(), begin + rows_per_round_);
      Result<std::vector<BufferPtr>> messages = Status::Internal("not run");
      try {
        messages = ChunkScatter(table_, targets_, begin, end, ranks_, threads_).Run();
      } catch (const std::exception& e) {
        messages = Status::Internal("shuffle: partitioning failed: {}", e.what());
      }
      std::lock_guard lock(mutex_);
      if (!messages.ok()) {
        status_ = messages.status();
        changed_.notify_all();
        return;
      }
      messages_ = messages.MoveValueUnsafe();
      ready_ = k + 1;
      changed_.notify_all();
    }
  }

  const Table& table_;
  const std::vector<int32_t>& targets_;
  int64_t rows_per_round_;
  int64_t rounds_;
  int ranks_;
  int threads_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  int64_t ready_ = 0;
  int64_t taken_ = 0;
  std::vector<BufferPtr> messages_;
  Status status_;
  std::thread thread_;  // last: starts when the rest is ready
};

// The tables received, in source order, then round order; empty ones left out (the first kept
// for its schema) and the rest concatenated.
Result<Table> ConcatenateReceived(std::vector<Table> tables, int threads) {
  std::vector<Table> parts;
  for (auto& table : tables) {
    if (table.num_rows() > 0) parts.push_back(std::move(table));
  }
  if (parts.empty()) return std::move(tables[0]);
  if (parts.size() == 1) return std::move(parts[0]);
  return compute::Concatenate(parts, threads);
}

}  // namespace

Result<std::vector<int32_t>> HashPartitionTargets(const Table& table,
                                                  const std::vector<int>& key_columns, int ranks,
                                                  int threads) {
  if (ranks < 1) return Status::Invalid("hash partitioning into {} ranks", ranks);
  DEEPRC_ASSIGN_OR_RAISE(auto keys, compute::KeyColumns::Make(table, key_columns));
  const int64_t rows = table.num_rows();
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  if (ranks == 1) return targets;
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
  return targets;
}

Result<Table> Exchange(comm::Communicator& comm, const Table& table,
                       const std::vector<int32_t>& targets, const ShuffleOptions& options) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  const int threads = ThreadsOf(options.threads);
  const int64_t rows = table.num_rows();
  // Bad input on one rank must fail every rank, not leave the others in the all-to-all; the
  // same reduction agrees on the number of rounds.
  int64_t bad = static_cast<int64_t>(targets.size()) != rows ? 1 : 0;
  if (bad == 0) {
    for (int32_t target : targets) {
      if (target < 0 || target >= ranks) {
        bad = 1;
        break;
      }
    }
  }
  const int64_t bytes = TableBytes(table);
  const int64_t chunk_bytes = std::max<int64_t>(options.chunk_bytes, 1);
  const int64_t local_rounds = rows == 0 ? 0 : std::max<int64_t>(1, (bytes + chunk_bytes - 1) / chunk_bytes);
  const int64_t rows_per_round =
      local_rounds == 0 ? 1 : (rows + local_rounds - 1) / local_rounds;
  int64_t agreed[2] = {bad, local_rounds};
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(agreed, 2), comm::ReduceOp::kMax));
  if (agreed[0] != 0) {
    if (bad != 0) {
      return Status::Invalid("exchange: {} targets for {} rows, or a target outside [0, {})",
                             targets.size(), rows, ranks);
    }
    return Status::Invalid("exchange: another rank passed bad targets");
  }
  if (ranks == 1) return table;
  // At least one round even when no rank has rows: the schemas still meet.
  const int64_t rounds = std::max<int64_t>(agreed[1], 1);

  // received[s * rounds + k]: what rank s sent in round k.
  std::vector<Table> received(static_cast<size_t>(ranks * rounds));
  Partitioner partitioner(table, targets, rows_per_round, rounds, ranks, threads);
  Status error;
  for (int64_t k = 0; k < rounds; ++k) {
    auto messages = partitioner.Take(k);
    if (!messages.ok()) {
      // The peers are (or will be) in this round's all-to-all.
      comm.Abort(1, "shuffle: cannot partition this rank's rows: " + messages.status().ToString());
    }
    std::vector<comm::Bytes> send(static_cast<size_t>(ranks));
    for (int d = 0; d < ranks; ++d) {
      if (d != rank) send[d] = comm::Bytes((*messages)[d]->data(), (*messages)[d]->size());
    }
    DEEPRC_ASSIGN_OR_RAISE(auto arrived, comm.AllToAll(send));
    arrived[rank] = std::move((*messages)[rank]);  // this rank's own rows never travel
    messages->clear();
    for (int s = 0; s < ranks && error.ok(); ++s) {
      auto part = comm::DeserializeTable(std::move(arrived[s]), 1);
      if (!part.ok()) {
        error = Status::Invalid("exchange: rows from rank {}: {}", s, part.status().message());
      } else if (!(part->schema() == table.schema())) {
        error = Status::Invalid("exchange: rank {} sent rows of schema ({}), this rank has ({})",
                                s, part->schema().ToString(), table.schema().ToString());
      } else {
        received[s * rounds + k] = part.MoveValueUnsafe();
      }
    }
  }
  // Every rank went through every round, whatever it found.
  DEEPRC_RETURN_NOT_OK(error);
  return ConcatenateReceived(std::move(received), threads);
}

Result<Table> Shuffle(comm::Communicator& comm, const Table& table,
                      const std::vector<int>& key_columns, const ShuffleOptions& options) {
  auto targets = HashPartitionTargets(table, key_columns, comm.size(), options.threads);
  if (!targets.ok()) {
    // Exchange agrees on the failure with the other ranks (empty targets for a non-empty table
    // are refused on every rank); keep the reason of this rank.
    std::vector<int32_t> none(table.num_rows() == 0 ? 1 : 0);
    (void)Exchange(comm, table, none, options);
    return targets.status();
  }
  return Exchange(comm, table, *targets, options);
}

}  // namespace deeprc::dist
