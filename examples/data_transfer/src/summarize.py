"""Count the rows and total sales of every archived report; log them as metrics."""

import argparse
import csv
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--reports", required=True)
parser.add_argument("--summary", required=True)
args = parser.parse_args()

totals = {}
for path in sorted(Path(args.reports).glob("*.csv")):
    with path.open(newline="") as handle:
        totals[path.name] = sum(int(row["sales"]) for row in csv.DictReader(handle))

os.makedirs(args.summary, exist_ok=True)
with open(os.path.join(args.summary, "summary.json"), "w") as handle:
    json.dump(totals, handle, indent=2, sort_keys=True)

run = Run.get_context()
run.log("reports", len(totals))
run.log("total_sales", sum(totals.values()))
print(f"summarised {len(totals)} report(s) from {args.reports}")
