import argparse
import os

from azureml.core import Run

parser = argparse.ArgumentParser("summarize")
parser.add_argument("--sales", type=str)
parser.add_argument("--summary", type=str)
args = parser.parse_args()

total = 0
names = sorted(os.listdir(args.sales))
for name in names:
    with open(os.path.join(args.sales, name)) as f:
        total += sum(int(line.split(",")[1]) for line in f.read().splitlines()[1:])

with open(args.summary, "w") as f:
    f.write("files=%d total=%d\n" % (len(names), total))
Run.get_context().log("total", total)
