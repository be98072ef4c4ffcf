#pragma once

#include <CLI/CLI.hpp>

#include <vector>

namespace deeprc::app {

// `deeprc bench tasks`: adds the subcommand's options to `bench` and returns a function that
// runs it once the command line is parsed.
struct BenchTasksCommand {
  CLI::App* subcommand = nullptr;
  std::string kind = "exec";
  int64_t count = 10'000;
  int64_t concurrency = 0;
  int32_t cores = 0;
  std::string agent = "in-process";
  // --kind function: pools (masters) × worker ranks each, and how tasks are routed over them.
  int32_t workers = 2;
  int32_t masters = 1;
  std::string routing = "round_robin";
  // --kind function --simulate: the masters' dispatch code against virtual ranks (--workers is
  // then per master).
  bool simulate = false;
  // --kind function: tasks of these widths (ranks), drawn at random, each sleeping duration_ms
  // (0: no-op tasks of one rank). The JSON line then adds "utilization": rank-time asked for
  // over rank-time available (masters × workers × seconds).
  std::vector<int32_t> widths;
  double duration_ms = 0;
  std::string session_root;
  bool keep = false;
  // --kind cylon (bench_cylon_tasks.cpp): bench.cylon tasks of each width in --widths (default
  // 1,2,4) for each op, rows per rank, timed runs per task, threads per rank.
  std::vector<std::string> ops = {"join", "sort"};
  int64_t rows = 1'000'000;
  int32_t repeat = 3;
  int32_t threads = 1;
};

void AddBenchTasksCommand(CLI::App& bench, BenchTasksCommand* command);
int RunBenchTasks(const BenchTasksCommand& command);
int RunBenchCylonTasks(const BenchTasksCommand& command);

}  // namespace deeprc::app
