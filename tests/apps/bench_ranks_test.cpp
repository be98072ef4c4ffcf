// `deeprc bench table OP --ranks P [--comm] [--weak] [--workload cylon]` as a user runs it: the
// distributed operators over the ranks' shares of the formulas must give the checksum of the
// local run on the same rows (the checksums cover every row of the result: sums of the join's
// columns, of the groups and their sums, of position * value for the sort), and the JSON line
// must say how it ran. Gloo runs are skipped when the build has no Gloo backend.
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testing/program.h"

namespace deeprc {
namespace {

namespace fs = std::filesystem;

struct Launch {
  std::string comm;
  int ranks;
};

std::string LaunchName(const ::testing::TestParamInfo<Launch>& info) {
  return info.param.comm + std::to_string(info.param.ranks);
}

// The JSON lines of a bench run, by operator: field name -> raw value text.
using Fields = std::map<std::string, std::string>;

std::map<std::string, Fields> ParseLines(const std::string& out) {
  std::map<std::string, Fields> lines;
  const std::regex field(R"re("([a-z_]+)":("[^"]*"|\[[^\]]*\]|[^,}]+))re");
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    const std::string line = out.substr(start, end - start);
    Fields fields;
    for (auto it = std::sregex_iterator(line.begin(), line.end(), field);
         it != std::sregex_iterator(); ++it) {
      fields[(*it)[1]] = (*it)[2];
    }
    if (fields.count("op") && fields["op"].size() >= 2) {
      lines[fields["op"].substr(1, fields["op"].size() - 2)] = fields;  // the name, unquoted
    }
    start = end + 1;
  }
  return lines;
}

class BenchRanksTest : public ::testing::TestWithParam<Launch> {
 protected:
  void SetUp() override {
    binary_ = testing::DeeprcProgram();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is not built";
    directory_ = testing::FreshTestDirectory("deeprc_bench_ranks");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(directory_);
  }

  // Runs `deeprc bench table args...`, with --ranks when `ranked`; the lines by operator.
  std::map<std::string, Fields> Bench(std::vector<std::string> args, bool ranked) {
    args.insert(args.begin(), {"bench", "table"});
    args.insert(args.end(), {"--repeat", "2", "--threads", "1"});
    if (ranked) {
      args.insert(args.end(),
                  {"--ranks", std::to_string(GetParam().ranks), "--comm", GetParam().comm});
    }
    const auto run = testing::RunProgram(binary_, args, directory_);
    if (ranked && GetParam().comm == "gloo" && run.exit_status != 0 &&
        run.err.find("no Gloo backend") != std::string::npos) {
      skipped_ = true;
      return {};
    }
    EXPECT_EQ(run.exit_status, 0) << ::testing::PrintToString(args) << "\n" << run.err;
    return ParseLines(run.out);
  }

  std::string binary_;
  fs::path directory_;
  bool skipped_ = false;
};

TEST_P(BenchRanksTest, DistributedOperatorsGiveTheLocalChecksums) {
  // An odd row count, so that the ranks' shares differ in size.
  const std::string csv = (directory_ / "mixed.csv").string();
  const std::vector<std::string> args = {"join", "groupby", "sort",  "unique",
                                         "csv-read", "--rows", "30011", "--path", csv};
  const auto local = Bench(args, false);
  const auto ranked = Bench(args, true);
  if (skipped_) GTEST_SKIP() << "no Gloo backend in this build";
  for (const char* op : {"join", "groupby", "sort", "unique", "csv-read"}) {
    SCOPED_TRACE(op);
    ASSERT_TRUE(local.count(op) && ranked.count(op));
    EXPECT_EQ(local.at(op).at("checksum"), ranked.at(op).at("checksum"));
    const Fields& line = ranked.at(op);
    EXPECT_EQ(line.at("rows"), "30011");
    EXPECT_EQ(line.at("ranks"), std::to_string(GetParam().ranks));
    EXPECT_EQ(line.at("comm"), "\"" + GetParam().comm + "\"");
    // One peak per rank.
    const std::string& peaks = line.at("peak_rss_mb_per_rank");
    EXPECT_EQ(std::count(peaks.begin(), peaks.end(), ','), GetParam().ranks - 1) << peaks;
  }
  // csv-write from all ranks writes the file the local run writes, byte for byte.
  const std::string local_out = (directory_ / "local.csv").string();
  const std::string ranked_out = (directory_ / "ranked.csv").string();
  Bench({"csv-write", "--rows", "30011", "--path", local_out}, false);
  Bench({"csv-write", "--rows", "30011", "--path", ranked_out}, true);
  EXPECT_EQ(testing::ReadText(local_out), testing::ReadText(ranked_out));
}

TEST_P(BenchRanksTest, WeakScalingHoldsRowsPerRank) {
  const int ranks = GetParam().ranks;
  const auto local = Bench({"join", "sort", "--rows", std::to_string(7001 * ranks)}, false);
  const auto weak = Bench({"join", "sort", "--rows", "7001", "--weak"}, true);
  if (skipped_) GTEST_SKIP() << "no Gloo backend in this build";
  for (const char* op : {"join", "sort"}) {
    SCOPED_TRACE(op);
    EXPECT_EQ(local.at(op).at("checksum"), weak.at(op).at("checksum"));
    EXPECT_EQ(weak.at(op).at("rows"), std::to_string(7001 * ranks));
    EXPECT_EQ(weak.at(op).at("rows_per_rank"), "7001");
    EXPECT_EQ(weak.at(op).at("weak"), "true");
  }
}

TEST_P(BenchRanksTest, CylonWorkloadIsTheSameDataOnEveryBackend) {
  // Rank r's data depends only on r: one rank is the local run (seed 0), and P ranks give the
  // same checksums over MPI and Gloo.
  const auto local = Bench({"join", "sort", "--workload", "cylon", "--rows", "9000"}, false);
  const auto ranked = Bench({"join", "sort", "--workload", "cylon", "--rows", "9000"}, true);
  if (skipped_) GTEST_SKIP() << "no Gloo backend in this build";
  for (const char* op : {"join", "sort"}) {
    SCOPED_TRACE(op);
    EXPECT_EQ(ranked.at(op).at("workload"), "\"cylon\"");
    EXPECT_EQ(ranked.at(op).at("rows_per_rank"), "9000");
    EXPECT_EQ(ranked.at(op).at("rows"), std::to_string(9000 * GetParam().ranks));
  }
  if (GetParam().ranks == 1) {
    EXPECT_EQ(local.at("join").at("checksum"), ranked.at("join").at("checksum"));
    EXPECT_EQ(local.at("sort").at("checksum"), ranked.at("sort").at("checksum"));
  }
  if (GetParam().comm == "gloo") {
    std::vector<std::string> args = {"bench", "table", "join", "sort", "--workload", "cylon",
                                     "--rows", "9000", "--repeat", "1", "--ranks",
                                     std::to_string(GetParam().ranks), "--comm", "mpi"};
    const auto mpi = testing::RunProgram(binary_, args, directory_);
    ASSERT_EQ(mpi.exit_status, 0) << mpi.err;
    const auto lines = ParseLines(mpi.out);
    EXPECT_EQ(lines.at("join").at("checksum"), ranked.at("join").at("checksum"));
    EXPECT_EQ(lines.at("sort").at("checksum"), ranked.at("sort").at("checksum"));
  }
  // The workload has no other operators: a clear error, not a silent fallback.
  const auto bad = testing::RunProgram(
      binary_, {"bench", "table", "groupby", "--workload", "cylon", "--rows", "100"}, directory_);
  EXPECT_NE(bad.exit_status, 0);
  EXPECT_NE(bad.err.find("--workload cylon: unknown operator 'groupby'"), std::string::npos)
      << bad.err;
}

// The in-pilot side of the overhead benchmark (bench/run_overhead.py): `deeprc bench tasks --kind
// cylon` runs the same join and sort as k-rank function tasks on a pool; each must give the
// checksum of `deeprc bench table --workload cylon --ranks k` under mpirun.
TEST(BenchCylonTasksTest, FunctionTasksGiveTheMpirunChecksums) {
  const std::string binary = testing::DeeprcProgram();
  ASSERT_TRUE(fs::exists(binary)) << binary << " is not built";
  const fs::path directory = testing::FreshTestDirectory("deeprc_bench_cylon_tasks");
  const auto tasks = testing::RunProgram(
      binary,
      {"bench", "tasks", "--kind", "cylon", "--workers", "4", "--widths", "1,2,4", "--rows",
       "5000", "--repeat", "2", "--session-root", (directory / "sessions").string()},
      directory);
  ASSERT_EQ(tasks.exit_status, 0) << tasks.err;
  // Lines by (op, ranks).
  std::map<std::pair<std::string, std::string>, Fields> by_task;
  size_t start = 0;
  while (start < tasks.out.size()) {
    size_t end = tasks.out.find('\n', start);
    if (end == std::string::npos) end = tasks.out.size();
    for (const auto& [op, fields] : ParseLines(tasks.out.substr(start, end - start))) {
      by_task[{op, fields.at("ranks")}] = fields;
      EXPECT_EQ(fields.at("rows_per_rank"), "5000");
      EXPECT_EQ(fields.at("kind"), "\"cylon\"");
      // Round trip and body are both there (their order is not asserted: timings).
      EXPECT_TRUE(fields.count("round_trip_seconds") && fields.count("body_seconds"));
      // CPU accounting: the operation's thread CPU is part of the task threads' body CPU, which
      // is part of the whole pilot's CPU over the round trip (this process tree's).
      const double operation = std::stod(fields.at("operation_cpu_seconds"));
      const double body = std::stod(fields.at("body_cpu_seconds"));
      const double pilot = std::stod(fields.at("pilot_cpu_seconds"));
      EXPECT_GT(operation, 0);
      EXPECT_LE(operation, body + 1e-6);
      EXPECT_LE(body, pilot + 1e-6);
      EXPECT_GE(std::stod(fields.at("other_cpu_seconds")), 0);
    }
    start = end + 1;
  }
  EXPECT_EQ(by_task.size(), 6u) << tasks.out;
  for (const char* ranks : {"1", "2", "4"}) {
    const auto direct = testing::RunProgram(
        binary,
        {"bench", "table", "join", "sort", "--workload", "cylon", "--rows", "5000", "--repeat",
         "1", "--threads", "1", "--ranks", ranks},
        directory);
    ASSERT_EQ(direct.exit_status, 0) << direct.err;
    const auto lines = ParseLines(direct.out);
    for (const char* op : {"join", "sort"}) {
      ASSERT_TRUE(by_task.count({op, ranks})) << op << " " << ranks;
      EXPECT_EQ(lines.at(op).at("checksum"), by_task.at({op, ranks}).at("checksum"))
          << op << " at " << ranks << " ranks";
    }
  }
  // The session went away with the run.
  EXPECT_TRUE(!fs::exists(directory / "sessions") || fs::is_empty(directory / "sessions"));
  fs::remove_all(directory);
}

INSTANTIATE_TEST_SUITE_P(Ranks, BenchRanksTest,
                         ::testing::Values(Launch{"mpi", 1}, Launch{"mpi", 2}, Launch{"mpi", 4},
                                           Launch{"gloo", 2}, Launch{"gloo", 4}),
                         LaunchName);

}  // namespace
}  // namespace deeprc
