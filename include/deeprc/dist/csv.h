#pragma once

// Distributed CSV: every rank reads a part of the input, all with the same schema, and writes its
// partition. Collectives: all ranks call them with the same arguments. Files are on a file system
// every rank sees (one machine, or a shared file system). An error on any rank (a bad value, a
// missing file) is returned by every rank, with the message of the lowest failing rank (file,
// line and column as the local reader names them); no rank is left waiting.

#include <string>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

// One file, cut into size() byte ranges of about equal size (of options' range, or of the whole
// file); rank r parses only range r (a row belongs to the range holding its first byte; the
// header is read from the start of the file by every rank and is data of no range).
// Types: columns in options.column_types are fixed; the others are inferred per range and then
// joined across ranks exactly as the local reader joins its blocks (int64 with float64 gives
// float64, date32 with timestamp gives timestamp, other mixes give string; ranges where a column
// is all null do not count), and ranks whose types differ read their range again with the joined
// types. So the ranks' tables, concatenated in rank order, equal csv::ReadCsv of the file.
Result<Table> ReadCsv(comm::Communicator& comm, const std::string& path,
                      const csv::ReadOptions& options = {});

enum class FileAssignment : uint8_t {
  kRoundRobin,  // file i (in list order) to rank i % size()
  kBySize,  // largest first to the rank with the fewest bytes so far; a rank's files in list order
};

// Several files, each read whole by one rank. An entry with *, ? or [ is a glob pattern,
// expanded (sorted) on rank 0; a pattern that matches nothing is an error. Every file must have
// the same column names in the same order; types are joined across files as in ReadCsv above
// (files whose types differ are read again). A rank without a file returns an empty table of the
// joined schema. With kRoundRobin, the ranks' tables taken in the order (file 0's rows, file 1's
// rows, ...) equal the local reads.
Result<Table> ReadCsvFiles(comm::Communicator& comm, const std::vector<std::string>& paths,
                           const csv::ReadOptions& options = {},
                           FileAssignment assignment = FileAssignment::kRoundRobin);

// `pattern` with every "{rank}" replaced by the rank; without "{rank}", "_<rank>" goes before the
// extension (data.csv -> data_0.csv, data_1.csv, ...).
std::string RankFileName(const std::string& pattern, int rank);

// Each rank writes its partition to RankFileName(pattern, rank) (atomically: a temporary name,
// renamed when complete). Every file has the header (if options.header).
Status WriteCsvPerRank(comm::Communicator& comm, const Table& table, const std::string& pattern,
                       const csv::WriteOptions& options = {});

// One file holding the partitions in rank order (the header once, from rank 0): each rank
// formats its rows in memory, the byte counts are scanned, rank 0 creates a temporary file of
// the total size beside `path`, every rank writes its bytes at its offset, and after all have
// written rank 0 renames it to `path`. On any failure the temporary file is removed and `path`
// is left as it was.
Status WriteCsv(comm::Communicator& comm, const Table& table, const std::string& path,
                const csv::WriteOptions& options = {});

}  // namespace deeprc::dist
