#pragma once

// Private to src/dist: the shuffle's targets kept in the memory pool.

#include <cstdint>
#include <memory>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/buffer.h"
#include "deeprc/table/table.h"

namespace deeprc::dist {

// HashPartitionTargets into a pool buffer of table.num_rows() int32 targets: a fresh
// std::vector of millions of targets costs a page fault per 4 KiB on every call, the pool's
// large blocks are huge pages kept for the next call.
Result<std::shared_ptr<Buffer>> HashPartitionBuffer(const Table& table,
                                                    const std::vector<int>& key_columns, int ranks,
                                                    int threads);

}  // namespace deeprc::dist
