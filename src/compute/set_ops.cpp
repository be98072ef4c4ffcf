#include "deeprc/compute/set_ops.h"

#include <algorithm>
#include <new>

#include "compute/grouping.h"
#include "deeprc/compute/selection.h"
#include "deeprc/core/thread_pool.h"

namespace deeprc::compute {
namespace {

// Decides, for one hash partition, which rows to keep: sets keep[row] for them.
using ChooseFn = std::function<void(const uint32_t* rows, int64_t count, const uint32_t* group_ids,
                                    const internal::GroupMapper& mapper, uint8_t* keep)>;

// Groups the rows by `keys` in hash partitions (no merge of partial tables, which matters with
// millions of distinct keys), lets `choose` mark the rows to keep, and lists them ascending.
Result<std::vector<int64_t>> ChooseRows(const Table& table, const std::vector<int>& keys,
                                        int threads, const ChooseFn& choose) {
  if (threads <= 0) threads = DefaultThreadCount();
  const int64_t rows = table.num_rows();
  try {
    // One byte per row: partitions mark disjoint rows, so plain stores do not race.
    std::vector<uint8_t> keep(static_cast<size_t>(rows), 0);
    DEEPRC_RETURN_NOT_OK(internal::GroupRowsPartitioned(
        table, keys, /*drop_null_keys=*/false, threads,
        [&](int, const uint32_t* part_rows, int64_t count, const uint32_t* group_ids,
            const internal::GroupMapper& mapper) {
          choose(part_rows, count, group_ids, mapper, keep.data());
        }));
    const int64_t ranges = std::clamp<int64_t>(rows >> 16, 1, threads);
    std::vector<int64_t> starts(static_cast<size_t>(ranges + 1), 0);
    ParallelFor(ranges, threads, [&](int64_t r) {
      int64_t kept = 0;
      for (int64_t i = rows * r / ranges; i < rows * (r + 1) / ranges; ++i) kept += keep[i];
      starts[r + 1] = kept;
    });
    for (int64_t r = 0; r < ranges; ++r) starts[r + 1] += starts[r];
    std::vector<int64_t> selected(static_cast<size_t>(starts[ranges]));
    ParallelFor(ranges, threads, [&](int64_t r) {
      int64_t* out = selected.data() + starts[r];
      for (int64_t i = rows * r / ranges; i < rows * (r + 1) / ranges; ++i) {
        if (keep[i]) *out++ = i;
      }
    });
    return selected;
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory("out of memory finding duplicates among {} rows", rows);
  }
}

// The last row of each group of a partition.
std::vector<uint32_t> LastRows(const uint32_t* rows, int64_t count, const uint32_t* group_ids,
                               int64_t groups) {
  std::vector<uint32_t> last(static_cast<size_t>(groups));
  for (int64_t k = 0; k < count; ++k) last[group_ids[k]] = rows[k];
  return last;
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
  DEEPRC_ASSIGN_OR_RAISE(
      auto rows,
      ChooseRows(both, AllColumns(both), threads,
                 [&](const uint32_t* part_rows, int64_t count, const uint32_t* group_ids,
                     const internal::GroupMapper& mapper, uint8_t* keep) {
                   const auto& first_rows = mapper.first_rows();
                   if (operation == SetOperation::kUnion) {
                     for (int64_t first : first_rows) keep[first] = 1;
                     return;
                   }
                   // A row value is in a when its first row is, in b when its last row is.
                   const std::vector<uint32_t> last =
                       LastRows(part_rows, count, group_ids, mapper.num_groups());
                   const bool want_in_b = operation == SetOperation::kIntersect;
                   for (size_t g = 0; g < first_rows.size(); ++g) {
                     if (first_rows[g] < a_rows && (last[g] >= a_rows) == want_in_b) {
                       keep[first_rows[g]] = 1;
                     }
                   }
                 }));
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
  const Keep keep_mode = options.keep;
  DEEPRC_ASSIGN_OR_RAISE(
      auto rows,
      ChooseRows(table, keys, options.threads,
                 [&](const uint32_t* part_rows, int64_t count, const uint32_t* group_ids,
                     const internal::GroupMapper& mapper, uint8_t* keep) {
                   const auto& first_rows = mapper.first_rows();
                   switch (keep_mode) {
                     case Keep::kFirst:
                       for (int64_t first : first_rows) keep[first] = 1;
                       break;
                     case Keep::kLast:
                       for (uint32_t last :
                            LastRows(part_rows, count, group_ids, mapper.num_groups())) {
                         keep[last] = 1;
                       }
                       break;
                     case Keep::kNone: {
                       std::vector<uint32_t> counts(first_rows.size(), 0);
                       for (int64_t k = 0; k < count; ++k) ++counts[group_ids[k]];
                       for (size_t g = 0; g < first_rows.size(); ++g) {
                         if (counts[g] == 1) keep[first_rows[g]] = 1;
                       }
                       break;
                     }
                   }
                 }));
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
