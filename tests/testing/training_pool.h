#pragma once

// A real training pool for tests of the training plugin's runtime functions: an agent in this
// process whose one pool ("train", two `deeprc-worker` ranks under mpirun) loads
// libdeeprc_train_plugin.so. Header-only: only tests that link deeprc_runtime include it.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deeprc/runtime/agent.h"
#include "deeprc/runtime/session.h"

namespace deeprc::train {

using runtime::ExecutionResult;
using runtime::TaskState;

const std::string kWorker = std::string(DEEPRC_BINARY_DIR) + "/apps/deeprc-worker";
const std::string kPlugin = std::string(DEEPRC_BINARY_DIR) + "/lib/libdeeprc_train_plugin.so";

inline runtime::TaskDescription Function(std::string uid, std::string function, nlohmann::json args,
                                         int32_t ranks = 1) {
  runtime::TaskDescription task;
  task.uid = std::move(uid);
  task.mode = runtime::TaskMode::kFunction;
  task.function = std::move(function);
  task.args = std::move(args);
  task.ranks = ranks;
  return task;
}

// An agent whose one pool ("train", two ranks) loads the training plugin; the results it
// delivers, by task.
class TrainingPool {
 public:
  TrainingPool() {
    runtime::SessionOptions session_options;
    session_options.root = std::filesystem::temp_directory_path().string() +
                           "/deeprc_training_pool." + std::to_string(::getpid());
    session_ = runtime::Session::Make(session_options).ValueOrDie();
    runtime::PoolDescription pool;
    pool.name = "train";
    pool.workers = 2;
    pool.program = kWorker;
    pool.plugins = {kPlugin};
    runtime::AgentOptions options;
    options.session_dir = session_->directory();
    options.nodes = {runtime::NodeResources{2, 0, 0}};
    options.events = &session_->events();
    options.pools.pools = {pool};
    options.pools.heartbeat_interval = std::chrono::milliseconds(200);
    options.pools.heartbeat_timeout = std::chrono::milliseconds(10000);
    options.kill_grace = std::chrono::milliseconds(500);
    options.on_result = [this](ExecutionResult result) {
      {
        std::lock_guard lock(mutex_);
        results_[result.uid] = std::move(result);
      }
      changed_.notify_all();
    };
    made_ = runtime::Agent::Make(std::move(options));
  }
  ~TrainingPool() {
    if (made_.ok()) (*made_)->Shutdown();
    std::error_code ignored;
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(session_->directory(), ignored);
  }

  Status made() const { return made_.status(); }
  runtime::Agent& agent() { return **made_; }
  const std::string& directory() const { return session_->directory(); }

  // Submits one task and waits for its result.
  ExecutionResult Run(runtime::TaskDescription task,
                      std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
    const std::string uid = task.uid;
    Status submitted = (*made_)->Submit({std::move(task)}, runtime::NowMicros());
    if (!submitted.ok()) {
      ADD_FAILURE() << uid << ": " << submitted.ToString();
      return {};
    }
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return results_.contains(uid); })) {
      ADD_FAILURE() << "no result for " << uid << " within " << timeout.count() << " ms";
      return {};
    }
    return results_.at(uid);
  }

 private:
  std::unique_ptr<runtime::Session> session_;
  Result<std::unique_ptr<runtime::Agent>> made_ = Status::Internal("not made");
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, ExecutionResult> results_;
};

}  // namespace deeprc::train
