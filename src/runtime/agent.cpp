#include "deeprc/runtime/agent.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "deeprc/runtime/resource_manager.h"
#include "deeprc/runtime/scheduler.h"
#include "runtime/master_internal.h"
#include "runtime/wire_internal.h"

namespace deeprc::runtime {

namespace {
constexpr std::chrono::milliseconds kIdleFlushDelay{500};
}  // namespace

class Agent::Impl {
 public:
  Impl(AgentOptions options, Scheduler scheduler)
      : options_(std::move(options)), scheduler_(std::move(scheduler)) {}

  Status Start() {
    ExecutorOptions executor;
    executor.session_dir = options_.session_dir;
    executor.client_dir = options_.client_dir;
    executor.worker_threads = options_.executor_threads;
    executor.kill_grace = options_.kill_grace;
    executor.on_event = [this](const TaskEvent& event) { Emit(event); };
    executor.on_result = [this](ExecutionResult result) {
      {
        std::lock_guard lock(mutex_);
        finished_.push_back(std::move(result));
      }
      wake_.notify_one();
    };
    DEEPRC_ASSIGN_OR_RAISE(executor_, Executor::Make(std::move(executor)));
    if (options_.runtime.count() > 0) {
      deadline_ = std::chrono::steady_clock::now() + options_.runtime;
      runtime_reason_ = fmt::format("the pilot's runtime limit of {:g} s is over",
                                    options_.runtime.count() / 1000.0);
    }
    thread_ = std::thread([this] { Loop(); });
    Status status = StartMasters();
    if (!status.ok()) Shutdown();
    return status;
  }

  Status StartMasters() {
    const auto& pools = options_.pools.pools;
    if (pools.empty()) return Status::OK();
    DEEPRC_ASSIGN_OR_RAISE(std::string secret, internal::ReadSessionSecret(options_.session_dir));
    for (size_t i = 0; i < pools.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (pools[j].name == pools[i].name) {
          return Status::Invalid("pools[{}]: the name '{}' is taken by pools[{}]", i, pools[i].name,
                                 j);
        }
      }
      internal::MasterOptions master;
      master.pool = pools[i];
      master.timing = options_.pools;
      master.timing.pools.clear();
      master.session_dir = options_.session_dir;
      master.secret = secret;
      master.emit = [this](const TaskEvent& event) { Emit(event); };
      master.on_result = [this](ExecutionResult result) {
        // The scheduler learns the end of a task it tracks (for its dependents); the client gets
        // the result from here (no hop through the scheduler thread).
        bool wake;
        {
          std::lock_guard lock(mutex_);
          function_uids_.erase(result.uid);
          wake = tracked_functions_.erase(result.uid) > 0;
          if (wake) {
            functions_ended_.emplace_back(result.uid, result.state);
          } else if (result.state != TaskState::kDone) {
            untracked_failed_.emplace(result.uid, result.state);
          }
        }
        if (wake) wake_.notify_one();
        if (options_.on_result) options_.on_result(std::move(result));
      };
      master.launch = [this, i](TaskDescription task) { return SubmitPool(i, std::move(task)); };
      master.cancel_launch = [this](const std::string& uid) { Cancel({uid}); };
      // Masters are added under the lock: the scheduler thread may already deliver results.
      Result<std::unique_ptr<internal::Master>> made = internal::Master::Make(std::move(master));
      if (!made.ok()) return Status::Invalid("pools[{}]: {}", i, made.status().message());
      {
        std::lock_guard lock(mutex_);
        masters_.push_back(made.MoveValueUnsafe());
        master_names_.push_back(pools[i].name);
      }
      // Launches the pool: its job's result may come back at once, to masters_[i].
      masters_.back()->Start();
    }
    return Status::OK();
  }

  // A pool's MPI job, from its master: an executable task of this agent.
  Status SubmitPool(size_t master, TaskDescription task) {
    std::lock_guard lock(mutex_);
    if (stopping_) return Status::Invalid("the agent has shut down");
    if (runtime_over_) return Status::Invalid("{}", runtime_reason_);
    DEEPRC_RETURN_NOT_OK(ValidateTaskDescription(task, task.uid));
    known_uids_.insert(task.uid);
    pool_uids_[task.uid] = master;
    std::vector<TaskDescription> tasks;
    tasks.push_back(std::move(task));
    batches_.push_back(Batch{std::move(tasks), NowMicros(), {}});
    wake_.notify_one();
    return Status::OK();
  }

  // Chooses the master of each function task (checked), in the order of `tasks`.
  Status RouteFunctions(const std::vector<TaskDescription>& tasks, std::vector<int32_t>* route) {
    route->assign(tasks.size(), -1);
    std::vector<size_t> candidates;
    for (size_t i = 0; i < tasks.size(); ++i) {
      const TaskDescription& task = tasks[i];
      if (task.mode != TaskMode::kFunction) continue;
      const std::string where = fmt::format("tasks[{}]", i);
      DEEPRC_RETURN_NOT_OK(internal::FunctionTaskCandidates(
          task, where, master_names_,
          [&](size_t m) { return masters_[m]->Check(task, where); }, &candidates));
      // Among the pools that can run it: round robin, or the least loaded.
      if (options_.pools.routing == MasterRouting::kRoundRobin) {
        auto next = std::lower_bound(candidates.begin(), candidates.end(), next_master_);
        const size_t m = next != candidates.end() ? *next : candidates.front();
        (*route)[i] = static_cast<int32_t>(m);
        next_master_ = (m + 1) % masters_.size();
        continue;
      }
      int64_t best_load = INT64_MAX;
      for (size_t m : candidates) {
        const int64_t load = masters_[m]->load();
        if (load < best_load) {
          best_load = load;
          (*route)[i] = static_cast<int32_t>(m);
        }
      }
    }
    return Status::OK();
  }

  Status Submit(std::vector<TaskDescription> tasks, int64_t submitted_us) {
    std::unique_lock lock(mutex_);
    if (runtime_over_) return Status::Invalid("{}", runtime_reason_);
    if (stopping_) return Status::Invalid("the agent has shut down");
    for (size_t i = 0; i < tasks.size(); ++i) {
      DEEPRC_RETURN_NOT_OK(ValidateTaskDescription(tasks[i], fmt::format("tasks[{}]", i)));
      if (known_uids_.contains(tasks[i].uid)) {
        return Status::Invalid("tasks[{}]: uid '{}' was submitted before", i, tasks[i].uid);
      }
    }
    DEEPRC_RETURN_NOT_OK(ValidateTaskGraph(
        tasks, [this](std::string_view uid) { return known_uids_.contains(std::string(uid)); }));
    std::vector<int32_t> route;
    DEEPRC_RETURN_NOT_OK(RouteFunctions(tasks, &route));
    for (const TaskDescription& task : tasks) known_uids_.insert(task.uid);
    // Dependencies are the scheduler's: executables and function tasks that wait for others go
    // to it (a function task holds no slots there and goes to its master when the scheduler
    // starts it). A function task that waits for nothing goes to its master from this thread at
    // once (no hop through the scheduler thread); the scheduler adopts it only if a later task
    // waits for it (Adopt).
    std::vector<std::vector<TaskDescription>> functions;
    Batch batch{{}, submitted_us, {}};
    for (size_t i = 0; i < tasks.size(); ++i) {
      TaskDescription& task = tasks[i];
      if (route[i] < 0 || !task.after.empty()) {
        batch.tasks.push_back(std::move(task));
        batch.routes.push_back(route[i]);
        continue;
      }
      if (functions.empty()) functions.resize(masters_.size());
      function_uids_.emplace(task.uid, route[i]);
      functions[static_cast<size_t>(route[i])].push_back(std::move(task));
    }
    if (!batch.tasks.empty()) {
      batches_.push_back(std::move(batch));
      wake_.notify_one();
    }
    lock.unlock();
    if (functions.empty()) return Status::OK();
    // Their first events come before the master can emit EXECUTING.
    const int64_t now = NowMicros();
    for (size_t m = 0; m < functions.size(); ++m) {
      if (functions[m].empty()) continue;
      for (const TaskDescription& task : functions[m]) {
        Emit(TaskEvent{task.uid, TaskState::kNew, submitted_us, ""});
        Emit(TaskEvent{task.uid, TaskState::kScheduling, now, ""});
      }
      masters_[m]->Submit(std::move(functions[m]));
    }
    return Status::OK();
  }

  void Cancel(std::vector<std::string> uids) {
    std::vector<std::vector<std::string>> functions(masters_.size());
    {
      std::lock_guard lock(mutex_);
      for (std::string& uid : uids) {
        auto found = function_uids_.find(uid);
        if (found != function_uids_.end()) {
          functions[static_cast<size_t>(found->second)].push_back(std::move(uid));
        } else {
          cancels_.push_back(std::move(uid));
        }
      }
    }
    wake_.notify_one();
    for (size_t m = 0; m < functions.size(); ++m) {
      if (!functions[m].empty())
        masters_[m]->Cancel(std::move(functions[m]), "canceled by the client");
    }
  }

  std::vector<PoolStatus> pool_status() const {
    std::vector<PoolStatus> statuses;
    for (const auto& master : masters_) statuses.push_back(master->status());
    return statuses;
  }

  void Shutdown() {
    // Masters first: their tasks end CANCELED and their ranks are told to stop, then the
    // scheduler thread ends the pools' jobs with everything else.
    for (auto& master : masters_) master->Shutdown();
    {
      std::lock_guard lock(mutex_);
      if (!thread_.joinable()) return;
      stopping_ = true;
      stop_pending_ = true;
    }
    wake_.notify_one();
    thread_.join();
    executor_.reset();
  }

  int64_t total_cores() const { return scheduler_.resources().total_cores(); }
  int64_t total_gpus() const { return scheduler_.resources().total_gpus(); }

 private:
  // routes[i]: tasks[i]'s master for a function task, -1 for an executable.
  // A Record's master for a function task that went to its master at submission.
  static constexpr int32_t kDispatched = -2;
  struct Batch {
    std::vector<TaskDescription> tasks;
    int64_t submitted_us;
    std::vector<int32_t> routes;
  };
  // What the scheduler thread keeps of a task, by TaskId.
  struct Record {
    TaskDescription task;  // moved to the executor (or the master) when the task starts
    std::string uid;
    // A function task's master (kDispatched: sent at submission), -1 for an executable.
    int32_t master = -1;
    bool running = false;
    bool final = false;
  };

  void Emit(const TaskEvent& event) {
    if (options_.events != nullptr) {
      options_.events->Append("task", event.uid, TaskStateName(event.state), event.time_us,
                              event.reason);
    }
    if (options_.on_event) options_.on_event(event);
  }

  // Ends a task that never reached the executor.
  void EndUnstarted(TaskId id, TaskState state, std::string reason) {
    Record& record = records_[id];
    if (record.final) return;
    record.final = true;
    Emit(TaskEvent{record.uid, state, NowMicros(), reason});
    ExecutionResult result;
    result.uid = record.uid;
    result.state = state;
    result.reason = std::move(reason);
    record.task = TaskDescription{};
    Deliver(std::move(result));
  }

  // A result to the client, or to its master for a pool's job.
  void Deliver(ExecutionResult result) {
    internal::Master* master = nullptr;
    {
      std::lock_guard lock(mutex_);
      auto found = pool_uids_.find(result.uid);
      if (found != pool_uids_.end()) {
        master = masters_[found->second].get();
        pool_uids_.erase(found);
      }
    }
    if (master != nullptr) {
      master->PoolTaskEnded(std::move(result));
      return;
    }
    if (options_.on_result) options_.on_result(std::move(result));
  }

  void Loop() {
    std::vector<Batch> batches;
    std::vector<ExecutionResult> finished;
    std::vector<std::pair<std::string, TaskState>> functions_ended;
    std::vector<std::string> cancels;
    std::unique_lock lock(mutex_);
    auto has_work = [&] {
      return !batches_.empty() || !finished_.empty() || !functions_ended_.empty() ||
             !cancels_.empty() || stop_pending_ ||
             std::chrono::steady_clock::now() >= deadline_;
    };
    while (true) {
      if (!has_work() && options_.events != nullptr &&
          !wake_.wait_for(lock, kIdleFlushDelay, has_work)) {
        // Idle for a while: the log gets what was gathered, so that it is current on disk while
        // the agent waits (and little is lost if the process dies). Not at every idle moment,
        // which would cost a write() per wake-up when tasks arrive one at a time.
        lock.unlock();
        (void)options_.events->Flush();
        lock.lock();
      }
      if (deadline_ == std::chrono::steady_clock::time_point::max()) {
        wake_.wait(lock, has_work);
      } else {
        wake_.wait_until(lock, deadline_, has_work);
      }
      // The pilot's runtime is over: everything unfinished is canceled below.
      const bool expire_now = std::chrono::steady_clock::now() >= deadline_;
      if (expire_now) {
        runtime_over_ = true;
        deadline_ = std::chrono::steady_clock::time_point::max();
      }
      batches.swap(batches_);
      finished.swap(finished_);
      functions_ended.swap(functions_ended_);
      cancels.swap(cancels_);
      const bool stop_now = stop_pending_;
      stop_pending_ = false;
      lock.unlock();

      for (Batch& batch : batches) Accept(batch);
      batches.clear();
      for (ExecutionResult& result : finished) {
        auto found = index_.find(result.uid);
        if (found != index_.end()) {
          Record& record = records_[found->second];
          record.running = false;
          record.final = true;
          (void)scheduler_.Finish(found->second, result.state);
        }
        Deliver(std::move(result));
      }
      finished.clear();
      if (stop_now) {
        for (const Record& record : records_) {
          if (!record.final) cancels.push_back(record.uid);
        }
      }
      for (const std::string& uid : cancels) {
        auto found = index_.find(uid);
        if (found == index_.end()) continue;
        Record& record = records_[found->second];
        if (record.final) continue;
        const char* reason = stop_now ? "agent shut down" : "canceled by the client";
        if (record.running) {
          (void)executor_->Cancel(uid, reason);
        } else {
          (void)scheduler_.Cancel(found->second, reason);
        }
      }
      cancels.clear();
      if (expire_now) {
        // Function tasks first: their pools' jobs end below, and a pool that ends cancels what
        // was running on it.
        std::vector<std::vector<std::string>> functions(masters_.size());
        {
          std::lock_guard function_lock(mutex_);
          for (const auto& [uid, master] : function_uids_) {
            functions[static_cast<size_t>(master)].push_back(uid);
          }
        }
        for (size_t m = 0; m < functions.size(); ++m) {
          if (!functions[m].empty()) masters_[m]->Cancel(std::move(functions[m]), runtime_reason_);
        }
        for (size_t id = 0; id < records_.size(); ++id) {
          const Record& record = records_[id];
          if (record.final || record.uid.empty()) continue;
          if (record.running) {
            (void)executor_->Cancel(record.uid, runtime_reason_);
          } else {
            (void)scheduler_.Cancel(static_cast<TaskId>(id), runtime_reason_);
          }
        }
      }

      for (const auto& [uid, state] : functions_ended) FunctionEnded(uid, state);
      functions_ended.clear();
      ScheduleAndLaunch();
      if (runtime_over_ && !runtime_reported_ && scheduler_.waiting_count() == 0 &&
          scheduler_.running_count() == 0) {
        runtime_reported_ = true;
        if (options_.on_runtime_over) options_.on_runtime_over(runtime_reason_);
      }

      lock.lock();
      if (stopping_ && batches_.empty() && finished_.empty() && functions_ended_.empty() &&
          scheduler_.waiting_count() == 0 &&
          scheduler_.running_count() == 0) {
        break;
      }
    }
  }

  void ScheduleAndLaunch() {
    std::vector<TaskId> started;
    std::vector<TaskFailure> failed;
    scheduler_.Schedule(&started, &failed);
    for (const TaskFailure& failure : failed) {
      EndUnstarted(failure.task, failure.state, failure.reason);
    }
    for (TaskId id : started) Launch(id);
  }

  // Function tasks that went straight to their masters and that `batch` waits for become the
  // scheduler's (external tasks, started; ended with their state if they have ended), so that
  // its dependency rules apply to them as to any task.
  void Adopt(const Batch& batch) {
    std::vector<std::string> uids;
    for (const TaskDescription& task : batch.tasks) {
      for (const std::string& uid : task.after) {
        if (!index_.contains(uid) && std::find(uids.begin(), uids.end(), uid) == uids.end()) {
          uids.push_back(uid);
        }
      }
    }
    if (uids.empty()) return;
    std::unordered_set<std::string_view> in_batch;
    for (const TaskDescription& task : batch.tasks) in_batch.insert(task.uid);
    std::vector<TaskDescription> adopted;
    std::vector<std::pair<std::string, TaskState>> ended;
    {
      std::lock_guard lock(mutex_);
      for (const std::string& uid : uids) {
        if (in_batch.contains(uid)) continue;
        if (auto found = untracked_failed_.find(uid); found != untracked_failed_.end()) {
          ended.emplace_back(uid, found->second);
          untracked_failed_.erase(found);
        } else if (function_uids_.contains(uid)) {
          tracked_functions_.insert(uid);  // its end comes to this thread now
        } else if (known_uids_.contains(uid)) {
          ended.emplace_back(uid, TaskState::kDone);
        } else {
          continue;  // unknown: the batch fails, naming it
        }
        TaskDescription entry;
        entry.uid = uid;
        entry.mode = TaskMode::kFunction;
        entry.function = "adopted";
        adopted.push_back(std::move(entry));
      }
    }
    if (adopted.empty()) return;
    Result<TaskId> first = scheduler_.Submit(adopted);
    if (!first.ok()) return;  // the batch then fails whole, naming the reason
    for (size_t i = 0; i < adopted.size(); ++i) {
      const TaskId id = *first + static_cast<TaskId>(i);
      if (records_.size() <= id) records_.resize(id + 1);
      index_.emplace(adopted[i].uid, id);
      records_[id].uid = adopted[i].uid;
      records_[id].master = kDispatched;
    }
    ScheduleAndLaunch();  // starts them
    for (const auto& [uid, state] : ended) FunctionEnded(uid, state);
  }

  void FunctionEnded(const std::string& uid, TaskState state) {
    auto found = index_.find(uid);
    if (found == index_.end()) return;
    Record& record = records_[found->second];
    record.running = false;
    record.final = true;
    (void)scheduler_.Finish(found->second, state);
  }

  void Accept(Batch& batch) {
    Adopt(batch);
    Result<TaskId> first = scheduler_.Submit(batch.tasks);
    const TaskId base = first.ok() ? *first : static_cast<TaskId>(records_.size());
    for (size_t i = 0; i < batch.tasks.size(); ++i) {
      TaskDescription& task = batch.tasks[i];
      const int32_t route = batch.routes.empty() ? -1 : batch.routes[i];
      Emit(TaskEvent{task.uid, TaskState::kNew, batch.submitted_us, ""});
      Emit(TaskEvent{task.uid, TaskState::kScheduling, NowMicros(), ""});
      if (!first.ok()) {
        // Checked at submission already; a batch the scheduler still refuses fails whole.
        Emit(TaskEvent{task.uid, TaskState::kFailed, NowMicros(), first.status().message()});
        ExecutionResult result;
        result.uid = task.uid;
        result.state = TaskState::kFailed;
        result.reason = first.status().message();
        if (options_.on_result) options_.on_result(std::move(result));
        continue;
      }
      const TaskId id = base + static_cast<TaskId>(i);
      if (records_.size() <= id) records_.resize(id + 1);
      index_.emplace(task.uid, id);
      records_[id].uid = task.uid;
      records_[id].master = route;
      records_[id].task = std::move(task);
    }
  }

  void Launch(TaskId id) {
    Record& record = records_[id];
    if (record.master != -1) {
      // A function task: its dependencies are DONE.
      record.running = true;
      if (record.master == kDispatched) return;
      bool stopping;
      {
        std::lock_guard lock(mutex_);
        stopping = stopping_;
        if (!stopping) {
          function_uids_.emplace(record.uid, record.master);
          tracked_functions_.insert(record.uid);
        }
      }
      if (stopping) {
        // The masters have shut down: it never reaches one.
        record.running = false;
        (void)scheduler_.Finish(id, TaskState::kCanceled);
        EndUnstarted(id, TaskState::kCanceled, "agent shut down");
        return;
      }
      std::vector<TaskDescription> tasks;
      tasks.push_back(std::move(record.task));
      record.task = TaskDescription{};
      masters_[static_cast<size_t>(record.master)]->Submit(std::move(tasks));
      return;
    }
    const Allocation& allocation = scheduler_.allocation(id);
    ExecutionPlacement placement;
    placement.ranks.resize(static_cast<size_t>(allocation.ranks()));
    for (int32_t rank = 0; rank < allocation.ranks(); ++rank) {
      ExecutionSlot& slot = placement.ranks[static_cast<size_t>(rank)];
      const auto cores = allocation.cores(rank);
      const auto gpus = allocation.gpus(rank);
      slot.cores.assign(cores.begin(), cores.end());
      slot.gpus.assign(gpus.begin(), gpus.end());
      // A local pilot's nodes are this machine.
    }
    if (options_.events != nullptr) {
      std::string line = fmt::format(R"({{"entity":"placement","uid":{},"time_us":{},"ranks":[)",
                                     nlohmann::json(record.uid).dump(), NowMicros());
      for (int32_t rank = 0; rank < allocation.ranks(); ++rank) {
        fmt::format_to(std::back_inserter(line), R"({}{{"node":{},"cores":[{}],"gpus":[{}]}})",
                       rank == 0 ? "" : ",", allocation.node(rank),
                       fmt::join(allocation.cores(rank), ","),
                       fmt::join(allocation.gpus(rank), ","));
      }
      // The dependencies, so that the analysis can tell waiting for them from overhead.
      line += R"(],"after":)";
      line += nlohmann::json(record.task.after).dump();
      line += "}";
      options_.events->AppendLine(line);
    }
    record.running = true;
    Status status = executor_->Submit(std::move(record.task), std::move(placement));
    record.task = TaskDescription{};
    if (!status.ok()) {
      record.running = false;
      (void)scheduler_.Finish(id, TaskState::kFailed);
      EndUnstarted(id, TaskState::kFailed, status.message());
    }
  }

  AgentOptions options_;
  Scheduler scheduler_;
  std::unique_ptr<Executor> executor_;
  std::thread thread_;

  // Guarded by mutex_: what arrives for the scheduler thread.
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Batch> batches_;
  std::vector<ExecutionResult> finished_;
  // Function tasks the scheduler tracks (started by it, or adopted) until they end at their
  // masters; their ends, for the scheduler thread (the results went to the client already).
  std::unordered_set<std::string> tracked_functions_;
  std::vector<std::pair<std::string, TaskState>> functions_ended_;
  // Function tasks the scheduler never saw that ended FAILED or CANCELED (a later task may wait
  // for them); one that is known, neither running nor here nor the scheduler's, ended DONE.
  std::unordered_map<std::string, TaskState> untracked_failed_;
  std::vector<std::string> cancels_;
  std::unordered_set<std::string> known_uids_;
  // Function tasks not final yet → their master; pool jobs running → their master.
  std::unordered_map<std::string, int32_t> function_uids_;
  std::vector<std::string> master_names_;  // masters_[i]'s pool name
  std::unordered_map<std::string, size_t> pool_uids_;
  size_t next_master_ = 0;
  // Filled once at start (under the lock), read-only afterwards.
  std::vector<std::unique_ptr<internal::Master>> masters_;
  bool stopping_ = false;
  bool stop_pending_ = false;
  // The pilot's runtime limit: when it passes (max: no limit), and whether it has.
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  bool runtime_over_ = false;
  std::string runtime_reason_;     // set in Start, read-only afterwards
  bool runtime_reported_ = false;  // only the scheduler thread

  // Only the scheduler thread.
  std::vector<Record> records_;
  std::unordered_map<std::string, TaskId> index_;
};

Result<std::unique_ptr<Agent>> Agent::Make(AgentOptions options) {
  if (options.session_dir.empty()) return Status::Invalid("AgentOptions.session_dir is required");
  DEEPRC_ASSIGN_OR_RAISE(ResourceManager resources, ResourceManager::Make(options.nodes));
  auto impl = std::make_unique<Impl>(std::move(options), Scheduler(std::move(resources)));
  DEEPRC_RETURN_NOT_OK(impl->Start());
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() { Shutdown(); }

Status Agent::Submit(std::vector<TaskDescription> tasks, int64_t submitted_us) {
  return impl_->Submit(std::move(tasks), submitted_us);
}
void Agent::Cancel(std::vector<std::string> uids) { impl_->Cancel(std::move(uids)); }
void Agent::Shutdown() { impl_->Shutdown(); }
int64_t Agent::total_cores() const { return impl_->total_cores(); }
int64_t Agent::total_gpus() const { return impl_->total_gpus(); }
std::vector<PoolStatus> Agent::pool_status() const { return impl_->pool_status(); }

}  // namespace deeprc::runtime
