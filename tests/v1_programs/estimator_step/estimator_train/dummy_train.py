import argparse
import os

import packaging
import six

from azureml.core import Run

parser = argparse.ArgumentParser("dummy_train")
parser.add_argument("--input_data", type=str)
parser.add_argument("--output", type=str)
args = parser.parse_args()

print("six", six.__version__, "packaging", packaging.__version__)
points = []
for name in sorted(os.listdir(args.input_data)):
    with open(os.path.join(args.input_data, name)) as f:
        points += [tuple(int(v) for v in line.split()) for line in f if line.strip()]

slope = sum(x * y for x, y in points) / sum(x * x for x, _ in points)
os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "slope.txt"), "w") as f:
    f.write("%.3f\n" % slope)
Run.get_context().log("slope", slope)
