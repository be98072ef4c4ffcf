#include "testing/cylon_data.h"

#include <cstdio>
#include <vector>

#include "deeprc/table/builder.h"
#include "deeprc/table/temporal.h"

namespace deeprc::testing {

const std::string& CylonDataDirectory() {
  static const std::string directory = std::string(DEEPRC_SOURCE_DIR) + "/tests/data/cylon/";
  return directory;
}

Result<Table> NormalizeOrderDate(const Table& table) {
  DEEPRC_ASSIGN_OR_RAISE(int index, table.schema().GetFieldIndex("Order Date"));
  const Column& dates = table.column(index);
  if (dates.type_id() != TypeId::kString) return table;
  NumberBuilder<int32_t> builder(DataType::Date32());
  for (int64_t i = 0; i < dates.length(); ++i) {
    if (dates.IsNull(i)) {
      DEEPRC_RETURN_NOT_OK(builder.AppendNull());
      continue;
    }
    unsigned month = 0, day = 0;
    int year = 0;
    const std::string text(dates.GetString(i));
    if (std::sscanf(text.c_str(), "%u/%u/%d", &month, &day, &year) != 3) {
      return Status::Invalid("bad date '{}'", text);
    }
    DEEPRC_RETURN_NOT_OK(
        builder.Append(static_cast<int32_t>(temporal::DaysFromCivil(year, month, day))));
  }
  DEEPRC_ASSIGN_OR_RAISE(Column converted, builder.Finish());
  std::vector<Field> fields = table.schema().fields();
  std::vector<Column> columns = table.columns();
  fields[index].type = DataType::Date32();
  columns[index] = converted;
  return Table::Make(Schema(fields), columns, table.num_rows());
}

}  // namespace deeprc::testing
