#pragma once

// Multi-rank tests (tests/comm, tests/dist). Every such test program is registered at 1, 2 and 4
// ranks, once per backend (mpi through mpirun, gloo through `deeprc launch`), and runs the same
// gtest suites on every rank. TestComm() is the job's communicator; a failure on any rank makes
// every rank exit non-zero, and a fatal failure aborts the job so that no rank waits forever in a
// collective its peer will never reach.

#include "deeprc/comm/communicator.h"

namespace deeprc::testing {

comm::Communicator& TestComm();

}  // namespace deeprc::testing
