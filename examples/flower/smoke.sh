#!/usr/bin/env bash
# Protocol smoke test of iotids-flower against a real flwr SuperLink (CI runs it).
#
# Starts, on 127.0.0.1 with a free port: a stock `flower-superlink --insecure`, two Rust
# `toy_node` SuperNodes (index 1 with 10 examples, index 2 with 30), and the stock-FedAvg
# ServerApp in app/ (3 rounds). Passes if every round completes with 0 failures and the final
# arrays equal FedAvg of the toy updates: start + 3 * (1*10 + 2*30) / 40 = start + 5.25.
# Then it restarts the SuperLink (which forgets its nodes) and checks that the same node
# processes reconnect and serve a new one-round run.
# Every process it starts is stopped by its pid on every exit path.
#
# Env: FLWR_VENV (default <repo>/.venv, created with flwr==$FLWR_VERSION if missing),
#      FLWR_VERSION (default 1.42.0, the pinned one; another to vet a release),
#      TOY_NODE (a built toy_node; default: cargo build -p iotids-flower --example toy_node),
#      ROUNDS (default 3), KEEP_TMP=1 to keep the logs.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
FLWR_VERSION="${FLWR_VERSION:-1.42.0}"   # the pinned flwr; another to vet a release
VENV="${FLWR_VENV:-$REPO/.venv}"
ROUNDS="${ROUNDS:-3}"
TMP="$(mktemp -d)"
PIDS=()
START=$(date +%s.%N)

cleanup() {
  local rc=$?
  # Newest first: the nodes deactivate and unregister while the SuperLink still runs.
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] || [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "smoke: logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

# shellcheck source=examples/flower/common.sh
. "$HERE/common.sh"
ensure_flwr

if [ -z "${TOY_NODE:-}" ]; then
  (cd "$REPO" && cargo build -q -p iotids-flower --example toy_node)
  TOY_NODE="${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/toy_node"
fi
[ -x "$TOY_NODE" ] || fail "no toy_node at $TOY_NODE"

PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export PATH="$VENV/bin:$PATH"
export FLWR_HOME="$TMP/flwrhome" FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "smoke"

[superlink.smoke]
address = "127.0.0.1:$PORT"
insecure = true
TOML

"$VENV/bin/flower-superlink" --insecure --host 127.0.0.1 --port "$PORT" \
  --disable-runtime-dependency-installation >"$TMP/superlink.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$TMP/superlink.log" >&2; fail "superlink exited"; }
  sleep 0.2
done

"$TOY_NODE" --superlink "127.0.0.1:$PORT" --index 1 --examples 10 >"$TMP/node1.log" 2>&1 &
PIDS+=($!)
"$TOY_NODE" --superlink "127.0.0.1:$PORT" --index 2 --examples 30 >"$TMP/node2.log" 2>&1 &
PIDS+=($!)

RUN_START=$(date +%s.%N)
if ! timeout 300 "$VENV/bin/flwr" run "$HERE/app" smoke --stream \
    --run-config "num-server-rounds=$ROUNDS out-file=\"$TMP/result.json\"" >"$TMP/run.log" 2>&1; then
  tail -30 "$TMP/run.log" >&2
  fail "flwr run failed or timed out"
fi
RUN_END=$(date +%s.%N)
[ -f "$TMP/result.json" ] || { tail -30 "$TMP/run.log" >&2; fail "the ServerApp wrote no result"; }

"$VENV/bin/python" - "$TMP/result.json" "$TMP/run.log" "$ROUNDS" <<'PY' || fail "result check"
import json, re, sys
res = json.load(open(sys.argv[1])); log = open(sys.argv[2]).read(); rounds = int(sys.argv[3])
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)
check(res["train_rounds"] == list(range(1, rounds + 1)), f"train rounds {res['train_rounds']}")
check(res["evaluate_rounds"] == list(range(1, rounds + 1)), f"evaluate rounds {res['evaluate_rounds']}")
recv = re.findall(r"Received (\d+) results and (\d+) failures", log)
check(len(recv) == 2 * rounds and all(r == "2" and f == "0" for r, f in recv),
      f"every train/evaluate round: 2 results, 0 failures ({recv})")
step = rounds * (1 * 10 + 2 * 30) / 40
want_w = [[float(3 * i + j) + step for j in range(3)] for i in range(2)]
check(res["arrays"]["w"] == want_w, f"w = {res['arrays']['w']} (want {want_w})")
check(res["arrays"]["b"] == [0.5 + step], f"b = {res['arrays']['b']} (want {[0.5 + step]})")
last = res["train_metrics"][str(rounds)]
check(abs(last.get("node-index", 0) - 1.75) < 1e-9, f"weighted train metric node-index = {last.get('node-index')}")
sys.exit(0 if ok else 1)
PY

for n in 1 2; do grep -q "replied" "$TMP/node$n.log" || fail "node $n never replied"; done

# A SuperLink restart (it forgets its nodes): the same node processes must notice, reconnect
# and serve the next run. The old SuperLink's SuperExec goes with it, by pid.
old_kids="$(ps -o pid= --ppid "${PIDS[0]}" 2>/dev/null | tr '\n' ' ')"
kill "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
# shellcheck disable=SC2086
[ -z "${old_kids// /}" ] || kill $old_kids 2>/dev/null || true
"$VENV/bin/flower-superlink" --insecure --host 127.0.0.1 --port "$PORT" \
  --disable-runtime-dependency-installation >"$TMP/superlink2.log" 2>&1 &
PIDS[0]=$!
for _ in $(seq 1 100); do
  "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break
  kill -0 "${PIDS[0]}" 2>/dev/null || { cat "$TMP/superlink2.log" >&2; fail "the restarted superlink exited"; }
  sleep 0.2
done
if ! timeout 300 "$VENV/bin/flwr" run "$HERE/app" smoke --stream \
    --run-config "num-server-rounds=1 out-file=\"$TMP/result2.json\"" >"$TMP/run2.log" 2>&1; then
  tail -30 "$TMP/run2.log" >&2
  fail "flwr run after the SuperLink restart failed or timed out"
fi
"$VENV/bin/python" - "$TMP/result2.json" <<'PY' || fail "result check after the restart"
import json, sys
res = json.load(open(sys.argv[1]))
step = 1 * (1 * 10 + 2 * 30) / 40
ok = res["train_rounds"] == [1] and res["arrays"]["b"] == [0.5 + step]
print(("ok   " if ok else "FAIL ") + f"after a SuperLink restart the same nodes served a new run: b = {res['arrays']['b']}")
sys.exit(0 if ok else 1)
PY
for n in 1 2; do
  grep -q "reconnected as node" "$TMP/node$n.log" || fail "node $n never reconnected after the SuperLink restart"
done

END=$(date +%s.%N)
printf 'smoke: PASS: %s rounds against flwr %s; run %.1f s, total %.1f s\n' \
  "$ROUNDS" "$FLWR_VERSION" "$(echo "$RUN_END - $RUN_START" | bc)" "$(echo "$END - $START" | bc)"
