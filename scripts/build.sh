#!/usr/bin/env bash
# Configures and builds deeprc in build/ (Release). Extra arguments go to CMake, e.g.
#   scripts/build.sh -DDEEPRC_SANITIZE=ON      (address + undefined sanitizers; use another
#   BUILD_DIR=build-asan scripts/build.sh ...   build directory for it)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" >/dev/null
ninja -C "$build" -j"${JOBS:-$(nproc)}"
