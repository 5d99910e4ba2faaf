"""Split the raw CSV into standardised train and test files."""

import argparse
import csv
import json
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--raw", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--test-fraction", type=float, default=0.25)
args = parser.parse_args()

with open(args.raw, newline="") as handle:
    rows = list(csv.DictReader(handle))
features = [k for k in rows[0] if k != "species"]
classes = sorted({r["species"] for r in rows})
random.Random(0).shuffle(rows)
cut = int(len(rows) * (1 - args.test_fraction))
means = {f: sum(float(r[f]) for r in rows[:cut]) / cut for f in features}
spread = {
    f: (sum((float(r[f]) - means[f]) ** 2 for r in rows[:cut]) / cut) ** 0.5 for f in features
}


def encode(row):
    return [(float(row[f]) - means[f]) / spread[f] for f in features], classes.index(row["species"])


os.makedirs(args.out, exist_ok=True)
for name, part in (("train", rows[:cut]), ("test", rows[cut:])):
    with open(os.path.join(args.out, f"{name}.json"), "w") as handle:
        json.dump([encode(r) for r in part], handle)
with open(os.path.join(args.out, "meta.json"), "w") as handle:
    json.dump({"features": features, "classes": classes}, handle)
print(f"prepared {cut} training rows and {len(rows) - cut} test rows")
