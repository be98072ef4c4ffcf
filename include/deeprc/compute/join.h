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
};

// Output columns: every left column in order, then the right columns except key columns that
// have the same name as their left key (those are shared; for right and outer joins the shared key
// takes the right value where the left row is missing). Other names present on both sides get
// the suffixes. Semi and anti joins return left rows only, each at most once.
// Key types must match, except that integer and floating keys of different widths are compared
// after promotion to a common type.
Result<Table> Join(const Table& left, const Table& right, const JoinOptions& options);

}  // namespace deeprc::compute
