#include "agreement_internal.h"

#include <cstdint>
#include <span>

namespace deeprc::dist {

Status AgreeOnStatus(comm::Communicator& comm, const Status& local, std::string_view operation) {
  if (comm.size() == 1) return local;
  int64_t failed = local.ok() ? 0 : 1;
  DEEPRC_RETURN_NOT_OK(comm.AllReduce(std::span<int64_t>(&failed, 1), comm::ReduceOp::kMax));
  if (!local.ok()) return local;
  if (failed != 0) {
    return Status::Cancelled("{}: failed on another rank (its error is reported there)",
                             operation);
  }
  return Status::OK();
}

}  // namespace deeprc::dist
