#include "testing/table_compare.h"

#include <algorithm>
#include <cmath>
#include <variant>
#include <vector>

#include <fmt/core.h>

namespace deeprc::testing {
namespace {

// A cell as a sortable value: null < number < text.
using Cell = std::variant<std::monostate, double, std::string>;

Cell ReadCell(const Column& column, int64_t row) {
  if (column.IsNull(row)) return std::monostate{};
  return VisitType(column.type_id(), [&]<typename Tag>(Tag) -> Cell {
    if constexpr (std::is_same_v<Tag, BoolTag>) {
      return column.GetBool(row) ? 1.0 : 0.0;
    } else if constexpr (std::is_same_v<Tag, StringTag>) {
      return std::string(column.GetString(row));
    } else {
      using T = typename Tag::CType;
      if constexpr (sizeof(T) == 8 && std::is_integral_v<T>) {
        // Exact: large 64-bit integers do not fit a double; compare them as text.
        return fmt::format("{:020}", column.Value<T>(row));
      } else {
        return static_cast<double>(column.Value<T>(row));
      }
    }
  });
}

std::string CellText(const Cell& cell) {
  if (std::holds_alternative<std::monostate>(cell)) return "null";
  if (const double* number = std::get_if<double>(&cell)) return fmt::format("{}", *number);
  return "'" + std::get<std::string>(cell) + "'";
}

bool CellsEqual(const Cell& a, const Cell& b, double tolerance) {
  if (a.index() != b.index()) return false;
  if (const double* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    if (std::isnan(*x) || std::isnan(y)) return std::isnan(*x) && std::isnan(y);
    if (*x == y) return true;  // infinities: their difference is NaN
    return std::fabs(*x - y) <= tolerance * std::max({1.0, std::fabs(*x), std::fabs(y)});
  }
  return a == b;
}

std::vector<std::vector<Cell>> Rows(const Table& table) {
  std::vector<std::vector<Cell>> rows(static_cast<size_t>(table.num_rows()));
  for (int64_t r = 0; r < table.num_rows(); ++r) {
    for (int c = 0; c < table.num_columns(); ++c) rows[r].push_back(ReadCell(table.column(c), r));
  }
  return rows;
}

// Rows in sorting order: floats compared after rounding to 9 significant digits, so that values
// within tolerance usually sort alike. The rounded values are computed once per cell (not per
// comparison), so that tables of a few hundred thousand rows sort in well under a second.
void SortRows(std::vector<std::vector<Cell>>* rows) {
  std::vector<std::vector<Cell>> keys(rows->size());
  for (size_t r = 0; r < rows->size(); ++r) {
    keys[r] = (*rows)[r];
    for (Cell& cell : keys[r]) {
      if (double* x = std::get_if<double>(&cell)) *x = std::stod(fmt::format("{:.9g}", *x));
    }
  }
  std::vector<size_t> order(rows->size());
  for (size_t r = 0; r < order.size(); ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = keys[a];
    const auto& y = keys[b];
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i].index() != y[i].index()) return x[i].index() < y[i].index();
      if (x[i] != y[i]) return x[i] < y[i];
    }
    return false;
  });
  std::vector<std::vector<Cell>> sorted(rows->size());
  for (size_t r = 0; r < order.size(); ++r) sorted[r] = std::move((*rows)[order[r]]);
  *rows = std::move(sorted);
}

::testing::AssertionResult Compare(const Table& expected, const Table& actual, double tolerance,
                                   bool compare_types, bool ordered) {
  if (expected.schema().names() != actual.schema().names()) {
    return ::testing::AssertionFailure()
           << "column names differ: expected [" << expected.schema().ToString() << "], got ["
           << actual.schema().ToString() << "]";
  }
  if (compare_types && !(expected.schema() == actual.schema())) {
    return ::testing::AssertionFailure()
           << "column types differ: expected [" << expected.schema().ToString() << "], got ["
           << actual.schema().ToString() << "]";
  }
  if (expected.num_rows() != actual.num_rows()) {
    return ::testing::AssertionFailure() << "expected " << expected.num_rows() << " rows, got "
                                         << actual.num_rows() << "\nexpected:\n"
                                         << expected.ToString(10) << "actual:\n"
                                         << actual.ToString(10);
  }
  auto want = Rows(expected);
  auto got = Rows(actual);
  if (!ordered) {
    SortRows(&want);
    SortRows(&got);
  }
  for (size_t r = 0; r < want.size(); ++r) {
    for (size_t c = 0; c < want[r].size(); ++c) {
      if (!CellsEqual(want[r][c], got[r][c], tolerance)) {
        std::string w, g;
        for (size_t k = 0; k < want[r].size(); ++k) {
          w += (k ? ", " : "") + CellText(want[r][k]);
          g += (k ? ", " : "") + CellText(got[r][k]);
        }
        return ::testing::AssertionFailure()
               << (ordered ? "row " : "sorted row ") << r << " differs in column '"
               << expected.schema().field(static_cast<int>(c)).name << "':\n  expected (" << w
               << ")\n  actual   (" << g << ")";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult TablesEqualUnordered(const Table& expected, const Table& actual,
                                                double tolerance, bool compare_types) {
  return Compare(expected, actual, tolerance, compare_types, false);
}

::testing::AssertionResult TablesEqualOrdered(const Table& expected, const Table& actual,
                                              double tolerance, bool compare_types) {
  return Compare(expected, actual, tolerance, compare_types, true);
}

}  // namespace deeprc::testing
