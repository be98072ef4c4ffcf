#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/column.h"

namespace deeprc {

struct Field {
  std::string name;
  DataType type;

  bool operator==(const Field& other) const { return name == other.name && type == other.type; }
};

class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<Field> fields) : fields_(std::move(fields)) {}

  int num_fields() const { return static_cast<int>(fields_.size()); }
  const Field& field(int i) const { return fields_[i]; }
  const std::vector<Field>& fields() const { return fields_; }
  std::vector<std::string> names() const;

  // -1 when there is no such field; the first one when names repeat.
  int FieldIndex(std::string_view name) const;
  // A KeyError naming the field and the fields that exist.
  Result<int> GetFieldIndex(std::string_view name) const;
  Result<std::vector<int>> GetFieldIndices(const std::vector<std::string>& names) const;

  bool operator==(const Schema& other) const { return fields_ == other.fields_; }
  // "a: int64, b: string"
  std::string ToString() const;

 private:
  std::vector<Field> fields_;
};

// An immutable table: a schema and one column per field, all of the same length.
class Table {
 public:
  Table() = default;

  // Checks that types and lengths agree.
  static Result<Table> Make(Schema schema, std::vector<Column> columns);
  // With an explicit row count (needed for tables without columns).
  static Result<Table> Make(Schema schema, std::vector<Column> columns, int64_t num_rows);
  static Table Empty(Schema schema);

  const Schema& schema() const { return schema_; }
  int num_columns() const { return static_cast<int>(columns_.size()); }
  int64_t num_rows() const { return num_rows_; }
  const Column& column(int i) const { return columns_[i]; }
  const std::vector<Column>& columns() const { return columns_; }
  Result<Column> GetColumn(std::string_view name) const;

  // Zero-copy rows [offset, offset + length), clamped to the table.
  Table Slice(int64_t offset, int64_t length) const;
  Result<Table> SelectColumns(const std::vector<int>& indices) const;
  Result<Table> SelectColumns(const std::vector<std::string>& names) const;
  // Renames by (old, new) pairs.
  Result<Table> RenameColumns(const std::vector<std::pair<std::string, std::string>>& renames) const;
  Result<Table> AddColumn(Field field, Column column) const;

  // Same schema and the same rows in the same order.
  bool Equals(const Table& other) const;

  // Aligned text with the schema and up to max_rows rows (head and tail when longer).
  std::string ToString(int64_t max_rows = 20) const;

 private:
  Schema schema_;
  std::vector<Column> columns_;
  int64_t num_rows_ = 0;
};

}  // namespace deeprc
