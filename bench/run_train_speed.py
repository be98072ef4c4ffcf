#!/usr/bin/python3
"""Training speed of `deeprc train` against the same models in Python PyTorch
(bench/peers/torch_train.py: same architecture, hyperparameters, windows, threads), and the
2-rank data-parallel speed-up; written into bench/RESULTS.md between the train-speed markers.

  1. NBEATS and LSTM on M4 Hourly (h 48, input size 96, the models' default batches: 1024 and
     128 windows), 1 LibTorch thread each, deeprc and the peer alternating, `--repeat` runs each;
     windows per second of wall time and per CPU second of the process (the machine is shared:
     CPU time is the steadier measure), medians.
  2. `deeprc train --ranks 2` (MPI, 1 thread per rank, the same global batch split in two)
     against 1 rank: windows per second of wall time.

Usage: nice -n 19 /usr/bin/python3 bench/run_train_speed.py [--steps 30] [--repeat 3]
       [--parts peer,ranks] [--output bench/RESULTS.md]
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

from results_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPRC = os.path.join(ROOT, "build", "apps", "deeprc")
PEER = os.path.join(ROOT, "bench", "peers", "torch_train.py")
DATA = os.path.join(ROOT, "tests", "data", "forecast", "m4_hourly_train.csv")
BEGIN = "<!-- train-speed:begin -->"
END = "<!-- train-speed:end -->"
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1")


def run_json(command):
    print("+", " ".join(shlex.quote(c) for c in command), file=sys.stderr, flush=True)
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    line = json.loads([l for l in done.stdout.splitlines() if l.startswith("{")][-1])
    print(json.dumps(line), flush=True)
    return line


def deeprc(model, steps, ranks=0):
    command = [DEEPRC, "train", "--model", model, "--data", DATA, "--h", "48", "--input-size",
               "96", "--max-steps", str(steps), "--set", "threads=1"]
    if ranks:
        command += ["--ranks", str(ranks)]
    return run_json(command)


def peer(model, steps):
    return run_json(["/usr/bin/python3", PEER, "--model", model, "--data", DATA, "--h", "48",
                     "--input-size", "96", "--max-steps", str(steps), "--threads", "1"])


def rates(line):
    windows = line["samples_per_s"] * line["train_seconds"]
    return line["samples_per_s"], windows / line["cpu_seconds"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="peer,ranks")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    args = parser.parse_args()
    parts = args.parts.split(",")
    load = os.getloadavg()[0]
    rows_peer, rows_ranks = [], []
    if "peer" in parts:
        for model in ["NBEATS", "LSTM"]:
            ours, theirs = [], []
            for _ in range(args.repeat):
                ours.append(rates(deeprc(model, args.steps)))
                theirs.append(rates(peer(model, args.steps)))
            wall = [statistics.median(r[0] for r in runs) for runs in (ours, theirs)]
            cpu = [statistics.median(r[1] for r in runs) for runs in (ours, theirs)]
            rows_peer.append((model, wall, cpu))
    if "ranks" in parts:
        for model in ["NBEATS", "LSTM"]:
            one = statistics.median(deeprc(model, args.steps)["samples_per_s"]
                                    for _ in range(args.repeat))
            two = statistics.median(deeprc(model, args.steps, 2)["samples_per_s"]
                                    for _ in range(args.repeat))
            rows_ranks.append((model, one, two))
    load = max(load, os.getloadavg()[0])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [BEGIN, "",
            f"Run {date} on {platform.node()} ({os.cpu_count()} cores shared with other work; "
            f"1-minute load up to {load:.1f}): `nice -n 19 /usr/bin/python3 "
            f"bench/run_train_speed.py --steps {args.steps} --repeat {args.repeat}`. M4 Hourly "
            "(`tests/data/forecast/m4_hourly_train.csv`), h 48, input size 96, default batches "
            "(NBEATS 1024 windows, LSTM 128), MAE, Adam; 1 LibTorch thread per process "
            "(OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1), PyTorch 1.13 on both sides (Debian "
            "libtorch-dev and python3-torch). Medians.", ""]
    if rows_peer:
        text += ["| model | deeprc windows/s | PyTorch windows/s | deeprc windows/CPU-s | "
                 "PyTorch windows/CPU-s | deeprc / PyTorch (CPU) |",
                 "|---|---:|---:|---:|---:|---:|"]
        text += [f"| {m} | {w[0]:,.0f} | {w[1]:,.0f} | {c[0]:,.0f} | {c[1]:,.0f} | "
                 f"{c[0] / c[1]:.2f}x |" for m, w, c in rows_peer]
        text.append("")
    if rows_ranks:
        text += ["Data-parallel (`deeprc train --ranks 2`, MPI, 1 thread per rank, the same "
                 "global batch split over the ranks, gradients all-reduced in 4 MiB buckets):", "",
                 "| model | 1 rank windows/s | 2 ranks windows/s | speed-up |",
                 "|---|---:|---:|---:|"]
        text += [f"| {m} | {one:,.0f} | {two:,.0f} | {two / one:.2f}x |"
                 for m, one, two in rows_ranks]
        text.append("")
    text.append(END)
    write_section(args.output, BEGIN, END, "\n".join(text), "## Training speed (issue 6)")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
