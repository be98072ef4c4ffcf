#include "deeprc/comm/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace deeprc::comm {
namespace {

// MPI counts are `int`: larger transfers go in pieces of this many bytes.
constexpr int64_t kPieceBytes = int64_t{1} << 30;

Status MpiError(int code, std::string_view what) {
  if (code == MPI_SUCCESS) return Status::OK();
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  return Status::IOError("MPI {} failed: {}", what, std::string_view(text, length));
}

#define DEEPRC_MPI(call, what) DEEPRC_RETURN_NOT_OK(MpiError((call), (what)))

int PieceCount(int64_t bytes) {
  return static_cast<int>(std::max<int64_t>(1, (bytes + kPieceBytes - 1) / kPieceBytes));
}
int PieceSize(int64_t bytes, int piece) {
  return static_cast<int>(std::min(kPieceBytes, bytes - piece * kPieceBytes));
}

// Non-blocking point-to-point transfers of any size, waited for together.
class Transfers {
 public:
  explicit Transfers(MPI_Comm comm) : comm_(comm) {}

  Status Send(int peer, int tag, const uint8_t* data, int64_t bytes) {
    if (bytes == 0) return Status::OK();
    for (int piece = 0; piece < PieceCount(bytes); ++piece) {
      requests_.emplace_back();
      DEEPRC_MPI(MPI_Isend(data + piece * kPieceBytes, PieceSize(bytes, piece), MPI_BYTE, peer,
                           tag, comm_, &requests_.back()),
                 "Isend");
    }
    return Status::OK();
  }
  Status Receive(int peer, int tag, uint8_t* data, int64_t bytes) {
    if (bytes == 0) return Status::OK();
    for (int piece = 0; piece < PieceCount(bytes); ++piece) {
      requests_.emplace_back();
      DEEPRC_MPI(MPI_Irecv(data + piece * kPieceBytes, PieceSize(bytes, piece), MPI_BYTE, peer,
                           tag, comm_, &requests_.back()),
                 "Irecv");
    }
    return Status::OK();
  }
  Status WaitAll() {
    const int code = MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(),
                                 MPI_STATUSES_IGNORE);
    requests_.clear();
    return MpiError(code, "Waitall");
  }

 private:
  MPI_Comm comm_;
  std::vector<MPI_Request> requests_;
};

template <typename T>
MPI_Datatype MpiType();
template <>
MPI_Datatype MpiType<int64_t>() {
  return MPI_INT64_T;
}
template <>
MPI_Datatype MpiType<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype MpiType<float>() {
  return MPI_FLOAT;
}

MPI_Op MpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
  }
  return MPI_SUM;
}

class MpiCommunicator final : public Communicator {
 public:
  // `user` is the caller's communicator (point-to-point with the caller's tags); collectives run
  // on a private duplicate so that their messages never meet the caller's.
  MpiCommunicator(MPI_Comm user, MPI_Comm internal, int rank, int size)
      : user_(user), internal_(internal), rank_(rank), size_(size) {}

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    (void)ReapSends(true);
    MPI_Comm_free(&internal_);
  }

  Backend backend() const override { return Backend::kMpi; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status Barrier() override {
    DEEPRC_RETURN_NOT_OK(ReapSends(false));
    return MpiError(MPI_Barrier(internal_), "Barrier");
  }

  // Buffered: the bytes are copied and sent in the background, so that Send returns without
  // waiting for the receiver (a ring of sends before receives, or a send to oneself, cannot
  // deadlock). Finished sends are reaped on every later call.
  Status Send(int destination, int tag, Bytes data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(destination, tag));
    DEEPRC_RETURN_NOT_OK(ReapSends(false));
    auto pending = std::make_unique<PendingSend>();
    pending->bytes = std::ssize(data);
    DEEPRC_ASSIGN_OR_RAISE(pending->copy, Buffer::CopyOf(data.data(), pending->bytes));
    pending->requests.emplace_back();
    DEEPRC_MPI(MPI_Isend(&pending->bytes, 1, MPI_INT64_T, destination, tag, user_,
                         &pending->requests.back()),
               "Isend");
    for (int piece = 0; pending->bytes > 0 && piece < PieceCount(pending->bytes); ++piece) {
      pending->requests.emplace_back();
      DEEPRC_MPI(MPI_Isend(pending->copy->data() + piece * kPieceBytes,
                           PieceSize(pending->bytes, piece), MPI_BYTE, destination, tag, user_,
                           &pending->requests.back()),
                 "Isend");
    }
    sends_.push_back(std::move(pending));
    return Status::OK();
  }

  Result<BufferPtr> Receive(int source, int tag) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(source, tag));
    DEEPRC_RETURN_NOT_OK(ReapSends(false));
    int64_t bytes = 0;
    DEEPRC_MPI(MPI_Recv(&bytes, 1, MPI_INT64_T, source, tag, user_, MPI_STATUS_IGNORE), "Recv");
    if (bytes < 0) return Status::IOError("MPI Recv: rank {} announced {} bytes", source, bytes);
    DEEPRC_ASSIGN_OR_RAISE(auto buffer, Buffer::Allocate(bytes));
    Transfers transfers(user_);
    DEEPRC_RETURN_NOT_OK(transfers.Receive(source, tag, buffer->mutable_data(), bytes));
    DEEPRC_RETURN_NOT_OK(transfers.WaitAll());
    return buffer;
  }

  Status Broadcast(int root, BufferPtr* data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(root, 0));
    int64_t bytes = rank_ == root ? (*data == nullptr ? 0 : (*data)->size()) : 0;
    DEEPRC_MPI(MPI_Bcast(&bytes, 1, MPI_INT64_T, root, internal_), "Bcast");
    if (rank_ != root) {
      DEEPRC_ASSIGN_OR_RAISE(*data, Buffer::Allocate(bytes));
    }
    uint8_t* base = (*data)->mutable_data();
    for (int64_t done = 0; done < bytes; done += kPieceBytes) {
      const int piece = static_cast<int>(std::min(kPieceBytes, bytes - done));
      DEEPRC_MPI(MPI_Bcast(base + done, piece, MPI_BYTE, root, internal_), "Bcast");
    }
    return Status::OK();
  }

  Result<std::vector<BufferPtr>> Gather(int root, Bytes data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer(root, 0));
    const int64_t bytes = std::ssize(data);
    std::vector<int64_t> sizes(rank_ == root ? size_ : 0);
    DEEPRC_MPI(MPI_Gather(&bytes, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, root, internal_),
               "Gather");
    Transfers transfers(internal_);
    std::vector<BufferPtr> received;
    if (rank_ == root) {
      received.resize(size_);
      for (int source = 0; source < size_; ++source) {
        DEEPRC_ASSIGN_OR_RAISE(received[source], Buffer::Allocate(sizes[source]));
        if (source == rank_) {
          if (bytes > 0) std::memcpy(received[source]->mutable_data(), data.data(), bytes);
        } else {
          DEEPRC_RETURN_NOT_OK(transfers.Receive(source, kGatherTag,
                                                 received[source]->mutable_data(),
                                                 sizes[source]));
        }
      }
    } else {
      DEEPRC_RETURN_NOT_OK(transfers.Send(root, kGatherTag, data.data(), bytes));
    }
    DEEPRC_RETURN_NOT_OK(transfers.WaitAll());
    return received;
  }

  Result<std::vector<BufferPtr>> AllGather(Bytes data) override {
    const int64_t bytes = std::ssize(data);
    std::vector<int64_t> sizes(size_);
    DEEPRC_MPI(MPI_Allgather(&bytes, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, internal_),
               "Allgather");
    std::vector<Bytes> sends(size_, data);
    return Exchange(sends, sizes, kAllGatherTag);
  }

  Result<std::vector<BufferPtr>> AllToAll(const std::vector<Bytes>& send) override {
    if (std::ssize(send) != size_) {
      return Status::Invalid("all-to-all: {} parts for {} ranks", send.size(), size_);
    }
    std::vector<int64_t> send_sizes(size_);
    for (int peer = 0; peer < size_; ++peer) send_sizes[peer] = std::ssize(send[peer]);
    std::vector<int64_t> receive_sizes(size_);
    DEEPRC_MPI(MPI_Alltoall(send_sizes.data(), 1, MPI_INT64_T, receive_sizes.data(), 1,
                            MPI_INT64_T, internal_),
               "Alltoall");
    return Exchange(send, receive_sizes, kAllToAllTag);
  }

  // MPI_Alltoallv when every count and offset fits its `int`; else pairwise non-blocking
  // transfers in pieces of at most 1 GiB.
  Status AllToAllV(Bytes send, std::span<const int64_t> send_counts,
                   std::span<const int64_t> send_offsets, std::span<uint8_t> receive,
                   std::span<const int64_t> receive_counts,
                   std::span<const int64_t> receive_offsets) override {
    DEEPRC_RETURN_NOT_OK(CheckAllToAllV(rank_, size_, send, send_counts, send_offsets, receive,
                                        receive_counts, receive_offsets));
    auto fits = [](std::span<const int64_t> values) {
      return std::all_of(values.begin(), values.end(), [](int64_t v) { return v <= INT_MAX; });
    };
    if (fits(send_counts) && fits(send_offsets) && fits(receive_counts) &&
        fits(receive_offsets)) {
      std::vector<int> counts(size_ * 4);
      for (int peer = 0; peer < size_; ++peer) {
        counts[peer] = static_cast<int>(send_counts[peer]);
        counts[size_ + peer] = static_cast<int>(send_offsets[peer]);
        counts[2 * size_ + peer] = static_cast<int>(receive_counts[peer]);
        counts[3 * size_ + peer] = static_cast<int>(receive_offsets[peer]);
      }
      // MPI reads no byte of an empty buffer, but wants a valid pointer.
      static uint8_t empty = 0;
      const uint8_t* out = send.empty() ? &empty : send.data();
      uint8_t* in = receive.empty() ? &empty : receive.data();
      return MpiError(MPI_Alltoallv(out, counts.data(), counts.data() + size_, MPI_BYTE, in,
                                    counts.data() + 2 * size_, counts.data() + 3 * size_,
                                    MPI_BYTE, internal_),
                      "Alltoallv");
    }
    Transfers transfers(internal_);
    for (int step = 1; step < size_; ++step) {
      const int source = (rank_ - step + size_) % size_;
      DEEPRC_RETURN_NOT_OK(transfers.Receive(source, kAllToAllVTag,
                                             receive.data() + receive_offsets[source],
                                             receive_counts[source]));
    }
    for (int step = 1; step < size_; ++step) {
      const int destination = (rank_ + step) % size_;
      DEEPRC_RETURN_NOT_OK(transfers.Send(destination, kAllToAllVTag,
                                          send.data() + send_offsets[destination],
                                          send_counts[destination]));
    }
    if (send_counts[rank_] > 0) {
      std::memmove(receive.data() + receive_offsets[rank_], send.data() + send_offsets[rank_],
                   static_cast<size_t>(send_counts[rank_]));
    }
    return transfers.WaitAll();
  }

  // Every part's pieces as pairwise non-blocking transfers, one wait for all. Pieces between a
  // pair of ranks share one tag: MPI matches them in the order both sides post them.
  Status AllToAllV(std::span<const AllToAllVPart> parts) override {
    for (const AllToAllVPart& part : parts) {
      DEEPRC_RETURN_NOT_OK(CheckAllToAllV(rank_, size_, part.send, part.send_counts,
                                          part.send_offsets, part.receive, part.receive_counts,
                                          part.receive_offsets));
    }
    Transfers transfers(internal_);
    for (const AllToAllVPart& part : parts) {
      for (int step = 1; step < size_; ++step) {
        const int source = (rank_ - step + size_) % size_;
        DEEPRC_RETURN_NOT_OK(transfers.Receive(source, kAllToAllVTag,
                                               part.receive.data() + part.receive_offsets[source],
                                               part.receive_counts[source]));
      }
    }
    for (const AllToAllVPart& part : parts) {
      for (int step = 1; step < size_; ++step) {
        const int destination = (rank_ + step) % size_;
        DEEPRC_RETURN_NOT_OK(transfers.Send(destination, kAllToAllVTag,
                                            part.send.data() + part.send_offsets[destination],
                                            part.send_counts[destination]));
      }
    }
    for (const AllToAllVPart& part : parts) {
      if (part.send_counts[rank_] > 0) {
        std::memmove(part.receive.data() + part.receive_offsets[rank_],
                     part.send.data() + part.send_offsets[rank_],
                     static_cast<size_t>(part.send_counts[rank_]));
      }
    }
    return transfers.WaitAll();
  }
  using Communicator::AllToAllV;

  Status AllReduce(std::span<int64_t> values, ReduceOp op) override { return Reduce(values, op); }
  Status AllReduce(std::span<double> values, ReduceOp op) override { return Reduce(values, op); }
  Status AllReduce(std::span<float> values, ReduceOp op) override { return Reduce(values, op); }

  [[noreturn]] void Abort(int exit_code, std::string_view reason) override {
    std::fprintf(stderr, "deeprc: rank %d aborts the job: %.*s\n", rank_,
                 static_cast<int>(reason.size()), reason.data());
    std::fflush(nullptr);
    MPI_Abort(user_, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
  }

 private:
  struct PendingSend {
    int64_t bytes = 0;  // the size message
    BufferPtr copy;
    std::vector<MPI_Request> requests;
  };

  // Frees the buffers of finished sends; with `wait`, waits for all of them first.
  Status ReapSends(bool wait) {
    Status status;
    std::erase_if(sends_, [&](const std::unique_ptr<PendingSend>& pending) {
      int done = 0;
      auto& requests = pending->requests;
      const int count = static_cast<int>(requests.size());
      const int code = wait ? MPI_Waitall(count, requests.data(), MPI_STATUSES_IGNORE)
                            : MPI_Testall(count, requests.data(), &done, MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS) {
        if (status.ok()) status = MpiError(code, "Isend");
        return true;
      }
      return wait || done != 0;
    });
    return status;
  }

  static constexpr int kGatherTag = 1;
  static constexpr int kAllGatherTag = 2;
  static constexpr int kAllToAllTag = 3;
  static constexpr int kAllToAllVTag = 4;

  Status CheckPeer(int peer, int tag) const {
    if (peer < 0 || peer >= size_) {
      return Status::Invalid("rank {} does not exist ({} ranks)", peer, size_);
    }
    if (tag < 0 || tag >= kMaxTag) return Status::Invalid("tag {} out of range", tag);
    return Status::OK();
  }

  // send[d] to rank d, receive_sizes[s] bytes from rank s; one buffer per source. Receives are
  // posted first, then sends in a rotating order so that ranks do not all target rank 0 at once.
  Result<std::vector<BufferPtr>> Exchange(const std::vector<Bytes>& send,
                                          const std::vector<int64_t>& receive_sizes, int tag) {
    std::vector<BufferPtr> received(size_);
    Transfers transfers(internal_);
    for (int step = 0; step < size_; ++step) {
      const int source = (rank_ - step + size_) % size_;
      DEEPRC_ASSIGN_OR_RAISE(received[source], Buffer::Allocate(receive_sizes[source]));
      if (source != rank_) {
        DEEPRC_RETURN_NOT_OK(transfers.Receive(source, tag, received[source]->mutable_data(),
                                               receive_sizes[source]));
      }
    }
    for (int step = 1; step < size_; ++step) {
      const int destination = (rank_ + step) % size_;
      DEEPRC_RETURN_NOT_OK(transfers.Send(destination, tag, send[destination].data(),
                                          std::ssize(send[destination])));
    }
    if (!send[rank_].empty()) {
      std::memcpy(received[rank_]->mutable_data(), send[rank_].data(), send[rank_].size());
    }
    DEEPRC_RETURN_NOT_OK(transfers.WaitAll());
    return received;
  }

  template <typename T>
  Status Reduce(std::span<T> values, ReduceOp op) {
    for (size_t done = 0; done < values.size(); done += INT_MAX) {
      const int count = static_cast<int>(std::min<size_t>(INT_MAX, values.size() - done));
      DEEPRC_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data() + done, count, MpiType<T>(), MpiOp(op),
                               internal_),
                 "Allreduce");
    }
    return Status::OK();
  }

  MPI_Comm user_;
  MPI_Comm internal_;
  std::vector<std::unique_ptr<PendingSend>> sends_;
  int rank_;
  int size_;
};

void FinalizeAtExit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace

Result<std::unique_ptr<Communicator>> MakeMpiCommunicator(MPI_Comm comm) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return Status::Invalid("MPI is not initialized");
  int provided = 0;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_SERIALIZED) {
    return Status::Invalid(
        "MPI was initialized without MPI_THREAD_SERIALIZED (the shuffle communicates from a "
        "thread other than the one that initialized MPI)");
  }
  int rank = 0;
  int size = 0;
  DEEPRC_MPI(MPI_Comm_rank(comm, &rank), "Comm_rank");
  DEEPRC_MPI(MPI_Comm_size(comm, &size), "Comm_size");
  MPI_Comm internal = MPI_COMM_NULL;
  DEEPRC_MPI(MPI_Comm_dup(comm, &internal), "Comm_dup");
  // Errors come back as codes (turned into Status) instead of ending the job.
  MPI_Comm_set_errhandler(internal, MPI_ERRORS_RETURN);
  int* tag_upper_bound = nullptr;
  int found = 0;
  MPI_Comm_get_attr(comm, MPI_TAG_UB, &tag_upper_bound, &found);
  if (found && *tag_upper_bound < Communicator::kMaxTag - 1) {
    MPI_Comm_free(&internal);
    return Status::NotImplemented("this MPI allows tags up to {}, deeprc needs {}",
                                  *tag_upper_bound, Communicator::kMaxTag - 1);
  }
  return std::unique_ptr<Communicator>(
      std::make_unique<MpiCommunicator>(comm, internal, rank, size));
}

Result<std::unique_ptr<Communicator>> MakeMpiWorldCommunicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    DEEPRC_MPI(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "Init");
    std::atexit(FinalizeAtExit);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return MakeMpiCommunicator(MPI_COMM_WORLD);
}

}  // namespace deeprc::comm
