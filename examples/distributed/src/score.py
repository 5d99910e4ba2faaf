"""Every MPI rank reads all partial results; rank 0 combines them and logs the estimate."""

import argparse
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--partials", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
parts = [json.loads(p.read_text()) for p in sorted(Path(args.partials).glob("rank-*.json"))]
estimate = 4 * sum(p["inside"] for p in parts) / sum(p["samples"] for p in parts)
os.makedirs(args.out, exist_ok=True)
Path(args.out, f"seen-by-rank-{rank}.txt").write_text(f"{len(parts)} partials\n")
if rank == 0:
    Path(args.out, "pi.json").write_text(json.dumps({"pi": estimate, "ranks": len(parts)}))
    Run.get_context().log("pi", estimate)
print(f"rank {rank} of {os.environ['OMPI_COMM_WORLD_SIZE']}: pi ~ {estimate:.4f}")
