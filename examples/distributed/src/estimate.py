"""Each rank estimates pi from its own share of samples and writes a partial result."""

import argparse
import json
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
rng = random.Random(int(os.environ.get("ESTIMATE_SEED", "0")) * 1000 + rank)
share = args.samples // world
inside = sum(rng.random() ** 2 + rng.random() ** 2 <= 1.0 for _ in range(share))
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, f"rank-{rank}.json"), "w") as handle:
    json.dump(
        {
            "rank": rank,
            "world": world,
            "inside": inside,
            "samples": share,
            "master": f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
        },
        handle,
    )
print(f"rank {rank}/{world}: {inside} of {share} inside")
