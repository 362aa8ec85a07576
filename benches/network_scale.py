#!/usr/bin/env python3
"""The federation across machines at scale (issue 14, item 8): for each device count N,
the networked run (a cloud, E edge processes and a few `device-pool` processes, gRPC with
mutual TLS over 127.0.0.1) against `iotids federate --no-central` (the one-process
simulation) on the same file and settings. Per N: mean wall seconds per cloud round on
both, the overhead (network - simulation) / network, bytes per tier per round, and the
statistics round's time.

    benches/network_scale.py [--sizes 10,100,1000] [--edges 2,4,10] [--rounds 3]
        [--rows-per-device 100] [--pools 2] [--train-slots 1] [--out DIR]
        [--bin target/release/iotids] [--markdown FILE] [--json FILE]

Every size gets a folder OUT/nN (synth.csv, deal/, certs/, sim/, net/, logs/). Data and
outputs stay there (never commit them). Only 127.0.0.1 is used; ports are picked by the
OS (`--listen 127.0.0.1:0`, each node prints `listening on ADDR`). Every process the
script starts is killed by its own id on every exit path (normal end, error, Ctrl-C,
SIGTERM). Python 3.8+, standard library only.
"""

import argparse
import csv
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

LEARN = ["--split", "flow", "--no-flow-timing", "--seed", "7",
         # A device infers a column's kind from its own rows: with ~100 rows, some read
         # this text column as numbers (the statistics round then refuses to merge).
         "--categorical", "dns.qry.name"]
TRAIN_FRACTION = 0.7

CHILDREN = []  # (name, Popen) of every process started


def stop_all():
    for _, p in CHILDREN:
        if p.poll() is None:
            try:
                p.kill()  # by its own pid
            except OSError:
                pass
    for _, p in CHILDREN:
        try:
            p.wait(timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            pass
    CHILDREN.clear()


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def log(msg):
    print(f"[network_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(binary, args, logs, name):
    """Runs `iotids ARGS` to the end; its stdout."""
    with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.log", "w") as err:
        p = subprocess.Popen([binary, "--quiet", *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        CHILDREN.append((name, p))
        code = p.wait()
    if code != 0:
        sys.exit(f"iotids {args[0]} failed ({code}):\n{(logs / f'{name}.log').read_text()[-3000:]}")
    return (logs / f"{name}.out").read_text()


def start(binary, args, logs, name, env=None):
    out = open(logs / f"{name}.out", "w")
    err = open(logs / f"{name}.log", "w")
    e = dict(os.environ)
    e.setdefault("IOTIDS_LOG", "warn")
    if env:
        e.update(env)
    p = subprocess.Popen([binary, "--quiet", *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=e)
    CHILDREN.append((name, p))
    return p


def address(p, logs, name, limit=120):
    until = time.time() + limit
    while time.time() < until:
        for line in (logs / f"{name}.out").read_text().splitlines():
            if "listening on " in line:
                return "https://" + line.split("listening on ", 1)[1].strip()
        if p.poll() is not None:
            sys.exit(f"{name} exited before listening:\n{(logs / f'{name}.log').read_text()[-3000:]}")
        time.sleep(0.05)
    sys.exit(f"{name} never said where it listens")


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    """User + system CPU seconds of a running process (0 once it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rounds_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


BYTES = {
    "cloud_to_edges": "bytes_cloud_to_edges",
    "edges_to_cloud": "bytes_edges_to_cloud",
    "edges_to_devices": "bytes_edge_to_devices",
    "devices_to_edges": "bytes_devices_to_edge",
}


def summarise(all_rows):
    # Round 1 carries the run context (the fitted pipeline) to every node once; the
    # steady state is the rounds after it.
    rows = all_rows[1:] if len(all_rows) > 1 else all_rows
    first = all_rows[0]
    return {
        "first_round_seconds": float(first["seconds"]),
        "first_round_bytes": {k: int(first[c]) for k, c in BYTES.items()},
        "rounds": len(rows),
        "seconds": mean(float(r["seconds"]) for r in rows),
        "training_seconds": mean(float(r["training_seconds"]) for r in rows),
        "aggregation_seconds": mean(float(r["aggregation_seconds"]) for r in rows),
        "evaluation_seconds": mean(float(r["evaluation_seconds"]) for r in rows),
        "accepted": mean(int(r["accepted"]) for r in rows),
        "sampled": mean(int(r["sampled"]) for r in rows),
        "bytes": {k: mean(int(r[c]) for r in rows) for k, c in BYTES.items()},
    }


def one_size(a, n, e, root):
    d = root / f"n{n}"
    logs = d / "logs"
    for sub in ("net", "sim", "deal", "certs"):
        subprocess.run(["rm", "-rf", str(d / sub)], check=True)
    logs.mkdir(parents=True, exist_ok=True)
    rows = math.ceil(n * a.rows_per_device / TRAIN_FRACTION * 1.05)
    log(f"N={n} E={e}: synth {rows} rows, deal, certs")
    run(a.bin, ["synth", "--rows", str(rows), "--out", str(d / "synth.csv"), "--seed", "5"], logs, "synth")
    (d / "settings.toml").write_text(
        f"devices = {n}\nedges = {e}\nrounds = {a.rounds}\nedge_rounds = 1\nlocal_epochs = 1\npartition = \"iid\"\n"
    )
    run(a.bin, ["deal", str(d / "synth.csv"), "--out", str(d / "deal"), "--config", str(d / "settings.toml"), *LEARN],
        logs, "deal")
    deal = json.load(open(d / "deal" / "deal.json"))
    per_device = [x["rows"] for x in deal["devices"]]
    run(a.bin, ["certs", "--out", str(d / "certs"), "--edges", str(e), "--devices", str(n)], logs, "certs")
    config = str(d / "deal" / "federation.toml")

    log(f"N={n}: the simulation (federate --no-central)")
    t = time.time()
    run(a.bin, ["federate", str(d / "synth.csv"), "--out", str(d / "sim"), "--config", config, "--no-central", *LEARN],
        logs, "federate")
    sim_wall = time.time() - t

    log(f"N={n}: the networked run (cloud, {e} edges, {a.pools} device pools)")
    certs = d / "certs"
    tls = lambda node: ["--ca", str(certs / "ca.pem"), "--cert", str(certs / f"{node}.pem"),  # noqa: E731
                        "--key", str(certs / f"{node}.key")]
    t = time.time()
    cloud = start(a.bin, ["cloud", "--validation", str(d / "deal" / "validation.csv"), "--out", str(d / "net"),
                          "--config", config, "--listen", "127.0.0.1:0", "--device-deadline", "900",
                          "--edge-deadline", "1200", "--statistics-deadline", "600", *tls("cloud"), *LEARN],
                  logs, "cloud")
    cloud_url = address(cloud, logs, "cloud")
    edges, edge_procs = [], []
    for i in range(e):
        p = start(a.bin, ["edge", "--cloud", cloud_url, "--listen", "127.0.0.1:0", *tls(f"edge-{i}")], logs, f"edge-{i}")
        edges.append(address(p, logs, f"edge-{i}"))
        edge_procs.append(p)
    pools = []
    for k in range(a.pools):
        lo, hi = k * n // a.pools, (k + 1) * n // a.pools
        if lo == hi:
            continue
        args = ["device-pool", "--deal", str(d / "deal"), "--certs", str(certs), "--devices", f"{lo}..{hi}",
                "--train-slots", str(a.train_slots)]
        for url in edges:
            args += ["--edge", url]
        pools.append((f"pool-{k}", start(a.bin, args, logs, f"pool-{k}")))
    peak, cpu = {}, {}
    watched = [("cloud", cloud), *[(f"edge-{i}", p) for i, p in enumerate(edge_procs)], *pools]
    while any(p.poll() is None for _, p in watched):
        for name, p in watched:
            if p.poll() is None:
                peak[name] = max(peak.get(name, 0), rss_kb(p.pid))
                cpu[name] = max(cpu.get(name, 0.0), cpu_seconds(p.pid))
        if cloud.poll() is None:
            net_wall = time.time() - t
        if time.time() - t > a.limit:
            sys.exit(f"N={n}: the networked run took over {a.limit} s")
        if cloud.poll() == 0 and time.time() - t - net_wall > 120:
            sys.exit(f"N={n}: nodes still running 120 s after the cloud finished")
        for i in range(e):
            text = (logs / f"edge-{i}.log").read_text(errors="replace")
            if "could not answer the cloud" in text:
                line = next(x for x in text.splitlines() if "could not answer the cloud" in x)
                sys.exit(f"N={n}: edge-{i} could not answer the cloud:\n{line}")
        bad = [nm for nm, p in watched if p.poll() not in (None, 0)]
        if bad:
            sys.exit(f"N={n}: {bad[0]} failed:\n{(logs / f'{bad[0]}.log').read_text()[-3000:]}")
        time.sleep(0.2)
    accepted_updates = 0
    for name, _ in pools:
        for line in (logs / f"{name}.out").read_text().splitlines():
            if line.startswith("device-pool:"):
                accepted_updates += int(line.split("(")[2].split(" accepted")[0])
    stop_all()

    net_json = json.load(open(d / "net" / "federation.json"))
    sim_json = json.load(open(d / "sim" / "federation.json"))
    stats_net = net_json["network"].get("statistics_round") or {}
    sim_pipeline = sim_json.get("pipeline") or {}
    net, sim = summarise(rounds_csv(d / "net" / "rounds.csv")), summarise(rounds_csv(d / "sim" / "rounds.csv"))
    return {
        "devices": n,
        "edges": e,
        "pools": len(pools),
        "train_slots": a.train_slots,
        "rows_per_device": {"min": min(per_device), "mean": mean(per_device), "max": max(per_device)},
        "network": net,
        "simulation": sim,
        "overhead": (net["seconds"] - sim["seconds"]) / net["seconds"],
        "statistics_round": {
            "network_seconds": sum(stats_net.get("seconds", [])),
            "network_seconds_per_request": stats_net.get("seconds", []),
            "network_bytes_up": stats_net.get("bytes_up"),
            "network_bytes_down": stats_net.get("bytes_down"),
            "simulation_seconds": sim_pipeline.get("statistics_round_seconds"),
            "simulation_bytes_up": (sim_pipeline.get("statistics_round") or {}).get("bytes_up"),
        },
        "updates_accepted_by_edges": accepted_updates,
        "wall_seconds": {"network": net_wall, "simulation": sim_wall},
        "peak_rss_mb": {k: v / 1024 for k, v in peak.items()},
        # CPU seconds of the whole networked run (statistics round, round 1 included),
        # sampled every 0.2 s while each process lived.
        "cpu_seconds": {
            "cloud": cpu.get("cloud", 0.0),
            "edges": sum(v for k, v in cpu.items() if k.startswith("edge")),
            "pools": sum(v for k, v in cpu.items() if k.startswith("pool")),
        },
        "learn": LEARN,
    }


def kb(x):
    return f"{x / 1e3:,.1f}"


def markdown(results, cmd):
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}.",
        f"Command: `{cmd}`.",
        "",
        f"Network flags: `{' '.join(LEARN)}`.",
        "",
        "| devices | edges | pools × slots | s/round network | s/round simulation | overhead | edge exchange s/round (net / sim) | round 1 s (net / sim) | kB/round cloud→edges / edges→cloud (net; sim) | kB/round edges→devices / devices→edges (net; sim) | round 1 kB edges→devices (net; sim) | statistics round s (net / sim) | pool peak RSS MB | CPU s cloud / edges / pools |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, s = r["network"], r["simulation"]
        nb, sb = n["bytes"], s["bytes"]
        st = r["statistics_round"]
        rss = max((v for k, v in r["peak_rss_mb"].items() if k.startswith("pool")), default=0)
        lines.append(
            f"| {r['devices']} | {r['edges']} | {r['pools']} × {r['train_slots']} | {n['seconds']:.3f} | {s['seconds']:.3f} "
            f"| {100 * r['overhead']:.0f} % | {n['training_seconds']:.3f} / {s['training_seconds']:.3f} "
            f"| {n['first_round_seconds']:.3f} / {s['first_round_seconds']:.3f} "
            f"| {kb(nb['cloud_to_edges'])} / {kb(nb['edges_to_cloud'])}; {kb(sb['cloud_to_edges'])} / {kb(sb['edges_to_cloud'])} "
            f"| {kb(nb['edges_to_devices'])} / {kb(nb['devices_to_edges'])}; {kb(sb['edges_to_devices'])} / {kb(sb['devices_to_edges'])} "
            f"| {kb(n['first_round_bytes']['edges_to_devices'])}; {kb(s['first_round_bytes']['edges_to_devices'])} "
            f"| {st['network_seconds']:.2f} / {st['simulation_seconds'] or float('nan'):.2f} | {rss:.0f} "
            f"| {r['cpu_seconds']['cloud']:.1f} / {r['cpu_seconds']['edges']:.1f} / {r['cpu_seconds']['pools']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--edges", default="2,4,10", help="edges per size, in the order of --sizes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows-per-device", type=int, default=100)
    ap.add_argument("--pools", type=int, default=2, help="device-pool processes")
    ap.add_argument("--train-slots", type=int, default=1, help="devices training at once in each pool")
    ap.add_argument("--out", default="/tmp/iotids-network-scale")
    ap.add_argument("--bin", default="target/release/iotids")
    ap.add_argument("--limit", type=float, default=3600, help="seconds a networked run may take")
    ap.add_argument("--model", default="--window 4 --hidden 8",
                    help="the network's flags for deal, federate and cloud")
    ap.add_argument("--markdown", help="also write the table here")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    edges = [int(x) for x in a.edges.split(",")]
    if len(edges) != len(sizes):
        ap.error(f"--edges {a.edges}: give one edge count per size of --sizes {a.sizes}")
    if a.pools < 1 or a.train_slots < 1 or a.rounds < 1:
        ap.error("--pools, --train-slots and --rounds must be at least 1")
    LEARN[:0] = a.model.split()
    a.bin = str(Path(a.bin).resolve())
    if not os.access(a.bin, os.X_OK):
        ap.error(f"--bin {a.bin}: no iotids binary there (cargo build --release)")
    root = Path(a.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    results = []
    try:
        for n, e in zip(sizes, edges):
            r = one_size(a, n, e, root)
            results.append(r)
            log(f"N={n}: network {r['network']['seconds']:.3f} s/round, simulation {r['simulation']['seconds']:.3f} s/round, overhead {100 * r['overhead']:.0f} %")
            json.dump(results, open(root / "results.json", "w"), indent=2)
    finally:
        stop_all()
    cmd = "benches/network_scale.py " + " ".join(sys.argv[1:])
    table = markdown(results, cmd)
    print(table)
    if a.markdown:
        Path(a.markdown).write_text(table)
    if a.json:
        json.dump(results, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
