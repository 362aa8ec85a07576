#!/usr/bin/env python3
"""Check iotids' data numbers against pandas / numpy / scikit-learn.

Independent reference for:
  * `iotids describe --json`: count, mean, std, min, quartiles, max of numeric
    columns (pandas.DataFrame.describe) and class counts;
  * the fitted pipeline's MinMax scaling (sklearn MinMaxScaler on the training rows);
  * chi-square scores (sklearn.feature_selection.chi2) and Pearson relevance
    (numpy corrcoef against one-vs-rest class indicators).

Usage: check_data.py IOTIDS_BINARY [SHARED_DATA_DIR]
Prints one line per check and `N passed, M failed`; exits 1 on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
from sklearn.feature_selection import chi2
from sklearn.preprocessing import MinMaxScaler

BIN = sys.argv[1]
SHARED = sys.argv[2] if len(sys.argv) > 2 else None
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def close(a, b, rel=1e-5, abs_=1e-6):
    if (a is None or (isinstance(a, float) and np.isnan(a))) and np.isnan(b):
        return True
    return a is not None and abs(a - b) <= abs_ + rel * abs(b)


def iotids(*args):
    out = subprocess.run([BIN, "--quiet", *args], check=True, capture_output=True, text=True)
    return out.stdout


def compare_describe(path, label, sep, extra=()):
    d = json.loads(iotids("describe", path, "--label", label, "--json", *extra))
    df = pd.read_csv(path, sep=sep)
    ref = df.drop(columns=[label]).select_dtypes("number").describe()
    by_name = {s["name"]: s for s in d["numeric"]}
    for col in ref.columns:
        if col not in by_name:
            continue
        s = by_name[col]
        r = ref[col]
        # iotids keeps f32 values: compare with a relative tolerance.
        for ours, theirs in [("count", "count"), ("mean", "mean"), ("std", "std"), ("min", "min"),
                             ("q25", "25%"), ("q50", "50%"), ("q75", "75%"), ("max", "max")]:
            ok = close(s[ours], float(r[theirs]), rel=1e-5, abs_=1e-5 * max(1.0, abs(float(r["max"]))))
            check(f"describe {os.path.basename(path)} {col} {ours}", ok, f"iotids {s[ours]} pandas {r[theirs]}")
    counts = df[label].astype(str).str.strip().value_counts().to_dict()
    ours = {c["name"]: c["count"] for c in d["classes"]}
    check(f"describe {os.path.basename(path)} class counts", ours == counts, f"{ours} vs {counts}")
    n, k = sum(counts.values()), len(counts)
    ok = all(close(c["weight"], n / (k * c["count"]), rel=1e-12) for c in d["classes"])
    check(f"describe {os.path.basename(path)} balanced class weights n/(k n_c)", ok)


def fixture(dirname):
    rng = np.random.default_rng(7)
    n = 2000
    y = rng.choice(["normal", "scan", "flood"], size=n, p=[0.6, 0.3, 0.1])
    df = pd.DataFrame({
        "a": rng.normal(10, 3, n).round(4),
        "b": rng.exponential(2.0, n).round(4) * (y == "flood"),
        "c": rng.integers(0, 1000, n).astype(float),
        "d": np.where(y == "scan", rng.uniform(0, 1, n), rng.uniform(0.5, 2, n)).round(5),
        "label": y,
    })
    df.loc[rng.choice(n, 50, replace=False), "a"] = np.nan
    path = os.path.join(dirname, "fixture.csv")
    # Written as `NaN`: an empty field means "absent" (0) to iotids, as in the IoT datasets.
    df.to_csv(path, index=False, na_rep="NaN")
    return path


def compare_pipeline(path, dirname):
    out = os.path.join(dirname, "prep")
    iotids("prepare", path, "--label", "label", "--out", out, "--select", "none", "--dedup", "none",
           "--write-features")
    p = json.load(open(os.path.join(out, "pipeline.json")))
    split = json.load(open(os.path.join(out, "split.json")))
    df = pd.read_csv(path)
    # split.json holds source line numbers; line 2 is the first data row.
    train = df.iloc[[ln - 2 for ln in split["train"]]]
    X = train[["a", "b", "c", "d"]].copy()
    X["a"] = X["a"].fillna(X["a"].median())
    ref = MinMaxScaler().fit(X)
    feats = {f["name"]: f for f in p["features"]}
    for i, col in enumerate(X.columns):
        f = feats[col]
        check(f"minmax {col} offset = training min", close(f["offset"], ref.data_min_[i]))
        check(f"minmax {col} factor = 1/range", close(f["factor"], ref.scale_[i], rel=1e-5))
    ours = pd.read_csv(os.path.join(out, "features-train.csv"))
    theirs = ref.transform(X)
    diff = np.abs(ours[list(X.columns)].to_numpy() - theirs).max()
    check("minmax transform of training rows", diff < 1e-5, f"max diff {diff}")
    # chi2 and Pearson on the scaled training features.
    iotids("prepare", path, "--label", "label", "--out", out, "--select", "chi2", "--k", "10", "--dedup", "none")
    p = json.load(open(os.path.join(out, "pipeline.json")))
    scores = {d["feature"]: d["score"] for d in p["decisions"]}
    ref_chi2, _ = chi2(theirs, train["label"])
    for i, col in enumerate(X.columns):
        check(f"chi2 {col}", close(scores[col], ref_chi2[i], rel=1e-4), f"iotids {scores[col]} sklearn {ref_chi2[i]}")
    iotids("prepare", path, "--label", "label", "--out", out, "--select", "pearson", "--dedup", "none")
    p = json.load(open(os.path.join(out, "pipeline.json")))
    scores = {d["feature"]: d["score"] for d in p["decisions"]}
    for i, col in enumerate(X.columns):
        rel = max(abs(np.corrcoef(theirs[:, i], (train["label"] == c).astype(float))[0, 1])
                  for c in sorted(train["label"].unique()))
        check(f"pearson relevance {col}", close(scores[col], rel, rel=1e-4), f"iotids {scores[col]} numpy {rel}")


with tempfile.TemporaryDirectory() as tmp:
    fx = fixture(tmp)
    compare_describe(fx, "label", ",")
    compare_pipeline(fx, tmp)
    if SHARED:
        bot = os.path.join(SHARED, "bot-iot", "bot_iot_sample.csv")
        compare_describe(bot, "category", "\t",
                         extra=("--keep", "pkSeqID,seq", "--drop", "attack,subcategory"))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
