#include "deeprc/table/arrow_c.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "deeprc/table/bitmap.h"

namespace deeprc::arrow {
namespace {

// ---------------------------------------------------------------------------------------------
// Export. Each exported struct owns a private-data object that keeps the deeprc buffers alive.
// The C interface hands ownership across as a raw pointer in private_data; it is taken back into
// a unique_ptr in the release callback (the one place where ownership crosses the C boundary).

struct ExportedArray {
  std::vector<std::shared_ptr<const Buffer>> keep_alive;
  std::vector<const void*> buffers;
  std::vector<ArrowArray> children;
  std::vector<ArrowArray*> child_pointers;
};

struct ExportedSchema {
  std::string format;
  std::string name;
  std::vector<ArrowSchema> children;
  std::vector<ArrowSchema*> child_pointers;
};

void ReleaseExportedArray(ArrowArray* array) {
  if (array == nullptr || array->release == nullptr) return;
  std::unique_ptr<ExportedArray> data(static_cast<ExportedArray*>(array->private_data));
  // A consumer may have moved children out (their release is then null); release the rest.
  for (ArrowArray* child : data->child_pointers) {
    if (child->release != nullptr) child->release(child);
  }
  array->release = nullptr;
  array->private_data = nullptr;
}

void ReleaseExportedSchema(ArrowSchema* schema) {
  if (schema == nullptr || schema->release == nullptr) return;
  std::unique_ptr<ExportedSchema> data(static_cast<ExportedSchema*>(schema->private_data));
  for (ArrowSchema* child : data->child_pointers) {
    if (child->release != nullptr) child->release(child);
  }
  schema->release = nullptr;
  schema->private_data = nullptr;
}

void FillArray(ArrowArray* out, std::unique_ptr<ExportedArray> data, int64_t length,
               int64_t null_count, int64_t offset) {
  out->length = length;
  out->null_count = null_count;
  out->offset = offset;
  out->n_buffers = static_cast<int64_t>(data->buffers.size());
  out->n_children = static_cast<int64_t>(data->children.size());
  out->buffers = data->buffers.data();
  data->child_pointers.clear();
  for (ArrowArray& child : data->children) data->child_pointers.push_back(&child);
  out->children = data->child_pointers.empty() ? nullptr : data->child_pointers.data();
  out->dictionary = nullptr;
  out->release = ReleaseExportedArray;
  out->private_data = data.release();
}

void FillSchema(ArrowSchema* out, std::unique_ptr<ExportedSchema> data, int64_t flags) {
  out->format = data->format.c_str();
  out->name = data->name.c_str();
  out->metadata = nullptr;
  out->flags = flags;
  out->n_children = static_cast<int64_t>(data->children.size());
  data->child_pointers.clear();
  for (ArrowSchema& child : data->children) data->child_pointers.push_back(&child);
  out->children = data->child_pointers.empty() ? nullptr : data->child_pointers.data();
  out->dictionary = nullptr;
  out->release = ReleaseExportedSchema;
  out->private_data = data.release();
}

// Spec: buffers other than validity may be null only when their size is zero. A deeprc buffer
// always exists, but guard anyway with a static padded area.
const void* BufferAddress(const std::shared_ptr<const Buffer>& buffer) {
  alignas(64) static const uint8_t kEmpty[64] = {};
  return buffer != nullptr ? static_cast<const void*>(buffer->data()) : kEmpty;
}

std::unique_ptr<ExportedArray> ExportColumnData(const Column& column) {
  auto data = std::make_unique<ExportedArray>();
  const bool with_validity = column.null_count() > 0 && column.validity_buffer() != nullptr;
  data->buffers.push_back(with_validity ? column.validity_buffer()->data() : nullptr);
  if (with_validity) data->keep_alive.push_back(column.validity_buffer());
  if (column.type_id() == TypeId::kString) {
    data->buffers.push_back(BufferAddress(column.offsets_buffer()));
    data->keep_alive.push_back(column.offsets_buffer());
  }
  data->buffers.push_back(BufferAddress(column.values_buffer()));
  data->keep_alive.push_back(column.values_buffer());
  return data;
}

// ---------------------------------------------------------------------------------------------
// Import. The imported ArrowArray is moved into a shared holder; every deeprc buffer that wraps
// its memory holds a reference, and the holder calls the producer's release when the last goes.

struct ImportedArray {
  ArrowArray array{};
  ImportedArray() = default;
  ImportedArray(const ImportedArray&) = delete;
  ImportedArray& operator=(const ImportedArray&) = delete;
  ~ImportedArray() {
    if (array.release != nullptr) array.release(&array);
  }
};

// Takes the array over (the source is marked released, as the specification's move semantics
// require).
std::shared_ptr<ImportedArray> TakeOver(ArrowArray* array) {
  auto holder = std::make_shared<ImportedArray>();
  holder->array = *array;
  array->release = nullptr;
  array->private_data = nullptr;
  return holder;
}

std::shared_ptr<const Buffer> WrapForeign(const void* address, int64_t size,
                                          const std::shared_ptr<ImportedArray>& holder) {
  return Buffer::Wrap(static_cast<const uint8_t*>(address), size, [holder] {});
}

Result<std::shared_ptr<const Buffer>> EmptyBuffer() {
  DEEPRC_ASSIGN_OR_RAISE(auto buffer, Buffer::AllocateZeroed(0));
  return std::shared_ptr<const Buffer>(std::move(buffer));
}

std::string Describe(const ArrowSchema& schema) {
  if (schema.name != nullptr && schema.name[0] != '\0') return fmt::format("'{}'", schema.name);
  return "(unnamed)";
}

// `offset` and `length` are the logical rows wanted (a struct parent's offset already added).
Result<Column> ImportChild(const ArrowArray& array, const ArrowSchema& schema, int64_t offset,
                           int64_t length, const std::shared_ptr<ImportedArray>& holder) {
  const std::string what = "Arrow array " + Describe(schema);
  if (schema.format == nullptr) return Status::Invalid("{}: schema has no format string", what);
  DEEPRC_ASSIGN_OR_RAISE(DataType type, TypeFromFormat(schema.format));
  const bool narrow_strings = std::strcmp(schema.format, "u") == 0;
  if (schema.dictionary != nullptr || array.dictionary != nullptr) {
    return Status::NotImplemented("{}: dictionary-encoded arrays are not supported", what);
  }
  if (array.n_children != 0) {
    return Status::Invalid("{}: format '{}' has no children, but the array has {}", what,
                           schema.format, array.n_children);
  }
  const int64_t expected_buffers = type.id == TypeId::kString ? 3 : 2;
  if (array.n_buffers != expected_buffers) {
    return Status::Invalid("{}: format '{}' needs {} buffers, the array has {}", what,
                           schema.format, expected_buffers, array.n_buffers);
  }
  if (array.buffers == nullptr) return Status::Invalid("{}: buffers pointer is null", what);
  if (array.length < 0 || array.offset < 0 || offset < 0 || length < 0) {
    return Status::Invalid("{}: negative length or offset (length {}, offset {})", what,
                           array.length, array.offset);
  }
  if (offset + length > array.offset + array.length) {
    return Status::Invalid("{}: rows [{}, {}) wanted but the array ends at row {}", what, offset,
                           offset + length, array.offset + array.length);
  }
  const int64_t end = offset + length;  // one past the last physical row used

  // Validity.
  std::shared_ptr<const Buffer> validity;
  int64_t null_count = array.null_count;
  if (offset != array.offset || length != array.length) null_count = -1;  // struct parent slice
  if (array.buffers[0] != nullptr) {
    validity = WrapForeign(array.buffers[0], bitmap::BytesForBits(end), holder);
  } else if (array.null_count > 0) {
    return Status::Invalid("{}: null_count is {} but there is no validity bitmap", what,
                           array.null_count);
  } else {
    null_count = 0;
  }

  if (type.id == TypeId::kString) {
    const void* offsets_address = array.buffers[1];
    const void* bytes_address = array.buffers[2];
    if (offsets_address == nullptr) {
      if (end > 0) return Status::Invalid("{}: offsets buffer is null", what);
      DEEPRC_ASSIGN_OR_RAISE(auto offsets, Buffer::AllocateZeroed(8));
      DEEPRC_ASSIGN_OR_RAISE(auto bytes, EmptyBuffer());
      return Column::MakeString(0, std::move(offsets), std::move(bytes));
    }
    int64_t first = 0;
    int64_t last = 0;
    std::shared_ptr<const Buffer> offsets;
    int64_t column_offset = offset;
    if (narrow_strings) {
      const auto* narrow = static_cast<const int32_t*>(offsets_address) + offset;
      DEEPRC_ASSIGN_OR_RAISE(auto wide, Buffer::Allocate((length + 1) * 8));
      auto* wide_values = wide->mutable_data_as<int64_t>();
      for (int64_t i = 0; i <= length; ++i) wide_values[i] = narrow[i];
      first = wide_values[0];
      last = wide_values[length];
      offsets = std::move(wide);
      // The offsets now start at row `offset`; move the validity bits along with them.
      if (validity != nullptr && offset != 0) {
        DEEPRC_ASSIGN_OR_RAISE(auto bits, Buffer::AllocateZeroed(bitmap::BytesForBits(length)));
        bitmap::CopyBits(validity->data(), offset, length, bits->mutable_data(), 0);
        validity = std::move(bits);
      }
      column_offset = 0;
    } else {
      if (reinterpret_cast<uintptr_t>(offsets_address) % alignof(int64_t) != 0) {
        DEEPRC_ASSIGN_OR_RAISE(auto copy, Buffer::CopyOf(offsets_address, (end + 1) * 8));
        offsets = std::move(copy);
      } else {
        offsets = WrapForeign(offsets_address, (end + 1) * 8, holder);
      }
      first = offsets->data_as<int64_t>()[offset];
      last = offsets->data_as<int64_t>()[end];
    }
    if (first < 0 || last < first) {
      return Status::Invalid("{}: string offsets are not increasing (first {}, last {})", what,
                             first, last);
    }
    std::shared_ptr<const Buffer> bytes;
    if (bytes_address == nullptr) {
      if (last > 0) return Status::Invalid("{}: string data buffer is null", what);
      DEEPRC_ASSIGN_OR_RAISE(bytes, EmptyBuffer());
    } else {
      bytes = WrapForeign(bytes_address, last, holder);
    }
    return Column::MakeString(length, std::move(offsets), std::move(bytes), std::move(validity),
                              null_count, column_offset);
  }

  const void* values_address = array.buffers[1];
  const int64_t value_bytes =
      type.id == TypeId::kBool ? bitmap::BytesForBits(end) : end * ByteWidth(type.id);
  std::shared_ptr<const Buffer> values;
  if (values_address == nullptr) {
    if (value_bytes > 0) return Status::Invalid("{}: values buffer is null", what);
    DEEPRC_ASSIGN_OR_RAISE(values, EmptyBuffer());
  } else if (type.id != TypeId::kBool &&
             reinterpret_cast<uintptr_t>(values_address) % ByteWidth(type.id) != 0) {
    // Misaligned values would make every typed read undefined behaviour: copy them.
    DEEPRC_ASSIGN_OR_RAISE(auto copy, Buffer::CopyOf(values_address, value_bytes));
    values = std::move(copy);
  } else {
    values = WrapForeign(values_address, value_bytes, holder);
  }
  return Column::Make(std::move(type), length, std::move(values), std::move(validity), null_count,
                      offset);
}

}  // namespace

std::string FormatString(const DataType& type) {
  switch (type.id) {
    case TypeId::kBool: return "b";
    case TypeId::kInt8: return "c";
    case TypeId::kUInt8: return "C";
    case TypeId::kInt16: return "s";
    case TypeId::kUInt16: return "S";
    case TypeId::kInt32: return "i";
    case TypeId::kUInt32: return "I";
    case TypeId::kInt64: return "l";
    case TypeId::kUInt64: return "L";
    case TypeId::kFloat32: return "f";
    case TypeId::kFloat64: return "g";
    case TypeId::kString: return "U";
    case TypeId::kDate32: return "tdD";
    case TypeId::kTimestamp: {
      const char* unit = "u";
      switch (type.unit) {
        case TimeUnit::kSecond: unit = "s"; break;
        case TimeUnit::kMilli: unit = "m"; break;
        case TimeUnit::kMicro: unit = "u"; break;
        case TimeUnit::kNano: unit = "n"; break;
      }
      return std::string("ts") + unit + ":" + type.timezone;
    }
  }
  return "";
}

Result<DataType> TypeFromFormat(const char* format) {
  if (format == nullptr) return Status::Invalid("Arrow schema has no format string");
  const std::string_view text(format);
  struct Entry {
    std::string_view format;
    TypeId id;
  };
  static constexpr Entry kSimple[] = {
      {"b", TypeId::kBool},    {"c", TypeId::kInt8},     {"C", TypeId::kUInt8},
      {"s", TypeId::kInt16},   {"S", TypeId::kUInt16},   {"i", TypeId::kInt32},
      {"I", TypeId::kUInt32},  {"l", TypeId::kInt64},    {"L", TypeId::kUInt64},
      {"f", TypeId::kFloat32}, {"g", TypeId::kFloat64},  {"U", TypeId::kString},
      {"u", TypeId::kString},  {"tdD", TypeId::kDate32},
  };
  for (const auto& entry : kSimple) {
    if (text == entry.format) return DataType(entry.id);
  }
  if (text.size() >= 4 && text.starts_with("ts") && text[3] == ':') {
    TimeUnit unit;
    switch (text[2]) {
      case 's': unit = TimeUnit::kSecond; break;
      case 'm': unit = TimeUnit::kMilli; break;
      case 'u': unit = TimeUnit::kMicro; break;
      case 'n': unit = TimeUnit::kNano; break;
      default:
        return Status::NotImplemented("Arrow format '{}' is not a timestamp deeprc reads", text);
    }
    return DataType::Timestamp(unit, std::string(text.substr(4)));
  }
  return Status::NotImplemented(
      "Arrow format '{}' is not supported by deeprc (supported: b c C s S i I l L f g u U tdD "
      "tss: tsm: tsu: tsn:)",
      text);
}

Status ExportType(const DataType& type, ArrowSchema* out, const std::string& name) {
  if (out == nullptr) return Status::Invalid("ExportType: output schema is null");
  auto data = std::make_unique<ExportedSchema>();
  data->format = FormatString(type);
  data->name = name;
  FillSchema(out, std::move(data), ARROW_FLAG_NULLABLE);
  return Status::OK();
}

Status ExportColumn(const Column& column, ArrowArray* out, ArrowSchema* out_schema,
                    const std::string& name) {
  if (out == nullptr) return Status::Invalid("ExportColumn: output array is null");
  if (out_schema != nullptr) DEEPRC_RETURN_NOT_OK(ExportType(column.type(), out_schema, name));
  FillArray(out, ExportColumnData(column), column.length(), column.null_count(), column.offset());
  return Status::OK();
}

Status ExportSchema(const Schema& schema, ArrowSchema* out) {
  if (out == nullptr) return Status::Invalid("ExportSchema: output schema is null");
  auto data = std::make_unique<ExportedSchema>();
  data->format = "+s";
  data->children.resize(schema.num_fields());
  for (int i = 0; i < schema.num_fields(); ++i) {
    DEEPRC_RETURN_NOT_OK(
        ExportType(schema.field(i).type, &data->children[i], schema.field(i).name));
  }
  FillSchema(out, std::move(data), 0);
  return Status::OK();
}

Status ExportTable(const Table& table, ArrowArray* out, ArrowSchema* out_schema) {
  if (out == nullptr) return Status::Invalid("ExportTable: output array is null");
  if (out_schema != nullptr) DEEPRC_RETURN_NOT_OK(ExportSchema(table.schema(), out_schema));
  auto data = std::make_unique<ExportedArray>();
  data->buffers.push_back(nullptr);  // a table has no null rows
  data->children.resize(table.num_columns());
  for (int i = 0; i < table.num_columns(); ++i) {
    const Column& column = table.column(i);
    FillArray(&data->children[i], ExportColumnData(column), column.length(), column.null_count(),
              column.offset());
  }
  FillArray(out, std::move(data), table.num_rows(), 0, 0);
  return Status::OK();
}

Result<Column> ImportColumn(ArrowArray* array, const ArrowSchema* schema) {
  if (array == nullptr || array->release == nullptr) {
    return Status::Invalid("Arrow array is null or already released");
  }
  auto holder = TakeOver(array);
  if (schema == nullptr || schema->release == nullptr) {
    return Status::Invalid("Arrow schema is null or already released");
  }
  const ArrowArray& imported = holder->array;
  return ImportChild(imported, *schema, imported.offset, imported.length, holder);
}

Result<Schema> ImportSchema(const ArrowSchema* schema) {
  if (schema == nullptr || schema->release == nullptr) {
    return Status::Invalid("Arrow schema is null or already released");
  }
  if (schema->format == nullptr || std::string_view(schema->format) != "+s") {
    return Status::Invalid("a table is imported from a struct array (format '+s'), not '{}'",
                           schema->format == nullptr ? "" : schema->format);
  }
  if (schema->n_children < 0 || (schema->n_children > 0 && schema->children == nullptr)) {
    return Status::Invalid("Arrow struct schema has {} children but no children pointer",
                           schema->n_children);
  }
  std::vector<Field> fields;
  for (int64_t i = 0; i < schema->n_children; ++i) {
    const ArrowSchema* child = schema->children[i];
    if (child == nullptr) return Status::Invalid("Arrow struct schema child {} is null", i);
    DEEPRC_ASSIGN_OR_RAISE(DataType type, TypeFromFormat(child->format));
    std::string name = child->name != nullptr ? child->name : "";
    fields.push_back({std::move(name), std::move(type)});
  }
  return Schema(std::move(fields));
}

Result<Table> ImportTable(ArrowArray* array, const ArrowSchema* schema) {
  if (array == nullptr || array->release == nullptr) {
    return Status::Invalid("Arrow array is null or already released");
  }
  auto holder = TakeOver(array);
  DEEPRC_ASSIGN_OR_RAISE(Schema deeprc_schema, ImportSchema(schema));
  const ArrowArray& parent = holder->array;
  if (parent.n_children != schema->n_children) {
    return Status::Invalid("Arrow struct array has {} children but its schema has {}",
                           parent.n_children, schema->n_children);
  }
  if (parent.n_children > 0 && parent.children == nullptr) {
    return Status::Invalid("Arrow struct array has {} children but no children pointer",
                           parent.n_children);
  }
  if (parent.length < 0 || parent.offset < 0) {
    return Status::Invalid("Arrow struct array has a negative length or offset");
  }
  if (parent.null_count != 0 && parent.n_buffers > 0 && parent.buffers != nullptr &&
      parent.buffers[0] != nullptr) {
    const int64_t nulls =
        parent.null_count > 0 ? parent.null_count
                              : parent.length - bitmap::CountSetBits(
                                                    static_cast<const uint8_t*>(parent.buffers[0]),
                                                    parent.offset, parent.length);
    if (nulls > 0) {
      return Status::Invalid("cannot import a table from a struct array with {} null rows", nulls);
    }
  }
  std::vector<Column> columns;
  columns.reserve(parent.n_children);
  for (int64_t i = 0; i < parent.n_children; ++i) {
    const ArrowArray* child = parent.children[i];
    if (child == nullptr || child->release == nullptr) {
      return Status::Invalid("Arrow struct array child {} is null or released", i);
    }
    DEEPRC_ASSIGN_OR_RAISE(Column column,
                           ImportChild(*child, *schema->children[i], child->offset + parent.offset,
                                       parent.length, holder));
    columns.push_back(std::move(column));
  }
  return Table::Make(std::move(deeprc_schema), std::move(columns), parent.length);
}

}  // namespace deeprc::arrow
