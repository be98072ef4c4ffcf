#pragma once

// Private to src/dist: collectives that keep ranks in step when their inputs differ.

#include <cstdint>
#include <string>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/status.h"

namespace deeprc::dist::internal {

// Every rank passes its own status; all return OK only if every rank's is OK, otherwise every rank
// returns the error of the lowest failing rank (its code and message, prefixed with that rank).
// One int64 AllReduce when all is well; an AllGather of the messages when not.
Status AgreeOnStatus(comm::Communicator& comm, const Status& local);

// Every rank's int64 values (the same count on each), by rank: result[r] = rank r's values.
Result<std::vector<std::vector<int64_t>>> AllGatherInts(comm::Communicator& comm,
                                                        const std::vector<int64_t>& values);

// Every rank's string, by rank.
Result<std::vector<std::string>> AllGatherStrings(comm::Communicator& comm,
                                                  const std::string& text);

// The root's string on every rank (`text` is read on the root only).
Result<std::string> BroadcastString(comm::Communicator& comm, int root, const std::string& text);

}  // namespace deeprc::dist::internal
