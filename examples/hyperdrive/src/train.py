"""A training script as a v1 HyperDrive sweep runs it: its hyperparameters arrive as arguments.

It "trains" for --epochs epochs and logs the accuracy after each one with run.log, which is what
the sweep's early termination policy watches; the model goes to ./outputs, v1's habit.
"""

import argparse
import json
import math
import os
import time

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--epoch-seconds", type=float, default=0.2)
parser.add_argument("--learning_rate", type=float, required=True)
parser.add_argument("--batch_size", type=int, default=32)
args = parser.parse_args()

run = Run.get_context()
run.log("learning_rate", args.learning_rate)
run.log("batch_size", args.batch_size)

# the best learning rate is about 0.01; a smaller batch learns a little faster
distance = abs(math.log10(args.learning_rate) + 2)
ceiling = max(0.05, 0.97 - 0.25 * distance)
speed = 0.6 if args.batch_size <= 32 else 0.45
accuracy = 0.0
for epoch in range(1, args.epochs + 1):
    accuracy = round(ceiling * (1 - math.exp(-speed * epoch)), 6)
    run.log("accuracy", accuracy)
    time.sleep(args.epoch_seconds)

os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "model.json"), "w") as f:
    json.dump(
        {"learning_rate": args.learning_rate, "batch_size": args.batch_size, "accuracy": accuracy},
        f,
    )
print(f"final accuracy {accuracy}")
