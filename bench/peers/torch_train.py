#!/usr/bin/python3
"""The speed peer of `deeprc train`: NBEATS and LSTM written in Python PyTorch (Debian
python3-torch 1.13) with the same architecture, hyperparameters, windows and threads as deeprc's
models (src/train/torch/models.cpp), trained for the same steps. Prints one JSON line per run
with samples_per_s (windows per second), as `deeprc train` does.

  bench/peers/torch_train.py --model NBEATS --data FILE --h 48 --input-size 96 --max-steps 100 \
      [--batch-size 1024] [--threads 1] [--scaler identity|standard]
"""
import argparse
import json
import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn as nn


def block_layers(n_in, units, n_theta):
    layers = [nn.Linear(n_in, units[0])]
    previous = units[0]
    for unit in units:
        layers += [nn.Linear(previous, unit), nn.ReLU()]
        previous = unit
    layers.append(nn.Linear(previous, n_theta))
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, kind, L, h, units, backcast_basis=None, forecast_basis=None):
        super().__init__()
        self.kind, self.L, self.h = kind, L, h
        if kind == "identity":
            n_theta = L + h
        else:
            self.register_buffer("backcast_basis", backcast_basis)
            self.register_buffer("forecast_basis", forecast_basis)
            n_theta = 2 * forecast_basis.shape[0]
        self.layers = block_layers(L, units, n_theta)

    def forward(self, residual):
        theta = self.layers(residual)
        if self.kind == "identity":
            return theta[:, : self.L], theta[:, self.L:].unsqueeze(-1)
        rows = self.forecast_basis.shape[0]
        backcast = theta[:, :rows] @ self.backcast_basis
        forecast = torch.einsum("bpq,pt->btq", theta[:, rows:].reshape(len(theta), rows, 1),
                                self.forecast_basis)
        return backcast, forecast


def polynomials(size, count):
    t = torch.arange(size, dtype=torch.float64) / size
    return torch.stack([t ** i for i in range(count)]).float()


def harmonics(H, L, h):
    freq = np.append(np.zeros(1), np.arange(H, H / 2 * h) / H)[None, :]
    back = -2 * np.pi * (np.arange(L)[:, None] / h) * freq
    fore = 2 * np.pi * (np.arange(h)[:, None] / h) * freq
    basis = lambda g: torch.tensor(np.concatenate([np.cos(g).T, np.sin(g).T]), dtype=torch.float32)
    return basis(back), basis(fore)


class NBEATS(nn.Module):
    def __init__(self, L, h, units=(512, 512, 512)):
        super().__init__()
        back_s, fore_s = harmonics(2, L, h)
        self.blocks = nn.ModuleList([
            Block("identity", L, h, units),
            Block("trend", L, h, units, polynomials(L, 3), polynomials(h, 3)),
            Block("seasonality", L, h, units, back_s, fore_s)])

    def forward(self, x, mask):
        residual, mask = x.flip(-1), mask.flip(-1)
        forecast = x[:, -1:, None]
        for block in self.blocks:
            backcast, block_forecast = block(residual)
            residual = (residual - backcast) * mask
            forecast = forecast + block_forecast
        return forecast[..., 0]


class LSTMModel(nn.Module):
    def __init__(self, L, h, hidden=200, layers=2, context=10, decoder_hidden=200):
        super().__init__()
        self.h, self.context = h, context
        self.encoder = nn.LSTM(1, hidden, num_layers=layers, batch_first=True)
        self.adapter = nn.Linear(hidden, context * h)
        self.decoder = nn.Sequential(nn.Linear(context, decoder_hidden), nn.ReLU(),
                                     nn.Linear(decoder_hidden, 1))

    def forward(self, x, mask):
        states, _ = self.encoder(x.unsqueeze(-1))
        context = self.adapter(states[:, -1]).reshape(len(x), self.h, self.context)
        return self.decoder(context)[..., 0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, choices=["NBEATS", "LSTM"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--h", type=int, required=True)
    parser.add_argument("--input-size", type=int, required=True)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scaler", default=None, choices=["identity", "standard", "robust"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    L, h = args.input_size, args.h
    batch = args.batch_size or (1024 if args.model == "NBEATS" else 128)
    scaler = args.scaler or ("identity" if args.model == "NBEATS" else "robust")

    frame = pd.read_csv(args.data).sort_values(["unique_id", "ds"])
    series = [group["y"].to_numpy(np.float32) for _, group in frame.groupby("unique_id")]
    windows = [(s, end) for s, values in enumerate(series) for end in range(L, len(values) - h + 1)]
    model = NBEATS(L, h) if args.model == "NBEATS" else LSTMModel(L, h)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, max(args.max_steps // 3, 1), 0.5)
    random = np.random.default_rng(1)
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(args.max_steps):
        chosen = random.integers(0, len(windows), batch)
        x = np.empty((batch, L), np.float32)
        y = np.empty((batch, h), np.float32)
        for b, index in enumerate(chosen):
            s, end = windows[index]
            x[b], y[b] = series[s][end - L:end], series[s][end:end + h]
        if scaler == "standard":
            loc, scale = x.mean(1, keepdims=True), x.std(1, keepdims=True)
        elif scaler == "robust":
            loc = np.median(x, 1, keepdims=True)
            scale = np.median(np.abs(x - loc), 1, keepdims=True)
        else:
            loc, scale = np.zeros((batch, 1), np.float32), np.ones((batch, 1), np.float32)
        scale[scale < 1e-6] = 1
        x, y = torch.from_numpy((x - loc) / scale), torch.from_numpy((y - loc) / scale)
        optimizer.zero_grad()
        loss = (model(x, torch.ones_like(x)) - y).abs().mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    print(json.dumps({"model": args.model, "peer": "pytorch", "torch": torch.__version__,
                      "threads": args.threads, "steps": args.max_steps, "batch": batch,
                      "train_seconds": round(seconds, 3),
                      "samples_per_s": round(args.max_steps * batch / seconds, 1),
                      "final_loss": float(loss), "cpu_seconds": round(cpu_seconds, 3)}))


if __name__ == "__main__":
    main()
