#include "deeprc/table/table.h"

#include <algorithm>

#include <fmt/core.h>

namespace deeprc {

std::vector<std::string> Schema::names() const {
  std::vector<std::string> names;
  names.reserve(fields_.size());
  for (const auto& field : fields_) names.push_back(field.name);
  return names;
}

int Schema::FieldIndex(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

Result<int> Schema::GetFieldIndex(std::string_view name) const {
  const int index = FieldIndex(name);
  if (index < 0) {
    std::string known;
    for (const auto& field : fields_) {
      if (!known.empty()) known += ", ";
      known += field.name;
    }
    return Status::KeyError("no column named '{}' (columns: {})", name, known);
  }
  return index;
}

Result<std::vector<int>> Schema::GetFieldIndices(const std::vector<std::string>& names) const {
  std::vector<int> indices;
  indices.reserve(names.size());
  for (const auto& name : names) {
    DEEPRC_ASSIGN_OR_RAISE(int index, GetFieldIndex(name));
    indices.push_back(index);
  }
  return indices;
}

std::string Schema::ToString() const {
  std::string text;
  for (const auto& field : fields_) {
    if (!text.empty()) text += ", ";
    text += field.name + ": " + field.type.ToString();
  }
  return text;
}

Result<Table> Table::Make(Schema schema, std::vector<Column> columns) {
  const int64_t rows = columns.empty() ? 0 : columns[0].length();
  return Make(std::move(schema), std::move(columns), rows);
}

Result<Table> Table::Make(Schema schema, std::vector<Column> columns, int64_t num_rows) {
  if (static_cast<int>(columns.size()) != schema.num_fields()) {
    return Status::Invalid("schema has {} fields but {} columns were given", schema.num_fields(),
                           columns.size());
  }
  for (int i = 0; i < schema.num_fields(); ++i) {
    if (!(columns[i].type() == schema.field(i).type)) {
      return Status::TypeError("column '{}' is declared {} but holds {}", schema.field(i).name,
                               schema.field(i).type.ToString(), columns[i].type().ToString());
    }
    if (columns[i].length() != num_rows) {
      return Status::Invalid("column '{}' has {} rows, expected {}", schema.field(i).name,
                             columns[i].length(), num_rows);
    }
  }
  Table table;
  table.schema_ = std::move(schema);
  table.columns_ = std::move(columns);
  table.num_rows_ = num_rows;
  return table;
}

Table Table::Empty(Schema schema) {
  std::vector<Column> columns;
  for (const auto& field : schema.fields()) {
    columns.push_back(Column::MakeAllNull(field.type, 0).ValueOrDie());
  }
  return Make(std::move(schema), std::move(columns), 0).ValueOrDie();
}

Result<Column> Table::GetColumn(std::string_view name) const {
  DEEPRC_ASSIGN_OR_RAISE(int index, schema_.GetFieldIndex(name));
  return columns_[index];
}

Table Table::Slice(int64_t offset, int64_t length) const {
  offset = std::clamp<int64_t>(offset, 0, num_rows_);
  length = std::clamp<int64_t>(length, 0, num_rows_ - offset);
  Table slice;
  slice.schema_ = schema_;
  slice.num_rows_ = length;
  for (const auto& column : columns_) slice.columns_.push_back(column.Slice(offset, length));
  return slice;
}

Result<Table> Table::SelectColumns(const std::vector<int>& indices) const {
  std::vector<Field> fields;
  std::vector<Column> columns;
  for (int index : indices) {
    if (index < 0 || index >= num_columns()) {
      return Status::Invalid("column index {} out of range (table has {} columns)", index,
                             num_columns());
    }
    fields.push_back(schema_.field(index));
    columns.push_back(columns_[index]);
  }
  return Make(Schema(std::move(fields)), std::move(columns), num_rows_);
}

Result<Table> Table::SelectColumns(const std::vector<std::string>& names) const {
  DEEPRC_ASSIGN_OR_RAISE(auto indices, schema_.GetFieldIndices(names));
  return SelectColumns(indices);
}

Result<Table> Table::RenameColumns(
    const std::vector<std::pair<std::string, std::string>>& renames) const {
  std::vector<Field> fields = schema_.fields();
  for (const auto& [from, to] : renames) {
    DEEPRC_ASSIGN_OR_RAISE(int index, schema_.GetFieldIndex(from));
    fields[index].name = to;
  }
  return Make(Schema(std::move(fields)), columns_, num_rows_);
}

Result<Table> Table::AddColumn(Field field, Column column) const {
  std::vector<Field> fields = schema_.fields();
  std::vector<Column> columns = columns_;
  fields.push_back(std::move(field));
  columns.push_back(std::move(column));
  return Make(Schema(std::move(fields)), std::move(columns), num_rows_);
}

bool Table::Equals(const Table& other) const {
  if (!(schema_ == other.schema_) || num_rows_ != other.num_rows_) return false;
  for (int i = 0; i < num_columns(); ++i) {
    if (!columns_[i].Equals(other.columns_[i])) return false;
  }
  return true;
}

std::string Table::ToString(int64_t max_rows) const {
  std::vector<int64_t> rows;
  const bool cut = num_rows_ > max_rows;
  if (!cut) {
    for (int64_t i = 0; i < num_rows_; ++i) rows.push_back(i);
  } else {
    for (int64_t i = 0; i < max_rows / 2; ++i) rows.push_back(i);
    for (int64_t i = num_rows_ - (max_rows - max_rows / 2); i < num_rows_; ++i) rows.push_back(i);
  }
  const int columns = num_columns();
  std::vector<std::vector<std::string>> cells(columns);
  std::vector<size_t> widths(columns);
  for (int c = 0; c < columns; ++c) {
    cells[c].push_back(schema_.field(c).name);
    cells[c].push_back(schema_.field(c).type.ToString());
    for (int64_t row : rows) cells[c].push_back(columns_[c].FormatValue(row));
    for (const auto& cell : cells[c]) widths[c] = std::max(widths[c], cell.size());
  }
  std::string text;
  auto emit_line = [&](size_t line) {
    for (int c = 0; c < columns; ++c) {
      if (c > 0) text += "  ";
      text += fmt::format("{:<{}}", cells[c][line], widths[c]);
    }
    text += '\n';
  };
  emit_line(0);
  emit_line(1);
  for (size_t r = 0; r < rows.size(); ++r) {
    if (cut && r == static_cast<size_t>(max_rows / 2)) text += "...\n";
    emit_line(r + 2);
  }
  text += fmt::format("[{} rows x {} columns]\n", num_rows_, columns);
  return text;
}

}  // namespace deeprc
