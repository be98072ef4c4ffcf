#pragma once

// The MPI backend. This header includes <mpi.h>; code that only needs the interface includes
// comm/communicator.h.

#include <mpi.h>

#include <memory>

#include "deeprc/comm/communicator.h"

namespace deeprc::comm {

// Wraps `comm` without owning it (the caller frees it after the communicator is gone). MPI must
// be initialized with at least MPI_THREAD_SERIALIZED.
Result<std::unique_ptr<Communicator>> MakeMpiCommunicator(MPI_Comm comm);

// MPI_COMM_WORLD; initializes MPI (MPI_THREAD_SERIALIZED) when nobody has, and then finalizes it
// when the process exits.
Result<std::unique_ptr<Communicator>> MakeMpiWorldCommunicator();

}  // namespace deeprc::comm
