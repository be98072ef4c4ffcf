#!/usr/bin/python3
"""dask.dataframe on the formulas of `deeprc bench table` (apps/deeprc/bench_command.cpp), on a
local dask.distributed cluster of --workers processes with one thread each — the peer of
`deeprc bench table OP --ranks P` with P = --workers.

Each partition builds its rows [start, end) of the formulas on its worker, and the inputs are
persisted before the clock starts, so the timing covers the operator only (as deeprc's does):
join merges on k (hash shuffle of both sides), groupby sums v by g, sort orders s. The result
is persisted on the workers and waited for; the checksum is computed afterwards, untimed.

Usage: /usr/bin/python3 bench/peers/dask_table.py OP [OP...] --rows N [--workers 2]
       [--partitions-per-worker 4] [--repeat 3]
Prints one JSON line per operator: system, op, rows, workers, seconds (median), first_seconds,
checksum.
"""
import argparse
import json
import statistics
import time

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, wait

MASK64 = (1 << 64) - 1


def int_sum(series):
    return int(series.astype(np.int64).sum()) & MASK64


def ranges(n, parts):
    return [(n * p // parts, n * (p + 1) // parts) for p in range(parts)]


def join_left(bounds, n):
    i = np.arange(bounds[0], bounds[1], dtype=np.int64)
    return pd.DataFrame({"k": i * 7919 % n, "a": i})


def join_right(bounds, n):
    i = np.arange(bounds[0], bounds[1], dtype=np.int64)
    return pd.DataFrame({"k": i * 104729 % n, "b": i})


def groupby_input(bounds, n):
    i = np.arange(bounds[0], bounds[1], dtype=np.int64)
    return pd.DataFrame({"g": i * 7919 % 100000, "v": i})


def sort_input(bounds, n):
    i = np.arange(bounds[0], bounds[1], dtype=np.int64)
    return pd.DataFrame({"s": i * 2654435761 % 1000000007})


def frame(make, n, parts):
    return dd.from_map(make, ranges(n, parts), n=n)


def prepare(client, op, n, parts):
    """(inputs to persist, operator on the persisted inputs, checksum of a computed result)"""
    if op == "join":
        inputs = [frame(join_left, n, parts), frame(join_right, n, parts)]
        return (inputs,
                lambda left, right: left.merge(right, on="k", how="inner", npartitions=parts,
                                               shuffle="tasks"),
                lambda out: (int_sum(out["a"]) + 2 * int_sum(out["b"])) & MASK64)
    if op == "groupby":
        inputs = [frame(groupby_input, n, parts)]
        return (inputs,
                lambda table: table.groupby("g").v.sum(split_out=parts).reset_index(),
                lambda out: (31 * int_sum(out["g"]) + int_sum(out["v"])) & MASK64)
    if op == "sort":
        inputs = [frame(sort_input, n, parts)]

        def checksum(out):
            positions = np.arange(len(out), dtype=np.uint64)
            return int((positions * out["s"].to_numpy().astype(np.uint64)).sum(dtype=np.uint64))
        return (inputs, lambda table: table.sort_values("s", npartitions=parts), checksum)
    raise SystemExit(f"unknown operator {op}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions-per-worker", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    parts = args.workers * args.partitions_per_worker
    dask.config.set({"dataframe.shuffle.method": "tasks"})
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit=0) as cluster, Client(cluster) as client:
        for op in args.ops:
            inputs, operator, checksum = prepare(client, op, args.rows, parts)
            inputs = client.persist(inputs)
            wait(inputs)
            seconds = []
            result = None
            for _ in range(args.repeat):
                result = None
                start = time.perf_counter()
                result = client.persist(operator(*inputs))
                wait(result)
                seconds.append(time.perf_counter() - start)
            value = checksum(result.compute())
            print(json.dumps({"system": "dask", "op": op, "rows": args.rows,
                              "workers": args.workers, "partitions": parts,
                              "seconds": round(statistics.median(seconds), 4),
                              "first_seconds": round(seconds[0], 4), "checksum": value}),
                  flush=True)
            del inputs, result


if __name__ == "__main__":
    main()
