#include "deeprc/runtime/task_file.h"

#include <gtest/gtest.h>

#include "testing/assertions.h"

namespace deeprc::runtime {
namespace {

TEST(TaskFileTest, ReadsPilotAndEveryTaskField) {
  const char* text = R"(
pilot:
  resource: local
  nodes: 2
  cores_per_node: 4
  gpus_per_node: 1
  memory: 8GB
  runtime: 15m
tasks:
  - name: b
    executable: /bin/echo
    arguments: [hi, "two words"]
  - uid: task.a
    name: a
    mode: executable
    executable: /usr/bin/env
    environment: {OMP_NUM_THREADS: "2"}
    sandbox: a_dir
    stdout: a.out
    stderr: a.err
    ranks: 2
    cores_per_rank: 2
    gpus_per_rank: 1
    mem_per_rank: 512MiB
    pre_exec: [module load x]
    post_exec: [echo done]
    input_staging: [data/in.csv, {source: model.pt, target: m.pt, action: link}]
    output_staging: [{source: out.csv, action: move}]
    priority: -3
    timeout: 90s
    after: [b]
    tags: {colocate: x}
    metadata: {epochs: 3, rate: 0.5, kind: demo, flags: [1, 2]}
  - executable: /bin/true
)";
  ASSERT_OK_AND_ASSIGN(TaskFile file, ParseTaskFileText(text, "run.yaml"));
  EXPECT_EQ(file.pilot.resource, "local");
  EXPECT_EQ(file.pilot.nodes, 2);
  EXPECT_EQ(file.pilot.cores_per_node, 4);
  EXPECT_EQ(file.pilot.gpus_per_node, 1);
  EXPECT_EQ(file.pilot.memory, 8000000000);
  EXPECT_EQ(file.pilot.runtime, 900);
  ASSERT_EQ(file.tasks.size(), 3u);

  const TaskDescription& b = file.tasks[0];
  EXPECT_EQ(b.uid, "b");  // the name when no uid is given
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.arguments, (std::vector<std::string>{"hi", "two words"}));
  EXPECT_EQ(b.ranks, 1);
  EXPECT_EQ(b.cores_per_rank, 1);

  const TaskDescription& a = file.tasks[1];
  EXPECT_EQ(a.uid, "task.a");
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.mode, TaskMode::kExecutable);
  EXPECT_EQ(a.environment.at("OMP_NUM_THREADS"), "2");
  EXPECT_EQ(a.sandbox, "a_dir");
  EXPECT_EQ(a.stdout_file, "a.out");
  EXPECT_EQ(a.stderr_file, "a.err");
  EXPECT_EQ(a.ranks, 2);
  EXPECT_EQ(a.cores_per_rank, 2);
  EXPECT_EQ(a.gpus_per_rank, 1);
  EXPECT_EQ(a.mem_per_rank, 512 * 1024 * 1024);
  EXPECT_EQ(a.pre_exec, (std::vector<std::string>{"module load x"}));
  EXPECT_EQ(a.post_exec, (std::vector<std::string>{"echo done"}));
  ASSERT_EQ(a.input_staging.size(), 2u);
  EXPECT_EQ(a.input_staging[0].source, "data/in.csv");
  EXPECT_EQ(a.input_staging[0].target, "in.csv");
  EXPECT_EQ(a.input_staging[0].action, StagingAction::kCopy);
  EXPECT_EQ(a.input_staging[1].target, "m.pt");
  EXPECT_EQ(a.input_staging[1].action, StagingAction::kLink);
  ASSERT_EQ(a.output_staging.size(), 1u);
  EXPECT_EQ(a.output_staging[0].target, "out.csv");
  EXPECT_EQ(a.output_staging[0].action, StagingAction::kMove);
  EXPECT_EQ(a.priority, -3);
  EXPECT_EQ(a.timeout, 90);
  EXPECT_EQ(a.after, (std::vector<std::string>{"b"}));
  EXPECT_EQ(a.tags.at("colocate"), "x");
  EXPECT_EQ(a.metadata["epochs"], 3);
  EXPECT_EQ(a.metadata["rate"], 0.5);
  EXPECT_EQ(a.metadata["kind"], "demo");
  EXPECT_EQ(a.metadata["flags"].size(), 2u);

  EXPECT_EQ(file.tasks[2].uid, "task.000002");  // neither uid nor name: its position
}

// The message of a file that must not parse.
std::string ErrorOf(const std::string& text) {
  auto file = ParseTaskFileText(text, "run.yaml");
  if (file.ok()) return "(parsed)";
  EXPECT_EQ(file.status().code(), StatusCode::kInvalid);
  return file.status().message();
}

TEST(TaskFileTest, ReadsPoolsAndFunctionTasks) {
  ASSERT_OK_AND_ASSIGN(TaskFile file, ParseTaskFileText(R"(
pools:
  - name: small
    workers: 3
    cores_per_worker: 2
    plugins: [/opt/lib/libfns.so]
  - name: other
tasks:
  - name: f
    function: echo_ranks
    args: {n: 4, names: [a, b]}
    ranks: 2
    master: small
)",
                                                        "run.yaml"));
  ASSERT_EQ(file.pools.size(), 2u);
  EXPECT_EQ(file.pools[0].name, "small");
  EXPECT_EQ(file.pools[0].workers, 3);
  EXPECT_EQ(file.pools[0].cores_per_worker, 2);
  EXPECT_EQ(file.pools[0].plugins, std::vector<std::string>{"/opt/lib/libfns.so"});
  EXPECT_EQ(file.pools[1].name, "other");
  EXPECT_EQ(file.pools[1].workers, 2);
  ASSERT_EQ(file.tasks.size(), 1u);
  const TaskDescription& task = file.tasks[0];
  EXPECT_EQ(task.mode, TaskMode::kFunction);
  EXPECT_EQ(task.function, "echo_ranks");
  EXPECT_EQ(task.args["n"], 4);
  EXPECT_EQ(task.args["names"][1], "b");
  EXPECT_EQ(task.ranks, 2);
  EXPECT_EQ(task.master, "small");
  Result<TaskFile> bad = ParseTaskFileText("pools:\n  - workers: x\ntasks: []\n", "p.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("pools[0].workers"), std::string::npos)
      << bad.status().message();
}

TEST(TaskFileTest, ErrorsNameLineColumnFieldAndWhatWasFound) {
  const std::string text =
      "tasks:\n"
      "  - executable: /bin/true\n"
      "  - executable: /bin/true\n"
      "  - executable: /bin/true\n"
      "  - executable: /bin/true\n"
      "    cores_per_rank: x\n";
  EXPECT_EQ(ErrorOf(text),
            "run.yaml:6:21: tasks[3].cores_per_rank: expected a positive integer, found 'x'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {executable: a, ranks: 0}\n"),
            "run.yaml:2:28: tasks[0].ranks: expected a positive integer, found '0'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {executable: a, gpus_per_rank: -1}\n"),
            "run.yaml:2:36: tasks[0].gpus_per_rank: expected a non-negative integer, found '-1'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {executable: a, arguments: hi}\n"),
            "run.yaml:2:32: tasks[0].arguments: expected a list of strings, found 'hi'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {executable: a, mem_per_rank: lots}\n"),
            "run.yaml:2:35: tasks[0].mem_per_rank: expected bytes or a size such as 4GB, "
            "found 'lots'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {executable: a, core_per_rank: 2}\n"),
            "run.yaml:2:21: tasks[0]: unknown field 'core_per_rank'");
  EXPECT_EQ(ErrorOf("pilot: {cores: many}\ntasks: []\n"),
            "run.yaml:1:16: pilot.cores: expected a positive integer, found 'many'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {name: a}\n"),
            "run.yaml:2:5: tasks[0].executable: an executable task needs an executable");
  EXPECT_EQ(ErrorOf("pilot: {cores: 2}\n"), "run.yaml: no tasks: list");
}

TEST(TaskFileTest, BadYamlSaysWhere) {
  const std::string message = ErrorOf("tasks:\n  - [unclosed\n");
  EXPECT_EQ(message.rfind("run.yaml:", 0), 0u) << message;
  EXPECT_NE(message.find("not valid YAML"), std::string::npos) << message;
}

TEST(TaskFileTest, DependenciesMustExistAndHaveNoCycle) {
  EXPECT_EQ(ErrorOf("tasks:\n  - {name: a, executable: x, after: [zz]}\n"),
            "run.yaml: tasks[0].after: unknown task 'zz'");
  EXPECT_EQ(ErrorOf("tasks:\n  - {name: a, executable: x, after: [a]}\n"),
            "run.yaml: tasks[0].after: task 'a' waits for itself");
  EXPECT_EQ(ErrorOf("tasks:\n"
                    "  - {name: a, executable: x, after: [c]}\n"
                    "  - {name: b, executable: x, after: [a]}\n"
                    "  - {name: c, executable: x, after: [b]}\n"),
            "run.yaml: dependency cycle: b → c → a → b");
  EXPECT_EQ(ErrorOf("tasks:\n  - {name: a, executable: x}\n  - {name: a, executable: y}\n"),
            "run.yaml: tasks[1].uid: 'a' is used by another task");
}

// ${NAME} and ${NAME:-default} in string values: given variables first, then the environment;
// numbers stay numbers after expansion, quoted values stay strings, keys are not expanded.
// (Inside YAML's flow style — {...} or [...] — a ${...} value must be quoted.)
TEST(TaskFileTest, ExpandsVariablesInValues) {
  ::setenv("DEEPRC_TASK_FILE_TEST_STEPS", "300", 1);
  ::unsetenv("DEEPRC_TASK_FILE_TEST_UNSET");
  ASSERT_OK_AND_ASSIGN(TaskFile file, ParseTaskFileText(R"(
pools:
  - {name: p, plugins: ["${HERE}/lib/libx.so"]}
tasks:
  - name: t
    function: f
    args:
      data: ${HERE}/data.csv
      steps: ${DEEPRC_TASK_FILE_TEST_STEPS}
      quoted: "${DEEPRC_TASK_FILE_TEST_STEPS}"
      out: ${DEEPRC_TASK_FILE_TEST_UNSET:-/tmp/out}/x.csv
      nested: ${DEEPRC_TASK_FILE_TEST_UNSET:-${HERE}/lib}/y
      price: $5, $$, $HOME and $${HERE} stay
      ${HERE}: key
  - {name: e, executable: /bin/sh, arguments: ["${HERE}", "echo $$"]}
)",
                                                        "run.yaml", {{"HERE", "/srv/pipe"}}));
  EXPECT_EQ(file.pools[0].plugins, std::vector<std::string>{"/srv/pipe/lib/libx.so"});
  const nlohmann::json& args = file.tasks[0].args;
  EXPECT_EQ(args["data"], "/srv/pipe/data.csv");
  EXPECT_EQ(args["steps"], 300);
  EXPECT_EQ(args["quoted"], "300");
  EXPECT_EQ(args["out"], "/tmp/out/x.csv");
  EXPECT_EQ(args["nested"], "/srv/pipe/lib/y");
  EXPECT_EQ(args["price"], "$5, $$, $HOME and ${HERE} stay");
  EXPECT_EQ(args["${HERE}"], "key");
  EXPECT_EQ(file.tasks[1].arguments, (std::vector<std::string>{"/srv/pipe", "echo $$"}));
  // Unset without a default, a bad name, an unclosed brace: errors that say where and what.
  EXPECT_EQ(ErrorOf("tasks:\n  - executable: ${DEEPRC_TASK_FILE_TEST_UNSET}\n"),
            "run.yaml:2:17: ${DEEPRC_TASK_FILE_TEST_UNSET} is not set (set it in the "
            "environment, give a default: ${DEEPRC_TASK_FILE_TEST_UNSET:-VALUE}, or write $${ "
            "for a literal ${)");
  EXPECT_EQ(ErrorOf("tasks:\n  - executable: ${a b}\n"),
            "run.yaml:2:17: '${a b}': not a variable name (letters, digits and _; $${ is a "
            "literal ${)");
  EXPECT_EQ(ErrorOf("tasks:\n  - executable: ${A\n"),
            "run.yaml:2:17: '${' without its '}' in '${A'");
  ::unsetenv("DEEPRC_TASK_FILE_TEST_STEPS");
}

TEST(PilotNodesTest, ResolvesCoresAndNodes) {
  PilotDescription pilot;
  pilot.cores = 2;
  ASSERT_OK_AND_ASSIGN(auto one, ResolvePilotNodes(pilot, 8));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].cores, 2);

  pilot = {};
  pilot.nodes = 3;
  pilot.gpus = 6;
  ASSERT_OK_AND_ASSIGN(auto three, ResolvePilotNodes(pilot, 8));
  ASSERT_EQ(three.size(), 3u);
  EXPECT_EQ(three[2].cores, 8);
  EXPECT_EQ(three[2].gpus, 2);

  pilot = {};
  pilot.nodes = 3;
  pilot.cores = 10;
  EXPECT_EQ(ResolvePilotNodes(pilot, 8).status().message(),
            "pilot: cores (10) must be a multiple of nodes (3)");
}

TEST(SizesTest, BytesAndDurations) {
  ASSERT_OK_AND_ASSIGN(int64_t bytes, ParseByteSize("1.5GiB"));
  EXPECT_EQ(bytes, 1610612736);
  ASSERT_OK_AND_ASSIGN(bytes, ParseByteSize("2k"));
  EXPECT_EQ(bytes, 2000);
  EXPECT_FALSE(ParseByteSize("-1").ok());
  EXPECT_FALSE(ParseByteSize("3 parsecs").ok());
  ASSERT_OK_AND_ASSIGN(double seconds, ParseDuration("1.5h"));
  EXPECT_EQ(seconds, 5400);
  EXPECT_FALSE(ParseDuration("soon").ok());
}

}  // namespace
}  // namespace deeprc::runtime
