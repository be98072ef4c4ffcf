#pragma once

// A communicator joins the ranks of one data-parallel job: every rank holds a partition of a
// distributed table, and the `dist` operators move rows between them through this interface.
//
// Backends, chosen at run time (`MakeCommunicator`):
//   single  one rank, no launcher needed (every program runs without mpirun)
//   mpi     wraps an MPI communicator (MPI_COMM_WORLD, or a sub-communicator the runtime hands a
//           task): comm/mpi_communicator.h
//   gloo    Gloo over TCP with a file-store rendezvous, for machines without an MPI launcher:
//           comm/gloo_communicator.h
//
// Rules every backend keeps:
//   - Sizes are 64-bit everywhere: a message or a collective may move more than 2 GiB (backends
//     whose native calls take `int` counts split the transfer).
//   - Collectives are called by every rank in the same order; point-to-point messages between a
//     pair of ranks with the same tag arrive in the order they were sent.
//   - Received bytes land in buffers from the counting memory pool (`Buffer`), so that a table
//     deserialized from them can keep them without a copy.
//   - One thread at a time calls a given communicator (the shuffle keeps its communication on one
//     thread while others partition).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/core/status.h"
#include "deeprc/table/buffer.h"

namespace deeprc::comm {

enum class Backend : uint8_t { kSingle, kMpi, kGloo };

// "single", "mpi", "gloo".
std::string_view BackendName(Backend backend);
Result<Backend> ParseBackend(std::string_view text);

enum class ReduceOp : uint8_t { kSum, kMin, kMax };

using Bytes = std::span<const uint8_t>;
using BufferPtr = std::shared_ptr<Buffer>;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual Backend backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  virtual Status Barrier() = 0;

  // Point-to-point. `tag` must be >= 0 and below kMaxTag.
  static constexpr int kMaxTag = 1 << 20;
  virtual Status Send(int destination, int tag, Bytes data) = 0;
  virtual Result<BufferPtr> Receive(int source, int tag) = 0;

  // `data` on the root goes to every rank; on the others it is replaced by the root's bytes.
  virtual Status Broadcast(int root, BufferPtr* data) = 0;

  // The root gets one buffer per rank (index = source rank); the others get an empty vector.
  virtual Result<std::vector<BufferPtr>> Gather(int root, Bytes data) = 0;

  // Every rank gets one buffer per rank (index = source rank). Sizes may differ per rank.
  virtual Result<std::vector<BufferPtr>> AllGather(Bytes data) = 0;

  // `send[d]` goes to rank d (send.size() == size()); the result's entry s came from rank s.
  // Sizes may differ per pair and be zero.
  virtual Result<std::vector<BufferPtr>> AllToAll(const std::vector<Bytes>& send) = 0;

  // Variable all-to-all into the caller's memory: bytes [send_offsets[d], + send_counts[d]) of
  // `send` go to rank d and land at [receive_offsets[s], + receive_counts[s]) of `receive` on
  // the receiver, for the piece from rank s. Every rank passes size() counts and offsets; the
  // receiver's count for s must equal what s sends it (the caller's protocol agrees on them, e.g.
  // through a small all-to-all of counts first). Sizes and offsets are 64-bit; nothing is
  // allocated, so received bytes can land directly in their final buffers.
  virtual Status AllToAllV(Bytes send, std::span<const int64_t> send_counts,
                           std::span<const int64_t> send_offsets, std::span<uint8_t> receive,
                           std::span<const int64_t> receive_counts,
                           std::span<const int64_t> receive_offsets) = 0;

  // Several AllToAllV at once (every rank passes the same number of parts, in the same order):
  // all transfers are posted together and waited for once, so a table's column buffers travel
  // with one synchronization instead of one per buffer. The default runs them one after another.
  struct AllToAllVPart {
    Bytes send;
    std::span<const int64_t> send_counts;
    std::span<const int64_t> send_offsets;
    std::span<uint8_t> receive;
    std::span<const int64_t> receive_counts;
    std::span<const int64_t> receive_offsets;
  };
  virtual Status AllToAllV(std::span<const AllToAllVPart> parts) {
    for (const AllToAllVPart& part : parts) {
      DEEPRC_RETURN_NOT_OK(AllToAllV(part.send, part.send_counts, part.send_offsets, part.receive,
                                     part.receive_counts, part.receive_offsets));
    }
    return Status::OK();
  }

  // Element-wise reduction over all ranks, in place; every rank passes the same count.
  virtual Status AllReduce(std::span<int64_t> values, ReduceOp op) = 0;
  virtual Status AllReduce(std::span<double> values, ReduceOp op) = 0;
  virtual Status AllReduce(std::span<float> values, ReduceOp op) = 0;

  // Ends the whole job (every rank) with `exit_code` after printing `reason`: for a rank that
  // cannot go on while the others wait in a collective. Does not return.
  [[noreturn]] virtual void Abort(int exit_code, std::string_view reason) = 0;
};

// The checks every backend's AllToAllV makes before moving a byte: `ranks` counts and offsets
// on each side, none negative, every piece inside its span, this rank's piece the same size on
// both sides.
Status CheckAllToAllV(int rank, int ranks, Bytes send, std::span<const int64_t> send_counts,
                      std::span<const int64_t> send_offsets, std::span<uint8_t> receive,
                      std::span<const int64_t> receive_counts,
                      std::span<const int64_t> receive_offsets);

// One rank, no launcher. Send/Receive to rank 0 (itself) queue the bytes.
std::unique_ptr<Communicator> MakeSingleCommunicator();

// The backend named by DEEPRC_COMM ("single", "mpi", "gloo"); when it is unset: mpi when the
// process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK set), else
// single. The mpi backend wraps MPI_COMM_WORLD (initializing MPI if needed, finalized at exit);
// gloo reads DEEPRC_RANK, DEEPRC_WORLD_SIZE and DEEPRC_GLOO_STORE (see gloo_communicator.h).
Result<std::unique_ptr<Communicator>> MakeCommunicator();
Result<std::unique_ptr<Communicator>> MakeCommunicator(Backend backend);

// Convenience for the collectives above on numbers.
template <typename T>
Result<T> AllReduceValue(Communicator& comm, T value, ReduceOp op) {
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<T>(&value, 1), op));
  return value;
}

}  // namespace deeprc::comm
