import argparse
import os

from azureml.core import Run

parser = argparse.ArgumentParser("square")
parser.add_argument("--input", type=str, help="a file of numbers, one a line")
parser.add_argument("--output", type=str, help="where the squares go")
args = parser.parse_args()

print("Argument 1: %s" % args.input)
print("Argument 2: %s" % args.output)

with open(args.input) as f:
    values = [int(line) for line in f if line.strip()]

os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "squares.txt"), "w") as f:
    f.write("\n".join(str(v * v) for v in values) + "\n")

Run.get_context().log("count", len(values))
