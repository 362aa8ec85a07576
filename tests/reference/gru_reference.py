#!/usr/bin/env python3
"""Write (or --check) crates/model/tests/fixtures/gru_torch.json: PyTorch's nn.GRU on
seeded weights and inputs, and its final hidden states. The Rust test `gru` in
crates/model loads the same weights into iotids' GRU (reset_after = true, PyTorch's
variant) and compares the final states.

The network: 2 layers, input 5, hidden 4, batch 2, sequence 3, batch_first. Weights are
PyTorch's default initialisation under a fixed seed, rounded to float32; PyTorch then
runs in float64 on those float32 values, so the expected states are exact to about 1e-15
and the Rust test's tolerance (1e-5) is all float32 rounding on its side.

usage: gru_reference.py [--check]
  --check  rerun PyTorch on the checked-in weights and inputs and fail if its states
           differ from the checked-in ones (pip install -r requirements-torch.txt).
"""
import json
import os
import sys

import torch

PATH = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "model", "tests", "fixtures",
                    "gru_torch.json")
INPUT, HIDDEN, LAYERS, BATCH, SEQ = 5, 4, 2, 2, 3
NAMES = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


def make_case():
    torch.manual_seed(2026)
    gru = torch.nn.GRU(INPUT, HIDDEN, num_layers=LAYERS, batch_first=True)
    x = torch.randn(BATCH, SEQ, INPUT)
    layers = []
    for k in range(LAYERS):
        # Flattened row-major in PyTorch's own layout: [3*hidden, in], gate rows r, z, n.
        layers.append({name: [float(v) for v in getattr(gru, f"{name}_l{k}").detach().flatten()]
                       for name in NAMES})
    return {"input_size": INPUT, "hidden_size": HIDDEN, "num_layers": LAYERS,
            "batch": BATCH, "seq": SEQ, "layers": layers,
            "x": [float(v) for v in x.flatten()]}


def run(case):
    """h_n of PyTorch's GRU on the case's (float32-valued) weights and inputs, in float64:
    [num_layers, batch, hidden], flattened."""
    gru = torch.nn.GRU(case["input_size"], case["hidden_size"], num_layers=case["num_layers"],
                       batch_first=True).double()
    with torch.no_grad():
        for k, layer in enumerate(case["layers"]):
            for name in NAMES:
                p = getattr(gru, f"{name}_l{k}")
                p.copy_(torch.tensor(layer[name], dtype=torch.float32).double().reshape(p.shape))
        x = torch.tensor(case["x"], dtype=torch.float32).double()
        x = x.reshape(case["batch"], case["seq"], case["input_size"])
        _, h_n = gru(x)
    return [float(v) for v in h_n.flatten()]


def main():
    if "--check" in sys.argv:
        data = json.load(open(PATH))
        got = torch.tensor(run(data))
        want = torch.tensor(data["h_n"])
        bad = int((got - want).abs().gt(1e-12).sum())
        if bad:
            print(f"FAIL h_n: PyTorch {torch.__version__} gives {got.tolist()}, fixture has {want.tolist()}")
        print(f"{len(want) - bad} passed, {bad} failed")
        sys.exit(1 if bad else 0)
    case = make_case()
    case["h_n"] = run(case)
    case["made_by"] = f"tests/reference/gru_reference.py, PyTorch {torch.__version__}"
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    with open(PATH, "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    print(f"wrote {PATH}")


main()
