#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

enum class JoinType { kInner, kLeft, kRight, kOuter, kSemi, kAnti };
enum class JoinAlgorithm { kAuto, kHash, kSortMerge };

// "inner", "left", "right", "outer" (or "full"), "semi", "anti".
Result<JoinType> ParseJoinType(std::string_view text);
// "auto", "hash", "sort".
Result<JoinAlgorithm> ParseJoinAlgorithm(std::string_view text);

struct JoinOptions {
  JoinType type = JoinType::kInner;
  std::vector<std::string> left_keys;
  std::vector<std::string> right_keys;
  JoinAlgorithm algorithm = JoinAlgorithm::kAuto;
  // Put after clashing non-key column names (pandas' defaults).
  std::string left_suffix = "_x";
  std::string right_suffix = "_y";
  // false: a null key matches nothing (SQL). true: null keys match each other (pandas).
  bool nulls_equal = false;
  int threads = 0;
  // Hash join: the build side is split into 2^partition_bits partitions by hash. -1 chooses from
  // the build side's size (partitions of about 8K rows, so that each hash table stays in cache);
  // tests set it to exercise many partitions on small inputs. At most 16.
  int partition_bits = -1;
};

// Output columns: every left column in order, then the right columns except key columns that
// have the same name as their left key (those are shared; for right and outer joins the shared key
// takes the right value where the left row is missing). Other names present on both sides get
// the suffixes. Semi and anti joins return left rows only, each at most once.
// Key types must match, except that integer and floating keys of different widths are compared
// after promotion to a common type (compute::Cast, so a value that does not fit the common type is
// an error): integers of different widths or signedness go to the narrowest integer type that
// holds both (uint64 with a signed type goes to int64), integers with floating point and float32
// with float64 go to float64. Shared key columns have the common type.
//
// Names: a left column whose name is also the name of an output right column gets left_suffix,
// and that right column gets right_suffix (pandas). If the names that result are still not unique
// (e.g. the left side already has "v_x"), the join fails with Invalid naming the column, rather
// than inventing a name.
//
// Nulls: with nulls_equal false a row whose key has a null matches nothing; it still appears,
// unmatched, in left, right and outer joins (and anti joins), and never in semi joins.
//
// Row order: semi and anti joins keep left order. For the other joins the order is deterministic
// for given inputs and options, but unspecified: the hash join emits matches partition by
// partition, the sort-merge join in key order; unmatched rows whose keys are null come last.
//
// Algorithms: kHash (and kAuto) is a radix-partitioned hash join that builds on the smaller side;
// kSortMerge sorts both sides' keys (radix sort for one fixed-width key) and merges. Both give the
// same rows.
Result<Table> Join(const Table& left, const Table& right, const JoinOptions& options);

}  // namespace deeprc::compute
