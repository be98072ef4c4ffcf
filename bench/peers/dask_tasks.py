#!/usr/bin/python3
"""dask.distributed on the work of `deeprc bench tasks`: N tasks on a local cluster of 2 worker
processes (one thread each, as the local pilot has 2 cores), each task running /bin/true as a
process (--kind exec, the same work as deeprc's executable tasks) or doing nothing (--kind noop,
the work of function tasks). Prints one JSON line like deeprc's: kind, count, seconds,
tasks_per_s, median_latency_us (submission to result at the client). Cluster start-up is not
timed.

Usage: /usr/bin/python3 bench/peers/dask_tasks.py --kind exec|noop --count N [--workers 2]
"""
import argparse
import json
import statistics
import subprocess
import time

from distributed import Client, LocalCluster, as_completed


def run_true(_):
    subprocess.run(["/bin/true"], check=True)
    return 0


def noop(_):
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["exec", "noop"], default="exec")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = run_true if args.kind == "exec" else noop
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(noop, -1).result()  # workers up and the function shipped once
        submitted = {}
        start = time.perf_counter()
        futures = []
        for i in range(args.count):
            submitted[i] = time.perf_counter()
            futures.append(client.submit(work, i, pure=False, key=f"task-{i}"))
        latencies = []
        for future in as_completed(futures):
            future.result()
            index = int(future.key.split("-")[1])
            latencies.append(time.perf_counter() - submitted[index])
        seconds = time.perf_counter() - start
    print(json.dumps({"system": "dask", "kind": args.kind, "count": args.count,
                      "workers": args.workers, "seconds": round(seconds, 4),
                      "tasks_per_s": round(args.count / seconds, 1),
                      "median_latency_us": round(statistics.median(latencies) * 1e6)}))


if __name__ == "__main__":
    main()
