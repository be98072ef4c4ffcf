#!/usr/bin/python3
"""Measures the in-pilot overhead of function tasks and writes it into bench/RESULTS.md (between
the overhead-bench markers): the Radical-Cylon weak-scaling join (hash) and sort, R rows per rank,
run k ways (k = 1, 2, 4)

  directly:   `deeprc bench table join sort --workload cylon --rows R --ranks k --threads 1`
              (mpirun -np k of the deeprc program itself), and
  in a pilot: `deeprc bench tasks --kind cylon --workers 4` (a pool of 4 deeprc-worker ranks in a
              local pilot; one bench.cylon task of k ranks at a time on k of them, over the
              task's MPI sub-communicator).

Both run the same data, operator and timing code (apps/bench_workload: from a barrier to the
slowest rank's end, median of --repeat runs in the process). Overhead = in-pilot seconds over
direct seconds - 1. The task's round trip (submission to its DONE event at the client) and its
body (the function's own run, data generation and all --repeat runs) are reported too; their
difference is what dispatch and the result's return cost. Both sides also report CPU: the
operation thread's, and (in the pilot) the whole process tree's over the round trip; the bound
column adds dispatch + return over the operation time to the pilot's CPU beyond the task
threads per second of round trip — what the runtime can add at most. Both sides run with
OMPI_MCA_mpi_yield_when_idle=1, as the pool's ranks do, and (unless --binding default) with
OMPI_MCA_hwloc_base_binding_policy=none: the pool's 4 ranks oversubscribe this 2-core machine, so
OpenMPI binds none of them, while `mpirun -np 1` or `-np 2` would bind each rank to a core — a
difference of launch policy, not of the runtime. Each (op, k) runs on both sides next to each
other, in alternating order, --runs times; the table gives the median over runs (range in
parentheses).
Usage: /usr/bin/python3 bench/run_overhead.py [--runs 3] [--rows 5000000] [--repeat 5]
       [--widths 1,2,4] [--quick]   (RESULTS.md: --runs 8, one --widths at a time)
"""
import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys

from results_md import publish, run_json, spread

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPRC = os.path.join(ROOT, "build", "apps", "deeprc")
BEGIN = "<!-- overhead-bench:begin -->"
END = "<!-- overhead-bench:end -->"
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")
OPS = ("join", "sort")
WIDTHS = (1, 2, 4)




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--binding", choices=["none", "default"], default="none",
                        help="none: no rank bound on either side; default: OpenMPI's choice")
    parser.add_argument("--widths", default="1,2,4", help="task widths k (ranks), e.g. 1")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 1 run, print only")
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = 100_000, 1
    output = args.output or ("" if args.quick else os.path.join(ROOT, "bench", "RESULTS.md"))
    if args.binding == "none":
        ENV["OMPI_MCA_hwloc_base_binding_policy"] = "none"
    widths = tuple(int(k) for k in args.widths.split(","))
    direct = {(op, k): [] for op in OPS for k in widths}
    pilot = {(op, k): [] for op in OPS for k in widths}
    loads = [os.getloadavg()[0]]
    pair = 0
    for run in range(args.runs):
        for k in widths:
            for op in OPS:
                pair += 1
                # Each measurement next to its pair, the order alternating, so that the machine's
                # load drifting hits both sides alike.
                sides = ["direct", "pilot"] if pair % 2 == 0 else ["pilot", "direct"]
                for side in sides:
                    if side == "direct":
                        command = [DEEPRC, "bench", "table", op, "--workload", "cylon",
                                   "--ranks", str(k)]
                    else:
                        command = [DEEPRC, "bench", "tasks", "--kind", "cylon", "--workers",
                                   str(max(WIDTHS)), "--widths", str(k), "--ops", op]
                    lines = run_json(command + ["--rows", str(args.rows), "--threads", "1",
                                                 "--repeat", str(args.repeat)], ENV, timeout=1800)
                    (direct if side == "direct" else pilot)[(op, k)] += lines
        loads.append(os.getloadavg()[0])

    command = "/usr/bin/python3 bench/run_overhead.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    lines = [BEGIN, "",
             f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.node()} ({os.cpu_count()} cores; load average {min(loads):.1f}–"
             f"{max(loads):.1f} during the run). Command: `{command}`", "",
             f"Radical-Cylon weak scaling, {args.rows:,} rows per rank, 1 thread per rank: the "
             "operation's seconds (slowest rank, median of "
             f"{args.repeat} runs in the process; median over {args.runs} runs, each pair side by side "
             "in alternating order, range in parentheses) started directly with mpirun and as one k-rank function task on a "
             "pool of 4 worker ranks. Round trip: the task from submission to its DONE event at "
             "the client; body: the function's own run (data generation and all runs); the rest "
             "is dispatch and return. 4 ranks run 2 per core on this 2-core machine. Binding: "
             + ("no rank bound on either side (OMPI_MCA_hwloc_base_binding_policy=none; the "
                "pool's ranks, oversubscribed, are never bound)." if args.binding == "none" else
                "OpenMPI's default (mpirun binds 1 or 2 ranks to cores; the pool's ranks, "
                "oversubscribed, are not bound)."), "",
             "Columns: the operation's wall seconds and CPU seconds (summed over the ranks; the "
             "thread running it) on both sides; dispatch + return = round trip - body; runtime "
             "CPU = the CPU the whole pilot (client, agent, master, mpirun, every pool rank, all "
             "threads: this process tree's CPU clocks) used over the round trip beyond the task "
             "threads' own, per second of round trip (share of one core). Bound = dispatch + "
             "return over the in-pilot operation time + runtime CPU share: what the pilot can add "
             "to one operation at most (its runtime CPU counted as if it all took the operation's "
             "cores).", "",
             "| op | ranks | mpirun s | function task s | wall difference | mpirun CPU s | "
             "function task CPU s | dispatch + return ms | runtime CPU | bound | checksums |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for op in OPS:
        for k in widths:
            d, p = direct[(op, k)], pilot[(op, k)]
            d_s = [line["seconds"] for line in d]
            p_s = [line["seconds"] for line in p]
            difference = statistics.median(p_s) / statistics.median(d_s) - 1
            rest = [(line["round_trip_seconds"] - line["body_seconds"]) * 1000 for line in p]
            runtime_share = [(line["pilot_cpu_seconds"] - line["body_cpu_seconds"]) /
                             line["round_trip_seconds"] for line in p]
            bound = [r / 1000 / line["seconds"] + share
                     for r, share, line in zip(rest, runtime_share, p)]
            same = {line["checksum"] for line in d} | {line["checksum"] for line in p}
            lines.append(
                f"| {op} | {k} | {spread(d_s)} | {spread(p_s)} | {difference * 100:+.1f}% | "
                f"{spread([line['operation_cpu_seconds'] for line in d])} | "
                f"{spread([line['operation_cpu_seconds'] for line in p])} | "
                f"{spread(rest, '{:.1f}')} | "
                f"{spread([x * 100 for x in runtime_share], '{:.2f}%')} | "
                f"{spread([x * 100 for x in bound], '{:.2f}%')} | "
                f"{'equal' if len(same) == 1 else 'DIFFER'} |")
    lines += ["", END]
    section = "\n".join(lines)
    publish(output, BEGIN, END, section,
            "## In-pilot overhead (Radical-Cylon join and sort: function task vs mpirun)")


if __name__ == "__main__":
    main()
