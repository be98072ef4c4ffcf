#include "runtime/wire_internal.h"

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include <fmt/format.h>

namespace deeprc::runtime::internal {
namespace {

nlohmann::json StagingToJson(const std::vector<StagingDirective>& directives) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& directive : directives) {
    out.push_back({{"source", directive.source},
                   {"target", directive.target},
                   {"action", static_cast<int>(directive.action)}});
  }
  return out;
}

std::vector<StagingDirective> StagingFromJson(const nlohmann::json& json) {
  std::vector<StagingDirective> out;
  for (const auto& entry : json) {
    out.push_back({entry.at("source").get<std::string>(), entry.at("target").get<std::string>(),
                   static_cast<StagingAction>(entry.at("action").get<int>())});
  }
  return out;
}

}  // namespace

nlohmann::json TaskToJson(const TaskDescription& task) {
  return {{"uid", task.uid},
          {"name", task.name},
          {"mode", static_cast<int>(task.mode)},
          {"executable", task.executable},
          {"arguments", task.arguments},
          {"environment", task.environment},
          {"sandbox", task.sandbox},
          {"stdout", task.stdout_file},
          {"stderr", task.stderr_file},
          {"ranks", task.ranks},
          {"cores_per_rank", task.cores_per_rank},
          {"gpus_per_rank", task.gpus_per_rank},
          {"mem_per_rank", task.mem_per_rank},
          {"pre_exec", task.pre_exec},
          {"post_exec", task.post_exec},
          {"input_staging", StagingToJson(task.input_staging)},
          {"output_staging", StagingToJson(task.output_staging)},
          {"priority", task.priority},
          {"timeout", task.timeout},
          {"after", task.after},
          {"tags", task.tags},
          {"metadata", task.metadata},
          {"function", task.function},
          {"args", task.args},
          {"master", task.master}};
}

Result<TaskDescription> TaskFromJson(const nlohmann::json& json) {
  try {
    TaskDescription task;
    task.uid = json.at("uid").get<std::string>();
    task.name = json.at("name").get<std::string>();
    task.mode = static_cast<TaskMode>(json.at("mode").get<int>());
    task.executable = json.at("executable").get<std::string>();
    task.arguments = json.at("arguments").get<std::vector<std::string>>();
    task.environment = json.at("environment").get<std::map<std::string, std::string>>();
    task.sandbox = json.at("sandbox").get<std::string>();
    task.stdout_file = json.at("stdout").get<std::string>();
    task.stderr_file = json.at("stderr").get<std::string>();
    task.ranks = json.at("ranks").get<int32_t>();
    task.cores_per_rank = json.at("cores_per_rank").get<int32_t>();
    task.gpus_per_rank = json.at("gpus_per_rank").get<int32_t>();
    task.mem_per_rank = json.at("mem_per_rank").get<int64_t>();
    task.pre_exec = json.at("pre_exec").get<std::vector<std::string>>();
    task.post_exec = json.at("post_exec").get<std::vector<std::string>>();
    task.input_staging = StagingFromJson(json.at("input_staging"));
    task.output_staging = StagingFromJson(json.at("output_staging"));
    task.priority = json.at("priority").get<int32_t>();
    task.timeout = json.at("timeout").get<double>();
    task.after = json.at("after").get<std::vector<std::string>>();
    task.tags = json.at("tags").get<std::map<std::string, std::string>>();
    task.metadata = json.at("metadata");
    task.function = json.value("function", "");
    if (json.contains("args")) task.args = json.at("args");
    task.master = json.value("master", "");
    return task;
  } catch (const std::exception& error) {
    return Status::Invalid("malformed task description: {}", error.what());
  }
}

nlohmann::json ResultToJson(const ExecutionResult& result) {
  return {{"uid", result.uid},
          {"state", static_cast<int>(result.state)},
          {"reason", result.reason},
          {"exit_code", result.exit_code},
          {"signal", result.signal},
          {"signal_name", result.signal_name},
          {"stderr_tail", result.stderr_tail},
          {"sandbox", result.sandbox},
          {"stdout_path", result.stdout_path},
          {"stderr_path", result.stderr_path},
          {"start_us", result.start_us},
          {"end_us", result.end_us},
          {"value", result.value},
          {"stdout_tail", result.stdout_tail}};
}

ExecutionResult ResultFromJson(const nlohmann::json& json) {
  ExecutionResult result;
  result.uid = json.value("uid", "");
  result.state = static_cast<TaskState>(json.value("state", static_cast<int>(TaskState::kFailed)));
  result.reason = json.value("reason", "");
  result.exit_code = json.value("exit_code", -1);
  result.signal = json.value("signal", 0);
  result.signal_name = json.value("signal_name", "");
  result.stderr_tail = json.value("stderr_tail", "");
  result.sandbox = json.value("sandbox", "");
  result.stdout_path = json.value("stdout_path", "");
  result.stderr_path = json.value("stderr_path", "");
  result.start_us = json.value("start_us", int64_t{0});
  result.end_us = json.value("end_us", int64_t{0});
  if (json.contains("value")) result.value = json.at("value");
  result.stdout_tail = json.value("stdout_tail", "");
  return result;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  // The length of the secret is public (64); only its content must not leak through timing.
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return difference == 0;
}

nlohmann::json PoolStatusToJson(const PoolStatus& status) {
  return {{"name", status.name},
          {"state", status.state},
          {"broken_reason", status.broken_reason},
          {"generation", status.generation},
          {"restarts", status.restarts},
          {"queued", status.queued},
          {"running", status.running},
          {"done", status.done},
          {"live_communicators", status.live_communicators},
          {"open_fds", status.open_fds},
          {"rss_kb", status.rss_kb},
          {"rank_tasks", status.rank_tasks},
          {"heartbeats", status.heartbeats},
          {"functions", status.functions},
          {"functions_known", status.functions_known},
          {"pids", status.pids}};
}

PoolStatus PoolStatusFromJson(const nlohmann::json& json) {
  PoolStatus status;
  status.name = json.value("name", "");
  status.state = json.value("state", "");
  status.broken_reason = json.value("broken_reason", "");
  status.generation = json.value("generation", 0);
  status.restarts = json.value("restarts", 0);
  status.queued = json.value("queued", int64_t{0});
  status.running = json.value("running", int64_t{0});
  status.done = json.value("done", int64_t{0});
  status.live_communicators = json.value("live_communicators", int64_t{0});
  status.open_fds = json.value("open_fds", int64_t{0});
  status.rss_kb = json.value("rss_kb", int64_t{0});
  status.rank_tasks = json.value("rank_tasks", int64_t{0});
  status.heartbeats = json.value("heartbeats", int64_t{0});
  status.functions = json.value("functions", std::vector<std::string>{});
  status.functions_known = json.value("functions_known", false);
  status.pids = json.value("pids", std::vector<int32_t>{});
  return status;
}

Result<std::string> ReadSessionSecret(const std::string& session_dir) {
  std::ifstream in(session_dir + "/secret");
  std::string secret;
  if (!(in >> secret) || secret.empty()) {
    return Status::IOError("{}/secret: cannot read the session secret", session_dir);
  }
  return secret;
}

namespace {

Result<std::unique_ptr<Channel>> MakeChannel(std::string secret, const std::string& address,
                                             bool bind, std::string* endpoint,
                                             Channel* (*construct)(void*, void*, int,
                                                                   std::string)) {
  void* context = zmq_ctx_new();
  if (context == nullptr) return Status::IOError("zmq_ctx_new: {}", zmq_strerror(zmq_errno()));
  void* socket = zmq_socket(context, bind ? ZMQ_ROUTER : ZMQ_DEALER);
  if (bind) {
    // A send to a peer that is gone fails instead of vanishing: it stays queued.
    const int mandatory = 1;
    zmq_setsockopt(socket, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof(mandatory));
  } else {
    // A fixed routing id: after a reconnect the agent still knows its client.
    std::random_device random;
    const std::string id = fmt::format("client.{}.{:08x}", ::getpid(), random());
    zmq_setsockopt(socket, ZMQ_ROUTING_ID, id.data(), id.size());
  }
  const int linger = 1000;
  zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
  const int high_water_mark = 100000;  // messages queued per direction before sends wait
  zmq_setsockopt(socket, ZMQ_SNDHWM, &high_water_mark, sizeof(high_water_mark));
  zmq_setsockopt(socket, ZMQ_RCVHWM, &high_water_mark, sizeof(high_water_mark));
  const int rc = bind ? zmq_bind(socket, address.c_str()) : zmq_connect(socket, address.c_str());
  if (rc != 0) {
    const std::string message = zmq_strerror(zmq_errno());
    zmq_close(socket);
    zmq_ctx_term(context);
    return Status::IOError("{} {}: {}", bind ? "bind" : "connect", address, message);
  }
  if (endpoint != nullptr) {
    char buffer[256];
    size_t size = sizeof(buffer);
    zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buffer, &size);
    *endpoint = buffer;
  }
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    zmq_close(socket);
    zmq_ctx_term(context);
    return Status::IOError("eventfd: {}", std::strerror(errno));
  }
  return std::unique_ptr<Channel>(construct(context, socket, wake, std::move(secret)));
}

}  // namespace

Channel::Channel(void* context, void* socket, int wake_fd, std::string secret, bool router)
    : context_(context),
      socket_(socket),
      wake_fd_(wake_fd),
      secret_(std::move(secret)),
      router_(router) {}

Result<std::unique_ptr<Channel>> Channel::Bind(std::string secret, std::string* endpoint) {
  return MakeChannel(
      std::move(secret), "tcp://127.0.0.1:*", true, endpoint,
      [](void* c, void* s, int w, std::string k) { return new Channel(c, s, w, k, true); });
}

Result<std::unique_ptr<Channel>> Channel::Connect(std::string secret, const std::string& endpoint) {
  return MakeChannel(
      std::move(secret), endpoint, false, nullptr,
      [](void* c, void* s, int w, std::string k) { return new Channel(c, s, w, k, false); });
}

Channel::~Channel() {
  zmq_close(socket_);
  zmq_ctx_term(context_);
  ::close(wake_fd_);
}

void Channel::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void Channel::Send(std::string body) {
  {
    std::lock_guard lock(mutex_);
    outgoing_.push_back(std::move(body));
  }
  Wake();
}

void Channel::Stop() {
  stop_ = true;
  Wake();
}

bool Channel::ReceiveOne(const std::function<void(std::string&&)>& on_message) {
  // Frames: [peer id (ROUTER only), secret, body]; anything else is dropped.
  std::string frames[3];
  size_t count = 0;
  int more = 1;
  bool any = false;
  while (more) {
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, socket_, any ? 0 : ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&part);
      break;
    }
    any = true;
    size_t more_size = sizeof(more);
    zmq_getsockopt(socket_, ZMQ_RCVMORE, &more, &more_size);
    if (count < 3) {
      frames[count].assign(static_cast<const char*>(zmq_msg_data(&part)), zmq_msg_size(&part));
    }
    ++count;
    zmq_msg_close(&part);
  }
  if (!any) return false;
  const size_t expected = router_ ? 3 : 2;
  const std::string& key = frames[router_ ? 1 : 0];
  if (count != expected || !ConstantTimeEqual(key, secret_)) {
    ++rejected_;
    return true;
  }
  if (router_) {
    // The first peer that knows the secret is the client; others are ignored.
    if (peer_.empty()) peer_ = frames[0];
    if (frames[0] != peer_) {
      ++rejected_;
      return true;
    }
  }
  on_message(std::move(frames[expected - 1]));
  return true;
}

void Channel::Run(const std::function<void(std::string&&)>& on_message,
                  const std::function<void()>& on_tick, std::chrono::milliseconds tick) {
  // While a ROUTER has messages it cannot send (no authenticated peer yet, or the peer is
  // gone), it retries this often: its POLLOUT says nothing about one peer.
  constexpr std::chrono::milliseconds kRetry{10};
  auto last_tick = std::chrono::steady_clock::now();
  std::deque<std::string> sending;
  std::deque<std::string> pending;
  while (true) {
    {
      std::lock_guard lock(mutex_);
      sending.swap(outgoing_);
    }
    // Never block on a send: with no peer (it died) or a full queue (high-water mark), what is
    // left waits for the socket to be writable; at Stop() it is dropped.
    if (!pending.empty() || !sending.empty()) {
      for (std::string& body : sending) pending.push_back(std::move(body));
      sending.clear();
    }
    while (!pending.empty()) {
      if (router_) {
        if (peer_.empty()) break;
        if (zmq_send(socket_, peer_.data(), peer_.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) break;
        zmq_send(socket_, secret_.data(), secret_.size(), ZMQ_SNDMORE);
      } else if (zmq_send(socket_, secret_.data(), secret_.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) <
                 0) {
        break;
      }
      // A message's frames go together: once the first is queued, so is the rest.
      zmq_send(socket_, pending.front().data(), pending.front().size(), 0);
      pending.pop_front();
    }
    if (stop_) return;
    const bool wait_writable = !pending.empty() && !router_;
    const short socket_events = wait_writable ? (ZMQ_POLLIN | ZMQ_POLLOUT) : ZMQ_POLLIN;
    zmq_pollitem_t items[2] = {{socket_, 0, socket_events, 0}, {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    const auto now = std::chrono::steady_clock::now();
    int64_t wait = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(last_tick + tick - now).count());
    if (router_ && !pending.empty()) wait = std::min<int64_t>(wait, kRetry.count());
    zmq_poll(items, 2, static_cast<long>(wait));
    if (items[1].revents & ZMQ_POLLIN) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof(count));
    }
    if (items[0].revents & ZMQ_POLLIN) {
      // Everything that is there, without blocking.
      while (ReceiveOne(on_message)) {
      }
    }
    if (std::chrono::steady_clock::now() - last_tick >= tick) {
      last_tick = std::chrono::steady_clock::now();
      on_tick();
    }
  }
}

}  // namespace deeprc::runtime::internal
