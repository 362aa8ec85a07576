#!/usr/bin/env bash
# The federation across machines on one machine: a cloud, 2 edges and 6 devices as
# separate `iotids` processes on 127.0.0.1 (ports the OS picks), certificates made on the
# spot, the training file dealt to the devices as `iotids federate` deals it; then a fault
# drill: a device and an edge killed mid-round, the cloud killed and restarted from its
# checkpoint, a device whose certificate another CA signed trying to join.
#
#   examples/network/local.sh OUT TRAIN_FILE
#
# Leaves OUT/model (the model directory, with rounds.csv, federation.json, report.html),
# OUT/federation.toml (the settings: `iotids federate TRAIN_FILE --config
# OUT/federation.toml` re-runs them in one process), OUT/summary.json and OUT/logs/.
#
# Environment: IOTIDS_BIN (default target/release/iotids), ROUNDS (12; each of 2 edge
# rounds of 2 local epochs), DEADLINE (wall seconds an edge waits for its devices: 5),
# EDGE_DEADLINE (seconds the cloud waits for an edge: 20), LEARN_FLAGS (training flags for deal and cloud: "--window 8 --hidden 16").
# Every process it starts is stopped by its own id on every exit path.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 OUT TRAIN_FILE" >&2
    exit 2
fi
OUT=$1
TRAIN=$2
BIN=${IOTIDS_BIN:-target/release/iotids}
ROUNDS=${ROUNDS:-12}
DEADLINE=${DEADLINE:-5}
EDGE_DEADLINE=${EDGE_DEADLINE:-20}
read -r -a LEARN <<< "${LEARN_FLAGS:---window 8 --hidden 16}"
DEVICES=6
EDGES=2

if [ ! -x "$BIN" ]; then
    echo "$0: no iotids binary at $BIN (build it with 'cargo build --release' or set IOTIDS_BIN)" >&2
    exit 2
fi
if [ ! -f "$TRAIN" ]; then
    echo "$0: no training file at $TRAIN" >&2
    exit 2
fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT/logs" "$OUT/model" "$OUT/deal" "$OUT/certs" "$OUT/rogue-ca"
mkdir -p "$OUT/logs"
START=$(date +%s)

declare -A PID=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do
        kill -9 "${PID[$name]}" 2>/dev/null || true
    done
    for name in "${!PID[@]}"; do
        wait "${PID[$name]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[local.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# start NAME ARGS...: runs `iotids ARGS` in the background, output to logs/NAME.*.
start() {
    local name=$1
    shift
    IOTIDS_LOG=${IOTIDS_LOG:-info} "$BIN" --quiet "$@" > "$OUT/logs/$name.out" 2>> "$OUT/logs/$name.log" &
    PID[$name]=$!
}

# address NAME: where node NAME says it listens (https://...), waiting up to 60 s.
address() {
    local name=$1 i line
    for i in $(seq 600); do
        line=$(grep -m1 'listening on ' "$OUT/logs/$name.out" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "https://${line##*listening on }"
            return 0
        fi
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            log "$name exited before listening:"
            cat "$OUT/logs/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
    log "$name never said where it listens"
    return 1
}

# rounds: rounds the cloud has checkpointed.
rounds() {
    python3 - "$OUT/model/checkpoint/cloud.json" <<'PY'
import json, sys
try:
    print(len(json.load(open(sys.argv[1]))["records"]))
except (OSError, ValueError, KeyError):
    print(0)
PY
}

# wait_rounds N LIMIT: waits until N rounds are checkpointed.
wait_rounds() {
    local n=$1 limit=$2 i
    for i in $(seq $((limit * 20))); do
        if [ "$(rounds)" -ge "$n" ]; then
            return 0
        fi
        if ! kill -0 "${PID[cloud]}" 2>/dev/null; then
            log "the cloud exited while waiting for round $n:"
            tail -20 "$OUT/logs/cloud.log" >&2
            return 1
        fi
        sleep 0.05
    done
    log "round $n did not come within $limit s"
    return 1
}

stop() {
    local name=$1
    kill -9 "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    unset "PID[$name]"
}

tls() { echo --ca "$OUT/certs/ca.pem" --cert "$OUT/certs/$1.pem" --key "$OUT/certs/$1.key"; }

FAULTS=()
fault() { FAULTS+=("$1"); log "fault: $1"; }

log "certificates for the cloud, $EDGES edges and $DEVICES devices"
"$BIN" --quiet certs --out "$OUT/certs" --edges $EDGES --devices $DEVICES > "$OUT/logs/certs.out"
cat > "$OUT/settings.toml" <<TOML
devices = $DEVICES
edges = $EDGES
rounds = $ROUNDS
edge_rounds = 2
local_epochs = 2
deadline = $DEADLINE
TOML
log "dealing $TRAIN to the devices"
"$BIN" --quiet deal "$TRAIN" --out "$OUT/deal" --config "$OUT/settings.toml" "${LEARN[@]}" > "$OUT/logs/deal.out"
cp "$OUT/deal/federation.toml" "$OUT/federation.toml"

cloud_args=(cloud --validation "$OUT/deal/validation.csv" --test "$OUT/deal/test.csv"
    --out "$OUT/model" --config "$OUT/federation.toml" --edge-deadline "$EDGE_DEADLINE"
    "${LEARN[@]}" $(tls cloud))
start cloud "${cloud_args[@]}" --listen 127.0.0.1:0
CLOUD=$(address cloud)
log "cloud at $CLOUD"
declare -A EDGE_URL=()
for e in $(seq 0 $((EDGES - 1))); do
    start "edge-$e" edge --cloud "$CLOUD" --listen 127.0.0.1:0 $(tls "edge-$e")
    EDGE_URL[$e]=$(address "edge-$e")
    log "edge-$e at ${EDGE_URL[$e]}"
done
device_args() {
    local d=$1
    echo device --edge "${EDGE_URL[$((d * EDGES / DEVICES))]}" --data "$OUT/deal/device-$d.csv" $(tls "device-$d")
}
for d in $(seq 0 $((DEVICES - 1))); do
    # shellcheck disable=SC2046
    start "device-$d" $(device_args "$d")
done

log "a device whose certificate another CA signed tries edge-0 (in the background)"
"$BIN" --quiet certs --out "$OUT/rogue-ca" --edges 1 --devices 1 > /dev/null
start rogue device --edge "${EDGE_URL[0]}" --data "$OUT/deal/device-0.csv" --give-up 20 \
    --ca "$OUT/certs/ca.pem" --cert "$OUT/rogue-ca/device-0.pem" --key "$OUT/rogue-ca/device-0.key"

# Each fault comes a round after the previous one (counted from where the run is, so a
# fast machine does not outrun the drill).
wait_rounds 1 600
fault "{\"kind\": \"device-killed\", \"round\": $(( $(rounds) + 1 )), \"node\": \"device-1\"}"
stop device-1
wait_rounds $(( $(rounds) + 1 )) 600
fault "{\"kind\": \"edge-killed\", \"round\": $(( $(rounds) + 1 )), \"node\": \"edge-1\"}"
stop edge-1
# It may have answered the round under way before it died; the next one runs without it.
wait_rounds $(( $(rounds) + 2 )) 600
log "edge-1 restarts where its devices look for it"
start edge-1 edge --cloud "$CLOUD" --listen "${EDGE_URL[1]#https://}" $(tls edge-1)
wait_rounds $(( $(rounds) + 1 )) 600
fault "{\"kind\": \"cloud-restarted\", \"round\": $(( $(rounds) + 1 )), \"node\": \"cloud\", \"resumed_after\": $(rounds)}"
stop cloud
sleep 1
start cloud "${cloud_args[@]}" --listen "${CLOUD#https://}"
log "device-1 comes back"
# shellcheck disable=SC2046
start device-1 $(device_args 1)

if wait "${PID[rogue]}"; then
    log "the rogue device was let in"
    exit 1
fi
unset "PID[rogue]"
log "the rogue device was refused: $(tail -1 "$OUT/logs/rogue.log")"
log "waiting for the run to finish"
if ! wait "${PID[cloud]}"; then
    log "the cloud failed:"
    tail -30 "$OUT/logs/cloud.log" >&2
    exit 1
fi
unset "PID[cloud]"
for name in "${!PID[@]}"; do
    for i in $(seq 300); do
        kill -0 "${PID[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "${PID[$name]}" 2>/dev/null; then
        log "$name still running after the run; stopping it"
    fi
    stop "$name"
done

python3 - "$OUT" "$(( $(date +%s) - START ))" "${FAULTS[@]}" <<'PY'
import json, re, sys
from pathlib import Path
out, seconds, faults = Path(sys.argv[1]), int(sys.argv[2]), [json.loads(f) for f in sys.argv[3:]]
fed = json.load(open(out / "model" / "federation.json"))
refused = fed["network"]["refused_connections"]
for log in sorted((out / "logs").glob("edge-*.out")):
    m = re.findall(r"refused (\d+) connections", log.read_text())
    refused += sum(int(x) for x in m)
bytes_ = fed["network"]["bytes"]
# What each fault did, as the cloud recorded it.
missed = {}
for r in fed["edges"]:
    for o in r["outcomes"]:
        if o["delivery"] != "accepted":
            missed.setdefault(o["peer"], []).append(r["round"])
import csv
rounds_csv = list(csv.DictReader(open(out / "model" / "rounds.csv")))
for f in faults:
    if f["kind"] == "edge-killed":
        f["rounds_missed"] = missed.get(int(f["node"].split("-")[1]), [])
    if f["kind"] == "device-killed":
        f["failed_device_updates"] = sum(int(r["failed"]) for r in rounds_csv)
    if f["kind"] == "cloud-restarted":
        f["resumed_after_round"] = fed["resumed_after_round"]
        f["rounds_in_rounds_csv"] = [int(r["round"]) for r in rounds_csv]
summary = {
    "rounds": fed["rounds"],
    "rounds_completed": fed["rounds_completed"],
    "faults": faults,
    "refused_connections": refused,
    "bytes": dict(bytes_, total=sum(bytes_.values())),
    "seconds": seconds,
    "best_round": fed["best_round"],
    "test": fed["test"],
}
json.dump(summary, open(out / "summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
ok = (
    summary["rounds_completed"] == summary["rounds"]
    and refused >= 1
    and len(faults) == 3
    and all(f.get("rounds_missed", [1]) for f in faults)
    and all(f.get("failed_device_updates", 1) > 0 for f in faults)
    and all(
        f.get("rounds_in_rounds_csv", list(range(1, fed["rounds"] + 1))) == list(range(1, fed["rounds"] + 1))
        for f in faults
    )
    and fed["resumed_after_round"] > 0
)
if not ok:
    print("local.sh: the drill did not go as it should (see summary.json)", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
