"""Train a word-count topic classifier on the pickled documents and save the model."""

import argparse
import collections
import json
import math
import os
import pickle

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()

with open(args.input, "rb") as handle:
    documents = pickle.load(handle)["documents"]
split = int(len(documents) * 0.8)
train, test = documents[:split], documents[split:]

counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
for text, label in train:
    counts[label].update(text.split())
vocabulary = set().union(*counts.values())


def score(text: str, label: str) -> float:
    total = sum(counts[label].values()) + len(vocabulary)
    return sum(math.log((counts[label][w] + 1) / total) for w in text.split())


correct = sum(max(counts, key=lambda label: score(text, label)) == truth for text, truth in test)
accuracy = correct / len(test)

run = Run.get_context()
run.log("accuracy", accuracy)
run.log("train_documents", len(train))
print(f"accuracy on {len(test)} held-out documents: {accuracy:.3f}")

os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "model.json"), "w") as handle:
    json.dump(
        {label: dict(c.most_common(50)) for label, c in sorted(counts.items())},
        handle,
        sort_keys=True,
    )
