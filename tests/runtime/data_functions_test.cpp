// The data functions of the standard worker (apps/deeprc-worker/data_functions.cpp) through a
// real pool: `deeprc-worker` ranks under mpirun, a pilot and its task manager in this process.
// Every operator runs as a 1-, 2- and 4-rank task on randomized tables (nulls, strings,
// duplicates) stored in 3 parts, and its result must equal the local operator (compute, or the
// local CSV reader and writer) on the same input.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "bench_workload/bench_workload.h"
#include "deeprc/compute/group_by.h"
#include "deeprc/compute/join.h"
#include "deeprc/compute/selection.h"
#include "deeprc/compute/set_ops.h"
#include "deeprc/compute/sort.h"
#include "deeprc/runtime/client.h"
#include "deeprc/runtime/function.h"
#include "deeprc/runtime/session.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/table_file.h"
#include "testing/assertions.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kPoolRanks = 4;

// One pilot with a pool of 4 worker ranks for the whole program (a pool starts in about a
// second); its session goes away at the end unless a test failed.
class DataFunctionsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SessionOptions session_options;
    session_options.root = fs::temp_directory_path().string() + "/deeprc_data_functions_test." +
                           std::to_string(::getpid());
    session_ = Session::Make(session_options).ValueOrDie().release();
    pilots_ = new PilotManager(*session_);
    PilotOptions options;
    PoolDescription pool;
    pool.name = "data";
    pool.workers = kPoolRanks;
    pool.program = std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc-worker";
    options.pools.pools = {pool};
    PilotDescription description;
    description.cores = kPoolRanks;
    pilot_ = pilots_->Submit(description, options).ValueOrDie();
    tasks_ = new TaskManager(*session_);
    ASSERT_OK(tasks_->AddPilot(*pilot_));
  }

  static void TearDownTestSuite() {
    const std::string root = fs::path(session_->directory()).parent_path().string();
    delete tasks_;
    delete pilots_;
    delete session_;
    if (::testing::UnitTest::GetInstance()->failed_test_count() == 0) {
      std::error_code ignored;
      fs::remove_all(root, ignored);
    }
  }

  static std::string Dir() { return session_->directory(); }

  static TaskDescription Function(const std::string& uid, const std::string& function, json args,
                                  int32_t ranks) {
    TaskDescription task;
    task.uid = uid;
    task.mode = TaskMode::kFunction;
    task.function = function;
    task.args = std::move(args);
    task.ranks = ranks;
    return task;
  }

  // Submits the tasks together and returns their results by uid.
  static std::map<std::string, ExecutionResult> Run(std::vector<TaskDescription> batch) {
    std::map<std::string, ExecutionResult> results;
    auto uids = tasks_->Submit(std::move(batch));
    EXPECT_OK(uids.status());
    if (!uids.ok()) return results;
    EXPECT_OK(tasks_->Wait(*uids, FinalTaskStates(), 120s));
    for (const std::string& uid : *uids) {
      auto result = tasks_->result(uid);
      if (result.ok()) results[uid] = *result;
    }
    return results;
  }

  static void WriteParts(const std::string& name, const std::vector<Table>& parts) {
    fs::create_directories(Dir() + "/data/" + name);
    for (size_t r = 0; r < parts.size(); ++r) {
      ASSERT_OK(WriteTableFile(parts[r], fmt::format("{}/data/{}/part-{}.drt", Dir(), name, r)));
    }
  }

  // The parts of a table in order, and their concatenation.
  static std::vector<Table> ReadPartsOf(const std::string& name) {
    std::vector<Table> parts;
    for (int r = 0;; ++r) {
      const std::string path = fmt::format("{}/data/{}/part-{}.drt", Dir(), name, r);
      if (!fs::exists(path)) break;
      parts.push_back(ReadTableFile(path).ValueOrDie());
    }
    return parts;
  }
  static Table ReadTable(const std::string& name) {
    return compute::Concatenate(ReadPartsOf(name)).ValueOrDie();
  }

  static Session* session_;
  static PilotManager* pilots_;
  static TaskManager* tasks_;
  static Pilot* pilot_;
};

Session* DataFunctionsTest::session_ = nullptr;
PilotManager* DataFunctionsTest::pilots_ = nullptr;
TaskManager* DataFunctionsTest::tasks_ = nullptr;
Pilot* DataFunctionsTest::pilot_ = nullptr;

std::vector<Table> Split(const Table& table, int parts) {
  std::vector<Table> out;
  for (int p = 0; p < parts; ++p) {
    const int64_t begin = table.num_rows() * p / parts;
    const int64_t end = table.num_rows() * (p + 1) / parts;
    out.push_back(table.Slice(begin, end - begin));
  }
  return out;
}

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(DataFunctionsTest, EveryOperatorEqualsTheLocalOperatorAtOneTwoAndFourRanks) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  // Few distinct values per column: many duplicate keys and whole-row duplicates.
  const std::vector<testing::RandomColumnSpec> spec = {{"k", DataType::Int64(), 0.1, 12},
                                                       {"s", DataType::String(), 0.1, 5},
                                                       {"v", DataType::Float64(), 0.1, 4}};
  const Table a = testing::RandomTable(spec, 311, seed);
  // b shares a third of a's rows, so that intersect and difference have work.
  const Table b =
      compute::Concatenate({a.Slice(40, 100), testing::RandomTable(spec, 150, seed + 1)})
          .ValueOrDie();
  const Table right = testing::RandomTable(
      {{"k", DataType::Int64(), 0.1, 12}, {"label", DataType::String(), 0.2, 30}}, 47, seed + 2);
  // The same rows as a in another order and cut: equal to a as a multiset, not in order.
  std::vector<int64_t> reversed(static_cast<size_t>(a.num_rows()));
  for (int64_t i = 0; i < a.num_rows(); ++i)
    reversed[static_cast<size_t>(i)] = a.num_rows() - 1 - i;
  const Table a_reversed = compute::Take(a, reversed).ValueOrDie();
  // Stored in 3 and 2 parts: tasks of 1, 2 and 4 ranks all read tables cut differently.
  WriteParts("a", Split(a, 3));
  WriteParts("b", Split(b, 2));
  WriteParts("right", Split(right, 3));
  WriteParts("a_reversed", Split(a_reversed, 2));
  fs::create_directories(Dir() + "/in");
  ASSERT_OK(csv::WriteCsv(a, Dir() + "/in/a.csv"));
  const std::vector<Table> a_files = Split(a, 3);
  for (size_t i = 0; i < a_files.size(); ++i) {
    ASSERT_OK(csv::WriteCsv(a_files[i], fmt::format("{}/in/a_part{}.csv", Dir(), i)));
  }
  ASSERT_OK(csv::WriteCsv(right, Dir() + "/in/right.csv"));
  const json types = {{"k", "int64"}, {"s", "string"}, {"v", "float64"}};

  std::vector<TaskDescription> batch;
  for (int k : {1, 2, 4}) {
    const auto add = [&](const std::string& op, json args) {
      batch.push_back(Function(fmt::format("{}.{}", op, k), "table." + op, std::move(args), k));
    };
    const auto out = [&](const std::string& op) { return fmt::format("{}_{}", op, k); };
    add("sort", {{"input", "a"},
                 {"output", out("sort")},
                 {"by", {"k", "s"}},
                 {"ascending", {true, false}}});
    add("join", {{"input", "a"},
                 {"right", "right"},
                 {"output", out("join")},
                 {"on", "k"},
                 {"how", "left"}});
    add("group_by", {{"input", "a"},
                     {"output", out("group_by")},
                     {"by", "k"},
                     {"aggregates", {"v:sum", "v:count", "s:nunique", "s:max", "v:min=low"}}});
    add("unique",
        {{"input", "a"}, {"output", out("unique")}, {"subset", {"k", "s"}}, {"keep", "last"}});
    add("union", {{"input", "a"}, {"right", "b"}, {"output", out("union")}});
    add("intersect", {{"input", "a"}, {"right", "b"}, {"output", out("intersect")}});
    add("difference", {{"input", "a"}, {"right", "b"}, {"output", out("difference")}});
    add("repartition", {{"input", "a"}, {"output", out("repartition")}});
    add("head", {{"input", "a"}, {"output", out("head")}, {"n", 37}});
    add("tail", {{"input", "a"}, {"output", out("tail")}, {"n", 41}});
    add("slice", {{"input", "a"}, {"output", out("slice")}, {"offset", 50}, {"length", 100}});
    add("aggregate", {{"input", "a"},
                      {"output", out("aggregate")},
                      {"aggregates", {"v:sum", "k:max", "s:nunique", "v:count"}}});
    batch.push_back(Function(fmt::format("equal.{}", k), "table.equals",
                             {{"input", "a"}, {"right", "a_reversed"}}, k));
    batch.push_back(Function(fmt::format("ordered.{}", k), "table.equals",
                             {{"input", "a"}, {"right", "a_reversed"}, {"ordered", true}}, k));
    batch.push_back(Function(fmt::format("unequal.{}", k), "table.equals",
                             {{"input", "a"}, {"right", "b"}}, k));
    add("read_csv", {{"path", "in/a.csv"}, {"output", out("read_csv")}, {"types", types}});
    batch.push_back(Function(
        fmt::format("read_glob.{}", k), "table.read_csv",
        {{"path", Dir() + "/in/a_part*.csv"}, {"output", out("read_glob")}, {"types", types}}, k));
    batch.push_back(Function(fmt::format("read_sized.{}", k), "table.read_csv",
                             {{"path", {"in/a_part2.csv", "in/a_part0.csv", "in/a_part1.csv"}},
                              {"assign", "by_size"},
                              {"output", out("read_sized")},
                              {"types", types}},
                             k));
    add("write_csv", {{"input", "a"}, {"path", fmt::format("out/a_{}.csv", k)}});
    batch.push_back(Function(
        fmt::format("write_ranks.{}", k), "table.write_csv",
        {{"input", "a"}, {"path", fmt::format("out/ranks_{}_{{rank}}.csv", k)}, {"per_rank", true}},
        k));
    batch.push_back(Function(
        fmt::format("pipeline.{}", k), "table.pipeline",
        {{"steps",
          {{{"op", "read_csv"}, {"path", "in/a.csv"}, {"types", types}},
           {{"op", "join"},
            {"right", {{"path", "in/right.csv"}, {"types", {{"k", "int64"}, {"label", "string"}}}}},
            {"on", "k"}},
           {{"op", "group_by"}, {"by", {"k", "label"}}, {"aggregates", {"v:sum", "s:count"}}},
           {{"op", "sort"}, {"by", {"k", "label"}}},
           {{"op", "write_csv"}, {"path", fmt::format("out/pipeline_{}.csv", k)}}}}},
        k));
  }
  std::map<std::string, ExecutionResult> results = Run(std::move(batch));

  // The local operators on the same input.
  compute::SortOptions sort;
  sort.keys = {{"k", true, false}, {"s", false, false}};
  const Table sorted = compute::Sort(a, sort).ValueOrDie();
  compute::JoinOptions join;
  join.left_keys = join.right_keys = {"k"};
  join.type = compute::JoinType::kLeft;
  const Table joined = compute::Join(a, right, join).ValueOrDie();
  compute::GroupByOptions group_by;
  group_by.keys = {"k"};
  for (const char* text : {"v:sum", "v:count", "s:nunique", "s:max", "v:min=low"}) {
    group_by.aggregates.push_back(compute::ParseAggregate(text).ValueOrDie());
  }
  const Table grouped = compute::GroupBy(a, group_by).ValueOrDie();
  compute::UniqueOptions unique;
  unique.subset = {"k", "s"};
  unique.keep = compute::Keep::kLast;
  std::vector<compute::Aggregate> aggregates;
  for (const char* text : {"v:sum", "k:max", "s:nunique", "v:count"}) {
    aggregates.push_back(compute::ParseAggregate(text).ValueOrDie());
  }
  const Table aggregated = compute::AggregateTable(a, aggregates).ValueOrDie();
  csv::ReadOptions read;
  read.column_types = {
      {"k", DataType::Int64()}, {"s", DataType::String()}, {"v", DataType::Float64()}};
  const Table from_csv = csv::ReadCsv(Dir() + "/in/a.csv", read).ValueOrDie();
  std::vector<Table> glob_parts;
  for (size_t i = 0; i < a_files.size(); ++i) {
    glob_parts.push_back(
        csv::ReadCsv(fmt::format("{}/in/a_part{}.csv", Dir(), i), read).ValueOrDie());
  }
  const Table from_glob = compute::Concatenate(glob_parts).ValueOrDie();
  ASSERT_OK(csv::WriteCsv(a, Dir() + "/in/expected.csv"));
  const std::string expected_csv = FileText(Dir() + "/in/expected.csv");
  compute::JoinOptions inner;
  inner.left_keys = inner.right_keys = {"k"};
  compute::GroupByOptions pipeline_group;
  pipeline_group.keys = {"k", "label"};
  for (const char* text : {"v:sum", "s:count"}) {
    pipeline_group.aggregates.push_back(compute::ParseAggregate(text).ValueOrDie());
  }
  compute::SortOptions pipeline_sort;
  pipeline_sort.keys = {{"k", true, false}, {"label", true, false}};
  csv::ReadOptions read_right;
  read_right.column_types = {{"k", DataType::Int64()}, {"label", DataType::String()}};
  const Table right_csv = csv::ReadCsv(Dir() + "/in/right.csv", read_right).ValueOrDie();
  const Table pipeline_expected =
      compute::Sort(
          compute::GroupBy(compute::Join(from_csv, right_csv, inner).ValueOrDie(), pipeline_group)
              .ValueOrDie(),
          pipeline_sort)
          .ValueOrDie();
  const std::string pipeline_csv = Dir() + "/in/pipeline_expected.csv";
  ASSERT_OK(csv::WriteCsv(pipeline_expected, pipeline_csv));

  for (int k : {1, 2, 4}) {
    SCOPED_TRACE(fmt::format("{} ranks", k));
    for (const auto& [uid, result] : results) {
      if (!uid.ends_with(fmt::format(".{}", k))) continue;
      ASSERT_EQ(result.state, TaskState::kDone) << uid << ": " << result.reason;
      EXPECT_EQ(result.value["partitions"], k) << uid;
    }
    const auto table = [&](const std::string& op) {
      const std::string name = fmt::format("{}_{}", op, k);
      // Every writer leaves exactly k parts.
      EXPECT_EQ(ReadPartsOf(name).size(), static_cast<size_t>(k)) << name;
      EXPECT_EQ(results.at(fmt::format("{}.{}", op, k)).value["rows"], ReadTable(name).num_rows())
          << name;
      return ReadTable(name);
    };
    EXPECT_TRUE(testing::TablesEqualOrdered(sorted, table("sort")));
    EXPECT_TRUE(testing::TablesEqualUnordered(joined, table("join")));
    EXPECT_TRUE(testing::TablesEqualUnordered(grouped, table("group_by")));
    EXPECT_TRUE(
        testing::TablesEqualUnordered(compute::Unique(a, unique).ValueOrDie(), table("unique")));
    EXPECT_TRUE(testing::TablesEqualUnordered(compute::Union(a, b).ValueOrDie(), table("union")));
    EXPECT_TRUE(
        testing::TablesEqualUnordered(compute::Intersect(a, b).ValueOrDie(), table("intersect")));
    EXPECT_TRUE(
        testing::TablesEqualUnordered(compute::Difference(a, b).ValueOrDie(), table("difference")));
    EXPECT_TRUE(testing::TablesEqualOrdered(a, table("repartition")));
    for (const Table& part : ReadPartsOf(fmt::format("repartition_{}", k))) {
      EXPECT_LE(std::abs(part.num_rows() - a.num_rows() / k), 1);
    }
    EXPECT_TRUE(testing::TablesEqualOrdered(a.Slice(0, 37), table("head")));
    EXPECT_TRUE(testing::TablesEqualOrdered(a.Slice(a.num_rows() - 41, 41), table("tail")));
    EXPECT_TRUE(testing::TablesEqualOrdered(a.Slice(50, 100), table("slice")));
    EXPECT_TRUE(testing::TablesEqualOrdered(aggregated, table("aggregate")));
    const json& values = results.at(fmt::format("aggregate.{}", k)).value["values"];
    EXPECT_EQ(values["k_max"], aggregated.GetColumn("k_max").ValueOrDie().Value<int64_t>(0));
    EXPECT_EQ(values["v_count"], aggregated.GetColumn("v_count").ValueOrDie().Value<int64_t>(0));
    EXPECT_DOUBLE_EQ(values["v_sum"].get<double>(),
                     aggregated.GetColumn("v_sum").ValueOrDie().Value<double>(0));
    EXPECT_EQ(results.at(fmt::format("equal.{}", k)).value["equal"], true);
    EXPECT_EQ(results.at(fmt::format("ordered.{}", k)).value["equal"], false);
    EXPECT_EQ(results.at(fmt::format("unequal.{}", k)).value["equal"], false);
    EXPECT_TRUE(testing::TablesEqualOrdered(from_csv, table("read_csv")));
    EXPECT_TRUE(testing::TablesEqualOrdered(from_glob, table("read_glob")));
    // by_size balances bytes: the same rows, in an order by rank.
    EXPECT_TRUE(testing::TablesEqualUnordered(from_glob, table("read_sized")));
    // One file: byte for byte what the local writer writes; per rank: the rows in rank order.
    EXPECT_EQ(FileText(fmt::format("{}/out/a_{}.csv", Dir(), k)), expected_csv);
    std::vector<Table> rank_files;
    for (int r = 0; r < k; ++r) {
      rank_files.push_back(
          csv::ReadCsv(fmt::format("{}/out/ranks_{}_{}.csv", Dir(), k, r), read).ValueOrDie());
    }
    EXPECT_TRUE(
        testing::TablesEqualOrdered(from_csv, compute::Concatenate(rank_files).ValueOrDie()));
    EXPECT_EQ(results.at(fmt::format("write_ranks.{}", k)).value["files"].size(),
              static_cast<size_t>(k));
    // The pipeline: two CSV files in, one out, no table written in between.
    const ExecutionResult& pipeline = results.at(fmt::format("pipeline.{}", k));
    EXPECT_EQ(pipeline.value["steps"].size(), 5u);
    EXPECT_EQ(pipeline.value["rows"], pipeline_expected.num_rows());
    EXPECT_TRUE(testing::TablesEqualOrdered(
        csv::ReadCsv(pipeline_csv).ValueOrDie(),
        csv::ReadCsv(fmt::format("{}/out/pipeline_{}.csv", Dir(), k)).ValueOrDie()));
  }
  // Only the tables the functions were asked to write (no pipeline intermediates).
  size_t tables = 0;
  for (const auto& entry : fs::directory_iterator(Dir() + "/data")) {
    const std::string name = entry.path().filename().string();
    EXPECT_FALSE(name.starts_with("pipeline")) << entry.path();
    if (name != "t" && name != "t_head") ++tables;  // the other test's
  }
  EXPECT_EQ(tables, 4u + 3u * 15u);
}

TEST_F(DataFunctionsTest, BadArgumentsAndMissingFilesFailWithTheirReason) {
  const Table t = testing::RandomTable(
      {{"k", DataType::Int64(), 0.1, 10}, {"s", DataType::String(), 0.1, 5}}, 60, 7);
  WriteParts("t", Split(t, 2));
  struct Case {
    std::string function;
    json args;
    std::string expected;  // in the reason
  };
  const std::vector<Case> cases = {
      {"table.sort", {{"input", "nothing"}, {"output", "x"}, {"by", "k"}}, "table 'nothing'"},
      {"table.sort", {{"input", "t"}, {"output", "x"}}, "args.by"},
      {"table.sort", {{"input", "t"}, {"output", "x"}, {"by", "missing_column"}}, "missing_column"},
      {"table.sort", {{"input", "t"}, {"by", "k"}}, "args.output"},
      {"table.join",
       {{"input", "t"}, {"right", "t"}, {"output", "x"}, {"on", "k"}, {"how", "up"}},
       "args.how"},
      {"table.join",
       {{"input", "t"}, {"right", "gone"}, {"output", "x"}, {"on", "k"}},
       "table 'gone'"},
      {"table.head", {{"input", "t"}, {"output", "x"}, {"n", -3}}, "args.n"},
      {"table.group_by",
       {{"input", "t"}, {"output", "x"}, {"by", "k"}, {"aggregates", {"v:avg"}}},
       "args.aggregates[0]"},
      {"table.unique", {{"input", "t"}, {"output", "x"}, {"keep", "some"}}, "args.keep"},
      {"table.repartition", {{"input", "t"}, {"output", "x"}, {"counts", {1}}}, "args.counts"},
      {"table.read_csv", {{"path", "no/such.csv"}, {"output", "x"}}, "no/such.csv"},
      {"table.read_csv", {{"path", "no/such_*.csv"}, {"output", "x"}}, "no/such_*.csv"},
      {"table.read_csv", {{"path", "no/such.csv"}}, "args.output"},
      {"table.write_csv", {{"input", "t"}, {"path", "x.csv"}, {"output", "y"}}, "args.output"},
      {"table.write_csv", {{"input", "t"}, {"path", "/proc/no/such/dir/x.csv"}}, "x.csv"},
      {"table.equals", {{"input", "t"}}, "args.right"},
      {"table.pipeline",
       {{"input", "t"}, {"output", "x"}, {"steps", {{{"op", "shuffle"}}}}},
       "args.steps[0].op"},
      {"table.pipeline",
       {{"input", "t"},
        {"output", "x"},
        {"steps", {{{"op", "sort"}, {"by", "k"}}, {{"op", "read_csv"}, {"path", "a.csv"}}}}},
       "args.steps[1]"},
      {"table.pipeline",
       {{"input", "t"}, {"steps", {{{"op", "sort"}, {"by", "k"}}}}},
       "args.output"},
      {"table.sort", {{"input", "t"}, {"output", "x"}, {"by", "k"}, {"ascnding", false}},
       "args.ascnding: not an argument of table.sort"},
      {"table.pipeline",
       {{"input", "t"}, {"output", "x"}, {"steps", {{{"op", "head"}, {"rows", 5}}}}},
       "args.steps[0].rows: not an argument of head (it takes n)"},
      {"table.join",
       {{"input", "t"}, {"right", {{"path", "a.csv"}, {"type", "x"}}}, {"output", "x"}, {"on", "k"}},
       "args.right.type"},
      {"table.pipeline",
       {{"input", "t"},
        {"output", "x"},
        {"steps", {{{"op", "head"}, {"n", 5}}, {{"op", "sort"}, {"by", "zzz"}}}}},
       "zzz"},
  };
  std::vector<TaskDescription> batch;
  for (size_t i = 0; i < cases.size(); ++i) {
    batch.push_back(Function(fmt::format("bad.{}", i), cases[i].function, cases[i].args, 2));
  }
  std::map<std::string, ExecutionResult> results = Run(std::move(batch));
  for (size_t i = 0; i < cases.size(); ++i) {
    const ExecutionResult& result = results[fmt::format("bad.{}", i)];
    EXPECT_EQ(result.state, TaskState::kFailed) << cases[i].function << " " << cases[i].args;
    EXPECT_NE(result.reason.find(cases[i].expected), std::string::npos)
        << cases[i].function << " " << cases[i].args << ": " << result.reason;
  }
  EXPECT_FALSE(fs::exists(Dir() + "/data/x"));
  // No rank was left waiting in a collective: the whole pool still runs a 4-rank task.
  std::map<std::string, ExecutionResult> after =
      Run({Function("after", "table.head", {{"input", "t"}, {"output", "t_head"}, {"n", 9}}, 4)});
  ASSERT_EQ(after["after"].state, TaskState::kDone) << after["after"].reason;
  EXPECT_TRUE(testing::TablesEqualOrdered(t.Slice(0, 9), ReadTable("t_head")));
}

// The agent accepts function names at submission from BuiltinFunctionNames(), before the ranks
// have reported theirs: the two lists must be the same.
TEST_F(DataFunctionsTest, TheWorkerRegistersExactlyTheBuiltinNames) {
  std::map<std::string, ExecutionResult> ready =
      Run({Function("names.ready", "noop", json::object(), kPoolRanks)});
  ASSERT_EQ(ready["names.ready"].state, TaskState::kDone) << ready["names.ready"].reason;
  std::vector<std::string> reported = pilot_->pool_status().at(0).functions;
  std::vector<std::string> builtin = BuiltinFunctionNames();
  std::sort(reported.begin(), reported.end());
  std::sort(builtin.begin(), builtin.end());
  EXPECT_EQ(reported, builtin);
}

// bench.cylon (the in-pilot overhead benchmark's function) computes the Radical-Cylon join and
// sort of all k ranks' data: its checksums equal the local operators' on the concatenation.
TEST_F(DataFunctionsTest, BenchCylonChecksumsEqualTheLocalRun) {
  const int64_t rows = 2000;
  std::vector<TaskDescription> batch;
  for (int k : {1, 2, 4}) {
    for (const char* op : {"join", "sort"}) {
      batch.push_back(Function(fmt::format("cylon.{}.{}", op, k), "bench.cylon",
                               {{"op", op}, {"rows", rows}, {"repeat", 2}}, k));
    }
  }
  // (uids are unique in the session the tests share)
  batch.push_back(Function("cylon.bad", "bench.cylon", {{"op", "scan"}}, 2));
  batch.push_back(Function("cylon.bad_rows", "bench.cylon", {{"op", "sort"}, {"rows", 0}}, 1));
  std::map<std::string, ExecutionResult> results = Run(std::move(batch));
  for (int k : {1, 2, 4}) {
    std::vector<Table> left, right;
    for (int r = 0; r < k; ++r) {
      left.push_back(app::CylonTable(r, rows * k, rows, 1, false));
      right.push_back(app::CylonTable(r, rows * k, rows, 1, true));
    }
    const Table all_left = compute::Concatenate(left).ValueOrDie();
    const Table all_right = compute::Concatenate(right).ValueOrDie();
    const uint64_t join = app::JoinChecksum(nullptr, all_left, all_right, 1).ValueOrDie();
    const uint64_t sort = app::SortChecksum(nullptr, all_left, 1).ValueOrDie();
    for (const auto& [op, expected] : {std::pair{"join", join}, std::pair{"sort", sort}}) {
      const ExecutionResult& result = results[fmt::format("cylon.{}.{}", op, k)];
      ASSERT_EQ(result.state, TaskState::kDone) << op << " " << k << ": " << result.reason;
      EXPECT_EQ(result.value["checksum"].get<uint64_t>(), expected) << op << " " << k;
      EXPECT_EQ(result.value["ranks"], k);
      EXPECT_EQ(result.value["all_seconds"].size(), 2u);
      EXPECT_GE(result.value["body_seconds"].get<double>(), result.value["seconds"].get<double>());
    }
  }
  const ExecutionResult& bad = results["cylon.bad"];
  EXPECT_EQ(bad.state, TaskState::kFailed);
  EXPECT_NE(bad.reason.find("args.op"), std::string::npos) << bad.reason;
  const ExecutionResult& bad_rows = results["cylon.bad_rows"];
  EXPECT_EQ(bad_rows.state, TaskState::kFailed);
  EXPECT_NE(bad_rows.reason.find("args.rows"), std::string::npos) << bad_rows.reason;
}

}  // namespace
}  // namespace deeprc::runtime
