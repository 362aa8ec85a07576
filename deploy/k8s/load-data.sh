#!/usr/bin/env bash
# Hands the dealt files of `iotids deal ... --out DEAL_DIR` to the running pods:
# DEAL_DIR/validation.csv to the cloud (cloud-0), DEAL_DIR/device-<d>.csv to device-<d>
# (40-devices.yaml). Each pod's init container waits for its file on the pod's volume;
# a file is copied under a temporary name and renamed, so no pod starts on half a file.
# A pod past its init container already has its file (the volumes outlive the pods) and
# is left alone; to hand it another file, delete its PersistentVolumeClaim and pod.
#
# Usage: load-data.sh DEAL_DIR       (namespace iotids, or $NAMESPACE)
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DEAL_DIR" >&2; exit 2; }
dir=$1
ns=${NAMESPACE:-iotids}
container=wait-for-data

# put FILE POD DEST: copy FILE to DEST in POD's init container.
put() {
    local file=$1 pod=$2 dest=$3 state="" try
    # Wait (up to 10 minutes) for the init container to run: the pod may be scheduling.
    for try in $(seq 120); do
        state=$(kubectl -n "$ns" get pod "$pod" \
            -o jsonpath='{.status.initContainerStatuses[0].state}' 2>/dev/null || true)
        case $state in
            *running*) break ;;
            *terminated*) echo "$pod: initialised already (its file is on its volume)"; return ;;
        esac
        sleep 5
    done
    case $state in
        *running*) ;;
        *) echo "$0: $pod's $container is not running after $((try * 5)) s ($state)" >&2; exit 1 ;;
    esac
    kubectl -n "$ns" exec "$pod" -c "$container" -- mkdir -p "$(dirname "$dest")"
    kubectl -n "$ns" cp "$file" "$pod:$dest.part" -c "$container"
    kubectl -n "$ns" exec "$pod" -c "$container" -- mv "$dest.part" "$dest"
    echo "$pod: $dest copied"
}

[ -s "$dir/validation.csv" ] || { echo "$0: no $dir/validation.csv" >&2; exit 1; }
put "$dir/validation.csv" cloud-0 /data/state/input/validation.csv

shopt -s nullglob
for file in "$dir"/device-*.csv; do
    node=$(basename "$file" .csv)
    put "$file" "$node" "/data/input/$node.csv"
done
