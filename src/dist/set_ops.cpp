#include "deeprc/dist/set_ops.h"

#include <string_view>
#include <vector>

#include "agreement_internal.h"

namespace deeprc::dist {
namespace {

std::vector<int> AllColumns(const Table& table) {
  std::vector<int> columns(static_cast<size_t>(table.num_columns()));
  for (int c = 0; c < table.num_columns(); ++c) columns[c] = c;
  return columns;
}

// Local duplicates dropped, then the distinct rows shuffled on all columns: equal rows of every
// rank meet on one rank.
Result<Table> DistinctShuffled(comm::Communicator& comm, const Table& table,
                               const ShuffleOptions& shuffle, std::string_view operation) {
  compute::UniqueOptions options;
  options.threads = shuffle.threads;
  auto distinct = compute::Unique(table, options);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, distinct.status(), operation));
  return Shuffle(comm, *distinct, AllColumns(table), shuffle);
}

using SetOperation = Result<Table> (*)(const Table&, const Table&, int);

Result<Table> BinarySetOperation(comm::Communicator& comm, const Table& a, const Table& b,
                                 const ShuffleOptions& shuffle, SetOperation operation,
                                 std::string_view name) {
  // Schemas are checked by the local operator on empty slices before anything moves.
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(
      comm, operation(a.Slice(0, 0), b.Slice(0, 0), shuffle.threads).status(), name));
  if (comm.size() == 1) return operation(a, b, shuffle.threads);
  DEEPRC_ASSIGN_OR_RAISE(Table a_here, DistinctShuffled(comm, a, shuffle, name));
  DEEPRC_ASSIGN_OR_RAISE(Table b_here, DistinctShuffled(comm, b, shuffle, name));
  auto result = operation(a_here, b_here, shuffle.threads);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), name));
  return result;
}

Result<Table> DistinctUnion(const Table& a, const Table& b, int threads) {
  return compute::Union(a, b, true, threads);
}

}  // namespace

Result<Table> Unique(comm::Communicator& comm, const Table& table,
                     const compute::UniqueOptions& options, const ShuffleOptions& shuffle) {
  constexpr std::string_view kOperation = "distributed unique";
  DEEPRC_RETURN_NOT_OK(
      AgreeOnStatus(comm, compute::Unique(table.Slice(0, 0), options).status(), kOperation));
  if (comm.size() == 1) return compute::Unique(table, options);
  std::vector<int> subset;
  if (options.subset.empty()) {
    subset = AllColumns(table);
  } else {
    DEEPRC_ASSIGN_OR_RAISE(subset, table.schema().GetFieldIndices(options.subset));
  }
  Result<Table> reduced = table;
  if (options.keep != compute::Keep::kNone) reduced = compute::Unique(table, options);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, reduced.status(), kOperation));
  DEEPRC_ASSIGN_OR_RAISE(Table here, Shuffle(comm, *reduced, subset, shuffle));
  auto result = compute::Unique(here, options);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), kOperation));
  return result;
}

Result<Table> Union(comm::Communicator& comm, const Table& a, const Table& b, bool distinct,
                    const ShuffleOptions& shuffle) {
  if (!distinct) {
    auto result = compute::Union(a, b, false, shuffle.threads);
    DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), "distributed union"));
    return result;
  }
  return BinarySetOperation(comm, a, b, shuffle, &DistinctUnion, "distributed union");
}

Result<Table> Intersect(comm::Communicator& comm, const Table& a, const Table& b,
                        const ShuffleOptions& shuffle) {
  return BinarySetOperation(comm, a, b, shuffle, &compute::Intersect, "distributed intersect");
}

Result<Table> Difference(comm::Communicator& comm, const Table& a, const Table& b,
                         const ShuffleOptions& shuffle) {
  return BinarySetOperation(comm, a, b, shuffle, &compute::Difference, "distributed difference");
}

}  // namespace deeprc::dist
