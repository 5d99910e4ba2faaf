import argparse
import os

from azureml.core.run import Run

parser = argparse.ArgumentParser("total")
parser.add_argument("--squares", type=str, help="the square step's output")
args = parser.parse_args()

with open(os.path.join(args.squares, "squares.txt")) as f:
    total = sum(int(line) for line in f if line.strip())

print("total of squares:", total)
run = Run.get_context()
run.log("total", total)
