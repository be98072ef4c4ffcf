#pragma once

// Ranks agreeing on errors: a step whose success depends on the rank's own rows (a cast, an
// overflow, a bad CSV value) must not leave the other ranks waiting in the next collective.
// And the small values ranks exchange to agree on a plan (row counts, file sizes, types).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/result.h"
#include "deeprc/core/status.h"

namespace deeprc::dist {

// Collective. OK on every rank when `local` is OK on every rank; otherwise every rank returns
// the error of the lowest failing rank: that rank its own status, the others its code and its
// message after the operation and that rank's number. One int64 AllReduce when all is well; an
// AllGather of the messages when not.
Status AgreeOnStatus(comm::Communicator& comm, const Status& local, std::string_view operation);

// Every rank's int64 values (the same count on each), by rank: result[r] = rank r's values.
Result<std::vector<std::vector<int64_t>>> AllGatherInts(comm::Communicator& comm,
                                                        const std::vector<int64_t>& values);
// Every rank's text, by rank.
Result<std::vector<std::string>> AllGatherStrings(comm::Communicator& comm,
                                                  const std::string& text);
// The root's text on every rank (`text` is read on the root only).
Result<std::string> BroadcastString(comm::Communicator& comm, int root, const std::string& text);

}  // namespace deeprc::dist
