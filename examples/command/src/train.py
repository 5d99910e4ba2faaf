"""A stand-in for data-parallel training: each rank takes every WORLD_SIZE-th word; rank 0 writes
the "model" (the TOP_WORDS most frequent words) and logs how many words the ranks shared out."""

import argparse
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--counts", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
counts = json.loads(Path(args.counts, "counts.json").read_text())
mine = sorted(counts)[rank::world]
print(f"rank {rank} of {world}: {len(mine)} words")
if rank == 0:
    top = sorted(counts, key=lambda w: (-counts[w], w))[: int(os.environ["TOP_WORDS"])]
    os.makedirs(args.model, exist_ok=True)
    Path(args.model, "model.json").write_text(json.dumps({"top": top, "ranks": world}))
    run = Run.get_context()
    run.log("ranks", world)
    run.log("top_word", top[0])
