"""Read the tokens the container wrote and keep the five most frequent words (runs on the worker)."""

import argparse
import json
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--tokens", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

counts = json.loads((Path(args.tokens) / "tokens.json").read_text())
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "top.json").write_text(json.dumps(top) + "\n")
Run.get_context().log("top_word", top[0][0] if top else "")
print(top)
