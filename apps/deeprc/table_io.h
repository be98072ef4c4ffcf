#pragma once

// Reading and writing the tables of the `deeprc table` command: CSV or the binary table file,
// chosen by the file's magic bytes (input) or extension (output); "-" is standard input/output.

#include <string>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/result.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/table.h"
#include "deeprc/table/table_file.h"

namespace deeprc::app {

struct TableIoOptions {
  int threads = 0;
  char delimiter = ',';
  char output_delimiter = ',';
  bool header = true;
  // Extra tokens read as null, besides the CSV reader's defaults.
  std::vector<std::string> null_values;
  // "col:type" overrides for CSV inference.
  std::vector<std::string> types;
  TableFileCompression compression = TableFileCompression::kNone;
};

// Splits "a,b,c" at commas that are not inside brackets or parentheses (so that
// "t:timestamp[ms, UTC]" and "v:quantile(0.9)" stay whole); trims spaces; drops empty items.
std::vector<std::string> SplitList(const std::string& text);
std::vector<std::string> SplitLists(const std::vector<std::string>& texts);

// Parses a delimiter option: one character, or "\t" / "tab".
Result<char> ParseDelimiter(const std::string& text);

enum class TableFormat { kCsv, kBinary };
// Binary when the file starts with the table-file magic, else CSV.
TableFormat InputFormat(const std::string& path);
// Binary for the .drt extension, else CSV.
TableFormat OutputFormat(const std::string& path);

// Errors are user errors (Invalid) when the file is missing or its content is bad.
Result<Table> LoadTable(const std::string& path, const TableIoOptions& options);
Result<Schema> LoadSchema(const std::string& path, const TableIoOptions& options,
                          int64_t* rows);
// Checks, before any work is done, that the output can be written where asked.
Status CheckOutputPath(const std::string& path);
// Atomic for files (temporary name, renamed when complete); "-" or "" writes CSV to stdout.
Status SaveTable(const Table& table, const std::string& path, const TableIoOptions& options);

// The ranks of `deeprc table ... --ranks N` (one process per rank, started by the command itself
// through comm::LaunchRanks). Every function below is a collective: all ranks call it with the
// same arguments, and an error on any rank is returned by every rank (the message of the lowest
// failing rank), so that no rank waits in a collective its peers never reach.

// Collective. OK everywhere when `local` is OK on every rank; else the status of the lowest
// failing rank, on every rank.
Status AgreeAcrossRanks(comm::Communicator& comm, const Status& local);

// This rank's part of the input: CSV is cut into byte ranges, one per rank (dist/csv.h: the
// types are joined across ranks, so the parts concatenated in rank order are LoadTable's table);
// a binary table file is memory-mapped and each rank keeps an even slice of its rows. Standard
// input cannot be split between ranks and is refused.
Result<Table> LoadTablePart(comm::Communicator& comm, const std::string& path,
                            const TableIoOptions& options);
// One output like SaveTable's, holding the parts in rank order: CSV files are written by all
// ranks at their offsets in one file (renamed when complete); .drt files and standard output
// are written by rank 0 from the gathered parts.
Status SaveTableParts(comm::Communicator& comm, const Table& part, const std::string& path,
                      const TableIoOptions& options);

}  // namespace deeprc::app
