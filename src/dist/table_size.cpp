#include "table_size_internal.h"

namespace deeprc::dist {

int64_t TableBytes(const Table& table) {
  const int64_t rows = table.num_rows();
  int64_t bytes = 0;
  for (const Column& column : table.columns()) {
    if (column.has_nulls()) bytes += (rows + 7) / 8;
    switch (column.type_id()) {
      case TypeId::kBool:
        bytes += (rows + 7) / 8;
        break;
      case TypeId::kString:
        bytes += 8 * (rows + 1);
        if (rows > 0) bytes += column.StringOffsets()[rows] - column.StringOffsets()[0];
        break;
      default:
        bytes += rows * ByteWidth(column.type_id());
        break;
    }
  }
  return bytes;
}

}  // namespace deeprc::dist
