// Distributed CSV read and write (see dist/csv.h).
//
// Reading: every rank parses its part with the local reader, then the ranks agree on the types:
// each sends (name, type, all null?) per column of each part it read, every rank joins them the
// same way, and a rank whose part came out with other types reads it again with the joined
// types given as overrides. Inference never fails locally, so only an inconsistent part is read
// twice — and then only by the ranks that hold one.
#include "deeprc/dist/csv.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "deeprc/compute/selection.h"
#include "rank_agreement.h"

namespace deeprc::dist {
namespace {

struct ColumnInfo {
  std::string name;
  DataType type;
  bool all_null = false;
};
using PartInfo = std::vector<ColumnInfo>;

PartInfo InfoOf(const Table& table) {
  PartInfo info;
  for (int c = 0; c < table.num_columns(); ++c) {
    const Column& column = table.column(c);
    info.push_back(
        {table.schema().field(c).name, column.type(), column.null_count() == column.length()});
  }
  return info;
}

void PutU32(std::string* out, uint32_t value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}
void PutText(std::string* out, std::string_view text) {
  PutU32(out, static_cast<uint32_t>(text.size()));
  out->append(text);
}

// Parts as (index, columns); the index says which part (file) it is.
std::string EncodeParts(const std::vector<std::pair<int64_t, PartInfo>>& parts) {
  std::string out;
  PutU32(&out, static_cast<uint32_t>(parts.size()));
  for (const auto& [index, info] : parts) {
    out.append(reinterpret_cast<const char*>(&index), sizeof(index));
    PutU32(&out, static_cast<uint32_t>(info.size()));
    for (const auto& column : info) {
      out.push_back(static_cast<char>(column.type.id));
      out.push_back(static_cast<char>(column.type.unit));
      out.push_back(column.all_null ? 1 : 0);
      PutText(&out, column.name);
      PutText(&out, column.type.timezone);
    }
  }
  return out;
}

class Decoder {
 public:
  explicit Decoder(std::string_view data) : data_(data) {}
  bool Read(void* out, size_t size) {
    if (data_.size() - at_ < size) return false;
    std::memcpy(out, data_.data() + at_, size);
    at_ += size;
    return true;
  }
  bool ReadText(std::string* out) {
    uint32_t size = 0;
    if (!Read(&size, sizeof(size)) || data_.size() - at_ < size) return false;
    out->assign(data_.substr(at_, size));
    at_ += size;
    return true;
  }

 private:
  std::string_view data_;
  size_t at_ = 0;
};

Result<std::vector<std::pair<int64_t, PartInfo>>> DecodeParts(std::string_view data) {
  Decoder in(data);
  uint32_t parts = 0;
  std::vector<std::pair<int64_t, PartInfo>> out;
  bool ok = in.Read(&parts, sizeof(parts));
  for (uint32_t p = 0; ok && p < parts; ++p) {
    int64_t index = 0;
    uint32_t columns = 0;
    ok = in.Read(&index, sizeof(index)) && in.Read(&columns, sizeof(columns));
    PartInfo info(ok ? columns : 0);
    for (auto& column : info) {
      uint8_t bytes[3] = {0, 0, 0};
      ok = ok && in.Read(bytes, 3) && in.ReadText(&column.name) &&
           in.ReadText(&column.type.timezone);
      column.type.id = static_cast<TypeId>(bytes[0]);
      column.type.unit = static_cast<TimeUnit>(bytes[1]);
      column.all_null = bytes[2] != 0;
    }
    out.emplace_back(index, std::move(info));
  }
  if (!ok) return Status::Internal("malformed column types from another rank");
  return out;
}

// The types the local reader could have read a column of type `type` as, as in its candidate
// sets: an int64 column's values are all floats too, a date32 column's all timestamps.
enum : uint8_t { kInt = 1, kFloat = 2, kBool = 4, kDate = 8, kTimestamp = 16 };
uint8_t CandidatesOf(const DataType& type) {
  switch (type.id) {
    case TypeId::kInt64:
      return kInt | kFloat;
    case TypeId::kFloat64:
      return kFloat;
    case TypeId::kBool:
      return kBool;
    case TypeId::kDate32:
      return kDate | kTimestamp;
    case TypeId::kTimestamp:
      return kTimestamp;
    default:
      return 0;
  }
}

// The joined type of one column over all parts: the type every part has if they agree (parts
// of all nulls included), else the first type in inference order that every part with a value
// fits, else string.
DataType JoinTypes(const std::vector<const ColumnInfo*>& columns) {
  bool same = true;
  for (const auto* column : columns) same = same && column->type == columns[0]->type;
  if (same && !columns.empty()) return columns[0]->type;
  uint8_t candidates = 0xff;
  bool seen = false;
  const DataType* timestamp = nullptr;
  for (const auto* column : columns) {
    if (column->all_null) continue;
    seen = true;
    candidates &= CandidatesOf(column->type);
    if (column->type.id == TypeId::kTimestamp && timestamp == nullptr) timestamp = &column->type;
  }
  if (!seen) return DataType::String();
  if (candidates & kInt) return DataType::Int64();
  if (candidates & kFloat) return DataType::Float64();
  if (candidates & kBool) return DataType::Bool();
  if (candidates & kDate) return DataType::Date32();
  if (candidates & kTimestamp)
    return timestamp ? *timestamp : DataType::Timestamp(TimeUnit::kMicro);
  return DataType::String();
}

// Joined schema of all parts of all ranks; names must agree (`describe(index)` names a part).
template <typename Describe>
Result<Schema> JoinParts(const std::vector<std::pair<int64_t, PartInfo>>& parts,
                         Describe describe) {
  if (parts.empty()) return Status::Invalid("no parts to read");
  const PartInfo& first = parts[0].second;
  for (const auto& [index, info] : parts) {
    bool same = info.size() == first.size();
    for (size_t c = 0; same && c < info.size(); ++c) same = info[c].name == first[c].name;
    if (!same) {
      auto names = [](const PartInfo& part) {
        std::string out;
        for (const auto& column : part) out += (out.empty() ? "" : ", ") + column.name;
        return out;
      };
      return Status::Invalid("{} has the columns [{}], but {} has [{}]", describe(index),
                             names(info), describe(parts[0].first), names(first));
    }
  }
  std::vector<Field> fields;
  for (size_t c = 0; c < first.size(); ++c) {
    std::vector<const ColumnInfo*> columns;
    for (const auto& part : parts) columns.push_back(&part.second[c]);
    fields.push_back({first[c].name, JoinTypes(columns)});
  }
  return Schema(std::move(fields));
}

// Every rank's parts, gathered and decoded, in rank order.
Result<std::vector<std::pair<int64_t, PartInfo>>> GatherParts(
    comm::Communicator& comm, const std::vector<std::pair<int64_t, PartInfo>>& mine) {
  DEEPRC_ASSIGN_OR_RAISE(auto encoded, internal::AllGatherStrings(comm, EncodeParts(mine)));
  std::vector<std::pair<int64_t, PartInfo>> all;
  for (const auto& text : encoded) {
    DEEPRC_ASSIGN_OR_RAISE(auto parts, DecodeParts(text));
    for (auto& part : parts) all.push_back(std::move(part));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return all;
}

bool HasSchema(const Table& table, const Schema& schema) {
  if (table.num_columns() != schema.num_fields()) return false;
  for (int c = 0; c < table.num_columns(); ++c) {
    if (!(table.column(c).type() == schema.field(c).type)) return false;
  }
  return true;
}

csv::ReadOptions WithTypes(csv::ReadOptions options, const Schema& schema) {
  for (const auto& field : schema.fields()) options.column_types[field.name] = field.type;
  return options;
}

Result<int64_t> FileSize(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    return Status::IOError("{}: {}", path, std::strerror(errno));
  }
  return static_cast<int64_t>(info.st_size);
}

bool IsPattern(const std::string& path) { return path.find_first_of("*?[") != std::string::npos; }

Result<std::vector<std::string>> ExpandPaths(const std::vector<std::string>& entries) {
  std::vector<std::string> paths;
  for (const auto& entry : entries) {
    if (!IsPattern(entry)) {
      paths.push_back(entry);
      continue;
    }
    glob_t matches{};
    const int code = ::glob(entry.c_str(), 0, nullptr, &matches);
    if (code == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
    }
    ::globfree(&matches);
    if (code == GLOB_NOMATCH) return Status::IOError("{}: no file matches", entry);
    if (code != 0) return Status::IOError("{}: cannot expand the pattern", entry);
  }
  if (paths.empty()) return Status::Invalid("read csv: no files given");
  return paths;
}

Result<Table> ConcatenateOrEmpty(std::vector<Table> tables, const Schema& schema, int threads) {
  std::vector<Table> nonempty;
  for (auto& table : tables) {
    if (table.num_rows() > 0) nonempty.push_back(std::move(table));
  }
  if (nonempty.empty()) return Table::Empty(schema);
  if (nonempty.size() == 1) return nonempty[0];
  return compute::Concatenate(nonempty, threads);
}

}  // namespace

Result<Table> ReadCsv(comm::Communicator& comm, const std::string& path,
                      const csv::ReadOptions& options) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  // The range every rank splits: rank 0's view of the file size decides.
  Result<int64_t> size = FileSize(path);
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, size.status()));
  DEEPRC_ASSIGN_OR_RAISE(auto sizes, internal::AllGatherInts(comm, {*size}));
  const int64_t file_size = sizes[0][0];
  const int64_t begin = std::min(std::max<int64_t>(0, options.range_begin), file_size);
  const int64_t end =
      options.range_end < 0 ? file_size : std::max(begin, std::min(options.range_end, file_size));
  csv::ReadOptions mine = options;
  mine.range_begin = begin + (end - begin) * rank / ranks;
  mine.range_end = begin + (end - begin) * (rank + 1) / ranks;

  Result<Table> read = csv::ReadCsv(path, mine);
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, read.status()));
  Table table = read.MoveValueUnsafe();
  if (ranks == 1) return table;

  DEEPRC_ASSIGN_OR_RAISE(auto parts, GatherParts(comm, {{rank, InfoOf(table)}}));
  DEEPRC_ASSIGN_OR_RAISE(Schema schema, JoinParts(parts, [&](int64_t r) {
                           return path + " (range of rank " + std::to_string(r) + ")";
                         }));
  const bool again = !HasSchema(table, schema);
  Status status;
  if (again) {
    read = csv::ReadCsv(path, WithTypes(mine, schema));
    status = read.status();
  }
  // Only the ranks whose types differed read again, but every rank learns how it went.
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, status));
  if (again) table = read.MoveValueUnsafe();
  return table;
}

Result<Table> ReadCsvFiles(comm::Communicator& comm, const std::vector<std::string>& entries,
                           const csv::ReadOptions& options, FileAssignment assignment) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  // Rank 0 expands the patterns and measures the files; every rank gets the list.
  std::string listing;
  Status listed;
  if (rank == 0) {
    listed = [&]() -> Status {
      DEEPRC_ASSIGN_OR_RAISE(auto paths, ExpandPaths(entries));
      PutU32(&listing, static_cast<uint32_t>(paths.size()));
      for (const auto& path : paths) {
        int64_t size = 0;
        if (assignment == FileAssignment::kBySize) {
          DEEPRC_ASSIGN_OR_RAISE(size, FileSize(path));
        }
        PutText(&listing, path);
        listing.append(reinterpret_cast<const char*>(&size), sizeof(size));
      }
      return Status::OK();
    }();
  }
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, listed));
  DEEPRC_ASSIGN_OR_RAISE(listing, internal::BroadcastString(comm, 0, listing));
  std::vector<std::string> paths;
  std::vector<int64_t> sizes;
  {
    Decoder in(listing);
    uint32_t count = 0;
    bool ok = in.Read(&count, sizeof(count));
    paths.resize(ok ? count : 0);
    sizes.resize(paths.size());
    for (size_t i = 0; ok && i < paths.size(); ++i) {
      ok = in.ReadText(&paths[i]) && in.Read(&sizes[i], sizeof(int64_t));
    }
    if (!ok) return Status::Internal("malformed file list from rank 0");
  }

  // Which files this rank reads, in list order.
  std::vector<int64_t> owner(paths.size());
  if (assignment == FileAssignment::kRoundRobin) {
    for (size_t i = 0; i < paths.size(); ++i) owner[i] = static_cast<int64_t>(i % ranks);
  } else {
    std::vector<size_t> order(paths.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
    std::vector<int64_t> load(ranks, 0);
    for (size_t i : order) {
      const auto least = std::min_element(load.begin(), load.end()) - load.begin();
      owner[i] = least;
      load[least] += sizes[i];
    }
  }
  csv::ReadOptions whole = options;
  whole.range_begin = 0;
  whole.range_end = -1;
  std::vector<int64_t> my_files;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (owner[i] == rank) my_files.push_back(static_cast<int64_t>(i));
  }
  std::vector<Table> tables;
  Status status;
  for (int64_t i : my_files) {
    Result<Table> read = csv::ReadCsv(paths[i], whole);
    if (!read.ok()) {
      status = read.status();
      break;
    }
    tables.push_back(read.MoveValueUnsafe());
  }
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, status));

  std::vector<std::pair<int64_t, PartInfo>> mine;
  for (size_t k = 0; k < my_files.size(); ++k) mine.emplace_back(my_files[k], InfoOf(tables[k]));
  DEEPRC_ASSIGN_OR_RAISE(auto parts, GatherParts(comm, mine));
  DEEPRC_ASSIGN_OR_RAISE(Schema schema, JoinParts(parts, [&](int64_t i) { return paths[i]; }));
  for (size_t k = 0; k < my_files.size() && status.ok(); ++k) {
    if (HasSchema(tables[k], schema)) continue;
    Result<Table> read = csv::ReadCsv(paths[my_files[k]], WithTypes(whole, schema));
    status = read.status();
    if (read.ok()) tables[k] = read.MoveValueUnsafe();
  }
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, status));
  return ConcatenateOrEmpty(std::move(tables), schema, options.threads);
}

std::string RankFileName(const std::string& pattern, int rank) {
  const std::string number = std::to_string(rank);
  const std::string marker = "{rank}";
  if (pattern.find(marker) != std::string::npos) {
    std::string out = pattern;
    for (size_t at = out.find(marker); at != std::string::npos;
         at = out.find(marker, at + number.size())) {
      out.replace(at, marker.size(), number);
    }
    return out;
  }
  const size_t slash = pattern.rfind('/');
  const size_t dot = pattern.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) ||
      dot == (slash == std::string::npos ? 0 : slash + 1)) {
    return pattern + "_" + number;
  }
  return pattern.substr(0, dot) + "_" + number + pattern.substr(dot);
}

Status WriteCsvPerRank(comm::Communicator& comm, const Table& table, const std::string& pattern,
                       const csv::WriteOptions& options) {
  return internal::AgreeOnStatus(comm,
                                 csv::WriteCsv(table, RankFileName(pattern, comm.rank()), options));
}

namespace {

Status WriteAt(const std::string& path, const std::string& bytes, int64_t offset) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("{}: {}", path, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t wrote =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      const int error = errno;
      ::close(fd);
      return Status::IOError("{}: write failed: {}", path, std::strerror(error));
    }
    done += static_cast<size_t>(wrote);
  }
  if (::close(fd) != 0) return Status::IOError("{}: {}", path, std::strerror(errno));
  return Status::OK();
}

}  // namespace

Status WriteCsv(comm::Communicator& comm, const Table& table, const std::string& path,
                const csv::WriteOptions& options) {
  const int rank = comm.rank();
  // This rank's bytes (the header only in rank 0's).
  std::ostringstream formatted;
  csv::WriteOptions mine = options;
  mine.header = options.header && rank == 0;
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, csv::WriteCsv(table, formatted, mine)));
  const std::string bytes = std::move(formatted).str();
  DEEPRC_ASSIGN_OR_RAISE(auto sizes,
                         internal::AllGatherInts(comm, {static_cast<int64_t>(bytes.size())}));
  int64_t offset = 0;
  int64_t total = 0;
  for (int r = 0; r < static_cast<int>(sizes.size()); ++r) {
    if (r < rank) offset += sizes[r][0];
    total += sizes[r][0];
  }

  // Rank 0 makes the temporary file at its full size and names it for the others.
  std::string temporary;
  Status created;
  if (rank == 0) {
    temporary = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      created = Status::IOError("{}: {}", temporary, std::strerror(errno));
    } else {
      if (::ftruncate(fd, static_cast<off_t>(total)) != 0) {
        created = Status::IOError("{}: {}", temporary, std::strerror(errno));
      }
      ::close(fd);
      if (!created.ok()) ::unlink(temporary.c_str());
    }
  }
  DEEPRC_RETURN_NOT_OK(internal::AgreeOnStatus(comm, created));
  DEEPRC_ASSIGN_OR_RAISE(temporary, internal::BroadcastString(comm, 0, temporary));

  Status written = internal::AgreeOnStatus(comm, WriteAt(temporary, bytes, offset));
  // Every rank has written (or failed): rank 0 puts the file in place, or removes it.
  Status renamed;
  if (rank == 0) {
    if (!written.ok()) {
      ::unlink(temporary.c_str());
    } else if (::rename(temporary.c_str(), path.c_str()) != 0) {
      renamed =
          Status::IOError("{}: cannot rename {} to it: {}", path, temporary, std::strerror(errno));
      ::unlink(temporary.c_str());
    }
  }
  DEEPRC_RETURN_NOT_OK(written);
  return internal::AgreeOnStatus(comm, renamed);
}

}  // namespace deeprc::dist
