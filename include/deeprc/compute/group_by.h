#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

enum class AggregateKind {
  kSum,
  kCount,  // non-null values
  kMin,
  kMax,
  kMean,
  kVar,
  kStd,
  kNunique,  // distinct non-null values
  kFirst,    // first non-null value in input order
  kLast,     // last non-null value in input order
  kMedian,
  kQuantile,  // linear interpolation between closest ranks (pandas' default)
};

struct Aggregate {
  std::string column;
  AggregateKind kind = AggregateKind::kSum;
  // Delta degrees of freedom for var and std (1: sample, as pandas).
  int ddof = 1;
  // For kQuantile, in [0, 1].
  double quantile = 0.5;
  // Name of the output column; empty: "<column>_<kind>" (e.g. v_sum, v_quantile_0.9).
  std::string output_name;
};

// Parses "v:sum", "v:mean", "w:nunique", "v:var", "v:std(ddof=0)", "v:quantile(0.9)",
// "v:median", "v:first", ... with an optional "=name" suffix for the output column
// ("v:sum=total").
Result<Aggregate> ParseAggregate(std::string_view text);
std::string_view AggregateKindName(AggregateKind kind);

struct GroupByOptions {
  std::vector<std::string> keys;
  std::vector<Aggregate> aggregates;
  // Null keys form a group of their own (SQL, and pandas with dropna=False) unless this is set.
  bool drop_null_keys = false;
  int threads = 0;
};

// One row per distinct key, in order of first appearance. Result types: count and nunique int64;
// sum int64 for signed integers and bool, uint64 for unsigned, float64 for floats; mean, var,
// std, median and quantile float64; min, max, first and last keep the input type (strings
// included). Nulls are skipped; an aggregate over no non-null values is null (count and nunique
// give 0).
Result<Table> GroupBy(const Table& table, const GroupByOptions& options);

// The same aggregates over the whole table: one row.
Result<Table> AggregateTable(const Table& table, const std::vector<Aggregate>& aggregates,
                             int threads = 0);

}  // namespace deeprc::compute
