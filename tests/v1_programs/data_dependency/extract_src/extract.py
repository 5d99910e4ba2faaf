import argparse

parser = argparse.ArgumentParser("extract")
parser.add_argument("--input_data", type=str)
parser.add_argument("--output_extract", type=str)
args = parser.parse_args()

print("input: %s" % args.input_data)
print("output: %s" % args.output_extract)

with open(args.input_data) as f:
    rows = f.read().splitlines()[1:]

# the output is one file: write it straight at the path we were given
with open(args.output_extract, "w") as out:
    for row in rows:
        out.write(row.replace(",", " ") + "\n")
