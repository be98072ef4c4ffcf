// CSV reading: ReadCsv, ReadCsvText, InferSchema.
//
// How a read goes:
//  1. The file is memory-mapped. A UTF-8 byte order mark and `skip_rows` physical lines are
//     skipped, then the header (one RFC 4180 record) is parsed sequentially.
//  2. The byte range [range_begin, range_end) is cut into blocks of `block_size` bytes. A row
//     belongs to the block (and to the range) where its first byte lies. Row starts are found from
//     quote parity: a newline ends a row exactly when the number of quote characters between the
//     first data byte and it is even. The parity before every block comes from a parallel count of
//     quote characters; then a short scan per block finds its first row start.
//  3. The rows of every block are counted from quote parity too (newlines outside quotes), which
//     gives each block its place in the output columns.
//  4. Blocks are parsed in parallel (ParallelFor). Each block is tokenized into field spans, then
//     converted column by column: fixed-width values straight into their place in the output
//     buffers, bools and strings into per-block chunks. A column without a declared type is
//     converted optimistically with the narrowest type its first value fits, and widened
//     (restarting that column of that block) when a value does not fit.
//  5. The per-block types of a column are joined; blocks whose type differs from the join are
//     converted again with the joined type. Validity bits are gathered, gaps left by blank lines
//     closed, and bool and string chunks concatenated.
//
// Quoting is strict, so that quote parity and the parser always agree: a quote character opens a
// quoted field only at the start of a field, and a closing quote must be followed by the
// delimiter or the end of the line. A quote inside an unquoted field, or text after a closing
// quote, is an error naming the line.
//
// Type inference order: int64, float64, bool (true/false in any letter case), date32 (YYYY-MM-DD),
// timestamp[us] (ISO 8601, zone offsets applied), else string. A column whose values are all null
// is string. Blank lines are skipped (but in a file of one column a blank line is a null).
// skip_rows counts physical lines, not records.
#include "deeprc/table/csv.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <fast_float/fast_float.h>
#include <fmt/format.h>

#include "deeprc/core/thread_pool.h"
#include "deeprc/table/bitmap.h"
#include "deeprc/table/buffer.h"
#include "deeprc/table/temporal.h"

namespace deeprc::csv {
namespace {

// ---------------------------------------------------------------------------------------------
// The input: a memory-mapped file.

class MappedFile {
 public:
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) munmap(data_, size_);
  }

  // Pages come in as they are read (a byte range of a large file never touches the rest), and
  // the reader drops them again when it is done with them (Release): populating the whole
  // mapping up front would hold the file in memory beside the table being built.
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IOError("cannot open '{}': {}", path, std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int error = errno;
      ::close(fd);
      return Status::IOError("cannot stat '{}': {}", path, std::strerror(error));
    }
    if (S_ISDIR(info.st_mode)) {
      ::close(fd);
      return Status::IOError("cannot read '{}': it is a directory", path);
    }
    std::unique_ptr<MappedFile> file(new MappedFile());
    file->size_ = static_cast<size_t>(info.st_size);
    if (file->size_ > 0) {
      void* address = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (address == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        return Status::IOError("cannot map '{}': {}", path, std::strerror(error));
      }
      ::madvise(address, file->size_, MADV_SEQUENTIAL);
      file->data_ = address;
    }
    ::close(fd);
    return file;
  }

  std::string_view view() const { return {static_cast<const char*>(data_), size_}; }

  // Drops the whole pages inside [begin, end) from this process's memory (they stay in the page
  // cache and come back on the next access), so that a read does not hold the file and the table
  // at once.
  void Release(int64_t begin, int64_t end) const {
    const int64_t page = ::sysconf(_SC_PAGESIZE);
    const int64_t first = (begin + page - 1) / page * page;
    const int64_t last = end / page * page;
    if (data_ == nullptr || first >= last) return;
    ::madvise(static_cast<char*>(data_) + first, static_cast<size_t>(last - first), MADV_DONTNEED);
  }

 private:
  MappedFile() = default;
  void* data_ = nullptr;
  size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Null tokens.

class NullMatcher {
 public:
  explicit NullMatcher(const std::vector<std::string>& tokens) {
    for (const auto& token : tokens) {
      if (token.empty()) {
        empty_string_is_null_ = true;
        continue;
      }
      if (token.size() < 64)
        length_mask_ |= uint64_t{1} << token.size();
      else
        has_long_tokens_ = true;
      tokens_.push_back(token);
      first_bytes_[static_cast<uint8_t>(token[0])] = true;
    }
  }

  // For a non-string column: the empty field is always null.
  bool IsNull(const char* text, size_t size) const { return size == 0 || IsToken(text, size); }
  bool IsStringNull(const char* text, size_t size) const {
    return size == 0 ? empty_string_is_null_ : IsToken(text, size);
  }
  bool empty_string_is_null() const { return empty_string_is_null_; }

 private:
  bool IsToken(const char* text, size_t size) const {
    if (size < 64 ? ((length_mask_ >> size) & 1) == 0 : !has_long_tokens_) return false;
    if (!first_bytes_[static_cast<uint8_t>(text[0])]) return false;
    for (const auto& token : tokens_) {
      if (token.size() == size && std::memcmp(token.data(), text, size) == 0) return true;
    }
    return false;
  }

  std::vector<std::string> tokens_;
  std::array<bool, 256> first_bytes_{};
  uint64_t length_mask_ = 0;
  bool has_long_tokens_ = false;
  bool empty_string_is_null_ = false;
};

// ---------------------------------------------------------------------------------------------
// Value parsing.

bool ParseBool(const char* text, size_t size, bool* out) {
  if (size != 4 && size != 5) return false;
  char lower[5];
  for (size_t i = 0; i < size; ++i) lower[i] = static_cast<char>(text[i] | 0x20);
  if (size == 4 && std::memcmp(lower, "true", 4) == 0) {
    *out = true;
    return true;
  }
  if (size == 5 && std::memcmp(lower, "false", 5) == 0) {
    *out = false;
    return true;
  }
  return false;
}

// YYYY-MM-DD, as temporal::ParseDate reads it, without building a string_view per value.
inline bool ParseDate(const char* text, size_t size, int32_t* out) {
  if (size != 10 || text[4] != '-' || text[7] != '-') return false;
  unsigned digits[10];
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    digits[i] = static_cast<unsigned>(text[i]) - '0';
    if (digits[i] > 9) return false;
  }
  const unsigned year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3];
  const unsigned month = digits[5] * 10 + digits[6];
  const unsigned day = digits[8] * 10 + digits[9];
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return false;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > kDays[month - 1] + (month == 2 && leap)) return false;
  *out = static_cast<int32_t>(temporal::DaysFromCivil(year, month, day));
  return true;
}

template <typename T>
[[gnu::always_inline]] inline bool ParseInteger(const char* text, size_t size, T* out) {
  if constexpr (std::is_same_v<T, int64_t>) {
    // The common case without std::from_chars' generality: a sign and up to 18 digits cannot
    // overflow.
    const char* p = text;
    const char* const end = text + size;
    const bool negative = p < end && *p == '-';
    p += negative;
    if (p < end && end - p <= 18) {
      uint64_t value = 0;
      for (; p < end; ++p) {
        const unsigned digit = static_cast<unsigned>(*p) - '0';
        if (digit > 9) return false;
        value = value * 10 + digit;
      }
      *out = negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
      return true;
    }
  }
  const auto [end, error] = std::from_chars(text, text + size, *out);
  return error == std::errc() && end == text + size;
}

template <typename T>
[[gnu::always_inline]] inline bool ParseFloating(const char* text, size_t size, T* out) {
  const auto [end, error] = fast_float::from_chars(text, text + size, *out);
  return error == std::errc() && end == text + size && size > 0;
}

// The types a value can be read as, as bits; every set of candidates is a chain
// (int64 ⊂ float64, date32 ⊂ timestamp, bool alone), so the narrowest type is the lowest bit.
enum : uint8_t {
  kCanInt = 1,
  kCanFloat = 2,
  kCanBool = 4,
  kCanDate = 8,
  kCanTimestamp = 16,
  kCanAnything = 31,
};

uint8_t ValueClass(const char* text, size_t size) {
  int64_t integer;
  if (ParseInteger(text, size, &integer)) return kCanInt | kCanFloat;
  double floating;
  if (ParseFloating(text, size, &floating)) return kCanFloat;
  bool boolean;
  if (ParseBool(text, size, &boolean)) return kCanBool;
  if (size >= 10 && text[4] == '-') {
    const std::string_view view(text, size);
    if (temporal::ParseDate(view)) return kCanDate | kCanTimestamp;
    if (temporal::ParseTimestamp(view, TimeUnit::kMicro)) return kCanTimestamp;
  }
  return 0;
}

DataType TypeOfCandidates(uint8_t candidates) {
  if (candidates & kCanInt) return DataType::Int64();
  if (candidates & kCanFloat) return DataType::Float64();
  if (candidates & kCanBool) return DataType::Bool();
  if (candidates & kCanDate) return DataType::Date32();
  if (candidates & kCanTimestamp) return DataType::Timestamp(TimeUnit::kMicro);
  return DataType::String();
}

// ---------------------------------------------------------------------------------------------
// The read plan, shared read-only by the block tasks.

struct Plan {
  std::string_view data;  // the whole file, offsets are file offsets
  std::string_view name;
  char delimiter = ',';
  char quote = '"';
  int num_file_columns = 0;
  std::vector<std::string> names;                    // of the file's columns
  std::vector<int> slot_of_column;                   // file column -> output slot, or -1
  std::vector<int> column_of_slot;                   // output slot -> file column
  std::vector<std::optional<DataType>> fixed_types;  // per slot, when not inferred
  std::array<bool, 256> stops{};                     // bytes that end an unquoted field
  const NullMatcher* nulls = nullptr;
  int threads = 1;

  int num_slots() const { return static_cast<int>(column_of_slot.size()); }

  int64_t LineAt(int64_t position) const {
    return 1 + std::count(data.data(), data.data() + position, '\n');
  }
  std::string Where(int64_t position) const { return fmt::format("{}:{}", name, LineAt(position)); }
  std::string ColumnLabel(int column) const {
    return fmt::format("column '{}' ({})", names[column], column + 1);
  }
};

std::string Shorten(std::string_view text) {
  constexpr size_t kMax = 60;
  if (text.size() <= kMax) return std::string(text);
  return std::string(text.substr(0, kMax)) + "...";
}

// ---------------------------------------------------------------------------------------------
// Tokenizing: rows of a block into field spans.

// Bytes [begin, end) of a field, relative to the block start, with flags in the top bits of end.
struct FieldSpan {
  uint32_t begin;
  uint32_t end;
};
constexpr uint32_t kQuotedFlag = uint32_t{1} << 31;
constexpr uint32_t kEscapedFlag = uint32_t{1} << 30;
constexpr uint32_t kOffsetMask = kEscapedFlag - 1;
// Blocks (with the tail of their last row) must fit the offsets.
constexpr int64_t kMaxBlockSpan = int64_t{1} << 30;

struct TokenizedBlock {
  int64_t base = 0;  // file offset the spans are relative to
  int64_t rows = 0;
  std::vector<FieldSpan> fields;  // rows * num_slots, row-major
  // Set when tokenizing stopped at an error; `rows` are the rows before it.
  Status error;
};

// Finds the next byte that ends an unquoted field (delimiter, newline or quote). With SSE2 it
// classifies 64 bytes at a time into a bit mask and walks the set bits, so that a field costs a
// few instructions whatever its length; near the end of the data it falls back to a byte loop.
class StopFinder {
 public:
  StopFinder(const Plan& plan, const char* limit) : stops_(plan.stops.data()), limit_(limit) {
#if defined(__SSE2__)
    delimiter_ = _mm_set1_epi8(plan.delimiter);
    newline_ = _mm_set1_epi8('\n');
    quote_ = _mm_set1_epi8(plan.quote);
#endif
  }

  // The first stop at or after p, or limit.
  const char* Next(const char* p) {
#if defined(__SSE2__)
    while (true) {
      const uint64_t shift = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(window_);
      if (shift >= 64) {  // p is outside the window (also before it: the difference wraps)
        if (limit_ - p < 64) break;
        window_ = p;
        mask_ = Classify(p);
        if (mask_ != 0) return p + __builtin_ctzll(mask_);
        p += 64;
        continue;
      }
      const uint64_t rest = mask_ >> shift;
      if (rest != 0) return p + __builtin_ctzll(rest);
      p = window_ + 64;
    }
#endif
    while (p < limit_ && !stops_[static_cast<uint8_t>(*p)]) ++p;
    return p;
  }

 private:
#if defined(__SSE2__)
  uint64_t Classify(const char* p) const {
    uint64_t mask = 0;
    for (int i = 0; i < 4; ++i) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
      const __m128i hits = _mm_or_si128(
          _mm_or_si128(_mm_cmpeq_epi8(bytes, delimiter_), _mm_cmpeq_epi8(bytes, newline_)),
          _mm_cmpeq_epi8(bytes, quote_));
      mask |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(hits))) << (16 * i);
    }
    return mask;
  }
  __m128i delimiter_, newline_, quote_;
  const char* window_ = nullptr;
  uint64_t mask_ = 0;
#endif
  const bool* stops_;
  const char* limit_;
};

// Tokenizes the rows starting in [begin, end) (rows end at or before `end`, which is a row
// start or the end of the data), at most max_rows of them.
void Tokenize(const Plan& plan, int64_t begin, int64_t end, int64_t max_rows, TokenizedBlock* out) {
  out->base = begin;
  out->rows = 0;
  if (end - begin >= kMaxBlockSpan) {
    out->error = Status::Invalid("{}: a block with its last row spans over {} bytes",
                                 plan.Where(begin), kMaxBlockSpan);
    return;
  }
  const char* const data = plan.data.data();
  const char* const base = data + begin;
  const char* const limit = data + end;
  const char quote = plan.quote;
  const char delimiter = plan.delimiter;
  const int num_columns = plan.num_file_columns;
  const int num_slots = plan.num_slots();
  const int* const slot_of_column = plan.slot_of_column.data();
  StopFinder finder(plan, limit);

  // `fields` may come in with room from an earlier block (never shrunk, never cleared: every
  // span of a row is written before it is read).
  auto& fields = out->fields;
  const size_t row_width = static_cast<size_t>(std::max(num_slots, 1));
  // A first guess of the row count; grows geometrically.
  size_t capacity_rows = static_cast<size_t>(std::max<int64_t>(16, (end - begin) / 64));
  if (max_rows >= 0) capacity_rows = std::min<size_t>(capacity_rows, max_rows + 1);
  capacity_rows = std::max(capacity_rows, fields.size() / row_width);
  if (fields.size() < capacity_rows * row_width) fields.resize(capacity_rows * row_width);
  int64_t rows = 0;

  const char* p = base;
  while (p < limit && (max_rows < 0 || rows < max_rows)) {
    // Blank lines are skipped, except with one column, where a blank line is a row with an empty
    // field: that is how a null is written there.
    if (num_columns > 1) {
      if (*p == '\n') {
        ++p;
        continue;
      }
      if (*p == '\r' && p + 1 < limit && p[1] == '\n') {
        p += 2;
        continue;
      }
    }
    const char* const row_start = p;
    if (static_cast<size_t>(rows) >= capacity_rows) {
      capacity_rows *= 2;
      fields.resize(capacity_rows * row_width);
    }
    FieldSpan* const row = fields.data() + rows * num_slots;
    int column = 0;
    bool row_done = false;
    while (!row_done) {
      const char* field_begin;
      const char* field_end;
      uint32_t flags = 0;
      if (p < limit && *p == quote) {
        const char* const open = p;
        const char* q = p + 1;
        while (true) {
          q = static_cast<const char*>(std::memchr(q, quote, static_cast<size_t>(limit - q)));
          if (q == nullptr) {
            out->error = Status::Invalid(
                "{}: unterminated quote: the quoted field of {} opened here never closes",
                plan.Where(open - data), plan.ColumnLabel(std::min(column, num_columns - 1)));
            out->rows = rows;
            return;
          }
          if (q + 1 < limit && q[1] == quote) {
            flags = kEscapedFlag;
            q += 2;
            continue;
          }
          break;
        }
        flags |= kQuotedFlag;
        field_begin = open + 1;
        field_end = q;
        const char* const after = q + 1;
        if (after == limit) {
          row_done = true;
          p = after;
        } else if (*after == delimiter) {
          p = after + 1;
        } else if (*after == '\n') {
          row_done = true;
          p = after + 1;
        } else if (*after == '\r' && (after + 1 == limit || after[1] == '\n')) {
          row_done = true;
          p = after + 1 == limit ? limit : after + 2;
        } else {
          out->error = Status::Invalid(
              "{}: {}: unexpected '{}' after the closing quote (expected the delimiter or the "
              "end of the line)",
              plan.Where(after - data), plan.ColumnLabel(std::min(column, num_columns - 1)),
              *after);
          out->rows = rows;
          return;
        }
      } else {
        const char* q = finder.Next(p);
        field_begin = p;
        if (q == limit) {
          field_end = q > p && q[-1] == '\r' ? q - 1 : q;
          row_done = true;
          p = q;
        } else if (*q == delimiter) {
          field_end = q;
          p = q + 1;
        } else if (*q == '\n') {
          field_end = q > p && q[-1] == '\r' ? q - 1 : q;
          row_done = true;
          p = q + 1;
        } else {
          out->error = Status::Invalid(
              "{}: {}: quote character inside an unquoted field (quote the whole field and "
              "double the quotes inside it)",
              plan.Where(q - data), plan.ColumnLabel(std::min(column, num_columns - 1)));
          out->rows = rows;
          return;
        }
      }
      if (column < num_columns) {
        const int slot = slot_of_column[column];
        if (slot >= 0) {
          row[slot] = {static_cast<uint32_t>(field_begin - base),
                       static_cast<uint32_t>(field_end - base) | flags};
        }
      }
      ++column;
    }
    if (column != num_columns) {
      out->error = Status::Invalid("{}: expected {} fields, found {}", plan.Where(row_start - data),
                                   num_columns, column);
      out->rows = rows;
      return;
    }
    ++rows;
  }
  out->rows = rows;
}

// ---------------------------------------------------------------------------------------------
// Converting a column of a tokenized block.

struct FieldText {
  const char* text;
  size_t size;
  bool quoted;
  bool escaped;
};

inline FieldText GetField(const char* base, const FieldSpan& span) {
  const uint32_t end = span.end & kOffsetMask;
  return {base + span.begin, end - span.begin, (span.end & kQuotedFlag) != 0,
          (span.end & kEscapedFlag) != 0};
}

// Where the fixed-width values of all blocks go: one buffer per column and type, sized for every
// row of the read and allocated when a block first needs it, so that blocks write their values
// in place (no per-block buffers, no copy to concatenate them). A column whose blocks were read
// as different types has several; only the one of the final type is kept, and pages of the others
// that no block wrote were never touched.
class FixedOutputs {
 public:
  FixedOutputs(int num_slots, int64_t rows) : rows_(rows), buffers_(num_slots) {}

  Result<uint8_t*> Get(int slot, const DataType& type) {
    std::lock_guard lock(mutex_);
    for (auto& [buffer_type, buffer] : buffers_[slot]) {
      if (buffer_type == type) return buffer->mutable_data();
    }
    DEEPRC_ASSIGN_OR_RAISE(auto buffer, Buffer::Allocate(rows_ * ByteWidth(type.id)));
    buffers_[slot].emplace_back(type, buffer);
    return buffer->mutable_data();
  }

  // The buffer of `type` (allocated if no block wrote one), and the others are released.
  Result<std::shared_ptr<Buffer>> Take(int slot, const DataType& type) {
    DEEPRC_RETURN_NOT_OK(Get(slot, type).status());
    std::lock_guard lock(mutex_);
    std::shared_ptr<Buffer> result;
    for (auto& [buffer_type, buffer] : buffers_[slot]) {
      if (buffer_type == type) result = std::move(buffer);
    }
    buffers_[slot].clear();
    return result;
  }

 private:
  std::mutex mutex_;
  int64_t rows_;
  std::vector<std::vector<std::pair<DataType, std::shared_ptr<Buffer>>>> buffers_;
};

// One column of one block, converted. Fixed-width values are in the FixedOutputs; bool and
// string columns are kept per block and concatenated at the end.
struct Converted {
  DataType type;
  Column column;                     // bool and string
  std::shared_ptr<Buffer> validity;  // fixed width: this block's bits; null without nulls
  int64_t null_count = 0;
};

class ColumnConverter {
 public:
  // Fixed-width values of the block's rows go to row `row_offset` on of the outputs.
  ColumnConverter(const Plan& plan, const TokenizedBlock& block, int slot, FixedOutputs* outputs,
                  int64_t row_offset)
      : plan_(plan),
        block_(block),
        slot_(slot),
        num_slots_(plan.num_slots()),
        base_(plan.data.data() + block.base),
        outputs_(outputs),
        row_offset_(row_offset) {}

  FieldText Field(int64_t row) const {
    return GetField(base_, block_.fields[row * num_slots_ + slot_]);
  }
  bool IsNull(const FieldText& field) const {
    return !field.quoted && plan_.nulls->IsNull(field.text, field.size);
  }

  // The first row whose value is not null, or -1.
  int64_t FirstValue() const {
    for (int64_t row = 0; row < block_.rows; ++row) {
      if (!IsNull(Field(row))) return row;
    }
    return -1;
  }

  // Converts to `type`. When a value does not parse, sets *failed_row (else -1) and what was
  // produced is to be ignored.
  Result<Converted> Convert(const DataType& type, int64_t* failed_row) const {
    *failed_row = -1;
    return VisitType(type.id, [&]<typename Tag>(Tag) -> Result<Converted> {
      if constexpr (std::is_same_v<Tag, StringTag>) {
        DEEPRC_ASSIGN_OR_RAISE(Column column, ConvertString());
        return Converted{type, std::move(column), nullptr, 0};
      } else if constexpr (std::is_same_v<Tag, BoolTag>) {
        DEEPRC_ASSIGN_OR_RAISE(Column column, ConvertBool(failed_row));
        return Converted{type, std::move(column), nullptr, 0};
      } else {
        using T = typename Tag::CType;
        if (type.id == TypeId::kDate32) {
          return ConvertFixed<int32_t>(type, failed_row,
                                       [](const char* text, size_t size, int32_t* out) {
                                         return ParseDate(text, size, out);
                                       });
        }
        if (type.id == TypeId::kTimestamp) {
          const TimeUnit unit = type.unit;
          return ConvertFixed<int64_t>(
              type, failed_row, [unit](const char* text, size_t size, int64_t* out) {
                auto value = temporal::ParseTimestamp(std::string_view(text, size), unit);
                if (!value) return false;
                *out = *value;
                return true;
              });
        }
        if constexpr (std::is_floating_point_v<T>) {
          return ConvertFixed<T>(type, failed_row, [](const char* text, size_t size, T* out) {
            return ParseFloating(text, size, out);
          });
        } else {
          return ConvertFixed<T>(type, failed_row, [](const char* text, size_t size, T* out) {
            return ParseInteger(text, size, out);
          });
        }
      }
    });
  }

 private:
  Result<std::shared_ptr<Buffer>> AllocateBits(int64_t rows) const {
    return Buffer::AllocateZeroed(bitmap::BytesForBits(rows));
  }

  template <typename T, typename Parse>
  Result<Converted> ConvertFixed(const DataType& type, int64_t* failed_row, Parse parse) const {
    const int64_t rows = block_.rows;
    DEEPRC_ASSIGN_OR_RAISE(uint8_t * values, outputs_->Get(slot_, type));
    DEEPRC_ASSIGN_OR_RAISE(auto validity, AllocateBits(rows));
    T* out = reinterpret_cast<T*>(values) + row_offset_;
    uint8_t* valid = validity->mutable_data();
    int64_t nulls = 0;
    const FieldSpan* spans = block_.fields.data() + slot_;
    const NullMatcher& matcher = *plan_.nulls;
    for (int64_t row = 0; row < rows; ++row, spans += num_slots_) {
      const uint32_t end = spans->end;
      const char* text = base_ + spans->begin;
      const size_t size = (end & kOffsetMask) - spans->begin;
      if (!(end & kQuotedFlag) && matcher.IsNull(text, size)) {
        out[row] = T{};
        ++nulls;
        continue;
      }
      if (!parse(text, size, &out[row])) {
        *failed_row = row;
        return Converted{};
      }
      bitmap::SetBit(valid, row);
    }
    return Converted{type, Column(), nulls > 0 ? std::move(validity) : nullptr, nulls};
  }

  Result<Column> ConvertBool(int64_t* failed_row) const {
    const int64_t rows = block_.rows;
    DEEPRC_ASSIGN_OR_RAISE(auto values, AllocateBits(rows));
    DEEPRC_ASSIGN_OR_RAISE(auto validity, AllocateBits(rows));
    int64_t nulls = 0;
    for (int64_t row = 0; row < rows; ++row) {
      const FieldText field = Field(row);
      if (IsNull(field)) {
        ++nulls;
        continue;
      }
      bool value;
      if (!ParseBool(field.text, field.size, &value)) {
        *failed_row = row;
        return Column();
      }
      if (value) bitmap::SetBit(values->mutable_data(), row);
      bitmap::SetBit(validity->mutable_data(), row);
    }
    return Column::Make(DataType::Bool(), rows, std::move(values),
                        nulls > 0 ? std::move(validity) : nullptr, nulls);
  }

  Result<Column> ConvertString() const {
    const int64_t rows = block_.rows;
    int64_t bytes = 0;
    const FieldSpan* spans = block_.fields.data() + slot_;
    for (int64_t row = 0; row < rows; ++row, spans += num_slots_) {
      bytes += (spans->end & kOffsetMask) - spans->begin;
    }
    DEEPRC_ASSIGN_OR_RAISE(auto offsets, Buffer::Allocate((rows + 1) * 8));
    DEEPRC_ASSIGN_OR_RAISE(auto data, Buffer::Allocate(bytes));
    DEEPRC_ASSIGN_OR_RAISE(auto validity, AllocateBits(rows));
    int64_t* offset = offsets->mutable_data_as<int64_t>();
    char* out = data->mutable_data_as<char>();
    uint8_t* valid = validity->mutable_data();
    const NullMatcher& matcher = *plan_.nulls;
    const char quote = plan_.quote;
    int64_t position = 0;
    int64_t nulls = 0;
    offset[0] = 0;
    spans = block_.fields.data() + slot_;
    for (int64_t row = 0; row < rows; ++row, spans += num_slots_) {
      const uint32_t end = spans->end;
      const char* text = base_ + spans->begin;
      const size_t size = (end & kOffsetMask) - spans->begin;
      if (!(end & kQuotedFlag) && matcher.IsStringNull(text, size)) {
        ++nulls;
      } else {
        if (end & kEscapedFlag) {
          // "" inside a quoted field stands for one quote.
          for (size_t i = 0; i < size; ++i) {
            out[position++] = text[i];
            if (text[i] == quote) ++i;
          }
        } else {
          std::memcpy(out + position, text, size);
          position += static_cast<int64_t>(size);
        }
        bitmap::SetBit(valid, row);
      }
      offset[row + 1] = position;
    }
    data->Truncate(position);
    return Column::MakeString(rows, std::move(offsets), std::move(data),
                              nulls > 0 ? std::move(validity) : nullptr, nulls);
  }

  const Plan& plan_;
  const TokenizedBlock& block_;
  int slot_;
  int num_slots_;
  const char* base_;
  FixedOutputs* outputs_;
  int64_t row_offset_;
};

// ---------------------------------------------------------------------------------------------
// Blocks.

struct Chunk {
  Converted data;
  // No value was seen (every field null): the column holds nothing yet.
  bool all_null = false;
  uint8_t candidates = kCanAnything;
};

struct BlockResult {
  int64_t rows = 0;
  std::vector<Chunk> chunks;  // per slot
  Status status;
};

Status TypeError(const Plan& plan, const TokenizedBlock& block, int slot, int64_t row,
                 const DataType& type) {
  const FieldSpan& span = block.fields[row * plan.num_slots() + slot];
  const FieldText field = GetField(plan.data.data() + block.base, span);
  return Status::Invalid("{}: {}: expected {}, found '{}'", plan.Where(block.base + span.begin),
                         plan.ColumnLabel(plan.column_of_slot[slot]), type.ToString(),
                         Shorten(std::string_view(field.text, field.size)));
}

// Converts the slots of a tokenized block. `types` gives a type per slot (else inferred).
// Returns the first error in file order.
Status ConvertBlock(const Plan& plan, const TokenizedBlock& block,
                    const std::vector<std::optional<DataType>>& types,
                    const std::vector<bool>& wanted, FixedOutputs* outputs, int64_t row_offset,
                    BlockResult* result) {
  result->rows = block.rows;
  result->chunks.resize(plan.num_slots());
  int64_t first_bad_row = std::numeric_limits<int64_t>::max();
  Status first_bad;
  for (int slot = 0; slot < plan.num_slots(); ++slot) {
    if (!wanted[slot]) continue;
    ColumnConverter converter(plan, block, slot, outputs, row_offset);
    Chunk& chunk = result->chunks[slot];
    int64_t failed_row = -1;
    if (types[slot]) {
      DEEPRC_ASSIGN_OR_RAISE(chunk.data, converter.Convert(*types[slot], &failed_row));
      if (failed_row >= 0 && failed_row < first_bad_row) {
        first_bad_row = failed_row;
        first_bad = TypeError(plan, block, slot, failed_row, *types[slot]);
      }
      continue;
    }
    const int64_t first = converter.FirstValue();
    if (first < 0) {
      chunk.all_null = true;
      continue;
    }
    const FieldText field = converter.Field(first);
    uint8_t candidates = ValueClass(field.text, field.size);
    while (true) {
      DEEPRC_ASSIGN_OR_RAISE(chunk.data,
                             converter.Convert(TypeOfCandidates(candidates), &failed_row));
      if (failed_row < 0) break;
      const FieldText bad = converter.Field(failed_row);
      candidates &= ValueClass(bad.text, bad.size);
    }
    chunk.candidates = candidates;
  }
  if (!first_bad.ok()) return first_bad;
  return block.error;
}

// ---------------------------------------------------------------------------------------------
// Row starts.

// Bits set in x, without needing the popcnt instruction in the baseline x86-64 target.
inline int PopCount(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
}

int QuoteParity(const char* data, int64_t begin, int64_t end, char quote) {
  // Only the parity matters: XOR the match masks, and count the bits of the result once.
  unsigned bits = 0;
  int64_t i = begin;
#if defined(__SSE2__)
  const __m128i quotes = _mm_set1_epi8(quote);
  for (; i + 16 <= end; i += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    bits ^= static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, quotes)));
  }
#endif
  for (; i < end; ++i) bits ^= data[i] == quote;
  return __builtin_parity(bits);
}

int ParallelQuoteParity(const Plan& plan, int64_t begin, int64_t end) {
  if (end <= begin) return 0;
  const int64_t piece = int64_t{8} << 20;
  const int64_t parts = (end - begin + piece - 1) / piece;
  std::vector<int> parities(parts, 0);
  ParallelFor(parts, plan.threads, [&](int64_t part) {
    const int64_t from = begin + part * piece;
    parities[part] = QuoteParity(plan.data.data(), from, std::min(end, from + piece), plan.quote);
  });
  int parity = 0;
  for (int p : parities) parity ^= p;
  return parity;
}

// The first newline in [begin, end) that ends a row, given the quote parity before `begin`;
// -1 when there is none.
int64_t FindRowEnd(const Plan& plan, int64_t begin, int64_t end, int parity) {
  const char* data = plan.data.data();
  const char quote = plan.quote;
  for (int64_t i = begin; i < end; ++i) {
    const char c = data[i];
    if (c == quote) {
      parity ^= 1;
    } else if (c == '\n' && parity == 0) {
      return i;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Header.

struct Record {
  std::vector<std::string> fields;
  int64_t end = 0;  // the position after the record's line end
};

// Parses one record sequentially (header, or the first row to count fields).
Result<Record> ParseRecord(const Plan& plan, int64_t position) {
  const std::string_view data = plan.data;
  const int64_t size = static_cast<int64_t>(data.size());
  Record record;
  std::string field;
  int64_t i = position;
  while (true) {
    field.clear();
    bool row_done = false;
    if (i < size && data[i] == plan.quote) {
      const int64_t open = i;
      ++i;
      while (true) {
        if (i >= size) {
          return Status::Invalid(
              "{}: unterminated quote: the quoted field opened here never closes",
              plan.Where(open));
        }
        if (data[i] == plan.quote) {
          if (i + 1 < size && data[i + 1] == plan.quote) {
            field += plan.quote;
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += data[i++];
      }
      if (i == size) {
        row_done = true;
      } else if (data[i] == plan.delimiter) {
        ++i;
      } else if (data[i] == '\n') {
        row_done = true;
        ++i;
      } else if (data[i] == '\r' && (i + 1 == size || data[i + 1] == '\n')) {
        row_done = true;
        i = std::min(size, i + 2);
      } else {
        return Status::Invalid("{}: unexpected '{}' after the closing quote", plan.Where(i),
                               data[i]);
      }
    } else {
      const int64_t start = i;
      while (i < size && data[i] != plan.delimiter && data[i] != '\n') {
        if (data[i] == plan.quote) {
          return Status::Invalid("{}: quote character inside an unquoted field", plan.Where(i));
        }
        ++i;
      }
      int64_t stop = i;
      if (i == size || data[i] == '\n') {
        if (stop > start && data[stop - 1] == '\r') --stop;
        row_done = true;
        if (i < size) ++i;
      } else {
        ++i;
      }
      field.assign(data.data() + start, static_cast<size_t>(stop - start));
    }
    record.fields.push_back(field);
    if (row_done) break;
  }
  record.end = i;
  return record;
}

// Skips blank lines at `position`.
int64_t SkipBlankLines(std::string_view data, int64_t position) {
  const int64_t size = static_cast<int64_t>(data.size());
  while (position < size) {
    if (data[position] == '\n') {
      ++position;
    } else if (data[position] == '\r' && position + 1 < size && data[position + 1] == '\n') {
      position += 2;
    } else {
      break;
    }
  }
  return position;
}

// ---------------------------------------------------------------------------------------------
// Concatenating the per-block chunks of a bool or string column.

Result<Column> Concatenate(const std::vector<Column>& chunks, const DataType& type, int threads) {
  if (chunks.size() == 1) return chunks[0];
  const size_t count = chunks.size();
  std::vector<int64_t> row_start(count + 1, 0);
  int64_t nulls = 0;
  for (size_t i = 0; i < count; ++i) {
    row_start[i + 1] = row_start[i] + chunks[i].length();
    nulls += chunks[i].null_count();
  }
  const int64_t rows = row_start[count];
  std::shared_ptr<Buffer> validity;
  if (nulls > 0) {
    DEEPRC_ASSIGN_OR_RAISE(validity, Buffer::Allocate(bitmap::BytesForBits(rows)));
    // Sequential: chunks share bytes at their edges. Bitmaps are an eighth of a byte a row.
    for (size_t i = 0; i < count; ++i) {
      const Column& chunk = chunks[i];
      if (chunk.validity_bits() != nullptr) {
        bitmap::CopyBits(chunk.validity_bits(), chunk.offset(), chunk.length(),
                         validity->mutable_data(), row_start[i]);
      } else {
        bitmap::SetBitsTo(validity->mutable_data(), row_start[i], chunk.length(), true);
      }
    }
  }
  if (type.id == TypeId::kBool) {
    DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(bitmap::BytesForBits(rows)));
    for (size_t i = 0; i < count; ++i) {
      bitmap::CopyBits(chunks[i].bool_bits(), chunks[i].offset(), chunks[i].length(),
                       values->mutable_data(), row_start[i]);
    }
    return Column::Make(type, rows, std::move(values), std::move(validity), nulls);
  }
  if (type.id == TypeId::kString) {
    std::vector<int64_t> byte_start(count + 1, 0);
    for (size_t i = 0; i < count; ++i) {
      const int64_t* offsets = chunks[i].StringOffsets();
      byte_start[i + 1] = byte_start[i] + offsets[chunks[i].length()] - offsets[0];
    }
    DEEPRC_ASSIGN_OR_RAISE(auto offsets, Buffer::Allocate((rows + 1) * 8));
    DEEPRC_ASSIGN_OR_RAISE(auto bytes, Buffer::Allocate(byte_start[count]));
    int64_t* out_offsets = offsets->mutable_data_as<int64_t>();
    out_offsets[0] = 0;
    ParallelFor(static_cast<int64_t>(count), threads, [&](int64_t i) {
      const Column& chunk = chunks[i];
      const int64_t* in = chunk.StringOffsets();
      const int64_t shift = byte_start[i] - in[0];
      for (int64_t row = 0; row < chunk.length(); ++row) {
        out_offsets[row_start[i] + row + 1] = in[row + 1] + shift;
      }
      std::memcpy(bytes->mutable_data() + byte_start[i], chunk.StringBytes() + in[0],
                  static_cast<size_t>(byte_start[i + 1] - byte_start[i]));
    });
    return Column::MakeString(rows, std::move(offsets), std::move(bytes), std::move(validity),
                              nulls);
  }
  // Fixed-width columns are written in place by the blocks (Reader::AssembleFixed).
  return Status::Internal("CSV chunks of {} are not concatenated", type.ToString());
}

// ---------------------------------------------------------------------------------------------
// The reader.

class Reader {
 public:
  Reader(std::string_view data, const ReadOptions& options, std::string_view name)
      : options_(options), nulls_(options.null_values) {
    plan_.data = data;
    plan_.name = name;
    plan_.delimiter = options.delimiter;
    plan_.quote = options.quote;
    plan_.nulls = &nulls_;
    plan_.threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  }

  // Called with the bytes of each block once it is converted (a mapped file drops them).
  void set_release(std::function<void(int64_t, int64_t)> release) { release_ = std::move(release); }

  // Header, columns, types. Sets data_start_.
  Status Prepare() {
    if (options_.delimiter == '\n' || options_.delimiter == '\r' ||
        options_.delimiter == options_.quote) {
      return Status::Invalid("CSV delimiter '{}' cannot be a line end or the quote character",
                             options_.delimiter);
    }
    const std::string_view data = plan_.data;
    const int64_t size = static_cast<int64_t>(data.size());
    int64_t position = 0;
    if (data.size() >= 3 && data.substr(0, 3) == "\xEF\xBB\xBF") position = 3;
    for (int64_t i = 0; i < options_.skip_rows && position < size; ++i) {
      const void* newline =
          std::memchr(data.data() + position, '\n', static_cast<size_t>(size - position));
      position = newline == nullptr ? size : static_cast<const char*>(newline) - data.data() + 1;
    }
    position = SkipBlankLines(data, position);
    std::vector<std::string> names;
    if (options_.header) {
      if (position < size) {
        DEEPRC_ASSIGN_OR_RAISE(Record header, ParseRecord(plan_, position));
        names = std::move(header.fields);
        position = header.end;
      }
      if (!options_.column_names.empty()) {
        if (!names.empty() && names.size() != options_.column_names.size()) {
          return Status::Invalid("{}: the header has {} columns but {} column names were given",
                                 plan_.Where(position), names.size(), options_.column_names.size());
        }
        names = options_.column_names;
      }
    } else if (!options_.column_names.empty()) {
      names = options_.column_names;
    } else if (position < size) {
      DEEPRC_ASSIGN_OR_RAISE(Record first, ParseRecord(plan_, position));
      for (size_t i = 0; i < first.fields.size(); ++i) names.push_back(fmt::format("f{}", i));
    }
    data_start_ = position;
    plan_.names = names;
    plan_.num_file_columns = static_cast<int>(names.size());

    // Output columns.
    plan_.slot_of_column.assign(names.size(), -1);
    if (options_.include_columns.empty()) {
      for (int i = 0; i < plan_.num_file_columns; ++i) {
        plan_.slot_of_column[i] = i;
        plan_.column_of_slot.push_back(i);
      }
    } else {
      for (const auto& wanted : options_.include_columns) {
        const auto found = std::find(names.begin(), names.end(), wanted);
        if (found == names.end()) {
          return Status::KeyError(
              "{}: include_columns names '{}', which is not a column (the "
              "columns are: {})",
              plan_.name, wanted, fmt::join(names, ", "));
        }
        const int column = static_cast<int>(found - names.begin());
        if (plan_.slot_of_column[column] >= 0) {
          return Status::Invalid("include_columns names '{}' twice", wanted);
        }
        plan_.slot_of_column[column] = plan_.num_slots();
        plan_.column_of_slot.push_back(column);
      }
    }
    plan_.fixed_types.assign(plan_.num_slots(), std::nullopt);
    for (const auto& [column_name, type] : options_.column_types) {
      const auto found = std::find(names.begin(), names.end(), column_name);
      if (found == names.end()) {
        return Status::KeyError(
            "{}: column_types names '{}', which is not a column (the "
            "columns are: {})",
            plan_.name, column_name, fmt::join(names, ", "));
      }
      const int slot = plan_.slot_of_column[found - names.begin()];
      if (slot >= 0) plan_.fixed_types[slot] = type;
    }
    plan_.stops.fill(false);
    plan_.stops[static_cast<uint8_t>(options_.delimiter)] = true;
    plan_.stops[static_cast<uint8_t>('\n')] = true;
    plan_.stops[static_cast<uint8_t>(options_.quote)] = true;
    return Status::OK();
  }

  // Types from the first `inference_rows` rows, for the slots without a declared type.
  Status InferFromSample() {
    if (options_.inference_rows < 0) return Status::OK();
    std::vector<bool> wanted(plan_.num_slots(), false);
    bool any = false;
    for (int slot = 0; slot < plan_.num_slots(); ++slot) {
      wanted[slot] = !plan_.fixed_types[slot].has_value();
      any = any || wanted[slot];
    }
    if (!any) return Status::OK();
    TokenizedBlock block;
    Tokenize(plan_, data_start_, static_cast<int64_t>(plan_.data.size()), options_.inference_rows,
             &block);
    BlockResult result;
    FixedOutputs outputs(plan_.num_slots(), block.rows);
    DEEPRC_RETURN_NOT_OK(
        ConvertBlock(plan_, block, plan_.fixed_types, wanted, &outputs, 0, &result));
    for (int slot = 0; slot < plan_.num_slots(); ++slot) {
      if (!wanted[slot]) continue;
      const Chunk& chunk = result.chunks[slot];
      plan_.fixed_types[slot] =
          chunk.all_null ? DataType::String() : TypeOfCandidates(chunk.candidates);
    }
    return Status::OK();
  }

  Schema MakeSchema(const std::vector<DataType>& types) const {
    std::vector<Field> fields;
    for (int slot = 0; slot < plan_.num_slots(); ++slot) {
      fields.push_back({plan_.names[plan_.column_of_slot[slot]], types[slot]});
    }
    return Schema(std::move(fields));
  }

  // The row starts that cut [lo, hi) into blocks: starts[k] is the first row start at or after
  // the k-th cut; the last entry ends the range.
  std::vector<int64_t> FindBlockStarts(int64_t lo, int64_t hi) const {
    const int64_t block_size = std::clamp<int64_t>(options_.block_size, 1, kMaxBlockSpan / 4);
    const int64_t blocks = (hi - lo + block_size - 1) / block_size;
    // Region k = [cut_k - 1, cut_{k+1} - 1): a newline at cut_k - 1 makes cut_k a row start.
    std::vector<int64_t> region_begin(blocks + 1);
    for (int64_t k = 0; k < blocks; ++k) {
      region_begin[k] = std::max(data_start_, lo + k * block_size - 1);
    }
    region_begin[blocks] = hi - 1;
    std::vector<int> parity(blocks, 0);
    ParallelFor(blocks, plan_.threads, [&](int64_t k) {
      parity[k] = QuoteParity(plan_.data.data(), region_begin[k], region_begin[k + 1], plan_.quote);
      if (release_) release_(region_begin[k], region_begin[k + 1]);
    });
    // Quote parity of [data_start_, region_begin[0]): counted, or from the caller's parity of
    // [0, range_begin) without the bytes before the data and those from region_begin[0] on.
    int parity_before;
    if (options_.quote_parity_before_range >= 0 && options_.range_begin > data_start_) {
      parity_before = (options_.quote_parity_before_range & 1) ^
                      QuoteParity(plan_.data.data(), 0, data_start_, plan_.quote) ^
                      QuoteParity(plan_.data.data(), region_begin[0], options_.range_begin,
                                  plan_.quote);
    } else {
      parity_before = ParallelQuoteParity(plan_, data_start_, region_begin[0]);
    }
    std::vector<int> parity_at(blocks + 1);
    parity_at[0] = parity_before;
    for (int64_t k = 0; k < blocks; ++k) parity_at[k + 1] = parity_at[k] ^ parity[k];

    std::vector<int64_t> starts(blocks + 1);
    const int64_t size = static_cast<int64_t>(plan_.data.size());
    if (hi >= size) {
      starts[blocks] = size;
    } else {
      const int64_t end = FindRowEnd(plan_, hi - 1, size, parity_at[blocks]);
      starts[blocks] = end < 0 ? size : end + 1;
    }
    std::vector<int64_t> found(blocks, -1);
    ParallelFor(blocks, plan_.threads, [&](int64_t k) {
      if (k == 0 && lo == data_start_) {
        found[k] = data_start_;
        return;
      }
      const int64_t end = FindRowEnd(plan_, region_begin[k], region_begin[k + 1], parity_at[k]);
      if (end >= 0) found[k] = end + 1;
    });
    for (int64_t k = blocks - 1; k >= 0; --k) {
      starts[k] = found[k] >= 0 ? found[k] : starts[k + 1];
    }
    return starts;
  }

  Result<Table> Read() {
    DEEPRC_RETURN_NOT_OK(Prepare());
    DEEPRC_RETURN_NOT_OK(InferFromSample());
    const int num_slots = plan_.num_slots();
    const int64_t size = static_cast<int64_t>(plan_.data.size());
    const int64_t lo = std::max(options_.range_begin, data_start_);
    const int64_t hi = options_.range_end < 0 ? size : std::min(options_.range_end, size);
    std::vector<int64_t> starts;
    if (lo < hi) starts = FindBlockStarts(lo, hi);
    const int64_t blocks = starts.empty() ? 0 : static_cast<int64_t>(starts.size()) - 1;

    // Rows per block, counted from quote parity (blank lines included: an upper bound), give each
    // block its place in the output.
    std::vector<int64_t> row_offset(blocks + 1, 0);
    ParallelFor(blocks, plan_.threads, [&](int64_t k) {
      row_offset[k + 1] = CountRows(starts[k], starts[k + 1]);
      if (release_) release_(starts[k], starts[k + 1]);
    });
    for (int64_t k = 0; k < blocks; ++k) row_offset[k + 1] += row_offset[k];
    FixedOutputs outputs(num_slots, row_offset[blocks]);

    std::vector<BlockResult> results(blocks);
    const std::vector<bool> all_slots(num_slots, true);
    auto convert = [&](int64_t k, const std::vector<std::optional<DataType>>& types,
                       const std::vector<bool>& wanted, BlockResult* result) -> Status {
      // The field spans of a block are scratch memory: one area per thread, reused.
      thread_local std::vector<FieldSpan> scratch;
      TokenizedBlock block;
      block.fields.swap(scratch);
      Tokenize(plan_, starts[k], starts[k + 1], -1, &block);
      Status status;
      if (block.rows > row_offset[k + 1] - row_offset[k]) {
        // Only malformed quoting could make the parser and the parity count disagree, and the
        // parser says how; never write past the block's place.
        status = !block.error.ok()
                     ? block.error
                     : Status::Internal(
                           "{}: the parser found {} rows where quote parity counted {}",
                           plan_.Where(starts[k]), block.rows, row_offset[k + 1] - row_offset[k]);
      } else {
        status = ConvertBlock(plan_, block, types, wanted, &outputs, row_offset[k], result);
      }
      block.fields.swap(scratch);
      return status;
    };
    ParallelFor(blocks, plan_.threads, [&](int64_t k) {
      if (starts[k] >= starts[k + 1]) {
        results[k].chunks.resize(num_slots);
        for (auto& chunk : results[k].chunks) chunk.all_null = true;
        return;
      }
      results[k].status = convert(k, plan_.fixed_types, all_slots, &results[k]);
      if (release_) release_(starts[k], starts[k + 1]);
    });
    for (const auto& result : results) DEEPRC_RETURN_NOT_OK(result.status);

    // Join the types of the blocks.
    std::vector<DataType> types(num_slots);
    for (int slot = 0; slot < num_slots; ++slot) {
      if (plan_.fixed_types[slot]) {
        types[slot] = *plan_.fixed_types[slot];
        continue;
      }
      bool seen = false;
      uint8_t candidates = kCanAnything;
      for (const auto& result : results) {
        const Chunk& chunk = result.chunks[slot];
        if (chunk.all_null) continue;
        seen = true;
        candidates &= chunk.candidates;
      }
      types[slot] = seen ? TypeOfCandidates(candidates) : DataType::String();
    }

    // Blocks converted to another type than the join are converted again.
    std::vector<int64_t> redo;
    for (int64_t k = 0; k < blocks; ++k) {
      for (int slot = 0; slot < num_slots; ++slot) {
        const Chunk& chunk = results[k].chunks[slot];
        if (NeedsRedo(chunk, types[slot], results[k].rows)) {
          redo.push_back(k);
          break;
        }
      }
    }
    std::vector<std::optional<DataType>> final_types(types.begin(), types.end());
    std::vector<Status> redo_status(redo.size());
    ParallelFor(static_cast<int64_t>(redo.size()), plan_.threads, [&](int64_t i) {
      const int64_t k = redo[i];
      std::vector<bool> wanted(num_slots, false);
      for (int slot = 0; slot < num_slots; ++slot) {
        wanted[slot] = NeedsRedo(results[k].chunks[slot], types[slot], results[k].rows);
      }
      BlockResult again;
      redo_status[i] = convert(k, final_types, wanted, &again);
      for (int slot = 0; slot < num_slots; ++slot) {
        if (wanted[slot]) results[k].chunks[slot] = std::move(again.chunks[slot]);
      }
    });
    for (const auto& status : redo_status) DEEPRC_RETURN_NOT_OK(status);

    std::vector<Column> columns(num_slots);
    for (int slot = 0; slot < num_slots; ++slot) {
      if (IsFixedWidth(types[slot].id)) {
        DEEPRC_ASSIGN_OR_RAISE(columns[slot],
                               AssembleFixed(slot, types[slot], results, row_offset, &outputs));
        continue;
      }
      std::vector<Column> chunks;
      for (auto& result : results) {
        Chunk& chunk = result.chunks[slot];
        if (result.rows == 0) continue;
        if (chunk.all_null) {
          DEEPRC_ASSIGN_OR_RAISE(chunk.data.column, Column::MakeAllNull(types[slot], result.rows));
        }
        chunks.push_back(std::move(chunk.data.column));
      }
      if (chunks.empty()) {
        DEEPRC_ASSIGN_OR_RAISE(columns[slot], Column::MakeAllNull(types[slot], 0));
      } else {
        DEEPRC_ASSIGN_OR_RAISE(columns[slot], Concatenate(chunks, types[slot], plan_.threads));
      }
      for (auto& result : results) result.chunks[slot].data = Converted{};
    }
    int64_t rows = 0;
    for (const auto& result : results) rows += result.rows;
    return Table::Make(MakeSchema(types), std::move(columns), rows);
  }

  // The schema alone: from the sample when inference_rows >= 0, else from a full read.
  Result<Schema> ReadSchema() {
    if (options_.inference_rows < 0) {
      DEEPRC_ASSIGN_OR_RAISE(Table table, Read());
      return table.schema();
    }
    DEEPRC_RETURN_NOT_OK(Prepare());
    DEEPRC_RETURN_NOT_OK(InferFromSample());
    std::vector<DataType> types;
    for (const auto& type : plan_.fixed_types) types.push_back(*type);
    return MakeSchema(types);
  }

 private:
  bool NeedsRedo(const Chunk& chunk, const DataType& type, int64_t rows) const {
    if (rows == 0) return false;
    if (chunk.all_null) {
      // Under string rules an empty field is a value unless "" is a null token.
      return type.id == TypeId::kString && !nulls_.empty_string_is_null();
    }
    return !(chunk.data.type == type);
  }

  // Rows starting in [begin, end), a row start: the newlines outside quotes, and a last row
  // without a line end. Blank lines count too, so this is an upper bound of what Tokenize finds.
  int64_t CountRows(int64_t begin, int64_t end) const {
    if (begin >= end) return 0;
    const char* data = plan_.data.data();
    const char quote = plan_.quote;
    int64_t rows = 0;
    int64_t i = begin;
#if defined(__SSE2__)
    const __m128i quotes = _mm_set1_epi8(quote);
    const __m128i newlines = _mm_set1_epi8('\n');
    uint64_t inside = 0;  // all ones when the previous window ended inside quotes
    for (; i + 64 <= end; i += 64) {
      uint64_t quote_bits = 0;
      uint64_t newline_bits = 0;
      for (int part = 0; part < 4; ++part) {
        const __m128i bytes =
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i + 16 * part));
        quote_bits |= static_cast<uint64_t>(
                          static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, quotes))))
                      << (16 * part);
        newline_bits |= static_cast<uint64_t>(static_cast<uint32_t>(
                            _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, newlines))))
                        << (16 * part);
      }
      // Bit j of the prefix XOR: an odd number of quotes in bytes 0..j of the window.
      uint64_t in_quotes = quote_bits;
      in_quotes ^= in_quotes << 1;
      in_quotes ^= in_quotes << 2;
      in_quotes ^= in_quotes << 4;
      in_quotes ^= in_quotes << 8;
      in_quotes ^= in_quotes << 16;
      in_quotes ^= in_quotes << 32;
      in_quotes ^= inside;
      rows += PopCount(newline_bits & ~in_quotes);
      inside = static_cast<uint64_t>(static_cast<int64_t>(in_quotes) >> 63);
    }
    int parity = static_cast<int>(inside & 1);
#else
    int parity = 0;
#endif
    for (; i < end; ++i) {
      if (data[i] == quote) {
        parity ^= 1;
      } else if (data[i] == '\n' && parity == 0) {
        ++rows;
      }
    }
    if (data[end - 1] != '\n') ++rows;  // the last row of the data, without a line end
    return rows;
  }

  // A fixed-width column from the values the blocks wrote in place and their validity bits.
  Result<Column> AssembleFixed(int slot, const DataType& type,
                               const std::vector<BlockResult>& results,
                               const std::vector<int64_t>& row_offset, FixedOutputs* outputs) {
    DEEPRC_ASSIGN_OR_RAISE(auto values, outputs->Take(slot, type));
    const int width = ByteWidth(type.id);
    int64_t rows = 0;
    int64_t nulls = 0;
    bool packed = true;  // every block filled its whole place (no blank lines)
    for (size_t k = 0; k < results.size(); ++k) {
      const BlockResult& result = results[k];
      const Chunk& chunk = result.chunks[slot];
      if (chunk.all_null && result.rows > 0) {
        std::memset(values->mutable_data() + row_offset[k] * width, 0,
                    static_cast<size_t>(result.rows * width));
      }
      nulls += chunk.all_null ? result.rows : chunk.data.null_count;
      packed = packed && result.rows == row_offset[k + 1] - row_offset[k];
      rows += result.rows;
    }
    if (!packed) {
      // Close the gaps, front to back (each block moves down, never over a later one).
      int64_t position = 0;
      for (size_t k = 0; k < results.size(); ++k) {
        std::memmove(values->mutable_data() + position * width,
                     values->mutable_data() + row_offset[k] * width,
                     static_cast<size_t>(results[k].rows * width));
        position += results[k].rows;
      }
    }
    std::shared_ptr<Buffer> validity;
    if (nulls > 0) {
      DEEPRC_ASSIGN_OR_RAISE(validity, Buffer::Allocate(bitmap::BytesForBits(rows)));
      int64_t position = 0;
      for (const auto& result : results) {
        const Chunk& chunk = result.chunks[slot];
        if (chunk.all_null) {
          bitmap::SetBitsTo(validity->mutable_data(), position, result.rows, false);
        } else if (chunk.data.validity != nullptr) {
          bitmap::CopyBits(chunk.data.validity->data(), 0, result.rows, validity->mutable_data(),
                           position);
        } else {
          bitmap::SetBitsTo(validity->mutable_data(), position, result.rows, true);
        }
        position += result.rows;
      }
    }
    return Column::Make(type, rows, std::move(values), std::move(validity), nulls);
  }

  const ReadOptions& options_;
  NullMatcher nulls_;
  Plan plan_;
  int64_t data_start_ = 0;
  std::function<void(int64_t, int64_t)> release_;
};

}  // namespace

Result<Table> ReadCsvText(std::string_view text, const ReadOptions& options,
                          std::string_view name) {
  Reader reader(text, options, name);
  return reader.Read();
}

Result<Table> ReadCsv(const std::string& path, const ReadOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(auto file, MappedFile::Open(path));
  Reader reader(file->view(), options, path);
  reader.set_release([&file](int64_t begin, int64_t end) { file->Release(begin, end); });
  return reader.Read();
}

Result<Schema> InferSchema(const std::string& path, const ReadOptions& options) {
  DEEPRC_ASSIGN_OR_RAISE(auto file, MappedFile::Open(path));
  Reader reader(file->view(), options, path);
  return reader.ReadSchema();
}

}  // namespace deeprc::csv
