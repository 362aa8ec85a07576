#!/usr/bin/env bash
# The MQTTset results of the README: the GRU on held-out flows (flow split, seed 42,
# 64/16/20), window 1 vs window K, with and without the settings that help a neural
# network on these packet fields. Usage: benches/mqttset.sh [iotids binary] [data dir]
set -euo pipefail
bin=${1:-target/release/iotids}
data=${2:-../shared/data}/mqttset/mqttset-train.csv
out=${OUT:-/tmp/iotids-mqttset}
mkdir -p "$out"
run() { # name, flags...
    local name=$1
    shift
    "$bin" -q train "$data" --out "$out/$name" --epochs 60 --patience 10 --lr 0.003 "$@" >"$out/$name.log" 2>&1
    python3 - "$out/$name/metrics.json" "$name" "$*" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | `{sys.argv[3]}` | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} | {m['roc_auc_macro']:.4f} |")
PY
}
echo "| run | flags | accuracy | macro-F1 | weighted-F1 | ROC AUC macro |"
echo "|---|---|---|---|---|---|"
run w1-defaults --window 1
run w1 --window 1 --log-scale --drop mqtt.topic --no-class-weights
run w8 --window 8 --log-scale --drop mqtt.topic --no-class-weights
run w16 --window 16 --log-scale --drop mqtt.topic --no-class-weights
run w8-weighted --window 8 --log-scale --drop mqtt.topic
