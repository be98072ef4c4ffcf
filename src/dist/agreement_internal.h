#pragma once

// Ranks agreeing on errors: a step whose success depends on the rank's own rows (a cast, an
// overflow) must not leave the other ranks waiting in the next collective.

#include "deeprc/comm/communicator.h"
#include "deeprc/core/status.h"

namespace deeprc::dist {

// Collective. OK on every rank when `local` is OK on every rank; otherwise `local` where it
// failed and an error naming the operation on the ranks where it did not.
Status AgreeOnStatus(comm::Communicator& comm, const Status& local, std::string_view operation);

}  // namespace deeprc::dist
