#include "deeprc/table_io.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <string_view>

#include "deeprc/dist/csv.h"
#include "deeprc/dist/partition.h"

namespace deeprc::app {
namespace {

namespace fs = std::filesystem;

std::string Trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return std::string(text);
}

csv::WriteOptions MakeWriteOptions(const TableIoOptions& options) {
  csv::WriteOptions write;
  write.delimiter = options.output_delimiter;
  write.threads = options.threads;
  return write;
}

Result<csv::ReadOptions> MakeReadOptions(const TableIoOptions& options) {
  csv::ReadOptions read;
  read.header = options.header;
  read.delimiter = options.delimiter;
  read.threads = options.threads;
  for (const auto& token : options.null_values) read.null_values.push_back(token);
  for (const auto& item : options.types) {
    const auto colon = item.rfind(':', item.find('['));
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
      return Status::Invalid("--types: expected column:type, found '{}'", item);
    }
    DEEPRC_ASSIGN_OR_RAISE(DataType type, ParseDataType(item.substr(colon + 1)));
    read.column_types[item.substr(0, colon)] = std::move(type);
  }
  return read;
}

Status CheckInputPath(const std::string& path) {
  std::error_code error;
  const auto status = fs::status(path, error);
  if (!fs::exists(status)) return Status::Invalid("input file '{}' does not exist", path);
  if (fs::is_directory(status)) return Status::Invalid("input '{}' is a directory", path);
  return Status::OK();
}

Result<std::string> ReadStandardInput() {
  std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  if (text.size() >= 8 && std::memcmp(text.data(), kTableFileMagic, 8) == 0) {
    return Status::Invalid("binary table files cannot be read from standard input");
  }
  return text;
}

}  // namespace

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  int depth = 0;
  std::string current;
  for (char c : text) {
    if (c == '[' || c == '(') ++depth;
    if ((c == ']' || c == ')') && depth > 0) --depth;
    if (c == ',' && depth == 0) {
      if (auto item = Trimmed(current); !item.empty()) items.push_back(std::move(item));
      current.clear();
    } else {
      current += c;
    }
  }
  if (auto item = Trimmed(current); !item.empty()) items.push_back(std::move(item));
  return items;
}

std::vector<std::string> SplitLists(const std::vector<std::string>& texts) {
  std::vector<std::string> items;
  for (const auto& text : texts) {
    for (auto& item : SplitList(text)) items.push_back(std::move(item));
  }
  return items;
}

Result<char> ParseDelimiter(const std::string& text) {
  if (text == "\\t" || text == "tab" || text == "\t") return '\t';
  if (text.size() != 1) {
    return Status::Invalid("delimiter must be one character (or \\t), found '{}'", text);
  }
  if (text[0] == '"' || text[0] == '\n' || text[0] == '\r') {
    return Status::Invalid("'{}' cannot be the delimiter", text);
  }
  return text[0];
}

TableFormat InputFormat(const std::string& path) {
  return IsTableFile(path) ? TableFormat::kBinary : TableFormat::kCsv;
}

TableFormat OutputFormat(const std::string& path) {
  return fs::path(path).extension() == kTableFileExtension ? TableFormat::kBinary
                                                           : TableFormat::kCsv;
}

Result<Table> LoadTable(const std::string& path, const TableIoOptions& options) {
  if (path == "-") {
    DEEPRC_ASSIGN_OR_RAISE(auto read, MakeReadOptions(options));
    DEEPRC_ASSIGN_OR_RAISE(std::string text, ReadStandardInput());
    return csv::ReadCsvText(text, read, "<stdin>");
  }
  DEEPRC_RETURN_NOT_OK(CheckInputPath(path));
  if (InputFormat(path) == TableFormat::kBinary || OutputFormat(path) == TableFormat::kBinary) {
    TableFileReadOptions read;
    read.threads = options.threads;
    return ReadTableFile(path, read);
  }
  DEEPRC_ASSIGN_OR_RAISE(auto read, MakeReadOptions(options));
  return csv::ReadCsv(path, read);
}

Result<Schema> LoadSchema(const std::string& path, const TableIoOptions& options, int64_t* rows) {
  *rows = -1;
  if (path != "-") {
    DEEPRC_RETURN_NOT_OK(CheckInputPath(path));
    if (InputFormat(path) == TableFormat::kBinary || OutputFormat(path) == TableFormat::kBinary) {
      DEEPRC_ASSIGN_OR_RAISE(TableFileInfo info, ReadTableFileInfo(path));
      *rows = info.num_rows;
      return info.schema;
    }
  }
  // The whole file is read, so that the types are the ones every command would see.
  DEEPRC_ASSIGN_OR_RAISE(Table table, LoadTable(path, options));
  *rows = table.num_rows();
  return table.schema();
}

Status CheckOutputPath(const std::string& path) {
  if (path.empty() || path == "-") return Status::OK();
  const fs::path target(path);
  std::error_code error;
  if (fs::is_directory(target, error)) {
    return Status::Invalid("output '{}' is a directory", path);
  }
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, error)) {
    return Status::Invalid("cannot write '{}': folder '{}' does not exist", path, parent.string());
  }
  return Status::OK();
}

Status SaveTable(const Table& table, const std::string& path, const TableIoOptions& options) {
  const csv::WriteOptions write = MakeWriteOptions(options);
  if (path.empty() || path == "-") {
    DEEPRC_RETURN_NOT_OK(csv::WriteCsv(table, std::cout, write));
    std::cout.flush();
    if (!std::cout) return Status::IOError("writing to standard output failed");
    return Status::OK();
  }
  DEEPRC_RETURN_NOT_OK(CheckOutputPath(path));
  if (OutputFormat(path) == TableFormat::kBinary) {
    TableFileWriteOptions file_options;
    file_options.compression = options.compression;
    file_options.threads = options.threads;
    return WriteTableFile(table, path, file_options);
  }
  return csv::WriteCsv(table, path, write);
}

Status AgreeAcrossRanks(comm::Communicator& comm, const Status& local) {
  const int64_t mine = local.ok() ? comm.size() : comm.rank();
  DEEPRC_ASSIGN_OR_RAISE(const int64_t first,
                         comm::AllReduceValue<int64_t>(comm, mine, comm::ReduceOp::kMin));
  if (first == comm.size()) return Status::OK();
  // The failing rank sends its code (one byte) and message.
  comm::BufferPtr data;
  if (comm.rank() == first) {
    const std::string& message = local.message();
    DEEPRC_ASSIGN_OR_RAISE(data, Buffer::Allocate(static_cast<int64_t>(message.size()) + 1));
    data->mutable_data()[0] = static_cast<uint8_t>(local.code());
    std::memcpy(data->mutable_data() + 1, message.data(), message.size());
  }
  DEEPRC_RETURN_NOT_OK(comm.Broadcast(static_cast<int>(first), &data));
  if (data == nullptr || data->size() < 1) {
    return Status::Internal("rank {} failed, but its error did not arrive", first);
  }
  const auto* bytes = data->data();
  return Status(static_cast<StatusCode>(bytes[0]),
                std::string(reinterpret_cast<const char*>(bytes) + 1,
                            static_cast<size_t>(data->size() - 1)));
}

Result<Table> LoadTablePart(comm::Communicator& comm, const std::string& path,
                            const TableIoOptions& options) {
  // Every rank sees the same path and options, so these checks agree without a collective.
  if (path == "-") {
    return Status::Invalid("standard input cannot be read with --ranks (give a file)");
  }
  DEEPRC_RETURN_NOT_OK(CheckInputPath(path));
  if (InputFormat(path) == TableFormat::kBinary || OutputFormat(path) == TableFormat::kBinary) {
    TableFileReadOptions read;
    read.threads = options.threads;
    Result<Table> whole = ReadTableFile(path, read);  // mapped: the slice touches only its pages
    DEEPRC_RETURN_NOT_OK(AgreeAcrossRanks(comm, whole.status()));
    const auto counts = dist::EvenCounts(whole->num_rows(), comm.size());
    int64_t offset = 0;
    for (int r = 0; r < comm.rank(); ++r) offset += counts[r];
    return whole->Slice(offset, counts[comm.rank()]);
  }
  DEEPRC_ASSIGN_OR_RAISE(auto read, MakeReadOptions(options));
  return dist::ReadCsv(comm, path, read);
}

Status SaveTableParts(comm::Communicator& comm, const Table& part, const std::string& path,
                      const TableIoOptions& options) {
  DEEPRC_RETURN_NOT_OK(CheckOutputPath(path));
  const bool to_stdout = path.empty() || path == "-";
  if (!to_stdout && OutputFormat(path) == TableFormat::kCsv) {
    return dist::WriteCsv(comm, part, path, MakeWriteOptions(options));
  }
  comm::ExchangeOptions exchange;
  exchange.threads = options.threads;
  DEEPRC_ASSIGN_OR_RAISE(Table whole, dist::Gather(comm, part, /*root=*/0, exchange));
  Status written;
  if (comm.rank() == 0) written = SaveTable(whole, path, options);
  return AgreeAcrossRanks(comm, written);
}

}  // namespace deeprc::app
