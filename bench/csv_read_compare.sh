#!/usr/bin/env bash
# Reads one mixed-type CSV with deeprc (bench/csv_bench) and with DuckDB, at 1 and 2 threads,
# alternating, and prints one JSON line per read. Usage: bench/csv_read_compare.sh [BUILD_DIR] [MB]
# DuckDB comes from the npm registry (@duckdb/node-api ships its native library) into
# bench/peers/node_modules, which git ignores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
megabytes="${2:-200}"
export DEEPRC_CSV_BENCH_MB="$megabytes"
export DEEPRC_CSV_BENCH_FILE="${DEEPRC_CSV_BENCH_FILE:-/tmp/deeprc_csv_bench_${megabytes}mb.csv}"
if [ ! -d "$here/peers/node_modules/@duckdb/node-api" ]; then
  (cd "$here/peers" && npm install --no-save --no-package-lock @duckdb/node-api@1.5.6-r.1 >/dev/null)
fi
for round in 1 2 3; do
  for threads in 1 2; do
    "$build/bench/csv_bench" --benchmark_filter="BM_ReadCsvMixed/$threads/" \
      --benchmark_min_time=0.01 --benchmark_format=json 2>/dev/null |
      python3 -c '
import json, sys
for b in json.load(sys.stdin)["benchmarks"]:
    print(json.dumps({"peer": "deeprc", "op": "read_csv", "threads": int(b["name"].split("/")[1]),
                      "seconds": b["real_time"] / 1000, "rows": int(b["rows"])}))'
    node "$here/peers/csv_read_duckdb.mjs" "$DEEPRC_CSV_BENCH_FILE" "$threads" 1
  done
done
