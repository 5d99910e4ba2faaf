"""Score the model on the held-out rows; log accuracy and a per-class table."""

import argparse
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--report", required=True)
args = parser.parse_args()

model = json.loads(Path(os.path.join(args.model, "weights.json")).read_text())
test = json.loads(Path(os.path.join(args.data, "test.json")).read_text())


def predict(x):
    scores = [w[-1] + sum(wi * xi for wi, xi in zip(w, x, strict=False)) for w in model["weights"]]
    return scores.index(max(scores))


hits = [predict(x) == y for x, y in test]
accuracy = sum(hits) / len(hits)
run = Run.get_context()
run.log("accuracy", accuracy)
for c, name in enumerate(model["classes"]):
    rows = [h for h, (_, y) in zip(hits, test, strict=True) if y == c]
    run.log_row("per_class", species=name, accuracy=sum(rows) / max(len(rows), 1), rows=len(rows))
os.makedirs(args.report, exist_ok=True)
with open(os.path.join(args.report, "report.json"), "w") as handle:
    json.dump({"accuracy": accuracy, "test_rows": len(test)}, handle, indent=2)
print(f"accuracy {accuracy:.3f} on {len(test)} rows")
