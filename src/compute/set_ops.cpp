#include "deeprc/compute/set_ops.h"

#include <algorithm>
#include <new>

#include "compute/grouping.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"

namespace deeprc::compute {
namespace {

using internal::kSkipGroup;

// What is known of each group of rows besides its first row.
struct GroupExtent {
  std::vector<int64_t> last_rows;  // with track_last
  std::vector<int64_t> counts;     // with track_counts
};

// Groups rows by `keys` and, per group, its first row (from the grouping), and optionally its
// last row and its row count; per-range partial results are merged in range order.
Result<internal::Grouping> GroupWithExtent(const Table& table, const std::vector<int>& keys,
                                           int threads, bool track_last, bool track_counts,
                                           GroupExtent* extent) {
  if (threads <= 0) threads = DefaultThreadCount();
  std::vector<GroupExtent> parts(static_cast<size_t>(threads));
  auto on_batch = [&](int part, int64_t begin, int64_t end, const uint32_t* ids, int64_t groups) {
    GroupExtent& mine = parts[part];
    if (track_last) {
      mine.last_rows.resize(static_cast<size_t>(groups), -1);
      for (int64_t i = begin; i < end; ++i) mine.last_rows[ids[i - begin]] = i;
    }
    if (track_counts) {
      mine.counts.resize(static_cast<size_t>(groups), 0);
      for (int64_t i = begin; i < end; ++i) ++mine.counts[ids[i - begin]];
    }
  };
  Result<internal::Grouping> result = [&]() -> Result<internal::Grouping> {
    try {
      return internal::GroupRows(table, keys, /*drop_null_keys=*/false, threads, threads,
                                 /*want_row_ids=*/false,
                                 track_last || track_counts ? internal::GroupBatchFn(on_batch)
                                                            : internal::GroupBatchFn());
    } catch (const std::bad_alloc&) {
      return Status::OutOfMemory("out of memory finding duplicates among {} rows",
                                 table.num_rows());
    }
  }();
  DEEPRC_RETURN_NOT_OK(result.status());
  internal::Grouping grouping = result.MoveValueUnsafe();
  const auto groups = static_cast<size_t>(grouping.mapper->num_groups());
  *extent = std::move(parts[0]);
  if (track_last) extent->last_rows.resize(groups, -1);
  if (track_counts) extent->counts.resize(groups, 0);
  for (int p = 1; p < grouping.num_parts(); ++p) {
    const auto& map = grouping.part_maps[p];
    for (size_t g = 0; g < map.size(); ++g) {
      if (track_last) extent->last_rows[map[g]] = parts[p].last_rows[g];
      if (track_counts) extent->counts[map[g]] += parts[p].counts[g];
    }
  }
  return grouping;
}

std::vector<int> AllColumns(const Table& table) {
  std::vector<int> keys(static_cast<size_t>(table.num_columns()));
  for (int i = 0; i < table.num_columns(); ++i) keys[i] = i;
  return keys;
}

Status CheckSameSchema(const Table& a, const Table& b, std::string_view operation) {
  if (a.num_columns() == 0) {
    return Status::Invalid("{} of tables without columns", operation);
  }
  if (a.num_columns() != b.num_columns()) {
    return Status::Invalid("{} needs tables with the same columns: the first has {} ({}), the "
                           "second {} ({})",
                           operation, a.num_columns(), a.schema().ToString(), b.num_columns(),
                           b.schema().ToString());
  }
  for (int i = 0; i < a.num_columns(); ++i) {
    const Field& fa = a.schema().field(i);
    const Field& fb = b.schema().field(i);
    if (!(fa == fb)) {
      return Status::TypeError("{} needs tables with the same columns: column {} is '{}: {}' in "
                               "the first and '{}: {}' in the second",
                               operation, i, fa.name, fa.type.ToString(), fb.name,
                               fb.type.ToString());
    }
  }
  return Status::OK();
}

enum class SetOperation { kUnion, kIntersect, kDifference };

Result<Table> RunSetOperation(const Table& a, const Table& b, SetOperation operation,
                              std::string_view name, int threads) {
  DEEPRC_RETURN_NOT_OK(CheckSameSchema(a, b, name));
  DEEPRC_ASSIGN_OR_RAISE(Table both, Concatenate({a, b}, threads));
  const int64_t a_rows = a.num_rows();
  GroupExtent extent;
  const bool need_last = operation != SetOperation::kUnion;
  DEEPRC_ASSIGN_OR_RAISE(auto grouping,
                         GroupWithExtent(both, AllColumns(both), threads, need_last, false, &extent));
  const auto& first_rows = grouping.mapper->first_rows();
  std::vector<int64_t> rows;
  if (operation == SetOperation::kUnion) {
    rows = first_rows;
  } else {
    // A row value is in a when its first row is; it is in b when its last row is.
    for (size_t g = 0; g < first_rows.size(); ++g) {
      if (first_rows[g] >= a_rows) break;  // groups come in first-row order
      const bool in_b = extent.last_rows[g] >= a_rows;
      if (in_b == (operation == SetOperation::kIntersect)) rows.push_back(first_rows[g]);
    }
  }
  return Take(both, rows, threads);
}

}  // namespace

Result<Table> Unique(const Table& table, const UniqueOptions& options) {
  std::vector<int> keys;
  if (options.subset.empty()) {
    if (table.num_columns() == 0) return Status::Invalid("unique of a table without columns");
    keys = AllColumns(table);
  } else {
    auto indices = table.schema().GetFieldIndices(options.subset);
    if (!indices.ok()) return indices.status().WithContext("unique subset");
    keys = *indices;
  }
  const bool last = options.keep == Keep::kLast;
  const bool none = options.keep == Keep::kNone;
  GroupExtent extent;
  DEEPRC_ASSIGN_OR_RAISE(auto grouping,
                         GroupWithExtent(table, keys, options.threads, last, none, &extent));
  std::vector<int64_t> rows;
  switch (options.keep) {
    case Keep::kFirst: rows = grouping.mapper->first_rows(); break;
    case Keep::kLast:
      rows = std::move(extent.last_rows);
      std::sort(rows.begin(), rows.end());
      break;
    case Keep::kNone: {
      const auto& first_rows = grouping.mapper->first_rows();
      for (size_t g = 0; g < first_rows.size(); ++g) {
        if (extent.counts[g] == 1) rows.push_back(first_rows[g]);
      }
      break;
    }
  }
  return Take(table, rows, options.threads);
}

Result<Table> Union(const Table& a, const Table& b, bool distinct, int threads) {
  if (!distinct) {
    DEEPRC_RETURN_NOT_OK(CheckSameSchema(a, b, "union all"));
    return Concatenate({a, b}, threads);
  }
  return RunSetOperation(a, b, SetOperation::kUnion, "union", threads);
}

Result<Table> Intersect(const Table& a, const Table& b, int threads) {
  return RunSetOperation(a, b, SetOperation::kIntersect, "intersect", threads);
}

Result<Table> Difference(const Table& a, const Table& b, int threads) {
  return RunSetOperation(a, b, SetOperation::kDifference, "difference", threads);
}

}  // namespace deeprc::compute
