#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::csv {

struct ReadOptions {
  // The first (non-skipped) line names the columns. Without a header, columns are named by
  // `column_names` or f0, f1, ...
  bool header = true;
  char delimiter = ',';
  char quote = '"';
  // Fields equal to one of these (unquoted) are null. An empty unquoted field is always null for
  // non-string columns; for string columns only when "" is in the list.
  std::vector<std::string> null_values = {"", "NA", "N/A", "NaN", "nan", "null", "NULL"};
  // Replace or supply the column names.
  std::vector<std::string> column_names;
  // Types by column name, overriding inference.
  std::map<std::string, DataType> column_types;
  // Read only these columns, in this order (empty: all).
  std::vector<std::string> include_columns;
  // Lines skipped at the start of the file, before the header. These are physical lines (quotes
  // are not looked at); a UTF-8 byte order mark is skipped before them.
  int64_t skip_rows = 0;
  // Byte range [range_begin, range_end) of the file (range_end < 0: to the end). A row belongs to
  // the range in which its first byte lies, so that ranges that tile the file read every row
  // exactly once. The header (if any) is always taken from the start of the file.
  int64_t range_begin = 0;
  int64_t range_end = -1;
  // The parity (0 or 1) of the number of quote characters in the file's bytes [0, range_begin),
  // when the caller knows it; -1: the reader counts them, which reads every byte before the
  // range. (dist::ReadCsv counts each rank's range and scans the counts, so that no rank reads
  // the bytes before its range.) A wrong value misplaces row starts.
  int quote_parity_before_range = -1;
  // Parser threads (0: DefaultThreadCount()) and the size of the blocks handed to them.
  int threads = 0;
  int64_t block_size = int64_t{4} << 20;
  // Number of rows looked at to infer types (-1: all rows; inference never fails: a column that
  // does not parse as a number, bool, date or timestamp everywhere is string).
  // Inference picks the first of int64, float64, bool (true/false in any letter case), date32
  // (YYYY-MM-DD), timestamp[us] (ISO 8601; zone offsets are applied, giving UTC) that every
  // non-null value of the column parses as, else string. A column of only nulls is string.
  // With inference_rows >= 0 the types come from the first rows of the file, and a later value
  // that does not fit is an error. With a byte range and inference_rows < 0, types come from the
  // range's rows: give the same column_types to every range (see InferSchema).
  int64_t inference_rows = -1;
};

// Reads a CSV file. Errors name the file, line, column and expected type, e.g.
// "data.csv:17: column 'price' (3): expected float64, found 'abc'": the line is the physical
// line of the file (1-based, counting skipped lines, the header and newlines inside quotes), the
// number after the column name its 1-based position in the file.
//
// Quoting follows RFC 4180 strictly: a field is quoted only when the quote is its first byte;
// inside, a doubled quote stands for one quote, and delimiters and line ends are data. A quote
// inside an unquoted field, or anything but the delimiter or a line end after a closing quote, is
// an error (this keeps row starts findable in parallel from quote parity). Lines end with LF or
// CRLF; blank lines are skipped, except in a file of one column, where a blank line is a row with
// an empty field (so that nulls written by WriteCsv read back); the last line needs no line end.
Result<Table> ReadCsv(const std::string& path, const ReadOptions& options = {});
// The same on text held in memory; `name` stands for the file in messages.
Result<Table> ReadCsvText(std::string_view text, const ReadOptions& options = {},
                          std::string_view name = "<text>");
// The schema ReadCsv would produce, from a sample of the file (for distributed reads, where every
// rank must use the same types).
Result<Schema> InferSchema(const std::string& path, const ReadOptions& options = {});

struct WriteOptions {
  bool header = true;
  char delimiter = ',';
  // Written for nulls.
  std::string null_value;
  int threads = 0;
};

// Writes to path atomically: a temporary file in the same folder, renamed when complete.
Status WriteCsv(const Table& table, const std::string& path, const WriteOptions& options = {});
Status WriteCsv(const Table& table, std::ostream& out, const WriteOptions& options = {});

}  // namespace deeprc::csv
