// The machine's raw rate of starting and reaping /bin/true, and the executor's rate for the same
// work as tasks (sandbox, output files, environment, events, result), with a bounded number of
// tasks in flight as a scheduler on this machine would keep.

#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include "deeprc/runtime/executor.h"

extern char** environ;

namespace deeprc::runtime {
namespace {

char kTrue[] = "/bin/true";

void BM_RawForkExecWait(benchmark::State& state) {
  char* argv[] = {kTrue, nullptr};
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execve(kTrue, argv, environ);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("/bin/true failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawForkExecWait)->UseRealTime()->MinTime(3);

void BM_RawPosixSpawnWait(benchmark::State& state) {
  char* argv[] = {kTrue, nullptr};
  for (auto _ : state) {
    pid_t pid = -1;
    if (::posix_spawn(&pid, kTrue, nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      break;
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawPosixSpawnWait)->UseRealTime()->MinTime(3);

// Arg: tasks in flight at once.
void BM_ExecutorTrue(benchmark::State& state) {
  const int64_t concurrency = state.range(0);
  // The session directory's file system matters: each task creates a directory and two files.
  const char* base = std::getenv("DEEPRC_BENCH_DIR");
  std::string pattern = fmt::format("{}/deeprc-fork-exec-bench-XXXXXX", base ? base : "/tmp");
  if (::mkdtemp(pattern.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  const std::string root = pattern;
  std::mutex mutex;
  std::condition_variable finished;
  int64_t in_flight = 0;
  int64_t failed = 0;
  ExecutorOptions options;
  options.session_dir = root;
  options.worker_threads = static_cast<int32_t>(state.range(1));
  options.on_result = [&](ExecutionResult result) {
    std::lock_guard lock(mutex);
    --in_flight;
    if (result.state != TaskState::kDone) ++failed;
    finished.notify_one();
  };
  {
    auto made = Executor::Make(options);
    if (!made.ok()) {
      state.SkipWithError(made.status().ToString().c_str());
      return;
    }
    std::unique_ptr<Executor> executor = std::move(made).ValueOrDie();
    int64_t next = 0;
    for (auto _ : state) {
      {
        std::unique_lock lock(mutex);
        finished.wait(lock, [&] { return in_flight < concurrency; });
        ++in_flight;
      }
      TaskDescription task;
      task.uid = fmt::format("task.{:08}", next++);
      task.executable = kTrue;
      if (!executor->Submit(std::move(task)).ok()) state.SkipWithError("submit failed");
    }
    executor->WaitIdle(std::chrono::minutes(5));
  }
  if (failed > 0) state.SkipWithError("some tasks did not end DONE");
  state.SetItemsProcessed(state.iterations());
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);
}
BENCHMARK(BM_ExecutorTrue)
    ->ArgNames({"in_flight", "workers"})
    ->Args({1, 2})
    ->Args({2, 2})
    ->Args({8, 2})
    ->Args({8, 4})
    ->UseRealTime()
    ->MinTime(3);

}  // namespace
}  // namespace deeprc::runtime
