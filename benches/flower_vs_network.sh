#!/usr/bin/env bash
# Round times of iotids on Flower against our own network federation, same data, same
# settings, same machine: takes the OUT of `examples/flower/run.sh OUT TRAIN` (its deal,
# certificates and federation.toml), runs `iotids cloud` + 2 `iotids edge` + 6 `iotids
# device` processes on 127.0.0.1 with them, and prints both runs' median round time, their
# statistics rounds and their test macro-F1 (numbers for BENCHMARKS.md).
#
#   benches/flower_vs_network.sh FLOWER_OUT          (IOTIDS_BIN: default target/release/iotids)
#
# Every process it starts is stopped by its pid on every exit path.
set -euo pipefail
F="$(cd "$1" && pwd)"
BIN="${IOTIDS_BIN:-target/release/iotids}"
O="$F/network-peer"
rm -rf "$O"
mkdir -p "$O"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls() { echo --ca "$F/certs/ca.pem" --cert "$F/certs/$1.pem" --key "$F/certs/$1.key"; }
cp="$(free)"
# shellcheck disable=SC2046
"$BIN" --quiet cloud --validation "$F/deal/validation.csv" --test "$F/deal/test.csv" \
  --out "$O/model" --config "$F/federation.toml" --listen "127.0.0.1:$cp" $(tls cloud) \
  ${LEARN_FLAGS:-} >"$O/cloud.log" 2>&1 &
cloud=$!
PIDS+=("$cloud")
eports=("$(free)" "$(free)")
for e in 0 1; do
  # shellcheck disable=SC2046
  "$BIN" --quiet edge --cloud "https://127.0.0.1:$cp" --listen "127.0.0.1:${eports[$e]}" \
    $(tls "edge-$e") >"$O/edge-$e.log" 2>&1 &
  PIDS+=($!)
done
for d in 0 1 2 3 4 5; do
  # shellcheck disable=SC2046
  "$BIN" --quiet device --edge "https://127.0.0.1:${eports[$((d * 2 / 6))]}" \
    --data "$F/deal/device-$d.csv" $(tls "device-$d") >"$O/device-$d.log" 2>&1 &
  PIDS+=($!)
done
wait "$cloud" || { tail -20 "$O/cloud.log" >&2; exit 1; }
python3 - "$F" "$O" <<'PY'
import csv, json, statistics, sys
f, o = sys.argv[1], sys.argv[2]
def rounds(p):
    return [float(r["seconds"]) for r in csv.DictReader(open(p))]
net = json.load(open(f"{o}/model/federation.json"))
flower = json.load(open(f"{f}/summary.json"))
print(f"network: median round {statistics.median(rounds(f'{o}/model/rounds.csv')):.2f} s, "
      f"statistics round {sum(net['network']['statistics_round']['seconds']):.2f} s, "
      f"test macro-F1 {net['test']['macro_f1']:.4f}")
print(f"flower:  median round {statistics.median(flower['round_seconds']):.2f} s, "
      f"statistics round {flower['statistics_seconds']:.2f} s, test macro-F1 {flower['test_macro_f1']:.4f}")
PY
