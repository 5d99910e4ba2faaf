"""Built-in module "Train Model": fit a model on every column but the label.

Two shapes, as the designer and mlpipe's first release had them: connect the untrained model of
a learner module (Two-Class Logistic Regression, ...) to ``untrained_model``, as in the designer;
or leave it unconnected and name a scikit-learn estimator in ``estimator``/``estimator_params``.
The model folder holds ``model.pkl`` (the fitted estimator) and ``model.json`` (label, feature
columns, task), which Score Model and Evaluate Model read.
"""

import json
import os
import pickle

from _catalogue import ESTIMATORS, MODULES, make_estimator, parse_value
from _common import check_columns, fail, get_run, read_table, start
from _learners import make_learner, read_untrained_model

MODULE = "Train Model"
args, params = start(MODULE)
frame = read_table(args.dataset)
label = params["label_column"]
check_columns(MODULE, "params['label_column']", frame, [label])
if args.untrained_model:
    specs = MODULES[MODULE]["params"]
    for name in ("estimator", "estimator_params"):
        if params[name] != parse_value(specs[name], specs[name]["default"]):
            fail(
                MODULE,
                f"params[{name!r}]",
                "an untrained model is connected, so the estimator comes from it: leave "
                f"{name!r} at its default",
            )
    try:
        learner = read_untrained_model(args.untrained_model)
        estimator = make_learner(learner["module"], learner["params"])
    except ValueError as exc:
        fail(MODULE, "inputs_map['untrained_model']", str(exc))
    name, task = learner["module"], learner["task"]
else:
    try:
        estimator = make_estimator(params["estimator"], params["estimator_params"])
    except (ValueError, TypeError) as exc:
        fail(MODULE, "params['estimator_params']", str(exc))
    name, task = params["estimator"], ESTIMATORS[params["estimator"]][1]
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
classes = frame[label].nunique()
if task == "binary" and classes != 2:
    fail(
        MODULE,
        "params['label_column']",
        f"{name} is a two-class model: label column {label!r} has {classes} distinct values",
    )
if task == "regression" and frame[label].dtype.kind not in "iuf":
    fail(MODULE, "params['label_column']", f"{name} predicts numbers: {label!r} is not numeric")
estimator.fit(frame[features], frame[label])
os.makedirs(args.trained_model, exist_ok=True)
with open(os.path.join(args.trained_model, "model.pkl"), "wb") as handle:
    pickle.dump(estimator, handle)
meta = {
    "estimator": name,
    "estimator_params": learner["params"] if args.untrained_model else params["estimator_params"],
    "features": features,
    "label_column": label,
    "task": "regression" if task == "regression" else "classification",
}
with open(os.path.join(args.trained_model, "model.json"), "w", encoding="utf-8") as handle:
    json.dump(meta, handle, indent=2, sort_keys=True)
run = get_run()
run.log("Training rows", len(frame))
run.log("Training score", float(estimator.score(frame[features], frame[label])))
if params["model_explanations"]:
    # the designer's explanations rank features by importance; permutation importance does that
    # for any estimator (how much the score drops when a feature's values are shuffled)
    from sklearn.inspection import permutation_importance

    found = permutation_importance(
        estimator, frame[features], frame[label], n_repeats=5, random_state=0
    )
    ranked = sorted(zip(features, found.importances_mean, strict=True), key=lambda f: -f[1])
    table = {"Feature": [f for f, _ in ranked], "Importance": [float(i) for _, i in ranked]}
    run.log_table("Feature importance", table)
    with open(os.path.join(args.trained_model, "explanation.json"), "w", encoding="utf-8") as out:
        json.dump(table, out, indent=2)
