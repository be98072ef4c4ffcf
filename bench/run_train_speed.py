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
import statistics
import sys

from results_md import run_json as run_json_with, write_section

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
    """The command's last JSON line."""
    return run_json_with(command, ENV)[-1]


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
    """Windows per second of wall time, and per CPU second of the (rank 0) process."""
    windows = line["samples_per_s"] * line["train_seconds"]
    return line["samples_per_s"], windows / line["cpu_seconds"]


def render(lines, command, load, output):
    """The section from the runs' JSON lines (a peer line has "peer"; deeprc's have "ranks")."""
    def median(model, peer, ranks, index):
        values = [rates(l)[index] for l in lines if l["model"] == model and
                  ("peer" in l) == peer and (peer or l["ranks"] == ranks)]
        return statistics.median(values) if values else None

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [BEGIN, "",
            f"Run {date} on {platform.node()} ({os.cpu_count()} cores shared with other work; "
            f"1-minute load up to {load:.1f}): `{command}` (the runs' JSON lines: "
            "`bench/train_speed_runs.jsonl`). M4 Hourly "
            "(`tests/data/forecast/m4_hourly_train.csv`), h 48, input size 96, default batches "
            "(NBEATS 1024 windows, LSTM 128), MAE, Adam; 1 LibTorch thread per process "
            "(OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1), PyTorch 1.13 on both sides (Debian "
            "libtorch-dev and python3-torch); deeprc and the peer alternate. Medians. When the "
            "machine is oversubscribed, wall-time rates swing 2x from run to run and "
            "windows per CPU second of the process are the steady comparison.", "",
            "| model | deeprc windows/s | PyTorch windows/s | deeprc windows/CPU-s | "
            "PyTorch windows/CPU-s | deeprc / PyTorch (CPU) |",
            "|---|---:|---:|---:|---:|---:|"]
    for model in ["NBEATS", "LSTM"]:
        ours = [median(model, False, 1, i) for i in (0, 1)]
        theirs = [median(model, True, 1, i) for i in (0, 1)]
        if None in ours or None in theirs:
            continue
        text.append(f"| {model} | {ours[0]:,.0f} | {theirs[0]:,.0f} | {ours[1]:,.0f} | "
                    f"{theirs[1]:,.0f} | {ours[1] / theirs[1]:.2f}x |")
    text += ["", "Data-parallel (`deeprc train --ranks 2`, MPI, 1 thread per rank, the same global "
             "batch split over the ranks, gradients all-reduced in 4 MiB buckets). Speed-up by "
             "CPU time: windows of the global batch per CPU second of rank 0, 2 ranks over 1 "
             "(what 2 ranks on 2 cores of their own give; rank 0 also spends CPU in the "
             "all-reduce); by wall time: as measured (on a loaded machine the two differ).", "",
             "| model | 1 rank windows/CPU-s | 2 ranks windows/CPU-s of rank 0 | speed-up (CPU) | "
             "1 rank windows/s | 2 ranks windows/s | speed-up (wall) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for model in ["NBEATS", "LSTM"]:
        one = [median(model, False, 1, i) for i in (0, 1)]
        two = [median(model, False, 2, i) for i in (0, 1)]
        if None in one or None in two:
            continue
        text.append(f"| {model} | {one[1]:,.0f} | {two[1]:,.0f} | {two[1] / one[1]:.2f}x | "
                    f"{one[0]:,.0f} | {two[0]:,.0f} | {two[0] / one[0]:.2f}x |")
    text += ["", END]
    write_section(output, BEGIN, END, "\n".join(text), "## Training speed (issue 6)")
    print(f"wrote {output}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parts", default="peer,ranks")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    parser.add_argument("--lines", default=os.path.join(ROOT, "bench", "train_speed_runs.jsonl"))
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the section from the lines of an earlier run")
    parser.add_argument("--load", type=float, default=0, help="with --render: the run's load")
    args = parser.parse_args()
    parts = args.parts.split(",")
    command = (f"nice -n 19 /usr/bin/python3 bench/run_train_speed.py --steps {args.steps} "
               f"--repeat {args.repeat}")
    if args.render:
        lines = [json.loads(l) for l in open(args.lines) if l.startswith("{")]
        render(lines, command, args.load, args.output)
        return
    load = os.getloadavg()[0]
    lines = []
    if "peer" in parts:
        for model in ["NBEATS", "LSTM"]:
            for _ in range(args.repeat):
                lines.append(deeprc(model, args.steps))
                lines.append(peer(model, args.steps))
    if "ranks" in parts:
        for model in ["NBEATS", "LSTM"]:
            lines += [deeprc(model, args.steps) for _ in range(args.repeat)]
            lines += [deeprc(model, args.steps, 2) for _ in range(args.repeat)]
    load = max(load, os.getloadavg()[0])
    with open(args.lines, "w") as out:
        out.writelines(json.dumps(line) + "\n" for line in lines)
    render(lines, command, load, args.output)


if __name__ == "__main__":
    main()
