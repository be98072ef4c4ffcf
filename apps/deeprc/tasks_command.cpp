// `deeprc tasks run FILE.yaml`: runs the file's tasks (a list or a graph through `after`) on a
// local pilot. Prints the session directory, a progress line on stderr (rewritten in place on a
// terminal, one line a second otherwise), and a summary; writes summary.json into the session
// directory. Exit 0 when every task is DONE, 1 when one is not, 2 for a bad file. String values
// in the file may use ${VAR} (runtime/task_file.h; TASK_FILE_DIR is the file's directory).
//
// `deeprc analyze SESSION_DIR`: utilization, throughput, time in each state and the runtime's
// overhead per task from the session's events.jsonl (definitions in runtime/profile.h); writes
// timeline.svg into the session directory.
//
// `deeprc wf run TRACE.json --time-scale S`: a WfCommons trace run for real the same way.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "deeprc/command_registry.h"
#include "deeprc/runtime/client.h"
#include "deeprc/runtime/profile.h"
#include "deeprc/runtime/session.h"
#include "deeprc/runtime/task_file.h"
#include "deeprc/runtime/workflow_trace.h"

namespace deeprc::app {
namespace {

using namespace std::chrono_literals;

// Graphs of at most this many tasks list each DONE function task's value (up to kValueWidth
// characters) after the summary line.
constexpr size_t kListValuesUpTo = 50;
constexpr size_t kValueWidth = 300;

std::string ProgressLine(const runtime::TaskCounts& counts, double seconds) {
  return fmt::format("{:.1f}s  done {} / {}  running {}  waiting {}  failed {}  canceled {}",
                     seconds, counts.done, counts.total, counts.running, counts.waiting,
                     counts.failed, counts.canceled);
}

// Runs a task graph on a local pilot, with the progress line and the summary; `file` names the
// input in messages and in summary.json.
int RunTaskGraph(const char* who, const std::string& file, runtime::TaskFile task_file,
                 const std::string& session_root, bool agent_process) {
  // The graph is checked before anything starts, so that a bad file leaves no session behind.
  if (Status graph = runtime::ValidateTaskGraph(task_file.tasks); !graph.ok()) {
    std::fprintf(stderr, "%s: %s: %s\n", who, file.c_str(), graph.message().c_str());
    return kExitUsage;
  }
  runtime::SessionOptions session_options;
  session_options.root = session_root;
  auto session = runtime::Session::Make(session_options);
  if (!session.ok()) {
    std::fprintf(stderr, "%s: %s\n", who, session.status().message().c_str());
    return kExitFailure;
  }
  std::printf("%s\n", (*session)->directory().c_str());
  std::fflush(stdout);

  std::vector<std::string> names;
  for (const auto& task : task_file.tasks) names.push_back(task.name);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> uids;
  std::vector<runtime::ExecutionResult> results;
  {
    runtime::PilotManager pilots(**session);
    runtime::PilotOptions pilot_options;
    pilot_options.agent_process = agent_process;
    pilot_options.pools.pools = task_file.pools;
    auto pilot = pilots.Submit(task_file.pilot, pilot_options);
    if (!pilot.ok()) {
      std::fprintf(stderr, "%s: %s: pilot: %s\n", who, file.c_str(),
                   pilot.status().message().c_str());
      return pilot.status().IsUserError() ? kExitUsage : kExitFailure;
    }
    runtime::TaskManager tasks(**session);
    if (Status added = tasks.AddPilot(**pilot); !added.ok()) {
      std::fprintf(stderr, "%s: %s\n", who, added.message().c_str());
      return kExitFailure;
    }
    auto submitted = tasks.Submit(std::move(task_file.tasks));
    if (!submitted.ok()) {
      std::fprintf(stderr, "%s: %s: %s\n", who, file.c_str(), submitted.status().message().c_str());
      return submitted.status().IsUserError() ? kExitUsage : kExitFailure;
    }
    uids = submitted.MoveValueUnsafe();

    const bool tty = ::isatty(STDERR_FILENO) != 0;
    const auto tick = tty ? 200ms : 1000ms;
    bool pilot_ended = false;
    while (true) {
      const Status waited = tasks.Wait(uids, runtime::FinalTaskStates(), tick);
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      const std::string line = ProgressLine(tasks.counts(), elapsed.count());
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", line.c_str());
      } else if (!waited.ok()) {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      if (waited.ok()) break;
      // The pilot enforces its runtime limit itself (its tasks end CANCELED); say so once.
      if (!pilot_ended && (*pilot)->state() == runtime::PilotState::kDone) {
        pilot_ended = true;
        std::fprintf(stderr, "%s%s: the pilot ended: its runtime (%g s) is over\n", tty ? "\n" : "",
                     who, task_file.pilot.runtime);
      }
    }
    if (!tty) {
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      std::fprintf(stderr, "%s\n", ProgressLine(tasks.counts(), elapsed.count()).c_str());
    } else {
      std::fprintf(stderr, "\n");
    }
    for (const std::string& uid : uids) results.push_back(*tasks.result(uid));
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;

  nlohmann::json summary_tasks = nlohmann::json::array();
  int64_t done = 0, failed = 0, canceled = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const runtime::ExecutionResult& result = results[i];
    nlohmann::json entry = {{"uid", result.uid},
                            {"name", names[i].empty() ? result.uid : names[i]},
                            {"state", runtime::TaskStateName(result.state)},
                            {"exit_status", nullptr},
                            {"signal", nullptr},
                            {"reason", result.reason}};
    if (result.exit_code >= 0) entry["exit_status"] = result.exit_code;
    if (result.signal != 0) entry["signal"] = result.signal_name;
    if (!result.stderr_tail.empty()) entry["stderr_tail"] = result.stderr_tail;
    // Function tasks: the function's value and what it printed.
    if (!result.value.is_null()) entry["value"] = result.value;
    if (!result.stdout_tail.empty()) entry["stdout_tail"] = result.stdout_tail;
    if (!result.stderr_path.empty()) entry["stderr"] = result.stderr_path;
    summary_tasks.push_back(std::move(entry));
    if (result.state == runtime::TaskState::kDone) ++done;
    if (result.state == runtime::TaskState::kFailed) ++failed;
    if (result.state == runtime::TaskState::kCanceled) ++canceled;
  }
  const nlohmann::json summary = {{"session", (*session)->id()},
                                  {"file", file},
                                  {"seconds", elapsed.count()},
                                  {"tasks", results.size()},
                                  {"done", done},
                                  {"failed", failed},
                                  {"canceled", canceled},
                                  {"results", summary_tasks}};
  const std::string summary_path = (*session)->directory() + "/summary.json";
  if (Status written = runtime::WriteFileAtomically(summary_path, summary.dump(2) + "\n");
      !written.ok()) {
    std::fprintf(stderr, "%s: %s\n", who, written.message().c_str());
    return kExitFailure;
  }
  std::printf("%zu tasks in %.2f s: %lld done, %lld failed, %lld canceled\n", results.size(),
              elapsed.count(), static_cast<long long>(done), static_cast<long long>(failed),
              static_cast<long long>(canceled));
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].state == runtime::TaskState::kDone) {
      // A small graph (a pipeline) shows what each function task returned; large ones keep
      // that to summary.json.
      if (results.size() <= kListValuesUpTo && !results[i].value.is_null()) {
        std::string value = results[i].value.dump();
        if (value.size() > kValueWidth) value = value.substr(0, kValueWidth - 3) + "...";
        std::printf("  %s DONE: %s\n", results[i].uid.c_str(), value.c_str());
      }
      continue;
    }
    std::printf("  %s %s: %s\n", results[i].uid.c_str(),
                std::string(runtime::TaskStateName(results[i].state)).c_str(),
                results[i].reason.c_str());
    // The last line the task wrote to stderr says most often what went wrong.
    std::string_view tail = results[i].stderr_tail;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.remove_suffix(1);
    if (!tail.empty()) {
      const size_t line = tail.rfind('\n');
      if (line != std::string_view::npos) tail.remove_prefix(line + 1);
      std::printf("    stderr: %.*s  (%s)\n", static_cast<int>(tail.size()), tail.data(),
                  results[i].stderr_path.c_str());
    }
  }
  std::printf("summary: %s\n", summary_path.c_str());
  return done == static_cast<int64_t>(results.size()) ? kExitOk : kExitFailure;
}

int RunTasks(const std::string& file, const std::string& session_root, bool agent_process) {
  Result<runtime::TaskFile> parsed = runtime::ReadTaskFile(file);
  if (!parsed.ok()) {
    // A file that is missing, unreadable or wrong is the user's: 2.
    std::fprintf(stderr, "deeprc tasks run: %s\n", parsed.status().message().c_str());
    return kExitUsage;
  }
  return RunTaskGraph("deeprc tasks run", file, parsed.MoveValueUnsafe(), session_root,
                      agent_process);
}

// `deeprc wf run TRACE.json --time-scale S`: the trace's DAG for real on a local pilot, each task
// a process that lasts its recorded runtime × S seconds (`/bin/sleep`: it holds its cores in the
// pilot for that long without loading the machine), with the trace's core counts and the
// critical-path-first priorities the simulation uses.
int RunWorkflow(const std::string& trace_file, double time_scale, int32_t cores,
                const std::string& session_root, bool agent_process) {
  auto trace = runtime::ReadWorkflowTrace(trace_file);
  if (!trace.ok()) {
    std::fprintf(stderr, "deeprc wf run: %s\n", trace.status().message().c_str());
    return kExitUsage;
  }
  const runtime::Workload workload =
      runtime::WorkflowWorkload(*trace, runtime::WorkflowPolicy::kCriticalPath);
  runtime::TaskFile graph;
  graph.pilot.cores = cores;
  for (int64_t i = 0; i < workload.count; ++i) {
    runtime::TaskRequest request;
    double duration_s = 0;
    workload.task(i, &request, &duration_s);
    runtime::TaskDescription task;
    task.uid = trace->ids[i];
    task.name = trace->ids[i];
    task.executable = "/bin/sleep";
    task.arguments = {fmt::format("{:.6f}", trace->runtimes_s[i] * time_scale)};
    task.cores_per_rank = trace->cores[i];
    task.priority = request.priority;
    for (const int32_t parent : trace->parents[i]) task.after.push_back(trace->ids[parent]);
    graph.tasks.push_back(std::move(task));
  }
  return RunTaskGraph("deeprc wf run", trace_file, std::move(graph), session_root, agent_process);
}

int RunWorkflowCommand(int argc, char** argv) {
  CLI::App app{"Run WfCommons workflow traces on a local pilot", "deeprc wf"};
  app.require_subcommand(1);
  auto* run = app.add_subcommand(
      "run", "Run a trace's DAG for real: each task sleeps its runtime x the time scale");
  std::string file;
  std::string session_root;
  double time_scale = 1.0;
  int32_t cores = 0;
  bool agent_process = false;
  run->add_option("trace", file, "The WfCommons trace (JSON)")->required();
  run->add_option("--time-scale", time_scale, "Seconds of run per recorded second")
      ->check(CLI::PositiveNumber);
  run->add_option("--cores", cores, "Cores of the pilot (default: this machine's)")
      ->check(CLI::PositiveNumber);
  run->add_option("--session-root", session_root,
                  "Where the session directory goes (default: $DEEPRC_SESSION_ROOT or "
                  "./deeprc.sessions)");
  run->add_flag("--agent-process", agent_process, "Run the agent as its own process");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "deeprc wf: %s (see --help)\n", error.what());
    return kExitUsage;
  }
  try {
    return RunWorkflow(file, time_scale, cores, session_root, agent_process);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "deeprc wf run: internal error: %s\n", error.what());
    return kExitFailure;
  }
}

int RunTasksCommand(int argc, char** argv) {
  CLI::App app{"Run tasks on a local pilot", "deeprc tasks"};
  app.require_subcommand(1);
  auto* run = app.add_subcommand("run", "Run the tasks of a YAML file (pilot: + tasks:)");
  std::string file;
  std::string session_root;
  run->add_option("file", file, "The task file")->required();
  run->add_option("--session-root", session_root,
                  "Where the session directory goes (default: $DEEPRC_SESSION_ROOT or "
                  "./deeprc.sessions)");
  bool agent_process = false;
  run->add_flag("--agent-process", agent_process,
                "Run the agent as its own process (ZeroMQ on 127.0.0.1, heartbeats)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "deeprc tasks: %s (see --help)\n", error.what());
    return kExitUsage;
  }
  try {
    return RunTasks(file, session_root, agent_process);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "deeprc tasks run: internal error: %s\n", error.what());
    return kExitFailure;
  }
}

int RunAnalyzeCommand(int argc, char** argv) {
  CLI::App app{"Profile a session from its event log", "deeprc analyze"};
  std::string directory;
  app.add_option("session", directory, "A session directory")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (error.get_exit_code() == 0) return app.exit(error);
    std::fprintf(stderr, "deeprc analyze: %s (see --help)\n", error.what());
    return kExitUsage;
  }
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  Result<runtime::SessionProfile> analyzed = Status::Internal("not run");
  try {
    analyzed = runtime::AnalyzeSession(directory);
  } catch (const std::exception& error) {
    analyzed = Status::Internal("{}", error.what());
  }
  if (!analyzed.ok()) {
    std::fprintf(stderr, "deeprc analyze: %s\n", analyzed.status().message().c_str());
    return analyzed.status().IsUserError() || analyzed.status().code() == StatusCode::kIOError
               ? kExitUsage
               : kExitFailure;
  }
  const runtime::SessionProfile& profile = *analyzed;
  std::printf("session      %s\n", directory.c_str());
  std::printf("tasks        %zu", profile.tasks.size());
  for (const auto& [state, count] : profile.final_counts) {
    std::printf("  %s %lld", state.c_str(), static_cast<long long>(count));
  }
  std::printf("\npilot        %d node(s), %lld cores, %lld GPUs\n", profile.pilot_nodes,
              static_cast<long long>(profile.pilot_cores),
              static_cast<long long>(profile.pilot_gpus));
  std::printf("span         %.3f s (first NEW to last final state)\n",
              static_cast<double>(profile.end_us - profile.begin_us) / 1e6);
  std::printf("utilization  %.1f %% (core-time EXECUTING / cores x span)\n",
              profile.utilization * 100);
  std::printf("throughput   %.1f tasks/s\n", profile.throughput_per_s);
  std::printf("time in state (total s, mean ms per task):\n");
  for (runtime::TaskState state :
       {runtime::TaskState::kNew, runtime::TaskState::kScheduling,
        runtime::TaskState::kStagingInput, runtime::TaskState::kExecuting,
        runtime::TaskState::kStagingOutput}) {
    const std::string name(runtime::TaskStateName(state));
    auto found = profile.time_in_state_us.find(name);
    if (found == profile.time_in_state_us.end()) continue;
    std::printf("  %-15s %10.3f %10.3f\n", name.c_str(),
                static_cast<double>(found->second.first) / 1e6, found->second.second / 1e3);
  }
  std::printf(
      "overhead per task (runtime's share; excludes the executable and waiting for a slot):\n"
      "  start (NEW or slot free -> EXECUTING)  mean %.0f us, median %.0f us\n"
      "  end (process end -> final state)        mean %.0f us, median %.0f us\n",
      profile.mean_start_overhead_us, profile.median_start_overhead_us,
      profile.mean_end_overhead_us, profile.median_end_overhead_us);
  const std::string svg_path = directory + "/timeline.svg";
  if (Status written = runtime::WriteFileAtomically(svg_path, runtime::TimelineSvg(profile));
      !written.ok()) {
    std::fprintf(stderr, "deeprc analyze: %s\n", written.message().c_str());
    return kExitFailure;
  }
  std::printf("timeline     %s\n", svg_path.c_str());
  return kExitOk;
}

const bool kWorkflowRegistered = RegisterCommand(
    {"wf", "Run a WfCommons trace on a local pilot (deeprc wf run TRACE.json --time-scale S)",
     RunWorkflowCommand});
const bool kTasksRegistered = RegisterCommand(
    {"tasks", "Run tasks on a local pilot (deeprc tasks run FILE.yaml)", RunTasksCommand});
const bool kAnalyzeRegistered = RegisterCommand(
    {"analyze", "Profile a session: utilization, overheads, timeline.svg (deeprc analyze DIR)",
     RunAnalyzeCommand});

}  // namespace
}  // namespace deeprc::app
