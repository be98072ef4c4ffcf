#include "deeprc/table/table_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include <xxhash.h>
#include <zstd.h>
#ifdef DEEPRC_HAVE_LZ4
#include <lz4.h>
#endif

#include "deeprc/core/thread_pool.h"
#include "deeprc/table/bitmap.h"

namespace deeprc {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the table file is little-endian and read by memory mapping");

constexpr int64_t kHeaderSize = 64;
constexpr int64_t kAlignment = 64;

// Header field offsets.
constexpr int kVersionAt = 8;
constexpr int kHeaderSizeAt = 12;
constexpr int kFileSizeAt = 16;
constexpr int kMetadataOffsetAt = 24;
constexpr int kMetadataSizeAt = 32;
constexpr int kMetadataChecksumAt = 40;
constexpr int kRowsAt = 48;
constexpr int kHeaderChecksumAt = 56;

enum class BufferKind : uint8_t { kValidity = 0, kOffsets = 1, kValues = 2 };

std::string_view BufferKindName(BufferKind kind) {
  switch (kind) {
    case BufferKind::kValidity: return "validity";
    case BufferKind::kOffsets: return "offsets";
    case BufferKind::kValues: return "values";
  }
  return "?";
}

int64_t Padded(int64_t size) { return (size + kAlignment - 1) / kAlignment * kAlignment; }

template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

template <typename T>
T Get(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

void PutString(std::string& out, std::string_view text) {
  Put<uint32_t>(out, static_cast<uint32_t>(text.size()));
  out.append(text);
}

// Bounds-checked reading of the metadata section.
class MetadataReader {
 public:
  MetadataReader(const uint8_t* data, int64_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  template <typename T>
  Result<T> Read(std::string_view what) {
    if (position_ + static_cast<int64_t>(sizeof(T)) > size_) return Overrun(what);
    T value = Get<T>(data_ + position_);
    position_ += sizeof(T);
    return value;
  }
  Result<std::string> ReadString(std::string_view what) {
    DEEPRC_ASSIGN_OR_RAISE(uint32_t length, Read<uint32_t>(what));
    if (position_ + static_cast<int64_t>(length) > size_) return Overrun(what);
    std::string text(reinterpret_cast<const char*>(data_ + position_), length);
    position_ += length;
    return text;
  }
  bool AtEnd() const { return position_ == size_; }

 private:
  Status Overrun(std::string_view what) const {
    return Status::Invalid("'{}': corrupt table file: metadata ends inside the {}", path_, what);
  }

  const uint8_t* data_;
  int64_t size_;
  int64_t position_ = 0;
  const std::string& path_;
};

// What the metadata says about one stored buffer.
struct BufferEntry {
  BufferKind kind = BufferKind::kValues;
  TableFileCompression compression = TableFileCompression::kNone;
  bool present = false;
  int64_t file_offset = 0;
  int64_t stored_size = 0;
  int64_t raw_size = 0;
  uint64_t checksum = 0;
  // No checksum was stored (messages written with checksums off); the reader skips the check.
  bool unchecked = false;
};

// Bit of the flags byte of a buffer entry (zero in files written before it existed).
constexpr uint8_t kUncheckedFlag = 1;

constexpr int64_t kBufferEntrySize = 1 + 1 + 1 + 1 + 4 + 8 * 4;

void PutBufferEntry(std::string& out, const BufferEntry& entry) {
  Put<uint8_t>(out, static_cast<uint8_t>(entry.kind));
  Put<uint8_t>(out, static_cast<uint8_t>(entry.compression));
  Put<uint8_t>(out, entry.present ? 1 : 0);
  Put<uint8_t>(out, entry.unchecked ? kUncheckedFlag : 0);
  Put<uint32_t>(out, 0);
  Put<int64_t>(out, entry.file_offset);
  Put<int64_t>(out, entry.stored_size);
  Put<int64_t>(out, entry.raw_size);
  Put<uint64_t>(out, entry.checksum);
}

uint64_t ChecksumPadded(const uint8_t* data, int64_t size) {
  static const uint8_t kZeros[kAlignment] = {};
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  if (size > 0) XXH64_update(state, data, static_cast<size_t>(size));
  const int64_t padding = Padded(size) - size;
  if (padding > 0) XXH64_update(state, kZeros, static_cast<size_t>(padding));
  const uint64_t hash = XXH64_digest(state);
  XXH64_freeState(state);
  return hash;
}

std::string ErrnoText() { return std::strerror(errno); }

Status WriteAll(int fd, const uint8_t* data, int64_t size, int64_t at, const std::string& path) {
  while (size > 0) {
    const size_t chunk = static_cast<size_t>(std::min<int64_t>(size, int64_t{1} << 30));
    const ssize_t written = ::pwrite(fd, data, chunk, at);
    if (written < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("'{}': write failed at byte {}: {}", path, at, ErrnoText());
    }
    data += written;
    size -= written;
    at += written;
  }
  return Status::OK();
}

Status ReadAll(int fd, uint8_t* data, int64_t size, int64_t at, const std::string& path) {
  while (size > 0) {
    const size_t chunk = static_cast<size_t>(std::min<int64_t>(size, int64_t{1} << 30));
    const ssize_t got = ::pread(fd, data, chunk, at);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("'{}': read failed at byte {}: {}", path, at, ErrnoText());
    }
    if (got == 0) return Status::Invalid("'{}': truncated at byte {}", path, at);
    data += got;
    size -= got;
    at += got;
  }
  return Status::OK();
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { Close(); }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  int get() const { return fd_; }
  int Close() {
    int result = 0;
    if (fd_ >= 0) result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

// The metadata section: schema, null counts and buffer entries of every column.
std::string EncodeMetadata(const Schema& schema, const std::vector<int64_t>& null_counts,
                           const std::vector<std::vector<BufferEntry>>& entries) {
  std::string metadata;
  Put<uint32_t>(metadata, static_cast<uint32_t>(schema.num_fields()));
  for (int c = 0; c < schema.num_fields(); ++c) {
    const Field& field = schema.field(c);
    PutString(metadata, field.name);
    Put<uint8_t>(metadata, static_cast<uint8_t>(field.type.id));
    Put<uint8_t>(metadata, static_cast<uint8_t>(field.type.unit));
    Put<uint16_t>(metadata, 0);
    PutString(metadata, field.type.timezone);
    Put<int64_t>(metadata, null_counts[c]);
    Put<uint8_t>(metadata, static_cast<uint8_t>(entries[c].size()));
    for (const auto& entry : entries[c]) PutBufferEntry(metadata, entry);
  }
  return metadata;
}

// The 64-byte header for a file whose metadata (already encoded) starts at `metadata_offset`.
void EncodeHeader(int64_t rows, int64_t metadata_offset, const std::string& metadata,
                  uint8_t* header) {
  std::memset(header, 0, kHeaderSize);
  std::memcpy(header, kTableFileMagic, 8);
  const uint32_t version = kTableFileVersion;
  const uint32_t header_size = kHeaderSize;
  const auto metadata_size = static_cast<int64_t>(metadata.size());
  const int64_t file_size = metadata_offset + metadata_size;
  const uint64_t metadata_checksum = XXH64(metadata.data(), metadata.size(), 0);
  std::memcpy(header + kVersionAt, &version, 4);
  std::memcpy(header + kHeaderSizeAt, &header_size, 4);
  std::memcpy(header + kFileSizeAt, &file_size, 8);
  std::memcpy(header + kMetadataOffsetAt, &metadata_offset, 8);
  std::memcpy(header + kMetadataSizeAt, &metadata_size, 8);
  std::memcpy(header + kMetadataChecksumAt, &metadata_checksum, 8);
  std::memcpy(header + kRowsAt, &rows, 8);
  const uint64_t header_checksum = XXH64(header, kHeaderChecksumAt, 0);
  std::memcpy(header + kHeaderChecksumAt, &header_checksum, 8);
}

// ---------------------------------------------------------------------------------------------
// Writing

// One buffer to write: the bytes (borrowed from the table or owned by `owned`), and how they go
// into the file.
struct PendingBuffer {
  BufferEntry entry;
  const uint8_t* data = nullptr;
  std::shared_ptr<const Buffer> owned;
};

struct PendingColumn {
  std::vector<PendingBuffer> buffers;
};

// Bits [offset, offset + length) of `bits`, starting at bit 0.
Result<PendingBuffer> NormalizedBits(BufferKind kind, const uint8_t* bits, int64_t offset,
                                     int64_t length) {
  PendingBuffer pending;
  pending.entry.kind = kind;
  pending.entry.present = true;
  pending.entry.raw_size = bitmap::BytesForBits(length);
  if (offset % 8 == 0) {
    pending.data = bits + offset / 8;
  } else {
    DEEPRC_ASSIGN_OR_RAISE(auto copy, Buffer::AllocateZeroed(pending.entry.raw_size));
    bitmap::CopyBits(bits, offset, length, copy->mutable_data(), 0);
    pending.data = copy->data();
    pending.owned = std::move(copy);
  }
  return pending;
}

Result<PendingColumn> PlanColumn(const Column& column) {
  PendingColumn plan;
  const int64_t length = column.length();
  const int64_t offset = column.offset();
  if (column.null_count() > 0 && column.validity_bits() != nullptr) {
    DEEPRC_ASSIGN_OR_RAISE(auto validity, NormalizedBits(BufferKind::kValidity,
                                                         column.validity_bits(), offset, length));
    plan.buffers.push_back(std::move(validity));
  } else {
    PendingBuffer absent;
    absent.entry.kind = BufferKind::kValidity;
    plan.buffers.push_back(absent);
  }
  const TypeId id = column.type_id();
  if (id == TypeId::kString) {
    const int64_t* offsets = column.StringOffsets();
    const int64_t first = offsets[0];
    const int64_t last = offsets[length];
    PendingBuffer offsets_buffer;
    offsets_buffer.entry.kind = BufferKind::kOffsets;
    offsets_buffer.entry.present = true;
    offsets_buffer.entry.raw_size = (length + 1) * 8;
    if (first == 0) {
      offsets_buffer.data = reinterpret_cast<const uint8_t*>(offsets);
    } else {
      DEEPRC_ASSIGN_OR_RAISE(auto rebased, Buffer::Allocate((length + 1) * 8));
      auto* out = rebased->mutable_data_as<int64_t>();
      for (int64_t i = 0; i <= length; ++i) out[i] = offsets[i] - first;
      offsets_buffer.data = rebased->data();
      offsets_buffer.owned = std::move(rebased);
    }
    plan.buffers.push_back(std::move(offsets_buffer));
    PendingBuffer bytes;
    bytes.entry.kind = BufferKind::kValues;
    bytes.entry.present = true;
    bytes.entry.raw_size = last - first;
    bytes.data = reinterpret_cast<const uint8_t*>(column.StringBytes()) + first;
    plan.buffers.push_back(std::move(bytes));
  } else if (id == TypeId::kBool) {
    DEEPRC_ASSIGN_OR_RAISE(auto values, NormalizedBits(BufferKind::kValues, column.bool_bits(),
                                                       offset, length));
    plan.buffers.push_back(std::move(values));
  } else {
    PendingBuffer values;
    values.entry.kind = BufferKind::kValues;
    values.entry.present = true;
    const int width = ByteWidth(id);
    values.entry.raw_size = length * width;
    values.data = column.values_buffer()->data() + offset * width;
    plan.buffers.push_back(std::move(values));
  }
  return plan;
}

// Replaces the bytes of `pending` by their compressed form when that is smaller.
Status Compress(PendingBuffer* pending, TableFileCompression compression, int level) {
  const int64_t raw = pending->entry.raw_size;
  pending->entry.stored_size = raw;
  if (compression == TableFileCompression::kNone || raw < 256) return Status::OK();
  if (compression == TableFileCompression::kZstd) {
    const size_t bound = ZSTD_compressBound(static_cast<size_t>(raw));
    DEEPRC_ASSIGN_OR_RAISE(auto out, Buffer::Allocate(static_cast<int64_t>(bound)));
    const size_t size = ZSTD_compress(out->mutable_data(), bound, pending->data,
                                      static_cast<size_t>(raw), level);
    if (ZSTD_isError(size)) {
      return Status::Internal("zstd compression failed: {}", ZSTD_getErrorName(size));
    }
    if (static_cast<int64_t>(size) >= raw) return Status::OK();
    out->Truncate(static_cast<int64_t>(size));
    pending->entry.stored_size = static_cast<int64_t>(size);
    pending->entry.compression = TableFileCompression::kZstd;
    pending->data = out->data();
    pending->owned = std::move(out);
    return Status::OK();
  }
#ifdef DEEPRC_HAVE_LZ4
  if (raw > LZ4_MAX_INPUT_SIZE) return Status::OK();  // too large for one lz4 block: store
  const int bound = LZ4_compressBound(static_cast<int>(raw));
  DEEPRC_ASSIGN_OR_RAISE(auto out, Buffer::Allocate(bound));
  const int size = LZ4_compress_default(reinterpret_cast<const char*>(pending->data),
                                        out->mutable_data_as<char>(), static_cast<int>(raw), bound);
  if (size <= 0 || size >= raw) return Status::OK();
  out->Truncate(size);
  pending->entry.stored_size = size;
  pending->entry.compression = TableFileCompression::kLz4;
  pending->data = out->data();
  pending->owned = std::move(out);
  return Status::OK();
#else
  return Status::NotImplemented("this build of deeprc has no lz4 support");
#endif
}

// The first error of a parallel loop.
class FirstError {
 public:
  void Set(Status status) {
    if (status.ok()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (status_.ok()) status_ = std::move(status);
  }
  Status Get() {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
  }

 private:
  std::mutex mutex_;
  Status status_;
};

// Where the writer puts the bytes: a file (pwrite) or a memory buffer. Write may be called from
// several threads at once for disjoint ranges.
class Sink {
 public:
  virtual ~Sink() = default;
  // Called once, before any Write, with the final size.
  virtual Status Open(int64_t total_size) = 0;
  virtual Status Write(const uint8_t* data, int64_t size, int64_t at) = 0;
};

class FileSink final : public Sink {
 public:
  FileSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  Status Open(int64_t) override { return Status::OK(); }
  Status Write(const uint8_t* data, int64_t size, int64_t at) override {
    return WriteAll(fd_, data, size, at, path_);
  }

 private:
  int fd_;
  const std::string& path_;
};

class MemorySink final : public Sink {
 public:
  Status Open(int64_t total_size) override {
    DEEPRC_ASSIGN_OR_RAISE(buffer_, Buffer::Allocate(total_size));
    return Status::OK();
  }
  Status Write(const uint8_t* data, int64_t size, int64_t at) override {
    if (size > 0) std::memcpy(buffer_->mutable_data() + at, data, static_cast<size_t>(size));
    return Status::OK();
  }
  std::shared_ptr<Buffer> Finish() { return std::move(buffer_); }

 private:
  std::shared_ptr<Buffer> buffer_;
};

// Plans, compresses, checksums and writes the whole table through `sink`.
Status WriteContents(const Table& table, Sink& sink, const TableFileWriteOptions& options) {
  const int threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  std::vector<PendingColumn> columns;
  columns.reserve(table.num_columns());
  for (const auto& column : table.columns()) {
    DEEPRC_ASSIGN_OR_RAISE(auto plan, PlanColumn(column));
    columns.push_back(std::move(plan));
  }
  std::vector<PendingBuffer*> all;
  for (auto& column : columns) {
    for (auto& buffer : column.buffers) {
      if (buffer.entry.present) all.push_back(&buffer);
    }
  }
  FirstError error;
  ParallelFor(static_cast<int64_t>(all.size()), threads, [&](int64_t i) {
    PendingBuffer& buffer = *all[i];
    error.Set(Compress(&buffer, options.compression, options.compression_level));
    if (options.checksums) {
      buffer.entry.checksum = ChecksumPadded(buffer.data, buffer.entry.stored_size);
    } else {
      buffer.entry.unchecked = true;
    }
  });
  DEEPRC_RETURN_NOT_OK(error.Get());

  int64_t position = kHeaderSize;
  for (PendingBuffer* buffer : all) {
    buffer->entry.file_offset = position;
    position += Padded(buffer->entry.stored_size);
  }
  const int64_t metadata_offset = position;

  std::vector<int64_t> null_counts;
  std::vector<std::vector<BufferEntry>> entries(columns.size());
  for (int c = 0; c < table.num_columns(); ++c) {
    null_counts.push_back(table.column(c).null_count());
    for (const auto& buffer : columns[c].buffers) entries[c].push_back(buffer.entry);
  }
  const std::string metadata = EncodeMetadata(table.schema(), null_counts, entries);
  const auto metadata_size = static_cast<int64_t>(metadata.size());
  const int64_t file_size = metadata_offset + metadata_size;
  DEEPRC_RETURN_NOT_OK(sink.Open(file_size));

  // Large buffers are copied in pieces so that one big column does not run on one thread.
  constexpr int64_t kPiece = int64_t{8} << 20;
  struct Piece {
    const PendingBuffer* buffer;
    int64_t begin;
    int64_t end;
  };
  std::vector<Piece> pieces;
  for (const PendingBuffer* buffer : all) {
    const int64_t size = buffer->entry.stored_size;
    for (int64_t begin = 0; begin < size; begin += kPiece) {
      pieces.push_back({buffer, begin, std::min(size, begin + kPiece)});
    }
    static const uint8_t kZeros[kAlignment] = {};
    const int64_t padding = Padded(size) - size;
    if (padding > 0) {
      DEEPRC_RETURN_NOT_OK(sink.Write(kZeros, padding, buffer->entry.file_offset + size));
    }
  }
  ParallelFor(static_cast<int64_t>(pieces.size()), threads, [&](int64_t i) {
    const Piece& piece = pieces[i];
    error.Set(sink.Write(piece.buffer->data + piece.begin, piece.end - piece.begin,
                         piece.buffer->entry.file_offset + piece.begin));
  });
  DEEPRC_RETURN_NOT_OK(error.Get());
  DEEPRC_RETURN_NOT_OK(sink.Write(reinterpret_cast<const uint8_t*>(metadata.data()),
                                  metadata_size, metadata_offset));

  uint8_t header[kHeaderSize];
  EncodeHeader(table.num_rows(), metadata_offset, metadata, header);
  return sink.Write(header, kHeaderSize, 0);
}

// ---------------------------------------------------------------------------------------------
// Reading

// A read-only memory mapping of a whole file, unmapped when the last buffer into it goes.
class Mapping {
 public:
  Mapping(const uint8_t* data, int64_t size) : data_(data), size_(size) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), static_cast<size_t>(size_));
  }
  const uint8_t* data() const { return data_; }

 private:
  const uint8_t* data_;
  int64_t size_;
};

struct ParsedHeader {
  uint32_t version = 0;
  int64_t file_size = 0;
  int64_t metadata_offset = 0;
  int64_t metadata_size = 0;
  uint64_t metadata_checksum = 0;
  int64_t rows = 0;
};

// Checks magic, version, header checksum and size against the file actually there.
Result<ParsedHeader> CheckHeader(const uint8_t* header, int64_t available, int64_t actual_size,
                                 const std::string& path) {
  const int64_t magic_bytes = std::min<int64_t>(available, 8);
  if (magic_bytes < 8 || std::memcmp(header, kTableFileMagic, 8) != 0) {
    if (magic_bytes > 0 && magic_bytes < 8 &&
        std::memcmp(header, kTableFileMagic, static_cast<size_t>(magic_bytes)) == 0) {
      return Status::Invalid("'{}': truncated at byte {} (a table file header has {} bytes)", path,
                             actual_size, kHeaderSize);
    }
    return Status::Invalid(
        "'{}' is not a deeprc table file (it does not start with the magic bytes \"DEEPRCTB\")",
        path);
  }
  if (available >= kHeaderSizeAt) {
    const auto version = Get<uint32_t>(header + kVersionAt);
    if (version != kTableFileVersion) {
      return Status::Invalid("'{}': table file version {} unsupported (this build reads {})", path,
                             version, kTableFileVersion);
    }
  }
  if (available < kHeaderSize) {
    return Status::Invalid("'{}': truncated at byte {} (a table file header has {} bytes)", path,
                           actual_size, kHeaderSize);
  }
  const auto stored_checksum = Get<uint64_t>(header + kHeaderChecksumAt);
  if (XXH64(header, kHeaderChecksumAt, 0) != stored_checksum) {
    return Status::Invalid("'{}': checksum mismatch in the table file header (file is corrupt)",
                           path);
  }
  ParsedHeader parsed;
  parsed.version = Get<uint32_t>(header + kVersionAt);
  parsed.file_size = Get<int64_t>(header + kFileSizeAt);
  parsed.metadata_offset = Get<int64_t>(header + kMetadataOffsetAt);
  parsed.metadata_size = Get<int64_t>(header + kMetadataSizeAt);
  parsed.metadata_checksum = Get<uint64_t>(header + kMetadataChecksumAt);
  parsed.rows = Get<int64_t>(header + kRowsAt);
  if (Get<uint32_t>(header + kHeaderSizeAt) != kHeaderSize || parsed.rows < 0 ||
      parsed.metadata_offset < kHeaderSize || parsed.metadata_size < 4 ||
      parsed.metadata_offset + parsed.metadata_size != parsed.file_size) {
    return Status::Invalid("'{}': corrupt table file header (inconsistent sizes)", path);
  }
  if (actual_size < parsed.file_size) {
    return Status::Invalid("'{}': truncated at byte {} (the header says the file has {} bytes)",
                           path, actual_size, parsed.file_size);
  }
  if (actual_size > parsed.file_size) {
    return Status::Invalid("'{}': {} unexpected bytes after the end of the table file", path,
                           actual_size - parsed.file_size);
  }
  return parsed;
}

struct ColumnEntry {
  Field field;
  int64_t null_count = 0;
  std::vector<BufferEntry> buffers;
};

Result<std::vector<ColumnEntry>> ParseMetadata(const uint8_t* data, const ParsedHeader& header,
                                               bool verify, const std::string& path) {
  if (verify && XXH64(data, static_cast<size_t>(header.metadata_size), 0) !=
                    header.metadata_checksum) {
    return Status::Invalid("'{}': checksum mismatch in the table file metadata (file is corrupt)",
                           path);
  }
  MetadataReader reader(data, header.metadata_size, path);
  DEEPRC_ASSIGN_OR_RAISE(uint32_t num_columns, reader.Read<uint32_t>("column count"));
  if (num_columns > header.metadata_size) {
    return Status::Invalid("'{}': corrupt table file: {} columns cannot fit in the metadata",
                           path, num_columns);
  }
  std::vector<ColumnEntry> columns(num_columns);
  for (uint32_t c = 0; c < num_columns; ++c) {
    ColumnEntry& column = columns[c];
    DEEPRC_ASSIGN_OR_RAISE(column.field.name, reader.ReadString("column name"));
    DEEPRC_ASSIGN_OR_RAISE(uint8_t type_id, reader.Read<uint8_t>("column type"));
    DEEPRC_ASSIGN_OR_RAISE(uint8_t unit, reader.Read<uint8_t>("time unit"));
    DEEPRC_ASSIGN_OR_RAISE(uint16_t reserved, reader.Read<uint16_t>("column type"));
    (void)reserved;
    DEEPRC_ASSIGN_OR_RAISE(std::string zone, reader.ReadString("time zone"));
    if (type_id > static_cast<uint8_t>(TypeId::kTimestamp) ||
        unit > static_cast<uint8_t>(TimeUnit::kNano)) {
      return Status::Invalid("'{}': corrupt table file: column '{}' has unknown type code {}",
                             path, column.field.name, type_id);
    }
    column.field.type = DataType(static_cast<TypeId>(type_id), static_cast<TimeUnit>(unit),
                                 std::move(zone));
    DEEPRC_ASSIGN_OR_RAISE(column.null_count, reader.Read<int64_t>("null count"));
    DEEPRC_ASSIGN_OR_RAISE(uint8_t buffer_count, reader.Read<uint8_t>("buffer count"));
    const uint8_t expected = column.field.type.id == TypeId::kString ? 3 : 2;
    if (buffer_count != expected) {
      return Status::Invalid("'{}': corrupt table file: column '{}' has {} buffers, expected {}",
                             path, column.field.name, buffer_count, expected);
    }
    for (uint8_t b = 0; b < buffer_count; ++b) {
      BufferEntry entry;
      DEEPRC_ASSIGN_OR_RAISE(uint8_t kind, reader.Read<uint8_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(uint8_t compression, reader.Read<uint8_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(uint8_t present, reader.Read<uint8_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(uint8_t flags, reader.Read<uint8_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(uint32_t pad32, reader.Read<uint32_t>("buffer entry"));
      entry.unchecked = (flags & kUncheckedFlag) != 0;
      (void)pad32;
      DEEPRC_ASSIGN_OR_RAISE(entry.file_offset, reader.Read<int64_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(entry.stored_size, reader.Read<int64_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(entry.raw_size, reader.Read<int64_t>("buffer entry"));
      DEEPRC_ASSIGN_OR_RAISE(entry.checksum, reader.Read<uint64_t>("buffer entry"));
      entry.kind = static_cast<BufferKind>(kind);
      entry.compression = static_cast<TableFileCompression>(compression);
      entry.present = present != 0;
      if (kind > 2 || compression > 2 || entry.file_offset < kHeaderSize ||
          entry.file_offset % kAlignment != 0 || entry.stored_size < 0 || entry.raw_size < 0 ||
          entry.file_offset + Padded(entry.stored_size) > header.metadata_offset ||
          (entry.compression == TableFileCompression::kNone &&
           entry.stored_size != entry.raw_size)) {
        if (entry.present || kind > 2) {
          return Status::Invalid("'{}': corrupt table file: bad {} buffer entry of column '{}'",
                                 path, BufferKindName(entry.kind), column.field.name);
        }
      }
      column.buffers.push_back(entry);
    }
  }
  if (!reader.AtEnd()) {
    return Status::Invalid("'{}': corrupt table file: metadata has trailing bytes", path);
  }
  return columns;
}

Result<std::shared_ptr<const Buffer>> Decompress(const BufferEntry& entry, const uint8_t* stored,
                                                 const std::string& path,
                                                 const std::string& column) {
  DEEPRC_ASSIGN_OR_RAISE(auto out, Buffer::Allocate(entry.raw_size));
  if (entry.compression == TableFileCompression::kZstd) {
    const size_t size = ZSTD_decompress(out->mutable_data(), static_cast<size_t>(entry.raw_size),
                                        stored, static_cast<size_t>(entry.stored_size));
    if (ZSTD_isError(size) || static_cast<int64_t>(size) != entry.raw_size) {
      return Status::Invalid("'{}': column '{}': {} buffer does not decompress (zstd)", path,
                             column, BufferKindName(entry.kind));
    }
    return std::shared_ptr<const Buffer>(std::move(out));
  }
#ifdef DEEPRC_HAVE_LZ4
  const int size = LZ4_decompress_safe(reinterpret_cast<const char*>(stored),
                                       out->mutable_data_as<char>(),
                                       static_cast<int>(entry.stored_size),
                                       static_cast<int>(entry.raw_size));
  if (size != entry.raw_size) {
    return Status::Invalid("'{}': column '{}': {} buffer does not decompress (lz4)", path, column,
                           BufferKindName(entry.kind));
  }
  return std::shared_ptr<const Buffer>(std::move(out));
#else
  return Status::NotImplemented("'{}': column '{}' is lz4-compressed but this build has no lz4",
                                path, column);
#endif
}

Result<Column> AssembleColumn(const ColumnEntry& entry, int64_t rows,
                              std::vector<std::shared_ptr<const Buffer>> buffers,
                              const std::string& path) {
  const DataType& type = entry.field.type;
  const std::string& name = entry.field.name;
  auto too_small = [&](std::string_view what, int64_t have, int64_t need) {
    return Status::Invalid("'{}': corrupt table file: column '{}' {} buffer has {} bytes, needs {}",
                           path, name, what, have, need);
  };
  std::shared_ptr<const Buffer> validity = std::move(buffers[0]);
  if (validity != nullptr && validity->size() < bitmap::BytesForBits(rows)) {
    return too_small("validity", validity->size(), bitmap::BytesForBits(rows));
  }
  if (entry.null_count < 0 || entry.null_count > rows ||
      (validity == nullptr && entry.null_count != 0)) {
    return Status::Invalid("'{}': corrupt table file: column '{}' has a bad null count {}", path,
                           name, entry.null_count);
  }
  if (type.id == TypeId::kString) {
    const auto& offsets = buffers[1];
    const auto& bytes = buffers[2];
    if (offsets == nullptr || offsets->size() < (rows + 1) * 8) {
      return too_small("offsets", offsets ? offsets->size() : 0, (rows + 1) * 8);
    }
    if (bytes == nullptr) return too_small("values", 0, 0);
    const int64_t* offset_values = offsets->data_as<int64_t>();
    if (offset_values[0] != 0 || offset_values[rows] < 0 || offset_values[rows] > bytes->size()) {
      return Status::Invalid("'{}': corrupt table file: column '{}' string offsets out of range",
                             path, name);
    }
    return Column::MakeString(rows, offsets, bytes, std::move(validity), entry.null_count);
  }
  const auto& values = buffers[1];
  const int64_t need =
      type.id == TypeId::kBool ? bitmap::BytesForBits(rows) : rows * ByteWidth(type.id);
  if (values == nullptr || values->size() < need) {
    return too_small("values", values ? values->size() : 0, need);
  }
  return Column::Make(type, rows, values, std::move(validity), entry.null_count);
}

// The table in the (checked) bytes at `base`: `buffer_at(offset, size)` makes a buffer into them.
Result<Table> ReadContents(
    const uint8_t* base, const ParsedHeader& parsed,
    const std::function<std::shared_ptr<const Buffer>(int64_t, int64_t)>& buffer_at,
    const TableFileReadOptions& options, const std::string& path) {
  const int threads = options.threads > 0 ? options.threads : DefaultThreadCount();
  DEEPRC_ASSIGN_OR_RAISE(
      auto columns,
      ParseMetadata(base + parsed.metadata_offset, parsed, options.verify_checksums, path));

  struct Job {
    int column;
    int buffer;
  };
  std::vector<Job> jobs;
  for (int c = 0; c < static_cast<int>(columns.size()); ++c) {
    for (int b = 0; b < static_cast<int>(columns[c].buffers.size()); ++b) {
      if (columns[c].buffers[b].present) jobs.push_back({c, b});
    }
  }
  std::vector<std::vector<std::shared_ptr<const Buffer>>> buffers(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) buffers[c].resize(columns[c].buffers.size());
  FirstError error;
  try {
    ParallelFor(static_cast<int64_t>(jobs.size()), threads, [&](int64_t j) {
      const auto [c, b] = jobs[j];
      const BufferEntry& entry = columns[c].buffers[b];
      const uint8_t* stored = base + entry.file_offset;
      // The padding is covered too: every byte of the file is checked.
      if (options.verify_checksums && !entry.unchecked &&
          XXH64(stored, static_cast<size_t>(Padded(entry.stored_size)), 0) != entry.checksum) {
        error.Set(Status::Invalid("'{}': checksum mismatch in column '{}' ({} buffer, bytes {}..{})",
                                  path, columns[c].field.name, BufferKindName(entry.kind),
                                  entry.file_offset, entry.file_offset + entry.stored_size));
        return;
      }
      if (entry.compression == TableFileCompression::kNone) {
        buffers[c][b] = buffer_at(entry.file_offset, entry.raw_size);
      } else {
        auto decompressed = Decompress(entry, stored, path, columns[c].field.name);
        if (!decompressed.ok()) {
          error.Set(decompressed.status());
          return;
        }
        buffers[c][b] = decompressed.MoveValueUnsafe();
      }
    });
  } catch (const std::exception& e) {
    return Status::Internal("'{}': reading failed: {}", path, e.what());
  }
  DEEPRC_RETURN_NOT_OK(error.Get());

  std::vector<Field> fields;
  std::vector<Column> result_columns;
  for (size_t c = 0; c < columns.size(); ++c) {
    DEEPRC_ASSIGN_OR_RAISE(Column column,
                           AssembleColumn(columns[c], parsed.rows, std::move(buffers[c]), path));
    fields.push_back(columns[c].field);
    result_columns.push_back(std::move(column));
  }
  return Table::Make(Schema(std::move(fields)), std::move(result_columns), parsed.rows);
}

}  // namespace

Result<TableFileCompression> ParseTableFileCompression(std::string_view text) {
  if (text == "none") return TableFileCompression::kNone;
  if (text == "zstd") return TableFileCompression::kZstd;
  if (text == "lz4") {
#ifdef DEEPRC_HAVE_LZ4
    return TableFileCompression::kLz4;
#else
    return Status::NotImplemented("this build of deeprc has no lz4 support");
#endif
  }
  return Status::Invalid("unknown compression '{}' (expected none, zstd or lz4)", text);
}

Status WriteTableFile(const Table& table, const std::string& path,
                      const TableFileWriteOptions& options) {
  // The temporary file lives in the same folder so that the rename is atomic.
  std::string temp = path + ".tmp-XXXXXX";
  const int raw_fd = ::mkstemp(temp.data());
  if (raw_fd < 0) {
    return Status::IOError("'{}': cannot create a temporary file next to it: {}", path,
                           ErrnoText());
  }
  FileDescriptor fd(raw_fd);
  Status status;
  try {
    FileSink sink(fd.get(), path);
    status = WriteContents(table, sink, options);
    if (status.ok() && options.sync && ::fsync(fd.get()) != 0) {
      status = Status::IOError("'{}': fsync failed: {}", path, ErrnoText());
    }
  } catch (const std::exception& e) {  // ParallelFor rethrows; nothing may leave this function
    status = Status::Internal("'{}': writing failed: {}", path, e.what());
  }
  if (::fchmod(fd.get(), 0644) != 0 && status.ok()) {
    status = Status::IOError("'{}': chmod failed: {}", path, ErrnoText());
  }
  if (fd.Close() != 0 && status.ok()) {
    status = Status::IOError("'{}': close failed: {}", path, ErrnoText());
  }
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) {
    status = Status::IOError("'{}': cannot rename the temporary file into place: {}", path,
                             ErrnoText());
  }
  if (!status.ok()) ::unlink(temp.c_str());
  return status;
}

namespace {

Result<int64_t> OpenForReading(const std::string& path, FileDescriptor* fd) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) return Status::Invalid("'{}': no such file", path);
    return Status::IOError("'{}': cannot open: {}", path, ErrnoText());
  }
  fd->Reset(raw);
  struct stat info {};
  if (::fstat(raw, &info) != 0) return Status::IOError("'{}': cannot stat: {}", path, ErrnoText());
  if (S_ISDIR(info.st_mode)) return Status::Invalid("'{}' is a directory, not a table file", path);
  return static_cast<int64_t>(info.st_size);
}

}  // namespace

Result<TableFileInfo> ReadTableFileInfo(const std::string& path) {
  FileDescriptor fd;
  DEEPRC_ASSIGN_OR_RAISE(int64_t size, OpenForReading(path, &fd));
  uint8_t header[kHeaderSize] = {};
  const int64_t available = std::min(size, kHeaderSize);
  DEEPRC_RETURN_NOT_OK(ReadAll(fd.get(), header, available, 0, path));
  DEEPRC_ASSIGN_OR_RAISE(ParsedHeader parsed, CheckHeader(header, available, size, path));
  std::vector<uint8_t> metadata(static_cast<size_t>(parsed.metadata_size));
  DEEPRC_RETURN_NOT_OK(
      ReadAll(fd.get(), metadata.data(), parsed.metadata_size, parsed.metadata_offset, path));
  DEEPRC_ASSIGN_OR_RAISE(auto columns, ParseMetadata(metadata.data(), parsed, true, path));
  TableFileInfo info;
  std::vector<Field> fields;
  for (auto& column : columns) fields.push_back(column.field);
  info.schema = Schema(std::move(fields));
  info.num_rows = parsed.rows;
  info.version = parsed.version;
  info.file_size = parsed.file_size;
  return info;
}

bool IsTableFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char magic[8] = {};
  const ssize_t got = ::pread(fd, magic, 8, 0);
  ::close(fd);
  return got == 8 && std::memcmp(magic, kTableFileMagic, 8) == 0;
}

Result<Table> ReadTableFile(const std::string& path, const TableFileReadOptions& options) {
  FileDescriptor fd;
  DEEPRC_ASSIGN_OR_RAISE(int64_t size, OpenForReading(path, &fd));
  uint8_t header[kHeaderSize] = {};
  const int64_t available = std::min(size, kHeaderSize);
  DEEPRC_RETURN_NOT_OK(ReadAll(fd.get(), header, available, 0, path));
  DEEPRC_ASSIGN_OR_RAISE(ParsedHeader parsed, CheckHeader(header, available, size, path));

  // The whole file, either mapped or read; `at(offset, size)` makes a buffer into it.
  const uint8_t* base = nullptr;
  std::shared_ptr<Mapping> mapping;
  std::shared_ptr<const Buffer> whole;
  if (options.memory_map) {
    int flags = MAP_PRIVATE;
    if (options.verify_checksums) flags |= MAP_POPULATE;  // every page is read anyway
    void* address = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, flags, fd.get(), 0);
    if (address == MAP_FAILED) {
      return Status::IOError("'{}': cannot memory-map: {}", path, ErrnoText());
    }
    mapping = std::make_shared<Mapping>(static_cast<const uint8_t*>(address), size);
    base = mapping->data();
  } else {
    DEEPRC_ASSIGN_OR_RAISE(auto buffer, Buffer::Allocate(size));
    DEEPRC_RETURN_NOT_OK(ReadAll(fd.get(), buffer->mutable_data(), size, 0, path));
    base = buffer->data();
    whole = std::move(buffer);
  }
  fd.Close();
  auto buffer_at = [&](int64_t offset, int64_t length) -> std::shared_ptr<const Buffer> {
    if (mapping != nullptr) {
      return Buffer::Wrap(base + offset, length, [mapping] {});
    }
    return Buffer::Slice(whole, offset, length);
  };

  return ReadContents(base, parsed, buffer_at, options, path);
}

Result<std::shared_ptr<Buffer>> WriteTableToBuffer(const Table& table,
                                                   const TableFileWriteOptions& options) {
  MemorySink sink;
  try {
    DEEPRC_RETURN_NOT_OK(WriteContents(table, sink, options));
  } catch (const std::exception& e) {
    return Status::Internal("serializing a table failed: {}", e.what());
  }
  return sink.Finish();
}

Result<Table> ReadTableFromBuffer(std::shared_ptr<const Buffer> buffer,
                                  const TableFileReadOptions& options) {
  static const std::string kName = "<table in memory>";
  if (buffer == nullptr) return Status::Invalid("{}: no buffer", kName);
  const uint8_t* base = buffer->data();
  const int64_t size = buffer->size();
  DEEPRC_ASSIGN_OR_RAISE(ParsedHeader parsed,
                         CheckHeader(base, std::min(size, kHeaderSize), size, kName));
  auto buffer_at = [&](int64_t offset, int64_t length) -> std::shared_ptr<const Buffer> {
    return Buffer::Slice(buffer, offset, length);
  };
  return ReadContents(base, parsed, buffer_at, options, kName);
}

namespace {

// The buffer entries of the image's column `c` (in the order the reader expects), with the
// bitmap left out when there are no nulls.
std::vector<BufferEntry> ImageEntries(const DataType& type, const auto& slots, bool has_nulls) {
  std::vector<BufferEntry> entries;
  const bool string = type.id == TypeId::kString;
  for (int kind = 0; kind < 3; ++kind) {
    if (kind == 1 && !string) continue;
    BufferEntry entry;
    entry.kind = static_cast<BufferKind>(kind);
    entry.unchecked = true;
    const auto& slot = slots[static_cast<size_t>(kind)];
    entry.present = slot.at >= 0 && (kind != 0 || has_nulls);
    if (entry.present) {
      entry.file_offset = slot.at;
      entry.stored_size = entry.raw_size = slot.size;
    }
    entries.push_back(entry);
  }
  return entries;
}

}  // namespace

Result<TableImageWriter> TableImageWriter::Make(Schema schema, int64_t rows,
                                                const std::vector<ColumnSizes>& sizes) {
  if (static_cast<int>(sizes.size()) != schema.num_fields() || rows < 0) {
    return Status::Invalid("table image: {} column sizes for {} columns, {} rows", sizes.size(),
                           schema.num_fields(), rows);
  }
  TableImageWriter writer;
  writer.rows_ = rows;
  writer.slots_.resize(sizes.size());
  int64_t position = kHeaderSize;
  auto place = [&](Slot& slot, int64_t size) {
    slot.at = position;
    slot.size = size;
    position += Padded(size);
  };
  for (int c = 0; c < schema.num_fields(); ++c) {
    const TypeId id = schema.field(c).type.id;
    auto& slots = writer.slots_[static_cast<size_t>(c)];
    if (sizes[c].validity) place(slots[0], bitmap::BytesForBits(rows));
    if (id == TypeId::kString) {
      place(slots[1], (rows + 1) * 8);
      place(slots[2], sizes[c].string_bytes);
    } else if (id == TypeId::kBool) {
      place(slots[2], bitmap::BytesForBits(rows));
    } else {
      place(slots[2], rows * ByteWidth(id));
    }
  }
  writer.metadata_offset_ = position;
  // The metadata's size does not depend on the null counts: lay it out now, write it at Finish.
  std::vector<std::vector<BufferEntry>> entries;
  for (int c = 0; c < schema.num_fields(); ++c) {
    entries.push_back(ImageEntries(schema.field(c).type, writer.slots_[c], true));
  }
  const std::string metadata =
      EncodeMetadata(schema, std::vector<int64_t>(sizes.size(), 0), entries);
  DEEPRC_ASSIGN_OR_RAISE(writer.image_,
                         Buffer::Allocate(position + static_cast<int64_t>(metadata.size())));
  // Zero what the caller ORs bits into, and every padding gap.
  for (int c = 0; c < schema.num_fields(); ++c) {
    const bool bits = schema.field(c).type.id == TypeId::kBool;
    for (int kind = 0; kind < 3; ++kind) {
      const Slot& slot = writer.slots_[c][kind];
      if (slot.at < 0) continue;
      uint8_t* at = writer.image_->mutable_data() + slot.at;
      if (kind == 0 || (kind == 2 && bits)) {
        std::memset(at, 0, static_cast<size_t>(Padded(slot.size)));
      } else {
        std::memset(at + slot.size, 0, static_cast<size_t>(Padded(slot.size) - slot.size));
      }
    }
  }
  writer.schema_ = std::move(schema);
  return writer;
}

Result<std::shared_ptr<Buffer>> TableImageWriter::Finish(const std::vector<int64_t>& null_counts) {
  if (image_ == nullptr || null_counts.size() != slots_.size()) {
    return Status::Invalid("table image: finished twice or wrong null counts");
  }
  std::vector<std::vector<BufferEntry>> entries;
  for (int c = 0; c < schema_.num_fields(); ++c) {
    if (null_counts[c] > 0 && slots_[c][0].at < 0) {
      return Status::Invalid("table image: column '{}' has nulls but no validity bitmap",
                             schema_.field(c).name);
    }
    entries.push_back(ImageEntries(schema_.field(c).type, slots_[c], null_counts[c] > 0));
  }
  const std::string metadata = EncodeMetadata(schema_, null_counts, entries);
  DEEPRC_CHECK(metadata_offset_ + static_cast<int64_t>(metadata.size()) == image_->size());
  std::memcpy(image_->mutable_data() + metadata_offset_, metadata.data(), metadata.size());
  EncodeHeader(rows_, metadata_offset_, metadata, image_->mutable_data());
  return std::move(image_);
}

}  // namespace deeprc
