#!/usr/bin/env python3
"""GRU throughput of the Python peers, on the configuration of issue 3.

64 input features, hidden 64, one layer, 15 classes, batch 256, Adam, float32,
2 threads; windows T=1 and T=16. Prints one JSON line per (tool, measure):
  train_T{t}   samples/s of forward + backward + Adam step
  infer_T{t}   samples/s of forward only (no gradient)
  latency_T1   microseconds for one record (batch 1, T=1), median
Each figure is the median of `--repeat` timed runs of at least `--seconds` each, after
a warm-up (the same procedure as `iotids bench-gru`).

usage: gru_peers.py [torch|keras ...] [--repeat 3] [--seconds 1.0]
Peers: torch (nn.GRU + Linear head) and keras (Keras 3 GRU layer + Dense, the
seeds' stack, TensorFlow backend). benches/gru.sh installs them and runs this
script next to `iotids bench-gru` in the same run.
"""
import argparse
import json
import os
import statistics
import time

F, H, C, B = 64, 64, 15, 256


def timed(fn, seconds, repeat):
    """Median seconds per call of `fn` over `repeat` runs of at least `seconds` each,
    after a warm-up of a fifth of a run (as `iotids bench-gru` measures)."""

    def run(least):
        calls, start = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - start < least:
            fn()
            calls += 1
        return (time.perf_counter() - start) / calls

    run(seconds / 5)
    return statistics.median(run(seconds) for _ in range(repeat))


def bench_torch(repeat, seconds):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(F, H, batch_first=True)
            self.head = torch.nn.Linear(H, C)

        def forward(self, x):
            _, h = self.gru(x)
            return self.head(h[-1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.ones(C))
    out = []
    for t in (1, 16):
        x = torch.randn(B, t, F)
        y = torch.randint(0, C, (B,))

        def train():
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()

        def infer():
            with torch.no_grad():
                net(x)

        out.append(("torch", f"train_T{t}", B / timed(train, seconds, repeat)))
        out.append(("torch", f"infer_T{t}", B / timed(infer, seconds, repeat)))
    x1 = torch.randn(1, 1, F)

    def one():
        with torch.no_grad():
            net(x1)

    out.append(("torch", "latency_T1_us", 1e6 * timed(one, seconds, repeat)))
    return out


def bench_keras(repeat, seconds):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(0)
    out = []
    for t in (1, 16):
        model = keras.Sequential([keras.Input((t, F)), keras.layers.GRU(H), keras.layers.Dense(C)])
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = np.random.default_rng(0).normal(size=(B, t, F)).astype("float32")
        y = np.random.default_rng(1).integers(0, C, B)
        out.append(("keras", f"train_T{t}", B / timed(lambda: model.train_on_batch(x, y), seconds, repeat)))
        fwd = tf.function(lambda v: model(v, training=False))
        xt = tf.constant(x)
        out.append(("keras", f"infer_T{t}", B / timed(lambda: fwd(xt).numpy(), seconds, repeat)))
        if t == 1:
            x1 = tf.constant(x[:1])
            out.append(("keras", "latency_T1_us", 1e6 * timed(lambda: fwd(x1).numpy(), seconds, repeat)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tools", nargs="*", default=["torch", "keras"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.0, help="least length of one timed run")
    a = ap.parse_args()
    for tool in a.tools:
        rows = {"torch": bench_torch, "keras": bench_keras}[tool](a.repeat, a.seconds)
        for name, measure, value in rows:
            print(json.dumps({"tool": name, "measure": measure, "value": value}), flush=True)


main()
