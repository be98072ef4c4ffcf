#!/usr/bin/env bash
# Installs what deeprc needs on Debian 12, skipping what is already there.
#   scripts/install_deps.sh          build and test dependencies (apt)
#   scripts/install_deps.sh --bench  also the benchmark peers (dask; Node.js and npm: DuckDB, Polars)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libfmt-dev libcli11-dev libxxhash-dev libfast-float-dev libzstd-dev liblz4-dev
  nlohmann-json3-dev libyaml-cpp-dev libzmq3-dev
  openmpi-bin libopenmpi-dev libgloo-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-pandas python3-numpy
  libtorch-dev libopenblas0-pthread
)
# The peers of the benchmarks: dask (task rates), DuckDB and Polars (npm, below).
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-distributed python3-dask)
fi
# Node.js may come from elsewhere than Debian (e.g. NodeSource, with npm inside): only ask apt
# for it when the commands are missing.
if [[ "${1:-}" == "--bench" ]] && ! { command -v node && command -v npm; } >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "deeprc: installing ${missing[*]}" >&2
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

if [[ "${1:-}" == "--bench" ]]; then
  if [[ ! -d "$root/bench/peers/node_modules/nodejs-polars-linux-x64-gnu" ]]; then
    echo "deeprc: installing the benchmark peers (npm)" >&2
    (cd "$root/bench/peers" && npm install --no-audit --no-fund --loglevel=error)
  fi
fi
