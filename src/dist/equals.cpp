#include "deeprc/dist/equals.h"

#include <cstdint>
#include <span>
#include <vector>

#include "agreement_internal.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/sort.h"

namespace deeprc::dist {
namespace {

// Every rank's row count, by rank.
Result<std::vector<int64_t>> RowCounts(comm::Communicator& comm, const Table& table) {
  std::vector<int64_t> counts(static_cast<size_t>(comm.size()), 0);
  counts[comm.rank()] = table.num_rows();
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(counts), comm::ReduceOp::kSum));
  return counts;
}

Result<Table> SortedOnAllColumns(const Table& table, int threads) {
  compute::SortOptions options;
  options.threads = threads;
  for (const Field& field : table.schema().fields()) options.keys.push_back({field.name});
  if (options.keys.empty()) return table;
  return compute::Sort(table, options);
}

// Sends b's rows to the ranks that hold the same global row positions of a.
Result<Table> CutLike(comm::Communicator& comm, const std::vector<int64_t>& a_counts,
                      const std::vector<int64_t>& b_counts, const Table& b,
                      const ShuffleOptions& shuffle) {
  int64_t position = 0;  // global position of b's first row here
  for (int r = 0; r < comm.rank(); ++r) position += b_counts[r];
  std::vector<int32_t> targets(static_cast<size_t>(b.num_rows()));
  int target = 0;
  int64_t target_end = a_counts[0];
  for (int64_t i = 0; i < b.num_rows(); ++i, ++position) {
    while (position >= target_end) target_end += a_counts[++target];
    targets[i] = target;
  }
  return Exchange(comm, b, targets, shuffle);
}

}  // namespace

Result<bool> Equals(comm::Communicator& comm, const Table& a, const Table& b,
                    const EqualsOptions& options) {
  int64_t same = a.schema() == b.schema() ? 1 : 0;
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(&same, 1), comm::ReduceOp::kMin));
  if (same == 0) return false;
  DEEPRC_ASSIGN_OR_RAISE(std::vector<int64_t> a_counts, RowCounts(comm, a));
  DEEPRC_ASSIGN_OR_RAISE(std::vector<int64_t> b_counts, RowCounts(comm, b));
  int64_t a_total = 0;
  int64_t b_total = 0;
  for (int r = 0; r < comm.size(); ++r) {
    a_total += a_counts[r];
    b_total += b_counts[r];
  }
  if (a_total != b_total) return false;

  Result<bool> local_equal = false;
  if (options.ordered) {
    DEEPRC_ASSIGN_OR_RAISE(Table b_here, CutLike(comm, a_counts, b_counts, b, options.shuffle));
    local_equal = a.Equals(b_here);
  } else {
    std::vector<int> all(static_cast<size_t>(a.num_columns()));
    for (int c = 0; c < a.num_columns(); ++c) all[c] = c;
    DEEPRC_ASSIGN_OR_RAISE(Table a_here, Shuffle(comm, a, all, options.shuffle));
    DEEPRC_ASSIGN_OR_RAISE(Table b_here, Shuffle(comm, b, all, options.shuffle));
    local_equal = [&]() -> Result<bool> {
      if (a_here.num_rows() != b_here.num_rows()) return false;
      DEEPRC_ASSIGN_OR_RAISE(Table a_sorted, SortedOnAllColumns(a_here, options.shuffle.threads));
      DEEPRC_ASSIGN_OR_RAISE(Table b_sorted, SortedOnAllColumns(b_here, options.shuffle.threads));
      return a_sorted.Equals(b_sorted);
    }();
  }
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, local_equal.status(), "distributed equals"));
  int64_t equal = *local_equal ? 1 : 0;
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(&equal, 1), comm::ReduceOp::kMin));
  return equal == 1;
}

}  // namespace deeprc::dist
