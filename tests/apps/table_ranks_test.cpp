// `deeprc table OP ... --ranks N [--comm mpi|gloo]` against the same command without --ranks:
// the built program runs on a random CSV (nulls, strings, duplicate rows and keys, one hot key)
// and both outputs are read back and compared: sort, head, tail and convert row by row (the
// distributed sort keeps compute::Sort's order, ties included; head/tail/convert keep the input
// order), the others as multisets of rows. Gloo runs are skipped when the program reports that
// this build has no Gloo backend.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "deeprc/compute/selection.h"
#include "deeprc/table/csv.h"
#include "deeprc/table/table_file.h"
#include "testing/assertions.h"
#include "testing/program.h"
#include "testing/random_table.h"
#include "testing/table_compare.h"

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

// The columns of both set-operation sides: few distinct values, so that whole rows repeat.
std::vector<testing::RandomColumnSpec> Spec() {
  return {{"k", DataType::Int64(), 0.1, 40, 0.3},
          {"g", DataType::String(), 0.1, 12},
          {"v", DataType::Float64(), 0.15, 30},
          {"s", DataType::String(), 0.05, 8}};
}

class TableRanksTest : public ::testing::TestWithParam<Launch> {
 protected:
  void SetUp() override {
    binary_ = testing::DeeprcProgram();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is not built";
    directory_ = testing::FreshTestDirectory("deeprc_table_ranks");
    // A: 700 rows. B: 300 rows of A (so that intersect and difference have work) and 400 new.
    const Table a = testing::RandomTable(Spec(), 700, 11);
    const Table fresh = testing::RandomTable(Spec(), 400, 12);
    ASSERT_OK_AND_ASSIGN(Table b, compute::Concatenate({fresh, a.Slice(200, 300)}));
    ASSERT_OK(csv::WriteCsv(a, PathOf("a.csv")));
    ASSERT_OK(csv::WriteCsv(b, PathOf("b.csv")));
    ASSERT_OK(WriteTableFile(a, PathOf("a.drt")));
    if (GetParam().comm == "gloo") {
      const auto probe = Run({"table", "schema", PathOf("a.csv"), "--ranks", "2", "--comm", "gloo"});
      if (probe.exit_status != 0 && probe.err.find("no Gloo backend") != std::string::npos) {
        GTEST_SKIP() << probe.err;
      }
      ASSERT_EQ(probe.exit_status, 0) << probe.err;
    }
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(directory_);
  }

  std::string PathOf(const std::string& name) const { return (directory_ / name).string(); }

  testing::ProgramRun Run(const std::vector<std::string>& args) {
    return testing::RunProgram(binary_, args, directory_);
  }

  // `args` (an OP and its arguments, without -o) run locally and with --ranks, each writing a
  // .drt file (exact types); the outputs must hold the same rows.
  void Check(const std::vector<std::string>& args, bool ordered) {
    SCOPED_TRACE(::testing::PrintToString(args));
    std::vector<std::string> local = {"table"};
    local.insert(local.end(), args.begin(), args.end());
    std::vector<std::string> ranked = local;
    local.insert(local.end(), {"-o", PathOf("local.drt")});
    ranked.insert(ranked.end(), {"-o", PathOf("ranks.drt"), "--ranks",
                                 std::to_string(GetParam().ranks), "--comm", GetParam().comm});
    const auto local_run = Run(local);
    ASSERT_EQ(local_run.exit_status, 0) << local_run.err;
    const auto ranked_run = Run(ranked);
    ASSERT_EQ(ranked_run.exit_status, 0) << ranked_run.err;
    ASSERT_OK_AND_ASSIGN(Table expected, ReadTableFile(PathOf("local.drt")));
    ASSERT_OK_AND_ASSIGN(Table actual, ReadTableFile(PathOf("ranks.drt")));
    if (ordered) {
      EXPECT_TRUE(testing::TablesEqualOrdered(expected, actual));
    } else {
      EXPECT_TRUE(testing::TablesEqualUnordered(expected, actual));
    }
    fs::remove(PathOf("local.drt"));
    fs::remove(PathOf("ranks.drt"));
  }

  std::vector<std::string> Listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(directory_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string binary_;
  fs::path directory_;
};

TEST_P(TableRanksTest, JoinGivesTheLocalRows) {
  const std::string a = PathOf("a.csv"), b = PathOf("b.csv");
  for (const char* how : {"inner", "left", "right", "outer", "semi", "anti"}) {
    Check({"join", a, b, "--on", "k", "--how", how}, false);
  }
  Check({"join", a, b, "--on", "k,g", "--nulls-equal", "--algorithm", "sort"}, false);
  Check({"join", a, b, "--left-on", "s", "--right-on", "g", "--suffixes", "_l,_r"}, false);
}

TEST_P(TableRanksTest, GroupByGivesTheLocalRows) {
  const std::string a = PathOf("a.csv");
  Check({"groupby", a, "--by", "g", "--agg", "v:sum,v:mean,v:std,k:count,v:max,s:first"}, false);
  Check({"groupby", a, "--by", "k,s", "--agg", "v:min,g:nunique,v:median", "--drop-null-keys"},
        false);
}

TEST_P(TableRanksTest, SortGivesTheLocalOrder) {
  Check({"sort", PathOf("a.csv"), "--by", "k,s", "--descending", "s", "--nulls-first", "k"}, true);
  Check({"sort", PathOf("a.drt"), "--by", "g"}, true);
  // CSV output: the ranks write one file, byte for byte the local one.
  const std::vector<std::string> args = {"table", "sort", PathOf("a.csv"), "--by", "v,k"};
  auto local = args, ranked = args;
  local.insert(local.end(), {"-o", PathOf("local.csv")});
  ranked.insert(ranked.end(), {"-o", PathOf("ranks.csv"), "--ranks",
                               std::to_string(GetParam().ranks), "--comm", GetParam().comm});
  const auto local_run = Run(local);
  ASSERT_EQ(local_run.exit_status, 0) << local_run.err;
  const auto ranked_run = Run(ranked);
  ASSERT_EQ(ranked_run.exit_status, 0) << ranked_run.err;
  EXPECT_EQ(testing::ReadText(PathOf("local.csv")), testing::ReadText(PathOf("ranks.csv")));
  // Standard output: rank 0 writes the gathered rows.
  ranked.resize(args.size());
  ranked.insert(ranked.end(), {"--ranks", std::to_string(GetParam().ranks), "--comm",
                               GetParam().comm});
  const auto to_stdout = Run(ranked);
  ASSERT_EQ(to_stdout.exit_status, 0) << to_stdout.err;
  EXPECT_EQ(testing::ReadText(PathOf("local.csv")), to_stdout.out);
}

TEST_P(TableRanksTest, UniqueAndSetOperationsGiveTheLocalRows) {
  const std::string a = PathOf("a.csv"), b = PathOf("b.csv");
  Check({"unique", a}, false);
  Check({"unique", a, "--subset", "k,g", "--keep", "last"}, false);
  Check({"unique", PathOf("a.drt"), "--subset", "s", "--keep", "none"}, false);
  Check({"union", a, b}, false);
  Check({"union", a, b, "--all"}, false);
  Check({"intersect", a, b}, false);
  Check({"difference", a, b}, false);
  Check({"difference", b, a}, false);
}

TEST_P(TableRanksTest, FilterHeadTailConvertSchema) {
  const std::string a = PathOf("a.csv");
  Check({"filter", a, "--where", "k > 10 and s is not null or v is null"}, false);
  Check({"head", a, "-n", "250"}, true);
  Check({"tail", PathOf("a.drt"), "-n", "9"}, true);
  Check({"head", a, "-n", "5000"}, true);
  Check({"convert", a}, true);
  const auto local = Run({"table", "schema", a});
  ASSERT_EQ(local.exit_status, 0) << local.err;
  const auto ranked = Run({"table", "schema", a, "--ranks", std::to_string(GetParam().ranks),
                           "--comm", GetParam().comm});
  ASSERT_EQ(ranked.exit_status, 0) << ranked.err;
  EXPECT_EQ(local.out, ranked.out);
}

// Counts the lines of `text` that start with `prefix`.
int LinesStartingWith(const std::string& text, const std::string& prefix) {
  int count = 0;
  size_t start = 0;
  while (start < text.size()) {
    if (text.compare(start, prefix.size(), prefix) == 0) ++count;
    const auto end = text.find('\n', start);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return count;
}

TEST_P(TableRanksTest, MalformedCsvFailsOnceWithTheLineAndLeavesNoOutput) {
  // The bad field is near the end, in the last rank's byte range.
  std::string text = "k,v\n";
  for (int i = 0; i < 3000; ++i) text += std::to_string(i % 7) + "," + std::to_string(i) + "\n";
  text += "3,ab\"c\n1,2\n";
  testing::WriteText(directory_ / "bad.csv", text);
  const auto before = Listing();
  const auto run = Run({"table", "sort", PathOf("bad.csv"), "--by", "k", "--types", "v:int64",
                        "-o", PathOf("out.csv"), "--ranks", std::to_string(GetParam().ranks),
                        "--comm", GetParam().comm});
  EXPECT_EQ(run.exit_status, 2) << run.err;
  EXPECT_NE(run.err.find("bad.csv:3002"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("column 'v'"), std::string::npos) << run.err;
  EXPECT_EQ(LinesStartingWith(run.err, "deeprc table sort:"), 1) << run.err;
  EXPECT_EQ(Listing(), before);
  // A key that does not exist: the same on every rank, one message.
  const auto missing = Run({"table", "join", PathOf("a.csv"), PathOf("b.csv"), "--on", "nope",
                            "-o", PathOf("out.drt"), "--ranks", std::to_string(GetParam().ranks),
                            "--comm", GetParam().comm});
  EXPECT_EQ(missing.exit_status, 2) << missing.err;
  EXPECT_EQ(LinesStartingWith(missing.err, "deeprc table join:"), 1) << missing.err;
  EXPECT_NE(missing.err.find("nope"), std::string::npos) << missing.err;
  EXPECT_EQ(Listing(), before);
}

INSTANTIATE_TEST_SUITE_P(Ranks, TableRanksTest,
                         ::testing::Values(Launch{"mpi", 2}, Launch{"mpi", 4}, Launch{"gloo", 2},
                                           Launch{"gloo", 4}),
                         LaunchName);

}  // namespace
}  // namespace deeprc
