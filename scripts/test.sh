#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite.
#   scripts/test.sh            the default suite (CI; about 20 minutes or less on 2 cores)
#   scripts/test.sh --long     also the slow tests (huge columns, soaks)
# Extra arguments go to ctest, e.g. scripts/test.sh -R Join
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install_deps.sh"
"$root/scripts/build.sh"
if [[ "${1:-}" == "--long" ]]; then
  shift
  export DEEPRC_LONG_TESTS=1
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2
ctest --test-dir "${BUILD_DIR:-$root/build}" -j"$(nproc)" --output-on-failure --timeout 900 "$@"
