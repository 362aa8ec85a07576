"""The iotids ServerApp: a stock Flower strategy trains iotids' GRU over iotids nodes.

The nodes are Rust SuperNodes: `iotids flower device` (a device directly under the
SuperLink) or `iotids flower edge` (an edge aggregator that runs its own devices' edge
rounds and answers with the edge model: hierarchical federated learning on Flower).

The app
1. runs iotids' statistics round over Flower `query` messages: every node answers a
   summary of its traffic (an edge, the merge of its devices'), and `iotids flower server`
   fits the preprocessing pipeline from the summaries alone (no rows leave a device);
2. trains with the stock strategy the federation's settings name (FedAvg, FedAvgM,
   FedProx, FedAdam, FedYogi), weighting replies by `num-examples`;
3. scores each round's global model on the validation file (centrally, through
   `iotids flower server score`) and writes the kept round as an iotids model directory
   that `iotids evaluate`, `predict` and `detect` read.

Run config: `iotids-bin`, `server-args` (flags of every `iotids flower server` call:
--validation, --out, the federation's settings, --test), `join-timeout`,
`round-timeout`, `summary-file`.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import time
from pathlib import Path

import flwr
import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp import strategy as stock

app = ServerApp()

ARRAY = "gru"  # iotids_net::flower::ARRAY


class Iotids:
    """Calls `iotids flower server STEP`; returns its JSON answer."""

    def __init__(self, binary: str, args: list[str]) -> None:
        self.binary = binary
        self.args = args

    def __call__(self, step: str, *extra: str, env: dict | None = None) -> dict:
        cmd = [self.binary, "--quiet", "flower", "server", step, *extra, *self.args]
        p = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
        )
        if p.returncode != 0:
            raise RuntimeError(
                f"`{shlex.join(cmd)}` failed (exit {p.returncode}):\n{p.stderr.strip()}"
            )
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        return json.loads(lines[-1])


def wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    start = time.time()
    while True:
        ids = sorted(grid.get_node_ids())
        if len(ids) >= n:
            return ids
        if time.time() - start > timeout:
            raise RuntimeError(f"{len(ids)} of {n} iotids nodes joined within {timeout:.0f} s")
        time.sleep(0.5)


def make_strategy(step: dict, nodes: int):
    """The stock strategy the federation's settings name."""
    fraction = float(step["fraction"])
    common = dict(
        fraction_train=fraction,
        fraction_evaluate=0.0,  # edges hold no traffic; the app scores centrally
        min_train_nodes=max(1, math.ceil(fraction * nodes)),
        min_evaluate_nodes=0,
        min_available_nodes=nodes,
    )
    name = step["strategy"]
    if name == "fedavg":
        return stock.FedAvg(**common)
    if name == "fedprox":
        # iotids devices read μ from the plan; FedProx also sends it as "proximal-mu".
        return stock.FedProx(**common)
    if name == "fedavgm":
        return stock.FedAvgM(
            **common,
            server_learning_rate=float(step["server_learning_rate"]),
            server_momentum=float(step["server_momentum"]),
        )
    opt = dict(
        eta=float(step["eta"]),
        beta_1=float(step["beta_1"]),
        beta_2=float(step["beta_2"]),
        tau=float(step["tau"]),
    )
    if name == "fedadam":
        return stock.FedAdam(**common, **opt)
    if name == "fedyogi":
        return stock.FedYogi(**common, **opt)
    raise ValueError(f"strategy {name!r}: not one iotids maps to a stock Flower strategy")


@app.main()
def main(grid: Grid, context: Context) -> None:
    t0 = time.time()
    cfg = context.run_config
    iotids = Iotids(str(cfg["iotids-bin"]), shlex.split(str(cfg["server-args"])))
    join_timeout = float(cfg["join-timeout"])
    round_timeout = float(cfg["round-timeout"])

    # 1. The statistics round over `query` messages.
    step = iotids("begin")
    state = Path(step["context"]).parent
    nodes = wait_for_nodes(grid, int(step["nodes"]), join_timeout)
    print(f"iotids: {len(nodes)} nodes joined; statistics round", flush=True)
    k = 0
    while step["next"] == "query":
        k += 1
        config = ConfigRecord(
            {
                "iotids.context": Path(step["context"]).read_bytes(),
                "iotids.task": Path(step["task"]).read_bytes(),
                "iotids.request": Path(step["request"]).read_bytes(),
            }
        )
        messages = [
            Message(RecordDict({"config": config}), dst_node_id=n, message_type=MessageType.QUERY)
            for n in nodes
        ]
        replies = list(grid.send_and_receive(messages, timeout=round_timeout))
        files = []
        for r in replies:
            if r.has_error():
                raise RuntimeError(
                    f"node {r.metadata.src_node_id} failed the statistics request: {r.error.reason}"
                )
            path = state / "answers" / f"{k}-{r.metadata.src_node_id}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(r.content["config"]["iotids.answer"])
            files.append(str(path))
        if len(files) < len(nodes):
            raise RuntimeError(
                f"{len(files)} of {len(nodes)} nodes answered statistics request {k}"
            )
        step = iotids("absorb", *files)
    statistics_seconds = time.time() - t0
    print(f"iotids: pipeline fitted in {k} requests ({statistics_seconds:.1f} s)", flush=True)

    # 2. Training with the stock strategy.
    initial = np.load(step["initial"]).astype(np.float32).ravel()
    train_config = ConfigRecord(
        {
            "iotids.context": Path(step["context"]).read_bytes(),
            "iotids.task": Path(step["task"]).read_bytes(),
        }
    )
    strategy = make_strategy(step, len(nodes))
    rounds = int(step["rounds"])
    counted: dict[int, dict] = {}
    started: dict[int, float] = {}
    tally = {"completed": 0, "failures": 0}

    configure = strategy.configure_train
    aggregate = strategy.aggregate_train

    sent: dict[int, int] = {}

    def configure_train(server_round, arrays, config, grid_):
        started[server_round] = time.time()
        messages = list(configure(server_round, arrays, config, grid_))
        sent[server_round] = len(messages)
        return messages

    def aggregate_train(server_round, replies):
        replies = list(replies)
        ok = [r for r in replies if not r.has_error()]
        # Error replies and nodes that did not answer within the round's timeout.
        failed = sent.get(server_round, len(replies)) - len(ok)
        tally["failures"] += failed
        for r in replies:
            if r.has_error():
                print(f"iotids: round {server_round}: node {r.metadata.src_node_id}: "
                      f"{r.error.reason}", flush=True)
        c = {"sampled": 0, "accepted": 0, "failed": 0, "late": 0, "secure_failures": 0}
        loss = acc = n = 0.0
        for r in ok:
            m = r.content["metrics"]
            examples = float(m["num-examples"])
            if "edge" in m:  # an edge: its devices' outcomes
                for key in ("accepted", "failed", "late", "secure_failures"):
                    c[key] += int(m.get(key, 0))
            else:  # a device
                c["accepted"] += 1
            if "train_loss" in m:
                loss += float(m["train_loss"]) * examples
                acc += float(m.get("train_accuracy", 0.0)) * examples
                n += examples
        if not any("edge" in r.content["metrics"] for r in ok):
            c["failed"] += failed
        c["sampled"] = c["accepted"] + c["failed"] + c["late"]
        if n > 0:
            c["train_loss"] = loss / n
            c["train_accuracy"] = acc / n
        counted[server_round] = c
        out = aggregate(server_round, replies)
        if out[0] is not None:
            tally["completed"] += 1
        counted[server_round]["training_seconds"] = time.time() - started.get(server_round, t0)
        return out

    strategy.configure_train = configure_train
    strategy.aggregate_train = aggregate_train

    scores: dict[int, dict] = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        c = dict(counted.get(server_round, {}))
        c["seconds"] = time.time() - started.get(server_round, t0)
        path = state / "rounds" / f"{server_round}.npy"
        np.save(path, arrays[ARRAY].numpy().astype(np.float32).ravel())
        s = iotids(
            "score",
            "--round",
            str(server_round),
            "--weights",
            str(path),
            env={"IOTIDS_FLOWER_ROUND": json.dumps(c)},
        )
        scores[server_round] = s | {"seconds": c["seconds"]}
        print(
            f"iotids: round {server_round}: validation macro-F1 {s['macro_f1']}, "
            f"{c['seconds']:.1f} s",
            flush=True,
        )
        return MetricRecord(
            {k: float(v) for k, v in s.items() if isinstance(v, (int, float)) and v is not None}
        )

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord({ARRAY: Array(initial)}),
        num_rounds=rounds,
        timeout=round_timeout,
        train_config=train_config,
        # Devices score what they are sent with the run's context; edges decline (no
        # traffic), so federated evaluation (a fraction-evaluate above 0 in
        # make_strategy) suits flat runs.
        evaluate_config=train_config,
        evaluate_fn=evaluate,
    )

    # 3. The kept round as an iotids model directory.
    done = iotids("finish")
    summary = {
        "flwr_version": flwr.__version__,
        "strategy": type(strategy).__name__,
        "rounds": rounds,
        "rounds_completed": tally["completed"],
        "failures": tally["failures"],
        "nodes": len(nodes),
        "statistics_requests": k,
        "statistics_seconds": statistics_seconds,
        "round_seconds": [scores[r]["seconds"] for r in sorted(scores)],
        "best_round": done["best_round"],
        "validation_macro_f1": done["validation_macro_f1"],
        "test_macro_f1": done["test_macro_f1"],
        "device_rows": done["device_rows"],
        "model": done["model"],
        "seconds": time.time() - t0,
    }
    target = str(cfg["summary-file"]) or str(state / "app.json")
    Path(target).write_text(json.dumps(summary, indent=2))
    print("iotids: " + json.dumps(summary), flush=True)
