#!/usr/bin/env bash
# The README's model comparison on MQTTset (issue 5): every baseline and the GRU on the
# flow split of seed 42, with the flags of the best GRU (benches/mqttset.sh), then the
# same without tcp.checksum, then the scikit-learn reference check.
# Usage: benches/compare.sh [iotids binary] [data dir]
set -euo pipefail
bin=${1:-target/release/iotids}
data=${2:-../shared/data}/mqttset/mqttset-train.csv
out=${OUT:-/tmp/iotids-compare}
here=$(dirname "$0")
# --ensemble 1: the README's table was measured with one GRU (before the default ensemble).
flags="--window 16 --log-scale --no-class-weights --flow-timing --lr 0.003 --epochs 60 --patience 10 --ensemble 1"
# shellcheck disable=SC2086
"$bin" -q compare "$data" --out "$out/all" $flags --drop mqtt.topic
cat "$out/all/comparison.md"
# shellcheck disable=SC2086
"$bin" -q compare "$data" --out "$out/no-checksum" $flags --drop mqtt.topic,tcp.checksum \
    --models lr,knn,tree,forest,gbdt,mlp,gru1,gru
cat "$out/no-checksum/comparison.md"
python3 "$here/../tests/reference/compare_sklearn.py" "$bin" "$data" --out "$out/sklearn" \
    -- --log-scale --drop mqtt.topic --flow-timing
