#!/usr/bin/env bash
# iotids on Flower, end to end, on 127.0.0.1: a stock `flower-superlink` (flwr pinned
# below) with TLS and node authentication (each node's key made by `iotids flower keygen`
# and registered with `flwr supernode register`), the project's Flower app
# (examples/flower/iotids-app: stock FedAvgM by default) and iotids nodes as Rust
# SuperNodes, in two runs:
#
#   hierarchical: 2 iotids edges (`iotids flower edge`) under the SuperLink, each serving
#                 3 iotids devices (`iotids device --edge`, mutual TLS): edges run their
#                 edge rounds and answer with the edge model (FL hierarchy on Flower);
#   flat:         the 6 devices directly under the SuperLink (`iotids flower device`).
#
# The training file is dealt to the devices as `federate` deals it (`iotids deal`).
#
#   examples/flower/run.sh OUT TRAIN_FILE
#
# Writes OUT/model (the hierarchical run's model directory: `iotids evaluate|predict|
# detect --model OUT/model`), OUT/federation.toml (its settings: `iotids federate --config
# OUT/federation.toml TRAIN_FILE` runs the same federation in one process), OUT/flat/model
# and OUT/flat/federation.toml (the flat run's), and OUT/summary.json:
# {"flwr_version", "rounds", "rounds_completed", "failures", "edges", "devices",
#  "seconds", ..., "flat": {the same for the flat run}}. Exits non-zero unless both runs
# complete every round with 0 failures.
#
# Env: IOTIDS_BIN (default: cargo build --release), FLWR_VENV (default <repo>/.venv,
#      created with flwr==$FLWR_VERSION if missing), ROUNDS (10), RUNS ("hierarchical flat"),
#      LEARN_FLAGS (reading and model flags for deal and the server, as `federate` takes
#      them; default none: federate's defaults),
#      KEEP_LOGS=1 to keep OUT/logs on success too (always kept on failure).
# Every process it starts is stopped by its pid on every exit path.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 OUT TRAIN_FILE" >&2
  exit 2
fi
OUT="$1"
TRAIN="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
FLWR_VERSION="${FLWR_VERSION:-1.42.0}"   # the pinned flwr; another to vet a release
VENV="${FLWR_VENV:-$REPO/.venv}"
ROUNDS="${ROUNDS:-10}"
RUNS="${RUNS:-hierarchical flat}"
read -r -a LEARN <<< "${LEARN_FLAGS:-}"
EDGES=2
DEVICES=6
PIDS=()
START=$(date +%s.%N)

fail() { echo "flower/run.sh: FAIL: $*" >&2; exit 1; }
# shellcheck source=examples/flower/common.sh
. "$HERE/common.sh"
[ -f "$TRAIN" ] || fail "no training file $TRAIN"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TRAIN="$(cd "$(dirname "$TRAIN")" && pwd)/$(basename "$TRAIN")"
LOGS="$OUT/logs"
rm -rf "$LOGS" "$OUT/model" "$OUT/flat" "$OUT/deal" "$OUT/certs" "$OUT/flower-keys"
mkdir -p "$LOGS"

stop_all() {
  # Newest first: devices, then edges, then the SuperLink; then what the SuperLink started
  # (its SuperExec and ServerApp processes), listed before anything stops.
  local i pid kids=""
  for pid in "${PIDS[@]}"; do kids="$kids $(descendants "$pid" | tr '\n' ' ')"; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    kill "$pid" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    # SIGTERM makes a node leave the federation; a node that hangs is killed.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # shellcheck disable=SC2086
  [ -z "${kids// /}" ] || kill $kids 2>/dev/null || true
  PIDS=()
}
cleanup() {
  local rc=$?
  stop_all
  if [ "$rc" -ne 0 ]; then
    echo "flower/run.sh: logs in $LOGS" >&2
    for f in "$LOGS"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f (last 15 lines)" >&2
      tail -15 "$f" >&2
    done
  elif [ "${KEEP_LOGS:-0}" != 1 ]; then
    rm -rf "$LOGS"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the pinned flwr and the iotids binary
ensure_flwr
if [ -z "${IOTIDS_BIN:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet)
  IOTIDS_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/iotids"
fi
[ -x "$IOTIDS_BIN" ] || fail "no iotids binary at $IOTIDS_BIN"
IOTIDS_BIN="$(cd "$(dirname "$IOTIDS_BIN")" && pwd)/$(basename "$IOTIDS_BIN")"

wait_port() { # PORT PID LOG
  for _ in $(seq 1 200); do
    "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || fail "$(basename "$3" .log) exited before listening"
    sleep 0.1
  done
  fail "nothing listens on 127.0.0.1:$1"
}

# --- the deal, the settings, the certificates
"$IOTIDS_BIN" --quiet deal "$TRAIN" --out "$OUT/deal" --devices "$DEVICES" --edges "$EDGES" \
  --rounds "$ROUNDS" ${LEARN[@]+"${LEARN[@]}"} >"$LOGS/deal.log" 2>&1 || fail "iotids deal"
"$IOTIDS_BIN" --quiet certs --out "$OUT/certs" --edges "$EDGES" --devices "$DEVICES" \
  >"$LOGS/certs.log" 2>&1 || fail "iotids certs"
mkdir -p "$OUT/flat"
# The flat federation: no edge tier to run more than one edge round or FedNova's
# normalised averaging (which needs each device's optimiser path); FedAvgM over the devices.
sed -e 's/^edges = .*/edges = 1/' -e 's/^edge_rounds = .*/edge_rounds = 1/' \
  -e 's/^normalized_averaging = .*/normalized_averaging = false/' \
  "$OUT/deal/federation.toml" >"$OUT/flat/federation.input.toml"

# The SuperLink starts flower-superexec and flwr-serverapp from PATH.
export PATH="$VENV/bin:$PATH"
export FLWR_HOME="$OUT/logs/flwr-home" FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
mkdir -p "$FLWR_HOME"

# run MODE MODEL_DIR SETTINGS: one Flower run; writes MODEL_DIR and MODEL_DIR/../run.json.
run() {
  local mode="$1" model="$2" settings="$3"
  local port t0 t1
  port="$(free_port)"
  cat >"$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "local"

[superlink.local]
address = "127.0.0.1:$port"
root-certificates = "$OUT/certs/ca.pem"
TOML
  # TLS with the federation's CA (the cloud's certificate names 127.0.0.1) and Flower's
  # node authentication: only keys registered below may join.
  "$VENV/bin/flower-superlink" --ssl-certfile "$OUT/certs/cloud.pem" \
    --ssl-keyfile "$OUT/certs/cloud.key" --ssl-ca-certfile "$OUT/certs/ca.pem" \
    --enable-supernode-auth --host 127.0.0.1 --port "$port" \
    --disable-runtime-dependency-installation >"$LOGS/$mode-superlink.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" "${PIDS[-1]}" "$LOGS/$mode-superlink.log"
  local tls=(--superlink "127.0.0.1:$port" --root-certificates "$OUT/certs/ca.pem")
  # A node key per SuperNode, registered with the SuperLink by the operator's CLI.
  register() { # NAME
    "$IOTIDS_BIN" --quiet flower keygen --out "$OUT/flower-keys/$mode-$1" --comment "$mode-$1" \
      >>"$LOGS/$mode-keys.log" 2>&1 || fail "iotids flower keygen $mode-$1"
    "$VENV/bin/flwr" supernode register "$OUT/flower-keys/$mode-$1.pub" local \
      >>"$LOGS/$mode-keys.log" 2>&1 || fail "flwr supernode register $mode-$1"
  }

  local flat_flag=""
  if [ "$mode" = hierarchical ]; then
    local e d eport
    local -a eports
    for ((e = 0; e < EDGES; e++)); do
      eport="$(free_port)"
      eports+=("$eport")
      register "edge-$e"
      "$IOTIDS_BIN" flower edge "${tls[@]}" --auth-key "$OUT/flower-keys/$mode-edge-$e" \
        --listen "127.0.0.1:$eport" \
        --ca "$OUT/certs/ca.pem" --cert "$OUT/certs/edge-$e.pem" --key "$OUT/certs/edge-$e.key" \
        >"$LOGS/$mode-edge-$e.log" 2>&1 &
      PIDS+=($!)
    done
    for ((d = 0; d < DEVICES; d++)); do
      e=$((d * EDGES / DEVICES))
      "$IOTIDS_BIN" device --edge "https://127.0.0.1:${eports[$e]}" --data "$OUT/deal/device-$d.csv" \
        --ca "$OUT/certs/ca.pem" --cert "$OUT/certs/device-$d.pem" --key "$OUT/certs/device-$d.key" \
        >"$LOGS/$mode-device-$d.log" 2>&1 &
      PIDS+=($!)
    done
  else
    flat_flag="--flat"
    local d
    for ((d = 0; d < DEVICES; d++)); do
      register "device-$d"
      "$IOTIDS_BIN" flower device "${tls[@]}" --auth-key "$OUT/flower-keys/$mode-device-$d" --id "$d" \
        --data "$OUT/deal/device-$d.csv" >"$LOGS/$mode-device-$d.log" 2>&1 &
      PIDS+=($!)
    done
  fi

  local args="$flat_flag --validation $OUT/deal/validation.csv --test $OUT/deal/test.csv --out $model --config $settings ${LEARN_FLAGS:-}"
  t0=$(date +%s.%N)
  if ! timeout 1800 "$VENV/bin/flwr" run "$HERE/iotids-app" local --stream \
      --run-config "iotids-bin=\"$IOTIDS_BIN\" server-args=\"$args\" summary-file=\"$model/../$mode.json\"" \
      >"$LOGS/$mode-flwr-run.log" 2>&1; then
    fail "$mode: flwr run failed or timed out"
  fi
  t1=$(date +%s.%N)
  [ -f "$model/../$mode.json" ] || fail "$mode: the ServerApp wrote no summary (see $LOGS/$mode-flwr-run.log)"
  stop_all
  "$VENV/bin/python" - "$model/../$mode.json" "$(echo "$t1 - $t0" | bc)" <<'PY'
import json, sys
p, seconds = sys.argv[1], float(sys.argv[2])
s = json.load(open(p)); s["wall_seconds"] = seconds
json.dump(s, open(p, "w"), indent=2)
PY
  echo "flower/run.sh: $mode run done in $(printf %.1f "$(echo "$t1 - $t0" | bc)") s"
}

for mode in $RUNS; do
  case "$mode" in
    hierarchical) run hierarchical "$OUT/model" "$OUT/deal/federation.toml"
                  cp "$OUT/model/federation.toml" "$OUT/federation.toml" ;;
    flat)         run flat "$OUT/flat/model" "$OUT/flat/federation.input.toml"
                  cp "$OUT/flat/model/federation.toml" "$OUT/flat/federation.toml" ;;
    *) fail "RUNS: unknown run $mode (hierarchical, flat)" ;;
  esac
done

END=$(date +%s.%N)
"$VENV/bin/python" - "$OUT" "$RUNS" "$ROUNDS" "$EDGES" "$DEVICES" "$(echo "$END - $START" | bc)" <<'PY'
import json, sys
from pathlib import Path
out, runs, rounds, edges, devices, seconds = Path(sys.argv[1]), sys.argv[2].split(), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
def run(mode, path):
    s = json.loads(path.read_text())
    return {
        "flwr_version": s["flwr_version"],
        "strategy": s["strategy"],
        "rounds": s["rounds"],
        "rounds_completed": s["rounds_completed"],
        "failures": s["failures"],
        "edges": edges if mode == "hierarchical" else 0,
        "devices": devices,
        "seconds": s["wall_seconds"],
        "round_seconds": s["round_seconds"],
        "statistics_seconds": s["statistics_seconds"],
        "best_round": s["best_round"],
        "validation_macro_f1": s["validation_macro_f1"],
        "test_macro_f1": s["test_macro_f1"],
    }
summary = {}
if "hierarchical" in runs:
    summary.update(run("hierarchical", out / "hierarchical.json"))
if "flat" in runs:
    summary["flat"] = run("flat", out / "flat" / "flat.json")
    if "hierarchical" not in runs:
        summary.update({k: v for k, v in summary["flat"].items()})
summary["seconds_total"] = seconds
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
ok = True
for name, s in [("hierarchical", summary)] * ("hierarchical" in runs) + [("flat", summary.get("flat"))] * ("flat" in runs):
    good = s["rounds_completed"] == rounds and s["rounds"] == rounds and s["failures"] == 0
    print(f"flower/run.sh: {name}: {s['rounds_completed']}/{s['rounds']} rounds, {s['failures']} failures, "
          f"kept round {s['best_round']}, test macro-F1 {s['test_macro_f1']}, {s['seconds']:.1f} s "
          f"({'ok' if good else 'FAIL'})")
    ok &= good
sys.exit(0 if ok else 1)
PY
