// Runs `deeprc sim` and checks its JSON line and its errors. The program is
// DEEPRC_BINARY_DIR/apps/deeprc, or $DEEPRC_PROGRAM when set (to test another build).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/program.h"

namespace {

namespace fs = std::filesystem;

using RunResult = deeprc::testing::ProgramRun;

class SimCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = deeprc::testing::DeeprcProgram();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is not built";
    directory_ = deeprc::testing::FreshTestDirectory("deeprc_sim_test");
  }
  void TearDown() override {
    if (!directory_.empty()) fs::remove_all(directory_);
  }

  RunResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), "sim");
    return deeprc::testing::RunProgram(binary_, args, directory_);
  }

  std::string binary_;
  fs::path directory_;
};

TEST_F(SimCommandTest, ManyTasksPrintOneJsonLine) {
  RunResult run =
      Run({"--nodes", "2", "--cores-per-node", "4", "--tasks", "80", "--duration", "10"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  ASSERT_EQ(run.out.back(), '\n');
  ASSERT_EQ(run.out.find('\n'), run.out.size() - 1) << "one line";
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["makespan_s"], 100);
  EXPECT_EQ(json["lower_bound_s"], 100);
  EXPECT_EQ(json["utilization"], 1.0);
  EXPECT_EQ(json["tasks"], 80);
  EXPECT_GT(json["decisions_per_s"].get<double>(), 0);
}

TEST_F(SimCommandTest, WorkflowTraceWithItsMachines) {
  // A → C (4 s), B and D (2 s) on two cores: critical-path first finishes at 5 s, fifo at 6 s.
  const fs::path trace = directory_ / "trace.json";
  std::ofstream(trace) << R"({"workflow": {
    "specification": {"tasks": [{"id": "A", "children": ["C"]}, {"id": "B"}, {"id": "D"},
                                {"id": "C", "parents": ["A"]}]},
    "execution": {"tasks": [{"id": "A", "runtimeInSeconds": 1}, {"id": "B", "runtimeInSeconds": 2},
                            {"id": "D", "runtimeInSeconds": 2}, {"id": "C", "runtimeInSeconds": 4}],
                  "machines": [{"cpu": {"coreCount": 2}}]}}})";
  RunResult run = Run({"--workflow", trace.string()});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["makespan_s"], 5);
  run = Run({"--workflow", trace.string(), "--policy", "fifo"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["makespan_s"], 6);
  // --nodes replaces the recorded machines: one core runs the 9 s of work in a row.
  run = Run({"--workflow", trace.string(), "--nodes", "1", "--cores-per-node", "1"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out)["makespan_s"], 9);
}

TEST_F(SimCommandTest, BadOptionsExitTwoWithOneMessage) {
  RunResult run = Run({});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_EQ(run.err, "deeprc sim: give --nodes (and --tasks), or --workflow TRACE.json\n");
  run = Run({"--nodes", "2", "--tasks", "10", "--mix", "1:x"});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_EQ(run.err,
            "deeprc sim: --mix: expected CORES:WEIGHT items such as 1:6,8:3,64:1, found '1:x'\n");
  run = Run({"--nodes", "2", "--cores-per-node", "4", "--tasks", "10", "--mix", "8:1"});
  EXPECT_EQ(run.exit_status, 0) << run.err;  // impossible tasks fail; the run reports them
  EXPECT_EQ(nlohmann::json::parse(run.out)["failed"], 10);
  run = Run({"--workflow", (directory_ / "missing.json").string()});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_NE(run.err.find("cannot open the workflow trace"), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty());
}

}  // namespace
