#pragma once

// The Gloo backend: TCP transport, ranks meet through a file store (a directory every rank can
// see) — no MPI launcher needed. `deeprc launch --comm gloo` (comm/launch.h) starts the ranks.

#include <memory>
#include <string>

#include "deeprc/comm/communicator.h"

namespace deeprc::comm {

struct GlooOptions {
  int rank = -1;
  int size = -1;
  // Directory of the file store; every rank of the job uses the same one, and it is fresh for
  // every job (a stale store would join ranks of different jobs).
  std::string store_directory;
  // Address to bind and advertise; loopback by default (one machine).
  std::string hostname = "127.0.0.1";
  // How long connecting to the other ranks may take before failing with an error naming the
  // ranks that did not appear.
  double timeout_seconds = 60;
};

Result<std::unique_ptr<Communicator>> MakeGlooCommunicator(const GlooOptions& options);

// From DEEPRC_RANK, DEEPRC_WORLD_SIZE, DEEPRC_GLOO_STORE (and DEEPRC_GLOO_HOSTNAME,
// DEEPRC_GLOO_TIMEOUT when set); errors name the variable that is missing or bad.
Result<GlooOptions> GlooOptionsFromEnvironment();

}  // namespace deeprc::comm
