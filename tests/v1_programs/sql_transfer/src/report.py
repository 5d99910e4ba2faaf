import argparse
import csv

from azureml.core import Run

parser = argparse.ArgumentParser("report")
parser.add_argument("--sales", type=str)
args = parser.parse_args()

with open(args.sales, newline="") as f:
    rows = list(csv.DictReader(f))

total = sum(float(row["amount"]) for row in rows)
print("regions:", ",".join(row["region"] for row in rows))
Run.get_context().log("total", total)
