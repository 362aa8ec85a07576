"""Federated against central training, the README's "Federated parity" table: for each seed,
`iotids federate TRAIN --test TEST --seed S` on one pooled table (`--pooled-table`) and with
node tables (the default: each node's own table, as networked nodes train), each with its own
central comparison (one network on the pooled rows). Prints one row per seed and the
means: macro-F1 (false alarms), and macro-F1 without the classes named by `--without`
(e.g. a class too small to read, such as MQTTset's 22-packet flood).

Usage:
  python3 benches/federated_parity.py IOTIDS TRAIN.csv TEST.csv OUT_DIR
      [--seeds 42,1,2] [--without flood] [--node-only] [-- MORE FEDERATE FLAGS...]

--node-only runs only the node-table version (the pooled columns print "-"): what flags
that imply node tables need, e.g. `--node-only -- --validate-on devices`.

e.g. the README's table (held-out halves, about 2 minutes a run on 2 cores):
  python3 benches/federated_parity.py target/release/iotids \\
      ../shared/data/mqttset/mqttset-train.csv mqttset-test.csv target/parity --without flood
"""

import json
import os
import sys

import runs

ap = runs.parser(__doc__.split("\n\n")[0])
ap.add_argument("--seeds", default="42,1,2")
ap.add_argument("--without", default="")
ap.add_argument("--node-only", action="store_true")
a, flags = runs.parse(ap)
on_devices = any(f == "--validate-on" and v == "devices" for f, v in zip(flags, flags[1:]))
if on_devices and not a.node_only:
    sys.exit("--validate-on devices implies node tables: add --node-only")
seeds = [int(s) for s in a.seeds.split(",") if s]
if not seeds:
    sys.exit("--seeds: give at least one seed, e.g. 42,1,2")
left_out = {c for c in a.without.split(",") if c}
os.makedirs(a.out, exist_ok=True)


def run(seed, node_tables):
    if not node_tables and a.node_only:
        return {"macro_f1": None, "false_alarm": None, "macro_f1_without": None, "central": None}
    out = os.path.join(a.out, f"seed-{seed}-{'node' if node_tables else 'pooled'}")
    cmd = [a.iotids, "--quiet", "federate", a.train, "--test", a.test, "--out", out,
           "--seed", str(seed), "--node-tables" if node_tables else "--pooled-table", *flags]
    runs.run(cmd)
    with open(os.path.join(out, "metrics.json")) as f:
        m = json.load(f)
    with open(os.path.join(out, "federation.json")) as f:
        fed = json.load(f)
    if fed.get("node_tables") != node_tables:
        sys.exit(f"{out}/federation.json: node_tables is {fed.get('node_tables')}, asked {node_tables}")
    classes = m["classes"]
    missing = left_out - set(classes)
    if missing:
        sys.exit(f"--without: {sorted(missing)} not among the model's classes {classes}")
    f1 = [x["f1"] for c, x in m["per_class"].items() if c not in left_out]
    central = (fed.get("central") or {}).get("test") or {}
    return {
        "macro_f1": m["macro_f1"],
        "false_alarm": m.get("false_alarm_rate"),
        "macro_f1_without": sum(f1) / len(f1),
        "central": central.get("macro_f1"),
    }


def pct(x):
    return "-" if x is None else f"{100 * x:.2f} %"


def num(x):
    return "-" if x is None else f"{x:.3f}"


wo = f" without {','.join(sorted(left_out))}" if left_out else ""
print(f"| seed | central | pooled table (FA) | pooled{wo} | --node-tables (FA) | node tables{wo} |")
print("|---|---:|---:|---:|---:|---:|")
rows = []
for s in seeds:
    p, n = run(s, False), run(s, True)
    rows.append((p, n))
    print(f"| {s} | {num(n['central'])} | {num(p['macro_f1'])} ({pct(p['false_alarm'])}) | "
          f"{num(p['macro_f1_without'])} | {num(n['macro_f1'])} ({pct(n['false_alarm'])}) | "
          f"{num(n['macro_f1_without'])} |")


def mean(key, side):
    v = [r[side][key] for r in rows if r[side][key] is not None]
    return sum(v) / len(v) if v else None


print(f"| mean | {num(mean('central', 1))} | {num(mean('macro_f1', 0))} | "
      f"{num(mean('macro_f1_without', 0))} | {num(mean('macro_f1', 1))} | "
      f"{num(mean('macro_f1_without', 1))} |")
