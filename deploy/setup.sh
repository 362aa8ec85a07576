#!/usr/bin/env bash
# The compose topology's one-shot set-up (service `setup` of deploy/compose.yaml, run in
# the iotids image as its non-root user):
#   1. `iotids certs`: the CA and every node's certificate into $SHARED/pki
#   2. `iotids deal`:  the training file dealt to the devices into $SHARED/deal
# Each step is skipped when its output already exists, so `docker compose up` again keeps
# the certificates the running nodes trust and the data the cloud's checkpoint was made
# on. `docker compose down -v` removes the volumes and so starts over.
#
# Environment (set by compose.yaml):
#   SHARED      the shared volume (/data/shared)
#   TRAIN       the labelled training file (bind mount of ${TRAIN_FILE})
#   CONFIG      the federation config (deploy/federation.toml)
#   CERT_SANS   extra names for the server certificates, space-separated (the public
#               DNS names or addresses of edges that remote devices reach)
#   DEAL_FLAGS  training flags for `iotids deal`, e.g. "--window 16 --log-scale"
set -euo pipefail

shared=${SHARED:?}
train=${TRAIN:?}
config=${CONFIG:?}

# devices and edges of the config (plain `key = N` lines, as deploy/federation.toml has).
count() { sed -n "s/^$1[[:space:]]*=[[:space:]]*\([0-9]\+\).*/\1/p" "$config" | head -n1; }
devices=$(count devices)
edges=$(count edges)
if [ -z "$devices" ] || [ -z "$edges" ]; then
    echo "setup: $config sets no 'devices = N' or 'edges = N'" >&2
    exit 1
fi

if [ -s "$shared/pki/ca.pem" ]; then
    echo "setup: $shared/pki exists; keeping its certificates"
else
    sans=()
    for name in ${CERT_SANS:-}; do sans+=(--san "$name"); done
    rm -rf "$shared/pki.tmp"
    iotids certs --out "$shared/pki.tmp" --edges "$edges" --devices "$devices" "${sans[@]}"
    chmod 0600 "$shared/pki.tmp/"*.key
    mv "$shared/pki.tmp" "$shared/pki"
fi

if [ -s "$shared/deal/federation.toml" ]; then
    echo "setup: $shared/deal exists; keeping the dealt data"
else
    rm -rf "$shared/deal.tmp"
    # DEAL_FLAGS is split on spaces on purpose: it is a list of flags.
    # shellcheck disable=SC2086
    iotids deal "$train" --config "$config" --out "$shared/deal.tmp" ${DEAL_FLAGS:-}
    mv "$shared/deal.tmp" "$shared/deal"
fi
echo "setup: done ($devices devices, $edges edges)"
