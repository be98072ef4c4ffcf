// Runs `deeprc launch` as a program, with small shell commands as the ranks: what every rank
// sees, the exit status when a rank fails or is killed (quickly, while the others would run
// forever), the store directory's removal, signal forwarding and the option errors. The ranks
// that really communicate are the tests/comm programs, which ctest runs through `deeprc launch`.
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testing/program.h"

namespace {

namespace fs = std::filesystem;

using deeprc::testing::ReadText;
using RunResult = deeprc::testing::ProgramRun;

class LaunchCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = deeprc::testing::DeeprcProgram();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is not built";
    directory_ = deeprc::testing::FreshTestDirectory("deeprc_launch_test");
  }
  void TearDown() override {
    if (!directory_.empty() && !HasFailure()) fs::remove_all(directory_);
  }

  // `deeprc launch args... -- sh -c script`, timed.
  RunResult Launch(std::vector<std::string> args, const std::string& script) {
    args.insert(args.begin(), "launch");
    for (const char* word : {"--", "sh", "-c"}) args.push_back(word);
    args.push_back(script);
    const auto start = std::chrono::steady_clock::now();
    RunResult run = deeprc::testing::RunProgram(binary_, args, directory_);
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return run;
  }

  std::string binary_;
  fs::path directory_;
  double seconds_ = 0;
};

TEST_F(LaunchCommandTest, GlooRanksSeeTheirRankTheWorldAndOneStore) {
  const RunResult run =
      Launch({"-n", "3", "--comm", "gloo", "--env", "EXTRA=yes"},
             "test -d \"$DEEPRC_GLOO_STORE\" || exit 9; "
             "echo \"$DEEPRC_COMM $DEEPRC_WORLD_SIZE $DEEPRC_GLOO_STORE $EXTRA\" > rank_$DEEPRC_RANK");
  ASSERT_EQ(run.exit_status, 0) << run.err;
  std::set<std::string> lines;
  for (int rank = 0; rank < 3; ++rank) {
    ASSERT_TRUE(fs::exists(directory_ / ("rank_" + std::to_string(rank)))) << rank;
    lines.insert(ReadText(directory_ / ("rank_" + std::to_string(rank))));
  }
  ASSERT_EQ(lines.size(), 1u) << "every rank sees the same world and store";
  const std::string line = *lines.begin();
  ASSERT_EQ(line.rfind("gloo 3 ", 0), 0u) << line;
  EXPECT_NE(line.find(" yes\n"), std::string::npos) << line;
  const std::string store = line.substr(7, line.find(' ', 7) - 7);
  EXPECT_FALSE(fs::exists(store)) << "the store directory " << store << " is removed";
}

TEST_F(LaunchCommandTest, AFailingRankEndsTheJobWithItsCode) {
  // Rank 1 fails at once; the others would sleep for 1000 s.
  const RunResult run = Launch({"-n", "3", "--comm", "gloo"},
                               "echo $DEEPRC_GLOO_STORE > store_$DEEPRC_RANK; "
                               "if [ \"$DEEPRC_RANK\" = 1 ]; then exit 3; fi; sleep 1000");
  EXPECT_EQ(run.exit_status, 3) << run.err;
  EXPECT_LT(seconds_, 30) << "the sleeping ranks are killed";
  const std::string store = ReadText(directory_ / "store_1");
  ASSERT_FALSE(store.empty());
  EXPECT_FALSE(fs::exists(store.substr(0, store.size() - 1)));
}

TEST_F(LaunchCommandTest, ARankKilledByASignalGives128PlusTheSignal) {
  const RunResult run = Launch({"-n", "2", "--comm", "gloo"},
                               "if [ \"$DEEPRC_RANK\" = 0 ]; then kill -KILL $$; fi; sleep 1000");
  EXPECT_EQ(run.exit_status, 128 + 9) << run.err;
  EXPECT_LT(seconds_, 30);
}

TEST_F(LaunchCommandTest, RanksThatIgnoreSigtermAreKilledAfterTheGracePeriod) {
  const RunResult run = Launch({"-n", "2", "--comm", "gloo"},
                               "trap '' TERM; if [ \"$DEEPRC_RANK\" = 1 ]; then exit 4; fi; "
                               "while true; do sleep 0.1; done");
  EXPECT_EQ(run.exit_status, 4) << run.err;
  EXPECT_LT(seconds_, 30);
}

TEST_F(LaunchCommandTest, SigtermToTheLauncherReachesTheRanks) {
  // The launcher runs in the background; once both ranks are ready it gets SIGTERM, which the
  // ranks see (their trap writes a file and exits 5).
  const std::string rank_script =
      "trap 'echo term > got_$DEEPRC_RANK; exit 5' TERM; touch ready_$DEEPRC_RANK; "
      "while true; do sleep 0.1; done";
  const std::string script =
      "\"$0\" launch -n 2 --comm gloo -- sh -c \"$1\" & launcher=$!; "
      "for i in $(seq 1 300); do [ -e ready_0 ] && [ -e ready_1 ] && break; sleep 0.1; done; "
      "kill -TERM $launcher; wait $launcher; echo $? > launcher_status";
  const auto start = std::chrono::steady_clock::now();
  const RunResult run =
      deeprc::testing::RunProgram("/bin/sh", {"-c", script, binary_, rank_script}, directory_);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(ReadText(directory_ / "launcher_status"), "5\n");
  EXPECT_EQ(ReadText(directory_ / "got_0"), "term\n");
  EXPECT_EQ(ReadText(directory_ / "got_1"), "term\n");
  EXPECT_LT(seconds, 30);
}

TEST_F(LaunchCommandTest, MpiRunsTheRanksThroughMpirun) {
  const RunResult run =
      Launch({"-n", "2", "--comm", "mpi"},
             "echo \"$DEEPRC_COMM $OMPI_COMM_WORLD_SIZE\" > rank_$OMPI_COMM_WORLD_RANK");
  ASSERT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(ReadText(directory_ / "rank_0"), "mpi 2\n");
  EXPECT_EQ(ReadText(directory_ / "rank_1"), "mpi 2\n");
}

TEST_F(LaunchCommandTest, MpiReportsAFailingRank) {
  const RunResult run = Launch({"-n", "2", "--comm", "mpi"},
                               "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then exit 3; fi; sleep 1000");
  EXPECT_EQ(run.exit_status, 3) << run.err;  // mpirun reports the first failing rank's code
  EXPECT_LT(seconds_, 60);
}

TEST_F(LaunchCommandTest, SingleRunsOnce) {
  const RunResult run = Launch({"-n", "1", "--comm", "single"}, "echo \"$DEEPRC_COMM\"; exit 7");
  EXPECT_EQ(run.exit_status, 7) << run.err;
  EXPECT_EQ(run.out, "single\n");
}

TEST_F(LaunchCommandTest, UsageErrors) {
  RunResult run = Launch({"-n", "2", "--comm", "single"}, "true");
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("single backend runs one rank"), std::string::npos) << run.err;

  run = Launch({"-n", "2", "--comm", "carrier-pigeon"}, "true");
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("carrier-pigeon"), std::string::npos) << run.err;

  run = Launch({"-n", "0", "--comm", "gloo"}, "true");
  EXPECT_EQ(run.exit_status, 2) << run.err;

  run = deeprc::testing::RunProgram(binary_, {"launch", "-n", "2", "true"}, directory_);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("--"), std::string::npos) << run.err;

  run = deeprc::testing::RunProgram(
      binary_, {"launch", "-n", "2", "--comm", "gloo", "--", "/no/such/program"}, directory_);
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("/no/such/program"), std::string::npos) << run.err;
}

}  // namespace
