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

Status CheckAllToAllV(int rank, int ranks, Bytes send, std::span<const int64_t> send_counts,
                      std::span<const int64_t> send_offsets, std::span<uint8_t> receive,
                      std::span<const int64_t> receive_counts,
                      std::span<const int64_t> receive_offsets) {
  const auto expected = static_cast<size_t>(ranks);
  if (send_counts.size() != expected || send_offsets.size() != expected ||
      receive_counts.size() != expected || receive_offsets.size() != expected) {
    return Status::Invalid(
        "all-to-all-v: {} send counts, {} send offsets, {} receive counts, {} receive offsets "
        "for {} ranks",
        send_counts.size(), send_offsets.size(), receive_counts.size(), receive_offsets.size(),
        ranks);
  }
  for (int peer = 0; peer < ranks; ++peer) {
    const int64_t out = send_counts[peer];
    const int64_t out_at = send_offsets[peer];
    if (out < 0 || out_at < 0 || out_at > std::ssize(send) || out > std::ssize(send) - out_at) {
      return Status::Invalid("all-to-all-v: piece for rank {} ({} bytes at {}) outside the {} "
                             "send bytes",
                             peer, out, out_at, send.size());
    }
    const int64_t in = receive_counts[peer];
    const int64_t in_at = receive_offsets[peer];
    if (in < 0 || in_at < 0 || in_at > std::ssize(receive) || in > std::ssize(receive) - in_at) {
      return Status::Invalid("all-to-all-v: piece from rank {} ({} bytes at {}) outside the {} "
                             "receive bytes",
                             peer, in, in_at, receive.size());
    }
  }
  if (send_counts[rank] != receive_counts[rank]) {
    return Status::Invalid("all-to-all-v: rank {} sends itself {} bytes but expects {}", rank,
                           send_counts[rank], receive_counts[rank]);
  }
  return Status::OK();
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
  Status AllToAllV(Bytes send, std::span<const int64_t> send_counts,
                   std::span<const int64_t> send_offsets, std::span<uint8_t> receive,
                   std::span<const int64_t> receive_counts,
                   std::span<const int64_t> receive_offsets) override {
    DEEPRC_RETURN_NOT_OK(CheckAllToAllV(0, 1, send, send_counts, send_offsets, receive,
                                        receive_counts, receive_offsets));
    if (send_counts[0] > 0) {
      std::memmove(receive.data() + receive_offsets[0], send.data() + send_offsets[0],
                   static_cast<size_t>(send_counts[0]));
    }
    return Status::OK();
  }
  using Communicator::AllToAllV;
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
