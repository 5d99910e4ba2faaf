import argparse
import os

from azureml.core import Run

parser = argparse.ArgumentParser("count_rows")
parser.add_argument("--param1", type=str)
args = parser.parse_args()

# a dataset of one file arrives as that file's path
print("is file:", os.path.isfile(args.param1))
with open(args.param1) as f:
    rows = f.read().splitlines()[1:]

run = Run.get_context()
print("rows:", len(rows))
run.log("rows", len(rows))
# the named input is also reachable from the run
print("input_1 in run:", "input_1" in run.input_datasets)
