// `deeprc table ...`: the table kernels on CSV and binary table files, one subcommand each.
//
// With `--ranks N [--comm mpi|gloo]` the command runs the distributed operators on N ranks: it
// starts itself again, without --ranks, as the N ranks of one job (comm::LaunchRanks), with
// DEEPRC_TABLE_RANKS set so that each child knows it is a rank. Each rank reads its part of the
// inputs (CSV byte ranges, or a slice of a .drt file's rows), runs the dist operator, and the
// ranks write one output in rank order, as the command without --ranks would (sort: the same
// order; the others: the same rows, possibly in another order). Errors are agreed between the
// ranks; rank 0 prints the message and every rank exits with the same status.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "deeprc/command_registry.h"
#include "deeprc/compute/filter.h"
#include "deeprc/compute/group_by.h"
#include "deeprc/compute/join.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/compute/sort.h"
#include "deeprc/core/thread_pool.h"
#include "deeprc/dist/group_by.h"
#include "deeprc/dist/join.h"
#include "deeprc/dist/partition.h"
#include "deeprc/dist/set_ops.h"
#include "deeprc/dist/sort.h"
#include "deeprc/rank_relaunch.h"
#include "deeprc/table_io.h"

namespace deeprc::app {
namespace {

// Options every subcommand takes. Only one subcommand runs, so they share one set of variables.
struct CommonOptions {
  int threads = 0;
  std::string delimiter = ",";
  std::string output_delimiter = ",";
  bool no_header = false;
  std::vector<std::string> null_values;
  std::vector<std::string> types;
  std::string output;
  std::string compression = "none";
  int ranks = 0;  // 0: no --ranks (one process, the local operators)
  std::string comm = "mpi";
};

// Set in the environment of the ranks a `--ranks N` command starts.
constexpr const char* kRanksVariable = "DEEPRC_TABLE_RANKS";

void AddInputOptions(CLI::App* command, CommonOptions* common) {
  command->add_option("--threads", common->threads, "Threads (0: DEEPRC_THREADS or all cores)")
      ->check(CLI::NonNegativeNumber);
  command->add_option("--delimiter", common->delimiter,
                      "CSV field delimiter of the inputs ('\\t' for tab)");
  command->add_flag("--no-header", common->no_header,
                    "Input CSV files have no header line (columns are named f0, f1, ...)");
  command
      ->add_option("--null", common->null_values,
                   "Another token read as null (repeatable; \"\", NA, null, ... already are)")
      ->allow_extra_args(false);
  command
      ->add_option("--types", common->types,
                   "CSV type overrides, e.g. id:int64,when:timestamp[ms],name:string")
      ->allow_extra_args(false);
  command
      ->add_option("--ranks", common->ranks,
                   "Run the distributed operator on N ranks (processes) of one job")
      ->check(CLI::PositiveNumber);
  command->add_option("--comm", common->comm, "Communicator of --ranks: mpi or gloo");
}

void AddOutputOptions(CLI::App* command, CommonOptions* common) {
  command->add_option("-o,--output", common->output,
                      "Output file: .drt for the binary table file, else CSV; - or none: CSV on "
                      "standard output");
  command->add_option("--out-delimiter", common->output_delimiter, "CSV delimiter of the output");
  command->add_option("--compression", common->compression,
                      "Buffer compression of .drt output: none, zstd or lz4");
}

Result<TableIoOptions> MakeIoOptions(const CommonOptions& common) {
  TableIoOptions options;
  options.threads = common.threads;
  DEEPRC_ASSIGN_OR_RAISE(options.delimiter, ParseDelimiter(common.delimiter));
  DEEPRC_ASSIGN_OR_RAISE(options.output_delimiter, ParseDelimiter(common.output_delimiter));
  options.header = !common.no_header;
  options.null_values = common.null_values;
  options.types = SplitLists(common.types);
  DEEPRC_ASSIGN_OR_RAISE(options.compression, ParseTableFileCompression(common.compression));
  return options;
}

// What a subcommand does once its options are parsed.
using Action = std::function<Status(const TableIoOptions&)>;

// Loads, transforms and saves: the output path is checked before the inputs are read, so that
// a bad -o fails at once. With a communicator (a rank of --ranks), `tables` are this rank's parts
// and `transform` returns this rank's part of the result.
Status LoadTransformSave(comm::Communicator* comm, const std::vector<std::string>& inputs,
                         const TableIoOptions& options, const std::string& output,
                         const std::function<Result<Table>(std::vector<Table>&)>& transform) {
  DEEPRC_RETURN_NOT_OK(CheckOutputPath(output));
  if (comm != nullptr) {
    std::vector<Table> parts;
    for (const auto& path : inputs) {
      DEEPRC_ASSIGN_OR_RAISE(Table part, LoadTablePart(*comm, path, options));
      parts.push_back(std::move(part));
    }
    // The dist operators agree on errors themselves; local steps (filter) may fail on one rank.
    Result<Table> result = transform(parts);
    DEEPRC_RETURN_NOT_OK(AgreeAcrossRanks(*comm, result.status()));
    return SaveTableParts(*comm, *result, output, options);
  }
  std::vector<Table> tables;
  for (const auto& path : inputs) {
    DEEPRC_ASSIGN_OR_RAISE(Table table, LoadTable(path, options));
    tables.push_back(std::move(table));
  }
  DEEPRC_ASSIGN_OR_RAISE(Table result, transform(tables));
  return SaveTable(result, output, options);
}

Result<std::vector<std::string>> RequireList(const std::vector<std::string>& texts,
                                             std::string_view option) {
  auto items = SplitLists(texts);
  if (items.empty()) return Status::Invalid("{} needs at least one column", option);
  return items;
}

Result<std::pair<std::string, std::string>> ParseSuffixes(const std::string& text) {
  const auto comma = text.find(',');
  if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos) {
    return Status::Invalid("--suffixes: expected two suffixes separated by a comma, found '{}'",
                           text);
  }
  return std::make_pair(text.substr(0, comma), text.substr(comma + 1));
}

// `quiet`: a rank other than 0 of --ranks (rank 0 prints the error every rank agreed on).
int ExitWith(const std::string& command, const Status& status, bool quiet = false) {
  if (status.ok()) return kExitOk;
  if (!quiet) std::fprintf(stderr, "%s: %s\n", command.c_str(), status.message().c_str());
  if (status.IsUserError()) return kExitUsage;
  return kExitFailure;
}

dist::ShuffleOptions ShuffleWith(const TableIoOptions& options) {
  dist::ShuffleOptions shuffle;
  shuffle.threads = shuffle.exchange.threads = options.threads;
  return shuffle;
}

int RunTableCommand(int argc, char** argv) {
  CLI::App app{"Table operations on CSV and binary table (.drt) files", "deeprc table"};
  app.require_subcommand(1, 1);
  app.set_help_all_flag("--help-all", "Describe every subcommand");
  CommonOptions common;
  // The values of the subcommands' options. Only one subcommand runs, so those that mean the
  // same thing (the input, --by, -n) share a variable.
  std::string input, left, right, a, b, where;
  std::string how = "inner", algorithm = "auto", suffixes = "_x,_y", keep = "first";
  std::vector<std::string> on, left_on, right_on, by, aggregates, descending, nulls_first, subset;
  bool nulls_equal = false, drop_null_keys = false, all = false;
  int64_t rows = 10;
  std::vector<std::pair<CLI::App*, Action>> actions;
  // This process's rank when it is one of the ranks of --ranks, else null (local operators).
  comm::Communicator* ranks = nullptr;

  // join
  {
    auto* command = app.add_subcommand("join", "Join two tables on key columns");
    command->add_option("left", left, "Left table")->required();
    command->add_option("right", right, "Right table")->required();
    command->add_option("--on", on, "Key columns with the same name on both sides")
        ->allow_extra_args(false);
    command->add_option("--left-on", left_on, "Key columns of the left table")
        ->allow_extra_args(false);
    command->add_option("--right-on", right_on, "Key columns of the right table")
        ->allow_extra_args(false);
    command->add_option("--how", how, "inner, left, right, outer, semi or anti");
    command->add_option("--algorithm", algorithm, "hash, sort or auto");
    command->add_option("--suffixes", suffixes, "Suffixes for clashing names, e.g. _x,_y");
    command->add_flag("--nulls-equal", nulls_equal, "Null keys match each other (pandas)");
    AddInputOptions(command, &common);
    AddOutputOptions(command, &common);
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      compute::JoinOptions join;
      DEEPRC_ASSIGN_OR_RAISE(join.type, compute::ParseJoinType(how));
      DEEPRC_ASSIGN_OR_RAISE(join.algorithm, compute::ParseJoinAlgorithm(algorithm));
      const auto shared = SplitLists(on);
      join.left_keys = SplitLists(left_on);
      join.right_keys = SplitLists(right_on);
      if (!shared.empty()) {
        if (!join.left_keys.empty() || !join.right_keys.empty()) {
          return Status::Invalid("give either --on or --left-on with --right-on, not both");
        }
        join.left_keys = join.right_keys = shared;
      }
      if (join.left_keys.empty() || join.right_keys.empty()) {
        return Status::Invalid("the keys are missing: give --on, or --left-on and --right-on");
      }
      if (join.left_keys.size() != join.right_keys.size()) {
        return Status::Invalid("--left-on has {} columns but --right-on has {}",
                               join.left_keys.size(), join.right_keys.size());
      }
      DEEPRC_ASSIGN_OR_RAISE(auto suffix_pair, ParseSuffixes(suffixes));
      join.left_suffix = suffix_pair.first;
      join.right_suffix = suffix_pair.second;
      join.nulls_equal = nulls_equal;
      join.threads = options.threads;
      return LoadTransformSave(
          ranks, {left, right}, options, common.output,
          [&](std::vector<Table>& tables) -> Result<Table> {
            if (ranks != nullptr) {
              dist::DistJoinOptions distributed;
              distributed.join = join;
              distributed.shuffle.threads = distributed.shuffle.exchange.threads = options.threads;
              return dist::Join(*ranks, tables[0], tables[1], distributed);
            }
            return compute::Join(tables[0], tables[1], join);
          });
    });
  }

  // groupby
  {
    auto* command = app.add_subcommand("groupby", "Aggregate per group of key values");
    command->add_option("input", input, "Input table")->required();
    command->add_option("--by", by, "Key columns, e.g. k1,k2")->allow_extra_args(false)->required();
    command
        ->add_option("--agg", aggregates,
                     "Aggregates column:kind[=name], e.g. v:sum,v:mean,w:nunique,v:quantile(0.9)")

        ->allow_extra_args(false)
        ->required();
    command->add_flag("--drop-null-keys", drop_null_keys, "Drop rows whose key has a null");
    AddInputOptions(command, &common);
    AddOutputOptions(command, &common);
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      compute::GroupByOptions group_by;
      DEEPRC_ASSIGN_OR_RAISE(group_by.keys, RequireList(by, "--by"));
      DEEPRC_ASSIGN_OR_RAISE(auto texts, RequireList(aggregates, "--agg"));
      for (const auto& text : texts) {
        auto parsed = compute::ParseAggregate(text);
        if (!parsed.ok()) return parsed.status().WithContext("--agg");
        group_by.aggregates.push_back(parsed.MoveValueUnsafe());
      }
      group_by.drop_null_keys = drop_null_keys;
      group_by.threads = options.threads;
      return LoadTransformSave(
          ranks, {input}, options, common.output, [&](std::vector<Table>& tables) {
            if (ranks != nullptr) {
              dist::DistGroupByOptions distributed;
              distributed.group_by = group_by;
              distributed.shuffle.threads = distributed.shuffle.exchange.threads = options.threads;
              return dist::GroupBy(*ranks, tables[0], distributed);
            }
            return compute::GroupBy(tables[0], group_by);
          });
    });
  }

  // sort
  {
    auto* command = app.add_subcommand("sort", "Sort rows by key columns (stable)");
    command->add_option("input", input, "Input table")->required();
    command->add_option("--by", by, "Sort keys, most significant first")
        ->allow_extra_args(false)
        ->required();
    command->add_option("--descending", descending, "Keys sorted in descending order")
        ->allow_extra_args(false);
    command->add_option("--nulls-first", nulls_first, "Keys whose nulls come first")
        ->allow_extra_args(false);
    AddInputOptions(command, &common);
    AddOutputOptions(command, &common);
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      compute::SortOptions sort;
      DEEPRC_ASSIGN_OR_RAISE(auto keys, RequireList(by, "--by"));
      for (const auto& key : keys) sort.keys.push_back({key, true, false});
      auto mark = [&](const std::vector<std::string>& names, std::string_view option,
                      const std::function<void(compute::SortKey&)>& apply) -> Status {
        for (const auto& name : SplitLists(names)) {
          bool found = false;
          for (auto& key : sort.keys) {
            if (key.column == name) {
              apply(key);
              found = true;
            }
          }
          if (!found)
            return Status::Invalid("{}: '{}' is not one of the --by columns", option, name);
        }
        return Status::OK();
      };
      DEEPRC_RETURN_NOT_OK(
          mark(descending, "--descending", [](compute::SortKey& key) { key.ascending = false; }));
      DEEPRC_RETURN_NOT_OK(mark(nulls_first, "--nulls-first",
                                [](compute::SortKey& key) { key.nulls_first = true; }));
      sort.threads = options.threads;
      return LoadTransformSave(
          ranks, {input}, options, common.output, [&](std::vector<Table>& tables) {
            if (ranks != nullptr) {
              dist::SampleSortOptions sample;
              sample.exchange.threads = options.threads;
              return dist::Sort(*ranks, tables[0], sort, sample);
            }
            return compute::Sort(tables[0], sort);
          });
    });
  }

  // unique
  {
    auto* command = app.add_subcommand("unique", "Drop duplicate rows");
    command->add_option("input", input, "Input table")->required();
    command->add_option("--subset", subset, "Columns that decide duplicates (default: all)")
        ->allow_extra_args(false);
    command->add_option("--keep", keep, "Which duplicate stays: first, last or none");
    AddInputOptions(command, &common);
    AddOutputOptions(command, &common);
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      compute::UniqueOptions unique;
      unique.subset = SplitLists(subset);
      if (keep == "first") {
        unique.keep = compute::Keep::kFirst;
      } else if (keep == "last") {
        unique.keep = compute::Keep::kLast;
      } else if (keep == "none") {
        unique.keep = compute::Keep::kNone;
      } else {
        return Status::Invalid("--keep: expected first, last or none, found '{}'", keep);
      }
      unique.threads = options.threads;
      return LoadTransformSave(
          ranks, {input}, options, common.output, [&](std::vector<Table>& tables) {
            if (ranks != nullptr) {
              return dist::Unique(*ranks, tables[0], unique, ShuffleWith(options));
            }
            return compute::Unique(tables[0], unique);
          });
    });
  }

  // union, intersect, difference
  {
    struct SetCommand {
      const char* name;
      const char* summary;
    };
    for (const SetCommand& set : {SetCommand{"union", "Rows of A and B (distinct unless --all)"},
                                  SetCommand{"intersect", "Distinct rows of A that are in B"},
                                  SetCommand{"difference", "Distinct rows of A not in B"}}) {
      auto* command = app.add_subcommand(set.name, set.summary);
      command->add_option("a", a, "Table A")->required();
      command->add_option("b", b, "Table B (same columns and types as A)")->required();
      if (std::string_view(set.name) == "union") {
        command->add_flag("--all", all, "Keep every row of both (UNION ALL)");
      }
      AddInputOptions(command, &common);
      AddOutputOptions(command, &common);
      const std::string name = set.name;
      actions.emplace_back(command, [&, name](const TableIoOptions& options) -> Status {
        return LoadTransformSave(
            ranks, {a, b}, options, common.output,
            [&](std::vector<Table>& tables) -> Result<Table> {
              if (ranks != nullptr) {
                const auto shuffle = ShuffleWith(options);
                if (name == "union") {
                  return dist::Union(*ranks, tables[0], tables[1], !all, shuffle);
                }
                if (name == "intersect") {
                  return dist::Intersect(*ranks, tables[0], tables[1], shuffle);
                }
                return dist::Difference(*ranks, tables[0], tables[1], shuffle);
              }
              if (name == "union") {
                return compute::Union(tables[0], tables[1], !all, options.threads);
              }
              if (name == "intersect") {
                return compute::Intersect(tables[0], tables[1], options.threads);
              }
              return compute::Difference(tables[0], tables[1], options.threads);
            });
      });
    }
  }

  // filter
  {
    auto* command = app.add_subcommand("filter", "Keep the rows where a predicate is true");
    command->add_option("input", input, "Input table")->required();
    command
        ->add_option("--where", where,
                     "Predicate, e.g. \"a > 3 and b is not null\" (SQL null logic)")
        ->required();
    AddInputOptions(command, &common);
    AddOutputOptions(command, &common);
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      // With --ranks each rank filters its own rows.
      return LoadTransformSave(
          ranks, {input}, options, common.output, [&](std::vector<Table>& tables) {
            return compute::Filter(tables[0], std::string_view(where), options.threads);
          });
    });
  }

  // head, tail
  {
    for (const char* name : {"head", "tail"}) {
      const bool head = std::string_view(name) == "head";
      auto* command = app.add_subcommand(name, head ? "The first N rows" : "The last N rows");
      command->add_option("input", input, "Input table")->required();
      command->add_option("-n,--rows", rows, "Number of rows (default 10)");
      AddInputOptions(command, &common);
      AddOutputOptions(command, &common);
      actions.emplace_back(command, [&, head](const TableIoOptions& options) -> Status {
        if (rows < 0) return Status::Invalid("-n: expected a count >= 0, found {}", rows);
        return LoadTransformSave(
            ranks, {input}, options, common.output,
            [&](std::vector<Table>& tables) -> Result<Table> {
              const Table& table = tables[0];
              if (ranks != nullptr) {
                return head ? dist::Head(*ranks, table, rows) : dist::Tail(*ranks, table, rows);
              }
              if (head) return table.Slice(0, rows);
              return table.Slice(std::max<int64_t>(0, table.num_rows() - rows), rows);
            });
      });
    }
  }

  // convert
  {
    auto* command = app.add_subcommand(
        "convert", "Convert between CSV and the binary table file (by the output's extension)");
    command->add_option("input", input, "Input table (CSV or .drt, recognized by content)")
        ->required();
    AddInputOptions(command, &common);
    AddOutputOptions(command, &common);
    command->get_option("--output")->required();
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      return LoadTransformSave(
          ranks, {input}, options, common.output,
          [](std::vector<Table>& tables) -> Result<Table> { return std::move(tables[0]); });
    });
  }

  // schema
  {
    auto* command = app.add_subcommand("schema", "Print the column names and types");
    command->add_option("input", input, "Input table")->required();
    AddInputOptions(command, &common);
    actions.emplace_back(command, [&](const TableIoOptions& options) -> Status {
      int64_t rows = -1;
      Schema schema;
      if (ranks != nullptr) {
        // The parts' types are joined across ranks, so every rank has the schema.
        DEEPRC_ASSIGN_OR_RAISE(Table part, LoadTablePart(*ranks, input, options));
        DEEPRC_ASSIGN_OR_RAISE(auto counts, dist::GlobalRowCounts(*ranks, part));
        if (ranks->rank() != 0) return Status::OK();
        schema = part.schema();
        rows = counts.total;
      } else {
        DEEPRC_ASSIGN_OR_RAISE(schema, LoadSchema(input, options, &rows));
      }
      for (const auto& field : schema.fields()) {
        std::cout << field.name << ": " << field.type.ToString() << '\n';
      }
      std::cout << "(" << rows << " rows)\n";
      std::cout.flush();
      return Status::OK();
    });
  }

  if (argc >= 2 && argv[1][0] != '-') {
    std::string known;
    bool found = false;
    for (const auto* command : app.get_subcommands({})) {
      found = found || command->get_name() == argv[1];
      known += (known.empty() ? "" : ", ") + command->get_name();
    }
    if (!found) {
      std::fprintf(stderr, "deeprc table: unknown subcommand '%s' (expected one of %s)\n", argv[1],
                   known.c_str());
      return kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);  // --help
    std::string where = "deeprc table";
    for (const auto* sub : app.get_subcommands()) where += " " + sub->get_name();
    std::fprintf(stderr, "%s: %s (see --help)\n", where.c_str(), error.what());
    return kExitUsage;
  }
  for (auto& [command, action] : actions) {
    if (!command->parsed()) continue;
    const std::string name = "deeprc table " + command->get_name();
    auto options = MakeIoOptions(common);
    if (!options.ok()) return ExitWith(name, options.status());
    if (!IsRankProcess(kRanksVariable) && common.ranks > 0) {
      return RelaunchAsRanks(name, "table", common.ranks, common.comm, kRanksVariable, argc, argv);
    }
    std::unique_ptr<comm::Communicator> communicator;
    if (IsRankProcess(kRanksVariable)) {
      auto made = comm::MakeCommunicator();
      if (!made.ok()) return ExitWith(name, made.status());
      communicator = std::move(*made);
      ranks = communicator.get();
      if (options->threads == 0) {
        options->threads = std::max(1, DefaultThreadCount() / communicator->size());
      }
    }
    Status status;
    try {
      status = action(*options);
    } catch (const std::exception& error) {
      status = Status::Internal("{}", error.what());
    }
    return ExitWith(name, status, ranks != nullptr && ranks->rank() != 0);
  }
  std::fprintf(stderr, "deeprc table: no subcommand given (see --help)\n");
  return kExitUsage;
}

const bool kRegistered = RegisterCommand(
    {"table", "Join, group, sort, filter, convert tables (CSV and .drt)", RunTableCommand});

}  // namespace
}  // namespace deeprc::app
