// Runs `deeprc tasks run`, `deeprc analyze` and `deeprc bench tasks` as programs. The program
// is DEEPRC_BINARY_DIR/apps/deeprc, or $DEEPRC_PROGRAM when set.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/program.h"

namespace {

namespace fs = std::filesystem;

using deeprc::testing::ReadText;
using RunResult = deeprc::testing::ProgramRun;

class TasksCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = deeprc::testing::DeeprcProgram();
    ASSERT_TRUE(fs::exists(binary_)) << binary_ << " is not built";
    directory_ = deeprc::testing::FreshTestDirectory("deeprc_tasks_test");
  }
  void TearDown() override {
    if (!directory_.empty() && !HasFailure()) fs::remove_all(directory_);
  }

  RunResult Run(const std::vector<std::string>& args) {
    return deeprc::testing::RunProgram(binary_, args, directory_);
  }

  std::string Write(const std::string& name, const std::string& text) {
    const fs::path path = directory_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::string binary_;
  fs::path directory_;
};

constexpr const char* kGraph = R"(pilot:
  cores: 2
tasks:
  - name: first
    executable: /bin/sh
    arguments: ["-c", "sleep 0.2; echo one > ../../first.txt"]
  - name: second
    executable: /bin/cat
    arguments: [../../first.txt]
    after: [first]
  - name: broken
    executable: /bin/sh
    arguments: ["-c", "echo 'disk quota exceeded' >&2; exit 3"]
  - name: after_broken
    executable: /bin/true
    after: [broken]
)";

TEST_F(TasksCommandTest, GraphWritesSummaryAndFailsWhenATaskFails) {
  const std::string file = Write("graph.yaml", kGraph);
  RunResult run = Run({"tasks", "run", file, "--session-root", "sessions"});
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  const std::string session = run.out.substr(0, run.out.find('\n'));
  ASSERT_TRUE(fs::is_directory(session)) << run.out;
  EXPECT_EQ(fs::path(session).parent_path(), fs::canonical(directory_ / "sessions"));
  // Not a terminal: progress lines, no carriage returns.
  EXPECT_NE(run.err.find("done 2 / 4"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find('\r'), std::string::npos);

  std::ifstream in(session + "/summary.json");
  const auto summary = nlohmann::json::parse(in);
  std::map<std::string, nlohmann::json> by_uid;
  for (const auto& entry : summary["results"]) by_uid[entry["uid"]] = entry;
  ASSERT_EQ(by_uid.size(), 4u);
  EXPECT_EQ(by_uid["first"]["state"], "DONE");
  EXPECT_EQ(by_uid["first"]["exit_status"], 0);
  EXPECT_EQ(by_uid["second"]["state"], "DONE");
  EXPECT_EQ(by_uid["second"]["name"], "second");
  EXPECT_EQ(by_uid["broken"]["state"], "FAILED");
  EXPECT_EQ(by_uid["broken"]["exit_status"], 3);
  EXPECT_NE(by_uid["broken"]["reason"].get<std::string>().find("status 3"), std::string::npos);
  EXPECT_EQ(by_uid["broken"]["stderr_tail"], "disk quota exceeded\n");
  EXPECT_NE(run.out.find("stderr: disk quota exceeded"), std::string::npos) << run.out;
  EXPECT_EQ(by_uid["after_broken"]["state"], "FAILED");
  EXPECT_TRUE(by_uid["after_broken"]["exit_status"].is_null());
  EXPECT_NE(by_uid["after_broken"]["reason"].get<std::string>().find("broken"), std::string::npos);
  EXPECT_EQ(summary["done"], 2);
  EXPECT_EQ(summary["failed"], 2);
  // `second` read what `first` wrote: the order of the graph held.
  EXPECT_EQ(ReadText(session + "/tasks/second/second.out"), "one\n");
}

TEST_F(TasksCommandTest, AllDoneExitsZero) {
  const std::string file = Write("ok.yaml", R"(tasks:
  - name: a
    executable: /bin/echo
    arguments: [hi]
  - name: b
    executable: /bin/true
    after: [a]
)");
  RunResult run = Run({"tasks", "run", file, "--session-root", "sessions"});
  EXPECT_EQ(run.exit_status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("2 tasks in"), std::string::npos) << run.out;
}

TEST_F(TasksCommandTest, BadFilesExitTwoWithoutASession) {
  const std::string cycle = Write("cycle.yaml", R"(tasks:
  - name: a
    executable: /bin/true
    after: [b]
  - name: b
    executable: /bin/true
    after: [a]
)");
  RunResult run = Run({"tasks", "run", cycle, "--session-root", "sessions"});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("cycle"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(directory_ / "sessions"));

  const std::string field = Write("field.yaml", R"(tasks:
  - name: a
    executable: /bin/true
    cores_per_rank: x
)");
  run = Run({"tasks", "run", field, "--session-root", "sessions"});
  EXPECT_EQ(run.exit_status, 2);
  EXPECT_NE(run.err.find("field.yaml:4"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("cores_per_rank"), std::string::npos) << run.err;

  run = Run({"tasks", "run", (directory_ / "missing.yaml").string()});
  EXPECT_EQ(run.exit_status, 2) << run.err;
}

TEST_F(TasksCommandTest, ImpossibleTaskFailsWithTheReason) {
  const std::string file = Write("big.yaml", R"(pilot:
  cores: 2
tasks:
  - name: big
    executable: /bin/true
    cores_per_rank: 16
)");
  RunResult run = Run({"tasks", "run", file, "--session-root", "sessions"});
  EXPECT_EQ(run.exit_status, 1);
  EXPECT_NE(run.out.find("big FAILED"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("16"), std::string::npos) << run.out;
}

TEST_F(TasksCommandTest, AnalyzeReportsAndDrawsTheTimeline) {
  std::string text = "pilot:\n  cores: 2\ntasks:\n";
  for (int i = 0; i < 6; ++i) {
    text += "  - name: t" + std::to_string(i) +
            "\n    executable: /bin/sleep\n    arguments: ['0.1']\n";
  }
  const std::string file = Write("six.yaml", text);
  RunResult run = Run({"tasks", "run", file, "--session-root", "sessions"});
  ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
  const std::string session = run.out.substr(0, run.out.find('\n'));

  RunResult analyzed = Run({"analyze", session});
  ASSERT_EQ(analyzed.exit_status, 0) << analyzed.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(analyzed.out, match, std::regex(R"(utilization\s+([0-9.]+) %)")))
      << analyzed.out;
  // Six 0.1 s tasks on two cores: three waves, the cores mostly busy.
  const double utilization = std::stod(match[1]);
  EXPECT_GT(utilization, 50);
  EXPECT_LE(utilization, 100);
  ASSERT_TRUE(
      std::regex_search(analyzed.out, match, std::regex(R"(throughput\s+([0-9.]+) tasks/s)")));
  EXPECT_GT(std::stod(match[1]), 6 / 1.0);  // 6 tasks in well under a second
  EXPECT_NE(analyzed.out.find("DONE 6"), std::string::npos) << analyzed.out;
  EXPECT_NE(analyzed.out.find("EXECUTING"), std::string::npos);
  ASSERT_TRUE(std::regex_search(analyzed.out, match,
                                std::regex(R"(start \(.*\)\s+mean (\d+) us, median (\d+) us)")))
      << analyzed.out;
  EXPECT_LT(std::stoll(match[2]), 100'000) << "overhead must exclude the wait for a core";

  const std::string svg = ReadText(session + "/timeline.svg");
  ASSERT_EQ(svg.rfind("<svg", 0), 0u);
  size_t bars = 0;
  for (size_t at = svg.find("<title>"); at != std::string::npos; at = svg.find("<title>", at + 1)) {
    ++bars;
  }
  EXPECT_EQ(bars, 6u);  // one bar per task (one core each)
  EXPECT_NE(svg.find("node 0 core 1"), std::string::npos);

  RunResult missing = Run({"analyze", (directory_ / "nothing").string()});
  EXPECT_EQ(missing.exit_status, 2);
}

TEST_F(TasksCommandTest, BenchTasksPrintsOneJsonLine) {
  RunResult run =
      Run({"bench", "tasks", "--kind", "exec", "--count", "300", "--concurrency", "50"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  ASSERT_EQ(run.out.find('\n'), run.out.size() - 1) << "one line: " << run.out;
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["kind"], "exec");
  EXPECT_EQ(json["count"], 300);
  EXPECT_EQ(json["failed"], 0);
  EXPECT_GT(json["tasks_per_s"].get<double>(), 0);
  EXPECT_GT(json["median_latency_us"].get<int64_t>(), 0);
  EXPECT_NEAR(json["tasks_per_s"].get<double>() * json["seconds"].get<double>(), 300, 1);
}

TEST_F(TasksCommandTest, BenchFunctionTasksPrintsOneJsonLine) {
  RunResult run = Run({"bench", "tasks", "--kind", "function", "--count", "2000", "--workers", "2",
                       "--masters", "2"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  ASSERT_EQ(run.out.find('\n'), run.out.size() - 1) << "one line: " << run.out;
  const auto json = nlohmann::json::parse(run.out);
  EXPECT_EQ(json["kind"], "function");
  EXPECT_EQ(json["count"], 2000);
  EXPECT_EQ(json["failed"], 0);
  EXPECT_EQ(json["workers"], 2);
  EXPECT_EQ(json["masters"], 2);
  EXPECT_NEAR(json["tasks_per_s"].get<double>() * json["seconds"].get<double>(), 2000, 1);

  // A heterogeneous mix: the line adds the pool utilization, a fraction of the rank-time.
  run = Run({"bench", "tasks", "--kind", "function", "--count", "40", "--workers", "4", "--widths",
             "1,2,4", "--duration-ms", "5"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const auto mix = nlohmann::json::parse(run.out);
  EXPECT_EQ(mix["widths"], nlohmann::json({1, 2, 4}));
  EXPECT_GT(mix["utilization"].get<double>(), 0);
  EXPECT_LE(mix["utilization"].get<double>(), 1.0);

  // The dispatch code against virtual ranks.
  run = Run({"bench", "tasks", "--kind", "function", "--simulate", "--masters", "3", "--workers",
             "10", "--count", "5000"});
  ASSERT_EQ(run.exit_status, 0) << run.err;
  const auto simulated = nlohmann::json::parse(run.out);
  EXPECT_EQ(simulated["mode"], "simulated");
  EXPECT_EQ(simulated["workers"], 30);
  EXPECT_GT(simulated["assignments_per_s"].get<double>(), 0);
}

// Function tasks from a task file: pools in the file, values and errors in summary.json.
TEST_F(TasksCommandTest, FunctionTasksFromATaskFile) {
  const std::string file = Write("functions.yaml", R"(pilot:
  cores: 3
pools:
  - name: three
    workers: 3
tasks:
  - name: pair
    function: echo_ranks
    ranks: 2
  - name: trio
    function: echo_ranks
    ranks: 3
  - name: boom
    function: fail
    args: {message: "it broke"}
)");
  RunResult run = Run({"tasks", "run", file, "--session-root", "sessions"});
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  const std::string session = run.out.substr(0, run.out.find('\n'));
  std::ifstream in(session + "/summary.json");
  const auto summary = nlohmann::json::parse(in);
  std::map<std::string, nlohmann::json> by_uid;
  for (const auto& entry : summary["results"]) by_uid[entry["uid"]] = entry;
  EXPECT_EQ(by_uid["pair"]["state"], "DONE");
  EXPECT_EQ(by_uid["pair"]["value"]["size"], 2);
  EXPECT_EQ(by_uid["trio"]["value"]["ranks"], nlohmann::json({0, 1, 2}));
  EXPECT_EQ(by_uid["boom"]["state"], "FAILED");
  EXPECT_EQ(by_uid["boom"]["reason"], "it broke");
}

// `deeprc wf run` of the montage trace (619 tasks): every task DONE, and the event log shows
// each task starting only after all of its parents in the trace were DONE.
TEST_F(TasksCommandTest, WorkflowRunRespectsTheTraceDag) {
  const std::string trace = std::string(DEEPRC_SOURCE_DIR) +
                            "/tests/data/workflows/montage-chameleon-2mass-025d-001.json";
  RunResult run = Run({"wf", "run", trace, "--time-scale", "0.001", "--session-root", "sessions"});
  ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("619 tasks"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("619 done"), std::string::npos) << run.out;

  // Parents from the trace itself (specification.tasks[].parents), read here independently.
  const nlohmann::json spec = nlohmann::json::parse(ReadText(trace));
  std::map<std::string, std::vector<std::string>> parents;
  for (const auto& task : spec["workflow"]["specification"]["tasks"]) {
    for (const auto& parent : task["parents"]) {
      parents[task["id"].get<std::string>()].push_back(parent.get<std::string>());
    }
  }
  const std::string session = run.out.substr(0, run.out.find('\n'));
  std::map<std::string, int64_t> executing, done;
  std::istringstream events(ReadText(fs::path(session) / "events.jsonl"));
  std::string line;
  while (std::getline(events, line)) {
    const nlohmann::json event = nlohmann::json::parse(line);
    if (event["entity"] != "task") continue;
    if (event["state"] == "EXECUTING") executing[event["uid"]] = event["time_us"];
    if (event["state"] == "DONE") done[event["uid"]] = event["time_us"];
  }
  EXPECT_EQ(executing.size(), 619u);
  EXPECT_EQ(done.size(), 619u);
  int64_t edges = 0;
  for (const auto& [child, list] : parents) {
    for (const auto& parent : list) {
      ASSERT_TRUE(done.count(parent)) << parent;
      EXPECT_LE(done[parent], executing[child]) << parent << " -> " << child;
      ++edges;
    }
  }
  EXPECT_GT(edges, 1000);
}

}  // namespace
