#!/usr/bin/python3
"""pandas on the formulas of `deeprc bench table` (see apps/deeprc/bench_command.cpp).

Usage: /usr/bin/python3 pandas_bench.py OP [OP...] --rows N --threads T [--repeat R] [--path F]
pandas runs these operators on one thread whatever --threads says; the JSON line reports 1.
"""
import argparse
import json
import os
import resource
import statistics
import time

import numpy as np
import pandas as pd

MASK64 = (1 << 64) - 1


def int_sum(series):
    return int(series.astype(np.int64).sum()) & MASK64


def prepare(op, n, path):
    i = np.arange(n, dtype=np.int64)
    if op == "join":
        left = pd.DataFrame({"k": i * 7919 % n, "a": i})
        right = pd.DataFrame({"k": i * 104729 % n, "b": i})
        return (lambda: left.merge(right, on="k", how="inner"),
                lambda out: (int_sum(out["a"]) + 2 * int_sum(out["b"])) & MASK64)
    if op == "groupby":
        frame = pd.DataFrame({"g": i * 7919 % 100000, "v": i})
        return (lambda: frame.groupby("g", sort=False, as_index=False)["v"].sum(),
                lambda out: (31 * int_sum(out["g"]) + int_sum(out["v"])) & MASK64)
    if op == "sort":
        frame = pd.DataFrame({"s": i * 2654435761 % 1000000007})

        def checksum(out):
            positions = np.arange(len(out), dtype=np.uint64)
            return int((positions * out["s"].to_numpy().astype(np.uint64)).sum(dtype=np.uint64))
        return (lambda: frame.sort_values("s", kind="stable", ignore_index=True), checksum)
    if op == "unique":
        frame = pd.DataFrame({"u": i * 7919 % max(1, n // 4)})
        return (lambda: frame.drop_duplicates(), lambda out: int_sum(out["u"]))
    if op == "csv-read":
        path = path or f"/tmp/deeprc_bench_{n}.csv"
        if not os.path.exists(path):
            raise SystemExit(f"{path} does not exist: write it first with deeprc bench table csv-read")
        return (lambda: pd.read_csv(path, parse_dates=["day"]), lambda out: int_sum(out["id"]))
    if op == "csv-write":
        path = path or "/tmp/pandas_bench_write.csv"
        words = np.array(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                          "india", "juliett", "kilo", "lima", "mike", "november"], dtype=object)
        separators = np.where(i % 4 == 0, ", ", " ").astype(object)
        ratio = ((i * 17 % 1000000) / 7).astype(float)
        ratio[i % 10 == 0] = np.nan
        frame = pd.DataFrame({
            "id": i * 7919 % 100000007,
            "price": (i * 104729 % 10000000) / 100,
            "quantity": i * 31 % 20000 - 10000,
            "name": words[i % 14] + "_" + (i * 13 % 1000).astype(str).astype(object),
            "day": np.datetime64("1970-01-01") + (i * 7 % 20000).astype("timedelta64[D]"),
            "note": words[i * 5 % 14] + separators + (i % 100).astype(str).astype(object),
            "ratio": ratio,
        })
        return (lambda: frame.to_csv(path, index=False), lambda out: n)
    raise SystemExit(f"unknown operator {op}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", default="")
    args = parser.parse_args()
    for op in args.ops:
        run, checksum = prepare(op, args.rows, args.path)
        seconds = []
        value = 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = run()
            seconds.append(time.perf_counter() - start)
            value = checksum(out)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"system": "pandas", "op": op, "rows": args.rows, "threads": 1,
                          "seconds": round(statistics.median(seconds), 4),
                          "first_seconds": round(seconds[0], 4),
                          "peak_rss_mb": round(peak, 1), "checksum": value}), flush=True)


if __name__ == "__main__":
    main()
