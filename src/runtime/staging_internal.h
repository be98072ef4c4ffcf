#pragma once

// File staging for the executor: copy, link or move one file or directory.

#include <string>
#include <string_view>

#include "deeprc/core/status.h"
#include "deeprc/runtime/description.h"

namespace deeprc::runtime::internal {

// The directories a staging path may be relative to.
struct StagingBases {
  std::string client;
  std::string session;
  std::string task;
};

// `client://x`, `session://x`, `task://x` are x under that base; `file:///x` and `/x` are
// absolute; anything else is relative to `default_base`.
std::string ResolveStagingPath(std::string_view path, const StagingBases& bases,
                               std::string_view default_base);

// Copies, links or moves `source` to `target` (both resolved), creating the target's parent
// directories. A copied file is written under a temporary name and renamed when complete; a
// target that exists is replaced. A missing source is an IOError naming it:
// "source not found: /path".
Status Stage(StagingAction action, const std::string& source, const std::string& target);

}  // namespace deeprc::runtime::internal
