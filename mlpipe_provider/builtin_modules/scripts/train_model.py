"""Built-in module "Train Model": fit a scikit-learn estimator on every column but the label.

The model folder holds ``model.pkl`` (the fitted estimator) and ``model.json`` (label, feature
columns, task), which Score Model and Evaluate Model read.
"""

import json
import os
import pickle

from _catalogue import ESTIMATORS, make_estimator
from _common import check_columns, fail, get_run, read_table, start

MODULE = "Train Model"
args, params = start(MODULE)
frame = read_table(args.dataset)
label = params["label_column"]
check_columns(MODULE, "params['label_column']", frame, [label])
try:
    estimator = make_estimator(params["estimator"], params["estimator_params"])
except (ValueError, TypeError) as exc:
    fail(MODULE, "params['estimator_params']", str(exc))
features = [c for c in frame.columns if c != label]
non_numeric = [c for c in features if frame[c].dtype.kind not in "iufb"]
if non_numeric:
    fail(
        MODULE,
        "inputs_map['dataset']",
        f"feature columns must be numeric, not {non_numeric} (select or convert them first)",
    )
if frame[[*features, label]].isna().any().any():
    fail(MODULE, "inputs_map['dataset']", "the dataset has missing values (clean them first)")
estimator.fit(frame[features], frame[label])
os.makedirs(args.trained_model, exist_ok=True)
with open(os.path.join(args.trained_model, "model.pkl"), "wb") as handle:
    pickle.dump(estimator, handle)
meta = {
    "estimator": params["estimator"],
    "estimator_params": params["estimator_params"],
    "features": features,
    "label_column": label,
    "task": ESTIMATORS[params["estimator"]][1],
}
with open(os.path.join(args.trained_model, "model.json"), "w", encoding="utf-8") as handle:
    json.dump(meta, handle, indent=2, sort_keys=True)
run = get_run()
run.log("Training rows", len(frame))
run.log("Training score", float(estimator.score(frame[features], frame[label])))
