#!/usr/bin/env python3
"""Utility against privacy (issue 15): the federated model's test macro-F1 and false-alarm
rate at each target ε of differential privacy (DP-FedAvg with the Rényi-DP accountant),
for a few federation sizes, on one labelled file.

    benches/privacy_utility.py TRAIN.csv [--test TEST.csv] [--out DIR]
        [--epsilons 1,2,4,8,inf] [--setting 20:4:1.0 --setting 1000:10:0.1 ...]
        [--rounds 30] [--clip 0.5] [--secure-aggregation] [--bin target/release/iotids]
        [--markdown FILE] [--svg FILE]

A setting is DEVICES:EDGES:FRACTION (FRACTION is the Poisson sampling rate q of every
edge round). For each setting and ε the script runs
`iotids federate TRAIN --no-central --devices N --edges E --fraction q --rounds R
--dp-target-epsilon ε --dp-clip C` (ε = inf: no DP, the same settings otherwise), reads
`metrics.json` (the held-out rows of the file's own split, or --test) and
`federation.json` (the noise multiplier the target called for, the ε spent), and writes
OUT/privacy_utility.csv, a markdown table and a picture (macro-F1 against ε, one line per
setting; matplotlib). Every run's folder stays under OUT (never commit it). Processes are
run one at a time and waited for.
"""

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path


def run(cmd):
    t = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return time.time() - t


def false_alarm(metrics):
    """Share of normal rows flagged as an attack (metrics.json)."""
    return metrics.get("false_alarm_rate")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train")
    ap.add_argument("--test")
    ap.add_argument("--out", default="target/privacy-utility")
    ap.add_argument("--epsilons", default="1,2,4,8,inf")
    ap.add_argument("--setting", action="append", default=None)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--clip", type=float, default=0.5)
    ap.add_argument("--secure-aggregation", action="store_true")
    ap.add_argument("--bin", default="target/release/iotids")
    ap.add_argument("--markdown")
    ap.add_argument("--svg")
    ap.add_argument("--extra", default="", help="more federate flags, space-separated")
    ap.add_argument("--from-csv", nargs="*", default=None,
                    help="only draw the table and picture from earlier runs' CSVs")
    a = ap.parse_args()
    settings = a.setting or ["20:4:1.0", "1000:10:0.1"]
    epsilons = [float(e) for e in a.epsilons.split(",")]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if a.from_csv is not None:
        for path in a.from_csv:
            with open(path) as fh:
                for r in csv.DictReader(fh):
                    num = lambda v: None if v in ("", None) else float(v)
                    rows.append({
                        "devices": int(r["devices"]), "edges": int(r["edges"]),
                        "sampling_rate": float(r["sampling_rate"]),
                        "target_epsilon": float(r["target_epsilon"]), "epsilon": num(r["epsilon"]),
                        "noise_multiplier": num(r["noise_multiplier"]), "delta": num(r["delta"]),
                        "steps": num(r["steps"]), "rounds_run": int(r["rounds_run"]),
                        "macro_f1": float(r["macro_f1"]), "false_alarm": num(r["false_alarm"]),
                        "seconds": float(r["seconds"]),
                    })
        settings = sorted({f"{r['devices']}:{r['edges']}:{r['sampling_rate']}" for r in rows},
                          key=lambda s: int(s.split(":")[0]))
        epsilons = sorted({r["target_epsilon"] for r in rows})
        a.setting = settings
    for s in settings if a.from_csv is None else []:
        devices, edges, q = s.split(":")
        for eps in epsilons:
            name = f"d{devices}-e{edges}-q{q}-eps{eps}"
            d = out / name
            cmd = [a.bin, "--quiet", "federate", a.train, "--out", str(d), "--no-central",
                   "--devices", devices, "--edges", edges, "--fraction", q,
                   "--rounds", str(a.rounds)]
            if a.test:
                cmd += ["--test", a.test]
            if math.isfinite(eps):
                cmd += ["--dp-target-epsilon", str(eps), "--dp-clip", str(a.clip)]
            if a.secure_aggregation:
                cmd += ["--secure-aggregation"]
            cmd += a.extra.split()
            seconds = run(cmd)
            m = json.loads((d / "metrics.json").read_text())
            f = json.loads((d / "federation.json").read_text())
            p = f.get("privacy") or {}
            row = {
                "devices": int(devices), "edges": int(edges), "sampling_rate": float(q),
                "target_epsilon": eps, "epsilon": p.get("epsilon"),
                "noise_multiplier": p.get("noise_multiplier"), "delta": p.get("delta"),
                "steps": p.get("steps"), "rounds_run": f.get("rounds_run"),
                "macro_f1": m.get("macro_f1"), "false_alarm": false_alarm(m),
                "seconds": round(seconds, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if a.from_csv is None:
      with open(out / "privacy_utility.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| devices (edges, q) | target ε | σ | ε spent (δ) | rounds | test macro-F1 | false alarms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        fa = r["false_alarm"]
        lines.append(
            f"| {r['devices']} ({r['edges']}, {r['sampling_rate']}) | "
            f"{'∞ (no DP)' if not math.isfinite(r['target_epsilon']) else r['target_epsilon']:} | "
            f"{'-' if r['noise_multiplier'] is None else format(r['noise_multiplier'], '.3f')} | "
            f"{'-' if r['epsilon'] is None else format(r['epsilon'], '.2f') + ' (' + format(r['delta'], 'g') + ')'} | "
            f"{r['rounds_run']} | {r['macro_f1']:.3f} | "
            f"{'-' if fa is None else format(100 * fa, '.2f') + ' %'} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if a.markdown:
        Path(a.markdown).write_text(table)
    svg = a.svg or str(out / "privacy_utility.svg")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no picture (pip install matplotlib)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = [e for e in epsilons if math.isfinite(e)]
    inf_x = (max(finite) * 2) if finite else 1.0
    for s in settings:
        devices, edges, q = s.split(":")
        pts = [(r["target_epsilon"] if math.isfinite(r["target_epsilon"]) else inf_x, r["macro_f1"])
               for r in rows if r["devices"] == int(devices) and r["edges"] == int(edges)
               and r["sampling_rate"] == float(q)]
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o",
                label=f"{devices} devices, {edges} edges, q = {q}")
    ax.set_xscale("log", base=2)
    ticks = finite + [inf_x]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in finite] + ["∞"])
    ax.set_xlabel("ε (δ as in the table)")
    ax.set_ylabel("test macro-F1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("DP-FedAvg on MQTTset: utility against privacy")
    fig.tight_layout()
    fig.savefig(svg)
    print(f"wrote {svg}")


if __name__ == "__main__":
    main()
