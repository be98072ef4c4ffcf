// CSV writing: WriteCsv to a stream, and to a path atomically.
//
// Values are written so that ReadCsv with the table's types reads back the same table: numbers in
// their shortest round-trip form (std::to_chars), bools as true/false, dates as YYYY-MM-DD,
// timestamps as ISO 8601 (with Z when the type has a time zone, the values being UTC), nulls as
// `null_value`. A string is quoted when it holds the delimiter, a quote, CR or LF, when it is
// empty (so that it is not read as null), or when it equals `null_value` or one of the reader's
// default null tokens. Rows are formatted in parallel by chunks and written in order.
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "deeprc/core/thread_pool.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/temporal.h"

namespace deeprc::csv {
namespace {

constexpr char kQuote = '"';
constexpr int64_t kRowsPerChunk = 16384;

class ValueWriter {
 public:
  ValueWriter(const WriteOptions& options) : options_(options) {  // NOLINT
    for (const auto& token : ReadOptions{}.null_values) {
      if (!token.empty()) null_tokens_.push_back(token);
    }
    if (!options.null_value.empty()) null_tokens_.push_back(options.null_value);
  }

  void AppendString(std::string_view text, std::string* out) const {
    if (NeedsQuotes(text)) {
      out->push_back(kQuote);
      for (char c : text) {
        if (c == kQuote) out->push_back(kQuote);
        out->push_back(c);
      }
      out->push_back(kQuote);
    } else {
      out->append(text);
    }
  }

  void AppendValue(const Column& column, int64_t row, std::string* out) const {
    if (column.IsNull(row)) {
      out->append(options_.null_value);
      return;
    }
    char buffer[64];
    switch (column.type_id()) {
      case TypeId::kBool:
        out->append(column.GetBool(row) ? "true" : "false");
        return;
      case TypeId::kString:
        AppendString(column.GetString(row), out);
        return;
      case TypeId::kDate32:
        AppendDate(column.Value<int32_t>(row), out);
        return;
      case TypeId::kTimestamp:
        out->append(temporal::FormatTimestamp(column.Value<int64_t>(row), column.type().unit,
                                              !column.type().timezone.empty()));
        return;
      default:
        break;
    }
    VisitType(column.type_id(), [&]<typename Tag>(Tag) {
      if constexpr (kIsNumberTag<Tag>) {
        using T = typename Tag::CType;
        const auto result = std::to_chars(buffer, buffer + sizeof(buffer), column.Value<T>(row));
        out->append(buffer, result.ptr);
      }
    });
  }

  const WriteOptions& options() const { return options_; }

 private:
  bool NeedsQuotes(std::string_view text) const {
    if (text.empty()) return true;
    for (char c : text) {
      if (c == options_.delimiter || c == kQuote || c == '\n' || c == '\r') return true;
    }
    for (const auto& token : null_tokens_) {
      if (text == token) return true;
    }
    return false;
  }

  static void AppendDate(int32_t days, std::string* out) {
    int64_t year;
    unsigned month, day;
    temporal::CivilFromDays(days, &year, &month, &day);
    if (year < 0 || year > 9999) {
      out->append(temporal::FormatDate(days));
      return;
    }
    char text[10];
    text[0] = static_cast<char>('0' + year / 1000);
    text[1] = static_cast<char>('0' + year / 100 % 10);
    text[2] = static_cast<char>('0' + year / 10 % 10);
    text[3] = static_cast<char>('0' + year % 10);
    text[4] = '-';
    text[5] = static_cast<char>('0' + month / 10);
    text[6] = static_cast<char>('0' + month % 10);
    text[7] = '-';
    text[8] = static_cast<char>('0' + day / 10);
    text[9] = static_cast<char>('0' + day % 10);
    out->append(text, 10);
  }

  const WriteOptions& options_;
  std::vector<std::string> null_tokens_;
};

void FormatRows(const Table& table, const ValueWriter& writer, int64_t begin, int64_t end,
                std::string* out) {
  const char delimiter = writer.options().delimiter;
  const int columns = table.num_columns();
  for (int64_t row = begin; row < end; ++row) {
    for (int i = 0; i < columns; ++i) {
      if (i > 0) out->push_back(delimiter);
      writer.AppendValue(table.column(i), row, out);
    }
    out->push_back('\n');
  }
}

}  // namespace

Status WriteCsv(const Table& table, std::ostream& out, const WriteOptions& options) {
  if (options.delimiter == '\n' || options.delimiter == '\r' || options.delimiter == kQuote) {
    return Status::Invalid("CSV delimiter '{}' cannot be a line end or the quote character",
                           options.delimiter);
  }
  const ValueWriter writer(options);
  if (options.header) {
    std::string line;
    for (int i = 0; i < table.num_columns(); ++i) {
      if (i > 0) line.push_back(options.delimiter);
      writer.AppendString(table.schema().field(i).name, &line);
    }
    line.push_back('\n');
    out.write(line.data(), static_cast<std::streamsize>(line.size()));
  }
  const int threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  const int64_t rows = table.num_rows();
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  // Chunks are formatted a batch at a time, so that memory stays bounded.
  const int64_t batch = std::max(1, threads) * 4;
  std::vector<std::string> texts(
      static_cast<size_t>(std::min(batch, std::max<int64_t>(chunks, 1))));
  for (int64_t first = 0; first < chunks; first += batch) {
    const int64_t count = std::min(batch, chunks - first);
    ParallelFor(count, threads, [&](int64_t i) {
      const int64_t begin = (first + i) * kRowsPerChunk;
      texts[i].clear();
      FormatRows(table, writer, begin, std::min(rows, begin + kRowsPerChunk), &texts[i]);
    });
    for (int64_t i = 0; i < count; ++i) {
      out.write(texts[i].data(), static_cast<std::streamsize>(texts[i].size()));
    }
    if (!out) return Status::IOError("writing CSV failed");
  }
  out.flush();
  if (!out) return Status::IOError("writing CSV failed");
  return Status::OK();
}

Status WriteCsv(const Table& table, const std::string& path, const WriteOptions& options) {
  static std::atomic<uint64_t> counter{0};
  const std::string temporary =
      fmt::format("{}.tmp-{}-{}", path, static_cast<long>(::getpid()), counter.fetch_add(1));
  Status status;
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) {
      return Status::IOError("cannot create '{}': {}", temporary, std::strerror(errno));
    }
    status = WriteCsv(table, out, options);
    if (status.ok()) {
      out.close();
      if (!out) status = Status::IOError("closing '{}' failed", temporary);
    }
  }
  if (status.ok() && std::rename(temporary.c_str(), path.c_str()) != 0) {
    status =
        Status::IOError("cannot rename '{}' to '{}': {}", temporary, path, std::strerror(errno));
  }
  if (!status.ok()) {
    std::remove(temporary.c_str());
    return status.WithContext(fmt::format("writing '{}'", path));
  }
  return Status::OK();
}

}  // namespace deeprc::csv
