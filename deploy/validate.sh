#!/usr/bin/env bash
# Offline validation of the deployment files (CI runs it from .ci/run; needs
# deploy/requirements.txt, no network, no Docker daemon, no cluster):
#   1. every Kubernetes manifest, and make-secrets.sh's output on stand-in files, with
#      kubernetes-validate --strict (its bundled schemas: unknown fields, wrong types and
#      missing required fields fail) against the oldest and the newest Kubernetes minor
#      it is checked for;
#   2. check_deploy.py: compose.yaml against the vendored Compose Specification schema,
#      the topology of compose.yaml and of the manifests against federation.toml, the
#      pods' security settings, resources and probes, the Dockerfile's properties;
#   3. the shell scripts parse (bash -n), and shellcheck where it is installed.
#
# Usage: deploy/validate.sh [ROOT]     (ROOT: a repository root, by default this one)
set -euo pipefail

root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
deploy="$root/deploy"
python=${PYTHON:-python3}
# Kubernetes minors checked: the oldest still in wide use and the newest bundled.
k8s_versions=${K8S_VERSIONS:-"1.30.0 1.37.0"}

echo "== deploy: Kubernetes manifests (kubernetes-validate --strict, offline schemas)"
manifests=("$deploy"/k8s/*.yaml "$deploy"/k8s/examples/*.yaml)
# make-secrets.sh's output, on stand-in files in the `iotids certs` layout (not keys).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/pki"
for node in ca cloud edge-0 edge-1 device-0 device-1 device-2 device-3 device-4 device-5; do
    echo "stand-in certificate of $node" > "$scratch/pki/$node.pem"
    echo "stand-in key of $node" > "$scratch/pki/$node.key"
done
bash "$deploy/k8s/make-secrets.sh" "$scratch/pki" > "$scratch/secrets.yaml"
if grep -q "stand-in key of ca" "$scratch/secrets.yaml"; then
    echo "make-secrets.sh printed the CA's key" >&2
    exit 1
fi
for version in $k8s_versions; do
    "$python" -m kubernetes_validate --strict --quiet -k "$version" \
        "${manifests[@]}" "$scratch/secrets.yaml"
    echo "kubernetes-validate $version: ${#manifests[@]} files and make-secrets.sh's output valid"
done

echo "== deploy: compose.yaml, topology, pods, Dockerfile (check_deploy.py)"
"$python" "$deploy/check_deploy.py" "$root"

echo "== deploy: shell scripts"
scripts=("$deploy"/*.sh "$deploy"/k8s/*.sh)
for script in "${scripts[@]}"; do bash -n "$script"; done
if command -v shellcheck >/dev/null 2>&1; then
    shellcheck "${scripts[@]}"
    echo "bash -n and shellcheck: ${#scripts[@]} scripts"
else
    echo "bash -n: ${#scripts[@]} scripts (shellcheck not installed: skipped)"
fi
