#!/usr/bin/env python3
"""PyTorch peer of `cargo bench -p sextant-trainer --bench churn_bench`: the same sequence churn
network (GRU hidden 64 over 104 weeks x 4 channels, country embedding 4, RFM dense 6->16, head
84->32->1, BCE with logits, Adam) at batch 256, on CPU with 2 threads.

Prints training steps/s and inference sequences/s, in the same shape as the Rust bench.
Needs `pip install torch numpy`. Usage: python3 scripts/bench/churn_torch.py [--steps 10] [--batches 40] [--threads 2] [--rounds 3]
The last line, `RESULT {json}`, is what `churn_bench` reads when it runs this script in the same run.
Inference is the best of --rounds timed rounds (as in the Rust bench).
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn

WEEKS, CHANNELS, HIDDEN, BATCH, CATEGORIES, AGGREGATES = 104, 4, 64, 256, 6, 6


class SequenceChurnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(CHANNELS, HIDDEN)  # time-major [weeks, batch, channels]
        self.embedding = nn.Embedding(CATEGORIES, 4)
        self.aggregate = nn.Linear(AGGREGATES, 16)
        self.head_hidden = nn.Linear(HIDDEN + 4 + 16, 32)
        self.head_out = nn.Linear(32, 1)

    def forward(self, seq, category, aggregates):
        _, h = self.gru(seq)
        joined = torch.cat(
            [h[0], self.embedding(category), torch.relu(self.aggregate(aggregates))], dim=1
        )
        return self.head_out(torch.relu(self.head_hidden(joined)))


def synthetic(rng, n):
    active = rng.random((WEEKS, n)) < 1 / 3
    orders = active * (1 + rng.integers(0, 3, (WEEKS, n)))
    raw = np.stack(
        [
            orders,
            orders * (10 + rng.integers(0, 500, (WEEKS, n))),
            orders * (1 + rng.integers(0, 40, (WEEKS, n))),
            active * (rng.random((WEEKS, n)) < 0.05),
        ],
        axis=2,
    ).astype(np.float32)
    # Same preprocessing as the Rust bench builds from raw values: log1p, standardise.
    x = np.log1p(raw)
    x = (x - x.mean(axis=(0, 1))) / (x.std(axis=(0, 1)) + 1e-6)
    aggs = np.log1p(rng.integers(0, 300, (n, AGGREGATES)).astype(np.float32))
    return (
        torch.from_numpy(x),
        torch.from_numpy(rng.integers(0, CATEGORIES, n)),
        torch.from_numpy((aggs - aggs.mean(0)) / (aggs.std(0) + 1e-6)),
        torch.from_numpy((rng.random((n, 1)) < 0.5).astype(np.float32)),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    rng = np.random.default_rng(42)
    print(
        f"pytorch {torch.__version__}: GRU hidden {HIDDEN}, {WEEKS} weeks x {CHANNELS} channels, "
        f"batch {BATCH}; threads {torch.get_num_threads()}"
    )
    seq, cat, agg, y = synthetic(rng, BATCH * 4)
    batches = [
        (seq[:, i : i + BATCH], cat[i : i + BATCH], agg[i : i + BATCH], y[i : i + BATCH])
        for i in range(0, BATCH * 4, BATCH)
    ]
    model = SequenceChurnNet()
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()

    def step(i):
        s, c, g, t = batches[i % len(batches)]
        optim.zero_grad()
        loss = loss_fn(model(s, c, g), t)
        loss.backward()
        optim.step()

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i)
    per = (time.perf_counter() - t0) / a.steps
    print(
        f"pytorch training:    {1 / per:8.2f} steps/s  ({per * 1e3:.1f} ms/step, {BATCH / per:.0f} sequences/s)"
    )
    model.eval()
    with torch.no_grad():
        s, c, g, _ = batches[0]
        torch.sigmoid(model(s, c, g))
        rate = 0.0
        cpu0 = time.process_time()
        for _ in range(max(1, a.rounds)):
            t0 = time.perf_counter()
            for i in range(a.batches):
                s, c, g, _ = batches[i % len(batches)]
                torch.sigmoid(model(s, c, g))
            rate = max(rate, a.batches * BATCH / (time.perf_counter() - t0))
        per_cpu = max(1, a.rounds) * a.batches * BATCH / max(time.process_time() - cpu0, 1e-9)
    print(
        f"pytorch inference:   {rate:8.0f} sequences/s (batch {BATCH}, {a.threads} thread(s), "
        f"preprocessed tensors, best of {max(1, a.rounds)}); {per_cpu:.0f} sequences per CPU-second"
    )
    print(
        "RESULT "
        + json.dumps({"train_steps_per_s": 1 / per, "infer_seq_per_s": rate, "infer_seq_per_cpu_s": per_cpu})
    )


if __name__ == "__main__":
    main()
