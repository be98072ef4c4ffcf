#pragma once

// Zero-copy exchange of columns and tables with any Arrow implementation (pyarrow, Arrow C++,
// DuckDB, Polars, nanoarrow) through the Arrow C data interface.

#include <cstdint>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

// The two structs exactly as the Arrow C data interface specification defines them; the guard
// lets this header live next to other copies of the same definitions.
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

extern "C" {

struct ArrowSchema {
  // Array type description
  const char* format;
  const char* name;
  const char* metadata;
  int64_t flags;
  int64_t n_children;
  struct ArrowSchema** children;
  struct ArrowSchema* dictionary;

  // Release callback
  void (*release)(struct ArrowSchema*);
  // Opaque producer-specific data
  void* private_data;
};

struct ArrowArray {
  // Array data description
  int64_t length;
  int64_t null_count;
  int64_t offset;
  int64_t n_buffers;
  int64_t n_children;
  const void** buffers;
  struct ArrowArray** children;
  struct ArrowArray* dictionary;

  // Release callback
  void (*release)(struct ArrowArray*);
  // Opaque producer-specific data
  void* private_data;
};

}  // extern "C"

#endif  // ARROW_C_DATA_INTERFACE

namespace deeprc::arrow {

// Type mapping (format strings of the specification):
//   bool b, int8 c, uint8 C, int16 s, uint16 S, int32 i, uint32 I, int64 l, uint64 L,
//   float32 f, float64 g, string U (large utf8: 64-bit offsets), date32 tdD,
//   timestamp tss: / tsm: / tsu: / tsn: followed by the time zone (empty: no zone).
// Import also accepts u (utf8 with 32-bit offsets), converted to 64-bit offsets (the bytes are
// not copied). A table travels as a struct array ("+s") with one child per column.

// The format string of a type ("l", "tsm:UTC", ...).
std::string FormatString(const DataType& type);
// The type of a format string; NotImplemented naming the format when deeprc has no such type.
Result<DataType> TypeFromFormat(const char* format);

// Exports without copying: the Arrow buffers point into the column's buffers, which stay alive
// until the consumer calls release. `out` and `out_schema` are written (they need not be
// initialized); the consumer owns both afterwards and must call their release callbacks.
// `name` becomes the schema's name.
Status ExportColumn(const Column& column, ArrowArray* out, ArrowSchema* out_schema,
                    const std::string& name = "");
Status ExportType(const DataType& type, ArrowSchema* out, const std::string& name = "");
// A struct array with one child per column; a slice's row offset is passed through (the
// children carry their own offsets).
Status ExportTable(const Table& table, ArrowArray* out, ArrowSchema* out_schema);
Status ExportSchema(const Schema& schema, ArrowSchema* out);

// Imports without copying (except for "u" offsets, widened to 64 bits, and buffers that are not
// aligned for their value type, which are copied). Ownership of `array` moves into the result:
// its release is set to null at once, and the producer's release runs exactly once, when the last
// deeprc buffer that refers to its memory is destroyed. The schema is only read; the caller
// still owns and releases it. On error the array is released as well (the consumer owned it).
Result<Column> ImportColumn(ArrowArray* array, const ArrowSchema* schema);
// `array` and `schema` describe a struct array ("+s") without top-level nulls.
Result<Table> ImportTable(ArrowArray* array, const ArrowSchema* schema);
Result<Schema> ImportSchema(const ArrowSchema* schema);

}  // namespace deeprc::arrow
