// Sample sort (see dist/sort.h for the steps and the guarantees).
#include "deeprc/dist/sort.h"

#include <algorithm>
#include <cmath>
#include <string_view>
#include <type_traits>

#include "agreement_internal.h"
#include "deeprc/compute/selection.h"
#include "deeprc/dist/shuffle.h"
#include "deeprc/table/builder.h"

namespace deeprc::dist {
namespace {

constexpr std::string_view kOperation = "distributed sort";

constexpr const char* kRankColumn = "__deeprc_rank";
constexpr const char* kPositionColumn = "__deeprc_position";
constexpr const char* kWeightColumn = "__deeprc_weight";

// -1, 0, 1 as compute::Sort orders two non-null values ascending: NaN above everything (all
// NaNs equal), -0.0 equal to 0.0, strings by their bytes, false before true.
template <typename T>
int CompareValues(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    const bool a_nan = a != a;
    const bool b_nan = b != b;
    if (a_nan || b_nan) return a_nan == b_nan ? 0 : (a_nan ? 1 : -1);
  }
  return a < b ? -1 : (b < a ? 1 : 0);
}

int CompareCells(const Column& a, int64_t i, const Column& b, int64_t j,
                 const compute::SortKey& key) {
  const bool a_null = a.IsNull(i);
  const bool b_null = b.IsNull(j);
  if (a_null || b_null) {
    if (a_null && b_null) return 0;
    const int null_after = a_null ? 1 : -1;  // nulls last
    return key.nulls_first ? -null_after : null_after;
  }
  const int order = VisitType(a.type_id(), [&]<typename Tag>(Tag) -> int {
    if constexpr (std::is_same_v<Tag, BoolTag>) {
      return CompareValues<int>(a.GetBool(i), b.GetBool(j));
    } else if constexpr (std::is_same_v<Tag, StringTag>) {
      const int c = a.GetString(i).compare(b.GetString(j));
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    } else {
      using T = typename Tag::CType;
      return CompareValues<T>(a.Value<T>(i), b.Value<T>(j));
    }
  });
  return key.ascending ? order : -order;
}

}  // namespace

Result<Table> Sort(comm::Communicator& comm, const Table& table,
                   const compute::SortOptions& options, const SampleSortOptions& sample) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  const int threads = options.threads;

  // 1. Local sort; every rank learns whether all could sort (a bad key fails everywhere).
  Table sorted;
  std::vector<int> key_indices;
  Status local = [&]() -> Status {
    for (const auto& key : options.keys) {
      DEEPRC_ASSIGN_OR_RAISE(int index, table.schema().GetFieldIndex(key.column));
      key_indices.push_back(index);
    }
    DEEPRC_ASSIGN_OR_RAISE(sorted, compute::Sort(table, options));
    return Status::OK();
  }();
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, local, kOperation));
  if (ranks == 1 || options.keys.empty()) return sorted;

  const int64_t n = sorted.num_rows();
  DEEPRC_ASSIGN_OR_RAISE(int64_t total,
                         comm::AllReduceValue<int64_t>(comm, n, comm::ReduceOp::kSum));
  if (total == 0) return sorted;

  // 2. Regular samples: about samples_per_rank * ranks in all, each rank's share proportional to
  //    its rows; sample k stands for the rows around position (2k + 1) n / 2s.
  const int64_t wanted = std::max<int64_t>(1, int64_t{sample.samples_per_rank}) * ranks;
  int64_t count = 0;
  if (n > 0) {
    count = std::min<int64_t>(n, (wanted * n + total - 1) / total);
  }
  std::vector<int64_t> positions(count);
  for (int64_t k = 0; k < count; ++k) positions[k] = ((2 * k + 1) * n) / (2 * count);
  std::vector<Field> fields;
  std::vector<Column> columns;
  for (size_t k = 0; k < key_indices.size(); ++k) {
    DEEPRC_ASSIGN_OR_RAISE(Column column, compute::Take(sorted.column(key_indices[k]), positions));
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
  // the rows: the first row (in the total order) that rank d holds. -1: none (rank d and later
  // get nothing from here on).
  const int num_keys = static_cast<int>(key_indices.size());
  const Column& sample_rank = all_samples.column(num_keys);
  const Column& sample_position = all_samples.column(num_keys + 1);
  const Column& sample_weight = all_samples.column(num_keys + 2);
  std::vector<int64_t> splitters(ranks, -1);
  {
    double before = 0;
    int d = 1;
    for (int64_t s = 0; s < all_samples.num_rows() && d < ranks; ++s) {
      const double w = sample_weight.Value<double>(s);
      while (d < ranks && before + w / 2 >= static_cast<double>(total) * d / ranks) {
        splitters[d++] = s;
      }
      before += w;
    }
  }

  // 4. Row p of `sorted` comes before sample s in the total order.
  auto before_sample = [&](int64_t p, int64_t s) {
    for (int k = 0; k < num_keys; ++k) {
      const int c =
          CompareCells(sorted.column(key_indices[k]), p, all_samples.column(k), s, options.keys[k]);
      if (c != 0) return c < 0;
    }
    const int64_t other_rank = sample_rank.Value<int64_t>(s);
    if (rank != other_rank) return rank < other_rank;
    return p < sample_position.Value<int64_t>(s);
  };
  std::vector<int64_t> bounds(ranks + 1, n);
  bounds[0] = 0;
  for (int d = 1; d < ranks; ++d) {
    if (splitters[d] < 0) break;
    int64_t lo = bounds[d - 1];
    int64_t hi = n;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (before_sample(mid, splitters[d])) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    bounds[d] = lo;
  }
  ShuffleOptions shuffle;
  shuffle.threads = threads;
  DEEPRC_ASSIGN_OR_RAISE(Table merged, ExchangeSlices(comm, sorted, bounds, shuffle));
  sorted = Table();

  // 5. The pieces are each sorted and arrive in source-rank order, received in place into one
  //    table; a stable sort of it keeps equal keys in (source rank, position) order.
  if (merged.num_rows() == 0) return merged;
  return compute::Sort(merged, options);
}

}  // namespace deeprc::dist
