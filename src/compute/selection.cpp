#include "deeprc/compute/selection.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "deeprc/core/thread_pool.h"
#include "deeprc/table/builder.h"

namespace deeprc::compute {
namespace {

// Below this many indices a column is gathered by one thread.
constexpr int64_t kParallelTakeRows = 1 << 18;

// Fills out's validity bits for the rows [begin, end) of a take; returns the null count there.
int64_t TakeValidity(const Column& column, std::span<const int64_t> indices, int64_t begin,
                     int64_t end, uint8_t* out_bits) {
  int64_t nulls = 0;
  const uint8_t* bits = column.validity_bits();
  const int64_t offset = column.offset();
  for (int64_t i = begin; i < end; ++i) {
    const int64_t index = indices[i];
    const bool valid = index >= 0 && (bits == nullptr || bitmap::GetBit(bits, offset + index));
    bitmap::SetBitTo(out_bits, i, valid);
    nulls += !valid;
  }
  return nulls;
}

bool NeedsValidity(const Column& column, std::span<const int64_t> indices) {
  if (column.null_count() > 0) return true;
  for (int64_t index : indices) {
    if (index < 0) return true;
  }
  return false;
}

Result<Column> TakeImpl(const Column& column, std::span<const int64_t> indices, int threads) {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int parts =
      n >= kParallelTakeRows ? std::max(1, threads <= 0 ? DefaultThreadCount() : threads) : 1;
  std::shared_ptr<Buffer> validity;
  int64_t null_count = 0;
  if (NeedsValidity(column, indices)) {
    DEEPRC_ASSIGN_OR_RAISE(validity, Buffer::AllocateZeroed(bitmap::BytesForBits(n)));
    // Ranges aligned to 8 rows so that threads never write the same byte.
    std::vector<int64_t> nulls(parts, 0);
    ParallelRanges((n + 7) / 8, parts, threads, [&](int64_t part, int64_t b, int64_t e) {
      nulls[part] =
          TakeValidity(column, indices, b * 8, std::min(n, e * 8), validity->mutable_data());
    });
    for (int64_t count : nulls) null_count += count;
  }
  return VisitType(column.type_id(), [&]<typename Tag>(Tag) -> Result<Column> {
    if constexpr (std::is_same_v<Tag, BoolTag>) {
      DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::AllocateZeroed(bitmap::BytesForBits(n)));
      uint8_t* out = values->mutable_data();
      for (int64_t i = 0; i < n; ++i) {
        if (indices[i] >= 0 && column.GetBool(indices[i])) bitmap::SetBit(out, i);
      }
      return Column::Make(column.type(), n, std::move(values), std::move(validity), null_count);
    } else if constexpr (std::is_same_v<Tag, StringTag>) {
      const int64_t* offsets = column.StringOffsets();
      const char* bytes = column.StringBytes();
      DEEPRC_ASSIGN_OR_RAISE(auto out_offsets, Buffer::Allocate((n + 1) * 8));
      int64_t* out_off = out_offsets->template mutable_data_as<int64_t>();
      // First pass: lengths per part, then prefix sums, then copies in parallel.
      std::vector<int64_t> part_bytes(parts + 1, 0);
      ParallelRanges(n, parts, threads, [&](int64_t part, int64_t b, int64_t e) {
        int64_t total = 0;
        for (int64_t i = b; i < e; ++i) {
          const int64_t index = indices[i];
          if (index >= 0) total += offsets[index + 1] - offsets[index];
        }
        part_bytes[part + 1] = total;
      });
      for (int p = 0; p < parts; ++p) part_bytes[p + 1] += part_bytes[p];
      DEEPRC_ASSIGN_OR_RAISE(auto out_bytes, Buffer::Allocate(part_bytes[parts]));
      char* out = out_bytes->template mutable_data_as<char>();
      out_off[0] = 0;
      ParallelRanges(n, parts, threads, [&](int64_t part, int64_t b, int64_t e) {
        int64_t position = part_bytes[part];
        for (int64_t i = b; i < e; ++i) {
          const int64_t index = indices[i];
          if (index >= 0) {
            const int64_t length = offsets[index + 1] - offsets[index];
            std::memcpy(out + position, bytes + offsets[index], static_cast<size_t>(length));
            position += length;
          }
          out_off[i + 1] = position;
        }
      });
      return Column::MakeString(n, std::move(out_offsets), std::move(out_bytes),
                                std::move(validity), null_count);
    } else {
      using T = typename Tag::CType;
      const T* in = column.Values<T>();
      DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(n * static_cast<int64_t>(sizeof(T))));
      T* out = values->template mutable_data_as<T>();
      ParallelRanges(n, parts, threads, [&](int64_t, int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t index = indices[i];
          out[i] = index >= 0 ? in[index] : T{};
        }
      });
      return Column::Make(column.type(), n, std::move(values), std::move(validity), null_count);
    }
  });
}

}  // namespace

Result<Column> Take(const Column& column, std::span<const int64_t> indices) {
  return TakeImpl(column, indices, 1);
}

Result<Table> Take(const Table& table, std::span<const int64_t> indices, int threads) {
  std::vector<Column> columns(table.num_columns());
  for (int c = 0; c < table.num_columns(); ++c) {
    auto result = TakeImpl(table.column(c), indices, threads);
    if (!result.ok()) return result.status();
    columns[c] = result.MoveValueUnsafe();
  }
  return Table::Make(table.schema(), std::move(columns), static_cast<int64_t>(indices.size()));
}

namespace {

// The 64 mask bits from row `row` on that are true and not null; rows past `end` read as false.
uint64_t KeptBits(const Column& mask, int64_t row, int64_t end) {
  uint64_t word = bitmap::LoadWord(mask.bool_bits(), mask.offset() + row);
  if (mask.validity_bits() != nullptr) {
    word &= bitmap::LoadWord(mask.validity_bits(), mask.offset() + row);
  }
  const int64_t left = end - row;
  if (left < 64) word &= (uint64_t{1} << left) - 1;
  return word;
}

}  // namespace

Result<Table> FilterByMask(const Table& table, const Column& mask, int threads) {
  if (mask.type_id() != TypeId::kBool || mask.length() != table.num_rows()) {
    return Status::Invalid("filter mask must be a bool column of {} rows", table.num_rows());
  }
  // Row numbers of the kept rows, found word by word in parallel ranges: count per range, then
  // each range writes its rows at its prefix offset.
  const int64_t length = mask.length();
  const int64_t words = (length + 63) / 64;
  const int parts = static_cast<int>(
      std::min<int64_t>(std::max(1, threads > 0 ? threads : DefaultThreadCount()) * 4,
                        std::max<int64_t>(1, words / 1024)));
  std::vector<int64_t> counts(static_cast<size_t>(parts) + 1, 0);
  auto word_range = [&](int64_t part) {
    return std::pair{words * part / parts, words * (part + 1) / parts};
  };
  ParallelFor(parts, threads, [&](int64_t part) {
    const auto [begin, end] = word_range(part);
    int64_t count = 0;
    for (int64_t w = begin; w < end; ++w) count += std::popcount(KeptBits(mask, w * 64, length));
    counts[static_cast<size_t>(part) + 1] = count;
  });
  for (int p = 0; p < parts; ++p) counts[p + 1] += counts[p];
  std::vector<int64_t> indices(static_cast<size_t>(counts[parts]));
  ParallelFor(parts, threads, [&](int64_t part) {
    const auto [begin, end] = word_range(part);
    int64_t* out = indices.data() + counts[static_cast<size_t>(part)];
    for (int64_t w = begin; w < end; ++w) {
      uint64_t bits = KeptBits(mask, w * 64, length);
      while (bits != 0) {
        *out++ = w * 64 + std::countr_zero(bits);
        bits &= bits - 1;
      }
    }
  });
  return Take(table, indices, threads);
}

Result<Column> Concatenate(const std::vector<Column>& columns) {
  if (columns.empty()) return Status::Invalid("nothing to concatenate");
  const DataType& type = columns[0].type();
  int64_t length = 0;
  int64_t nulls = 0;
  for (const auto& column : columns) {
    if (!(column.type() == type)) {
      return Status::TypeError("cannot concatenate {} with {}", type.ToString(),
                               column.type().ToString());
    }
    length += column.length();
    nulls += column.null_count();
  }
  std::shared_ptr<Buffer> validity;
  if (nulls > 0) {
    DEEPRC_ASSIGN_OR_RAISE(validity, Buffer::Allocate(bitmap::BytesForBits(length)));
    int64_t at = 0;
    for (const auto& column : columns) {
      if (column.validity_bits() != nullptr) {
        bitmap::CopyBits(column.validity_bits(), column.offset(), column.length(),
                         validity->mutable_data(), at);
      } else {
        bitmap::SetBitsTo(validity->mutable_data(), at, column.length(), true);
      }
      at += column.length();
    }
  }
  return VisitType(type.id, [&]<typename Tag>(Tag) -> Result<Column> {
    if constexpr (std::is_same_v<Tag, BoolTag>) {
      DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(bitmap::BytesForBits(length)));
      int64_t at = 0;
      for (const auto& column : columns) {
        bitmap::CopyBits(column.bool_bits(), column.offset(), column.length(),
                         values->mutable_data(), at);
        at += column.length();
      }
      return Column::Make(type, length, std::move(values), std::move(validity), nulls);
    } else if constexpr (std::is_same_v<Tag, StringTag>) {
      int64_t total = 0;
      for (const auto& column : columns) {
        const int64_t* offsets = column.StringOffsets();
        total += offsets[column.length()] - offsets[0];
      }
      DEEPRC_ASSIGN_OR_RAISE(auto out_offsets, Buffer::Allocate((length + 1) * 8));
      DEEPRC_ASSIGN_OR_RAISE(auto out_bytes, Buffer::Allocate(total));
      int64_t* out_off = out_offsets->template mutable_data_as<int64_t>();
      char* out = out_bytes->template mutable_data_as<char>();
      int64_t row = 0;
      int64_t position = 0;
      out_off[0] = 0;
      for (const auto& column : columns) {
        const int64_t* offsets = column.StringOffsets();
        const int64_t base = offsets[0];
        const int64_t size = offsets[column.length()] - base;
        std::memcpy(out + position, column.StringBytes() + base, static_cast<size_t>(size));
        for (int64_t i = 1; i <= column.length(); ++i) {
          out_off[row + i] = position + offsets[i] - base;
        }
        row += column.length();
        position += size;
      }
      return Column::MakeString(length, std::move(out_offsets), std::move(out_bytes),
                                std::move(validity), nulls);
    } else {
      using T = typename Tag::CType;
      DEEPRC_ASSIGN_OR_RAISE(auto values,
                             Buffer::Allocate(length * static_cast<int64_t>(sizeof(T))));
      T* out = values->template mutable_data_as<T>();
      for (const auto& column : columns) {
        std::memcpy(out, column.Values<T>(), static_cast<size_t>(column.length()) * sizeof(T));
        out += column.length();
      }
      return Column::Make(type, length, std::move(values), std::move(validity), nulls);
    }
  });
}

Result<Table> Concatenate(const std::vector<Table>& tables, int threads) {
  if (tables.empty()) return Status::Invalid("no tables to concatenate");
  const Schema& schema = tables[0].schema();
  int64_t rows = 0;
  for (const auto& table : tables) {
    if (!(table.schema() == schema)) {
      return Status::TypeError("cannot concatenate tables of different schemas: [{}] and [{}]",
                               schema.ToString(), table.schema().ToString());
    }
    rows += table.num_rows();
  }
  std::vector<Column> columns(schema.num_fields());
  std::vector<Status> statuses(schema.num_fields());
  ParallelFor(schema.num_fields(), threads, [&](int64_t c) {
    std::vector<Column> parts;
    parts.reserve(tables.size());
    for (const auto& table : tables) parts.push_back(table.column(static_cast<int>(c)));
    auto result = Concatenate(parts);
    if (result.ok()) {
      columns[c] = result.MoveValueUnsafe();
    } else {
      statuses[c] = result.status();
    }
  });
  for (const auto& status : statuses) DEEPRC_RETURN_NOT_OK(status);
  return Table::Make(schema, std::move(columns), rows);
}

}  // namespace deeprc::compute
