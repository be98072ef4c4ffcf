// One rank of a worker pool (the `deeprc-worker` program): the wire is described in master.cpp.
//
// Two threads, each with its own ZeroMQ socket (a socket belongs to one thread). The main thread
// owns the work socket (routing id "<generation>.<rank>.w"): it receives the assignments there,
// runs them in order and, when it has nothing left to run, sends the results itself — the round
// trip of a lone task passes no thread of this process but the one that runs it. While it has
// more to run, its results and `started` reports wait in a shared list and the I/O thread sends
// them (all that are ready, in one message per wake-up). The I/O thread owns the control socket
// ("<generation>.<rank>"): hello, heartbeats both ways, cancels, stop. The main thread is the
// only one that calls MPI (MPI_THREAD_SERIALIZED is enough): for a k-rank task it builds the
// task's communicator with MPI_Comm_create_group over the chosen world ranks (a tag unique to
// the task), runs the function, and frees the communicator; a one-rank task runs on
// MPI_COMM_SELF.
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
  // The master did not see it start at once (it was queued behind others): report the start,
  // with the next results (a short task) or at once (`report_now`: a long or unknown one).
  bool report = false;
  bool report_now = false;
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
    const std::string identity = fmt::format("{}.{}", options_.generation, rank_);
    socket_ = Connect(identity);
    work_ = Connect(identity + ".w");
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    work_wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    json hello = {{"t", "hello"},      {"rank", rank_}, {"size", size_},
                  {"pid", ::getpid()}, {"node", host},  {"functions", registry_.Names()}};
    if (!error.empty()) hello["error"] = error;
    Send(socket_, hello.dump());
    // The master learns the work socket's routing id from its first message.
    Send(work_, R"({"t":"work"})");

    std::thread io([this] { Io(); });
    Execute();
    io.join();
    zmq_close(work_);
    zmq_close(socket_);
    zmq_ctx_term(context_);
    ::close(wake_fd_);
    ::close(work_wake_fd_);
    MPI_Group_free(&world_group_);
    self_.reset();
    if (exit_status_ == 0) MPI_Finalize();
    return exit_status_;
  }

 private:
  void* Connect(const std::string& identity) {
    void* socket = zmq_socket(context_, ZMQ_DEALER);
    zmq_setsockopt(socket, ZMQ_ROUTING_ID, identity.data(), identity.size());
    const int linger = 2000;  // the last results and the goodbye reach the master
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
    const int high_water_mark = 0;
    zmq_setsockopt(socket, ZMQ_SNDHWM, &high_water_mark, sizeof(high_water_mark));
    zmq_setsockopt(socket, ZMQ_RCVHWM, &high_water_mark, sizeof(high_water_mark));
    if (zmq_connect(socket, options_.endpoint.c_str()) != 0) {
      std::fprintf(stderr, "deeprc-worker: connect %s: %s\n", options_.endpoint.c_str(),
                   zmq_strerror(zmq_errno()));
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return socket;
  }

  void Send(void* socket, const std::string& body) {
    zmq_send(socket, secret_.data(), secret_.size(), ZMQ_SNDMORE);
    zmq_send(socket, body.data(), body.size(), 0);
  }

  static void Signal(int fd) {
    const uint64_t one = 1;
    (void)!::write(fd, &one, sizeof(one));
  }
  static void Drain(int fd) {
    uint64_t count;
    (void)!::read(fd, &count, sizeof(count));
  }
  void Wake() { Signal(wake_fd_); }

  // The ready results and start reports as one message (empty when there are none).
  static std::string ResultsBody(std::vector<json>& results, std::vector<int64_t>& started) {
    if (results.empty() && started.empty()) return {};
    json body = {{"t", "results"}, {"items", std::move(results)}};
    if (!started.empty()) body["started"] = std::move(started);
    results = {};
    started.clear();
    return body.dump();
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
        io_woken_ = false;
      }
      if (std::string body = ResultsBody(results, started); !body.empty()) Send(socket_, body);
      if (io_stop_) return;
      const auto now = Clock::now();
      if (now - last_beat >= options_.heartbeat_interval) {
        last_beat = now;
        Send(socket_, json{{"t", "beat"},
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
        while (ReceiveOne(socket_)) last_heard = Clock::now();
      }
    }
  }

  // One message from the master on `socket`, without blocking; false when there was none.
  bool ReceiveOne(void* socket) {
    zmq_msg_t key, body;
    zmq_msg_init(&key);
    if (zmq_msg_recv(&key, socket, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&key);
      return false;
    }
    int more = 0;
    size_t more_size = sizeof(more);
    zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &more_size);
    if (!more) {
      zmq_msg_close(&key);
      return true;
    }
    zmq_msg_init(&body);
    zmq_msg_recv(&body, socket, 0);
    zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &more_size);
    while (more) {  // a malformed message: drop what follows
      zmq_msg_t rest;
      zmq_msg_init(&rest);
      zmq_msg_recv(&rest, socket, 0);
      zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &more_size);
      zmq_msg_close(&rest);
    }
    const bool authentic = internal::ConstantTimeEqual(
        std::string_view(static_cast<const char*>(zmq_msg_data(&key)), zmq_msg_size(&key)),
        secret_);
    if (authentic) {
      OnMessage(
          std::string_view(static_cast<const char*>(zmq_msg_data(&body)), zmq_msg_size(&body)),
          socket == work_);
    }
    zmq_msg_close(&key);
    zmq_msg_close(&body);
    return true;
  }

  // `work`: it came on the work socket (this is the main thread), else on the control socket.
  void OnMessage(std::string_view text, bool work) {
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return;
    const std::string type = body.value("t", "");
    if (type == "run" && work) {
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
        const std::string report = item.value("report", "");
        assignment.report = !report.empty();
        assignment.report_now = report == "now";
        assignment.sandbox = item.value("sandbox", "");
        queue_.push_back(std::move(assignment));  // only the main thread receives `run`
      }
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
      Signal(work_wake_fd_);
    }
  }

  // The main thread.
  void Execute() {
    std::vector<json> results;
    std::vector<int64_t> started;
    while (true) {
      // New assignments are taken when the ones here are done (they keep their order).
      if (queue_.empty()) {
        while (ReceiveOne(work_)) {
        }
      }
      {
        std::lock_guard lock(mutex_);
        if (stopping_) break;
      }
      if (queue_.empty()) {
        // Nothing left to run: what is ready goes now, from this thread (no hand-over).
        {
          std::lock_guard lock(mutex_);
          results.swap(results_);
          started.swap(started_);
          io_woken_ = false;
        }
        if (std::string body = ResultsBody(results, started); !body.empty()) Send(work_, body);
        zmq_pollitem_t items[2] = {{work_, 0, ZMQ_POLLIN, 0},
                                   {nullptr, work_wake_fd_, ZMQ_POLLIN, 0}};
        zmq_poll(items, 2, 200);
        if (items[1].revents & ZMQ_POLLIN) Drain(work_wake_fd_);
        continue;
      }
      Assignment assignment = std::move(queue_.front());
      queue_.pop_front();
      bool wake = false;
      {
        std::lock_guard lock(mutex_);
        const bool canceled_before =
            std::find(canceled_.begin(), canceled_.end(), assignment.id) != canceled_.end();
        current_ = assignment.id;
        cancel_ = canceled_before;
        // Its start is listed in a results message (no message of its own).
        if (assignment.report && !assignment.timed) started_.push_back(assignment.id);
        // What is ready must not wait for this task to end: the I/O thread sends it (one
        // wake-up per batch: it takes everything there is). A short task's start alone waits
        // for its own result.
        wake = !io_woken_ && (!results_.empty() || (assignment.report_now && !started_.empty()));
        if (wake) io_woken_ = true;
      }
      // A timed task's clock starts at its report: that one goes at once.
      if (assignment.timed) Send(work_, json{{"t", "started"}, {"id", assignment.id}}.dump());
      if (wake) Wake();
      json result = Run(assignment);
      {
        std::lock_guard lock(mutex_);
        current_ = -1;
        std::erase(canceled_, assignment.id);
        results_.push_back(std::move(result));
      }
      ++done_;
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
  void* socket_ = nullptr;  // control: the I/O thread's
  void* work_ = nullptr;    // assignments and results: the main thread's
  int wake_fd_ = -1;        // wakes the I/O thread
  int work_wake_fd_ = -1;   // wakes the main thread
  int exit_status_ = 0;
  std::atomic<bool> io_stop_{false};
  std::atomic<int64_t> live_comms_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<bool> cancel_{false};

  std::mutex mutex_;
  std::deque<Assignment> queue_;  // the main thread's
  std::vector<int64_t> canceled_;
  std::vector<int64_t> started_;
  std::vector<json> results_;
  int64_t current_ = -1;
  bool stopping_ = false;
  bool io_woken_ = false;  // the I/O thread was woken for what is in results_ / started_
};

}  // namespace

int RunWorker(const WorkerOptions& options) {
  Worker worker(options);
  return worker.Run();
}

}  // namespace deeprc::runtime
