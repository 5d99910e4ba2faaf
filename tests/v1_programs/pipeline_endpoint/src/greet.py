import argparse

from azureml.core import Run

parser = argparse.ArgumentParser("greet")
parser.add_argument("--greeting", type=str)
parser.add_argument("--times", type=int)
args = parser.parse_args()

message = " ".join([args.greeting] * args.times)
print("message:", message)
Run.get_context().log("message", message)
