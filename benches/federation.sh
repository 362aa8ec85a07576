#!/usr/bin/env bash
# The federation results of the README: MQTTset (flow split, seed 42, 64/16/20), window 16
# with the flow-timing features, 20 devices / 4 edges / Dirichlet(0.3) over flows, against
# central training of the same network on the same split; then the robustness comparison
# under a sign-flipping attack. Usage: benches/federation.sh [iotids binary] [data dir]
set -euo pipefail
bin=${1:-target/release/iotids}
data=${2:-../shared/data}/mqttset/mqttset-train.csv
out=${OUT:-/tmp/iotids-federation}
mkdir -p "$out"
common=(--window 16 --log-scale --drop mqtt.topic --no-class-weights --flow-timing
    --lr 0.003 --epochs 60 --patience 10 --devices 20 --edges 4)
skew=(--partition dirichlet --alpha 0.3)
run() { # name, flags...
    local name=$1
    shift
    "$bin" -q federate "$data" --out "$out/$name" "${common[@]}" "$@" >"$out/$name.log" 2>&1
    python3 - "$out/$name" "$name" "$*" <<'PY'
import csv, json, sys
d, name, flags = sys.argv[1:]
j = json.load(open(f"{d}/federation.json"))
rounds = list(csv.DictReader(open(f"{d}/rounds.csv")))
mb = sum(int(r[k]) for r in rounds for k in ("bytes_edge_to_devices", "bytes_devices_to_edge", "bytes_edges_to_cloud", "bytes_cloud_to_edges")) / 1e6
f = j["federated"]
line = f"| {name} | `{flags}` | {f['validation_macro_f1']:.4f} | {f['test']['macro_f1']:.4f} | {j['best_round']} of {j['rounds_run']} | {mb:.0f} MB | {j['seconds']:.0f} s |"
print(line)
c = j.get("central")
if c:
    print(f"| central (same network, split, flags) | | {c['validation_macro_f1']:.4f} | {c['test']['macro_f1']:.4f} | epoch {c['best_epoch']} of {c['epochs']} | 0 | {c['seconds']:.0f} s |")
PY
}
echo "| run | flags | validation macro-F1 | test macro-F1 | kept round | bytes moved | seconds |"
echo "|---|---|---|---|---|---|---|"
run fedavg "${skew[@]}" --strategy fedavg --rounds 100
run fedavgm "${skew[@]}" --strategy fedavgm --rounds 100 --no-central
run fedavgm-2-local-epochs "${skew[@]}" --strategy fedavgm --rounds 100 --local-epochs 2 --no-central
run fedyogi "${skew[@]}" --strategy fedyogi --rounds 100 --no-central
run fedavgm-iid --strategy fedavgm --rounds 100 --partition iid --no-central
# Robustness: 20% of devices send their update scaled by -5, every rule at both tiers.
"$bin" -q federate "$data" --out "$out/robustness" "${common[@]}" "${skew[@]}" --strategy fedavgm --rounds 30 \
    --attack scale --malicious 0.2 --robustness --no-central >"$out/robustness.log" 2>&1
echo
echo "| aggregation | attack | poisoning devices | kept round | validation macro-F1 | test macro-F1 |"
echo "|---|---|---|---|---|---|"
python3 - "$out/robustness/robustness.csv" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(f"| {r['aggregation']} | {r['attack']} | {r['malicious_devices']} | {r['kept_round']} | {float(r['validation_macro_f1']):.4f} | {float(r['test_macro_f1']):.4f} |")
PY
