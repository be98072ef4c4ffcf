// Data functions of the standard worker program: distributed operators as function tasks on
// partitioned binary tables in the session directory. A partitioned table NAME is the files
// <session>/data/NAME/part-<rank>.drt, one per rank of the task that wrote it; a task reads the
// partitions of its own ranks (a k-rank task reads part-0 .. part-(k-1)).
//
//   table.sort      {input, output, by: [col...], ascending: true}
//   table.join      {left, right, output, on: [col...] | left_on/right_on, how: inner|left|...}
//   table.pipeline  {input, output, steps: [{op: sort, ...}, {op: join, right, ...}, ...]}
//                   every step on the previous step's table in memory; only the end is written.
// Each returns {"rows": global rows written, "partitions": k}.
#include "data_functions.h"

#include <filesystem>

#include <fmt/format.h>

#include "deeprc/compute/join.h"
#include "deeprc/compute/sort.h"
#include "deeprc/dist/join.h"
#include "deeprc/dist/sort.h"
#include "deeprc/table/table_file.h"

namespace deeprc::worker {
namespace {

using nlohmann::json;
using runtime::TaskContext;

std::string PartitionPath(const TaskContext& context, const std::string& name, int rank) {
  return fmt::format("{}/data/{}/part-{}.drt", context.session_dir(), name, rank);
}

Result<std::string> StringArg(const json& args, const char* key, std::string_view where) {
  auto found = args.find(key);
  if (found == args.end() || !found->is_string() || found->get<std::string>().empty()) {
    return Status::Invalid("{}.{}: expected a table name", where, key);
  }
  const std::string name = found->get<std::string>();
  if (name.find("..") != std::string::npos || name.front() == '/') {
    return Status::Invalid("{}.{}: '{}' must name a table inside the session", where, key, name);
  }
  return name;
}

Result<std::vector<std::string>> StringList(const json& args, const char* key,
                                            std::string_view where) {
  auto found = args.find(key);
  if (found == args.end()) return std::vector<std::string>{};
  if (found->is_string()) return std::vector<std::string>{found->get<std::string>()};
  if (!found->is_array())
    return Status::Invalid("{}.{}: expected a column name or a list", where, key);
  std::vector<std::string> names;
  for (const auto& entry : *found) {
    if (!entry.is_string()) return Status::Invalid("{}.{}: expected column names", where, key);
    names.push_back(entry.get<std::string>());
  }
  return names;
}

// Collective: every rank learns whether some rank failed, so that none waits in the next
// collective for a rank that gave up. The failing ranks keep their own message.
Status Agree(comm::Communicator& comm, const Status& local, std::string_view what) {
  DEEPRC_ASSIGN_OR_RAISE(int64_t failed, comm::AllReduceValue<int64_t>(comm, local.ok() ? 0 : 1,
                                                                       comm::ReduceOp::kSum));
  if (failed == 0) return Status::OK();
  if (!local.ok()) return local;
  return Status::Invalid("{}: {} other rank(s) failed", what, failed);
}

Result<Table> ReadPartition(TaskContext& context, const std::string& name) {
  Result<Table> table = ReadTableFile(PartitionPath(context, name, context.rank()));
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), table.status(), "reading table " + name));
  return table;
}

Result<json> WritePartition(TaskContext& context, const std::string& name, const Table& table) {
  const std::string path = PartitionPath(context, name, context.rank());
  std::error_code error;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), error);
  Status written = error ? Status::IOError("cannot create {}: {}", path, error.message())
                         : WriteTableFile(table, path);
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), written, "writing table " + name));
  DEEPRC_ASSIGN_OR_RAISE(int64_t rows, comm::AllReduceValue<int64_t>(
                                           context.comm(), table.num_rows(), comm::ReduceOp::kSum));
  return json{{"rows", rows}, {"partitions", context.size()}};
}

Result<Table> SortStep(TaskContext& context, const Table& table, const json& step,
                       std::string_view where) {
  DEEPRC_ASSIGN_OR_RAISE(auto by, StringList(step, "by", where));
  if (by.empty()) return Status::Invalid("{}.by: expected the columns to sort by", where);
  compute::SortOptions options;
  const bool ascending = step.value("ascending", true);
  for (const std::string& column : by) options.keys.push_back({column, ascending, false});
  return dist::Sort(context.comm(), table, options);
}

Result<Table> JoinStep(TaskContext& context, const Table& left, const json& step,
                       std::string_view where) {
  DEEPRC_ASSIGN_OR_RAISE(std::string right_name, StringArg(step, "right", where));
  DEEPRC_ASSIGN_OR_RAISE(Table right, ReadPartition(context, right_name));
  dist::DistJoinOptions options;
  DEEPRC_ASSIGN_OR_RAISE(auto on, StringList(step, "on", where));
  DEEPRC_ASSIGN_OR_RAISE(options.join.left_keys, StringList(step, "left_on", where));
  DEEPRC_ASSIGN_OR_RAISE(options.join.right_keys, StringList(step, "right_on", where));
  if (!on.empty()) options.join.left_keys = options.join.right_keys = on;
  if (options.join.left_keys.empty()) {
    return Status::Invalid("{}: expected `on` or `left_on` and `right_on`", where);
  }
  DEEPRC_ASSIGN_OR_RAISE(options.join.type,
                         compute::ParseJoinType(step.value("how", std::string("inner"))));
  return dist::Join(context.comm(), left, right, options);
}

Result<Table> Step(TaskContext& context, const Table& table, const json& step,
                   std::string_view where) {
  const std::string op = step.value("op", "");
  if (op == "sort") return SortStep(context, table, step, where);
  if (op == "join") return JoinStep(context, table, step, where);
  return Status::Invalid("{}.op: expected sort or join, found '{}'", where, op);
}

}  // namespace

Status RegisterDataFunctions(runtime::FunctionRegistry& registry) {
  DEEPRC_RETURN_NOT_OK(registry.Register("table.sort", [](TaskContext& context) -> Result<json> {
    DEEPRC_ASSIGN_OR_RAISE(std::string input, StringArg(context.args(), "input", "args"));
    DEEPRC_ASSIGN_OR_RAISE(std::string output, StringArg(context.args(), "output", "args"));
    DEEPRC_ASSIGN_OR_RAISE(Table table, ReadPartition(context, input));
    DEEPRC_ASSIGN_OR_RAISE(Table sorted, SortStep(context, table, context.args(), "args"));
    return WritePartition(context, output, sorted);
  }));
  DEEPRC_RETURN_NOT_OK(registry.Register("table.join", [](TaskContext& context) -> Result<json> {
    DEEPRC_ASSIGN_OR_RAISE(std::string left, StringArg(context.args(), "left", "args"));
    DEEPRC_ASSIGN_OR_RAISE(std::string output, StringArg(context.args(), "output", "args"));
    DEEPRC_ASSIGN_OR_RAISE(Table table, ReadPartition(context, left));
    DEEPRC_ASSIGN_OR_RAISE(Table joined, JoinStep(context, table, context.args(), "args"));
    return WritePartition(context, output, joined);
  }));
  DEEPRC_RETURN_NOT_OK(
      registry.Register("table.pipeline", [](TaskContext& context) -> Result<json> {
        DEEPRC_ASSIGN_OR_RAISE(std::string input, StringArg(context.args(), "input", "args"));
        DEEPRC_ASSIGN_OR_RAISE(std::string output, StringArg(context.args(), "output", "args"));
        auto steps = context.args().find("steps");
        if (steps == context.args().end() || !steps->is_array()) {
          return Status::Invalid("args.steps: expected a list of operations");
        }
        DEEPRC_ASSIGN_OR_RAISE(Table table, ReadPartition(context, input));
        for (size_t i = 0; i < steps->size(); ++i) {
          if (context.canceled()) return Status::Cancelled("canceled after {} steps", i);
          DEEPRC_ASSIGN_OR_RAISE(
              table, Step(context, table, (*steps)[i], fmt::format("args.steps[{}]", i)));
        }
        return WritePartition(context, output, table);
      }));
  return Status::OK();
}

}  // namespace deeprc::worker
