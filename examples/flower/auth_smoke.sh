#!/usr/bin/env bash
# TLS and node-authentication smoke test of iotids-flower against real flwr SuperLinks
# (not in CI yet). Modelled on smoke.sh; everything on 127.0.0.1 with free ports, in a temp
# dir, every process stopped by its pid on every exit path.
#
#  (a) TLS: a CA and a server certificate for 127.0.0.1 (openssl), a stock
#      `flower-superlink --ssl-certfile/--ssl-keyfile/--ssl-ca-certfile`, two Rust toy_nodes
#      with `--root-certificates ca.pem` and fresh self-registered keys, the stock-FedAvg
#      ServerApp in app/ for ROUNDS rounds. Also: a node trusting another CA fails at once,
#      naming the SuperLink address and the certificate file.
#  (b) Node authentication: a TLS SuperLink with `--enable-supernode-auth`, two keys
#      registered beforehand with `flwr supernode register <key>.pub <connection>` (one made
#      by `ssh-keygen -t ecdsa -b 384`, OpenSSH format; one by `toy_node --gen-key` in
#      PKCS#8), two toy_nodes with `--auth-key` (ActivateNode only: the SuperLink log must
#      show no register-node and, after they stop, no unregister-node), ROUNDS rounds.
#  (c) A node whose key is not registered is refused: it exits with a message saying so.
#
# (a) and (b) run side by side on two SuperLinks to keep the test short. Each run must
# complete every round with 0 failures and the final arrays must equal FedAvg of the toy
# updates (start + ROUNDS * (1*10 + 2*30) / 40).
#
# Env: FLWR_VENV (default <repo>/.venv, created with flwr==1.42.0 if missing),
#      TOY_NODE (a built toy_node; default: cargo build -p iotids-flower --example toy_node),
#      ROUNDS (default 2), KEEP_TMP=1 to keep the logs.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
FLWR_VERSION="${FLWR_VERSION:-1.42.0}"   # the pinned flwr; another to vet a release
VENV="${FLWR_VENV:-$REPO/.venv}"
ROUNDS="${ROUNDS:-2}"
TMP="$(mktemp -d)"
PIDS=()
START=$(date +%s.%N)
# shellcheck source=examples/flower/common.sh
. "$HERE/common.sh"

cleanup() {
  local rc=$?
  # Newest first: the nodes deactivate while their SuperLink still runs.
  local live=("${PIDS[@]}") i
  for ((i = ${#live[@]} - 1; i >= 0; i--)); do
    stop "${live[$i]}"
  done
  if [ "$rc" -ne 0 ] || [ "${KEEP_TMP:-0}" = 1 ]; then
    echo "auth_smoke: logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
# forget PID: drop a reaped process from PIDS (so its pid, maybe reused, is never signalled).
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# stop PID: SIGTERM one of our processes and reap it, then whatever it started and left
# behind (a SuperLink's SuperExec and ServerApp processes, listed before it stops).
stop() {
  local kids
  kids="$(descendants "$1" | tr '\n' ' ')"
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
  # shellcheck disable=SC2086
  [ -z "${kids// /}" ] || kill $kids 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "auth_smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }
elapsed() { echo "$(date +%s.%N) - $1" | bc; }

ensure_flwr
command -v openssl >/dev/null || fail "openssl (to make the test CA) is not installed"

if [ -z "${TOY_NODE:-}" ]; then
  (cd "$REPO" && cargo build -q -p iotids-flower --example toy_node)
  TOY_NODE="${CARGO_TARGET_DIR:-$REPO/target}/debug/examples/toy_node"
fi
[ -x "$TOY_NODE" ] || fail "no toy_node at $TOY_NODE"

export PATH="$VENV/bin:$PATH"
export FLWR_HOME="$TMP/flwrhome" FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
export NO_COLOR=1
mkdir -p "$FLWR_HOME"

# --- Certificates: a P-384 CA, a server certificate for 127.0.0.1 signed by it, and an
# unrelated CA for the wrong-CA check.
C="$TMP/certs"
mkdir -p "$C"
ossl() { openssl "$@" >>"$C/openssl.log" 2>&1 || { cat "$C/openssl.log" >&2; fail "openssl $1"; }; }
for ca in ca wrong-ca; do
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -days 1 \
    -subj "/CN=iotids auth_smoke $ca" -keyout "$C/$ca.key" -out "$C/$ca.pem"
done
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$C/server.key" -out "$C/server.csr"
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$C/ext.cnf"
ossl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
  -days 1 -extfile "$C/ext.cnf" -out "$C/server.pem"

# start_superlink NAME PORT [flags...]: starts a TLS SuperLink (sets SUPERLINK_PID);
# wait_port NAME PORT PID waits until it listens.
start_superlink() {
  local name="$1" port="$2"
  shift 2
  "$VENV/bin/flower-superlink" --ssl-certfile "$C/server.pem" --ssl-keyfile "$C/server.key" \
    --ssl-ca-certfile "$C/ca.pem" --host 127.0.0.1 --port "$port" \
    --disable-runtime-dependency-installation "$@" >"$TMP/$name.log" 2>&1 &
  SUPERLINK_PID=$!
  PIDS+=("$SUPERLINK_PID")
}
wait_port() {
  local name="$1" port="$2" pid="$3"
  for _ in $(seq 1 150); do
    "$VENV/bin/python" -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -20 "$TMP/$name.log" >&2; fail "$name exited"; }
    sleep 0.2
  done
  fail "$name did not open port $port"
}

# node NAME [toy_node flags...]: starts a toy_node in the background; sets NODE_PID.
node() {
  local name="$1"
  shift
  "$TOY_NODE" "$@" >"$TMP/$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
}

# start_run CONNECTION: starts the ServerApp for ROUNDS rounds on CONNECTION in the
# background (sets RUN_PID); check_run CONNECTION waits for it and checks the result.
start_run() {
  local conn="$1"
  date +%s.%N >"$TMP/$conn-run.start"
  timeout 120 "$VENV/bin/flwr" run "$HERE/app" "$conn" --stream \
    --run-config "num-server-rounds=$ROUNDS out-file=\"$TMP/$conn-result.json\"" >"$TMP/$conn-run.log" 2>&1 &
  RUN_PID=$!
  PIDS+=("$RUN_PID")
}
check_run() {
  local conn="$1" pid="$2" rc=0
  wait "$pid" || rc=$?
  forget "$pid"
  [ "$rc" = 0 ] || { tail -30 "$TMP/$conn-run.log" >&2; fail "$conn: flwr run failed or timed out (exit $rc)"; }
  [ -f "$TMP/$conn-result.json" ] || { tail -30 "$TMP/$conn-run.log" >&2; fail "$conn: the ServerApp wrote no result"; }
  "$VENV/bin/python" - "$TMP/$conn-result.json" "$TMP/$conn-run.log" "$ROUNDS" "$conn" <<'PY' || fail "$conn: result check"
import json, re, sys
res = json.load(open(sys.argv[1])); log = open(sys.argv[2]).read(); rounds = int(sys.argv[3]); tag = sys.argv[4]
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + f"{tag}: {what}")
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
sys.exit(0 if ok else 1)
PY
  printf 'ok   %s: %s FedAvg rounds in %.1f s\n' "$conn" "$ROUNDS" "$(elapsed "$(cat "$TMP/$conn-run.start")")"
}

# NODE_PID=PID expect_refused NAME SECONDS PATTERN... : the node NAME must exit non-zero
# within SECONDS, its log matching every PATTERN (fixed strings).
expect_refused() {
  local name="$1" secs="$2" pid="$NODE_PID" i rc
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && { cat "$TMP/$name.log" >&2; fail "$name still runs after $secs s"; }
  rc=0
  wait "$pid" || rc=$?
  forget "$pid"
  [ "$rc" -ne 0 ] || { cat "$TMP/$name.log" >&2; fail "$name exited 0"; }
  for p in "$@"; do
    grep -qF -- "$p" "$TMP/$name.log" || { cat "$TMP/$name.log" >&2; fail "$name: log lacks \"$p\""; }
  done
  ok "$name refused (exit $rc): $(grep -m1 'toy_node:' "$TMP/$name.log" | cut -c1-160)…"
}

# Both SuperLinks run side by side, to keep the test short:
#   tls:  TLS, nodes registering themselves (a);
#   auth: TLS + --enable-supernode-auth, pre-registered keys (b), an unregistered key (c).
PORT_A="$(free_port)"
PORT_B="$(free_port)"
start_superlink superlink-tls "$PORT_A"
SL_A=$SUPERLINK_PID
start_superlink superlink-auth "$PORT_B" --enable-supernode-auth
SL_B=$SUPERLINK_PID
cat >"$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "tls"

[superlink.tls]
address = "127.0.0.1:$PORT_A"
root-certificates = "$C/ca.pem"

[superlink.auth]
address = "127.0.0.1:$PORT_B"
root-certificates = "$C/ca.pem"
TOML

# Keys: node1 by ssh-keygen (OpenSSH, as flwr's docs make them), node2 by toy_node
# (PKCS#8 private key), stranger by toy_node (SEC1), never registered.
K="$TMP/keys"
mkdir -p "$K"
if command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ecdsa -b 384 -N '' -C auth-node1 -f "$K/node1" || fail "ssh-keygen"
  KEY1_BY="ssh-keygen, OpenSSH"
else
  "$TOY_NODE" --gen-key "$K/node1" --key-format openssh --comment auth-node1 >/dev/null || fail "toy_node --gen-key"
  KEY1_BY="toy_node, OpenSSH (no ssh-keygen here)"
fi
"$TOY_NODE" --gen-key "$K/node2" --key-format pkcs8 --comment auth-node2 >/dev/null || fail "toy_node --gen-key node2"
"$TOY_NODE" --gen-key "$K/stranger" --key-format sec1 --comment stranger >/dev/null || fail "toy_node --gen-key stranger"
# A key toy_node writes in OpenSSH format is one the stock flower-supernode reads
# (--auth-supernode-private-key uses cryptography's load_ssh_private_key).
"$TOY_NODE" --gen-key "$K/rust-openssh" --comment rust-openssh >/dev/null || fail "toy_node --gen-key rust-openssh"
"$VENV/bin/python" - "$K/rust-openssh" <<'PY' || fail "flwr's loader rejects toy_node's OpenSSH key"
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec
key = s.load_ssh_private_key(open(sys.argv[1], "rb").read(), None)
assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1", key
pub = s.load_ssh_public_key(open(sys.argv[1] + ".pub", "rb").read())
assert pub.public_numbers() == key.public_key().public_numbers()
print("ok   keys: toy_node's OpenSSH key and .pub load with flwr's loaders (cryptography)")
PY

# (a) TLS.
wait_port superlink-tls "$PORT_A" "$SL_A"
node tls-wrong-ca --superlink "127.0.0.1:$PORT_A" --root-certificates "$C/wrong-ca.pem"
N_WRONG=$NODE_PID
node tls-node1 --superlink "127.0.0.1:$PORT_A" --root-certificates "$C/ca.pem" --index 1 --examples 10
N_A1=$NODE_PID
node tls-node2 --superlink "127.0.0.1:$PORT_A" --root-certificates "$C/ca.pem" --index 2 --examples 30
N_A2=$NODE_PID
start_run tls
RUN_A=$RUN_PID

# (b) node auth: register the two keys with flwr's CLI, then start their nodes.
wait_port superlink-auth "$PORT_B" "$SL_B"
for n in 1 2; do
  "$VENV/bin/flwr" supernode register "$K/node$n.pub" auth >"$TMP/register-node$n.log" 2>&1 \
    || { cat "$TMP/register-node$n.log" >&2; fail "flwr supernode register node$n.pub auth"; }
  grep -q "registered successfully" "$TMP/register-node$n.log" || { cat "$TMP/register-node$n.log" >&2; fail "register node$n"; }
done
ok "auth: registered node1.pub ($KEY1_BY) and node2.pub (toy_node, PKCS#8 private key) with flwr supernode register"
node auth-node1 --superlink "127.0.0.1:$PORT_B" --root-certificates "$C/ca.pem" --auth-key "$K/node1" --index 1 --examples 10
N_B1=$NODE_PID
node auth-node2 --superlink "127.0.0.1:$PORT_B" --root-certificates "$C/ca.pem" --auth-key "$K/node2" --index 2 --examples 30
N_B2=$NODE_PID
# (c) an unregistered key, and a node trying to register itself.
node auth-stranger --superlink "127.0.0.1:$PORT_B" --root-certificates "$C/ca.pem" --auth-key "$K/stranger"
N_STRANGER=$NODE_PID
node auth-self-register --superlink "127.0.0.1:$PORT_B" --root-certificates "$C/ca.pem"
N_SELF=$NODE_PID
start_run auth
RUN_B=$RUN_PID

NODE_PID=$N_WRONG expect_refused tls-wrong-ca 10 \
  "TLS with the SuperLink at https://127.0.0.1:$PORT_A failed" "UnknownIssuer" "$C/wrong-ca.pem"
NODE_PID=$N_STRANGER expect_refused auth-stranger 10 "refused to activate this node" \
  "is not registered" "flwr supernode register" "$(cut -d' ' -f1-2 "$K/stranger.pub")"
NODE_PID=$N_SELF expect_refused auth-self-register 10 "is not registered" "refuses RegisterNode" \
  "--enable-supernode-auth"

check_run tls "$RUN_A"
for n in 1 2; do grep -q "runs flwr $FLWR_VERSION" "$TMP/tls-node$n.log" || fail "tls-node$n did not read the SuperLink's version"; done
ok "tls: the nodes read the SuperLink's version ($FLWR_VERSION from GET /openapi.json)"
check_run auth "$RUN_B"

stop "$N_A2"; stop "$N_A1"; stop "$N_B2"; stop "$N_B1"
# The pre-registered nodes only activate and deactivate. (The self-registering node's one
# refused register-node is the only one allowed.)
SLOG="$TMP/superlink-auth.log"
[ "$(grep -c 'POST /v1/fleet/register-node' "$SLOG" || true)" = 1 ] || fail "auth: unexpected register-node calls: $(grep 'register-node' "$SLOG")"
! grep -q 'POST /v1/fleet/unregister-node' "$SLOG" || fail "auth: a node called unregister-node"
[ "$(grep -c 'POST /v1/fleet/activate-node HTTP/1.1" 200' "$SLOG" || true)" = 2 ] || fail "auth: want 2 successful activate-node"
[ "$(grep -c 'POST /v1/fleet/deactivate-node HTTP/1.1" 200' "$SLOG" || true)" = 2 ] || fail "auth: want 2 deactivate-node"
ok "auth: the pre-registered nodes called activate-node and deactivate-node, never register-node or unregister-node"
"$VENV/bin/flwr" supernode ls auth --format json >"$TMP/ls.json" 2>&1 || { cat "$TMP/ls.json" >&2; fail "flwr supernode ls"; }
"$VENV/bin/python" - "$TMP/ls.json" <<'PY' || fail "auth: flwr supernode ls"
import json, sys
text = open(sys.argv[1]).read()
nodes = json.loads(text[text.index("{"):])["nodes"]
assert len(nodes) == 2, nodes
print(f"ok   auth: flwr supernode ls: 2 nodes, still registered ({', '.join(n['status'] for n in nodes)})")
PY
# The tls nodes registered themselves, so they unregistered on the way out.
grep -q 'POST /v1/fleet/unregister-node HTTP/1.1" 200' "$TMP/superlink-tls.log" || fail "tls: the self-registered nodes did not unregister"
stop "$SL_B"; stop "$SL_A"

printf 'auth_smoke: PASS: TLS and node auth, %s rounds each, against flwr %s; total %.1f s\n' \
  "$ROUNDS" "$FLWR_VERSION" "$(elapsed "$START")"
