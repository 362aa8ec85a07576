"""Leave-one-attack-out: for each attack class of a labelled training CSV, train without it,
score a labelled test file holding every class, and print the README's row for it: the
left-out attack's share decided benign ("passed"), marked unknown, and decided some known
attack, and the benign false-alarm rate (classifier and unknown test together). The
shares come from `iotids evaluate`'s metrics.json (`absent_classes`, `false_alarm_rate`).

Usage:
  python3 benches/loao.py IOTIDS TRAIN.csv TEST.csv OUT_DIR [--classes a,b,...] [-- TRAIN FLAGS...]

e.g. the README's table (held-out halves, the default ensemble with the unknown test):
  python3 benches/loao.py target/release/iotids ../shared/data/mqttset/mqttset-train.csv \\
      mqttset-test.csv target/loao -- --unknown-rate 0.001
and on the development protocol, with dev-train.csv / dev-test.csv from benches/dev_split.py.
Every class but the benign one (`--normal`, default "benign") is left out in turn unless
`--classes` names some. Takes one training per class (about 2.5 min each for the default
ensemble on MQTTset, 2 cores).
"""

import csv
import json
import os
import sys

import runs

ap = runs.parser(__doc__.split("\n\n")[0])
ap.add_argument("--classes", default=None)
ap.add_argument("--normal", default="benign")
ap.add_argument("--label", default="label")
a, flags = runs.parse(ap)

csv.field_size_limit(sys.maxsize)
with open(a.train, newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    rows = list(reader)
if a.label not in header:
    sys.exit(f"{a.train}: no column {a.label!r}")
li = header.index(a.label)
present = sorted({r[li] for r in rows})
if a.normal not in present:
    sys.exit(f"{a.train}: no {a.normal!r} rows in column {a.label!r}")
wanted = a.classes.split(",") if a.classes else [c for c in present if c != a.normal]
for c in wanted:
    if c not in present or c == a.normal:
        sys.exit(f"--classes: {c!r} is not an attack class of {a.train} (classes: {present})")
os.makedirs(a.out, exist_ok=True)

print("| attack left out | its test rows | passed | unknown | as a known attack | benign false alarms |")
print("|---|---:|---:|---:|---:|---:|")
for c in wanted:
    train = os.path.join(a.out, f"without-{c}.csv")
    with open(train, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(r for r in rows if r[li] != c)
    model = os.path.join(a.out, f"model-without-{c}")
    ev = os.path.join(a.out, f"eval-without-{c}")
    for cmd in (
        [a.iotids, "--quiet", "train", train, "--out", model, *flags],
        [a.iotids, "--quiet", "evaluate", a.test, "--model", model, "--out", ev],
    ):
        runs.run(cmd)
    with open(os.path.join(ev, "metrics.json")) as f:
        m = json.load(f)
    absent = {x["class"]: x for x in m.get("absent_classes") or []}
    if c not in absent:
        sys.exit(f"{a.test}: no {c!r} rows, nothing to measure")
    x = absent[c]
    n = x["rows"]
    share = lambda k: f"{100 * x[k] / n:.2f} %"
    fa = m.get("false_alarm_rate")
    fa = "–" if fa is None else f"{100 * fa:.2f} %"
    print(f"| {c} | {n:,} | {share('as_normal')} | {share('as_unknown')} | {share('as_known_attack')} | {fa} |", flush=True)
