import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser("top")
parser.add_argument("--counts", type=str)
parser.add_argument("--top", type=int)
args = parser.parse_args()

with open(os.path.join(args.counts, "counts.json")) as f:
    counts = json.load(f)

top = sorted(counts, key=lambda word: (-counts[word], word))[: args.top]
print("top words:", " ".join(top))
Run.get_context().log("top", " ".join(top))
