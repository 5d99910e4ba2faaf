"""Train a softmax (multinomial logistic) classifier with plain gradient descent."""

import argparse
import json
import math
import os
import random
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--learning-rate", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=200)
args = parser.parse_args()

train = json.loads(Path(os.path.join(args.data, "train.json")).read_text())
meta = json.loads(Path(os.path.join(args.data, "meta.json")).read_text())
n_features, n_classes = len(meta["features"]), len(meta["classes"])
rng = random.Random(int(os.environ.get("TRAIN_SEED", "0")))
weights = [[rng.gauss(0, 0.01) for _ in range(n_features + 1)] for _ in range(n_classes)]


def probabilities(x):
    scores = [w[-1] + sum(wi * xi for wi, xi in zip(w, x, strict=False)) for w in weights]
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


run = Run.get_context()
for epoch in range(args.epochs):
    grads = [[0.0] * (n_features + 1) for _ in range(n_classes)]
    loss = 0.0
    for x, y in train:
        p = probabilities(x)
        loss -= math.log(max(p[y], 1e-12))
        for c in range(n_classes):
            g = p[c] - (1.0 if c == y else 0.0)
            for i, xi in enumerate(x):
                grads[c][i] += g * xi
            grads[c][-1] += g
    for c in range(n_classes):
        for i in range(n_features + 1):
            weights[c][i] -= args.learning_rate * grads[c][i] / len(train)
    if epoch % 50 == 0 or epoch == args.epochs - 1:
        run.log("loss", loss / len(train))

os.makedirs(args.model, exist_ok=True)
with open(os.path.join(args.model, "weights.json"), "w") as handle:
    json.dump({"weights": weights, **meta}, handle)
print(f"trained {args.epochs} epochs, final loss {loss / len(train):.4f}")
