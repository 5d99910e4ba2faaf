"""Count the words of every text file under --corpus that have at least --min-length letters."""

import argparse
import collections
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--corpus", required=True)
parser.add_argument("--min-length", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

words = collections.Counter()
for path in sorted(Path(args.corpus).rglob("*.txt")):
    words.update(w for w in path.read_text().split() if len(w) >= args.min_length)
os.makedirs(args.out, exist_ok=True)
Path(args.out, "counts.json").write_text(json.dumps(dict(sorted(words.items())), indent=1))
Run.get_context().log("distinct_words", len(words))
print(f"{len(words)} distinct words of {args.min_length}+ letters")
