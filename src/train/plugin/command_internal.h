#pragma once

// The ranks' communicator and the exit status of a `deeprc train` command run in the plugin
// (hydro_command.cpp; RunCommand in train_plugin.cpp does the same inline).

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "deeprc/comm/communicator.h"
#include "deeprc/core/status.h"

namespace deeprc::train {

// Set by `deeprc train --ranks N` in each rank's environment (apps/deeprc/train_command.cpp).
inline constexpr const char* kRanksVariable = "DEEPRC_TRAIN_RANKS";

// The ranks' communicator when this process is one of `deeprc train --ranks N`, else null.
// False (with the message on stderr) when it cannot be made.
inline bool MakeRankCommunicator(std::unique_ptr<comm::Communicator>* communicator) {
  if (std::getenv(kRanksVariable) == nullptr) return true;
  auto made = comm::MakeCommunicator();
  if (!made.ok()) {
    std::fprintf(stderr, "deeprc train: %s\n", made.status().message().c_str());
    return false;
  }
  *communicator = std::move(*made);
  return true;
}

// The command's exit status: 0, 2 for bad input, 1 for a failure (printed, and the other ranks
// aborted).
inline int ExitWith(const Status& status, comm::Communicator* communicator) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "deeprc train: %s\n", status.message().c_str());
  if (communicator != nullptr && communicator->size() > 1) {
    communicator->Abort(status.code() == StatusCode::kInternal ? 1 : 2, status.message());
  }
  return status.code() == StatusCode::kInvalid || status.code() == StatusCode::kKeyError ||
                 status.code() == StatusCode::kTypeError
             ? 2
             : 1;
}

}  // namespace deeprc::train
