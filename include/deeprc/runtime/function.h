#pragma once

// Function tasks: what a worker rank runs, and how functions are found by name.
//
// A function task names a registered function; the k worker ranks chosen for it each call it
// with a TaskContext whose communicator joins exactly those k ranks (a fresh MPI
// sub-communicator, or MPI_COMM_SELF for one rank). Rank 0's return value is the task's value;
// a function that returns an error or throws on any rank fails the task with the message of the
// lowest such rank.
//
// Functions are built in (RegisterBuiltinFunctions) or come from plugins: shared libraries that
// export
//   extern "C" deeprc::Status deeprc_register_functions(deeprc::runtime::FunctionRegistry&);
// (kPluginEntry), loaded by every rank of a pool that names them, so that a heavy dependency
// (LibTorch) loads only in the pools that need it.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/result.h"

namespace deeprc::runtime {

class TaskContext {
 public:
  TaskContext(comm::Communicator& comm, std::string uid, nlohmann::json args,
              std::string session_dir, std::string sandbox, std::vector<int32_t> gpus,
              const std::atomic<bool>& cancel)
      : comm_(comm),
        uid_(std::move(uid)),
        args_(std::move(args)),
        session_dir_(std::move(session_dir)),
        sandbox_(std::move(sandbox)),
        gpus_(std::move(gpus)),
        cancel_(cancel) {}

  // Joins exactly the task's ranks; this rank is comm().rank().
  comm::Communicator& comm() { return comm_; }
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
  const std::string& uid() const { return uid_; }
  const nlohmann::json& args() const { return args_; }
  // The session directory (where partitioned tables of data functions live).
  const std::string& session_dir() const { return session_dir_; }
  // A path a function's arguments name: absolute as it is, relative taken in the session
  // directory (the convention of every built-in and plugin function; empty stays empty).
  std::string SessionPath(const std::string& path) const {
    if (path.empty() || path.front() == '/') return path;
    return session_dir_ + "/" + path;
  }
  // The task's sandbox directory (<session>/tasks/<uid>/). Not created for every task (that
  // would cost two system calls per no-op task): MakeSandbox() creates it.
  const std::string& sandbox() const { return sandbox_; }
  Status MakeSandbox() const;
  // The GPU ids this rank holds (its pool rank's), as CUDA_VISIBLE_DEVICES numbers them.
  const std::vector<int32_t>& gpus() const { return gpus_; }
  // Set when the task is canceled or timed out: a long function checks it and returns. One that
  // does not stop within the pool's grace is killed with its pool.
  bool canceled() const { return cancel_.load(std::memory_order_relaxed); }
  // What the function prints for the client: every rank's text reaches the task's result in
  // rank order (stdout_tail / stderr_tail).
  std::ostringstream& out() { return out_; }
  std::ostringstream& err() { return err_; }
  // One line to err() with the task and rank.
  void Log(std::string_view message);

 private:
  comm::Communicator& comm_;
  std::string uid_;
  nlohmann::json args_;
  std::string session_dir_;
  std::string sandbox_;
  std::vector<int32_t> gpus_;
  const std::atomic<bool>& cancel_;
  std::ostringstream out_;
  std::ostringstream err_;
};

using TaskFunction = std::function<Result<nlohmann::json>(TaskContext&)>;

class FunctionRegistry {
 public:
  // AlreadyExists-style Invalid error when the name is taken.
  Status Register(std::string name, TaskFunction function);
  // Null when not registered.
  const TaskFunction* Find(std::string_view name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, TaskFunction, std::less<>> functions_;
};

// noop (returns null), sleep {seconds, ignore_cancel} (cooperative: returns when canceled unless
// ignore_cancel), fail {message} (throws std::runtime_error), echo_ranks (all-reduces the sum
// and max of the participants' pool ranks and returns {size, rank, sum, max, ranks}: proves the
// communicator spans exactly the task's ranks), write_output {text} (to out() and err()).
// `pool_rank` is this process's rank in its pool, for echo_ranks.
Status RegisterBuiltinFunctions(FunctionRegistry& registry, int32_t pool_rank);
// The names every rank of the standard `deeprc-worker` program has, for the agent's checks at
// submission: those of RegisterBuiltinFunctions and the data functions (table.*) and
// bench.cylon the program registers itself (they need the dist layer, which runtime does not
// link: apps/deeprc-worker/data_functions.cpp, bench_functions.cpp).
std::vector<std::string> BuiltinFunctionNames();

inline constexpr const char* kPluginEntry = "deeprc_register_functions";
using PluginEntry = Status (*)(FunctionRegistry&);

// dlopen(path), then its kPluginEntry. Errors name the plugin: missing file, dlopen's message,
// missing entry, or the entry's own error.
Status LoadPlugin(const std::string& path, FunctionRegistry& registry);

}  // namespace deeprc::runtime
