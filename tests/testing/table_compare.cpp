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

// Order for sorting rows: floats compared after rounding to 9 significant digits, so that
// values within tolerance usually sort alike.
bool RowLess(const std::vector<Cell>& a, const std::vector<Cell>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].index() != b[i].index()) return a[i].index() < b[i].index();
    if (const double* x = std::get_if<double>(&a[i])) {
      const double rx = std::stod(fmt::format("{:.9g}", *x));
      const double ry = std::stod(fmt::format("{:.9g}", std::get<double>(b[i])));
      if (rx != ry) return rx < ry;
    } else if (a[i] != b[i]) {
      return a[i] < b[i];
    }
  }
  return false;
}

::testing::AssertionResult Compare(const Table& expected, const Table& actual, double tolerance,
                                   bool compare_types, bool ordered) {
  if (expected.schema().names() != actual.schema().names()) {
    return ::testing::AssertionFailure() << "column names differ: expected ["
                                         << expected.schema().ToString() << "], got ["
                                         << actual.schema().ToString() << "]";
  }
  if (compare_types && !(expected.schema() == actual.schema())) {
    return ::testing::AssertionFailure() << "column types differ: expected ["
                                         << expected.schema().ToString() << "], got ["
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
    std::stable_sort(want.begin(), want.end(), RowLess);
    std::stable_sort(got.begin(), got.end(), RowLess);
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
