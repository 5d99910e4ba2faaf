import argparse
import collections
import json
import os

parser = argparse.ArgumentParser("count")
parser.add_argument("--input", type=str)
parser.add_argument("--output", type=str)
args = parser.parse_args()

with open(args.input) as f:
    counter = collections.Counter(f.read().split())

os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "counts.json"), "w") as f:
    json.dump(dict(counter), f, sort_keys=True)
