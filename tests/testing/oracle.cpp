#include "testing/oracle.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "deeprc/table/builder.h"

namespace deeprc::testing {

nlohmann::json TableToJson(const Table& table) {
  nlohmann::json columns = nlohmann::json::array();
  for (int c = 0; c < table.num_columns(); ++c) {
    const Column& column = table.column(c);
    nlohmann::json values = nlohmann::json::array();
    VisitType(column.type_id(), [&]<typename Tag>(Tag) {
      for (int64_t r = 0; r < column.length(); ++r) {
        if (column.IsNull(r)) {
          values.push_back(nullptr);
        } else if constexpr (std::is_same_v<Tag, BoolTag>) {
          values.push_back(column.GetBool(r));
        } else if constexpr (std::is_same_v<Tag, StringTag>) {
          values.push_back(std::string(column.GetString(r)));
        } else {
          values.push_back(column.Value<typename Tag::CType>(r));
        }
      }
    });
    columns.push_back({{"name", table.schema().field(c).name},
                       {"type", column.type().ToString()},
                       {"values", std::move(values)}});
  }
  return {{"columns", std::move(columns)}};
}

Result<Table> TableFromJson(const nlohmann::json& json, const Schema& schema) {
  const auto& columns = json.at("columns");
  if (static_cast<int>(columns.size()) != schema.num_fields()) {
    std::string names;
    for (const auto& column : columns) names += column.at("name").get<std::string>() + " ";
    return Status::Invalid("oracle returned {} columns ({}), expected {} ({})", columns.size(),
                           names, schema.num_fields(), schema.ToString());
  }
  std::vector<Column> out;
  int64_t rows = -1;
  for (int c = 0; c < schema.num_fields(); ++c) {
    const auto& column = columns[c];
    const std::string name = column.at("name").get<std::string>();
    if (name != schema.field(c).name) {
      return Status::Invalid("oracle column {} is '{}', expected '{}'", c, name,
                             schema.field(c).name);
    }
    const auto& values = column.at("values");
    const DataType& type = schema.field(c).type;
    Result<Column> built = VisitType(type.id, [&]<typename Tag>(Tag) -> Result<Column> {
      if constexpr (std::is_same_v<Tag, BoolTag>) {
        BoolBuilder builder;
        for (const auto& value : values) {
          if (value.is_null()) {
            DEEPRC_RETURN_NOT_OK(builder.AppendNull());
          } else {
            DEEPRC_RETURN_NOT_OK(builder.Append(value.is_boolean() ? value.get<bool>()
                                                                   : value.get<double>() != 0));
          }
        }
        return builder.Finish();
      } else if constexpr (std::is_same_v<Tag, StringTag>) {
        StringBuilder builder;
        for (const auto& value : values) {
          if (value.is_null()) {
            DEEPRC_RETURN_NOT_OK(builder.AppendNull());
          } else {
            DEEPRC_RETURN_NOT_OK(builder.Append(std::string_view(value.get<std::string>())));
          }
        }
        return builder.Finish();
      } else {
        using T = typename Tag::CType;
        NumberBuilder<T> builder(type);
        for (const auto& value : values) {
          if (value.is_null()) {
            DEEPRC_RETURN_NOT_OK(builder.AppendNull());
          } else if (value.is_number_float() && !std::is_floating_point_v<T>) {
            DEEPRC_RETURN_NOT_OK(builder.Append(static_cast<T>(value.get<double>())));
          } else {
            DEEPRC_RETURN_NOT_OK(builder.Append(value.get<T>()));
          }
        }
        return builder.Finish();
      }
    });
    if (!built.ok()) return built.status().WithContext("oracle column '" + name + "'");
    if (rows >= 0 && built->length() != rows) return Status::Invalid("ragged oracle result");
    rows = built->length();
    out.push_back(built.MoveValueUnsafe());
  }
  return Table::Make(schema, std::move(out), std::max<int64_t>(rows, 0));
}

Result<Table> RunPandasOracle(const nlohmann::json& spec, const std::vector<Table>& inputs,
                              const Schema& result_schema) {
  static std::atomic<int> counter{0};
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       fmt::format("deeprc-oracle-{}-{}", getpid(), counter.fetch_add(1));
  fs::create_directories(dir);
  nlohmann::json request = {{"spec", spec}, {"inputs", nlohmann::json::array()}};
  for (const auto& table : inputs) request["inputs"].push_back(TableToJson(table));
  const fs::path request_path = dir / "request.json";
  const fs::path result_path = dir / "result.json";
  {
    std::ofstream out(request_path);
    out << request.dump();
  }
  const std::string command =
      fmt::format("/usr/bin/python3 {}/tests/oracle/oracle.py {} {} 2>{}", DEEPRC_SOURCE_DIR,
                  request_path.string(), result_path.string(), (dir / "stderr.txt").string());
  const int status = std::system(command.c_str());
  if (status != 0) {
    std::ifstream err(dir / "stderr.txt");
    std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    return Status::Internal("pandas oracle failed (status {}): {}", status, text);
  }
  nlohmann::json result;
  {
    std::ifstream in(result_path);
    result = nlohmann::json::parse(in);
  }
  fs::remove_all(dir);
  return TableFromJson(result, result_schema);
}

}  // namespace deeprc::testing
