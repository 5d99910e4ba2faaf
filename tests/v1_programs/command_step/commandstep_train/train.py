# A stand-in for distributed training: every rank "trains" for --epochs epochs of STEPS steps;
# rank 0 writes the model (when given --model-dir) and logs the loss.

import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--model-dir")
args = parser.parse_args()

rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
steps = int(os.environ["STEPS"])
loss = 1.0
for _ in range(args.epochs * steps):
    loss = loss / 2
print("rank %d of %d: loss %.6f" % (rank, world, loss))
if rank == 0:
    if args.model_dir:
        os.makedirs(args.model_dir, exist_ok=True)
        with open(os.path.join(args.model_dir, "model.json"), "w") as f:
            json.dump({"epochs": args.epochs, "ranks": world, "loss": loss}, f)
    Run.get_context().log("loss", loss)
    Run.get_context().log("ranks", world)
