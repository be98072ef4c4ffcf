// The Gloo backend (comm/gloo_communicator.h).
//
// Transport: one TCP device per communicator (Gloo runs its own event-loop thread), a full mesh
// of pairs set up through a file store. Everything except Barrier and AllReduce is built on
// Gloo's unbound buffers, which send a byte range to one peer on a numbered "slot":
//   - a message is an 8-byte size followed by the payload, on two slots, so that the receiver
//     can allocate a `Buffer` of the right size and receive into it without a copy;
//   - payloads are moved in chunks of at most 1 GiB (sizes are 64-bit everywhere);
//   - Gloo's unbound-buffer send is a rendezvous (data flows once the receiver has posted its
//     receive), so Send copies the bytes, posts them and returns (as the MPI backend does): a
//     ring of sends before receives cannot deadlock. A thread per communicator waits for these
//     sends to finish and frees their copies; the destructor waits for the last ones.
// Slots: point-to-point messages use (kPointToPoint, tag); every collective takes a fresh
// sequence number (all ranks call collectives in the same order, so the numbers agree) and Gloo's
// own collectives (barrier, allreduce) a fresh tag, so consecutive operations never share a slot.
// Gloo reports errors by exceptions; none leaves this file: transport errors become IOError and
// leave the communicator broken (later calls fail at once with the first error).

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/common/error.h>
#include <gloo/common/logging.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <condition_variable>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <type_traits>

#include "deeprc/comm/gloo_communicator.h"

namespace deeprc::comm {
namespace {

using gloo::transport::UnboundBuffer;
using Clock = std::chrono::steady_clock;
using Milliseconds = std::chrono::milliseconds;

// Gloo's collectives put their kind in the top byte of a slot (0x01..0x08) and their tag below;
// ours use top bytes of their own.
constexpr uint64_t kPointToPointSlots = uint64_t{0x40} << 56;
constexpr uint64_t kCollectiveSlots = uint64_t{0x41} << 56;
// Within one operation: the sizes, then the payloads.
constexpr uint64_t kSizeSlot = 0;
constexpr uint64_t kPayloadSlot = 1;

constexpr size_t kChunkBytes = size_t{1} << 30;

// How long one operation may wait for its peers once connected. A peer that dies closes its
// connections, which fails the operation at once; this bounds the wait for a peer that is alive
// but never arrives (a bug), and is long because a peer may legitimately compute for minutes
// before it reaches the next collective.
constexpr Milliseconds kOperationTimeout = std::chrono::hours(1);

// The file store, with the protected key test made available (to find the ranks that are
// missing at rendezvous).
class RendezvousStore final : public gloo::rendezvous::FileStore {
 public:
  using FileStore::FileStore;
  bool Contains(const std::string& key) { return check({key}); }
};

std::string RankList(const std::vector<int>& ranks) {
  std::string text;
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
  }
  return text;
}

// The number of communicators this process made before as `rank` through `store_directory`:
// every rank makes them in the same order, so the count names the same communicator on every
// rank and keeps the store keys of successive ones apart. (Per rank, not per process: tests run
// several ranks as threads of one process.)
int CommunicatorsMadeBefore(const std::string& store_directory, int rank) {
  static std::mutex mutex;
  static std::map<std::pair<std::string, int>, int> made;
  std::lock_guard<std::mutex> lock(mutex);
  return made[{store_directory, rank}]++;
}

// One byte range registered with Gloo, and how many of its posted operations are unfinished.
class Transfer {
 public:
  Transfer(gloo::Context& context, void* data, size_t size)
      : buffer_(context.createUnboundBuffer(data, size)) {}

  // Posts the range [offset, offset + size) to/from `peer` in chunks.
  void Send(int peer, uint64_t slot, size_t offset, size_t size) {
    ForEachChunk(offset, size, [&](size_t at, size_t bytes) {
      buffer_->send(peer, slot, at, bytes);
      ++sends_;
    });
  }
  void Receive(int peer, uint64_t slot, size_t offset, size_t size) {
    ForEachChunk(offset, size, [&](size_t at, size_t bytes) {
      buffer_->recv(peer, slot, at, bytes);
      ++receives_;
    });
  }
  // False when AbortWait ended the wait.
  bool Wait(Clock::time_point deadline) {
    for (; receives_ > 0; --receives_) {
      if (!buffer_->waitRecv(Remaining(deadline))) return false;
    }
    for (; sends_ > 0; --sends_) {
      if (!buffer_->waitSend(Remaining(deadline))) return false;
    }
    return true;
  }
  // Makes the current or next wait for a send return false (from another thread).
  void AbortSendWait() { buffer_->abortWaitSend(); }

 private:
  template <typename Post>
  static void ForEachChunk(size_t offset, size_t size, Post&& post) {
    for (size_t done = 0; done < size; done += std::min(kChunkBytes, size - done)) {
      post(offset + done, std::min(kChunkBytes, size - done));
    }
  }
  // At least 1 ms: Gloo treats a wait that is already late as a timeout, which is right.
  static Milliseconds Remaining(Clock::time_point deadline) {
    return std::max(Milliseconds(1),
                    std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()));
  }

  std::unique_ptr<UnboundBuffer> buffer_;
  int64_t sends_ = 0;
  int64_t receives_ = 0;
};

Status StatusOfException(const char* what, int rank) {
  try {
    throw;
  } catch (const gloo::IoException& exception) {
    return Status::IOError("gloo {} on rank {}: {}", what, rank, exception.what());
  } catch (const gloo::Exception& exception) {
    return Status::IOError("gloo {} on rank {}: {}", what, rank, exception.what());
  } catch (const gloo::EnforceNotMet& exception) {
    return Status::Internal("gloo {} on rank {}: {}", what, rank, exception.what());
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory("gloo {} on rank {}: out of memory", what, rank);
  } catch (const std::exception& exception) {
    return Status::Internal("gloo {} on rank {}: {}", what, rank, exception.what());
  }
}

// A point-to-point message already handed to Gloo: its bytes stay here until it is sent.
struct PendingSend {
  uint64_t size = 0;
  BufferPtr copy;
  std::unique_ptr<Transfer> size_transfer;
  std::unique_ptr<Transfer> payload_transfer;
};

// Waits, on its own thread, for the sends handed to it (oldest first) and frees them. Gloo has
// no way to test a send without blocking, hence the thread.
class SendReaper {
 public:
  explicit SendReaper(int rank) : rank_(rank), thread_([this] { Run(); }) {}
  ~SendReaper() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();  // after the last sends (or the first error, or Abandon)
  }

  // Gives up on the sends not finished yet (the communicator is broken: they may never be
  // received, and waiting for them would hold the destructor up to the operation timeout).
  void Abandon() {
    std::lock_guard<std::mutex> lock(mutex_);
    abandoned_ = true;
    if (!queue_.empty()) {
      queue_.front()->size_transfer->AbortSendWait();
      if (queue_.front()->payload_transfer) queue_.front()->payload_transfer->AbortSendWait();
    }
  }
  SendReaper(const SendReaper&) = delete;
  SendReaper& operator=(const SendReaper&) = delete;

  void Add(std::unique_ptr<PendingSend> send) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(send));
    }
    wake_.notify_one();
  }
  Status error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      PendingSend& oldest = *queue_.front();
      lock.unlock();
      Status status;
      bool finished = false;
      try {
        const auto deadline = Clock::now() + kOperationTimeout;
        finished = oldest.size_transfer->Wait(deadline) &&
                   (oldest.payload_transfer == nullptr || oldest.payload_transfer->Wait(deadline));
      } catch (...) {
        status = StatusOfException("send", rank_);
      }
      lock.lock();
      queue_.pop_front();
      if (!status.ok() || !finished || abandoned_) {
        // The connections are closed, or nobody waits for these messages any more.
        if (error_.ok()) error_ = status.ok() ? Status::Cancelled("sends abandoned") : status;
        queue_.clear();
        if (stopping_) return;
      }
    }
  }

  const int rank_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<PendingSend>> queue_;
  bool stopping_ = false;
  bool abandoned_ = false;
  Status error_;
  std::thread thread_;  // last: starts once the members above exist
};

template <typename T>
using ReduceFunction = void (*)(void*, const void*, const void*, size_t);

template <typename T>
ReduceFunction<T> ReduceFunctionOf(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<ReduceFunction<T>>(&gloo::sum<T>);
    case ReduceOp::kMin:
      return static_cast<ReduceFunction<T>>(&gloo::min<T>);
    case ReduceOp::kMax:
      return static_cast<ReduceFunction<T>>(&gloo::max<T>);
  }
  return nullptr;
}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(std::shared_ptr<gloo::transport::Device> device,
                   std::shared_ptr<gloo::rendezvous::Context> context)
      : device_(std::move(device)),
        context_(std::move(context)),
        sends_(std::make_unique<SendReaper>(context_->rank)) {}

  ~GlooCommunicator() override {
    // Sent messages reach their receivers before the connections close, unless this
    // communicator failed: then its peers may never receive them.
    if (!broken_.ok()) sends_->Abandon();
    sends_.reset();
    context_.reset();
    device_.reset();
  }

  Backend backend() const override { return Backend::kGloo; }
  int rank() const override { return context_->rank; }
  int size() const override { return context_->size; }

  Status Barrier() override {
    return Guard("barrier", [&]() -> Status {
      if (size() == 1) return Status::OK();
      gloo::BarrierOptions options(context_);
      options.setTag(NextTag());
      options.setTimeout(kOperationTimeout);
      gloo::barrier(options);
      return Status::OK();
    });
  }

  Status Send(int destination, int tag, Bytes data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer("send", destination));
    DEEPRC_RETURN_NOT_OK(CheckTag(tag));
    if (destination == rank()) {
      DEEPRC_ASSIGN_OR_RAISE(auto copy, Buffer::CopyOf(data.data(), std::ssize(data)));
      to_self_[tag].push_back(std::move(copy));
      return Status::OK();
    }
    return Guard("send", [&]() -> Status {
      const uint64_t slot = PointToPointSlot(tag);
      auto message = std::make_unique<PendingSend>();
      message->size = data.size();
      DEEPRC_ASSIGN_OR_RAISE(message->copy, Buffer::CopyOf(data.data(), std::ssize(data)));
      message->size_transfer = std::make_unique<Transfer>(*context_, &message->size, 8);
      message->size_transfer->Send(destination, slot + kSizeSlot, 0, 8);
      if (!data.empty()) {
        message->payload_transfer = std::make_unique<Transfer>(
            *context_, message->copy->mutable_data(), data.size());
        message->payload_transfer->Send(destination, slot + kPayloadSlot, 0, data.size());
      }
      sends_->Add(std::move(message));
      return Status::OK();
    });
  }

  Result<BufferPtr> Receive(int source, int tag) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer("receive", source));
    DEEPRC_RETURN_NOT_OK(CheckTag(tag));
    if (source == rank()) {
      auto found = to_self_.find(tag);
      if (found == to_self_.end() || found->second.empty()) {
        // Only this rank could send it, and it is here waiting: that would be forever.
        return Status::Invalid("receive from rank {} (itself) with tag {}: nothing was sent",
                               source, tag);
      }
      BufferPtr message = std::move(found->second.front());
      found->second.pop_front();
      return message;
    }
    return Guard("receive", [&]() -> Result<BufferPtr> {
      const uint64_t slot = PointToPointSlot(tag);
      const auto deadline = Deadline();
      uint64_t size = 0;
      Transfer size_transfer(*context_, &size, 8);
      size_transfer.Receive(source, slot + kSizeSlot, 0, 8);
      size_transfer.Wait(deadline);
      return ReceivePayload(source, slot + kPayloadSlot, size, deadline);
    });
  }

  Status Broadcast(int root, BufferPtr* data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer("broadcast", root));
    if (size() == 1) return Status::OK();
    return Guard("broadcast", [&]() -> Status {
      const uint64_t slot = NextCollectiveSlot();
      const auto deadline = Deadline();
      if (rank() == root) {
        uint64_t bytes = *data == nullptr ? 0 : static_cast<uint64_t>((*data)->size());
        Transfer size_transfer(*context_, &bytes, 8);
        std::unique_ptr<Transfer> payload;
        if (bytes > 0) {
          payload = std::make_unique<Transfer>(*context_, (*data)->mutable_data(), bytes);
        }
        for (int peer : Peers()) {
          size_transfer.Send(peer, slot + kSizeSlot, 0, 8);
          if (payload) payload->Send(peer, slot + kPayloadSlot, 0, bytes);
        }
        size_transfer.Wait(deadline);
        if (payload) payload->Wait(deadline);
        return Status::OK();
      }
      uint64_t bytes = 0;
      Transfer size_transfer(*context_, &bytes, 8);
      size_transfer.Receive(root, slot + kSizeSlot, 0, 8);
      size_transfer.Wait(deadline);
      DEEPRC_ASSIGN_OR_RAISE(*data, ReceivePayload(root, slot + kPayloadSlot, bytes, deadline));
      return Status::OK();
    });
  }

  Result<std::vector<BufferPtr>> Gather(int root, Bytes data) override {
    DEEPRC_RETURN_NOT_OK(CheckPeer("gather", root));
    return Guard("gather", [&]() -> Result<std::vector<BufferPtr>> {
      const uint64_t slot = NextCollectiveSlot();
      const auto deadline = Deadline();
      if (rank() != root) {
        uint64_t bytes = data.size();
        Transfer size_transfer(*context_, &bytes, 8);
        size_transfer.Send(root, slot + kSizeSlot, 0, 8);
        if (bytes > 0) {
          Transfer payload(*context_, const_cast<uint8_t*>(data.data()), bytes);
          payload.Send(root, slot + kPayloadSlot, 0, bytes);
          payload.Wait(deadline);
        }
        size_transfer.Wait(deadline);
        return std::vector<BufferPtr>{};
      }
      std::vector<uint64_t> sizes(size(), 0);
      Transfer size_transfer(*context_, sizes.data(), sizes.size() * 8);
      for (int peer : Peers()) size_transfer.Receive(peer, slot + kSizeSlot, peer * 8, 8);
      size_transfer.Wait(deadline);
      sizes[rank()] = data.size();
      return ReceiveFromPeers(sizes, data, slot + kPayloadSlot, {}, deadline);
    });
  }

  Result<std::vector<BufferPtr>> AllGather(Bytes data) override {
    return Guard("all-gather", [&]() -> Result<std::vector<BufferPtr>> {
      const uint64_t slot = NextCollectiveSlot();
      const auto deadline = Deadline();
      std::vector<uint64_t> sizes(size(), 0);
      sizes[rank()] = data.size();
      {
        Transfer incoming(*context_, sizes.data(), sizes.size() * 8);
        Transfer outgoing(*context_, &sizes[rank()], 8);
        for (int peer : Peers()) incoming.Receive(peer, slot + kSizeSlot, peer * 8, 8);
        for (int peer : Peers()) outgoing.Send(peer, slot + kSizeSlot, 0, 8);
        incoming.Wait(deadline);
        outgoing.Wait(deadline);
      }
      std::vector<Bytes> send(size(), data);
      return ReceiveFromPeers(sizes, data, slot + kPayloadSlot, send, deadline);
    });
  }

  Result<std::vector<BufferPtr>> AllToAll(const std::vector<Bytes>& send) override {
    if (std::ssize(send) != size()) {
      return Status::Invalid("all-to-all: {} parts for {} ranks", send.size(), size());
    }
    return Guard("all-to-all", [&]() -> Result<std::vector<BufferPtr>> {
      const uint64_t slot = NextCollectiveSlot();
      const auto deadline = Deadline();
      std::vector<uint64_t> sizes_out(size()), sizes_in(size(), 0);
      for (int peer = 0; peer < size(); ++peer) sizes_out[peer] = send[peer].size();
      {
        Transfer incoming(*context_, sizes_in.data(), sizes_in.size() * 8);
        Transfer outgoing(*context_, sizes_out.data(), sizes_out.size() * 8);
        for (int peer : Peers()) incoming.Receive(peer, slot + kSizeSlot, peer * 8, 8);
        for (int peer : Peers()) outgoing.Send(peer, slot + kSizeSlot, peer * 8, 8);
        incoming.Wait(deadline);
        outgoing.Wait(deadline);
      }
      sizes_in[rank()] = send[rank()].size();
      return ReceiveFromPeers(sizes_in, send[rank()], slot + kPayloadSlot, send, deadline);
    });
  }

  // Both spans registered once with Gloo; every piece posted as a range of them.
  Status AllToAllV(Bytes send, std::span<const int64_t> send_counts,
                   std::span<const int64_t> send_offsets, std::span<uint8_t> receive,
                   std::span<const int64_t> receive_counts,
                   std::span<const int64_t> receive_offsets) override {
    const AllToAllVPart part{send, send_counts, send_offsets, receive, receive_counts,
                             receive_offsets};
    return AllToAllV(std::span<const AllToAllVPart>(&part, 1));
  }

  // Every part's receives and sends are posted before any is waited for (each part on its own
  // slot, taken in the same order on every rank), so the parts of a batch travel together.
  Status AllToAllV(std::span<const AllToAllVPart> parts) override {
    for (const AllToAllVPart& part : parts) {
      DEEPRC_RETURN_NOT_OK(CheckAllToAllV(rank(), size(), part.send, part.send_counts,
                                          part.send_offsets, part.receive, part.receive_counts,
                                          part.receive_offsets));
    }
    return Guard("all-to-all-v", [&]() -> Status {
      const auto deadline = Deadline();
      std::vector<std::unique_ptr<Transfer>> transfers;
      for (const AllToAllVPart& part : parts) {
        const uint64_t slot = NextCollectiveSlot() + kPayloadSlot;
        std::unique_ptr<Transfer> incoming;
        std::unique_ptr<Transfer> outgoing;
        for (int peer : Peers()) {
          if (part.receive_counts[peer] == 0) continue;
          if (!incoming) {
            incoming = std::make_unique<Transfer>(*context_, part.receive.data(),
                                                  part.receive.size());
          }
          incoming->Receive(peer, slot, static_cast<size_t>(part.receive_offsets[peer]),
                            static_cast<size_t>(part.receive_counts[peer]));
        }
        for (int peer : Peers()) {
          if (part.send_counts[peer] == 0) continue;
          if (!outgoing) {
            outgoing = std::make_unique<Transfer>(
                *context_, const_cast<uint8_t*>(part.send.data()), part.send.size());
          }
          outgoing->Send(peer, slot, static_cast<size_t>(part.send_offsets[peer]),
                         static_cast<size_t>(part.send_counts[peer]));
        }
        if (part.send_counts[rank()] > 0) {
          std::memmove(part.receive.data() + part.receive_offsets[rank()],
                       part.send.data() + part.send_offsets[rank()],
                       static_cast<size_t>(part.send_counts[rank()]));
        }
        if (incoming) transfers.push_back(std::move(incoming));
        if (outgoing) transfers.push_back(std::move(outgoing));
      }
      for (auto& transfer : transfers) {
        if (!transfer->Wait(deadline)) {
          return Status::Cancelled("gloo all-to-all-v on rank {}: wait aborted", rank());
        }
      }
      return Status::OK();
    });
  }

  using Communicator::AllToAllV;
  Status AllReduce(std::span<int64_t> values, ReduceOp op) override {
    return Reduce(values, op);
  }
  Status AllReduce(std::span<double> values, ReduceOp op) override { return Reduce(values, op); }
  Status AllReduce(std::span<float> values, ReduceOp op) override { return Reduce(values, op); }

  [[noreturn]] void Abort(int exit_code, std::string_view reason) override {
    std::fprintf(stderr, "deeprc: rank %d of %d aborting the job: %.*s\n", rank(), size(),
                 static_cast<int>(reason.size()), reason.data());
    std::fflush(nullptr);
    // The launcher sees this rank fail and ends the others.
    ::_exit(exit_code);
  }

 private:
  template <typename T>
  Status Reduce(std::span<T> values, ReduceOp op) {
    if (size() == 1 || values.empty()) return Status::OK();
    return Guard("all-reduce", [&]() -> Status {
      gloo::AllreduceOptions options(context_);
      options.setOutput(values.data(), values.size());  // in place
      options.setReduceFunction(ReduceFunctionOf<T>(op));
      options.setTag(NextTag());
      options.setTimeout(kOperationTimeout);
      gloo::allreduce(options);
      return Status::OK();
    });
  }

  // Receives `sizes[s]` bytes from every peer s into a fresh buffer each, while sending
  // `send[d]` to every peer d (nothing when `send` is empty); this rank's entry is `own`.
  Result<std::vector<BufferPtr>> ReceiveFromPeers(const std::vector<uint64_t>& sizes, Bytes own,
                                                  uint64_t slot, const std::vector<Bytes>& send,
                                                  Clock::time_point deadline) {
    std::vector<BufferPtr> received(size());
    std::vector<std::unique_ptr<Transfer>> transfers;
    for (int peer : Peers()) {
      DEEPRC_ASSIGN_OR_RAISE(received[peer],
                             Buffer::Allocate(static_cast<int64_t>(sizes[peer])));
      if (sizes[peer] == 0) continue;
      transfers.push_back(
          std::make_unique<Transfer>(*context_, received[peer]->mutable_data(), sizes[peer]));
      transfers.back()->Receive(peer, slot, 0, sizes[peer]);
    }
    if (!send.empty()) {
      // One registration when every peer gets the same bytes (all-gather).
      const bool same = std::all_of(send.begin(), send.end(), [&](Bytes part) {
        return part.data() == send[0].data() && part.size() == send[0].size();
      });
      std::unique_ptr<Transfer> shared;
      for (int peer : Peers()) {
        Bytes part = send[peer];
        if (part.empty()) continue;
        if (same && shared == nullptr) {
          shared = std::make_unique<Transfer>(*context_, const_cast<uint8_t*>(part.data()),
                                              part.size());
        }
        if (same) {
          shared->Send(peer, slot, 0, part.size());
          continue;
        }
        transfers.push_back(std::make_unique<Transfer>(
            *context_, const_cast<uint8_t*>(part.data()), part.size()));
        transfers.back()->Send(peer, slot, 0, part.size());
      }
      if (shared) transfers.push_back(std::move(shared));
    }
    for (auto& transfer : transfers) transfer->Wait(deadline);
    DEEPRC_ASSIGN_OR_RAISE(received[rank()], Buffer::CopyOf(own.data(), std::ssize(own)));
    return received;
  }

  Result<BufferPtr> ReceivePayload(int source, uint64_t slot, uint64_t bytes,
                                   Clock::time_point deadline) {
    DEEPRC_ASSIGN_OR_RAISE(auto buffer, Buffer::Allocate(static_cast<int64_t>(bytes)));
    if (bytes > 0) {
      Transfer payload(*context_, buffer->mutable_data(), bytes);
      payload.Receive(source, slot, 0, bytes);
      payload.Wait(deadline);
    }
    return buffer;
  }

  std::vector<int> Peers() const {
    // Starting after this rank spreads the first messages over the peers.
    std::vector<int> peers;
    for (int i = 1; i < size(); ++i) peers.push_back((rank() + i) % size());
    return peers;
  }

  Status CheckPeer(const char* what, int peer) const {
    if (peer < 0 || peer >= size()) {
      return Status::Invalid("{}: rank {} does not exist (the job has {} ranks)", what, peer,
                             size());
    }
    return Status::OK();
  }
  static Status CheckTag(int tag) {
    if (tag < 0 || tag >= kMaxTag) {
      return Status::Invalid("tag {} out of range [0, {})", tag, kMaxTag);
    }
    return Status::OK();
  }

  static uint64_t PointToPointSlot(int tag) {
    return kPointToPointSlots | (static_cast<uint64_t>(tag) << 8);
  }
  uint64_t NextCollectiveSlot() { return kCollectiveSlots | (next_collective_++ << 8); }
  uint32_t NextTag() { return next_tag_++; }
  static Clock::time_point Deadline() { return Clock::now() + kOperationTimeout; }

  // Runs `body`, turning Gloo's exceptions into a Status; after a transport error the
  // communicator stays broken (its connections are closed or out of step).
  template <typename Body>
  auto Guard(const char* what, Body&& body) -> decltype(body()) {
    if (broken_.ok()) broken_ = sends_->error();
    if (!broken_.ok()) return broken_;
    try {
      return body();
    } catch (...) {
      broken_ = StatusOfException(what, rank());
      return broken_;
    }
  }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  uint64_t next_collective_ = 0;
  uint32_t next_tag_ = 0;
  Status broken_;
  std::map<int, std::deque<BufferPtr>> to_self_;
  std::unique_ptr<SendReaper> sends_;
};

Result<std::shared_ptr<gloo::rendezvous::Context>> Connect(
    const GlooOptions& options, const std::shared_ptr<gloo::transport::Device>& device) {
  const auto timeout = std::chrono::duration_cast<Milliseconds>(
      std::chrono::duration<double>(options.timeout_seconds));
  auto context = std::make_shared<gloo::rendezvous::Context>(options.rank, options.size);
  context->setTimeout(std::max(timeout, Milliseconds(1)));
  RendezvousStore store(options.store_directory);
  const std::string prefix =
      "deeprc" + std::to_string(CommunicatorsMadeBefore(options.store_directory, options.rank));

  // Arrival first: every rank leaves a key and waits for the others' within the timeout, so
  // that the error can name the ranks that never came.
  auto arrival_key = [&](int rank) { return prefix + "/arrived/" + std::to_string(rank); };
  store.set(arrival_key(options.rank), {'1'});
  const auto deadline = Clock::now() + timeout;
  std::vector<int> missing;
  for (int rank = 0; rank < options.size; ++rank) {
    if (rank != options.rank) missing.push_back(rank);
  }
  while (true) {
    std::erase_if(missing, [&](int rank) { return store.Contains(arrival_key(rank)); });
    if (missing.empty()) break;
    if (Clock::now() >= deadline) {
      return Status::IOError(
          "gloo rendezvous in {}: rank(s) {} of {} did not appear within {} s (this is rank {})",
          options.store_directory, RankList(missing), options.size, options.timeout_seconds,
          options.rank);
    }
    std::this_thread::sleep_for(Milliseconds(2));
  }
  gloo::rendezvous::PrefixStore prefixed(prefix, store);
  std::shared_ptr<gloo::transport::Device> mutable_device = device;
  context->connectFullMesh(prefixed, mutable_device);
  return context;
}

Result<int> ParseInteger(const char* name, const char* text) {
  int value = 0;
  const char* end = text + std::strlen(text);
  auto [at, error] = std::from_chars(text, end, value);
  if (error != std::errc() || at != end || text == end) {
    return Status::Invalid("{}='{}' is not an integer", name, text);
  }
  return value;
}

}  // namespace

Result<std::unique_ptr<Communicator>> MakeGlooCommunicator(const GlooOptions& options) {
  if (options.size < 1) {
    return Status::Invalid("gloo: the world size must be at least 1, not {}", options.size);
  }
  if (options.rank < 0 || options.rank >= options.size) {
    return Status::Invalid("gloo: rank {} is outside [0, {})", options.rank, options.size);
  }
  if (!(options.timeout_seconds > 0)) {
    return Status::Invalid("gloo: the timeout must be positive, not {} s",
                           options.timeout_seconds);
  }
  std::error_code error;
  if (options.store_directory.empty() ||
      !std::filesystem::is_directory(options.store_directory, error)) {
    return Status::Invalid("gloo: the store directory '{}' does not exist",
                           options.store_directory);
  }
  try {
    gloo::transport::tcp::attr attributes;
    attributes.hostname = options.hostname;
    auto device = gloo::transport::tcp::CreateDevice(attributes);
    DEEPRC_ASSIGN_OR_RAISE(auto context, Connect(options, device));
    return std::unique_ptr<Communicator>(
        std::make_unique<GlooCommunicator>(std::move(device), std::move(context)));
  } catch (const gloo::Exception& exception) {
    return Status::IOError("gloo: connecting rank {} of {} through {}: {}", options.rank,
                           options.size, options.store_directory, exception.what());
  } catch (const gloo::EnforceNotMet& exception) {
    return Status::IOError("gloo: connecting rank {} of {} through {}: {}", options.rank,
                           options.size, options.store_directory, exception.what());
  } catch (const std::exception& exception) {
    return Status::Internal("gloo: connecting rank {} of {}: {}", options.rank, options.size,
                            exception.what());
  }
}

Result<GlooOptions> GlooOptionsFromEnvironment() {
  GlooOptions options;
  auto required = [](const char* name) -> Result<const char*> {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
      return Status::Invalid("{} is not set (the gloo backend needs DEEPRC_RANK, "
                             "DEEPRC_WORLD_SIZE and DEEPRC_GLOO_STORE; `deeprc launch --comm "
                             "gloo` sets them)",
                             name);
    }
    return value;
  };
  DEEPRC_ASSIGN_OR_RAISE(const char* world_size, required("DEEPRC_WORLD_SIZE"));
  DEEPRC_ASSIGN_OR_RAISE(options.size, ParseInteger("DEEPRC_WORLD_SIZE", world_size));
  if (options.size < 1) {
    return Status::Invalid("DEEPRC_WORLD_SIZE={} must be at least 1", options.size);
  }
  DEEPRC_ASSIGN_OR_RAISE(const char* rank, required("DEEPRC_RANK"));
  DEEPRC_ASSIGN_OR_RAISE(options.rank, ParseInteger("DEEPRC_RANK", rank));
  if (options.rank < 0 || options.rank >= options.size) {
    return Status::Invalid("DEEPRC_RANK={} is outside [0, DEEPRC_WORLD_SIZE={})", options.rank,
                           options.size);
  }
  DEEPRC_ASSIGN_OR_RAISE(const char* store, required("DEEPRC_GLOO_STORE"));
  options.store_directory = store;
  if (const char* hostname = std::getenv("DEEPRC_GLOO_HOSTNAME");
      hostname != nullptr && *hostname != '\0') {
    options.hostname = hostname;
  }
  if (const char* timeout = std::getenv("DEEPRC_GLOO_TIMEOUT");
      timeout != nullptr && *timeout != '\0') {
    char* end = nullptr;
    const double seconds = std::strtod(timeout, &end);
    if (end == timeout || *end != '\0' || !(seconds > 0)) {
      return Status::Invalid("DEEPRC_GLOO_TIMEOUT='{}' is not a positive number of seconds",
                             timeout);
    }
    options.timeout_seconds = seconds;
  }
  return options;
}

}  // namespace deeprc::comm
