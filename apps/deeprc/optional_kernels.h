#pragma once

// The kernels the `deeprc table` command calls, redeclared weak: the program still links while
// one of them is not yet part of the library, and the command that needs it then says so (exit
// status 1) instead of the whole program failing to build. apps/CMakeLists.txt links the objects
// of deeprc_table and deeprc_compute directly, so that every kernel that exists is in the program
// (a weak reference alone would not pull its object out of a static library).

#include "deeprc/compute/filter.h"
#include "deeprc/compute/group_by.h"
#include "deeprc/compute/join.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/compute/sort.h"
#include "deeprc/table/csv.h"

namespace deeprc::csv {
[[gnu::weak]] Result<Table> ReadCsv(const std::string& path, const ReadOptions& options);
[[gnu::weak]] Result<Table> ReadCsvText(std::string_view text, const ReadOptions& options,
                                        std::string_view name);
[[gnu::weak]] Result<Schema> InferSchema(const std::string& path, const ReadOptions& options);
[[gnu::weak]] Status WriteCsv(const Table& table, const std::string& path,
                              const WriteOptions& options);
[[gnu::weak]] Status WriteCsv(const Table& table, std::ostream& out, const WriteOptions& options);
}  // namespace deeprc::csv

namespace deeprc::compute {
[[gnu::weak]] Result<JoinType> ParseJoinType(std::string_view text);
[[gnu::weak]] Result<JoinAlgorithm> ParseJoinAlgorithm(std::string_view text);
[[gnu::weak]] Result<Table> Join(const Table& left, const Table& right,
                                 const JoinOptions& options);
[[gnu::weak]] Result<Aggregate> ParseAggregate(std::string_view text);
[[gnu::weak]] Result<Table> GroupBy(const Table& table, const GroupByOptions& options);
[[gnu::weak]] Result<Table> Sort(const Table& table, const SortOptions& options);
[[gnu::weak]] Result<Table> Unique(const Table& table, const UniqueOptions& options);
[[gnu::weak]] Result<Table> Union(const Table& a, const Table& b, bool distinct, int threads);
[[gnu::weak]] Result<Table> Intersect(const Table& a, const Table& b, int threads);
[[gnu::weak]] Result<Table> Difference(const Table& a, const Table& b, int threads);
[[gnu::weak]] Result<Table> Filter(const Table& table, std::string_view predicate, int threads);
}  // namespace deeprc::compute

namespace deeprc::app {

// An internal error naming the kernel when `function` is not linked into this program.
template <typename Function>
Status RequireKernel(Function* function, std::string_view what) {
  if (function == nullptr) {
    return Status::Internal("{} is not available in this build of deeprc", what);
  }
  return Status::OK();
}

}  // namespace deeprc::app
