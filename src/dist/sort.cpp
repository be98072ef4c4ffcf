// Sample sort, partition first (see dist/sort.h for the steps and the guarantees).
#include "deeprc/dist/sort.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <string_view>
#include <type_traits>

#include "agreement_internal.h"
#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/builder.h"
#include "sort_internal.h"

namespace deeprc::dist {
namespace {

constexpr std::string_view kOperation = "distributed sort";

constexpr const char* kRankColumn = "__deeprc_rank";
constexpr const char* kPositionColumn = "__deeprc_position";
constexpr const char* kWeightColumn = "__deeprc_weight";

// Rows per task of the partitioning pass: its comparison states stay in cache across the
// binary-search steps.
constexpr int64_t kMorsel = int64_t{1} << 14;

// -1, 0, 1 as compute::Sort orders two non-null values ascending: NaN above everything (all
// NaNs equal), -0.0 equal to 0.0, strings by their bytes, false before true.
template <typename T>
int CompareValues(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    const bool a_nan = a != a;
    const bool b_nan = b != b;
    if (a_nan || b_nan) return a_nan == b_nan ? 0 : (a_nan ? 1 : -1);
  }
  // Branch-free: on random keys a branch here is mispredicted every other row.
  return static_cast<int>(b < a) - static_cast<int>(a < b);
}

// One step of the rows' binary search over the splitters, for one key column: for every row
// whose order against its probed splitter is still open (order[j] == 0), the order of the key
// cells (-1: the row comes first, 1: the splitter does). probe[j] is the probed splitter's row
// in `splitters`. One type dispatch per column and step, not per cell.
void CompareKey(const Column& rows, int64_t first, int64_t count, const Column& splitters,
                const int32_t* probe, const compute::SortKey& key, int8_t* order) {
  const int direction = key.ascending ? 1 : -1;
  // Nulls are last in either direction unless nulls_first.
  const int8_t null_row = key.nulls_first ? -1 : 1;
  const bool row_nulls = rows.has_nulls();
  const bool splitter_nulls = splitters.has_nulls();
  VisitType(rows.type_id(), [&]<typename Tag>(Tag) {
    // Plain pointers, read before the loops: the int8_t stores into `order` may alias anything,
    // so values reached through the columns would be reloaded for every row.
    auto cell_order = [&]() {
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        return [&rows, &splitters](int64_t i, int32_t s) {
          return CompareValues<int>(rows.GetBool(i), splitters.GetBool(s));
        };
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        return [&rows, &splitters](int64_t i, int32_t s) {
          const int c = rows.GetString(i).compare(splitters.GetString(s));
          return c < 0 ? -1 : (c > 0 ? 1 : 0);
        };
      } else {
        using T = typename Tag::CType;
        return [values = rows.Values<T>(), bounds = splitters.Values<T>()](int64_t i, int32_t s) {
          return CompareValues<T>(values[i], bounds[s]);
        };
      }
    }();
    if (!row_nulls && !splitter_nulls) {
      for (int64_t j = 0; j < count; ++j) {
        if (order[j] != 0) continue;
        order[j] = static_cast<int8_t>(direction * cell_order(first + j, probe[j]));
      }
      return;
    }
    for (int64_t j = 0; j < count; ++j) {
      if (order[j] != 0) continue;
      const int64_t i = first + j;
      const bool a = rows.IsNull(i);
      const bool b = splitters.IsNull(probe[j]);
      if (a || b) {
        order[j] = a == b ? 0 : (a ? null_row : static_cast<int8_t>(-null_row));
      } else {
        order[j] = static_cast<int8_t>(direction * cell_order(i, probe[j]));
      }
    }
  });
}

// PartitionMorsel for the common case: one fixed-width numeric key without nulls (on this rank
// and in the splitters). A branch-free binary search per row, in one pass: on random keys a
// branch is mispredicted every other row.
template <typename T>
void PartitionOneKeyMorsel(const Column& key, bool ascending, const OneKeySplitters& splitters,
                           int64_t first, int64_t count, int32_t* targets) {
  const T* values = key.Values<T>() + first;
  const uint64_t flip = ascending ? 0 : ~uint64_t{0};
  for (int64_t j = 0; j < count; ++j) {
    const int64_t at = DestinationOf(splitters, OrderBits(values[j]) ^ flip, first + j);
    targets[j] = static_cast<int32_t>(at);
  }
}

// targets[i] for rows [first, first + count): how many of the m splitters come at or before
// row i in the (keys, rank, position) order, found by a binary search that runs column by
// column over the morsel (the splitters are in that order; splitter s is row s of `splitters`,
// whose last two columns are its source rank and position).
void PartitionMorsel(const Table& table, const std::vector<int>& key_indices,
                     const compute::SortOptions& options, const Table& splitters, int rank,
                     int64_t first, int64_t count, int32_t* targets) {
  const int64_t m = splitters.num_rows();
  const int num_keys = static_cast<int>(key_indices.size());
  const int64_t* splitter_rank = splitters.column(num_keys).Values<int64_t>();
  const int64_t* splitter_position = splitters.column(num_keys + 1).Values<int64_t>();
  std::vector<int8_t> order(static_cast<size_t>(count));
  std::vector<int32_t> probe(static_cast<size_t>(count));
  std::fill_n(targets, count, 0);
  for (int64_t step = std::bit_floor(static_cast<uint64_t>(m)); step > 0; step >>= 1) {
    // Branch-free loops: on random keys every data-dependent branch is a coin toss.
    for (int64_t j = 0; j < count; ++j) {
      const int64_t candidate = targets[j] + step;  // splitter candidate - 1 is probed
      order[j] = static_cast<int8_t>(-static_cast<int>(candidate > m));
      probe[j] = static_cast<int32_t>(std::min(candidate, m) - 1);
    }
    for (int k = 0; k < num_keys; ++k) {
      CompareKey(table.column(key_indices[k]), first, count, splitters.column(k), probe.data(),
                 options.keys[k], order.data());
    }
    const auto step32 = static_cast<int32_t>(step);
    for (int64_t j = 0; j < count; ++j) {
      int8_t o = order[j];
      if (o == 0) [[unlikely]] {
        const int64_t other_rank = splitter_rank[probe[j]];
        const int64_t position = first + j;
        o = rank != other_rank ? (rank < other_rank ? -1 : 1)
                               : (position < splitter_position[probe[j]] ? -1 : 1);
      }
      targets[j] += static_cast<int32_t>(o >= 0) * step32;
    }
  }
}

}  // namespace

Result<Table> Sort(comm::Communicator& comm, const Table& table,
                   const compute::SortOptions& options, const SampleSortOptions& sample) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  const int threads = options.threads;
  if (ranks == 1 || options.keys.empty()) {
    // Nothing moves; a bad key still fails every rank (there is one, or the keys are none).
    auto sorted = compute::Sort(table, options);
    DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, sorted.status(), kOperation));
    return sorted;
  }

  // 1. The keys exist on every rank (a bad key fails everywhere).
  std::vector<int> key_indices;
  Status local = [&]() -> Status {
    for (const auto& key : options.keys) {
      DEEPRC_ASSIGN_OR_RAISE(int index, table.schema().GetFieldIndex(key.column));
      key_indices.push_back(index);
    }
    return Status::OK();
  }();
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, local, kOperation));

  const int64_t n = table.num_rows();
  // One fixed-width key without nulls and only fixed-width columns without nulls, on every rank:
  // the fused path (sort_by_digits.cpp) applies.
  int64_t unfit = 0;
  {
    const Column& key = table.column(key_indices[0]);
    if (key_indices.size() != 1 || !IsFixedWidth(key.type_id())) unfit = 1;
    for (const auto& column : table.columns()) {
      if (!IsFixedWidth(column.type_id()) || column.null_count() != 0) unfit = 1;
    }
  }
  int64_t agreed[2] = {n, unfit};
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(agreed, 2), comm::ReduceOp::kSum));
  const int64_t total = agreed[0];
  const bool by_digits = agreed[1] == 0;
  if (total == 0) return table;

  // 2. Samples of the unsorted rows: about samples_per_rank * ranks in all, each rank's share
  //    proportional to its rows; sample k is a random row of the k-th of `count` equal strides
  //    (stratified: as even as regular sampling, but blind to periodic input), tagged with its
  //    (rank, position) and the rows it stands for.
  int64_t per_rank = sample.samples_per_rank;
  if (per_rank <= 0) {
    per_rank = std::max<int64_t>(
        1024, std::min({int64_t{2500} * ranks, (int64_t{1} << 18) / ranks, total / (16 * ranks)}));
  }
  const int64_t wanted = per_rank * ranks;
  int64_t count = 0;
  if (n > 0) count = std::min<int64_t>(n, (wanted * n + total - 1) / total);
  std::vector<int64_t> positions(static_cast<size_t>(count));
  for (int64_t k = 0; k < count; ++k) {
    const int64_t lo = k * n / count;
    const int64_t hi = (k + 1) * n / count;
    const uint64_t random = compute::HashWord(static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL ^
                                              static_cast<uint64_t>(rank + 1));
    positions[k] = lo + static_cast<int64_t>(random % static_cast<uint64_t>(hi - lo));
  }
  std::vector<Field> fields;
  std::vector<Column> columns;
  for (size_t k = 0; k < key_indices.size(); ++k) {
    DEEPRC_ASSIGN_OR_RAISE(Column column, compute::Take(table.column(key_indices[k]), positions));
    fields.push_back({"k" + std::to_string(k), column.type()});
    columns.push_back(std::move(column));
  }
  {
    NumberBuilder<int64_t> source(DataType::Int64());
    NumberBuilder<int64_t> position(DataType::Int64());
    NumberBuilder<double> weight(DataType::Float64());
    DEEPRC_RETURN_NOT_OK(source.Reserve(count));
    DEEPRC_RETURN_NOT_OK(position.Reserve(count));
    DEEPRC_RETURN_NOT_OK(weight.Reserve(count));
    for (int64_t k = 0; k < count; ++k) {
      source.UnsafeAppend(rank);
      position.UnsafeAppend(positions[k]);
      weight.UnsafeAppend(static_cast<double>(n) / static_cast<double>(count));
    }
    fields.push_back({kRankColumn, DataType::Int64()});
    fields.push_back({kPositionColumn, DataType::Int64()});
    fields.push_back({kWeightColumn, DataType::Float64()});
    DEEPRC_ASSIGN_OR_RAISE(Column c1, source.Finish());
    DEEPRC_ASSIGN_OR_RAISE(Column c2, position.Finish());
    DEEPRC_ASSIGN_OR_RAISE(Column c3, weight.Finish());
    columns.push_back(std::move(c1));
    columns.push_back(std::move(c2));
    columns.push_back(std::move(c3));
  }
  DEEPRC_ASSIGN_OR_RAISE(Table samples, Table::Make(Schema(fields), columns, count));

  // 3. All samples, in (keys, rank, position) order: the same table on every rank.
  DEEPRC_ASSIGN_OR_RAISE(auto gathered, comm::AllGatherTables(comm, samples, sample.exchange));
  DEEPRC_ASSIGN_OR_RAISE(Table all_samples, compute::Concatenate(gathered, threads));
  compute::SortOptions sample_order;
  sample_order.threads = threads;
  for (size_t k = 0; k < options.keys.size(); ++k) {
    compute::SortKey key = options.keys[k];
    key.column = "k" + std::to_string(k);
    sample_order.keys.push_back(key);
  }
  sample_order.keys.push_back({kRankColumn, true, false});
  sample_order.keys.push_back({kPositionColumn, true, false});
  DEEPRC_ASSIGN_OR_RAISE(all_samples, compute::Sort(all_samples, sample_order));

  // Splitter d (1 <= d < ranks) is the first sample whose weight midpoint reaches d / ranks of
  // the rows: the first row (in the total order) that rank d holds. When the samples run out,
  // the remaining ranks get nothing; the splitters found are the first m.
  const int num_keys = static_cast<int>(key_indices.size());
  const Column& sample_weight = all_samples.column(num_keys + 2);
  std::vector<int64_t> splitter_rows;
  {
    double before = 0;
    int d = 1;
    for (int64_t s = 0; s < all_samples.num_rows() && d < ranks; ++s) {
      const double w = sample_weight.Value<double>(s);
      while (d < ranks && before + w / 2 >= static_cast<double>(total) * d / ranks) {
        splitter_rows.push_back(s);
        ++d;
      }
      before += w;
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(Table splitters, compute::Take(all_samples, splitter_rows, threads));

  if (by_digits) {
    const Column& first_sample = all_samples.column(0);
    const int64_t last = all_samples.num_rows() - 1;
    std::optional<Table> sorted;
    DEEPRC_RETURN_NOT_OK(VisitType(first_sample.type_id(), [&]<typename Tag>(Tag) -> Status {
      if constexpr (kIsNumberTag<Tag>) {
        using T = typename Tag::CType;
        const bool ascending = options.keys[0].ascending;
        const uint64_t flip = ascending ? 0 : ~uint64_t{0};
        const T* values = first_sample.Values<T>();
        DEEPRC_ASSIGN_OR_RAISE(
            sorted, SortByDigits(comm, table, key_indices[0], options.keys[0],
                                 MakeOneKeySplitters<T>(splitters, ascending, rank),
                                 OrderBits(values[0]) ^ flip, OrderBits(values[last]) ^ flip, total,
                                 threads));
      }
      return Status::OK();
    }));
    if (sorted) return std::move(*sorted);
  }

  // 4. Every row goes to the rank whose range holds its (keys, rank, position): the number of
  //    splitters at or before it. Rows keep their input order within each destination.
  //    The targets live in the memory pool (huge pages, kept for the next call).
  auto allocated = Buffer::Allocate(std::max<int64_t>(n, 1) * 4);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, allocated.status(), kOperation));
  std::shared_ptr<Buffer> targets_buffer = std::move(*allocated);
  auto* targets = targets_buffer->mutable_data_as<int32_t>();
  const int64_t morsels = (n + kMorsel - 1) / kMorsel;
  const Column& first_key = table.column(key_indices[0]);
  const bool one_numeric_key = num_keys == 1 && first_key.type_id() != TypeId::kString &&
                               first_key.type_id() != TypeId::kBool && !first_key.has_nulls() &&
                               !splitters.column(0).has_nulls();
  const int partition_threads = threads <= 0 ? DefaultThreadCount() : threads;
  if (one_numeric_key) {
    VisitType(first_key.type_id(), [&]<typename Tag>(Tag) {
      if constexpr (!std::is_same_v<Tag, BoolTag> && !std::is_same_v<Tag, StringTag>) {
        using T = typename Tag::CType;
        const bool ascending = options.keys[0].ascending;
        const OneKeySplitters bounds = MakeOneKeySplitters<T>(splitters, ascending, rank);
        ParallelFor(morsels, partition_threads, [&](int64_t m) {
          const int64_t first = m * kMorsel;
          PartitionOneKeyMorsel<T>(first_key, ascending, bounds, first,
                                   std::min(kMorsel, n - first), targets + first);
        });
      }
    });
  } else {
    ParallelFor(morsels, partition_threads, [&](int64_t m) {
      const int64_t first = m * kMorsel;
      PartitionMorsel(table, key_indices, options, splitters, rank, first,
                      std::min(kMorsel, n - first), targets + first);
    });
  }
  ShuffleOptions shuffle;
  shuffle.threads = threads;
  DEEPRC_ASSIGN_OR_RAISE(Table received,
                         Exchange(comm, table, std::span<const int32_t>(targets, n), shuffle));
  targets_buffer.reset();

  // 5. What arrived is in (source rank, position) order, so one stable sort of it orders equal
  //    keys as the global input does.
  if (received.num_rows() == 0) return received;
  return compute::Sort(received, options);
}

}  // namespace deeprc::dist
