import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser("train")
parser.add_argument("--input_data", type=str)
parser.add_argument("--output_model", type=str)
args = parser.parse_args()

xs, ys = [], []
with open(args.input_data) as f:
    for line in f:
        x, y = line.split()
        xs.append(float(x))
        ys.append(float(y))

n = len(xs)
mean_x, mean_y = sum(xs) / n, sum(ys) / n
slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum(
    (x - mean_x) ** 2 for x in xs
)
intercept = mean_y - slope * mean_x

# the output is a folder: create it, then write into it
os.makedirs(args.output_model, exist_ok=True)
with open(os.path.join(args.output_model, "model.json"), "w") as f:
    json.dump({"slope": round(slope, 6), "intercept": round(intercept, 6)}, f)

run = Run.get_context()
run.log("slope", round(slope, 6))
