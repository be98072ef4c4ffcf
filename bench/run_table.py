#!/usr/bin/python3
"""Runs `deeprc bench table` and its peers (DuckDB, Polars, pandas) side by side on the same
formulas and writes the table into bench/RESULTS.md (between the table-bench markers).

Usage: /usr/bin/python3 bench/run_table.py [--rows 10000000] [--threads 2] [--csv-rows 15000000]
       [--ops join,groupby,sort,unique,csv-read,csv-write] [--systems deeprc,duckdb,polars,pandas]
Every (system, operator) runs in its own process, so each peak_rss_mb is that operator's own.
Checksums must agree with deeprc's; a mismatch is printed and marked in the table.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

from results_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", "peers")
BEGIN = "<!-- table-bench:begin -->"
END = "<!-- table-bench:end -->"


def peer_command(system, op, rows, threads, repeat, path):
    args = [op, "--rows", str(rows), "--threads", str(threads), "--repeat", str(repeat)]
    if path:
        args += ["--path", path]
    if system == "deeprc":
        return [os.path.join(ROOT, "build", "apps", "deeprc"), "bench", "table"] + args, {}
    if system == "duckdb":
        return ["node", os.path.join(PEERS, "duckdb.mjs")] + args, {}
    if system == "polars":
        return ["node", os.path.join(PEERS, "polars.mjs")] + args, {"POLARS_MAX_THREADS": str(threads)}
    if system == "pandas":
        return ["/usr/bin/python3", os.path.join(PEERS, "pandas_bench.py")] + args, {}
    raise SystemExit(f"unknown system {system}")


def run(system, op, rows, threads, repeat, path):
    command, extra_env = peer_command(system, op, rows, threads, repeat, path)
    env = dict(os.environ, **extra_env)
    print("+", " ".join(shlex.quote(c) for c in command), file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return {"system": system, "op": op, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_peers(systems):
    if not ({"duckdb", "polars"} & set(systems)):
        return
    if not os.path.isdir(os.path.join(PEERS, "node_modules", "nodejs-polars-linux-x64-gnu")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEERS,
                       check=True)


def render(results, args, command):
    systems = args.systems
    lines = [BEGIN, "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.node()} ({os.cpu_count()} cores), {args.threads} threads, median of "
             f"{args.repeat}. Command: `{command}`", "",
             "| op | rows | " + " | ".join(f"{s} s" for s in systems) + " | " +
             " | ".join(f"{s} MB" for s in systems) + " | deeprc vs best peer | deeprc vs pandas |",
             "|---|---|" + "---|" * (2 * len(systems) + 2)]
    for op in args.ops:
        row = {r["system"]: r for r in results if r["op"] == op}
        reference = row.get("deeprc", {}).get("checksum")
        cells_s, cells_mb = [], []
        for s in systems:
            r = row.get(s)
            if r is None or "error" in r:
                cells_s.append("failed")
                cells_mb.append("")
                continue
            mark = "" if reference is None or r["checksum"] == reference else " (checksum differs!)"
            cells_s.append(f"{r['seconds']:.3f}{mark}")
            cells_mb.append(f"{r['peak_rss_mb']:.0f}")
        mine = row.get("deeprc", {}).get("seconds")
        peers = [row[s]["seconds"] for s in ("duckdb", "polars") if s in row and "seconds" in row[s]]
        best = f"{min(peers) / mine:.2f}x" if mine and peers else ""
        pandas = f"{row['pandas']['seconds'] / mine:.1f}x" if mine and "seconds" in row.get("pandas", {}) else ""
        rows = row.get("deeprc", {}).get("rows", args.csv_rows if op.startswith("csv") else args.rows)
        lines.append(f"| {op} | {rows:,} | " + " | ".join(cells_s) + " | " + " | ".join(cells_mb) +
                     f" | {best} | {pandas} |")
    lines += ["", "Speed-ups are the other system's seconds over deeprc's (above 1: deeprc is faster). "
              "pandas runs on one thread. MB: the process's peak resident memory, one operator "
              "per process.", "",
              "First (cold) run of each operator in its process, seconds: the figures above are "
              "medians, which reuse memory the first run obtained.", "",
              "| op | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for op in args.ops:
        row = {r["system"]: r for r in results if r["op"] == op}
        cells = [f"{row[s]['first_seconds']:.3f}" if "first_seconds" in row.get(s, {}) else ""
                 for s in systems]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--csv-rows", type=int, default=15_000_000,
                        help="rows of the mixed CSV file (15M rows: about 1 GB)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ops", default="join,groupby,sort,unique,csv-read,csv-write")
    parser.add_argument("--systems", default="deeprc,duckdb,polars,pandas")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    parser.add_argument("--jsonl", default="", help="also append every JSON line here")
    args = parser.parse_args()
    args.ops = args.ops.split(",")
    args.systems = args.systems.split(",")
    command = "/usr/bin/python3 bench/run_table.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    ensure_peers(args.systems)

    csv_path = f"/tmp/deeprc_bench_{args.csv_rows}.csv"
    results = []
    for op in args.ops:
        rows = args.csv_rows if op.startswith("csv") else args.rows
        path = csv_path if op == "csv-read" else ""
        if op == "csv-read":
            # Written anew each run, so that the file always follows the current formula.
            results_write = run("deeprc", "csv-write", rows, args.threads, 1, csv_path)
            if "error" in results_write:
                raise SystemExit("could not write the CSV file for csv-read")
        for system in args.systems:
            out_path = f"/tmp/{system}_bench_write.csv" if op == "csv-write" else path
            result = run(system, op, rows, args.threads, args.repeat, out_path)
            print(json.dumps(result), flush=True)
            results.append(result)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(result) + "\n")
        if op == "csv-write":
            for system in args.systems:
                try:
                    os.remove(f"/tmp/{system}_bench_write.csv")
                except FileNotFoundError:
                    pass

    section = render(results, args, command)
    write_section(args.output, BEGIN, END, section,
                  "## Local table operators (`deeprc bench table`)")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
