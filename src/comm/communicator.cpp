#include "deeprc/comm/communicator.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>

#include "deeprc/comm/gloo_communicator.h"
#include "deeprc/comm/mpi_communicator.h"

namespace deeprc::comm {

std::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kSingle:
      return "single";
    case Backend::kMpi:
      return "mpi";
    case Backend::kGloo:
      return "gloo";
  }
  return "unknown";
}

Result<Backend> ParseBackend(std::string_view text) {
  if (text == "single") return Backend::kSingle;
  if (text == "mpi") return Backend::kMpi;
  if (text == "gloo") return Backend::kGloo;
  return Status::Invalid("unknown communicator backend '{}' (expected single, mpi or gloo)", text);
}

namespace {

Result<BufferPtr> Copy(Bytes data) { return Buffer::CopyOf(data.data(), std::ssize(data)); }

// One rank: collectives hand the bytes back; messages to itself wait in a queue per tag.
class SingleCommunicator final : public Communicator {
 public:
  Backend backend() const override { return Backend::kSingle; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Status Barrier() override { return Status::OK(); }

  Status Send(int destination, int tag, Bytes data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(destination, tag));
    DEEPRC_ASSIGN_OR_RAISE(auto copy, Copy(data));
    queued_[tag].push_back(std::move(copy));
    return Status::OK();
  }
  Result<BufferPtr> Receive(int source, int tag) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(source, tag));
    auto found = queued_.find(tag);
    if (found == queued_.end() || found->second.empty()) {
      // Nothing can ever arrive: with one rank, waiting would be forever.
      return Status::Invalid("receive from rank 0 with tag {}: nothing was sent (single rank)",
                             tag);
    }
    BufferPtr message = std::move(found->second.front());
    found->second.pop_front();
    return message;
  }
  Status Broadcast(int root, BufferPtr* data) override { return CheckPeer(root, 0); }
  Result<std::vector<BufferPtr>> Gather(int root, Bytes data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(root, 0));
    DEEPRC_ASSIGN_OR_RAISE(auto copy, Copy(data));
    return std::vector<BufferPtr>{std::move(copy)};
  }
  Result<std::vector<BufferPtr>> AllGather(Bytes data) override { return Gather(0, data); }
  Result<std::vector<BufferPtr>> AllToAll(const std::vector<Bytes>& send) override {
    if (send.size() != 1) {
      return Status::Invalid("all-to-all: {} parts for 1 rank", send.size());
    }
    return Gather(0, send[0]);
  }
  Status AllReduce(std::span<int64_t>, ReduceOp) override { return Status::OK(); }
  Status AllReduce(std::span<double>, ReduceOp) override { return Status::OK(); }
  Status AllReduce(std::span<float>, ReduceOp) override { return Status::OK(); }
  [[noreturn]] void Abort(int exit_code, std::string_view reason) override {
    std::fprintf(stderr, "deeprc: aborting: %.*s\n", static_cast<int>(reason.size()),
                 reason.data());
    std::fflush(nullptr);
    std::_Exit(exit_code);
  }

 private:
  static Status CheckPeer(int peer, int tag) {
    if (peer != 0) return Status::Invalid("rank {} does not exist (single rank)", peer);
    if (tag < 0 || tag >= kMaxTag) return Status::Invalid("tag {} out of range", tag);
    return Status::OK();
  }
  std::map<int, std::deque<BufferPtr>> queued_;
};

bool StartedByMpiLauncher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<Communicator> MakeSingleCommunicator() {
  return std::make_unique<SingleCommunicator>();
}

Result<std::unique_ptr<Communicator>> MakeCommunicator(Backend backend) {
  switch (backend) {
    case Backend::kSingle:
      return MakeSingleCommunicator();
    case Backend::kMpi:
      return MakeMpiWorldCommunicator();
    case Backend::kGloo: {
#ifdef DEEPRC_HAVE_GLOO
      DEEPRC_ASSIGN_OR_RAISE(auto options, GlooOptionsFromEnvironment());
      return MakeGlooCommunicator(options);
#else
      return Status::NotImplemented(
          "this build of deeprc has no Gloo backend (libgloo-dev was not found at build time)");
#endif
    }
  }
  return Status::Internal("unknown backend");
}

Result<std::unique_ptr<Communicator>> MakeCommunicator() {
  const char* named = std::getenv("DEEPRC_COMM");
  if (named != nullptr && *named != '\0') {
    auto backend = ParseBackend(named);
    if (!backend.ok()) return Status::Invalid("DEEPRC_COMM: {}", backend.status().message());
    return MakeCommunicator(*backend);
  }
  return MakeCommunicator(StartedByMpiLauncher() ? Backend::kMpi : Backend::kSingle);
}

}  // namespace deeprc::comm
