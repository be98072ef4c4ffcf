#pragma once

// What the client and an agent process say to each other, and the channel they say it on.
//
// Transport: ZeroMQ over TCP, the agent's ROUTER bound to 127.0.0.1 (an ephemeral port), the
// client's DEALER connected. Every message is two frames: the session secret (64 hex digits,
// read by both sides from <session>/secret, mode 0600) and a JSON body. A message whose secret
// does not match (compared in constant time) is dropped unread. The agent serves the first peer
// that presents the secret and drops every other peer's messages: unlike a PAIR socket (one
// connection only), another local process connecting first cannot lock the client out.
//
// Bodies: {"type": ...}
//   client → agent: submit {submitted_us, tasks: [TaskDescription]}, cancel {uids},
//                   heartbeat, shutdown
//   agent → client: event {uid, state, time_us, reason}, result {ExecutionResult},
//                   pools {pools: [PoolStatus]} (with every heartbeat, when there are pools:
//                   the client checks function tasks with it and answers pool_status),
//                   heartbeat
// Heartbeats go both ways every `interval`; a side that hears nothing from the other for
// `timeout` declares it dead (agent: cancels its tasks and exits; client: the pilot and its
// unfinished tasks FAIL).

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "deeprc/core/result.h"
#include "deeprc/runtime/description.h"
#include "deeprc/runtime/executor.h"
#include "deeprc/runtime/pool.h"

namespace deeprc::runtime::internal {

nlohmann::json TaskToJson(const TaskDescription& task);
Result<TaskDescription> TaskFromJson(const nlohmann::json& json);
nlohmann::json ResultToJson(const ExecutionResult& result);
ExecutionResult ResultFromJson(const nlohmann::json& json);
nlohmann::json PoolStatusToJson(const PoolStatus& status);
PoolStatus PoolStatusFromJson(const nlohmann::json& json);

bool ConstantTimeEqual(std::string_view a, std::string_view b);

class Channel {
 public:
  // The agent's side: binds to 127.0.0.1 on a free port; `endpoint` gets "tcp://127.0.0.1:P".
  static Result<std::unique_ptr<Channel>> Bind(std::string secret, std::string* endpoint);
  // The client's side.
  static Result<std::unique_ptr<Channel>> Connect(std::string secret, const std::string& endpoint);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Thread-safe: queued for the thread in Run(), which is woken through an eventfd.
  void Send(std::string body);
  // Serves the socket in the calling thread until Stop(): sends what Send() queued, calls
  // `on_message` for every authenticated body and `on_tick` at least every `tick`.
  void Run(const std::function<void(std::string&&)>& on_message,
           const std::function<void()>& on_tick, std::chrono::milliseconds tick);
  // Thread-safe; Run() returns after sending what is queued.
  void Stop();
  int64_t rejected() const { return rejected_.load(); }

 private:
  Channel(void* context, void* socket, int wake_fd, std::string secret, bool router);
  void Wake();
  // One whole message without blocking: false when none is there.
  bool ReceiveOne(const std::function<void(std::string&&)>& on_message);

  void* context_;
  void* socket_;
  int wake_fd_;
  std::string secret_;
  // The agent's side: a ROUTER, and the routing id of its authenticated peer.
  bool router_;
  std::string peer_;
  std::mutex mutex_;
  std::deque<std::string> outgoing_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> rejected_{0};
};

// Reads <session_dir>/secret.
Result<std::string> ReadSessionSecret(const std::string& session_dir);

}  // namespace deeprc::runtime::internal
