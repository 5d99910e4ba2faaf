"""Built-in module "Score Model": add 'Scored Labels' (and 'Scored Probabilities' for two classes).

Writes ``score.json`` (label column, task) next to the table for Evaluate Model.
"""

import json
import os
import pickle

import numpy as np
from _common import check_columns, get_run, read_table, start, write_table

MODULE = "Score Model"
args, params = start(MODULE)
with open(os.path.join(args.trained_model, "model.json"), encoding="utf-8") as handle:
    meta = json.load(handle)
with open(os.path.join(args.trained_model, "model.pkl"), "rb") as handle:
    estimator = pickle.load(handle)  # noqa: S301 - the model a Train Model step of this run wrote
frame = read_table(args.dataset)
check_columns(MODULE, "inputs_map['dataset']", frame, meta["features"])
scores = {"Scored Labels": estimator.predict(frame[meta["features"]])}
classes = list(getattr(estimator, "classes_", []))
if meta["task"] == "classification" and len(classes) == 2:
    if hasattr(estimator, "predict_proba"):
        scores["Scored Probabilities"] = estimator.predict_proba(frame[meta["features"]])[:, 1]
    else:  # a support vector machine: its margin through the logistic function, as a score
        margin = estimator.decision_function(frame[meta["features"]])
        scores["Scored Probabilities"] = 1.0 / (1.0 + np.exp(-margin))
scored = frame if params["append_score_columns"] else frame[[]]
if not params["append_score_columns"] and meta["label_column"] in frame.columns:
    scored = frame[[meta["label_column"]]]
scored = scored.assign(**scores)
write_table(scored, args.scored_dataset)
score_meta = {
    "label_column": meta["label_column"],
    "task": meta["task"],
    "classes": [c.item() if hasattr(c, "item") else c for c in classes],
}
with open(os.path.join(args.scored_dataset, "score.json"), "w", encoding="utf-8") as handle:
    json.dump(score_meta, handle, indent=2, sort_keys=True)
get_run().log("Scored rows", len(scored))
