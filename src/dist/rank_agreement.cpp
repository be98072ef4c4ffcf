#include "rank_agreement.h"

#include <cstring>

#include "deeprc/core/result.h"

namespace deeprc::dist::internal {

Status AgreeOnStatus(comm::Communicator& comm, const Status& local) {
  if (comm.size() == 1) return local;
  DEEPRC_ASSIGN_OR_RAISE(int64_t failed, comm::AllReduceValue<int64_t>(comm, local.ok() ? 0 : 1,
                                                                       comm::ReduceOp::kMax));
  if (failed == 0) return Status::OK();
  // Code as one byte, then the message.
  std::string mine;
  if (!local.ok()) {
    mine.push_back(static_cast<char>(local.code()));
    mine += local.message();
  }
  DEEPRC_ASSIGN_OR_RAISE(auto all, AllGatherStrings(comm, mine));
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    const auto code = static_cast<StatusCode>(static_cast<uint8_t>(all[r][0]));
    if (static_cast<int>(r) == comm.rank()) return local;
    return Status(code, "rank " + std::to_string(r) + ": " + all[r].substr(1));
  }
  return Status::Internal("a rank reported a failure without a message");
}

Result<std::vector<std::vector<int64_t>>> AllGatherInts(comm::Communicator& comm,
                                                        const std::vector<int64_t>& values) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(values.data());
  DEEPRC_ASSIGN_OR_RAISE(auto gathered,
                         comm.AllGather(comm::Bytes(bytes, values.size() * sizeof(int64_t))));
  std::vector<std::vector<int64_t>> out(gathered.size());
  for (size_t r = 0; r < gathered.size(); ++r) {
    const int64_t size = gathered[r] ? gathered[r]->size() : 0;
    if (size != static_cast<int64_t>(values.size() * sizeof(int64_t))) {
      return Status::Internal("rank {} sent {} bytes where {} int64 values were expected", r, size,
                              values.size());
    }
    out[r].resize(values.size());
    if (size > 0) std::memcpy(out[r].data(), gathered[r]->data(), size);
  }
  return out;
}

Result<std::vector<std::string>> AllGatherStrings(comm::Communicator& comm,
                                                  const std::string& text) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  DEEPRC_ASSIGN_OR_RAISE(auto gathered, comm.AllGather(comm::Bytes(bytes, text.size())));
  std::vector<std::string> out(gathered.size());
  for (size_t r = 0; r < gathered.size(); ++r) {
    if (gathered[r] && gathered[r]->size() > 0) {
      out[r].assign(reinterpret_cast<const char*>(gathered[r]->data()), gathered[r]->size());
    }
  }
  return out;
}

Result<std::string> BroadcastString(comm::Communicator& comm, int root, const std::string& text) {
  comm::BufferPtr buffer;
  if (comm.rank() == root) {
    DEEPRC_ASSIGN_OR_RAISE(buffer, Buffer::CopyOf(text.data(), static_cast<int64_t>(text.size())));
  }
  DEEPRC_RETURN_NOT_OK(comm.Broadcast(root, &buffer));
  if (comm.rank() == root) return text;
  if (!buffer || buffer->size() == 0) return std::string();
  return std::string(reinterpret_cast<const char*>(buffer->data()), buffer->size());
}

}  // namespace deeprc::dist::internal
