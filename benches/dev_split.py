"""The development protocol's split of a capture-ordered labelled CSV into two files, the
way MQTTset-reduced cut its captures into train and test halves: per class (a class is one
capture), whole flows are dealt at random to the test file until it holds about a third of
the class's packets; a class of a single flow gives the later third of it instead. Each
file keeps the rows in capture order, so `iotids` reads the test file as its own capture
(the host-pair timing of a test packet sees only test traffic, as in the published halves).

Usage: python3 benches/dev_split.py IN.csv TRAIN_OUT.csv TEST_OUT.csv [--test-share 0.33] [--seed 7]
"""

import argparse
import csv
import random
import sys

ap = argparse.ArgumentParser()
ap.add_argument("input")
ap.add_argument("train_out")
ap.add_argument("test_out")
ap.add_argument("--test-share", type=float, default=1 / 3)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--by", choices=("rows", "flows"), default="rows",
                help="rows: deal flows until the test file holds the share of the class's packets; "
                "flows: deal the share of the class's flows, counted (as the published halves were cut)")
ap.add_argument("--label", default="label")
a = ap.parse_args()

csv.field_size_limit(sys.maxsize)
with open(a.input, newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    rows = list(reader)
col = {name: i for i, name in enumerate(header)}
lab = col[a.label]


def endpoint(r, host, tport, uport):
    port = r[col[tport]] or r[col[uport]] if uport in col else r[col[tport]]
    return f"{r[col[host]]}:{port}"


def flow(r):
    x = endpoint(r, "ip.src_host", "tcp.srcport", "udp.port")
    y = endpoint(r, "ip.dst_host", "tcp.dstport", "udp.port")
    return min(x, y) + "|" + max(x, y)


rng = random.Random(a.seed)
by_class = {}
for i, r in enumerate(rows):
    by_class.setdefault(r[lab], []).append(i)
test = set()
for cls, idx in by_class.items():
    flows = {}
    for i in idx:
        flows.setdefault(flow(rows[i]), []).append(i)
    target = a.test_share * len(idx)
    if len(flows) == 1:
        test.update(idx[len(idx) - round(target):])
        continue
    keys = sorted(flows)
    rng.shuffle(keys)
    if a.by == "flows":
        for k in keys[: max(1, round(a.test_share * len(keys)))]:
            test.update(flows[k])
        continue
    got = 0
    for k in keys:
        if got >= target:
            break
        if got + len(flows[k]) > 1.5 * target and got > 0:
            continue
        test.update(flows[k])
        got += len(flows[k])
for path, side in ((a.train_out, False), (a.test_out, True)):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i, r in enumerate(rows):
            if (i in test) == side:
                w.writerow(r)
counts = {c: (sum(1 for i in idx if i not in test), sum(1 for i in idx if i in test)) for c, idx in by_class.items()}
print("class train test", *(f"{c} {t} {s}" for c, (t, s) in counts.items()), sep="\n  ", file=sys.stderr)
