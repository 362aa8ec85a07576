# shellcheck shell=bash
# Sourced by the Flower scripts here (smoke.sh, auth_smoke.sh, run.sh): the pinned flwr
# in a venv, free ports on 127.0.0.1, and the processes a SuperLink leaves behind.
# Expects VENV and FLWR_VERSION set, and a `fail` function.

# ensure_flwr: VENV with flwr==FLWR_VERSION (made if missing), or fail naming what it has.
ensure_flwr() {
  if [ ! -x "$VENV/bin/flower-superlink" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "flwr==$FLWR_VERSION"
  fi
  local got
  got="$("$VENV/bin/python" -c 'import flwr; print(flwr.__version__)')"
  [ "$got" = "$FLWR_VERSION" ] || fail "$VENV has flwr $got, want $FLWR_VERSION"
}

# free_port: a port of 127.0.0.1 the OS says is free.
free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# descendants PID: the pids of PID's children, grandchildren, ... (by parent pid).
descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}
