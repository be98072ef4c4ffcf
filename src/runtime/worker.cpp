// One rank of a worker pool (the `deeprc-worker` program): the wire is described in master.cpp.
//
// Two threads. The I/O thread owns the ZeroMQ socket: it receives assignments and cancels,
// sends heartbeats and the results the main thread produced (all that are ready, in one
// message). The main thread runs the assignments in order, and is the only one that calls MPI
// (MPI_THREAD_SERIALIZED is enough): for a k-rank task it builds the task's communicator with
// MPI_Comm_create_group over the chosen world ranks (a tag unique to the task), runs the
// function, and frees the communicator; a one-rank task runs on MPI_COMM_SELF.
#include <dirent.h>
#include <mpi.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deeprc/comm/mpi_communicator.h"
#include "deeprc/runtime/function.h"
#include "deeprc/runtime/pool.h"
#include "runtime/wire_internal.h"

namespace deeprc::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

int64_t CountOpenFds() {
  int64_t count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir) != nullptr) ++count;
    ::closedir(dir);
    count -= 3;  // ".", ".." and the directory's own descriptor
  }
  return count;
}

int64_t ResidentKb() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

std::vector<int32_t> VisibleGpus() {
  std::vector<int32_t> gpus;
  const char* text = std::getenv("CUDA_VISIBLE_DEVICES");
  if (text == nullptr) return gpus;
  std::string value(text);
  size_t at = 0;
  while (at < value.size()) {
    size_t end = value.find(',', at);
    if (end == std::string::npos) end = value.size();
    if (end > at) gpus.push_back(std::atoi(value.substr(at, end - at).c_str()));
    at = end + 1;
  }
  return gpus;
}

struct Assignment {
  int64_t id = 0;
  std::string uid;
  std::string function;
  json args;
  std::vector<int32_t> ranks;
  int tag = 0;
  bool timed = false;
  std::string sandbox;
};

class Worker {
 public:
  explicit Worker(const WorkerOptions& options) : options_(options) {}

  int Run() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm_group(MPI_COMM_WORLD, &world_group_);

    auto secret = internal::ReadSessionSecret(options_.session_dir);
    if (!secret.ok()) {
      std::fprintf(stderr, "deeprc-worker: %s\n", secret.status().message().c_str());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    secret_ = *secret;
    std::string error;
    Status status = RegisterBuiltinFunctions(registry_, rank_);
    if (status.ok() && options_.register_functions) status = options_.register_functions(registry_);
    for (const std::string& plugin : options_.plugins) {
      if (!status.ok()) break;
      status = LoadPlugin(plugin, registry_);
    }
    if (!status.ok()) error = status.message();

    context_ = zmq_ctx_new();
    socket_ = zmq_socket(context_, ZMQ_DEALER);
    const std::string identity = fmt::format("{}.{}", options_.generation, rank_);
    zmq_setsockopt(socket_, ZMQ_ROUTING_ID, identity.data(), identity.size());
    const int linger = 2000;  // the last results and the goodbye reach the master
    zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof(linger));
    const int high_water_mark = 0;
    zmq_setsockopt(socket_, ZMQ_SNDHWM, &high_water_mark, sizeof(high_water_mark));
    zmq_setsockopt(socket_, ZMQ_RCVHWM, &high_water_mark, sizeof(high_water_mark));
    if (zmq_connect(socket_, options_.endpoint.c_str()) != 0) {
      std::fprintf(stderr, "deeprc-worker: connect %s: %s\n", options_.endpoint.c_str(),
                   zmq_strerror(zmq_errno()));
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    json hello = {{"t", "hello"},      {"rank", rank_}, {"size", size_},
                  {"pid", ::getpid()}, {"node", host},  {"functions", registry_.Names()}};
    if (!error.empty()) hello["error"] = error;
    Send(hello.dump());

    std::thread io([this] { Io(); });
    Execute();
    io.join();
    zmq_close(socket_);
    zmq_ctx_term(context_);
    ::close(wake_fd_);
    MPI_Group_free(&world_group_);
    self_.reset();
    if (exit_status_ == 0) MPI_Finalize();
    return exit_status_;
  }

 private:
  void Send(const std::string& body) {
    zmq_send(socket_, secret_.data(), secret_.size(), ZMQ_SNDMORE);
    zmq_send(socket_, body.data(), body.size(), 0);
  }

  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }

  // The I/O thread.
  void Io() {
    auto last_beat = Clock::now();
    auto last_heard = Clock::now();
    std::vector<json> results;
    std::vector<int64_t> started;
    while (true) {
      {
        std::lock_guard lock(mutex_);
        results.swap(results_);
        started.swap(started_);
      }
      for (int64_t id : started) Send(json{{"t", "started"}, {"id", id}}.dump());
      started.clear();
      if (!results.empty()) {
        json body = {{"t", "results"}, {"items", std::move(results)}};
        results = {};
        Send(body.dump());
      }
      if (io_stop_) return;
      const auto now = Clock::now();
      if (now - last_beat >= options_.heartbeat_interval) {
        last_beat = now;
        Send(json{{"t", "beat"},
                  {"live_comms", live_comms_.load()},
                  {"fds", CountOpenFds()},
                  {"rss_kb", ResidentKb()},
                  {"done", done_.load()}}
                 .dump());
      }
      if (now - last_heard > options_.heartbeat_timeout) {
        // The master (the agent) is gone: nobody will collect results or stop this rank.
        std::fprintf(stderr, "deeprc-worker: rank %d: no word from the master for %lld ms\n", rank_,
                     static_cast<long long>(options_.heartbeat_timeout.count()));
        std::fflush(stderr);
        std::_Exit(3);
      }
      zmq_pollitem_t items[2] = {{socket_, 0, ZMQ_POLLIN, 0}, {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          last_beat + options_.heartbeat_interval - Clock::now());
      zmq_poll(items, 2, std::max<long>(1, static_cast<long>(wait.count())));
      if (items[1].revents & ZMQ_POLLIN) {
        uint64_t count;
        (void)!::read(wake_fd_, &count, sizeof(count));
      }
      if (items[0].revents & ZMQ_POLLIN) {
        while (ReceiveOne()) last_heard = Clock::now();
      }
    }
  }

  // One message from the master, without blocking; false when there was none.
  bool ReceiveOne() {
    zmq_msg_t key, body;
    zmq_msg_init(&key);
    if (zmq_msg_recv(&key, socket_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&key);
      return false;
    }
    int more = 0;
    size_t more_size = sizeof(more);
    zmq_getsockopt(socket_, ZMQ_RCVMORE, &more, &more_size);
    if (!more) {
      zmq_msg_close(&key);
      return true;
    }
    zmq_msg_init(&body);
    zmq_msg_recv(&body, socket_, 0);
    zmq_getsockopt(socket_, ZMQ_RCVMORE, &more, &more_size);
    while (more) {  // a malformed message: drop what follows
      zmq_msg_t rest;
      zmq_msg_init(&rest);
      zmq_msg_recv(&rest, socket_, 0);
      zmq_getsockopt(socket_, ZMQ_RCVMORE, &more, &more_size);
      zmq_msg_close(&rest);
    }
    const bool authentic = internal::ConstantTimeEqual(
        std::string_view(static_cast<const char*>(zmq_msg_data(&key)), zmq_msg_size(&key)),
        secret_);
    if (authentic) {
      OnMessage(
          std::string_view(static_cast<const char*>(zmq_msg_data(&body)), zmq_msg_size(&body)));
    }
    zmq_msg_close(&key);
    zmq_msg_close(&body);
    return true;
  }

  void OnMessage(std::string_view text) {
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return;
    const std::string type = body.value("t", "");
    if (type == "run") {
      std::deque<Assignment> incoming;
      for (json& item : body["items"]) {
        Assignment assignment;
        assignment.id = item.value("id", int64_t{0});
        assignment.uid = item.value("uid", "");
        assignment.function = item.value("fn", "");
        assignment.args = std::move(item["args"]);
        assignment.ranks = item["ranks"].get<std::vector<int32_t>>();
        assignment.tag = item.value("tag", 0);
        assignment.timed = item.value("timed", false);
        assignment.sandbox = item.value("sandbox", "");
        incoming.push_back(std::move(assignment));
      }
      {
        std::lock_guard lock(mutex_);
        for (Assignment& assignment : incoming) queue_.push_back(std::move(assignment));
      }
      ready_.notify_one();
    } else if (type == "cancel") {
      std::lock_guard lock(mutex_);
      for (const auto& id : body["ids"]) {
        const int64_t value = id.get<int64_t>();
        if (value == current_) cancel_ = true;
        canceled_.push_back(value);  // also when it is still queued
      }
    } else if (type == "stop") {
      {
        std::lock_guard lock(mutex_);
        stopping_ = true;
      }
      ready_.notify_one();
    }
  }

  // The main thread.
  void Execute() {
    while (true) {
      Assignment assignment;
      bool canceled_before = false;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        assignment = std::move(queue_.front());
        queue_.pop_front();
        canceled_before =
            std::find(canceled_.begin(), canceled_.end(), assignment.id) != canceled_.end();
        current_ = assignment.id;
        cancel_ = canceled_before;
        if (assignment.timed) started_.push_back(assignment.id);
      }
      if (assignment.timed) Wake();
      json result = Run(assignment);
      bool first;
      {
        std::lock_guard lock(mutex_);
        current_ = -1;
        std::erase(canceled_, assignment.id);
        first = results_.empty();
        results_.push_back(std::move(result));
      }
      ++done_;
      // The I/O thread takes every result there is when it wakes: one wake-up per batch.
      if (first) Wake();
    }
    io_stop_ = true;
    Wake();
  }

  json Run(const Assignment& assignment) {
    json result = {{"id", assignment.id}};
    const TaskFunction* function = registry_.Find(assignment.function);
    if (function == nullptr) {
      // The master checks names; a rank without the function must still take part in nothing.
      result["ok"] = false;
      result["error"] = fmt::format("function '{}' is not registered", assignment.function);
      return result;
    }
    MPI_Comm task_comm = MPI_COMM_SELF;
    std::unique_ptr<comm::Communicator> owned;
    comm::Communicator* communicator = nullptr;
    if (assignment.ranks.size() == 1) {
      // One communicator over this rank alone serves every one-rank task (a fresh one would
      // cost an MPI_Comm_dup per task).
      if (self_ == nullptr) {
        auto made = comm::MakeMpiCommunicator(MPI_COMM_SELF);
        if (!made.ok()) {
          result["ok"] = false;
          result["error"] = made.status().message();
          return result;
        }
        self_ = made.MoveValueUnsafe();
      }
      communicator = self_.get();
    } else {
      MPI_Group group;
      MPI_Group_incl(world_group_, static_cast<int>(assignment.ranks.size()),
                     assignment.ranks.data(), &group);
      const int rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, assignment.tag, &task_comm);
      MPI_Group_free(&group);
      if (rc != MPI_SUCCESS || task_comm == MPI_COMM_NULL) {
        result["ok"] = false;
        result["error"] = "MPI_Comm_create_group failed";
        return result;
      }
      ++live_comms_;
      auto made = comm::MakeMpiCommunicator(task_comm);
      if (made.ok()) {
        owned = made.MoveValueUnsafe();
        communicator = owned.get();
      } else {
        result["ok"] = false;
        result["error"] = made.status().message();
      }
    }
    {
      if (communicator != nullptr) {
        TaskContext context(*communicator, assignment.uid, assignment.args, options_.session_dir,
                            assignment.sandbox, gpus_, cancel_);
        Result<json> value = Status::Internal("not run");
        // Exceptions stop here: the task fails with the message, the rank carries on.
        try {
          value = (*function)(context);
        } catch (const std::exception& error) {
          value = Status::Invalid("{}", error.what());
        } catch (...) {
          value = Status::Invalid("unknown exception");
        }
        if (value.ok()) {
          result["ok"] = true;
          if (!value->is_null()) result["value"] = std::move(*value);
        } else {
          result["ok"] = false;
          result["error"] = value.status().message();
          if (cancel_) result["canceled"] = true;
        }
        std::string out = context.out().str();
        std::string err = context.err().str();
        if (!out.empty()) result["out"] = std::move(out);
        if (!err.empty()) result["err"] = std::move(err);
      }
    }
    owned.reset();
    if (task_comm != MPI_COMM_SELF) {
      MPI_Comm_free(&task_comm);
      --live_comms_;
    }
    return result;
  }

  const WorkerOptions& options_;
  int rank_ = 0;
  int size_ = 1;
  MPI_Group world_group_;
  std::string secret_;
  FunctionRegistry registry_;
  std::unique_ptr<comm::Communicator> self_;
  std::vector<int32_t> gpus_ = VisibleGpus();
  void* context_ = nullptr;
  void* socket_ = nullptr;
  int wake_fd_ = -1;
  int exit_status_ = 0;
  std::atomic<bool> io_stop_{false};
  std::atomic<int64_t> live_comms_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<bool> cancel_{false};

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Assignment> queue_;
  std::vector<int64_t> canceled_;
  std::vector<int64_t> started_;
  std::vector<json> results_;
  int64_t current_ = -1;
  bool stopping_ = false;
};

}  // namespace

int RunWorker(const WorkerOptions& options) {
  Worker worker(options);
  return worker.Run();
}

}  // namespace deeprc::runtime
