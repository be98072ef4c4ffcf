#include "deeprc/dist/join.h"

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "agreement_internal.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/compute/cast.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/table/builder.h"
#include "shuffle_internal.h"
#include "table_size_internal.h"

namespace deeprc::dist {
namespace {

using compute::JoinType;

// The sides that may be replicated for a join type (see JoinSide in join.h).
bool MayBroadcast(JoinType type, JoinSide side) {
  switch (type) {
    case JoinType::kInner:
      return true;
    case JoinType::kLeft:
    case JoinType::kSemi:
    case JoinType::kAnti:
    case JoinType::kOuter:
      return side == JoinSide::kRight;
    case JoinType::kRight:
      return side == JoinSide::kLeft;
  }
  return false;
}

// The key columns of one side, converted to the types compute::Join compares them in. The types
// come from the local join itself (run on empty slices with only the keys, under shared names),
// so the promotion rules live in one place.
struct PromotedKeys {
  std::vector<DataType> types;
};

Result<PromotedKeys> CommonKeyTypes(const Table& left, const Table& right,
                                    const compute::JoinOptions& options) {
  // The whole join on empty slices: checks keys, types and output names with the local
  // operator's messages.
  DEEPRC_RETURN_NOT_OK(compute::Join(left.Slice(0, 0), right.Slice(0, 0), options).status());
  DEEPRC_ASSIGN_OR_RAISE(auto left_index, left.schema().GetFieldIndices(options.left_keys));
  DEEPRC_ASSIGN_OR_RAISE(auto right_index, right.schema().GetFieldIndices(options.right_keys));
  std::vector<Field> left_fields;
  std::vector<Field> right_fields;
  std::vector<Column> left_columns;
  std::vector<Column> right_columns;
  std::vector<std::string> names;
  for (size_t k = 0; k < left_index.size(); ++k) {
    names.push_back(fmt::format("k{}", k));
    left_fields.push_back({names.back(), left.schema().field(left_index[k]).type});
    right_fields.push_back({names.back(), right.schema().field(right_index[k]).type});
    left_columns.push_back(left.column(left_index[k]).Slice(0, 0));
    right_columns.push_back(right.column(right_index[k]).Slice(0, 0));
  }
  DEEPRC_ASSIGN_OR_RAISE(Table left_keys, Table::Make(Schema(left_fields), left_columns, 0));
  DEEPRC_ASSIGN_OR_RAISE(Table right_keys, Table::Make(Schema(right_fields), right_columns, 0));
  compute::JoinOptions keys_only;
  keys_only.type = JoinType::kInner;
  keys_only.left_keys = names;
  keys_only.right_keys = names;
  DEEPRC_ASSIGN_OR_RAISE(Table joined, compute::Join(left_keys, right_keys, keys_only));
  PromotedKeys promoted;
  for (size_t k = 0; k < names.size(); ++k) promoted.types.push_back(joined.column(k).type());
  return promoted;
}

// Rank of every row: the hash of its keys in the common types. With `nulls_stay`, rows whose key
// has a null (they match nothing) stay on this rank.
Result<std::shared_ptr<Buffer>> KeyTargets(comm::Communicator& comm, const Table& table,
                                           const std::vector<std::string>& keys,
                                           const std::vector<DataType>& types, bool nulls_stay,
                                           int threads) {
  std::vector<Field> fields;
  std::vector<Column> columns;
  for (size_t k = 0; k < keys.size(); ++k) {
    DEEPRC_ASSIGN_OR_RAISE(Column column, table.GetColumn(keys[k]));
    auto cast = compute::Cast(column, types[k]);
    if (!cast.ok()) return cast.status().WithContext("promoting join key '" + keys[k] + "'");
    fields.push_back({fmt::format("k{}", k), types[k]});
    columns.push_back(cast.MoveValueUnsafe());
  }
  DEEPRC_ASSIGN_OR_RAISE(Table key_table,
                         Table::Make(Schema(fields), columns, table.num_rows()));
  std::vector<int> all(keys.size());
  for (size_t k = 0; k < keys.size(); ++k) all[k] = static_cast<int>(k);
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, HashPartitionBuffer(key_table, all, comm.size(), threads));
  int32_t* targets = buffer->mutable_data_as<int32_t>();
  if (nulls_stay) {
    for (const Column& column : columns) {
      if (!column.has_nulls()) continue;
      for (int64_t i = 0; i < column.length(); ++i) {
        if (column.IsNull(i)) targets[i] = comm.rank();
      }
    }
  }
  return buffer;
}

Result<Table> ShuffleJoin(comm::Communicator& comm, const Table& left, const Table& right,
                          const DistJoinOptions& options, const PromotedKeys& promoted) {
  const compute::JoinOptions& join = options.join;
  const bool nulls_stay = !join.nulls_equal;
  auto left_targets = KeyTargets(comm, left, join.left_keys, promoted.types, nulls_stay,
                                 options.shuffle.threads);
  auto right_targets = left_targets.ok() ? KeyTargets(comm, right, join.right_keys, promoted.types,
                                                      nulls_stay, options.shuffle.threads)
                                         : Result<std::shared_ptr<Buffer>>(left_targets.status());
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, right_targets.status(), "distributed join"));
  auto span_of = [](const std::shared_ptr<Buffer>& targets, const Table& table) {
    return std::span<const int32_t>(targets->data_as<int32_t>(), table.num_rows());
  };
  DEEPRC_ASSIGN_OR_RAISE(Table left_here,
                         Exchange(comm, left, span_of(*left_targets, left), options.shuffle));
  left_targets->reset();  // back to the pool before the second exchange allocates
  DEEPRC_ASSIGN_OR_RAISE(Table right_here,
                         Exchange(comm, right, span_of(*right_targets, right), options.shuffle));
  right_targets->reset();
  return compute::Join(left_here, right_here, join);
}

Result<Table> GatherAll(comm::Communicator& comm, const Table& table,
                        const DistJoinOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(std::vector<Table> parts,
                         comm::AllGatherTables(comm, table, options.shuffle.exchange));
  return compute::Concatenate(parts, options.join.threads);
}

// Full outer join with the right side replicated: a left join per rank, plus the right rows that
// no rank matched, emitted once (rank 0) the way the local outer join emits them.
Result<Table> BroadcastRightOuterJoin(comm::Communicator& comm, const Table& left,
                                      const Table& right_all, const DistJoinOptions& options) {
  compute::JoinOptions as_left = options.join;
  as_left.type = JoinType::kLeft;
  auto joined = compute::Join(left, right_all, as_left);

  // Which right rows found a partner here: a semi join of the right rows (with their index)
  // against this rank's left rows.
  const int64_t right_rows = right_all.num_rows();
  std::vector<uint8_t> marks(static_cast<size_t>((right_rows + 7) / 8), 0);
  Status status = joined.status();
  if (status.ok()) {
    status = [&]() -> Status {
      std::string index_name = "__deeprc_row";
      while (right_all.schema().FieldIndex(index_name) >= 0) index_name += "_";
      NumberBuilder<int64_t> index_builder(DataType::Int64());
      DEEPRC_RETURN_NOT_OK(index_builder.Reserve(right_rows));
      for (int64_t i = 0; i < right_rows; ++i) index_builder.UnsafeAppend(i);
      DEEPRC_ASSIGN_OR_RAISE(Column index, index_builder.Finish());
      DEEPRC_ASSIGN_OR_RAISE(Table indexed,
                             right_all.AddColumn({index_name, DataType::Int64()}, index));
      compute::JoinOptions semi = options.join;
      semi.type = JoinType::kSemi;
      semi.left_keys = options.join.right_keys;
      semi.right_keys = options.join.left_keys;
      DEEPRC_ASSIGN_OR_RAISE(Table matched, compute::Join(indexed, left, semi));
      DEEPRC_ASSIGN_OR_RAISE(Column matched_rows, matched.GetColumn(index_name));
      const int64_t* rows = matched_rows.Values<int64_t>();
      for (int64_t i = 0; i < matched_rows.length(); ++i) {
        marks[rows[i] >> 3] |= static_cast<uint8_t>(1u << (rows[i] & 7));
      }
      return Status::OK();
    }();
  }
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, status, "distributed outer join"));
  DEEPRC_ASSIGN_OR_RAISE(std::vector<comm::BufferPtr> all_marks,
                         comm.AllGather(comm::Bytes(marks.data(), marks.size())));
  if (comm.rank() != 0) return joined;

  for (const comm::BufferPtr& other : all_marks) {
    const uint8_t* bytes = other->data();
    for (size_t i = 0; i < marks.size(); ++i) marks[i] |= bytes[i];
  }
  std::vector<int64_t> unmatched;
  for (int64_t i = 0; i < right_rows; ++i) {
    if ((marks[i >> 3] >> (i & 7) & 1) == 0) unmatched.push_back(i);
  }
  if (unmatched.empty()) return joined;
  DEEPRC_ASSIGN_OR_RAISE(Table right_unmatched,
                         compute::Take(right_all, unmatched, options.join.threads));
  DEEPRC_ASSIGN_OR_RAISE(Table rest,
                         compute::Join(left.Slice(0, 0), right_unmatched, options.join));
  return compute::Concatenate({joined.MoveValueUnsafe(), std::move(rest)},
                              options.join.threads);
}

Result<Table> BroadcastJoin(comm::Communicator& comm, const Table& left, const Table& right,
                            const DistJoinOptions& options, JoinSide side) {
  auto gathered = GatherAll(comm, side == JoinSide::kLeft ? left : right, options);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, gathered.status(), "distributed join"));
  if (side == JoinSide::kLeft) return compute::Join(*gathered, right, options.join);
  const Table& right_all = *gathered;
  if (options.join.type == JoinType::kOuter) {
    return BroadcastRightOuterJoin(comm, left, right_all, options);
  }
  return compute::Join(left, right_all, options.join);
}

// The key columns of `table`, each distinct key once.
Result<Table> DistinctKeys(const Table& table, const std::vector<std::string>& keys,
                           int threads) {
  std::vector<std::string> names;
  for (const std::string& key : keys) {
    if (std::find(names.begin(), names.end(), key) == names.end()) names.push_back(key);
  }
  DEEPRC_ASSIGN_OR_RAISE(Table key_columns, table.SelectColumns(names));
  compute::UniqueOptions options;
  options.threads = threads;
  return compute::Unique(key_columns, options);
}

}  // namespace

Result<JoinPlan> PlanJoin(comm::Communicator& comm, const Table& left, const Table& right,
                          const DistJoinOptions& options) {
  JoinPlan plan;
  int64_t bytes[2] = {TableBytes(left), TableBytes(right)};
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(bytes, 2), comm::ReduceOp::kSum));
  plan.left_bytes = bytes[0];
  plan.right_bytes = bytes[1];
  const JoinType type = options.join.type;
  // The cheapest side that may be broadcast.
  JoinSide candidate = JoinSide::kNone;
  const bool left_ok = MayBroadcast(type, JoinSide::kLeft);
  const bool right_ok = MayBroadcast(type, JoinSide::kRight);
  if (left_ok && right_ok) {
    candidate = plan.left_bytes < plan.right_bytes ? JoinSide::kLeft : JoinSide::kRight;
  } else if (left_ok) {
    candidate = JoinSide::kLeft;
  } else if (right_ok) {
    candidate = JoinSide::kRight;
  }
  const int64_t candidate_bytes = candidate == JoinSide::kLeft ? plan.left_bytes : plan.right_bytes;
  const int64_t other_bytes = candidate == JoinSide::kLeft ? plan.right_bytes : plan.left_bytes;
  switch (options.strategy) {
    case JoinStrategy::kShuffle:
      plan.strategy = JoinStrategy::kShuffle;
      break;
    case JoinStrategy::kBroadcast:
      plan.strategy = JoinStrategy::kBroadcast;
      plan.broadcast = candidate;
      break;
    case JoinStrategy::kAuto:
      // Replicated on every rank, the side must also be small beside the other side: its copy
      // on each rank is then no larger than the other side's total, which does not move. Equal
      // sides shuffle (measured at 2 ranks, 0.5M and 1M rows a side: shuffling both was as
      // fast as, or 10% faster than, broadcasting one).
      if (candidate != JoinSide::kNone && candidate_bytes <= options.broadcast_threshold_bytes &&
          candidate_bytes * comm.size() <= other_bytes) {
        plan.strategy = JoinStrategy::kBroadcast;
        plan.broadcast = candidate;
      } else {
        plan.strategy = JoinStrategy::kShuffle;
      }
      break;
  }
  return plan;
}

Result<Table> Join(comm::Communicator& comm, const Table& left, const Table& right,
                   const DistJoinOptions& options) {
  // Checks keys, key types and output names; schemas may differ per rank only by mistake, so the
  // ranks agree before anything moves.
  auto promoted = CommonKeyTypes(left, right, options.join);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, promoted.status(), "distributed join"));
  if (comm.size() == 1) return compute::Join(left, right, options.join);

  // Semi and anti joins read only the right side's distinct keys: nothing else travels.
  Result<Table> right_input = right;
  if (options.join.type == JoinType::kSemi || options.join.type == JoinType::kAnti) {
    right_input = DistinctKeys(right, options.join.right_keys, options.join.threads);
  }
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, right_input.status(), "distributed join"));

  DEEPRC_ASSIGN_OR_RAISE(JoinPlan plan, PlanJoin(comm, left, *right_input, options));
  Result<Table> result = plan.strategy == JoinStrategy::kBroadcast
                             ? BroadcastJoin(comm, left, *right_input, options, plan.broadcast)
                             : ShuffleJoin(comm, left, *right_input, options, *promoted);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), "distributed join"));
  return result;
}

}  // namespace deeprc::dist
