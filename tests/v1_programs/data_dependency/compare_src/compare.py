import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser("compare")
parser.add_argument("--model", type=str)
parser.add_argument("--x", type=float)
args = parser.parse_args()

with open(os.path.join(args.model, "model.json")) as f:
    model = json.load(f)

prediction = model["slope"] * args.x + model["intercept"]
print("prediction at %s: %s" % (args.x, prediction))
Run.get_context().log("prediction", prediction)
