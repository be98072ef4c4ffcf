#pragma once

// Pieces of dist::Sort shared by its general path (sort.cpp) and its path for one fixed-width
// key without nulls (sort_by_digits.cpp).

#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/compute/sort.h"
#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

// Unsigned bits whose order is compute::Sort's ascending order of the values: NaN above
// everything (all NaNs equal), -0.0 equal to 0.0.
template <typename T>
uint64_t OrderBits(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    if (value != value) return ~uint64_t{0};
    const double widened = value == 0 ? 0.0 : static_cast<double>(value);  // exact
    const auto bits = std::bit_cast<uint64_t>(widened);
    return (bits >> 63) != 0 ? ~bits : bits | (uint64_t{1} << 63);
  } else if constexpr (std::is_signed_v<T>) {
    return static_cast<uint64_t>(static_cast<int64_t>(value)) ^ (uint64_t{1} << 63);
  } else {
    return static_cast<uint64_t>(value);
  }
}

// The splitters of a one-key sort as the rows' partitioning loop reads them: order bits
// (complemented when descending), and from which position on a row of this rank with the
// splitter's key comes after it (equal keys: a row comes after the splitter when its rank is
// higher, or when it is the same rank and the row's position is not lower). Padded with
// splitters no row reaches to 2^k - 1 entries, so that the binary search needs no bounds check.
struct OneKeySplitters {
  std::vector<uint64_t> bits;
  std::vector<int64_t> tie_position;
  int64_t count = 0;  // the real splitters (the first `count` entries)
  int64_t top = 0;    // the first step of the binary search (0: no splitters)
  int steps = 0;      // steps of the binary search
};

// `splitters`: the key, then the source rank and position columns (int64).
template <typename T>
OneKeySplitters MakeOneKeySplitters(const Table& splitters, bool ascending, int rank) {
  OneKeySplitters out;
  const int64_t m = splitters.num_rows();
  out.count = m;
  out.top = static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(m)));
  out.steps = std::bit_width(static_cast<uint64_t>(out.top));
  const int64_t padded = m == 0 ? 0 : 2 * out.top - 1;
  out.bits.assign(static_cast<size_t>(padded), ~uint64_t{0});
  out.tie_position.assign(static_cast<size_t>(padded), std::numeric_limits<int64_t>::max());
  const T* values = splitters.column(0).Values<T>();
  const int64_t* ranks = splitters.column(1).Values<int64_t>();
  const int64_t* positions = splitters.column(2).Values<int64_t>();
  for (int64_t s = 0; s < m; ++s) {
    out.bits[s] = ascending ? OrderBits(values[s]) : ~OrderBits(values[s]);
    out.tie_position[s] = rank > ranks[s]   ? 0
                          : rank < ranks[s] ? std::numeric_limits<int64_t>::max()
                                            : positions[s];
  }
  return out;
}

// The destination rank of a row of this rank: how many splitters come at or before (its order
// bits, this rank, its position). A branch-free binary search (on random keys a branch is
// mispredicted every other row); kSteps > 0 fixes the number of steps (splitters.steps).
template <int kSteps = -1>
inline int64_t DestinationOf(const uint64_t* bits, const int64_t* tie_position, int64_t top,
                             int steps, uint64_t row, int64_t position) {
  int64_t at = 0;  // splitters known to be at or before the row
  int64_t step = top;
  const int count = kSteps >= 0 ? kSteps : steps;
#pragma GCC unroll 8
  for (int k = 0; k < count; ++k, step >>= 1) {
    const int64_t s = at + step - 1;
    const int64_t move =
        static_cast<int64_t>(row > bits[s]) |
        (static_cast<int64_t>(row == bits[s]) & static_cast<int64_t>(position >= tie_position[s]));
    at += step & -move;
  }
  return at;
}

inline int64_t DestinationOf(const OneKeySplitters& splitters, uint64_t row, int64_t position) {
  return DestinationOf(splitters.bits.data(), splitters.tie_position.data(), splitters.top,
                       splitters.steps, row, position);
}

// Calls body(std::integral_constant<int, steps>) for small step counts, else with -1.
template <typename Body>
void VisitSteps(int steps, Body&& body) {
  switch (steps) {
    case 0:
      return body(std::integral_constant<int, 0>{});
    case 1:
      return body(std::integral_constant<int, 1>{});
    case 2:
      return body(std::integral_constant<int, 2>{});
    case 3:
      return body(std::integral_constant<int, 3>{});
    default:
      return body(std::integral_constant<int, -1>{});
  }
}

// The sort of one fixed-width key without nulls, every column fixed-width without nulls (the
// ranks have agreed on that): partitioning, the top radix digit of the receiving rank's sort and
// the exchange fused (see sort_by_digits.cpp). `sample_low` / `sample_high`: the order bits
// (complemented when descending) of the first and last gathered sample. No value (on every
// rank, before anything moved) when a rank's key range and row positions do not fit in 64 bits.
Result<std::optional<Table>> SortByDigits(comm::Communicator& comm, const Table& table,
                                          int key_index, const compute::SortKey& key,
                                          const OneKeySplitters& splitters, uint64_t sample_low,
                                          uint64_t sample_high, int64_t total, int threads);

}  // namespace deeprc::dist
