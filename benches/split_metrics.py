"""Validation and test metrics of a trained model, per side of its split.

`iotids train` writes test metrics only; tuning needs the validation numbers. This reads
the model directory's split.json (source lines per side) and the predictions.csv of
`iotids evaluate` on the training file, and prints the accuracy and macro-F1 on the
validation and the test lines (scikit-learn's macro-F1 over the classes present, as in
metrics.json). `evaluate` does not remove duplicates, so a window can hold a duplicate
that training removed: the test numbers match metrics.json on MQTTset, and could differ
slightly on files with duplicates inside flows.
Usage: python3 benches/split_metrics.py MODEL_DIR EVAL_DIR
"""

import csv
import json
import sys

from sklearn.metrics import accuracy_score, f1_score

model_dir, eval_dir = sys.argv[1], sys.argv[2]
split = json.load(open(f"{model_dir}/split.json"))
pred = {}
with open(f"{eval_dir}/predictions.csv") as f:
    for row in csv.DictReader(f):
        pred[int(row["line"])] = (row["true"], row["predicted"])
out = {}
for side in ("validation", "test"):
    pairs = [pred[line] for line in split[side] if line in pred]
    y_true = [t for t, _ in pairs]
    y_pred = [p for _, p in pairs]
    out[side] = {
        "rows": len(pairs),
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
print(json.dumps(out))
