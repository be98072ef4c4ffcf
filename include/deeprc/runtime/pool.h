#pragma once

// Worker pools for function tasks: what a pool is made of, how the agent routes function tasks
// over its masters, and the worker program's entry point.
//
// Each pool has one master in the agent process. The master starts the pool as an ordinary
// multi-rank executable task of the pilot (`deeprc-worker` under mpirun: it holds its cores and
// GPUs like any task), then talks to every rank over ZeroMQ (the master's ROUTER bound on an
// abstract Unix socket, two DEALERs per rank; every message carries the session secret). See
// master.cpp for the protocol and the failure rules.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "deeprc/core/result.h"

namespace deeprc::runtime {

class FunctionRegistry;

struct PoolDescription {
  // Unique per pilot; a function task's `master` field names it.
  std::string name = "default";
  // Ranks of the pool's MPI job.
  int32_t workers = 2;
  int32_t cores_per_worker = 1;
  int32_t gpus_per_worker = 0;
  // Shared libraries every rank loads (exporting deeprc_register_functions, function.h).
  std::vector<std::string> plugins;
  // The worker program. Empty: $DEEPRC_WORKER_PROGRAM, else `deeprc-worker` beside this
  // program (/proc/self/exe).
  std::string program;
  // Assignments queued on one rank ahead of the one it runs: a rank never waits for the master
  // between two short tasks.
  int32_t pipeline_depth = 64;
};

// How a function task without a `master` picks a pool among those that can run it.
enum class MasterRouting : uint8_t { kRoundRobin, kLeastLoaded };

struct PoolOptions {
  std::vector<PoolDescription> pools;
  MasterRouting routing = MasterRouting::kRoundRobin;
  // Master ↔ worker heartbeats; a rank silent for heartbeat_timeout is dead.
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{5000};
  // After a cancel or timeout, a task whose ranks have not stopped this much later is ended by
  // killing and restarting its pool.
  std::chrono::milliseconds cancel_grace{2000};
  // A pool whose ranks have not all connected this long after it was launched is broken (its
  // tasks FAIL).
  std::chrono::milliseconds startup_timeout{120000};
};

// What a master reports about its pool (for tests and `deeprc bench`).
struct PoolStatus {
  std::string name;
  // starting, ready, restarting, broken, stopped.
  std::string state;
  std::string broken_reason;
  int32_t generation = 0;
  int32_t restarts = 0;
  int64_t queued = 0;
  int64_t running = 0;
  int64_t done = 0;
  // From the ranks' last heartbeats: MPI communicators alive, open file descriptors, resident
  // memory, and tasks completed, summed over the ranks.
  int64_t live_communicators = 0;
  int64_t open_fds = 0;
  int64_t rss_kb = 0;
  int64_t rank_tasks = 0;
  // Heartbeats received since the last reset (lets a test wait for fresh ones).
  int64_t heartbeats = 0;
  std::vector<std::string> functions;
  // Whether `functions` came from the ranks (else only built-ins are known to be there).
  bool functions_known = false;
  // The ranks' process ids (as they reported them), by pool rank; -1 before a rank connected.
  std::vector<int32_t> pids;
};

std::string_view MasterRoutingName(MasterRouting routing);

// How the client hands the pools to `deeprc agent --pools JSON`.
std::string PoolOptionsToJson(const PoolOptions& options);
Result<PoolOptions> PoolOptionsFromJson(const std::string& text);

// The masters' dispatch code (the same Dispatcher a master runs) against virtual ranks: how many
// assignments per second the choice of ranks sustains, without sockets or processes. Tasks are
// queued round robin over the masters; each pass lets every master assign what fits, then every
// assignment completes at once (a task takes no time on the virtual clock).
struct DispatchSimulationOptions {
  int32_t masters = 100;
  int32_t workers_per_master = 100;
  int32_t workers_per_node = 50;
  int64_t tasks = 1'000'000;
  // Ranks per task, drawn uniformly from this list.
  std::vector<int32_t> widths = {1};
  int32_t pipeline_depth = 64;
  uint64_t seed = 1;
};
struct DispatchSimulationResult {
  int64_t tasks = 0;
  // Rank assignments (a k-rank task is k).
  int64_t assignments = 0;
  int64_t passes = 0;
  double seconds = 0;
};
Result<DispatchSimulationResult> SimulateDispatch(const DispatchSimulationOptions& options);

// The worker program (apps/deeprc-worker): one rank of a pool's MPI job.
struct WorkerOptions {
  std::string endpoint;
  std::string session_dir;
  std::string pool;
  int32_t generation = 0;
  std::vector<std::string> plugins;
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_timeout{5000};
  // Functions the program adds to the built-ins, before the plugins (the data functions).
  std::function<Status(FunctionRegistry&)> register_functions;
};
// Initializes MPI, connects to the master and serves until told to stop (0) or the master goes
// silent (3). Returns the process's exit status.
int RunWorker(const WorkerOptions& options);

}  // namespace deeprc::runtime
