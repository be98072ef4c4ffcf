// The master of one worker pool.
//
// Wire (ZeroMQ): the master binds a ROUTER on an abstract Unix socket (ipc://@deeprc-pool-PID-N);
// every rank connects two DEALERs, the control socket with routing id "<generation>.<rank>" (its
// I/O thread's) and the work socket "<generation>.<rank>.w" (the thread that runs the tasks), so
// that messages of a pool that was replaced are told apart and dropped. Every message is
// [secret, JSON body] (the ROUTER sees the routing id first); a body whose secret does not match
// is dropped unread. Bodies, `t` says which:
//   rank → master: hello {rank, size, pid, node, functions, error?}   once, at start (control)
//                  work {}                                            once, at start (work)
//                  beat {live_comms, fds, rss_kb, done}               every heartbeat interval
//                  started {id}                                      only tasks with a timeout
//                  results {items: [{id, ok, value?, error?, canceled?, out?, err?}],
//                           started?: [id]}                           either socket
//   master → rank: run {items: [{id, uid, fn, args, ranks, tag, timed, report, sandbox}]} (work)
//                  cancel {ids}, beat, stop                                              (control)
// EXECUTING: a task assigned to ranks that hold nothing else starts at once, so the master emits
// it at dispatch; a task queued behind others is marked `report` and the ranks list it in
// `started` of a results message (no message of its own) when they start it: the next one for a
// task of a kind learned to be short (report "batch": it ends soon and its result carries the
// start), one sent at once otherwise (report "now"); the last of its ranks to report makes it
// EXECUTING.
// Batching: one `run` message per rank per dispatch pass and one `results` message per wake-up
// of a rank's I/O thread carry as many tasks as are ready, so a busy pool costs a few messages
// per hundred tasks. A rank holds up to `pipeline_depth` assignments and runs them in order; the
// master hands assignments to every rank in one global order, so the ranks of two multi-rank
// tasks always meet in the same order and MPI_Comm_create_group cannot deadlock.
//
// Failures:
//   - a function that throws or returns an error: the task FAILS with the message of its lowest
//     failing rank; the pool is untouched.
//   - a rank dies (its pidfd becomes readable, the pool's MPI job ends, or the rank is silent
//     for heartbeat_timeout): the other ranks are killed, and for every task on the pool:
//     the task on the dead rank FAILS ("worker rank R (pid P) of pool N died"); a task running
//     on other ranks (first in their queue) FAILS with a reason naming the dead rank; tasks only
//     queued on the ranks never started, so they go back to the head of the master's queue
//     (no attempt counted). The pool is launched again (a new generation).
//   - a pool that dies before all its ranks connected, or whose ranks fail to load a plugin, is
//     broken: its queued tasks and later submissions FAIL with the reason; no restart loop.
//   - cancel and timeout (timeout counted from the `started` message): the ranks get `cancel`
//     (the task's cancellation flag); a task that has not ended cancel_grace later is ended
//     CANCELED by killing and restarting its pool (the other tasks as for a dead rank).
#include "runtime/master_internal.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "deeprc/runtime/function.h"
#include "runtime/dispatcher_internal.h"
#include "runtime/wire_internal.h"

namespace deeprc::runtime {

std::string_view MasterRoutingName(MasterRouting routing) {
  return routing == MasterRouting::kLeastLoaded ? "least_loaded" : "round_robin";
}

namespace internal {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::chrono::milliseconds kTick{20};
constexpr size_t kTailBytes = 4096;

std::string Tail(std::string text) {
  if (text.size() > kTailBytes) text.erase(0, text.size() - kTailBytes);
  return text;
}

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  return -1;
#endif
}

}  // namespace

Status CheckPoolCanRun(const TaskDescription& task, const PoolDescription& pool,
                       const std::set<std::string, std::less<>>* functions,
                       std::string_view broken_reason, std::string_view where) {
  if (task.ranks > pool.workers) {
    return Status::Invalid("{}.ranks: {} ranks, but pool '{}' has {} workers", where, task.ranks,
                           pool.name, pool.workers);
  }
  if (!broken_reason.empty()) {
    return Status::Invalid("{}: pool '{}' is broken: {}", where, pool.name, broken_reason);
  }
  static const std::set<std::string, std::less<>> kBuiltins = [] {
    auto names = BuiltinFunctionNames();
    return std::set<std::string, std::less<>>(names.begin(), names.end());
  }();
  if (kBuiltins.contains(task.function)) return Status::OK();
  if (functions != nullptr) {
    if (!functions->contains(task.function)) {
      return Status::Invalid("{}.function: '{}' is not registered in pool '{}' (registered: {})",
                             where, task.function, pool.name, fmt::join(*functions, ", "));
    }
  } else if (pool.plugins.empty()) {
    return Status::Invalid(
        "{}.function: '{}' is not a built-in function and pool '{}' loads no plugins "
        "(built-ins: {})",
        where, task.function, pool.name, fmt::join(kBuiltins, ", "));
  }
  return Status::OK();
}

Status FunctionTaskCandidates(const TaskDescription& task, std::string_view where,
                              const std::vector<std::string>& pool_names,
                              const std::function<Status(size_t)>& can_run,
                              std::vector<size_t>* candidates) {
  candidates->clear();
  if (pool_names.empty()) {
    return Status::Invalid("{}: function task '{}', but the pilot has no worker pools", where,
                           task.function);
  }
  if (!task.master.empty()) {
    auto named = std::find(pool_names.begin(), pool_names.end(), task.master);
    if (named == pool_names.end()) {
      return Status::Invalid("{}.master: no pool named '{}' (pools: {})", where, task.master,
                             fmt::join(pool_names, ", "));
    }
    const size_t index = static_cast<size_t>(named - pool_names.begin());
    DEEPRC_RETURN_NOT_OK(can_run(index));
    candidates->push_back(index);
    return Status::OK();
  }
  Status first_error;
  for (size_t index = 0; index < pool_names.size(); ++index) {
    Status fits = can_run(index);
    if (fits.ok()) {
      candidates->push_back(index);
    } else if (first_error.ok()) {
      first_error = std::move(fits);
    }
  }
  return candidates->empty() ? first_error : Status::OK();
}

std::string ResolveWorkerProgram(const std::string& program) {
  if (!program.empty()) return program;
  if (const char* from_env = std::getenv("DEEPRC_WORKER_PROGRAM"); from_env && *from_env) {
    return from_env;
  }
  std::error_code error;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return "deeprc-worker";
  return (self.parent_path() / "deeprc-worker").string();
}

class Master::Impl {
 public:
  explicit Impl(MasterOptions options)
      : options_(std::move(options)),
        dispatcher_(std::vector<int32_t>(static_cast<size_t>(options_.pool.workers), 0),
                    options_.pool.pipeline_depth) {
    builtins_ = BuiltinFunctionNamesSet();
  }

  ~Impl() { Shutdown(); }

  Status Start() {
    context_ = zmq_ctx_new();
    if (context_ == nullptr) return Status::IOError("zmq_ctx_new: {}", zmq_strerror(zmq_errno()));
    socket_ = zmq_socket(context_, ZMQ_ROUTER);
    const int linger = 0;
    zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof(linger));
    const int high_water_mark = 0;  // unbounded: the master never blocks on a slow rank
    zmq_setsockopt(socket_, ZMQ_SNDHWM, &high_water_mark, sizeof(high_water_mark));
    zmq_setsockopt(socket_, ZMQ_RCVHWM, &high_water_mark, sizeof(high_water_mark));
    // A Unix socket in the abstract namespace: the pool's ranks run on this machine (the pools
    // of a local pilot), and it costs less per message than loopback TCP (the round trip of a
    // lone task: 111-117 µs against 122-165 µs, measured under load). Like 127.0.0.1 it is open
    // to every local process; the secret on every message keeps others out.
    static std::atomic<int32_t> sockets{0};
    const std::string address = fmt::format("ipc://@deeprc-pool-{}-{}", ::getpid(), sockets++);
    if (zmq_bind(socket_, address.c_str()) != 0) {
      return Status::IOError("pool {}: bind: {}", name(), zmq_strerror(zmq_errno()));
    }
    char buffer[256];
    size_t size = sizeof(buffer);
    zmq_getsockopt(socket_, ZMQ_LAST_ENDPOINT, buffer, &size);
    endpoint_ = buffer;
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) return Status::IOError("eventfd failed");
    return Status::OK();
  }

  void Run() {
    thread_ = std::thread([this] { Loop(); });
  }

  const std::string& name() const { return options_.pool.name; }

  Status Check(const TaskDescription& task, std::string_view where) const {
    std::lock_guard lock(shared_mutex_);
    return CheckPoolCanRun(task, options_.pool, functions_known_ ? &functions_ : nullptr,
                           broken_reason_, where);
  }

  void Submit(std::vector<TaskDescription> tasks) {
    load_ += static_cast<int64_t>(tasks.size());
    {
      std::lock_guard lock(inbox_mutex_);
      for (TaskDescription& task : tasks) inbox_tasks_.push_back(std::move(task));
    }
    Wake();
  }

  void Cancel(std::vector<std::string> uids, std::string reason) {
    {
      std::lock_guard lock(inbox_mutex_);
      for (std::string& uid : uids) inbox_cancels_.emplace_back(std::move(uid), reason);
    }
    Wake();
  }

  void PoolTaskEnded(ExecutionResult result) {
    {
      std::lock_guard lock(inbox_mutex_);
      inbox_pool_ended_.push_back(std::move(result));
    }
    Wake();
  }

  int64_t load() const { return load_.load(); }

  PoolStatus status() const {
    std::lock_guard lock(shared_mutex_);
    return status_;
  }

  void Shutdown() {
    if (!thread_.joinable()) {
      CloseSocket();
      return;
    }
    stop_ = true;
    Wake();
    thread_.join();
    CloseSocket();
  }

 private:
  enum class PoolState { kStarting, kReady, kRestarting, kBroken, kStopped };

  struct Job {
    TaskDescription task;
    int64_t id = 0;
    std::vector<int32_t> ranks;
    int32_t generation = -1;
    int32_t pending = 0;
    bool dispatched = false;
    json value;
    std::string error;
    int32_t error_rank = INT_MAX;
    std::vector<std::string> outs;
    std::vector<std::string> errs;
    std::string cancel_reason;
    bool canceling = false;
    Clock::time_point cancel_at = Clock::time_point::max();
    Clock::time_point kill_at = Clock::time_point::max();
    int64_t start_us = 0;
    int32_t kind = Dispatcher::kNoKind;
    bool executing = false;  // EXECUTING emitted
    int32_t started_ranks = 0;
  };

  struct Rank {
    std::string identity;
    std::string work_identity;
    pid_t pid = -1;
    int pidfd = -1;
    std::string node;
    bool connected = false;
    std::deque<int64_t> outstanding;
    json batch = json::array();
    Clock::time_point last_heard;
    int64_t live_comms = 0, fds = 0, rss_kb = 0, done = 0;
  };

  static std::set<std::string, std::less<>> BuiltinFunctionNamesSet() {
    auto names = BuiltinFunctionNames();
    return {names.begin(), names.end()};
  }

  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }

  void CloseSocket() {
    if (socket_ != nullptr) zmq_close(socket_);
    socket_ = nullptr;
    if (context_ != nullptr) zmq_ctx_term(context_);
    context_ = nullptr;
    if (wake_fd_ >= 0) ::close(wake_fd_);
    wake_fd_ = -1;
  }

  // ---- the master thread ----

  void Loop() {
    Launch();
    std::vector<TaskDescription> tasks;
    std::vector<std::pair<std::string, std::string>> cancels;
    std::vector<ExecutionResult> ended;
    std::vector<zmq_pollitem_t> items;
    auto last_beat = Clock::now();
    while (true) {
      {
        std::lock_guard lock(inbox_mutex_);
        tasks.swap(inbox_tasks_);
        cancels.swap(inbox_cancels_);
        ended.swap(inbox_pool_ended_);
      }
      for (TaskDescription& task : tasks) Enqueue(std::move(task));
      tasks.clear();
      for (auto& [uid, reason] : cancels) CancelJob(uid, reason);
      cancels.clear();
      for (ExecutionResult& result : ended) OnPoolTaskEnded(result);
      ended.clear();
      if (stop_) break;

      Receive();
      Dispatch();
      const auto now = Clock::now();
      if (now - last_beat >= options_.timing.heartbeat_interval) {
        last_beat = now;
        Heartbeat(now);
      }
      CheckTimers(now);
      Flush();
      PublishStatus();

      items.clear();
      items.push_back({socket_, 0, ZMQ_POLLIN, 0});
      items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
      for (const Rank& rank : ranks_) {
        if (rank.pidfd >= 0) items.push_back({nullptr, rank.pidfd, ZMQ_POLLIN, 0});
      }
      zmq_poll(items.data(), static_cast<int>(items.size()), kTick.count());
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t count;
        (void)!::read(wake_fd_, &count, sizeof(count));
      }
      for (size_t i = 2; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        for (size_t r = 0; r < ranks_.size(); ++r) {
          if (ranks_[r].pidfd == items[i].fd) {
            LosePool(
                fmt::format("worker rank {} (pid {}) of pool {} died", r, ranks_[r].pid, name()),
                static_cast<int32_t>(r));
            break;
          }
        }
        break;  // the ranks were reset; the rest of `items` is stale
      }
    }
    // Shutdown: what has not ended is canceled; the ranks are told to stop (the agent ends the
    // pool's job if they do not).
    std::vector<int64_t> ids;
    for (const auto& [id, job] : jobs_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (int64_t id : ids) {
      auto found = jobs_.find(id);
      if (found != jobs_.end()) Finish(found->second, TaskState::kCanceled, "agent shut down");
    }
    dispatcher_.Clear();
    for (Rank& rank : ranks_) {
      if (rank.connected) SendTo(rank, R"({"t":"stop"})");
    }
    ResetRanks(false);
    state_ = PoolState::kStopped;
    PublishStatus();
  }

  void Launch() {
    ++generation_;
    pool_uid_ = fmt::format("pool.{}.{}", name(), generation_);
    state_ = PoolState::kStarting;
    launched_at_ = Clock::now();
    ranks_.assign(static_cast<size_t>(options_.pool.workers), Rank{});
    connected_ = 0;
    work_connected_ = 0;
    TaskDescription task;
    task.uid = pool_uid_;
    task.name = pool_uid_;
    task.executable = ResolveWorkerProgram(options_.pool.program);
    task.arguments = {"--endpoint",
                      endpoint_,
                      "--session",
                      options_.session_dir,
                      "--pool",
                      name(),
                      "--generation",
                      std::to_string(generation_),
                      "--heartbeat-ms",
                      std::to_string(options_.timing.heartbeat_interval.count()),
                      "--heartbeat-timeout-ms",
                      std::to_string(options_.timing.heartbeat_timeout.count())};
    for (const std::string& plugin : options_.pool.plugins) {
      task.arguments.push_back("--plugin");
      task.arguments.push_back(plugin);
    }
    task.ranks = options_.pool.workers;
    task.cores_per_rank = options_.pool.cores_per_worker;
    task.gpus_per_rank = options_.pool.gpus_per_worker;
    // Ranks wait in collectives of their tasks; on a shared machine they must yield the core.
    // (Not `= "1"`: GCC 12 warns falsely, -Wrestrict, on that assignment here.)
    task.environment.emplace("OMPI_MCA_mpi_yield_when_idle", std::string(1, '1'));
    Status status = options_.launch(std::move(task));
    if (!status.ok()) Break(fmt::format("cannot launch its workers: {}", status.message()));
  }

  // The pool cannot run anything: fail what waits, refuse what comes.
  void Break(const std::string& reason) {
    {
      std::lock_guard lock(shared_mutex_);
      broken_reason_ = reason;
    }
    KillRanks();
    options_.cancel_launch(pool_uid_);
    const std::string message = fmt::format("pool '{}' is broken: {}", name(), reason);
    std::vector<int64_t> ids;
    for (const auto& [id, job] : jobs_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (int64_t id : ids) {
      auto found = jobs_.find(id);
      if (found != jobs_.end()) Finish(found->second, TaskState::kFailed, message);
    }
    dispatcher_.Clear();
    ResetRanks(false);
    state_ = PoolState::kBroken;
  }

  void Enqueue(TaskDescription task) {
    const int64_t id = next_id_++;
    Job& job = jobs_[id];
    job.id = id;
    job.task = std::move(task);
    uid_index_.emplace(job.task.uid, id);
    if (state_ == PoolState::kBroken) {
      Finish(job, TaskState::kFailed,
             fmt::format("pool '{}' is broken: {}", name(), broken_reason_));
      return;
    }
    if (functions_known_ && !builtins_.contains(job.task.function) &&
        !functions_.contains(job.task.function)) {
      Finish(job, TaskState::kFailed,
             fmt::format("function '{}' is not registered in pool '{}' (registered: {})",
                         job.task.function, name(), fmt::join(functions_, ", ")));
      return;
    }
    job.kind = KindOf(job.task);
    dispatcher_.Push(id, job.task.priority, job.task.ranks, job.kind);
  }

  // Tasks of one function and width are expected to take about as long (the dispatcher learns
  // their duration for backfill).
  int32_t KindOf(const TaskDescription& task) {
    auto found = kinds_.find(task.function);
    if (found == kinds_.end()) found = kinds_.emplace(task.function, std::vector<int32_t>()).first;
    std::vector<int32_t>& by_ranks = found->second;
    const size_t ranks = static_cast<size_t>(std::max(1, task.ranks));
    if (by_ranks.size() <= ranks) by_ranks.resize(ranks + 1, -1);
    if (by_ranks[ranks] < 0) by_ranks[ranks] = next_kind_++;
    return by_ranks[ranks];
  }

  static int64_t SteadyMicros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               Clock::now().time_since_epoch())
        .count();
  }

  void CancelJob(const std::string& uid, const std::string& reason) {
    auto found = uid_index_.find(uid);
    if (found == uid_index_.end()) return;
    Job& job = jobs_.at(found->second);
    if (!job.dispatched) {
      dispatcher_.Remove(job.id, job.task.priority);
      Finish(job, TaskState::kCanceled, reason);
      return;
    }
    StartCancel(job, reason);
  }

  void StartCancel(Job& job, const std::string& reason) {
    if (job.canceling) return;
    job.canceling = true;
    job.cancel_reason = reason;
    job.kill_at = Clock::now() + options_.timing.cancel_grace;
    timed_jobs_.insert(job.id);
    const std::string body = json{{"t", "cancel"}, {"ids", json::array({job.id})}}.dump();
    for (int32_t rank : job.ranks) SendTo(ranks_[static_cast<size_t>(rank)], body);
  }

  // The dispatcher picks the ranks (dispatcher_internal.h); this sends the assignments.
  void Dispatch() {
    if (state_ != PoolState::kReady) return;
    dispatcher_.Dispatch(SteadyMicros(), [this](int64_t id, std::span<const int32_t> chosen) {
      Job& job = jobs_.at(id);
      job.ranks.assign(chosen.begin(), chosen.end());
      job.generation = generation_;
      job.pending = static_cast<int32_t>(chosen.size());
      job.dispatched = true;
      job.start_us = NowMicros();
      ++running_;
      if (job.task.sandbox.empty()) {
        job.task.sandbox = options_.session_dir + "/tasks/" + job.task.uid;
      }
      // States move one step at a time; a function task has nothing to stage, so its staging
      // states are instants.
      options_.emit(TaskEvent{job.task.uid, TaskState::kStagingInput, job.start_us, ""});
      const bool at_once = std::all_of(chosen.begin(), chosen.end(), [this](int32_t r) {
        return ranks_[static_cast<size_t>(r)].outstanding.empty();
      });
      if (at_once) {
        job.executing = true;
        options_.emit(TaskEvent{job.task.uid, TaskState::kExecuting, job.start_us, ""});
      }
      json item = {{"id", id},
                   {"uid", job.task.uid},
                   {"fn", job.task.function},
                   {"args", job.task.args.is_null() ? json::object() : job.task.args},
                   {"ranks", job.ranks},
                   {"tag", id % 32768},
                   {"timed", job.task.timeout > 0},
                   {"report", at_once ? "" : ReportMode(job)},
                   {"sandbox", job.task.sandbox}};
      for (int32_t r : chosen) {
        Rank& rank = ranks_[static_cast<size_t>(r)];
        rank.outstanding.push_back(id);
        rank.batch.push_back(item);
      }
    });
  }

  void Flush() {
    for (Rank& rank : ranks_) {
      if (rank.batch.empty()) continue;
      json body = {{"t", "run"}, {"items", std::move(rank.batch)}};
      rank.batch = json::array();
      SendTo(rank, body.dump(), true);
    }
  }

  // To the rank's control socket, or its work socket (`run`).
  void SendTo(Rank& rank, const std::string& body, bool work = false) {
    const std::string& identity = work ? rank.work_identity : rank.identity;
    if (identity.empty()) return;
    zmq_send(socket_, identity.data(), identity.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(socket_, options_.secret.data(), options_.secret.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(socket_, body.data(), body.size(), ZMQ_DONTWAIT);
  }

  void Receive() {
    while (true) {
      zmq_msg_t frames[3];
      int count = 0;
      int more = 1;
      bool any = false;
      while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, socket_, ZMQ_DONTWAIT) < 0) {
          zmq_msg_close(&part);
          break;
        }
        any = true;
        int has_more = 0;
        size_t size = sizeof(has_more);
        zmq_getsockopt(socket_, ZMQ_RCVMORE, &has_more, &size);
        more = has_more;
        if (count < 3) {
          frames[count++] = part;
        } else {
          zmq_msg_close(&part);
        }
      }
      if (!any) return;
      if (count == 3) {
        std::string_view identity(static_cast<const char*>(zmq_msg_data(&frames[0])),
                                  zmq_msg_size(&frames[0]));
        std::string_view secret(static_cast<const char*>(zmq_msg_data(&frames[1])),
                                zmq_msg_size(&frames[1]));
        if (ConstantTimeEqual(secret, options_.secret)) {
          std::string_view body(static_cast<const char*>(zmq_msg_data(&frames[2])),
                                zmq_msg_size(&frames[2]));
          OnMessage(identity, body);
        } else {
          ++rejected_;
        }
      }
      for (int i = 0; i < count; ++i) zmq_msg_close(&frames[i]);
    }
  }

  void OnMessage(std::string_view identity, std::string_view text) {
    // "<generation>.<rank>" or "<generation>.<rank>.w"
    const size_t dot = identity.find('.');
    if (dot == std::string_view::npos) return;
    const int32_t generation = std::atoi(std::string(identity.substr(0, dot)).c_str());
    const int32_t index = std::atoi(std::string(identity.substr(dot + 1)).c_str());
    if (generation != generation_ || index < 0 || index >= static_cast<int32_t>(ranks_.size()) ||
        (state_ != PoolState::kStarting && state_ != PoolState::kReady)) {
      return;
    }
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return;
    Rank& rank = ranks_[static_cast<size_t>(index)];
    rank.last_heard = Clock::now();
    const std::string type = body.value("t", "");
    if (type == "results") {
      // Starts first: a task may have started and ended within one batch.
      if (body.contains("started")) {
        for (const json& id : body["started"]) {
          auto found = jobs_.find(id.get<int64_t>());
          if (found != jobs_.end()) OnStarted(found->second);
        }
      }
      for (json& item : body["items"]) OnResult(index, item);
    } else if (type == "beat") {
      rank.live_comms = body.value("live_comms", int64_t{0});
      rank.fds = body.value("fds", int64_t{0});
      rank.rss_kb = body.value("rss_kb", int64_t{0});
      rank.done = body.value("done", int64_t{0});
      ++heartbeats_;
    } else if (type == "started") {
      auto found = jobs_.find(body.value("id", int64_t{-1}));
      if (found == jobs_.end()) return;
      Job& job = found->second;
      if (job.task.timeout > 0 && job.cancel_at == Clock::time_point::max()) {
        job.cancel_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(job.task.timeout));
        timed_jobs_.insert(job.id);
      }
      OnStarted(job);
    } else if (type == "work") {
      if (!identity.ends_with(".w") || !rank.work_identity.empty()) return;
      rank.work_identity = std::string(identity);
      ++work_connected_;
      MaybeReady();
    } else if (type == "hello") {
      if (rank.connected || identity.ends_with(".w")) return;
      rank.connected = true;
      rank.identity = std::string(identity);
      rank.pid = body.value("pid", -1);
      rank.node = body.value("node", "");
      rank.pidfd = rank.pid > 0 ? OpenPidfd(rank.pid) : -1;
      ++connected_;
      if (body.contains("error")) {
        Break(body.value("error", std::string("a worker failed to start")));
        return;
      }
      if (index == 0) {
        std::lock_guard lock(shared_mutex_);
        functions_.clear();
        for (const auto& name : body["functions"]) functions_.insert(name.get<std::string>());
        functions_known_ = true;
      }
      MaybeReady();
    }
  }

  // How the ranks report the start of a queued task (see the header).
  const char* ReportMode(const Job& job) const {
    constexpr int64_t kShortUs = 2000;
    const int64_t estimate = dispatcher_.estimate_us(job.kind);
    return estimate >= 0 && estimate < kShortUs ? "batch" : "now";
  }

  // A rank reported that it started `job` (it was queued behind others there).
  void OnStarted(Job& job) {
    if (job.executing || ++job.started_ranks < static_cast<int32_t>(job.ranks.size())) return;
    job.executing = true;
    job.start_us = NowMicros();
    options_.emit(TaskEvent{job.task.uid, TaskState::kExecuting, job.start_us, ""});
  }

  // Every rank connected both sockets: the pool is ready.
  void MaybeReady() {
    if (state_ != PoolState::kStarting || connected_ != static_cast<int32_t>(ranks_.size()) ||
        work_connected_ != static_cast<int32_t>(ranks_.size())) {
      return;
    }
    state_ = PoolState::kReady;
    std::map<std::string, int32_t> node_index;
    std::vector<int32_t> rank_nodes;
    for (const Rank& each : ranks_) {
      rank_nodes.push_back(
          node_index.emplace(each.node, static_cast<int32_t>(node_index.size())).first->second);
    }
    dispatcher_.SetRanks(std::move(rank_nodes));
    // Tasks queued before the functions were known.
    std::vector<int64_t> unknown;
    for (int64_t id : dispatcher_.QueuedIds()) {
      const std::string& function = jobs_.at(id).task.function;
      if (!builtins_.contains(function) && !functions_.contains(function)) {
        unknown.push_back(id);
      }
    }
    for (int64_t id : unknown) {
      CancelQueued(
          id, TaskState::kFailed,
          fmt::format("function '{}' is not registered in pool '{}' (registered: {})",
                      jobs_.at(id).task.function, name(), fmt::join(functions_, ", ")));
    }
  }

  void CancelQueued(int64_t id, TaskState state, const std::string& reason) {
    Job& job = jobs_.at(id);
    dispatcher_.Remove(id, job.task.priority);
    Finish(job, state, reason);
  }

  void OnResult(int32_t index, json& item) {
    const int64_t id = item.value("id", int64_t{-1});
    Rank& rank = ranks_[static_cast<size_t>(index)];
    auto position = std::find(rank.outstanding.begin(), rank.outstanding.end(), id);
    if (position == rank.outstanding.end()) return;
    rank.outstanding.erase(position);
    dispatcher_.Release(index, SteadyMicros());
    auto found = jobs_.find(id);
    if (found == jobs_.end()) return;
    Job& job = found->second;
    const int32_t task_rank = static_cast<int32_t>(
        std::find(job.ranks.begin(), job.ranks.end(), index) - job.ranks.begin());
    if (item.value("ok", false)) {
      if (task_rank == 0 && item.contains("value")) job.value = std::move(item["value"]);
    } else if (task_rank < job.error_rank) {
      job.error_rank = task_rank;
      job.error = item.value("error", std::string("failed"));
    }
    if (item.contains("out") || item.contains("err")) {
      job.outs.resize(job.ranks.size());
      job.errs.resize(job.ranks.size());
      job.outs[static_cast<size_t>(task_rank)] = item.value("out", "");
      job.errs[static_cast<size_t>(task_rank)] = item.value("err", "");
    }
    if (--job.pending > 0) return;
    if (!job.executing) {
      // Its ranks' start reports were not seen (they travel on the other socket): it ran.
      job.executing = true;
      options_.emit(TaskEvent{job.task.uid, TaskState::kExecuting, NowMicros(), ""});
    }
    if (job.error_rank != INT_MAX) {
      if (job.canceling) {
        Finish(job, TaskState::kCanceled, job.cancel_reason);
      } else {
        Finish(job, TaskState::kFailed,
               job.ranks.size() > 1 ? fmt::format("rank {}: {}", job.error_rank, job.error)
                                    : job.error);
      }
    } else {
      Finish(job, TaskState::kDone, "");
    }
  }

  void Finish(Job& job, TaskState state, const std::string& reason) {
    ExecutionResult result;
    result.uid = job.task.uid;
    result.state = state;
    result.reason = reason;
    result.exit_code = state == TaskState::kDone ? 0 : -1;
    result.value = std::move(job.value);
    std::string out, err;
    for (const std::string& text : job.outs) out += text;
    for (const std::string& text : job.errs) err += text;
    result.stdout_tail = Tail(std::move(out));
    result.stderr_tail = Tail(std::move(err));
    result.sandbox = job.task.sandbox;
    result.start_us = job.start_us;
    result.end_us = NowMicros();
    if (job.dispatched) --running_;
    ++done_;
    if (state == TaskState::kDone) {
      options_.emit(TaskEvent{result.uid, TaskState::kStagingOutput, result.end_us, ""});
    }
    options_.emit(TaskEvent{result.uid, state, result.end_us, reason});
    const int64_t id = job.id;
    uid_index_.erase(job.task.uid);
    timed_jobs_.erase(id);
    jobs_.erase(id);  // `job` dies here
    load_ -= 1;
    options_.on_result(std::move(result));
  }

  void Heartbeat(Clock::time_point now) {
    if (state_ == PoolState::kReady) {
      for (size_t r = 0; r < ranks_.size(); ++r) {
        if (now - ranks_[r].last_heard > options_.timing.heartbeat_timeout) {
          LosePool(fmt::format("worker rank {} (pid {}) of pool {} sent no heartbeat for {} ms", r,
                               ranks_[r].pid, name(), options_.timing.heartbeat_timeout.count()),
                   static_cast<int32_t>(r));
          return;
        }
      }
    }
    for (Rank& rank : ranks_) {
      if (rank.connected) SendTo(rank, R"({"t":"beat"})");
    }
  }

  void CheckTimers(Clock::time_point now) {
    if (state_ == PoolState::kStarting && now - launched_at_ > options_.timing.startup_timeout) {
      Break(fmt::format("{} of {} workers connected within {} ms", connected_, ranks_.size(),
                        options_.timing.startup_timeout.count()));
      return;
    }
    if (timed_jobs_.empty()) return;
    std::vector<int64_t> ids(timed_jobs_.begin(), timed_jobs_.end());
    for (int64_t id : ids) {
      auto found = jobs_.find(id);
      if (found == jobs_.end()) continue;
      Job& job = found->second;
      if (!job.canceling && now >= job.cancel_at) {
        StartCancel(job, fmt::format("timeout after {}s", job.task.timeout));
      } else if (job.canceling && now >= job.kill_at) {
        // The ranks did not stop: the pool goes, this task is CANCELED with its reason.
        const std::string reason = job.cancel_reason;
        job.cancel_reason = fmt::format("{} (did not stop within {} ms: pool {} restarted)", reason,
                                        options_.timing.cancel_grace.count(), name());
        LosePool(
            fmt::format("pool {} was restarted because task {} did not stop", name(), job.task.uid),
            -1);
        return;
      }
    }
  }

  void OnPoolTaskEnded(const ExecutionResult& result) {
    if (result.uid != pool_uid_) return;  // an earlier generation
    if (state_ == PoolState::kStarting || state_ == PoolState::kReady) {
      std::string reason = fmt::format("the MPI job of pool {} ended ({}{})", name(),
                                       result.reason.empty() ? "exited" : result.reason,
                                       result.stderr_tail.empty() ? "" : ": " + result.stderr_tail);
      LosePool(reason, -1);
    }
  }

  void KillRanks() {
    for (Rank& rank : ranks_) {
      if (rank.pid > 0) ::kill(rank.pid, SIGKILL);
    }
  }

  void ResetRanks(bool kill) {
    if (kill) KillRanks();
    for (Rank& rank : ranks_) {
      if (rank.pidfd >= 0) ::close(rank.pidfd);
      rank.pidfd = -1;
    }
    ranks_.clear();
  }

  // A rank died (dead_rank ≥ 0), the job ended, or a task did not stop: see the header comment.
  void LosePool(const std::string& reason, int32_t dead_rank) {
    if (state_ != PoolState::kStarting && state_ != PoolState::kReady) return;
    const bool was_ready = state_ == PoolState::kReady;
    KillRanks();
    options_.cancel_launch(pool_uid_);
    // Which tasks were on the pool, and which of them may have started.
    std::set<int64_t> on_pool, started;
    for (const Rank& rank : ranks_) {
      for (size_t i = 0; i < rank.outstanding.size(); ++i) {
        on_pool.insert(rank.outstanding[i]);
        if (i == 0) started.insert(rank.outstanding[i]);
      }
    }
    std::vector<int64_t> requeue;
    for (int64_t id : on_pool) {
      auto found = jobs_.find(id);
      if (found == jobs_.end()) continue;
      Job& job = found->second;
      if (job.canceling) {
        Finish(job, TaskState::kCanceled, job.cancel_reason);
      } else if (started.contains(id)) {
        const bool on_dead = dead_rank >= 0 && std::find(job.ranks.begin(), job.ranks.end(),
                                                         dead_rank) != job.ranks.end();
        Finish(job, TaskState::kFailed,
               on_dead ? reason
                       : fmt::format("lost with its pool (ranks {}): {}", fmt::join(job.ranks, ","),
                                     reason));
      } else {
        requeue.push_back(id);
      }
    }
    // Back to the head of the queue in their dispatch order.
    for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) {
      Job& job = jobs_.at(*it);
      job.dispatched = false;
      job.ranks.clear();
      job.pending = 0;
      job.generation = -1;
      job.value = json();
      job.error.clear();
      job.error_rank = INT_MAX;
      job.outs.clear();
      job.errs.clear();
      job.cancel_at = Clock::time_point::max();
      timed_jobs_.erase(job.id);
      --running_;
      dispatcher_.PushFront(job.id, job.task.priority, job.task.ranks, job.kind);
    }
    ResetRanks(false);
    dispatcher_.ResetLoads();
    if (!was_ready) {
      Break(reason);
      return;
    }
    ++restarts_;
    state_ = PoolState::kRestarting;
    Launch();
  }

  void PublishStatus() {
    std::lock_guard lock(shared_mutex_);
    status_.name = name();
    static constexpr const char* kNames[] = {"starting", "ready", "restarting", "broken",
                                             "stopped"};
    status_.state = kNames[static_cast<int>(state_)];
    status_.broken_reason = broken_reason_;
    status_.generation = generation_;
    status_.restarts = restarts_;
    status_.queued = dispatcher_.queued();
    status_.running = running_;
    status_.done = done_;
    status_.live_communicators = status_.open_fds = status_.rss_kb = status_.rank_tasks = 0;
    status_.pids.clear();
    for (const Rank& rank : ranks_) {
      status_.pids.push_back(rank.pid);
      status_.live_communicators += rank.live_comms;
      status_.open_fds += rank.fds;
      status_.rss_kb += rank.rss_kb;
      status_.rank_tasks += rank.done;
    }
    status_.heartbeats = heartbeats_;
    status_.functions.assign(functions_.begin(), functions_.end());
    status_.functions_known = functions_known_;
  }

  MasterOptions options_;
  std::set<std::string, std::less<>> builtins_;
  void* context_ = nullptr;
  void* socket_ = nullptr;
  int wake_fd_ = -1;
  std::string endpoint_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> load_{0};

  std::mutex inbox_mutex_;
  std::vector<TaskDescription> inbox_tasks_;
  std::vector<std::pair<std::string, std::string>> inbox_cancels_;
  std::vector<ExecutionResult> inbox_pool_ended_;

  // Read by Check/status from other threads.
  mutable std::mutex shared_mutex_;
  std::set<std::string, std::less<>> functions_;
  bool functions_known_ = false;
  std::string broken_reason_;
  PoolStatus status_;

  // Only the master thread.
  PoolState state_ = PoolState::kStarting;
  int32_t generation_ = 0;
  std::string pool_uid_;
  Clock::time_point launched_at_;
  std::vector<Rank> ranks_;
  int32_t connected_ = 0;
  int32_t work_connected_ = 0;
  int32_t restarts_ = 0;
  int64_t next_id_ = 1;
  std::unordered_map<int64_t, Job> jobs_;
  std::unordered_map<std::string, int64_t> uid_index_;
  Dispatcher dispatcher_;
  // Kinds by function name, then ranks.
  std::map<std::string, std::vector<int32_t>, std::less<>> kinds_;
  int32_t next_kind_ = 0;
  std::set<int64_t> timed_jobs_;
  int64_t running_ = 0, done_ = 0, heartbeats_ = 0, rejected_ = 0;
};

Result<std::unique_ptr<Master>> Master::Make(MasterOptions options) {
  if (options.pool.workers < 1) {
    return Status::Invalid("pool '{}': workers must be at least 1, found {}", options.pool.name,
                           options.pool.workers);
  }
  for (const std::string& plugin : options.pool.plugins) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(plugin, error)) {
      return Status::Invalid("pool '{}': plugin {} not found", options.pool.name, plugin);
    }
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  DEEPRC_RETURN_NOT_OK(impl->Start());
  return std::unique_ptr<Master>(new Master(std::move(impl)));
}

Master::Master(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Master::~Master() = default;
void Master::Start() { impl_->Run(); }
const std::string& Master::name() const { return impl_->name(); }
Status Master::Check(const TaskDescription& task, std::string_view where) const {
  return impl_->Check(task, where);
}
void Master::Submit(std::vector<TaskDescription> tasks) { impl_->Submit(std::move(tasks)); }
void Master::Cancel(std::vector<std::string> uids, std::string reason) {
  impl_->Cancel(std::move(uids), std::move(reason));
}
void Master::PoolTaskEnded(ExecutionResult result) { impl_->PoolTaskEnded(std::move(result)); }
int64_t Master::load() const { return impl_->load(); }
PoolStatus Master::status() const { return impl_->status(); }
void Master::Shutdown() { impl_->Shutdown(); }

}  // namespace internal
}  // namespace deeprc::runtime
