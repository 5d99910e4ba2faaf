import argparse
import os

parser = argparse.ArgumentParser("calc")
parser.add_argument("--num1", type=int, default=None)
parser.add_argument("--num2", type=int, default=None)
parser.add_argument("--file_num1", type=str, default=None)
parser.add_argument("--file_num2", type=str, default=None)
parser.add_argument("--output_sum", type=str)
parser.add_argument("--output_product", type=str)
args = parser.parse_args()


def read_number(path):
    with open(path) as f:
        return int(f.read().strip())


a = args.num1 if args.file_num1 is None else read_number(args.file_num1)
b = args.num2 if args.file_num2 is None else read_number(args.file_num2)
print("a=%d b=%d" % (a, b))

for path, value in ((args.output_sum, a + b), (args.output_product, a * b)):
    # v1 mounts the output's parent; the output itself is a file the script creates
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(str(value))
