#!/usr/bin/env bash
# Runs the commands whose outputs tests/golden.rs pins, on a small generated file:
#   tests/golden/make.sh IOTIDS_BINARY OUT_DIR
# The outputs land in OUT_DIR; tests/golden.rs normalises them (the run directory becomes
# `$RUN`, rounds.csv loses its wall-time columns) and compares them byte for byte with
# tests/golden/expected/. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites expected/
# from the current code: do that only for a change meant to alter what users see.
set -euo pipefail
bin="$1"
out="$2"
mkdir -p "$out"
run() { "$bin" --quiet --threads 2 "$@"; }
run synth --rows 2500 --seed 11 --out "$out/data.csv"
# Flow windows, flow split, the timing columns, a few epochs, an ensemble of two.
run train "$out/data.csv" --out "$out/train" --window 4 --epochs 3 --patience 0 \
    --seed 5 --flow-timing --log-scale --ensemble 2 >/dev/null
run predict "$out/data.csv" --model "$out/train" --out "$out/predict.csv" --batch-rows 700
run evaluate "$out/data.csv" --model "$out/train" --out "$out/evaluate" >/dev/null
# The simulated hierarchy: 6 devices under 2 edges, FedAvgM, one device in ten dropping.
run federate "$out/data.csv" --out "$out/federate" --window 4 --devices 6 --edges 2 \
    --rounds 3 --strategy fedavgm --selection-window 1 --device-dropout 0.1 --seed 5 --no-central >/dev/null
