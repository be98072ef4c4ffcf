// Data functions of the standard worker program: every distributed operator (src/dist) as a
// function task on partitioned binary tables in the session directory.
//
// Partitioned tables. A table NAME is the files <session>/data/NAME/part-<i>.drt, i = 0..P-1,
// one per rank of the task that wrote it; the global row order is part order, then row order.
// A k-rank task reads all P parts whatever P is: rank r reads parts [r*P/k, (r+1)*P/k) and
// concatenates them (so the global order is kept); a rank with no part gets no rows of the same
// schema. Writing replaces the table: part-<rank> from every rank, then parts left over from an
// earlier, wider writer are removed. Every file is written to a temporary name and renamed.
//
// Argument convention (the same for the table.* functions and for the steps of table.pipeline;
// `where` in messages is "args" or "args.steps[i]"):
//   input      the table the operator works on (a name in the session; a pipeline step takes the
//              previous step's table instead). table.join also accepts `left`.
//   right      the other table of a two-table operator (join, union, intersect, difference,
//              equals): a table name, or {path, ...} with read_csv's arguments to read a CSV.
//   output     the table written (not allowed for write_csv and equals, which write or return
//              no table; optional for aggregate, whose value holds the row).
//   columns    a column name or a list of names wherever columns are asked for (by, on, ...).
//   threads    threads per rank for the local steps (0: DEEPRC_THREADS or all cores).
//   paths      CSV files: absolute, or relative to the session directory.
// Operators and their own arguments (the function is table.<op>; a pipeline step is {op: <op>,
// ...}):
//   read_csv    {path: FILE | GLOB | [FILE|GLOB...], assign: round_robin|by_size, header: true,
//                delimiter: ",", types: {col: "int64", ...}, columns: [...], null_values: [...],
//                skip_rows: 0}. One file is cut into byte ranges (rank r parses range r; the
//                parts in rank order are the file); a list or globs (expanded, sorted) spread
//                whole files over the ranks: rank r reads a contiguous run of them, so the
//                parts in rank order are the files in list order; with by_size, largest first
//                to the rank with the fewest bytes (the order is then by rank). No input.
//   write_csv   {path, per_rank: false, header: true, delimiter: ",", null_value: ""}: one file
//               holding the partitions in rank order, or with per_rank one file per rank (path
//               is a pattern: "{rank}" replaced, else "_<rank>" before the extension). The
//               table is passed on unchanged.
//   sort        {by, ascending: true | [bool...], nulls_first: false} (sample sort; the parts in
//               rank order are the sorted table)
//   join        {right, on | left_on + right_on, how: inner|left|right|outer|semi|anti,
//                algorithm: auto|hash|sort, strategy: auto|shuffle|broadcast, nulls_equal: false,
//                suffixes: ["_x", "_y"]}
//   group_by    {by, aggregates: ["v:sum", "w:mean=avg", "v:quantile(0.9)", ...],
//                drop_null_keys: false}
//   unique      {subset: [...], keep: first|last|none}
//   union       {right, distinct: true};  intersect {right};  difference {right}
//   repartition {counts: [rows of rank 0, 1, ...]} (default: even), global order kept
//   head {n}, tail {n}, slice {offset, length}: global rows, left where they are
//   aggregate   {aggregates: [...]}: one row (on rank 0), also returned as {"values": {...}}
//   equals      {right, ordered: false}: returns {"equal": bool}; the table is passed on
//   pipeline    {input, output, steps: [{op, ...}, ...]}: every step on the previous step's
//               table in memory, only the end written (`output`). A first step read_csv takes
//               the place of `input`; ending in write_csv (or equals), `output` may be left out.
// Every function returns {"rows": global rows of its result, "partitions": k} plus what the
// operator reports (pipeline: "steps", one object per step). Bad or unknown arguments, unknown
// columns and missing tables or files fail the task with a message naming the argument; all
// ranks fail together (they agree before each collective), so the pool is left as it was.
#include "data_functions.h"

#include <glob.h>

#include <filesystem>
#include <limits>
#include <map>
#include <span>

#include <fmt/format.h>

#include "deeprc/compute/group_by.h"
#include "deeprc/compute/join.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/compute/sort.h"
#include "deeprc/dist/csv.h"
#include "deeprc/dist/equals.h"
#include "deeprc/dist/group_by.h"
#include "deeprc/dist/join.h"
#include "deeprc/dist/partition.h"
#include "deeprc/dist/set_ops.h"
#include "deeprc/dist/sort.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/table_file.h"

namespace deeprc::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using runtime::TaskContext;

// ---- arguments ------------------------------------------------------------------------------

Result<std::string> TableName(const json& args, const char* key, std::string_view where) {
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
  if (!found->is_array()) return Status::Invalid("{}.{}: expected a name or a list", where, key);
  std::vector<std::string> names;
  for (const auto& entry : *found) {
    if (!entry.is_string()) return Status::Invalid("{}.{}: expected a list of names", where, key);
    names.push_back(entry.get<std::string>());
  }
  return names;
}

Result<bool> BoolArg(const json& args, const char* key, bool fallback, std::string_view where) {
  auto found = args.find(key);
  if (found == args.end()) return fallback;
  if (!found->is_boolean()) {
    return Status::Invalid("{}.{}: expected true or false, found {}", where, key, found->dump());
  }
  return found->get<bool>();
}

Result<int64_t> IntArg(const json& args, const char* key, std::optional<int64_t> fallback,
                       std::string_view where) {
  auto found = args.find(key);
  if (found == args.end()) {
    if (fallback) return *fallback;
    return Status::Invalid("{}.{}: expected a number (required)", where, key);
  }
  if (!found->is_number_integer() || found->get<int64_t>() < 0) {
    return Status::Invalid("{}.{}: expected a whole number >= 0, found {}", where, key,
                           found->dump());
  }
  return found->get<int64_t>();
}

Result<std::string> TextArg(const json& args, const char* key, std::string fallback,
                            std::string_view where) {
  auto found = args.find(key);
  if (found == args.end()) return fallback;
  if (!found->is_string()) {
    return Status::Invalid("{}.{}: expected a string, found {}", where, key, found->dump());
  }
  return found->get<std::string>();
}

Result<char> CharArg(const json& args, const char* key, std::string_view where) {
  DEEPRC_ASSIGN_OR_RAISE(std::string text, TextArg(args, key, ",", where));
  if (text.size() != 1) {
    return Status::Invalid("{}.{}: expected one character, found '{}'", where, key, text);
  }
  return text[0];
}

Result<int> Threads(const json& args, std::string_view where) {
  DEEPRC_ASSIGN_OR_RAISE(int64_t threads, IntArg(args, "threads", 0, where));
  return static_cast<int>(threads);
}

// ---- partitioned tables ---------------------------------------------------------------------

std::string TableDirectory(const TaskContext& context, const std::string& name) {
  return context.session_dir() + "/data/" + name;
}

std::string PartPath(const std::string& directory, int64_t part) {
  return fmt::format("{}/part-{}.drt", directory, part);
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

// The number of parts part-0 .. part-(P-1) of a table (P >= 1).
Result<int64_t> PartCount(const std::string& name, const std::string& directory) {
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    return Status::IOError("table '{}' not found: no directory {}", name, directory);
  }
  int64_t parts = 0;
  while (fs::exists(PartPath(directory, parts), error)) ++parts;
  if (parts == 0) return Status::IOError("table '{}' has no part-0.drt in {}", name, directory);
  return parts;
}

Result<Table> ReadLocalParts(const TaskContext& context, const std::string& name, int threads) {
  const std::string directory = TableDirectory(context, name);
  DEEPRC_ASSIGN_OR_RAISE(int64_t parts, PartCount(name, directory));
  const int64_t ranks = context.size();
  const int64_t first = parts * context.rank() / ranks;
  const int64_t last = parts * (context.rank() + 1) / ranks;
  if (first == last) {
    DEEPRC_ASSIGN_OR_RAISE(TableFileInfo info, ReadTableFileInfo(PartPath(directory, 0)));
    return Table::Empty(info.schema);
  }
  std::vector<Table> tables;
  for (int64_t part = first; part < last; ++part) {
    DEEPRC_ASSIGN_OR_RAISE(Table table, ReadTableFile(PartPath(directory, part)));
    if (!tables.empty() && !(table.schema() == tables.front().schema())) {
      return Status::Invalid("table '{}': {} has another schema than {}", name,
                             PartPath(directory, part), PartPath(directory, first));
    }
    tables.push_back(std::move(table));
  }
  if (tables.size() == 1) return std::move(tables.front());
  return compute::Concatenate(tables, threads);
}

Result<Table> ReadPartition(TaskContext& context, const std::string& name, int threads) {
  Result<Table> table = ReadLocalParts(context, name, threads);
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), table.status(), "reading table " + name));
  return table;
}

Result<int64_t> GlobalRows(TaskContext& context, const Table& table) {
  return comm::AllReduceValue<int64_t>(context.comm(), table.num_rows(), comm::ReduceOp::kSum);
}

// Writes this rank's part; returns the table's global rows.
Result<int64_t> WritePartition(TaskContext& context, const std::string& name, const Table& table) {
  const std::string directory = TableDirectory(context, name);
  std::error_code error;
  fs::create_directories(directory, error);
  Status written = error ? Status::IOError("cannot create {}: {}", directory, error.message())
                         : WriteTableFile(table, PartPath(directory, context.rank()));
  DEEPRC_RETURN_NOT_OK(Agree(context.comm(), written, "writing table " + name));
  if (context.rank() == 0) {
    // Parts of an earlier, wider writer would otherwise be read as part of this table.
    for (int64_t part = context.size(); fs::exists(PartPath(directory, part), error); ++part) {
      fs::remove(PartPath(directory, part), error);
    }
  }
  return GlobalRows(context, table);
}

// ---- operators --------------------------------------------------------------------------------

// What one operator needs: its arguments, where they are (for messages), and the task.
struct Step {
  TaskContext& context;
  const json& args;
  std::string where;
  int threads = 0;
  json info = json::object();  // what the operator reports besides its table
};

enum class OpKind {
  kSource,     // makes a table from nothing (read_csv)
  kTransform,  // a table from the input table
  kSink,       // passes the input on and reports something (write_csv, equals)
};

using OpFunction = Result<Table> (*)(Step&, Table);

struct Operator {
  OpKind kind;
  OpFunction run;
  // The operator's own arguments; others (besides input, output, right, threads, op) are
  // errors: most often a misspelling that would otherwise be ignored silently.
  std::vector<std::string_view> arguments;
};

constexpr std::string_view kReadCsvArguments[] = {"path",    "assign",      "header",   "delimiter",
                                                  "types",   "columns",     "null_values",
                                                  "skip_rows"};

// `allowed`: the operator's arguments; `common`: those of every function or step.
Status CheckArguments(const json& args, std::span<const std::string_view> allowed,
                      std::span<const std::string_view> common, std::string_view where,
                      std::string_view what) {
  if (!args.is_object()) return Status::Invalid("{}: expected {{argument: value, ...}}", where);
  for (const auto& [key, value] : args.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end() ||
        std::find(common.begin(), common.end(), key) != common.end()) {
      continue;
    }
    std::string known;
    for (std::string_view name : allowed) known += fmt::format("{}{}", known.empty() ? "" : ", ", name);
    return Status::Invalid("{}.{}: not an argument of {} (it takes {})", where, key, what,
                           known.empty() ? "no arguments of its own" : known);
  }
  return Status::OK();
}

Result<Table> ReadCsvOp(Step& step, Table);

// `right` names a partitioned table, or is the arguments of a read_csv ({path, types, ...}), so
// that a pipeline can join two CSV files without a table written in between.
Result<Table> ReadRight(Step& step) {
  if (auto right = step.args.find("right"); right != step.args.end() && right->is_object()) {
    Step read{step.context, *right, step.where + ".right", step.threads};
    DEEPRC_RETURN_NOT_OK(CheckArguments(*right, kReadCsvArguments, {}, read.where, "read_csv"));
    return ReadCsvOp(read, Table());
  }
  DEEPRC_ASSIGN_OR_RAISE(std::string name, TableName(step.args, "right", step.where));
  return ReadPartition(step.context, name, step.threads);
}

// Patterns expanded (sorted; every rank gets the same list from the same file system), the
// other entries kept as they are. A pattern that matches nothing is an error.
Result<std::vector<std::string>> ExpandGlobs(const std::vector<std::string>& paths,
                                             std::string_view where) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    if (path.find_first_of("*?[") == std::string::npos) {
      files.push_back(path);
      continue;
    }
    glob_t found{};
    const int status = ::glob(path.c_str(), 0, nullptr, &found);
    for (size_t i = 0; status == 0 && i < found.gl_pathc; ++i)
      files.emplace_back(found.gl_pathv[i]);
    ::globfree(&found);
    if (status == GLOB_NOMATCH) return Status::IOError("{}.path: no file matches {}", where, path);
    if (status != 0) return Status::IOError("{}.path: cannot expand {}", where, path);
  }
  return files;
}

// The files reordered so that the round-robin assignment (entry i to rank i mod ranks) hands
// rank r a contiguous run of them, as many as round robin would: the partitions in rank order
// are then the files in list order.
std::vector<std::string> InRankRuns(const std::vector<std::string>& files, int ranks) {
  const auto count = static_cast<int64_t>(files.size());
  std::vector<std::string> order(files.size());
  int64_t next = 0;
  for (int64_t r = 0; r < ranks; ++r) {
    const int64_t runs = count / ranks + (r < count % ranks ? 1 : 0);
    for (int64_t j = 0; j < runs; ++j) order[static_cast<size_t>(r + j * ranks)] = files[next++];
  }
  return order;
}

Result<Table> ReadCsvOp(Step& step, Table) {
  csv::ReadOptions options;
  options.threads = step.threads;
  const std::string& where = step.where;
  DEEPRC_ASSIGN_OR_RAISE(options.header, BoolArg(step.args, "header", true, where));
  DEEPRC_ASSIGN_OR_RAISE(options.delimiter, CharArg(step.args, "delimiter", where));
  DEEPRC_ASSIGN_OR_RAISE(options.include_columns, StringList(step.args, "columns", where));
  DEEPRC_ASSIGN_OR_RAISE(options.skip_rows, IntArg(step.args, "skip_rows", 0, where));
  if (step.args.contains("null_values")) {
    DEEPRC_ASSIGN_OR_RAISE(options.null_values, StringList(step.args, "null_values", where));
  }
  if (auto types = step.args.find("types"); types != step.args.end()) {
    if (!types->is_object()) {
      return Status::Invalid("{}.types: expected {{column: type, ...}}", where);
    }
    for (const auto& [column, type] : types->items()) {
      if (!type.is_string()) return Status::Invalid("{}.types.{}: expected a type", where, column);
      auto parsed = ParseDataType(type.get<std::string>());
      if (!parsed.ok()) {
        return Status::Invalid("{}.types.{}: {}", where, column, parsed.status().message());
      }
      options.column_types[column] = *parsed;
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(std::string assign, TextArg(step.args, "assign", "round_robin", where));
  if (assign != "round_robin" && assign != "by_size") {
    return Status::Invalid("{}.assign: expected round_robin or by_size, found '{}'", where, assign);
  }
  auto path = step.args.find("path");
  if (path == step.args.end() || !(path->is_string() || path->is_array())) {
    return Status::Invalid("{}.path: expected a CSV file, a glob or a list of them", where);
  }
  DEEPRC_ASSIGN_OR_RAISE(std::vector<std::string> paths, StringList(step.args, "path", where));
  if (paths.empty()) return Status::Invalid("{}.path: the list is empty", where);
  for (std::string& each : paths) each = step.context.SessionPath(each);
  const bool glob = paths.front().find_first_of("*?[") != std::string::npos;
  if (path->is_string() && !glob) {
    step.info["path"] = paths.front();
    return dist::ReadCsv(step.context.comm(), paths.front(), options);
  }
  DEEPRC_ASSIGN_OR_RAISE(std::vector<std::string> files, ExpandGlobs(paths, where));
  step.info["files"] = static_cast<int64_t>(files.size());
  if (assign == "by_size") {
    return dist::ReadCsvFiles(step.context.comm(), files, options, dist::FileAssignment::kBySize);
  }
  return dist::ReadCsvFiles(step.context.comm(), InRankRuns(files, step.context.size()), options,
                            dist::FileAssignment::kRoundRobin);
}

Result<Table> WriteCsvOp(Step& step, Table table) {
  csv::WriteOptions options;
  options.threads = step.threads;
  const std::string& where = step.where;
  DEEPRC_ASSIGN_OR_RAISE(std::string path, TextArg(step.args, "path", "", where));
  if (path.empty()) return Status::Invalid("{}.path: expected the CSV file to write", where);
  path = step.context.SessionPath(path);
  DEEPRC_ASSIGN_OR_RAISE(bool per_rank, BoolArg(step.args, "per_rank", false, where));
  // The folder is made if missing; when that fails, the write names the path.
  std::error_code ignored;
  fs::create_directories(fs::path(path).parent_path(), ignored);
  DEEPRC_ASSIGN_OR_RAISE(options.header, BoolArg(step.args, "header", true, where));
  DEEPRC_ASSIGN_OR_RAISE(options.delimiter, CharArg(step.args, "delimiter", where));
  DEEPRC_ASSIGN_OR_RAISE(options.null_value, TextArg(step.args, "null_value", "", where));
  if (per_rank) {
    DEEPRC_RETURN_NOT_OK(dist::WriteCsvPerRank(step.context.comm(), table, path, options));
    json files = json::array();
    for (int r = 0; r < step.context.size(); ++r) files.push_back(dist::RankFileName(path, r));
    step.info["files"] = std::move(files);
  } else {
    DEEPRC_RETURN_NOT_OK(dist::WriteCsv(step.context.comm(), table, path, options));
    step.info["path"] = path;
  }
  return table;
}

Result<Table> SortOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(auto by, StringList(step.args, "by", step.where));
  if (by.empty()) return Status::Invalid("{}.by: expected the columns to sort by", step.where);
  std::vector<bool> ascending(by.size(), true);
  if (auto found = step.args.find("ascending"); found != step.args.end()) {
    if (found->is_boolean()) {
      ascending.assign(by.size(), found->get<bool>());
    } else if (found->is_array() && found->size() == by.size() &&
               std::all_of(found->begin(), found->end(),
                           [](const json& each) { return each.is_boolean(); })) {
      for (size_t i = 0; i < by.size(); ++i) ascending[i] = (*found)[i].get<bool>();
    } else {
      return Status::Invalid("{}.ascending: expected true, false or one of them per column of by",
                             step.where);
    }
  }
  DEEPRC_ASSIGN_OR_RAISE(bool nulls_first, BoolArg(step.args, "nulls_first", false, step.where));
  compute::SortOptions options;
  options.threads = step.threads;
  for (size_t i = 0; i < by.size(); ++i) options.keys.push_back({by[i], ascending[i], nulls_first});
  return dist::Sort(step.context.comm(), table, options);
}

Result<Table> JoinOp(Step& step, Table left) {
  const std::string& where = step.where;
  dist::DistJoinOptions options;
  DEEPRC_ASSIGN_OR_RAISE(auto on, StringList(step.args, "on", where));
  DEEPRC_ASSIGN_OR_RAISE(options.join.left_keys, StringList(step.args, "left_on", where));
  DEEPRC_ASSIGN_OR_RAISE(options.join.right_keys, StringList(step.args, "right_on", where));
  if (!on.empty()) options.join.left_keys = options.join.right_keys = on;
  if (options.join.left_keys.empty() || options.join.right_keys.empty()) {
    return Status::Invalid("{}: expected `on` or `left_on` and `right_on`", where);
  }
  DEEPRC_ASSIGN_OR_RAISE(std::string how, TextArg(step.args, "how", "inner", where));
  auto type = compute::ParseJoinType(how);
  if (!type.ok()) return Status::Invalid("{}.how: {}", where, type.status().message());
  options.join.type = *type;
  DEEPRC_ASSIGN_OR_RAISE(std::string algorithm, TextArg(step.args, "algorithm", "auto", where));
  auto parsed = compute::ParseJoinAlgorithm(algorithm);
  if (!parsed.ok()) return Status::Invalid("{}.algorithm: {}", where, parsed.status().message());
  options.join.algorithm = *parsed;
  DEEPRC_ASSIGN_OR_RAISE(std::string strategy, TextArg(step.args, "strategy", "auto", where));
  static const std::map<std::string, dist::JoinStrategy> kStrategies = {
      {"auto", dist::JoinStrategy::kAuto},
      {"shuffle", dist::JoinStrategy::kShuffle},
      {"broadcast", dist::JoinStrategy::kBroadcast}};
  if (!kStrategies.contains(strategy)) {
    return Status::Invalid("{}.strategy: expected auto, shuffle or broadcast, found '{}'", where,
                           strategy);
  }
  options.strategy = kStrategies.at(strategy);
  DEEPRC_ASSIGN_OR_RAISE(options.join.nulls_equal, BoolArg(step.args, "nulls_equal", false, where));
  DEEPRC_ASSIGN_OR_RAISE(auto suffixes, StringList(step.args, "suffixes", where));
  if (!suffixes.empty()) {
    if (suffixes.size() != 2) {
      return Status::Invalid("{}.suffixes: expected two (left and right)", where);
    }
    options.join.left_suffix = suffixes[0];
    options.join.right_suffix = suffixes[1];
  }
  options.join.threads = options.shuffle.threads = step.threads;
  DEEPRC_ASSIGN_OR_RAISE(Table right, ReadRight(step));
  return dist::Join(step.context.comm(), left, right, options);
}

Result<std::vector<compute::Aggregate>> Aggregates(const Step& step) {
  DEEPRC_ASSIGN_OR_RAISE(auto texts, StringList(step.args, "aggregates", step.where));
  if (texts.empty()) {
    return Status::Invalid("{}.aggregates: expected a list such as [\"v:sum\", \"w:mean\"]",
                           step.where);
  }
  std::vector<compute::Aggregate> aggregates;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto parsed = compute::ParseAggregate(texts[i]);
    if (!parsed.ok()) {
      return Status::Invalid("{}.aggregates[{}]: {}", step.where, i, parsed.status().message());
    }
    aggregates.push_back(std::move(*parsed));
  }
  return aggregates;
}

Result<Table> GroupByOp(Step& step, Table table) {
  dist::DistGroupByOptions options;
  DEEPRC_ASSIGN_OR_RAISE(options.group_by.keys, StringList(step.args, "by", step.where));
  if (options.group_by.keys.empty()) {
    return Status::Invalid("{}.by: expected the key columns", step.where);
  }
  DEEPRC_ASSIGN_OR_RAISE(options.group_by.aggregates, Aggregates(step));
  DEEPRC_ASSIGN_OR_RAISE(options.group_by.drop_null_keys,
                         BoolArg(step.args, "drop_null_keys", false, step.where));
  options.group_by.threads = options.shuffle.threads = step.threads;
  return dist::GroupBy(step.context.comm(), table, options);
}

dist::ShuffleOptions Shuffle(const Step& step) {
  dist::ShuffleOptions options;
  options.threads = step.threads;
  return options;
}

Result<Table> UniqueOp(Step& step, Table table) {
  compute::UniqueOptions options;
  options.threads = step.threads;
  DEEPRC_ASSIGN_OR_RAISE(options.subset, StringList(step.args, "subset", step.where));
  DEEPRC_ASSIGN_OR_RAISE(std::string keep, TextArg(step.args, "keep", "first", step.where));
  if (keep == "first") {
    options.keep = compute::Keep::kFirst;
  } else if (keep == "last") {
    options.keep = compute::Keep::kLast;
  } else if (keep == "none") {
    options.keep = compute::Keep::kNone;
  } else {
    return Status::Invalid("{}.keep: expected first, last or none, found '{}'", step.where, keep);
  }
  return dist::Unique(step.context.comm(), table, options, Shuffle(step));
}

Result<Table> UnionOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(bool distinct, BoolArg(step.args, "distinct", true, step.where));
  DEEPRC_ASSIGN_OR_RAISE(Table right, ReadRight(step));
  return dist::Union(step.context.comm(), table, right, distinct, Shuffle(step));
}

Result<Table> IntersectOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(Table right, ReadRight(step));
  return dist::Intersect(step.context.comm(), table, right, Shuffle(step));
}

Result<Table> DifferenceOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(Table right, ReadRight(step));
  return dist::Difference(step.context.comm(), table, right, Shuffle(step));
}

Result<Table> RepartitionOp(Step& step, Table table) {
  comm::ExchangeOptions options;
  options.threads = step.threads;
  if (!step.args.contains("counts")) return dist::Repartition(step.context.comm(), table, options);
  const json& counts = step.args["counts"];
  if (!counts.is_array() || counts.size() != static_cast<size_t>(step.context.size()) ||
      !std::all_of(counts.begin(), counts.end(), [](const json& each) {
        return each.is_number_integer() && each.get<int64_t>() >= 0;
      })) {
    return Status::Invalid("{}.counts: expected {} row counts (one per rank), found {}", step.where,
                           step.context.size(), counts.dump());
  }
  return dist::Repartition(step.context.comm(), table, counts.get<std::vector<int64_t>>(), options);
}

Result<Table> HeadOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(int64_t n, IntArg(step.args, "n", std::nullopt, step.where));
  return dist::Head(step.context.comm(), table, n);
}

Result<Table> TailOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(int64_t n, IntArg(step.args, "n", std::nullopt, step.where));
  return dist::Tail(step.context.comm(), table, n);
}

Result<Table> SliceOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(int64_t offset, IntArg(step.args, "offset", 0, step.where));
  DEEPRC_ASSIGN_OR_RAISE(
      int64_t length,
      IntArg(step.args, "length", std::numeric_limits<int64_t>::max() - offset, step.where));
  return dist::Slice(step.context.comm(), table, offset,
                     std::min(length, std::numeric_limits<int64_t>::max() - offset));
}

json CellToJson(const Column& column, int64_t row) {
  if (column.IsNull(row)) return nullptr;
  switch (column.type_id()) {
    case TypeId::kBool:
      return column.GetBool(row);
    case TypeId::kInt8:
      return column.Value<int8_t>(row);
    case TypeId::kInt16:
      return column.Value<int16_t>(row);
    case TypeId::kInt32:
      return column.Value<int32_t>(row);
    case TypeId::kInt64:
      return column.Value<int64_t>(row);
    case TypeId::kUInt8:
      return column.Value<uint8_t>(row);
    case TypeId::kUInt16:
      return column.Value<uint16_t>(row);
    case TypeId::kUInt32:
      return column.Value<uint32_t>(row);
    case TypeId::kUInt64:
      return column.Value<uint64_t>(row);
    case TypeId::kFloat32:
      return column.Value<float>(row);
    case TypeId::kFloat64:
      return column.Value<double>(row);
    default:  // strings, dates and timestamps as text
      return column.FormatValue(row);
  }
}

Result<Table> AggregateOp(Step& step, Table table) {
  DEEPRC_ASSIGN_OR_RAISE(auto aggregates, Aggregates(step));
  DEEPRC_ASSIGN_OR_RAISE(
      Table row, dist::AggregateTable(step.context.comm(), table, aggregates, Shuffle(step)));
  json values = json::object();
  for (int c = 0; c < row.num_columns(); ++c) {
    values[row.schema().field(c).name] = CellToJson(row.column(c), 0);
  }
  step.info["values"] = std::move(values);
  // Every rank holds the row; the distributed result has it once.
  return step.context.rank() == 0 ? row : row.Slice(0, 0);
}

Result<Table> EqualsOp(Step& step, Table table) {
  dist::EqualsOptions options;
  DEEPRC_ASSIGN_OR_RAISE(options.ordered, BoolArg(step.args, "ordered", false, step.where));
  options.shuffle = Shuffle(step);
  DEEPRC_ASSIGN_OR_RAISE(Table right, ReadRight(step));
  DEEPRC_ASSIGN_OR_RAISE(bool equal, dist::Equals(step.context.comm(), table, right, options));
  step.info["equal"] = equal;
  return table;
}

const std::map<std::string, Operator, std::less<>>& Operators() {
  static const std::map<std::string, Operator, std::less<>> kOperators = {
      {"read_csv",
       {OpKind::kSource, ReadCsvOp, {std::begin(kReadCsvArguments), std::end(kReadCsvArguments)}}},
      {"write_csv",
       {OpKind::kSink, WriteCsvOp, {"path", "per_rank", "header", "delimiter", "null_value"}}},
      {"sort", {OpKind::kTransform, SortOp, {"by", "ascending", "nulls_first"}}},
      {"join",
       {OpKind::kTransform, JoinOp,
        {"right", "on", "left_on", "right_on", "how", "algorithm", "strategy", "nulls_equal",
         "suffixes"}}},
      {"group_by", {OpKind::kTransform, GroupByOp, {"by", "aggregates", "drop_null_keys"}}},
      {"unique", {OpKind::kTransform, UniqueOp, {"subset", "keep"}}},
      {"union", {OpKind::kTransform, UnionOp, {"right", "distinct"}}},
      {"intersect", {OpKind::kTransform, IntersectOp, {"right"}}},
      {"difference", {OpKind::kTransform, DifferenceOp, {"right"}}},
      {"repartition", {OpKind::kTransform, RepartitionOp, {"counts"}}},
      {"head", {OpKind::kTransform, HeadOp, {"n"}}},
      {"tail", {OpKind::kTransform, TailOp, {"n"}}},
      {"slice", {OpKind::kTransform, SliceOp, {"offset", "length"}}},
      {"aggregate", {OpKind::kTransform, AggregateOp, {"aggregates"}}},
      {"equals", {OpKind::kSink, EqualsOp, {"right", "ordered"}}},
  };
  return kOperators;
}

std::string OperatorNames() {
  std::string names;
  for (const auto& [name, op] : Operators()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

// The input table of a function or of a pipeline's first step.
Result<Table> ReadInput(TaskContext& context, const std::string& op, int threads) {
  const json& args = context.args();
  const char* key = op == "join" && !args.contains("input") ? "left" : "input";
  DEEPRC_ASSIGN_OR_RAISE(std::string input, TableName(args, key, "args"));
  return ReadPartition(context, input, threads);
}

// Arguments a function does not take are errors: they are most often a misspelling.
Status NoArgument(const json& args, const char* key, std::string_view why) {
  if (args.contains(key)) return Status::Invalid("args.{}: not taken here ({})", key, why);
  return Status::OK();
}

// table.<op>: reads `input` (unless the operator is a source), runs it, writes `output`.
Result<json> RunOperator(TaskContext& context, const std::string& op_name, const Operator& op) {
  const json& args = context.args();
  static constexpr std::string_view kCommon[] = {"input", "output", "threads"};
  static constexpr std::string_view kJoinCommon[] = {"input", "left", "output", "threads"};
  DEEPRC_RETURN_NOT_OK(CheckArguments(args, op.arguments,
                                      op_name == "join" ? std::span<const std::string_view>(kJoinCommon)
                                                        : std::span<const std::string_view>(kCommon),
                                      "args", "table." + op_name));
  DEEPRC_ASSIGN_OR_RAISE(int threads, Threads(args, "args"));
  std::string output;
  if (op.kind == OpKind::kSink) {
    DEEPRC_RETURN_NOT_OK(NoArgument(args, "output", op_name + " writes no table"));
  } else if (op_name != "aggregate" || args.contains("output")) {
    DEEPRC_ASSIGN_OR_RAISE(output, TableName(args, "output", "args"));
  }
  Table input;
  if (op.kind == OpKind::kSource) {
    DEEPRC_RETURN_NOT_OK(NoArgument(args, "input", op_name + " reads no table"));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(input, ReadInput(context, op_name, threads));
  }
  Step step{context, args, "args", threads};
  DEEPRC_ASSIGN_OR_RAISE(Table result, op.run(step, std::move(input)));
  json value = std::move(step.info);
  if (output.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(value["rows"], GlobalRows(context, result));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(value["rows"], WritePartition(context, output, result));
  }
  value["partitions"] = context.size();
  return value;
}

Result<json> RunPipeline(TaskContext& context) {
  const json& args = context.args();
  static constexpr std::string_view kPipeline[] = {"input", "output", "steps", "threads"};
  DEEPRC_RETURN_NOT_OK(CheckArguments(args, kPipeline, {}, "args", "table.pipeline"));
  auto steps = args.find("steps");
  if (steps == args.end() || !steps->is_array() || steps->empty()) {
    return Status::Invalid("args.steps: expected a list of operations ({})", OperatorNames());
  }
  // Every step is checked before any runs, so that a misspelled last step costs no work.
  std::vector<const Operator*> ops;
  for (size_t i = 0; i < steps->size(); ++i) {
    const json& step = (*steps)[i];
    const std::string op = step.is_object() ? step.value("op", "") : "";
    auto found = Operators().find(op);
    if (found == Operators().end()) {
      return Status::Invalid("args.steps[{}].op: expected one of {}, found '{}'", i,
                             OperatorNames(), op);
    }
    if (found->second.kind == OpKind::kSource && i > 0) {
      return Status::Invalid("args.steps[{}]: {} can only be the first step", i, op);
    }
    static constexpr std::string_view kStepCommon[] = {"op", "threads"};
    DEEPRC_RETURN_NOT_OK(CheckArguments(step, found->second.arguments, kStepCommon,
                                        fmt::format("args.steps[{}]", i), op));
    ops.push_back(&found->second);
  }
  DEEPRC_ASSIGN_OR_RAISE(int threads, Threads(args, "args"));
  std::string output;
  if (args.contains("output") || ops.back()->kind != OpKind::kSink) {
    DEEPRC_ASSIGN_OR_RAISE(output, TableName(args, "output", "args"));
  }
  Table table;
  if (ops.front()->kind == OpKind::kSource) {
    DEEPRC_RETURN_NOT_OK(NoArgument(args, "input", "the first step reads the data"));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(table, ReadInput(context, "", threads));
  }
  json reports = json::array();
  for (size_t i = 0; i < ops.size(); ++i) {
    if (context.canceled()) return Status::Cancelled("canceled after {} steps", i);
    const json& step_args = (*steps)[i];
    Step step{context, step_args, fmt::format("args.steps[{}]", i), threads};
    if (step_args.contains("threads")) {
      DEEPRC_ASSIGN_OR_RAISE(step.threads, Threads(step_args, step.where));
    }
    DEEPRC_ASSIGN_OR_RAISE(table, ops[i]->run(step, std::move(table)));
    step.info["op"] = step_args["op"];
    reports.push_back(std::move(step.info));
  }
  json value = {{"steps", std::move(reports)}, {"partitions", context.size()}};
  if (output.empty()) {
    DEEPRC_ASSIGN_OR_RAISE(value["rows"], GlobalRows(context, table));
  } else {
    DEEPRC_ASSIGN_OR_RAISE(value["rows"], WritePartition(context, output, table));
  }
  return value;
}

}  // namespace

Status RegisterDataFunctions(runtime::FunctionRegistry& registry) {
  for (const auto& [name, op] : Operators()) {
    DEEPRC_RETURN_NOT_OK(registry.Register(
        "table." + name, [name = name, op = op](TaskContext& context) -> Result<json> {
          return RunOperator(context, name, op);
        }));
  }
  return registry.Register("table.pipeline", RunPipeline);
}

}  // namespace deeprc::worker
