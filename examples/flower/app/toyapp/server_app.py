"""Stock FedAvg over the Rust toy nodes; writes the final arrays and per-round metrics.

Starts from w = [[0,1,2],[3,4,5]] (float32) and b = [0.5] (float32), so the expected result
after R rounds is start + R * sum(index_i * examples_i) / sum(examples_i).
"""

import json

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rounds = int(context.run_config["num-server-rounds"])
    out_file = str(context.run_config["out-file"])
    initial = ArrayRecord(
        {
            "w": Array(np.arange(6, dtype=np.float32).reshape(2, 3)),
            "b": Array(np.array([0.5], dtype=np.float32)),
        }
    )
    strategy = FedAvg(min_train_nodes=2, min_evaluate_nodes=2, min_available_nodes=2)
    result = strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=rounds,
        timeout=120,
        train_config=ConfigRecord({"lr": 0.01}),
    )
    final = {k: v.numpy().tolist() for k, v in result.arrays.items()}
    summary = {
        "rounds": rounds,
        "arrays": final,
        "train_rounds": sorted(result.train_metrics_clientapp.keys()),
        "evaluate_rounds": sorted(result.evaluate_metrics_clientapp.keys()),
        "train_metrics": {
            str(k): dict(v) for k, v in result.train_metrics_clientapp.items()
        },
        "evaluate_metrics": {
            str(k): dict(v) for k, v in result.evaluate_metrics_clientapp.items()
        },
    }
    print("TOYAPP-RESULT " + json.dumps(summary))
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            json.dump(summary, f)
