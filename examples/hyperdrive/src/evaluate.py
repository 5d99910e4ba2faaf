"""Reads what the sweep published: the best trial's model and every trial's metrics (v1's JSON)."""

import argparse
import json

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--metrics", required=True)
args = parser.parse_args()

with open(args.model) as f:
    model = json.load(f)
with open(args.metrics) as f:
    metrics = json.load(f)  # {trial run id: {metric name: [values]}}

best_run = max(metrics, key=lambda run_id: max(metrics[run_id].get("accuracy", [0.0])))
print(f"{len(metrics)} trials; best {best_run}; model {model}")
run = Run.get_context()
run.log("trials", len(metrics))
run.log("model_accuracy", model["accuracy"])
run.log("best_learning_rate", model["learning_rate"])
