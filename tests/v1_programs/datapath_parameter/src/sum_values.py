import argparse

from azureml.core import Run

parser = argparse.ArgumentParser("sum_values")
parser.add_argument("--input_data", type=str)
args = parser.parse_args()

with open(args.input_data) as f:
    values = [int(line) for line in f.read().splitlines()[1:] if line]

print("sum:", sum(values))
Run.get_context().log("sum", sum(values))
