#!/usr/bin/python3
"""Runs the task-rate benchmarks of the pilot runtime side by side with dask.distributed and
writes them into bench/RESULTS.md (between the tasks-bench markers):

  executable tasks: `deeprc bench tasks --kind exec` (/bin/true through client, agent, executor),
                    the machine's raw fork/exec/wait rate (build/bench/fork_exec_bench) and dask
                    running /bin/true in 2 worker processes;
  function tasks:   `deeprc bench tasks --kind function` with 1 master x 2 worker ranks, with 4
                    masters, one task at a time (round trip), and dask's no-op tasks;
  dispatch:         `--kind function --simulate` (the master's dispatch code against virtual
                    ranks) at 100 masters x 10,000 workers;
  mix:              1-, 2- and 4-rank function tasks of 20 ms on 4 worker ranks: utilization.

Each deeprc measurement runs --runs times (default 3); the table gives the median and the range.
Usage: /usr/bin/python3 bench/run_tasks.py [--runs 3] [--output bench/RESULTS.md] [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

from results_md import publish, run_json as run_json_with, spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPRC = os.path.join(ROOT, "build", "apps", "deeprc")
FORK = os.path.join(ROOT, "build", "bench", "fork_exec_bench")
DASK = os.path.join(ROOT, "bench", "peers", "dask_tasks.py")
BEGIN = "<!-- tasks-bench:begin -->"
END = "<!-- tasks-bench:end -->"
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")



def run_json(command):
    """The command's last JSON line."""
    return run_json_with(command, ENV)[-1]


def summary(lines, key, fmt="{:,.0f}"):
    return spread([line[key] for line in lines], fmt)


def repeated(command, runs):
    return [run_json(command) for _ in range(runs)]



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small counts, print only")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    output = args.output or ("" if args.quick else os.path.join(ROOT, "bench", "RESULTS.md"))
    exec_count, function_count = 20_000 // scale, 50_000 // scale
    bench = [DEEPRC, "bench", "tasks"]
    rows = []

    exec_lines = repeated(bench + ["--kind", "exec", "--count", str(exec_count)], args.runs)
    rows.append(("executable /bin/true, deeprc (client → agent → executor → DONE)", exec_count,
                 summary(exec_lines, "tasks_per_s"), summary(exec_lines, "median_latency_us")))
    fork = subprocess.run([FORK, "--benchmark_format=json"], env=ENV, capture_output=True, text=True)
    fork_rate = ""
    if fork.returncode == 0:
        results = json.loads(fork.stdout)["benchmarks"]
        fork_rate = ", ".join(f"{b['name']}: {b.get('items_per_second', 0):,.0f}/s" for b in results)
    rows.append(("raw fork/exec/wait of /bin/true (fork_exec_bench, one loop)", "", fork_rate, ""))
    dask_exec = run_json(["/usr/bin/python3", DASK, "--kind", "exec", "--count",
                          str(2000 // scale)])
    rows.append(("executable /bin/true, dask.distributed (2 worker processes)", dask_exec["count"],
                 f"{dask_exec['tasks_per_s']:,.0f}", f"{dask_exec['median_latency_us']:,.0f}"))

    one = repeated(bench + ["--kind", "function", "--count", str(function_count), "--workers",
                            "2"], args.runs)
    rows.append(("no-op function tasks, 1 master × 2 worker ranks", function_count,
                 summary(one, "tasks_per_s"), summary(one, "median_latency_us")))
    four = repeated(bench + ["--kind", "function", "--count", str(function_count), "--workers",
                             "2", "--masters", "4"], args.runs)
    rows.append(("no-op function tasks, 4 masters × 2 worker ranks", function_count,
                 summary(four, "tasks_per_s"), summary(four, "median_latency_us")))
    trip = repeated(bench + ["--kind", "function", "--count", str(5000 // scale), "--workers", "2",
                             "--concurrency", "1"], args.runs)
    rows.append(("no-op function tasks one at a time (round trip), 1 master × 2 ranks",
                 5000 // scale, summary(trip, "tasks_per_s"), summary(trip, "median_latency_us")))
    dask_noop = run_json(["/usr/bin/python3", DASK, "--kind", "noop", "--count",
                          str(5000 // scale)])
    rows.append(("no-op function tasks, dask.distributed (2 worker processes)", dask_noop["count"],
                 f"{dask_noop['tasks_per_s']:,.0f}", f"{dask_noop['median_latency_us']:,.0f}"))
    simulated = run_json(bench + ["--kind", "function", "--simulate", "--masters", "100",
                                  "--workers", "10000", "--count", str(2_000_000 // scale)])
    rows.append((f"simulated dispatch, 100 masters × 10,000 virtual ranks each "
                 f"({simulated['workers']:,} in all)", simulated["count"],
                 f"{simulated['assignments_per_s']:,.0f} assignments/s", ""))
    mix = repeated(bench + ["--kind", "function", "--count", str(600 // scale), "--workers", "4",
                            "--widths", "1", "2", "4", "--duration-ms", "20"], args.runs)
    # utilization: nominal rank-time (ranks × 20 ms); busy: ranks × (final − EXECUTING).
    mix_note = (f"utilization {summary(mix, 'utilization', '{:.2f}')}, busy "
                f"{summary(mix, 'busy_utilization', '{:.2f}')}")
    rows.append(("mix of 1-, 2-, 4-rank 20 ms function tasks on 4 ranks", mix[0]["count"],
                 summary(mix, "tasks_per_s"), mix_note))

    command = "/usr/bin/python3 bench/run_tasks.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [BEGIN, "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.node()} ({os.cpu_count()} cores; load average "
             f"{os.getloadavg()[0]:.1f} at the end). Command: `{command}`. deeprc rows: median "
             f"(range) of {args.runs} runs.", "",
             "| what | tasks | tasks/s | median latency µs (or note) |", "|---|---|---|---|"]
    for what, count, rate, latency in rows:
        count_text = f"{count:,}" if isinstance(count, int) else str(count)
        lines.append(f"| {what} | {count_text} | {rate} | {latency} |")
    lines += ["", "Latency: submission to the final state at the client. With all tasks submitted "
              "at once it is mostly time waiting in the queue; the one-at-a-time row is the round "
              "trip.", "", END]
    section = "\n".join(lines)
    publish(output, BEGIN, END, section,
            "## Task rates side by side (`deeprc bench tasks`, dask)")


if __name__ == "__main__":
    main()
