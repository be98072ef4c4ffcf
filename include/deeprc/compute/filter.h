#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::compute {

// A row predicate over the columns of a table, parsed from text such as
//   a > 3 and (b == 'x' or c is null) and d in (1, 2, 3) and not flag
// Comparisons (==, !=, <, <=, >, >=) between columns and constants (numbers, 'strings',
// true/false, dates as '2024-01-31'), `and`, `or`, `not`, `is null`, `is not null`, `in (...)`,
// parentheses. Column names that are not plain identifiers are written in backquotes.
// SQL logic: a comparison with a null is unknown, and unknown rows are not kept. `=` and `<>`
// are accepted for `==` and `!=`, and `x not in (...)` for `not x in (...)`. Numbers compare
// exactly across integer types; NaN equals NaN and is above every other number (the sort's
// order). Errors show where in the text they are, e.g.
//   filter: expected ')', found the end at column 13 in 'a > 3 and (b'
class Predicate {
 public:
  static Result<Predicate> Parse(std::string_view text);
  Predicate(Predicate&&) noexcept;
  Predicate& operator=(Predicate&&) noexcept;
  ~Predicate();

  // A bool column: true, false, or null (unknown) per row. Fails with a clear error when a
  // column is missing or a comparison mixes types that cannot be compared.
  // Long tables are evaluated on `threads` threads (0: DefaultThreadCount()).
  Result<Column> Evaluate(const Table& table, int threads = 0) const;
  const std::string& text() const;

  struct Node;

 private:
  Predicate();
  std::unique_ptr<Node> root_;
  std::string text_;
};

// Rows for which the predicate is true.
Result<Table> Filter(const Table& table, const Predicate& predicate, int threads = 0);
Result<Table> Filter(const Table& table, std::string_view predicate, int threads = 0);

}  // namespace deeprc::compute
