#include "deeprc/dist/group_by.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "agreement_internal.h"
#include "deeprc/comm/table_exchange.h"
#include "deeprc/compute/hash.h"
#include "deeprc/compute/selection.h"
#include "deeprc/table/builder.h"

namespace deeprc::dist {
namespace {

using compute::Aggregate;
using compute::AggregateKind;

bool IsDecomposable(AggregateKind kind) {
  switch (kind) {
    case AggregateKind::kNunique:
    case AggregateKind::kMedian:
    case AggregateKind::kQuantile:
      return false;
    default:
      return true;
  }
}

bool AllDecomposable(const std::vector<Aggregate>& aggregates) {
  for (const Aggregate& aggregate : aggregates) {
    if (!IsDecomposable(aggregate.kind)) return false;
  }
  return true;
}

// The partial results each rank computes, and how every requested aggregate is rebuilt from them.
struct PartialPlan {
  std::vector<Aggregate> partials;  // output names "__deeprc_partial_<i>"
  struct Output {
    AggregateKind kind = AggregateKind::kSum;
    int ddof = 1;
    int partial = -1;  // sum, count, min, max, first, last: combined by compute::GroupBy
    int count = -1;    // mean, var, std: the parts' counts, means and variances (ddof 0)
    int mean = -1;
    int variance = -1;
  };
  std::vector<Output> outputs;

  int Add(const std::string& column, AggregateKind kind, int ddof = 1) {
    for (size_t i = 0; i < partials.size(); ++i) {
      const Aggregate& p = partials[i];
      if (p.column == column && p.kind == kind && p.ddof == ddof) return static_cast<int>(i);
    }
    Aggregate partial;
    partial.column = column;
    partial.kind = kind;
    partial.ddof = ddof;
    partial.output_name = fmt::format("__deeprc_partial_{}", partials.size());
    partials.push_back(std::move(partial));
    return static_cast<int>(partials.size()) - 1;
  }
};

PartialPlan PlanPartials(const std::vector<Aggregate>& aggregates) {
  PartialPlan plan;
  for (const Aggregate& aggregate : aggregates) {
    PartialPlan::Output output;
    output.kind = aggregate.kind;
    output.ddof = aggregate.ddof;
    switch (aggregate.kind) {
      case AggregateKind::kMean:
      case AggregateKind::kVar:
      case AggregateKind::kStd:
        output.count = plan.Add(aggregate.column, AggregateKind::kCount);
        output.mean = plan.Add(aggregate.column, AggregateKind::kMean);
        if (aggregate.kind != AggregateKind::kMean) {
          output.variance = plan.Add(aggregate.column, AggregateKind::kVar, 0);
        }
        break;
      default:
        output.partial = plan.Add(aggregate.column, aggregate.kind);
        break;
    }
    plan.outputs.push_back(output);
  }
  return plan;
}

// Group ids in order of first appearance of the key in columns [0, num_keys) (nulls equal
// nulls), and the first row of every group.
struct RowGroups {
  std::vector<int64_t> ids;
  std::vector<int64_t> first_rows;
};

Result<RowGroups> GroupRows(const Table& table, int num_keys, int threads) {
  const int64_t rows = table.num_rows();
  RowGroups groups;
  groups.ids.assign(static_cast<size_t>(rows), 0);
  if (num_keys == 0) {
    if (rows > 0) groups.first_rows.push_back(0);
    return groups;
  }
  std::vector<int> key_indices(static_cast<size_t>(num_keys));
  for (int k = 0; k < num_keys; ++k) key_indices[k] = k;
  DEEPRC_ASSIGN_OR_RAISE(compute::KeyColumns keys, compute::KeyColumns::Make(table, key_indices));
  const std::vector<uint64_t> hashes = keys.HashAll(threads);
  uint64_t capacity = 16;
  while (capacity < static_cast<uint64_t>(rows) * 2) capacity *= 2;
  const uint64_t mask = capacity - 1;
  std::vector<int64_t> slots(capacity, -1);
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t slot = hashes[r] & mask;
    while (true) {
      const int64_t g = slots[slot];
      if (g < 0) {
        slots[slot] = static_cast<int64_t>(groups.first_rows.size());
        groups.ids[r] = slots[slot];
        groups.first_rows.push_back(r);
        break;
      }
      const int64_t first = groups.first_rows[g];
      if (hashes[first] == hashes[r] && keys.RowEquals(r, keys, first)) {
        groups.ids[r] = g;
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  return groups;
}

template <typename Value>
Result<Column> BuildFloat64(int64_t n, Value&& value_and_valid) {
  NumberBuilder<double> builder(DataType::Float64());
  DEEPRC_RETURN_NOT_OK(builder.Reserve(n));
  for (int64_t i = 0; i < n; ++i) {
    double value = 0;
    if (value_and_valid(i, &value)) {
      builder.UnsafeAppend(value);
    } else {
      builder.UnsafeAppendNull();
    }
  }
  return builder.Finish();
}

// Partial results (key columns [0, num_keys), then the partial aggregates under their names, any
// number of rows per group, in source order) → one row per group with the requested aggregates,
// in the columns and types of `expected`.
Result<Table> Combine(const Table& partials, int num_keys, const PartialPlan& plan,
                      const Schema& expected, int threads) {
  DEEPRC_ASSIGN_OR_RAISE(RowGroups groups, GroupRows(partials, num_keys, threads));
  const int64_t rows = partials.num_rows();
  const int64_t num_groups = static_cast<int64_t>(groups.first_rows.size());
  std::vector<Column> output;

  // Keys: each group's first row.
  std::vector<int> key_indices;
  for (int k = 0; k < num_keys; ++k) key_indices.push_back(k);
  DEEPRC_ASSIGN_OR_RAISE(Table keys, partials.SelectColumns(key_indices));
  DEEPRC_ASSIGN_OR_RAISE(Table group_keys, compute::Take(keys, groups.first_rows, threads));
  for (const Column& column : group_keys.columns()) output.push_back(column);

  // sum, count, min, max, first, last: the same aggregate (a sum for counts) of the parts, by
  // group id. Rows stay in source order, so first and last pick the earliest and latest rank.
  NumberBuilder<int64_t> id_builder(DataType::Int64());
  DEEPRC_RETURN_NOT_OK(id_builder.Reserve(rows));
  for (int64_t id : groups.ids) id_builder.UnsafeAppend(id);
  DEEPRC_ASSIGN_OR_RAISE(Column ids, id_builder.Finish());
  std::vector<Field> fields{{"g", DataType::Int64()}};
  std::vector<Column> columns{ids};
  std::vector<Aggregate> combine;
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    const PartialPlan::Output& out = plan.outputs[i];
    if (out.partial < 0) continue;
    const std::string name = fmt::format("p{}", i);
    DEEPRC_ASSIGN_OR_RAISE(Column part, partials.GetColumn(plan.partials[out.partial].output_name));
    fields.push_back({name, part.type()});
    columns.push_back(part);
    Aggregate aggregate;
    aggregate.column = name;
    aggregate.kind = out.kind == AggregateKind::kCount ? AggregateKind::kSum : out.kind;
    aggregate.output_name = fmt::format("c{}", i);
    combine.push_back(std::move(aggregate));
  }
  Table combined;
  if (!combine.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(Table by_id, Table::Make(Schema(fields), columns, rows));
    compute::GroupByOptions options;
    options.keys = {"g"};
    options.aggregates = combine;
    options.threads = threads;
    DEEPRC_ASSIGN_OR_RAISE(combined, compute::GroupBy(by_id, options));
    // Rows in group-id order, whatever order the local group-by chose.
    std::vector<int64_t> position(static_cast<size_t>(num_groups), -1);
    const Column& combined_ids = combined.column(0);
    bool in_order = combined.num_rows() == num_groups;
    for (int64_t r = 0; r < combined.num_rows(); ++r) {
      const int64_t g = combined_ids.Value<int64_t>(r);
      if (g < 0 || g >= num_groups) return Status::Internal("combining partial aggregates");
      position[g] = r;
      in_order = in_order && g == r;
    }
    if (!in_order) {
      DEEPRC_ASSIGN_OR_RAISE(combined, compute::Take(combined, position, threads));
    }
  }

  // mean, var, std: Chan's formula over the parts' (count, mean, sum of squared deviations).
  struct Moments {
    int64_t count = 0;
    double mean = 0;
    double m2 = 0;
  };
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    const PartialPlan::Output& out = plan.outputs[i];
    if (out.partial >= 0) {
      DEEPRC_ASSIGN_OR_RAISE(Column column, combined.GetColumn(fmt::format("c{}", i)));
      output.push_back(std::move(column));
      continue;
    }
    DEEPRC_ASSIGN_OR_RAISE(Column counts, partials.GetColumn(plan.partials[out.count].output_name));
    DEEPRC_ASSIGN_OR_RAISE(Column means, partials.GetColumn(plan.partials[out.mean].output_name));
    Column variances;
    if (out.variance >= 0) {
      DEEPRC_ASSIGN_OR_RAISE(variances,
                             partials.GetColumn(plan.partials[out.variance].output_name));
    }
    std::vector<Moments> moments(static_cast<size_t>(num_groups));
    for (int64_t r = 0; r < rows; ++r) {
      if (counts.IsNull(r) || means.IsNull(r)) continue;
      const int64_t nb_count = counts.Value<int64_t>(r);
      if (nb_count == 0) continue;
      const double mean_b = means.Value<double>(r);
      const double m2_b = out.variance >= 0 && variances.IsValid(r)
                              ? variances.Value<double>(r) * static_cast<double>(nb_count)
                              : 0.0;
      Moments& a = moments[groups.ids[r]];
      if (a.count == 0) {
        a = {nb_count, mean_b, m2_b};
        continue;
      }
      const double na = static_cast<double>(a.count);
      const double nb = static_cast<double>(nb_count);
      const double n = na + nb;
      const double delta = mean_b - a.mean;
      a.mean += delta * nb / n;
      a.m2 += m2_b + delta * delta * na * nb / n;
      a.count += nb_count;
    }
    const int ddof = out.ddof;
    const AggregateKind kind = out.kind;
    DEEPRC_ASSIGN_OR_RAISE(Column column, BuildFloat64(num_groups, [&](int64_t g, double* value) {
                             const Moments& m = moments[g];
                             if (kind == AggregateKind::kMean) {
                               *value = m.mean;
                               return m.count > 0;
                             }
                             const double var = m.m2 / static_cast<double>(m.count - ddof);
                             *value = kind == AggregateKind::kStd ? std::sqrt(var) : var;
                             return m.count > ddof;
                           }));
    output.push_back(std::move(column));
  }

  if (static_cast<int>(output.size()) != expected.num_fields()) {
    return Status::Internal("combining partial aggregates: {} columns, expected {}",
                            output.size(), expected.num_fields());
  }
  for (int c = 0; c < expected.num_fields(); ++c) {
    if (!(output[c].type() == expected.field(c).type)) {
      return Status::Internal("combining partial aggregates: column '{}' is {}, expected {}",
                              expected.field(c).name, output[c].type().ToString(),
                              expected.field(c).type.ToString());
    }
  }
  return Table::Make(expected, std::move(output), num_groups);
}

// The columns an aggregation reads: the keys first, then the aggregated columns.
Result<Table> Project(const Table& table, const std::vector<std::string>& keys,
                      const std::vector<Aggregate>& aggregates) {
  std::vector<std::string> names = keys;
  for (const Aggregate& aggregate : aggregates) {
    if (std::find(names.begin(), names.end(), aggregate.column) == names.end()) {
      names.push_back(aggregate.column);
    }
  }
  return table.SelectColumns(names);
}

std::vector<int> FirstIndices(size_t count) {
  std::vector<int> indices(count);
  for (size_t i = 0; i < count; ++i) indices[i] = static_cast<int>(i);
  return indices;
}

}  // namespace

Result<Table> GroupBy(comm::Communicator& comm, const Table& table,
                      const DistGroupByOptions& options) {
  const compute::GroupByOptions& group_by = options.group_by;
  constexpr std::string_view kOperation = "distributed group-by";
  // Checks keys and aggregates with the local operator's messages, and gives the output schema.
  auto expected = compute::GroupBy(table.Slice(0, 0), group_by);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, expected.status(), kOperation));
  if (comm.size() == 1) return compute::GroupBy(table, group_by);
  const std::vector<int> key_indices = FirstIndices(group_by.keys.size());

  if (!AllDecomposable(group_by.aggregates)) {
    DEEPRC_ASSIGN_OR_RAISE(Table projected,
                           Project(table, group_by.keys, group_by.aggregates));
    DEEPRC_ASSIGN_OR_RAISE(Table here, Shuffle(comm, projected, key_indices, options.shuffle));
    auto result = compute::GroupBy(here, group_by);
    DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), kOperation));
    return result;
  }

  const PartialPlan plan = PlanPartials(group_by.aggregates);
  compute::GroupByOptions local = group_by;
  local.aggregates = plan.partials;
  auto partial = compute::GroupBy(table, local);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, partial.status(), kOperation));
  DEEPRC_ASSIGN_OR_RAISE(Table here, Shuffle(comm, *partial, key_indices, options.shuffle));
  auto result = Combine(here, static_cast<int>(key_indices.size()), plan, expected->schema(),
                        group_by.threads);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), kOperation));
  return result;
}

Result<Table> AggregateTable(comm::Communicator& comm, const Table& table,
                             const std::vector<Aggregate>& aggregates,
                             const ShuffleOptions& options) {
  constexpr std::string_view kOperation = "distributed aggregate";
  auto expected = compute::AggregateTable(table.Slice(0, 0), aggregates, options.threads);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, expected.status(), kOperation));
  if (comm.size() == 1) return compute::AggregateTable(table, aggregates, options.threads);

  if (AllDecomposable(aggregates)) {
    const PartialPlan plan = PlanPartials(aggregates);
    auto partial = compute::AggregateTable(table, plan.partials, options.threads);
    DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, partial.status(), kOperation));
    DEEPRC_ASSIGN_OR_RAISE(std::vector<Table> parts,
                           comm::AllGatherTables(comm, *partial, options.exchange));
    // Every rank combines the same rows in the same order: the same row everywhere.
    auto result = [&]() -> Result<Table> {
      DEEPRC_ASSIGN_OR_RAISE(Table all, compute::Concatenate(parts, options.threads));
      return Combine(all, 0, plan, expected->schema(), options.threads);
    }();
    DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), kOperation));
    return result;
  }

  // Holistic aggregates: the aggregated columns go to rank 0.
  DEEPRC_ASSIGN_OR_RAISE(Table projected, Project(table, {}, aggregates));
  const std::vector<int32_t> to_root(static_cast<size_t>(projected.num_rows()), 0);
  DEEPRC_ASSIGN_OR_RAISE(Table here, Exchange(comm, projected, to_root, options));
  Result<Table> result = *expected;
  if (comm.rank() == 0) result = compute::AggregateTable(here, aggregates, options.threads);
  DEEPRC_RETURN_NOT_OK(AgreeOnStatus(comm, result.status(), kOperation));
  return comm::BroadcastTable(comm, 0, *result, options.exchange);
}

}  // namespace deeprc::dist
