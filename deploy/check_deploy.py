#!/usr/bin/env python3
"""Offline checks of the deployment files that a schema alone does not make.

    python3 deploy/check_deploy.py [ROOT]      (ROOT: the repository root, by default
                                                this file's parent's parent)

Run by deploy/validate.sh after kubernetes-validate. Checks:

* compose.yaml against the Compose Specification's JSON schema (deploy/schema/), and
  its topology against deploy/federation.toml: services setup, cloud, edge-<e>,
  device-<d>; device d dials edge d * edges / devices with its own certificate and
  file; every role waits for `setup` to complete and has a restart policy; the cloud's
  output and checkpoints are on a named volume.
* the Kubernetes manifests (deploy/k8s/*.yaml; examples/ too for kinds and keys): only
  known kinds; the ConfigMap's federation.toml equals deploy/federation.toml; the cloud
  is a one-pod StatefulSet whose volumeClaimTemplate holds its --checkpoint; one edge
  Deployment and Service per edge, with its own Secret; the device StatefulSet's
  replicas, DEVICES and EDGES agree with the config; every pod runs as non-root; every
  container runs the iotids image, with a read-only root file system, no privilege
  escalation, no capabilities, resource requests and limits; every server container
  has TCP probes on its gRPC port; no Secret outside examples/, and nothing under
  deploy/ holds a PEM private key.
* the Dockerfile (dockerfile-parse): multi-stage, a slim runtime stage with a non-root
  USER, ENTRYPOINT ["iotids"] in exec form, no key, certificate or env file copied in,
  no secret-looking ARG/ENV; .dockerignore keeps target/, .git and keys out.

Prints one line a failed check and a closing "deploy: N passed, N failed" line; exits 1
on any failure.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

passed = 0
failed = 0


def check(ok: bool, what: str) -> bool:
    """Counts one check; prints it when it fails."""
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")
    return ok


def flags(argv: list[str]) -> dict[str, str]:
    """`--name=value` and `--name value` arguments of a command line, by name."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = str(argv[i])
        if arg.startswith("--"):
            if "=" in arg:
                name, value = arg[2:].split("=", 1)
                out[name] = value
            elif i + 1 < len(argv) and not str(argv[i + 1]).startswith("--"):
                out[arg[2:]] = str(argv[i + 1])
                i += 1
            else:
                out[arg[2:]] = ""
        i += 1
    return out


# ---- the federation ---------------------------------------------------------------------

config_text = (DEPLOY / "federation.toml").read_text()
config = tomllib.loads(config_text)
DEVICES = int(config["devices"])
EDGES = int(config["edges"])
check(1 <= EDGES <= DEVICES, f"federation.toml: 1 <= edges ({EDGES}) <= devices ({DEVICES})")


def edge_of(d: int) -> int:
    """The edge of device d, as the networked roles deal them."""
    return d * EDGES // DEVICES


# ---- compose.yaml -------------------------------------------------------------------------


def check_compose() -> None:
    path = DEPLOY / "compose.yaml"
    compose = yaml.safe_load(path.read_text())  # resolves the anchors and `<<` merges
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        check(False, f"compose.yaml: schema: {where}: {error.message}")
    check(not errors, "compose.yaml: valid against the Compose Specification schema")

    services = compose.get("services", {})
    nodes = (
        ["cloud"] + [f"edge-{e}" for e in range(EDGES)] + [f"device-{d}" for d in range(DEVICES)]
    )
    check(
        sorted(services) == sorted(["setup"] + nodes),
        f"compose.yaml: services are setup + {nodes} (found {sorted(services)})",
    )
    named_volumes = set((compose.get("volumes") or {}).keys())

    def command(name: str) -> list[str]:
        cmd = services.get(name, {}).get("command", [])
        return cmd if isinstance(cmd, list) else str(cmd).split()

    def depends(name: str) -> dict:
        dep = services.get(name, {}).get("depends_on", {})
        return dep if isinstance(dep, dict) else {d: {"condition": "service_started"} for d in dep}

    setup = services.get("setup", {})
    build = setup.get("build", {})
    check(
        isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile",
        "compose.yaml: setup builds the image from deploy/Dockerfile",
    )
    images = {str(svc.get("image")) for svc in services.values()}
    check(len(images) == 1, f"compose.yaml: every service runs one image ({sorted(images)})")
    check(setup.get("restart") in ("no", None), "compose.yaml: setup is one-shot (restart: no)")
    check(
        any("${TRAIN_FILE" in str(v) for v in setup.get("volumes", [])),
        "compose.yaml: setup bind-mounts ${TRAIN_FILE}",
    )

    for name in nodes:
        svc = services.get(name, {})
        check(
            depends(name).get("setup", {}).get("condition") == "service_completed_successfully",
            f"compose.yaml: {name} depends on setup with service_completed_successfully",
        )
        check(
            svc.get("restart") in ("always", "unless-stopped", "on-failure")
            or str(svc.get("restart", "")).startswith("on-failure:"),
            f"compose.yaml: {name} has a restart policy",
        )
        check(svc.get("pull_policy") == "never", f"compose.yaml: {name} runs the built image")
        check(
            str(svc.get("user", "")).split(":")[0] not in ("", "0", "root"),
            f"compose.yaml: {name} runs as a non-root user",
        )

    cloud = flags(command("cloud"))
    check(command("cloud")[:1] == ["cloud"], "compose.yaml: the cloud runs `iotids cloud`")
    check(cloud.get("listen", "").endswith(":7400"), "compose.yaml: the cloud listens on 7400")
    for key in ("ca", "cert", "key", "config", "validation", "out"):
        check(key in cloud, f"compose.yaml: the cloud has --{key}")
    check(
        cloud.get("cert", "").endswith("/cloud.pem")
        and cloud.get("key", "").endswith("/cloud.key"),
        "compose.yaml: the cloud uses the cloud certificate",
    )
    checkpoint = cloud.get("checkpoint") or cloud.get("out", "") + "/checkpoint"
    cloud_mounts = [str(v) for v in services.get("cloud", {}).get("volumes", [])]
    check(
        any(
            ":" in v
            and v.split(":")[0] in named_volumes
            and checkpoint.startswith(v.split(":")[1].rstrip("/") + "/")
            and not v.endswith(":ro")
            for v in cloud_mounts
        ),
        f"compose.yaml: the cloud's checkpoint ({checkpoint}) is on a writable named volume",
    )

    for e in range(EDGES):
        name = f"edge-{e}"
        f = flags(command(name))
        check(command(name)[:1] == ["edge"], f"compose.yaml: {name} runs `iotids edge`")
        check(f.get("listen", "").endswith(":7401"), f"compose.yaml: {name} listens on 7401")
        check(
            f.get("cloud") == "https://cloud:7400", f"compose.yaml: {name} dials https://cloud:7400"
        )
        check(
            f.get("cert", "").endswith(f"/{name}.pem")
            and f.get("key", "").endswith(f"/{name}.key"),
            f"compose.yaml: {name} uses its own certificate",
        )
        check(
            depends(name).get("cloud", {}).get("condition") == "service_healthy",
            f"compose.yaml: {name} waits for a healthy cloud",
        )

    for d in range(DEVICES):
        name = f"device-{d}"
        f = flags(command(name))
        edge = f"edge-{edge_of(d)}"
        check(command(name)[:1] == ["device"], f"compose.yaml: {name} runs `iotids device`")
        check(
            f.get("edge") == f"https://{edge}:7401",
            f"compose.yaml: {name} dials https://{edge}:7401",
        )
        check(
            f.get("cert", "").endswith(f"/{name}.pem")
            and f.get("key", "").endswith(f"/{name}.key"),
            f"compose.yaml: {name} uses its own certificate",
        )
        check(
            f.get("data", "").endswith(f"/{name}.csv"), f"compose.yaml: {name} reads its own file"
        )
        check(
            depends(name).get(edge, {}).get("condition") == "service_healthy",
            f"compose.yaml: {name} waits for a healthy {edge}",
        )

    for name in ["cloud"] + [f"edge-{e}" for e in range(EDGES)]:
        test = services.get(name, {}).get("healthcheck", {}).get("test", [])
        check(bool(test), f"compose.yaml: {name} has a healthcheck")


# ---- Kubernetes ---------------------------------------------------------------------------

KNOWN_KINDS = {
    "Namespace",
    "ConfigMap",
    "Secret",
    "Service",
    "StatefulSet",
    "Deployment",
    "NetworkPolicy",
}


def load_docs(paths: list[Path]) -> list[tuple[Path, dict]]:
    docs = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def pod_checks(where: str, spec: dict, servers: dict[str, int]) -> None:
    """Security, resources and probes of a pod template's spec. `servers`: the
    containers that listen, with their port."""
    pod_sc = spec.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    check(int(pod_sc.get("runAsUser", 0)) != 0, f"{where}: runAsUser is not 0")
    check(spec.get("automountServiceAccountToken") is False, f"{where}: no service account token")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        cw = f"{where}: container {c.get('name')}"
        # The schema leaves image optional (the API server does not): every container
        # runs the one iotids image.
        check(str(c.get("image", "")).startswith("iotids:"), f"{cw}: runs the iotids image")
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation false")
        check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{cw}: drops all capabilities")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            check(
                {"cpu", "memory"} <= set(res.get(kind, {})),
                f"{cw}: resources.{kind} cpu and memory",
            )
    for c in spec.get("containers", []):
        if c.get("name") not in servers:
            continue
        port = servers[c["name"]]
        named = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            tcp = c.get(probe, {}).get("tcpSocket", {}).get("port")
            check(
                tcp == port or named.get(tcp) == port, f"{where}: {probe} is a TCP probe on {port}"
            )
        check(f"--listen=0.0.0.0:{port}" in c.get("args", []), f"{where}: listens on {port}")


def check_k8s() -> None:
    main_files = sorted(K8S.glob("*.yaml"))
    example_files = sorted((K8S / "examples").glob("*.yaml"))
    docs = load_docs(main_files)
    examples = load_docs(example_files)
    check(bool(main_files), "k8s: manifests found")

    for path, doc in docs + examples:
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name")
        check(kind in KNOWN_KINDS, f"k8s {path.name}: known kind ({kind})")
        if kind != "Namespace":
            check(
                doc.get("metadata", {}).get("namespace") == "iotids",
                f"k8s {path.name}: {kind}/{name} in namespace iotids",
            )
    for path, doc in docs:
        check(
            doc.get("kind") != "Secret",
            f"k8s {path.name}: no Secret outside examples/ (make-secrets.sh makes them)",
        )

    def find(kind: str, name: str) -> dict:
        for _, doc in docs:
            if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
                return doc
        check(False, f"k8s: {kind}/{name} exists")
        return {}

    # The config.
    cm = find("ConfigMap", "iotids-federation")
    check(
        cm.get("data", {}).get("federation.toml") == config_text,
        "k8s: ConfigMap iotids-federation's federation.toml equals deploy/federation.toml",
    )

    # The cloud.
    sts = find("StatefulSet", "cloud")
    spec = sts.get("spec", {})
    check(spec.get("replicas") == 1, "k8s: one cloud")
    headless = find("Service", spec.get("serviceName", "?"))
    check(
        headless.get("spec", {}).get("clusterIP") == "None",
        "k8s: the cloud's serviceName is a headless Service",
    )
    check(
        find("Service", "cloud").get("spec", {}).get("ports", [{}])[0].get("port") == 7400,
        "k8s: Service cloud serves 7400",
    )
    pod = spec.get("template", {}).get("spec", {})
    pod_checks("k8s cloud", pod, {"cloud": 7400})
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    container = next((c for c in pod.get("containers", []) if c.get("name") == "cloud"), {})
    args = flags(container.get("args", []))
    checkpoint = args.get("checkpoint") or args.get("out", "") + "/checkpoint"
    check(
        any(
            m["name"] in claims and checkpoint.startswith(m["mountPath"].rstrip("/") + "/")
            for m in container.get("volumeMounts", [])
        ),
        f"k8s: the cloud's checkpoint ({checkpoint}) is on a volumeClaimTemplate",
    )
    secret_of = {v["name"]: v.get("secret", {}).get("secretName") for v in pod.get("volumes", [])}
    check("iotids-cloud-tls" in secret_of.values(), "k8s: the cloud mounts Secret iotids-cloud-tls")
    config_volumes = [
        v
        for v in pod.get("volumes", [])
        if v.get("configMap", {}).get("name") == "iotids-federation"
    ]
    check(bool(config_volumes), "k8s: the cloud mounts ConfigMap iotids-federation")

    # The edges.
    deployments = [d for _, d in docs if d.get("kind") == "Deployment"]
    check(len(deployments) == EDGES, f"k8s: {EDGES} edge Deployments (found {len(deployments)})")
    for e in range(EDGES):
        name = f"edge-{e}"
        dep = find("Deployment", name)
        dspec = dep.get("spec", {})
        check(dspec.get("replicas") == 1, f"k8s: {name} has one replica")
        check(
            dspec.get("strategy", {}).get("type") == "Recreate",
            f"k8s: {name} is replaced, not rolled",
        )
        pod = dspec.get("template", {}).get("spec", {})
        pod_checks(f"k8s {name}", pod, {"edge": 7401})
        container = next((c for c in pod.get("containers", []) if c.get("name") == "edge"), {})
        check(
            flags(container.get("args", [])).get("cloud") == "https://cloud:7400",
            f"k8s: {name} dials https://cloud:7400",
        )
        secrets = {v.get("secret", {}).get("secretName") for v in pod.get("volumes", [])}
        check(f"iotids-{name}-tls" in secrets, f"k8s: {name} mounts Secret iotids-{name}-tls")
        svc = find("Service", name)
        labels = dspec.get("template", {}).get("metadata", {}).get("labels", {})
        selector = svc.get("spec", {}).get("selector", {})
        check(
            bool(selector) and all(labels.get(k) == v for k, v in selector.items()),
            f"k8s: Service {name} selects the {name} pods",
        )
        check(
            dspec.get("selector", {}).get("matchLabels", {}) == selector,
            f"k8s: Service {name} selects only {name}",
        )

    # The devices.
    dev = find("StatefulSet", "device")
    dspec = dev.get("spec", {})
    check(dspec.get("replicas") == DEVICES, f"k8s: {DEVICES} device replicas")
    pod = dspec.get("template", {}).get("spec", {})
    pod_checks("k8s device", pod, {})
    container = next((c for c in pod.get("containers", []) if c.get("name") == "device"), {})
    env = {v["name"]: v.get("value") for v in container.get("env", [])}
    check(
        env.get("DEVICES") == str(DEVICES) and env.get("EDGES") == str(EDGES),
        f"k8s: the devices' DEVICES/EDGES are {DEVICES}/{EDGES} (found {env.get('DEVICES')}/{env.get('EDGES')})",
    )
    script = "\n".join(container.get("command", []) + container.get("args", []))
    check(
        "d * EDGES / DEVICES" in script and "https://edge-${e}:7401" in script,
        "k8s: a device dials edge d * EDGES / DEVICES",
    )

    # Secret placeholders (examples): stringData only, and no key material.
    for path, doc in examples:
        if doc.get("kind") == "Secret":
            values = list((doc.get("stringData") or {}).values()) + list(
                (doc.get("data") or {}).values()
            )
            check(
                all(str(v).startswith("PLACEHOLDER") for v in values),
                f"k8s {path.name}: Secret {doc['metadata']['name']} holds placeholders only",
            )


def check_no_keys() -> None:
    pattern = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    hits = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.suffix != ".json" and pattern.search(p.read_text(errors="ignore"))
    ]
    check(not hits, f"deploy/: no PEM private key in any file ({[str(h) for h in hits]})")


# ---- Dockerfile ---------------------------------------------------------------------------


def check_dockerfile() -> None:
    path = DEPLOY / "Dockerfile"
    parser = DockerfileParser(path=str(path))
    instructions = parser.structure
    froms = [i for i in instructions if i["instruction"] == "FROM"]
    check(len(froms) >= 2, f"Dockerfile: multi-stage ({len(froms)} FROM)")
    last_from = max(i["startline"] for i in froms) if froms else 0
    final = [i for i in instructions if i["startline"] >= last_from]
    # The runtime base, after the ARG defaults are substituted.
    args = {}
    for i in instructions:
        if (
            i["instruction"] == "ARG"
            and "=" in i["value"]
            and i["startline"] < (froms[0]["startline"] if froms else 0)
        ):
            k, v = i["value"].split("=", 1)
            args[k.strip()] = v.strip()
    base = froms[-1]["value"].split()[0] if froms else ""
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)
    check(base.endswith("-slim") or "distroless" in base, f"Dockerfile: slim runtime base ({base})")
    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    user = users[-1].split(":")[0] if users else ""
    check(
        bool(users) and user not in ("root", "0") and not user.startswith("$"),
        f"Dockerfile: the final stage's USER is a fixed non-root user ({user or 'none'})",
    )
    entry = [i["value"].strip() for i in final if i["instruction"] == "ENTRYPOINT"]
    check(
        bool(entry) and json.loads(entry[-1]) == ["iotids"],
        'Dockerfile: ENTRYPOINT ["iotids"] (exec form)',
    )
    check(
        any(i["instruction"] == "WORKDIR" for i in final),
        "Dockerfile: the final stage sets WORKDIR",
    )
    check(
        any(i["instruction"] == "COPY" and "--from=" in i["value"] for i in final),
        "Dockerfile: the final stage copies the binary from the builder",
    )
    check(
        not any(i["instruction"] == "COPY" and "--from=" not in i["value"] for i in final),
        "Dockerfile: the final stage copies nothing from the build context",
    )
    secretish = re.compile(r"\.(pem|key|crt|p12|pfx)\b|\bid_rsa\b|\.env\b|\bsecrets?\b", re.I)
    for i in instructions:
        if i["instruction"] in ("COPY", "ADD"):
            check(
                not secretish.search(i["value"]),
                f"Dockerfile line {i['startline'] + 1}: copies no key or secret ({i['value']})",
            )
        if i["instruction"] in ("ARG", "ENV"):
            check(
                not re.search(r"PASSWORD|TOKEN|SECRET|PRIVATE|API_?KEY", i["value"], re.I),
                f"Dockerfile line {i['startline'] + 1}: no secret in {i['instruction']}",
            )
    run = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
    check("cargo build --release" in run, "Dockerfile: cargo build --release")
    check("--mount=type=cache" in run, "Dockerfile: cargo cache mounts")
    check(
        "libpcap0.8" in run and "libpcap-dev" in run,
        "Dockerfile: libpcap-dev to build, libpcap0.8 to run",
    )

    ignore = (ROOT / ".dockerignore").read_text().split()
    for needed in ("target/", ".git/", "**/*.key", "**/*.pem"):
        check(needed in ignore, f".dockerignore: {needed}")


check_compose()
check_k8s()
check_no_keys()
check_dockerfile()
print(f"deploy: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
