#include "deeprc/compute/selection.h"

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
      nulls[part] = TakeValidity(column, indices, b * 8, std::min(n, e * 8), validity->mutable_data());
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

Result<Table> FilterByMask(const Table& table, const Column& mask, int threads) {
  if (mask.type_id() != TypeId::kBool || mask.length() != table.num_rows()) {
    return Status::Invalid("filter mask must be a bool column of {} rows", table.num_rows());
  }
  std::vector<int64_t> indices;
  indices.reserve(static_cast<size_t>(table.num_rows()));
  for (int64_t i = 0; i < mask.length(); ++i) {
    if (mask.IsValid(i) && mask.GetBool(i)) indices.push_back(i);
  }
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
      DEEPRC_ASSIGN_OR_RAISE(auto values, Buffer::Allocate(length * static_cast<int64_t>(sizeof(T))));
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
