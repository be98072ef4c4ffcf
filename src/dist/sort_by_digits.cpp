// dist::Sort of one fixed-width key without nulls: the partitioning, the first radix pass of the
// receiving ranks' sorts and the exchange in one scatter.
//
// The general path (sort.cpp) partitions, exchanges, and then sorts what arrived with
// compute::Sort, which reads the rows again for their range, packs them into words, counts and
// scatters them by their top digit, sorts each bucket in cache and decodes the words: at two
// ranks each rank passed over its rows about eight times, so two ranks were barely faster than
// one. Here every rank
//  1. counts its rows per cell = (destination, digit): the digit is the row's place in the
//     sampled key range cut into equal parts, and the global key range is found in the same
//     pass;
//  2. gathers every rank's counts (and key range): now every rank knows where each of its rows
//     lands on its destination (sources in rank order, each source's rows by cell, in input
//     order within a cell) and each destination's key range and row count;
//  3. writes each row once, as the word its destination sorts, (key - destination's low key) <<
//     position bits | place on arrival, straight into the receive buffer (rows that stay) or
//     behind it into the send region; the other columns follow by the same indexes;
//  4. exchanges the words and columns with one all-to-all (a part per buffer), received in place;
//  5. sorts each cell's bucket (its pieces from every source, copied side by side in cache) by
//     the key bits above the bucket's smallest key, and writes the key decoded from the words
//     (integers; a float key travels as a column) and the other columns gathered by the places
//     (within the bucket's pieces: in cache).
// The places order equal keys by (source rank, position), the global input order, so the result
// is compute::Sort's, ties included. Each rank reads its rows twice, writes them once, and reads
// and writes what it received once; at two ranks half the rows move.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>

#include "agreement_internal.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/table/buffer.h"
#include "sort_internal.h"

namespace deeprc::dist {
namespace {

// Below this many rows one thread counts and writes.
constexpr int64_t kParallelRows = int64_t{1} << 15;
// At most this many bits per digit of the radix passes inside a bucket.
constexpr int kDigitBits = 11;
// At most this many bits of the scatter's digit. Measured at 2 ranks, 10M rows per rank, CPU ms
// of the scatter / the buckets: 2^11 cells 74-77 / 47-56, 2^10 52-53 / 51-54, 2^9 49-50 /
// 48-54, 2^8 49-53 / 51-72, 2^7 49 / 62-75: each row's store goes to one of the cells' current
// lines, and 2^9 lines (32 KiB) stay in the L1 cache, while the buckets (about 20k rows per rank
// here) still sort in the L2 cache. Software write combining (a line per cell buffered, written
// with streaming stores) was slower at 2^9 and 2^11 cells: 64-73 / 74-91 ms.
constexpr int kScatterBits = 9;
// Rows per bucket aimed at (when there are few rows): the bucket and its work arrays stay in the
// L2 cache.
constexpr int64_t kBucketRows = 4096;
// Buckets up to this size are sorted by comparison of whole words.
constexpr int64_t kSmallBucket = 64;

int PositionBits(int64_t n) {
  return std::bit_width(static_cast<uint64_t>(std::max<int64_t>(n, 2) - 1));
}

// The value whose OrderBits are `bits` (integers only: the map is one to one for them).
template <typename T>
T FromOrderBits(uint64_t bits) {
  if constexpr (std::is_signed_v<T>) {
    return static_cast<T>(static_cast<int64_t>(bits ^ (uint64_t{1} << 63)));
  } else {
    return static_cast<T>(bits);
  }
}

// Calls body with a value of the unsigned type of `width` bytes.
template <typename Body>
void VisitWidth(int width, Body&& body) {
  switch (width) {
    case 1:
      body(uint8_t{});
      break;
    case 2:
      body(uint16_t{});
      break;
    case 4:
      body(uint32_t{});
      break;
    default:
      body(uint64_t{});
      break;
  }
}

// Sorts words[0, n) (key << position_bits | place, places ascending on entry) by their key
// bits, stably; `other` is a work array of n words. The result is in words or other; returns it.
uint64_t* SortBucket(uint64_t* words, uint64_t* other, int64_t n, int position_bits,
                     uint64_t key_low, int key_bits) {
  if (n <= kSmallBucket) {
    // The places make every word distinct and order equal keys by place.
    std::sort(words, words + n);
    return words;
  }
  const int passes = (key_bits + kDigitBits - 1) / kDigitBits;
  const int digit_bits = (key_bits + passes - 1) / passes;
  const uint64_t mask = (uint64_t{1} << digit_bits) - 1;
  int64_t counts[int64_t{1} << kDigitBits];
  uint64_t* from = words;
  uint64_t* to = other;
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = pass * digit_bits;
    auto digit = [&](uint64_t word) {
      return (((word >> position_bits) - key_low) >> shift) & mask;
    };
    std::fill_n(counts, mask + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++counts[digit(from[i])];
    if (counts[digit(from[0])] == n) continue;  // one digit for all
    int64_t sum = 0;
    for (uint64_t d = 0; d <= mask; ++d) {
      const int64_t c = counts[d];
      counts[d] = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; ++i) to[counts[digit(from[i])]++] = from[i];
    std::swap(from, to);
  }
  return from;
}

template <typename T>
Result<std::optional<Table>> SortByDigitsTyped(comm::Communicator& comm, const Table& table,
                                               int key_index, const compute::SortKey& key,
                                               const OneKeySplitters& splitters,
                                               uint64_t sample_low, uint64_t sample_high,
                                               int64_t total, int threads) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  const int64_t n = table.num_rows();
  const T* keys = table.column(key_index).Values<T>();
  const uint64_t flip = key.ascending ? 0 : ~uint64_t{0};
  const int64_t m = splitters.count;  // rows go to ranks [0, m]
  threads = threads <= 0 ? DefaultThreadCount() : threads;

  // The digit of a row: its order bits' place in the sampled range, cut into `digits` equal
  // parts (bits below the range count as its start, above as its end). Digit and destination
  // both grow with the key, so cell = digit + destination numbers the (destination, digit)
  // pairs that occur in key order, with no gaps between destinations: destination d's cells
  // start at digit(splitter d - 1) + d.
  const int digit_bits =
      std::clamp<int>(std::bit_width(static_cast<uint64_t>(total / kBucketRows)), 0, kScatterBits);
  const int64_t digits = int64_t{1} << digit_bits;
  const int digit_shift =
      std::max(0, static_cast<int>(std::bit_width(sample_high - sample_low)) - digit_bits);
  const uint64_t last_digit = static_cast<uint64_t>(digits - 1);
  auto digit_of = [sample_low, digit_shift, last_digit](uint64_t bits) {
    const uint64_t above = bits >= sample_low ? bits - sample_low : 0;
    return static_cast<int64_t>(std::min(above >> digit_shift, last_digit));
  };
  const int64_t cells = digits + ranks - 1;
  std::vector<int64_t> first_cell(static_cast<size_t>(ranks + 1), cells);
  first_cell[0] = 0;
  for (int64_t d = 1; d <= m; ++d) first_cell[d] = digit_of(splitters.bits[d - 1]) + d;

  // 1. Counts per (part, cell), and the key range.
  const int parts = n >= kParallelRows ? threads : 1;
  std::vector<int64_t> counts(static_cast<size_t>(parts * cells), 0);
  std::vector<uint64_t> part_low(static_cast<size_t>(parts), ~uint64_t{0});
  std::vector<uint64_t> part_high(static_cast<size_t>(parts), 0);
  VisitSteps(splitters.steps, [&]<int kSteps>(std::integral_constant<int, kSteps>) {
    ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
      int64_t* __restrict count = counts.data() + part * cells;
      const uint64_t* __restrict bounds = splitters.bits.data();
      const int64_t* __restrict ties = splitters.tie_position.data();
      const T* __restrict key_at = keys;
      const int64_t top = splitters.top;
      const int steps = splitters.steps;
      uint64_t low = ~uint64_t{0};
      uint64_t high = 0;
      for (int64_t i = begin; i < end; ++i) {
        const uint64_t bits = OrderBits(key_at[i]) ^ flip;
        low = std::min(low, bits);
        high = std::max(high, bits);
        ++count[digit_of(bits) + DestinationOf<kSteps>(bounds, ties, top, steps, bits, i)];
      }
      part_low[part] = low;
      part_high[part] = high;
    });
  });

  // 2. Every rank's counts and key range.
  std::vector<int64_t> mine(static_cast<size_t>(cells + 2), 0);
  for (int p = 0; p < parts; ++p) {
    for (int64_t c = 0; c < cells; ++c) mine[c] += counts[p * cells + c];
  }
  mine[cells] = std::bit_cast<int64_t>(*std::min_element(part_low.begin(), part_low.end()));
  mine[cells + 1] = std::bit_cast<int64_t>(*std::max_element(part_high.begin(), part_high.end()));
  DEEPRC_ASSIGN_OR_RAISE(auto all, AllGatherInts(comm, mine));
  uint64_t global_low = ~uint64_t{0};
  uint64_t global_high = 0;
  for (int s = 0; s < ranks; ++s) {
    global_low = std::min(global_low, std::bit_cast<uint64_t>(all[s][cells]));
    global_high = std::max(global_high, std::bit_cast<uint64_t>(all[s][cells + 1]));
  }
  // Rows from source s to destination d.
  auto rows_from_to = [&](int s, int d) {
    int64_t rows = 0;
    for (int64_t c = first_cell[d]; c < first_cell[d + 1]; ++c) rows += all[s][c];
    return rows;
  };
  // Per destination: rows, the low end of its key range, the bits of its places. Every rank
  // computes the same, so all take this path or all leave it.
  std::vector<uint64_t> key_low(static_cast<size_t>(ranks), 0);
  std::vector<int> position_bits(static_cast<size_t>(ranks), 0);
  std::vector<int64_t> block_at(static_cast<size_t>(ranks), 0);     // on this rank, by source
  std::vector<int64_t> my_block_at(static_cast<size_t>(ranks), 0);  // mine, by destination
  int64_t received = 0;
  for (int d = 0; d < ranks; ++d) {
    int64_t rows = 0;
    for (int s = 0; s < ranks; ++s) {
      if (d == rank) block_at[s] = rows;
      if (s == rank) my_block_at[d] = rows;
      rows += rows_from_to(s, d);
    }
    if (d == rank) received = rows;
    if (rows == 0) continue;
    key_low[d] = d == 0 ? global_low : splitters.bits[d - 1];
    const uint64_t key_high = d == m ? global_high : splitters.bits[d];
    position_bits[d] = PositionBits(rows);
    if (std::bit_width(key_high - key_low[d]) + position_bits[d] > 64) {
      return std::optional<Table>();
    }
  }
  std::vector<int64_t> send_at(static_cast<size_t>(ranks), 0);  // in the send buffers
  int64_t sent = 0;
  for (int d = 0; d < ranks; ++d) {
    send_at[d] = sent;
    if (d != rank) sent += rows_from_to(rank, d);
  }

  // Buffers: words and other columns, received and sent; the output columns.
  const bool decode_key = std::is_integral_v<T>;
  std::vector<int> travelling;  // the columns that travel as themselves
  for (int c = 0; c < table.num_columns(); ++c) {
    if (c != key_index || !decode_key) travelling.push_back(c);
  }
  // One buffer per travelling thing: rows received (this rank's own written in place) at
  // [0, received), rows sent at [received, received + sent), so that one index says where a
  // row is written wherever it goes.
  std::shared_ptr<Buffer> words;
  std::vector<std::shared_ptr<Buffer>> columns_moved(travelling.size());
  std::shared_ptr<Buffer> places;
  std::vector<std::shared_ptr<Buffer>> output(static_cast<size_t>(table.num_columns()));
  Status allocated = [&]() -> Status {
    DEEPRC_ASSIGN_OR_RAISE(words, Buffer::Allocate((received + sent) * 8));
    for (size_t t = 0; t < travelling.size(); ++t) {
      const int width = ByteWidth(table.column(travelling[t]).type_id());
      DEEPRC_ASSIGN_OR_RAISE(columns_moved[t], Buffer::Allocate((received + sent) * width));
    }
    if (!travelling.empty()) {
      DEEPRC_ASSIGN_OR_RAISE(places, Buffer::Allocate(n * 8));
    }
    for (int c = 0; c < table.num_columns(); ++c) {
      DEEPRC_ASSIGN_OR_RAISE(output[c],
                             Buffer::Allocate(received * ByteWidth(table.column(c).type_id())));
    }
    return Status::OK();
  }();
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, allocated, "distributed sort"));

  // 3. Each row once to its place. Per (part, cell) the index where its rows are written
  //    (cells in order, parts in order within a cell, in the region of the cell's destination);
  //    a row's place on its destination is that index minus the region's offset.
  std::vector<int64_t> offset(static_cast<size_t>(ranks), 0);  // index - place, by destination
  for (int d = 0; d < ranks; ++d) {
    const int64_t region = d == rank ? block_at[rank] : received + send_at[d];
    offset[d] = region - my_block_at[d];
    int64_t at = region;
    for (int64_t c = first_cell[d]; c < first_cell[d + 1]; ++c) {
      for (int p = 0; p < parts; ++p) {
        int64_t& count = counts[p * cells + c];
        const int64_t rows = count;
        count = at;
        at += rows;
      }
    }
  }
  auto* place_of = places ? places->mutable_data_as<int64_t>() : nullptr;
  VisitSteps(splitters.steps, [&]<int kSteps>(std::integral_constant<int, kSteps>) {
    ParallelRanges(n, parts, threads, [&](int64_t part, int64_t begin, int64_t end) {
      // Restrict: the stores into `next` and `out` change nothing else the loop reads, so the
      // splitters and per-destination values stay in registers.
      int64_t* __restrict next = counts.data() + part * cells;
      const uint64_t* __restrict bounds = splitters.bits.data();
      const int64_t* __restrict ties = splitters.tie_position.data();
      const int64_t top = splitters.top;
      const int steps = splitters.steps;
      const uint64_t* __restrict low = key_low.data();
      const int* __restrict shift = position_bits.data();
      const int64_t* __restrict place_offset = offset.data();
      uint64_t* __restrict out = words->mutable_data_as<uint64_t>();
      int64_t* __restrict place_at = place_of;
      const T* __restrict key_at = keys;
      for (int64_t i = begin; i < end; ++i) {
        const uint64_t bits = OrderBits(key_at[i]) ^ flip;
        const int64_t d = DestinationOf<kSteps>(bounds, ties, top, steps, bits, i);
        const int64_t at = next[digit_of(bits) + d]++;
        out[at] = ((bits - low[d]) << shift[d]) | static_cast<uint64_t>(at - place_offset[d]);
        if (place_at != nullptr) place_at[i] = at;
      }
    });
  });
  for (size_t t = 0; t < travelling.size(); ++t) {
    const Column& column = table.column(travelling[t]);
    const int width = ByteWidth(column.type_id());
    VisitWidth(width, [&]<typename W>(W) {
      const W* in = reinterpret_cast<const W*>(column.values_buffer()->data()) + column.offset();
      W* to = columns_moved[t]->template mutable_data_as<W>();
      ParallelRanges(n, parts, threads, [&](int64_t, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) to[place_of[i]] = in[i];
      });
    });
  }
  places.reset();

  // 4. The exchange: one part per buffer, received at the places.
  {
    std::vector<std::vector<int64_t>> layouts;
    auto layout = [&](int width) {
      std::vector<int64_t> send_counts(static_cast<size_t>(ranks), 0);
      std::vector<int64_t> send_offsets(static_cast<size_t>(ranks), 0);
      std::vector<int64_t> receive_counts(static_cast<size_t>(ranks), 0);
      std::vector<int64_t> receive_offsets(static_cast<size_t>(ranks), 0);
      for (int peer = 0; peer < ranks; ++peer) {
        if (peer == rank) continue;
        send_counts[peer] = rows_from_to(rank, peer) * width;
        send_offsets[peer] = send_at[peer] * width;  // from byte received * width on
        receive_counts[peer] = rows_from_to(peer, rank) * width;
        receive_offsets[peer] = block_at[peer] * width;
      }
      layouts.push_back(std::move(send_counts));
      layouts.push_back(std::move(send_offsets));
      layouts.push_back(std::move(receive_counts));
      layouts.push_back(std::move(receive_offsets));
    };
    layout(8);
    for (int c : travelling) layout(ByteWidth(table.column(c).type_id()));
    std::vector<comm::Communicator::AllToAllVPart> exchanged;
    auto add = [&](size_t t, Buffer& buffer, int width) {
      uint8_t* data = buffer.mutable_data();
      exchanged.push_back({comm::Bytes(data + received * width, sent * width), layouts[4 * t],
                           layouts[4 * t + 1], std::span<uint8_t>(data, received * width),
                           layouts[4 * t + 2], layouts[4 * t + 3]});
    };
    add(0, *words, 8);
    for (size_t t = 0; t < travelling.size(); ++t) {
      add(t + 1, *columns_moved[t], ByteWidth(table.column(travelling[t]).type_id()));
    }
    DEEPRC_RETURN_NOT_OK(comm.AllToAllV(exchanged));
  }

  // 5. Cell by cell (a bucket): its pieces (one per source, in source order), sorted, written.
  const int shift = position_bits[rank];
  const uint64_t low = key_low[rank];
  const uint64_t place_mask = (uint64_t{1} << shift) - 1;
  const int64_t my_first = first_cell[rank];
  const int64_t buckets = first_cell[rank + 1] - my_first;
  std::vector<int64_t> piece_at(static_cast<size_t>(ranks * buckets));  // [source][bucket]
  std::vector<int64_t> bucket_at(static_cast<size_t>(buckets + 1), 0);
  for (int s = 0; s < ranks; ++s) {
    int64_t at = block_at[s];
    for (int64_t b = 0; b < buckets; ++b) {
      piece_at[s * buckets + b] = at;
      at += all[s][my_first + b];
    }
  }
  for (int64_t b = 0; b < buckets; ++b) {
    int64_t rows = 0;
    for (int s = 0; s < ranks; ++s) rows += all[s][my_first + b];
    bucket_at[b + 1] = bucket_at[b] + rows;
  }
  const uint64_t* received_words = words->data_as<uint64_t>();
  // Buckets in batches of about 64k rows, one task each.
  std::vector<int64_t> batch_start{0};
  for (int64_t b = 0; b < buckets; ++b) {
    if (bucket_at[b + 1] - bucket_at[batch_start.back()] >= (int64_t{1} << 16)) {
      batch_start.push_back(b + 1);
    }
  }
  if (batch_start.back() != buckets) batch_start.push_back(buckets);
  const int64_t batches = std::ssize(batch_start) - 1;
  // Writes sorted words as output rows [first, first + rows).
  auto emit = [&](const uint64_t* sorted, int64_t rows, int64_t first) {
    if (decode_key) {
      auto* out = output[key_index]->template mutable_data_as<T>() + first;
      for (int64_t i = 0; i < rows; ++i) {
        out[i] = FromOrderBits<T>(((sorted[i] >> shift) + low) ^ flip);
      }
    }
    for (size_t t = 0; t < travelling.size(); ++t) {
      const int c = travelling[t];
      VisitWidth(ByteWidth(table.column(c).type_id()), [&]<typename W>(W) {
        const W* in = columns_moved[t]->template data_as<W>();
        W* out = output[c]->template mutable_data_as<W>() + first;
        for (int64_t i = 0; i < rows; ++i) out[i] = in[sorted[i] & place_mask];
      });
    }
  };
  ParallelFor(batches, received >= kParallelRows ? threads : 1, [&](int64_t batch) {
    std::unique_ptr<uint64_t[]> work;
    int64_t work_rows = 0;
    for (int64_t b = batch_start[batch]; b < batch_start[batch + 1]; ++b) {
      const int64_t rows = bucket_at[b + 1] - bucket_at[b];
      if (rows == 0) continue;
      // The bucket's key range, read from its pieces.
      uint64_t smallest = ~uint64_t{0};
      uint64_t largest = 0;
      for (int s = 0; s < ranks; ++s) {
        const uint64_t* piece = received_words + piece_at[s * buckets + b];
        const int64_t size = all[s][my_first + b];
        for (int64_t i = 0; i < size; ++i) {
          smallest = std::min(smallest, piece[i] >> shift);
          largest = std::max(largest, piece[i] >> shift);
        }
      }
      if (largest == smallest) {
        // One key (a hot key's share of this rank): the pieces in source order are sorted.
        int64_t first = bucket_at[b];
        for (int s = 0; s < ranks; ++s) {
          const int64_t size = all[s][my_first + b];
          emit(received_words + piece_at[s * buckets + b], size, first);
          first += size;
        }
        continue;
      }
      if (work_rows < rows) {
        work = std::make_unique_for_overwrite<uint64_t[]>(static_cast<size_t>(2 * rows));
        work_rows = rows;
      }
      // The pieces side by side (in cache after the pass above), sorted, written out.
      int64_t filled = 0;
      for (int s = 0; s < ranks; ++s) {
        const int64_t size = all[s][my_first + b];
        std::memcpy(work.get() + filled, received_words + piece_at[s * buckets + b],
                    static_cast<size_t>(size) * 8);
        filled += size;
      }
      emit(SortBucket(work.get(), work.get() + rows, rows, shift, smallest,
                      std::bit_width(largest - smallest)),
           rows, bucket_at[b]);
    }
  });

  std::vector<Column> columns;
  for (int c = 0; c < table.num_columns(); ++c) {
    columns.push_back(Column::Make(table.column(c).type(), received, output[c], nullptr, 0));
  }
  DEEPRC_ASSIGN_OR_RAISE(Table result, Table::Make(table.schema(), std::move(columns), received));
  return std::optional<Table>(std::move(result));
}

}  // namespace

Result<std::optional<Table>> SortByDigits(comm::Communicator& comm, const Table& table,
                                          int key_index, const compute::SortKey& key,
                                          const OneKeySplitters& splitters, uint64_t sample_low,
                                          uint64_t sample_high, int64_t total, int threads) {
  return VisitType(
      table.column(key_index).type_id(), [&]<typename Tag>(Tag) -> Result<std::optional<Table>> {
        if constexpr (kIsNumberTag<Tag>) {
          return SortByDigitsTyped<typename Tag::CType>(comm, table, key_index, key, splitters,
                                                        sample_low, sample_high, total, threads);
        } else {
          return Status::Internal("distributed sort by digits: key of type {}",
                                  table.column(key_index).type().ToString());
        }
      });
}

}  // namespace deeprc::dist
