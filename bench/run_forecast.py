#!/usr/bin/python3
"""Forecast quality of the eleven Deep RC models, trained by `deeprc train`, written into
bench/RESULTS.md (between the forecast-quality markers):

  1. M4 Hourly (tests/data/forecast: 414 series, h = 48, input size 96, season 24): sMAPE and
     MASE per model, and the seasonal naive row (the M4 benchmark: sMAPE 13.912, MASE 1.193);
  2. US carrier passengers (../shared/data/forecast/us_carrier_passenger.csv, one monthly
     series: train on the first 274 months, forecast the last 24; h = 24, input size 24):
     MAE, RMSE, MAPE per model and seasonal naive (season 12).

Each model trains with its NeuralForecast defaults except what the STEPS / SETTINGS tables below
set (fewer steps than NeuralForecast's 1000-5000, chosen so the whole run takes about 30 minutes
on 2 shared cores); both tables print them beside the scores.

Usage: nice -n 19 /usr/bin/python3 bench/run_forecast.py [--quick] [--models A,B]
       [--parts m4,carrier] [--output bench/RESULTS.md]
Each run's JSON line goes into bench/forecast_runs.json, keyed by its settings, and the table is
rewritten after each run: a run already there is not repeated (delete the file to redo all), and
the two parts may run as two processes at once.
--quick trains 20 steps per model (a smoke run; RESULTS.md is written only with --output).
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from results_md import write_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPRC = os.path.join(ROOT, "build", "apps", "deeprc")
M4_TRAIN = os.path.join(ROOT, "tests", "data", "forecast", "m4_hourly_train.csv")
M4_TEST = os.path.join(ROOT, "tests", "data", "forecast", "m4_hourly_test.csv")
CARRIER = os.path.join(os.path.dirname(ROOT), "shared", "data", "forecast",
                       "us_carrier_passenger.csv")
BEGIN = "<!-- forecast-quality:begin -->"
END = "<!-- forecast-quality:end -->"
THREADS = 1  # 2 threads on 2 shared cores: OpenMP barriers under load made LSTM 6x slower
ENV = dict(os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS="1")

MODELS = ["NBEATS", "NHITS", "PatchTST", "LSTM", "GRU", "TCN", "DeepAR", "VanillaTransformer",
          "Autoformer", "FEDformer", "TimesNet"]

# M4 Hourly: (steps, windows per step) for each model, and settings that differ from the
# model's NeuralForecast defaults. Steps are few (NeuralForecast trains 1000-5000): the whole
# table must run in about 30 minutes on 2 shared cores with 1 thread per run; per window, the
# MLP family is ~50x cheaper than the attention models, so it gets more windows.
M4_STEPS = {"NBEATS": (600, 512), "NHITS": (600, 512), "LSTM": (100, 64), "GRU": (100, 64),
            "TCN": (150, 64), "DeepAR": (150, 64), "VanillaTransformer": (100, 32),
            "Autoformer": (80, 32), "FEDformer": (80, 32), "TimesNet": (200, 32),
            "PatchTST": (1000, 128)}
# Few steps: the attention models' default learning rate (1e-4, for 5000 steps) leaves them
# undertrained, so they take 1e-3; every model scales each window by its input's mean and
# standard deviation (NeuralForecast's M4 examples use scaler_type standard).
FAST = {"learning_rate": "1e-3", "scaler": "standard"}
M4_SETTINGS = {
    "NBEATS": {"scaler": "standard"}, "NHITS": {"scaler": "standard"},
    "LSTM": {"scaler": "standard"}, "GRU": {"scaler": "standard"}, "TCN": {"scaler": "standard"},
    "DeepAR": {"scaler": "standard"},
    "VanillaTransformer": FAST, "Autoformer": FAST, "FEDformer": FAST,
    # TimesNet's default (hidden 64, conv_hidden 64, 6 inception kernels up to 11x11, top_k 5)
    # trains ~1.5 windows/s here: a quarter of the width, 3 kernels and 3 periods.
    "TimesNet": {**FAST, "hidden_size": "16", "conv_hidden_size": "16", "num_kernels": "3",
                 "top_k": "3"},
    # PatchTST with 96 points of input stayed at sMAPE 15.3-15.5 (default width or 64, patches
    # 16/8 or 24/12, 1000 steps x 128). It is built for long inputs (its paper: 336): two weeks
    # in non-overlapping daily patches, at half the width (64, 4 heads, feed-forward 128).
    "PatchTST": {**FAST, "hidden_size": "64", "n_heads": "4", "linear_hidden_size": "128",
                 "patch_len": "24", "stride": "24"},
}
M4_INPUT = {"PatchTST": 336}
# US carrier: one series of 274 training months, 227 windows of input 24.
CARRIER_STEPS = {model: (300, 32) for model in MODELS}
CARRIER_STEPS.update({"VanillaTransformer": (150, 32), "Autoformer": (150, 32),
                      "FEDformer": (150, 32), "TimesNet": (150, 32)})
CARRIER_SETTINGS = {model: dict(M4_SETTINGS.get(model, {"scaler": "standard"}))
                    for model in MODELS}
CARRIER_SETTINGS["PatchTST"] = FAST  # input 24: the default patches (16, stride 8)


def run_train(model, data, h, input_size, steps, batch, settings, season, test=None):
    command = [DEEPRC, "train", "--model", model, "--data", data, "--h", str(h),
               "--input-size", str(input_size), "--max-steps", str(steps), "--season",
               str(season), "--set", f"batch_size={batch}", "--set", f"threads={THREADS}"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    if test:
        command += ["--test", test]
    print("+", " ".join(shlex.quote(c) for c in command), file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return {"model": model, "error": done.stderr.strip().splitlines()[-1:]}
    line = json.loads(done.stdout.strip().splitlines()[-1])
    line["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(line), flush=True)
    return line


def seasonal_naive(train, test, h, season):
    """M4's seasonal naive scored as the M4 competition does (sMAPE, MASE), plus MAE, RMSE and
    MAPE; one value per series, averaged."""
    scores = {"smape": [], "mase": [], "mae": [], "rmse": [], "mape": []}
    train = train.sort_values(["unique_id", "ds"])
    test = test.sort_values(["unique_id", "ds"])
    for uid, group in train.groupby("unique_id", sort=True):
        x = group["y"].to_numpy(float)
        y = test.loc[test["unique_id"] == uid, "y"].to_numpy(float)[:h]
        yhat = np.resize(x[-season:], h)
        error = np.abs(y - yhat)
        scores["smape"].append(200 * np.mean(error / (np.abs(y) + np.abs(yhat))))
        scores["mase"].append(np.mean(error) / np.mean(np.abs(x[season:] - x[:-season])))
        scores["mae"].append(np.mean(error))
        scores["rmse"].append(np.sqrt(np.mean(error ** 2)))
        scores["mape"].append(100 * np.mean(error[y != 0] / np.abs(y[y != 0])))
    return {key: float(np.mean(values)) for key, values in scores.items()}


def setting_text(batch, settings):
    parts = [f"batch {batch}"] + [f"{k}={v}" for k, v in settings.items()]
    return ", ".join(parts)


def run_key(part, model, input_size, steps, batch, settings):
    return "|".join([part, model, str(input_size), str(steps), str(batch)] +
                     [f"{k}={v}" for k, v in sorted(settings.items())])


def load_runs(path):
    return json.load(open(path)) if os.path.exists(path) else {}


def save_runs(path, runs):
    with open(path + ".tmp", "w") as out:
        json.dump(runs, out, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def plan(part, quick):
    """(model, input size, steps, batch, settings) of every run of a part."""
    steps_of, settings_of = (M4_STEPS, M4_SETTINGS) if part == "m4" else (CARRIER_STEPS,
                                                                          CARRIER_SETTINGS)
    for model in MODELS:
        steps, batch = steps_of[model]
        input_size = M4_INPUT.get(model, 96) if part == "m4" else 24
        yield model, input_size, 20 if quick else steps, batch, settings_of.get(model, {})


def write_table(output, runs, quick):
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    done = [line for line in runs.values() if "cpu_seconds" in line]
    cpu_minutes = sum(line["cpu_seconds"] for line in done) / 60
    wall_minutes = sum(line["wall_seconds"] for line in done) / 60
    text = [BEGIN, "",
            f"Written {date} on {platform.node()} ({os.cpu_count()} cores shared with other "
            f"work, load 8-15 during the runs), {THREADS} LibTorch thread per run, seed 1: "
            "`nice -n 19 /usr/bin/python3 bench/run_forecast.py` (each run's JSON line is kept "
            "in `bench/forecast_runs.json`; a run whose settings are unchanged is not repeated; "
            "the M4 and US carrier parts ran as two processes side by side). Every model is "
            "trained by `deeprc train` with NeuralForecast's defaults except the settings listed. "
            "Steps are far below NeuralForecast's 1000-5000, picked for about 30 minutes on this "
            f"machine: the wall times of the {len(done)} runs add up to {wall_minutes:.0f} "
            f"minutes (the machine was oversubscribed), their training loops' CPU times to "
            f"{cpu_minutes:.0f} minutes (CPU s below). Results are deterministic for a given "
            "seed and thread count (PatchTST's line repeated its trial run to the last digit).",
            ""]
    train, test = pd.read_csv(M4_TRAIN), pd.read_csv(M4_TEST)
    naive = seasonal_naive(train, test, 48, 24)
    text += ["M4 Hourly (414 series, h = 48, MASE with season 24; test "
             "`tests/data/forecast/m4_hourly_test.csv`):", "",
             "| model | sMAPE | MASE | training | CPU s |", "|---|---:|---:|---|---:|",
             f"| Seasonal naive (season 24) | {naive['smape']:.3f} | {naive['mase']:.3f} | | |"]
    for model, input_size, steps, batch, settings in plan("m4", quick):
        line = runs.get(run_key("m4", model, input_size, steps, batch, settings))
        if line is None:
            continue
        how = f"input {input_size}, {steps} steps, {setting_text(batch, settings)}"
        if "error" in line:
            text.append(f"| {model} | | | failed: {line['error']} | |")
        else:
            text.append(f"| {model} | {line['smape']:.3f} | {line['mase']:.3f} | {how} | "
                        f"{line['cpu_seconds']:.0f} |")
    text += ["", "NBEATS, NHITS and PatchTST beat seasonal naive on both measures. PatchTST's "
             "trials on 96 points of input (default width or 64, patches 16/8 or 24/12, 500-1000 "
             "steps, learning rate 1e-3) stayed at sMAPE 15.3-15.5; two weeks of input in daily "
             "patches brought it under naive (13.878), by a small margin. The other eight "
             "models had 80-200 small steps (2,500-10,000 windows against NBEATS' 307,000) and "
             "are far from converged: their rows measure this budget, not the architectures."]
    frame = pd.read_csv(CARRIER).sort_values("ds")
    naive = seasonal_naive(frame.iloc[:274], frame.iloc[274:], 24, 12)
    text += ["", "US carrier passengers (one monthly series, train on the first 274 months, "
             "forecast the last 24; h = 24, input size 24):", "",
             "| model | MAE | RMSE | MAPE % | training | CPU s |",
             "|---|---:|---:|---:|---|---:|",
             f"| Seasonal naive (season 12) | {naive['mae']:,.0f} | {naive['rmse']:,.0f} | "
             f"{naive['mape']:.2f} | | |"]
    for model, input_size, steps, batch, settings in plan("carrier", quick):
        line = runs.get(run_key("carrier", model, input_size, steps, batch, settings))
        if line is None:
            continue
        how = f"{steps} steps, {setting_text(batch, settings)}"
        if "error" in line:
            text.append(f"| {model} | | | | failed: {line['error']} | |")
        else:
            text.append(f"| {model} | {line['mae']:,.0f} | {line['rmse']:,.0f} | "
                        f"{line['mape']:.2f} | {how} | {line['cpu_seconds']:.1f} |")
    text += ["", END]
    write_section(output, BEGIN, END, "\n".join(text), "## Forecast quality (issue 6)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--parts", default="m4,carrier")
    parser.add_argument("--output", default=None)
    parser.add_argument("--runs", default=os.path.join(ROOT, "bench", "forecast_runs.json"))
    args = parser.parse_args()
    models = args.models.split(",")
    output = args.output or (None if args.quick else os.path.join(ROOT, "bench", "RESULTS.md"))
    runs_path = args.runs if not args.quick else "/tmp/forecast_runs_quick.json"
    for part in args.parts.split(","):
        for model, input_size, steps, batch, settings in plan(part, args.quick):
            if model not in models:
                continue
            key = run_key(part, model, input_size, steps, batch, settings)
            if key in load_runs(runs_path):
                continue
            if part == "m4":
                line = run_train(model, M4_TRAIN, 48, input_size, steps, batch, settings, 24,
                                 M4_TEST)
            else:
                # Without --test, deeprc train holds out the last h = 24 months.
                line = run_train(model, CARRIER, 24, input_size, steps, batch, settings, 12)
            runs = load_runs(runs_path)  # another part may run beside this one
            runs[key] = line
            save_runs(runs_path, runs)
            if output:
                write_table(output, runs, args.quick)
    if output:  # also when every run was kept from before
        write_table(output, load_runs(runs_path), args.quick)


if __name__ == "__main__":
    main()
