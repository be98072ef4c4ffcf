#pragma once

// The binary table file (extension .drt): a fast save/load format for handing tables between
// pipeline stages. Layout (all integers little-endian):
//
//   header (64 bytes)  magic "DEEPRCTB", format version, file size, where the metadata is, its
//                      checksum, row count, and a checksum of the header itself
//   buffers            each column's validity, offsets and values, every buffer starting at a
//                      multiple of 64 bytes and padded with zeros to one, so that Load can
//                      memory-map the file and hand out the buffers without copying
//   metadata           schema (names, types with timestamp unit and zone), and per buffer: where
//                      it is, its stored and raw size, its compression and its xxHash64 checksum
//                      (over the padded stored bytes, so that every byte of the file is covered)
//
// Slices are written as their rows only (bitmaps shifted to bit 0, string offsets rebased to 0).

#include <cstdint>
#include <array>
#include <memory>
#include <vector>
#include <string>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc {

inline constexpr char kTableFileMagic[8] = {'D', 'E', 'E', 'P', 'R', 'C', 'T', 'B'};
inline constexpr uint32_t kTableFileVersion = 1;
inline constexpr const char* kTableFileExtension = ".drt";

enum class TableFileCompression : uint8_t { kNone = 0, kZstd = 1, kLz4 = 2 };

// "none", "zstd", "lz4".
Result<TableFileCompression> ParseTableFileCompression(std::string_view text);

struct TableFileWriteOptions {
  // Per-buffer compression; a buffer that does not shrink is stored as it is. Compressed buffers
  // are decompressed (copied) on load, so the default keeps the zero-copy load.
  TableFileCompression compression = TableFileCompression::kNone;
  int compression_level = 1;
  // fsync the file before the rename (durability across a machine crash; slower).
  bool sync = false;
  // Store an xxHash64 checksum of every buffer. Messages between ranks may skip them (the
  // transport checks its bytes); such buffers are marked and never verified by the reader.
  bool checksums = true;
  int threads = 0;
};

struct TableFileReadOptions {
  // Memory-map the file and wrap its buffers without copying (else read into memory).
  bool memory_map = true;
  // Check the xxHash64 checksums of metadata and every buffer (reads every byte once).
  bool verify_checksums = true;
  int threads = 0;
};

// Writes atomically: a temporary file next to `path`, renamed over it when complete; on error
// nothing is left behind.
Status WriteTableFile(const Table& table, const std::string& path,
                      const TableFileWriteOptions& options = {});

// Errors name the file and what is wrong: not a deeprc table file, version N unsupported (this
// build reads M), truncated at byte X, checksum mismatch (with the column and buffer).
Result<Table> ReadTableFile(const std::string& path, const TableFileReadOptions& options = {});

// The same layout in memory, for messages between ranks (comm/table_exchange.h): one contiguous
// buffer (64-byte aligned) holding exactly the bytes of the file. `sync` is ignored.
Result<std::shared_ptr<Buffer>> WriteTableToBuffer(const Table& table,
                                                   const TableFileWriteOptions& options = {});

// Parses a buffer in the table-file layout; the columns are slices of `buffer` (no copy) unless
// they were compressed. `memory_map` is ignored. The buffer must stay 64-byte aligned (a pool
// allocation or a slice at a multiple of 64).
Result<Table> ReadTableFromBuffer(std::shared_ptr<const Buffer> buffer,
                                  const TableFileReadOptions& options = {});

// A table-file image written in place, for producers that scatter rows straight into the bytes
// (the shuffle builds its messages so, without a gathered table in between). Make lays out every
// buffer, with validity bitmaps and bool values zeroed (bits can be OR-ed in) and the padding
// zeroed; the caller fills the buffers, then Finish writes metadata and header (no buffer
// checksums) and hands out the image, which ReadTableFromBuffer reads.
class TableImageWriter {
 public:
  struct ColumnSizes {
    bool validity = false;     // store a validity bitmap
    int64_t string_bytes = 0;  // string columns: the bytes of all values
  };
  static Result<TableImageWriter> Make(Schema schema, int64_t rows,
                                       const std::vector<ColumnSizes>& sizes);

  int64_t num_rows() const { return rows_; }
  // Null when the column stores no bitmap.
  uint8_t* validity(int column) const { return At(column, 0); }
  // String columns: rows + 1 offsets into values(column), the first 0.
  int64_t* offsets(int column) const { return reinterpret_cast<int64_t*>(At(column, 1)); }
  // Fixed width: rows values; bool: a bitmap; string: the bytes.
  uint8_t* values(int column) const { return At(column, 2); }

  // `null_counts[c]` nulls in column c; a column with none drops its bitmap (the bytes stay).
  Result<std::shared_ptr<Buffer>> Finish(const std::vector<int64_t>& null_counts);

 private:
  struct Slot {
    int64_t at = -1;  // byte offset in the image, -1 when absent
    int64_t size = 0;
  };
  uint8_t* At(int column, int kind) const {
    const Slot& slot = slots_[static_cast<size_t>(column)][static_cast<size_t>(kind)];
    return slot.at < 0 ? nullptr : image_->mutable_data() + slot.at;
  }

  Schema schema_;
  int64_t rows_ = 0;
  std::shared_ptr<Buffer> image_;
  // Per column: validity, offsets, values.
  std::vector<std::array<Slot, 3>> slots_;
  int64_t metadata_offset_ = 0;
};

// The schema and row count only (reads the header and metadata, not the buffers).
struct TableFileInfo {
  Schema schema;
  int64_t num_rows = 0;
  uint32_t version = 0;
  int64_t file_size = 0;
};
Result<TableFileInfo> ReadTableFileInfo(const std::string& path);

// True when the file starts with the table-file magic (false also when it cannot be read).
bool IsTableFile(const std::string& path);

}  // namespace deeprc
