#!/usr/bin/env python3
"""Write (or --check) crates/model/tests/fixtures/sklearn_metrics.json: fixed labels,
predictions and scores, with scikit-learn's metrics on them. The Rust test
`sklearn_reference` in crates/model compares iotids' metrics with these numbers.

usage: metrics_fixture.py [--check]
  --check  recompute scikit-learn's numbers for the checked-in inputs and fail if
           they differ from the checked-in expectations (CI runs this).
"""
import json
import os
import sys

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix,
                             precision_recall_fscore_support, roc_auc_score)
from sklearn.preprocessing import label_binarize

PATH = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "model", "tests", "fixtures",
                    "sklearn_metrics.json")


def make_inputs():
    rng = np.random.default_rng(2026)
    cases = []
    for n, k, ties in [(400, 5, False), (300, 3, True), (120, 15, False)]:
        y = rng.integers(0, k, n)
        y[:k] = np.arange(k)  # every class has rows
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), y] += rng.uniform(0, 2.5, n)  # informative but imperfect
        if ties:
            logits = np.round(logits, 1)  # many tied scores
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        p = p.astype(np.float32)
        pred = p.argmax(1)
        cases.append({"k": k, "y_true": y.tolist(), "y_pred": pred.tolist(),
                      "scores": [float(v) for v in p.ravel()]})
    return cases


def expected(case):
    k = case["k"]
    y = np.array(case["y_true"])
    pred = np.array(case["y_pred"])
    s = np.array(case["scores"], dtype=np.float32).reshape(-1, k).astype(np.float64)
    labels = sorted(set(y.tolist()) | set(pred.tolist()))
    pr, rc, f1, sup = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    mp, mr, mf, _ = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
    wp, wr, wf, _ = precision_recall_fscore_support(y, pred, labels=labels, average="weighted", zero_division=0)
    yb = label_binarize(y, classes=list(range(k)))
    per_auc = [roc_auc_score(yb[:, c], s[:, c]) for c in range(k)]
    normal = 0
    attack_true, attack_pred = y != normal, pred != normal
    return {
        "accuracy": accuracy_score(y, pred),
        "precision": pr.tolist(), "recall": rc.tolist(), "f1": f1.tolist(), "support": sup.tolist(),
        "macro": [mp, mr, mf], "weighted": [wp, wr, wf],
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "roc_auc": per_auc,
        "roc_auc_macro": roc_auc_score(y, s, multi_class="ovr", average="macro", labels=list(range(k))),
        "roc_auc_micro": roc_auc_score(yb, s, average="micro"),
        "average_precision": [average_precision_score(yb[:, c], s[:, c]) for c in range(k)],
        "detection_rate": float((attack_pred & attack_true).sum() / attack_true.sum()),
        "false_alarm_rate": float((attack_pred & ~attack_true).sum() / (~attack_true).sum()),
    }


def main():
    import sklearn
    if "--check" in sys.argv:
        data = json.load(open(PATH))
        bad = 0
        for case in data["cases"]:
            got = expected(case)
            for key, want in case["expected"].items():
                if not np.allclose(np.array(got[key], dtype=float), np.array(want, dtype=float), rtol=1e-9, atol=1e-12):
                    print(f"FAIL {key}: scikit-learn {sklearn.__version__} gives {got[key]}, fixture has {want}")
                    bad += 1
        n = sum(len(c["expected"]) for c in data["cases"])
        print(f"{n - bad} passed, {bad} failed")
        sys.exit(1 if bad else 0)
    cases = make_inputs()
    for c in cases:
        c["expected"] = expected(c)
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    json.dump({"made_by": f"tests/reference/metrics_fixture.py, scikit-learn {sklearn.__version__}",
               "cases": cases}, open(PATH, "w"))
    print(f"wrote {PATH}")


main()
