#!/usr/bin/env bash
# The MQTTset results of the README: the GRU on held-out flows (flow split, seed 42,
# 64/16/20), window 1 vs window K, with and without the settings that help a neural
# network on these packet fields, and with the per-flow timing features (--flow-timing).
# Each run is trained, then evaluated on the whole file so benches/split_metrics.py can
# give the validation numbers (used for choosing settings) beside the test ones.
# Usage: benches/mqttset.sh [iotids binary] [data dir]
set -euo pipefail
bin=${1:-target/release/iotids}
data=${2:-../shared/data}/mqttset/mqttset-train.csv
out=${OUT:-/tmp/iotids-mqttset}
here=$(dirname "$0")
mkdir -p "$out"
run() { # name, flags...
    local name=$1
    shift
    # --ensemble 1: the README's table was measured with one network each.
    "$bin" -q train "$data" --out "$out/$name" --epochs 60 --patience 10 --lr 0.003 --ensemble 1 "$@" >"$out/$name.log" 2>&1
    "$bin" -q evaluate "$data" --model "$out/$name" --out "$out/$name-eval" >"$out/$name-eval.log" 2>&1
    local split
    split=$(python3 "$here/split_metrics.py" "$out/$name" "$out/$name-eval")
    python3 - "$out/$name/metrics.json" "$name" "$*" "$split" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
v = json.loads(sys.argv[4])["validation"]
print(f"| {sys.argv[2]} | `{sys.argv[3]}` | {v['macro_f1']:.4f} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} | {m['roc_auc_macro']:.4f} |")
PY
}
nn="--log-scale --drop mqtt.topic --no-class-weights"
echo "| run | flags | validation macro-F1 | accuracy | macro-F1 | weighted-F1 | ROC AUC macro |"
echo "|---|---|---|---|---|---|---|"
run w1-defaults --window 1
run w1 --window 1 $nn
run w8 --window 8 $nn
run w16 --window 16 $nn
run w8-weighted --window 8 --log-scale --drop mqtt.topic
run w16-flow-iat --window 16 $nn --flow-timing --drop flow.index,host.iat_us
run w16-flow --window 16 $nn --flow-timing --drop host.iat_us
run w1-timing --window 1 $nn --flow-timing
run w8-timing --window 8 $nn --flow-timing
run w16-timing --window 16 $nn --flow-timing
run w32-timing --window 32 $nn --flow-timing
