#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"

namespace deeprc::testing {

// An independent implementation to check operators against: pandas, run by
// tests/oracle/oracle.py under /usr/bin/python3. The spec names the operation ("op") and its
// parameters; each op is a function in tests/oracle/op_<name>.py. Inputs go to the oracle as JSON
// (column-major, with types), and the result comes back the same way, converted to
// `result_schema` (column names must match; values are converted to the declared types).
Result<Table> RunPandasOracle(const nlohmann::json& spec, const std::vector<Table>& inputs,
                              const Schema& result_schema);

// The JSON table form used with the oracle: {"columns":[{"name","type","values":[...]}]}.
// Dates and timestamps travel as their integer values.
nlohmann::json TableToJson(const Table& table);
Result<Table> TableFromJson(const nlohmann::json& json, const Schema& schema);

}  // namespace deeprc::testing
