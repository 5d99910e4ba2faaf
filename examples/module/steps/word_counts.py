"""Count words in the cleaned text the ``clean`` module step wrote, and log the top ones."""

import argparse
import collections
import os

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--cleaned", required=True)
parser.add_argument("--counts", required=True)
args = parser.parse_args()

with open(os.path.join(args.cleaned, "text.txt"), encoding="utf-8") as handle:
    counts = collections.Counter(handle.read().split())
os.makedirs(args.counts, exist_ok=True)
with open(os.path.join(args.counts, "counts.tsv"), "w", encoding="utf-8") as handle:
    for word, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        handle.write(f"{word}\t{n}\n")
run = Run.get_context()
run.log("distinct_words", len(counts))
run.log("total_words", sum(counts.values()))
