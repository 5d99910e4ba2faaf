"""The designer's learner modules: an untrained model is a file of settings, fitted by Train Model.

A learner step writes ``learner.json`` (its module name, typed parameters and task) rather than a
pickled estimator: the same settings give the same bytes, so a re-run with unchanged settings
lets Train Model reuse, and the file is readable. Train Model turns it into a scikit-learn
estimator with ``make_learner``; the mapping of each designer parameter to scikit-learn follows
the designer's own scikit-learn implementation (``C = 1 / L2 weight`` and so on).
"""

from __future__ import annotations

import json
import os
from typing import Any

from _catalogue import MODULES, parse_value

LEARNER_FILE = "learner.json"


def write_untrained_model(module: str) -> None:
    """The whole of a learner module's script: check its parameters, write its settings."""
    from _common import get_run, start

    args, params = start(module)
    make_learner(module, params)  # a setting scikit-learn refuses fails here, not in training
    os.makedirs(args.untrained_model, exist_ok=True)
    settings = {"module": module, "params": params, "task": MODULES[module]["learner_task"]}
    path = os.path.join(args.untrained_model, LEARNER_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, indent=2, sort_keys=True)
        handle.write("\n")
    get_run().log("Learner", module)


def read_untrained_model(path: str) -> dict[str, Any]:
    """The settings a learner step wrote; ``ValueError`` saying what is wrong otherwise."""
    source = os.path.join(path, LEARNER_FILE)
    if not os.path.isfile(source):
        raise ValueError(
            f"no {LEARNER_FILE} in {path}: connect the output of a learner module "
            "(Two-Class Logistic Regression, Linear Regression, ...)"
        )
    with open(source, encoding="utf-8") as handle:
        settings = json.load(handle)
    module = settings.get("module")
    if module not in MODULES or "learner_task" not in MODULES[module]:
        raise ValueError(f"{source} names no learner module of this release ({module!r})")
    specs = MODULES[module]["params"]
    unknown = sorted(set(settings.get("params", {})) - set(specs))
    if unknown:
        raise ValueError(f"{source}: {module!r} has no parameter {', '.join(unknown)}")
    values = {
        name: parse_value(spec, settings["params"].get(name, spec["default"]))
        for name, spec in specs.items()
    }
    return {"module": module, "params": values, "task": MODULES[module]["learner_task"]}


def make_learner(module: str, params: dict[str, Any]) -> Any:
    """The scikit-learn estimator for learner ``module`` with its designer parameters."""
    from sklearn import ensemble, linear_model, pipeline, preprocessing, svm

    seed = params.get("random_number_seed", 0)
    if module in ("Two-Class Logistic Regression", "Multiclass Logistic Regression"):
        weight = params["l2_regularization_weight"]
        return linear_model.LogisticRegression(
            tol=params["optimization_tolerance"],
            C=1.0 / weight if weight > 0 else float("inf"),  # no weight: no penalty
            random_state=seed,
            max_iter=1000,
        )
    if module in ("Two-Class Boosted Decision Tree", "Boosted Decision Tree Regression"):
        kind = (
            ensemble.HistGradientBoostingClassifier
            if module.startswith("Two-Class")
            else ensemble.HistGradientBoostingRegressor
        )
        trees = params.get("number_of_trees_constructed") or params.get(
            "total_number_of_trees_constructed"
        )
        return kind(
            max_leaf_nodes=params["maximum_number_of_leaves_per_tree"],
            min_samples_leaf=params["minimum_number_of_samples_per_leaf_node"],
            learning_rate=params["learning_rate"],
            max_iter=trees,
            early_stopping=False,  # every tree asked for is built, as the designer does
            random_state=seed,
        )
    if module in (
        "Two-Class Decision Forest",
        "Multiclass Decision Forest",
        "Decision Forest Regression",
    ):
        kind = (
            ensemble.RandomForestRegressor
            if module == "Decision Forest Regression"
            else ensemble.RandomForestClassifier
        )
        return kind(
            bootstrap=params["resampling_method"] == "Bagging Resampling",
            n_estimators=params["number_of_decision_trees"],
            max_depth=params["maximum_depth_of_the_decision_trees"],
            min_samples_leaf=params["minimum_number_of_samples_per_leaf_node"],
            random_state=0,  # the designer's forests take no seed; a fixed one keeps reuse exact
        )
    if module == "Two-Class Support Vector Machine":
        steps: list[Any] = []
        if params["normalize_features"]:
            steps.append(preprocessing.StandardScaler())
        if params["project_to_the_unit_sphere"]:
            steps.append(preprocessing.Normalizer())
        model = svm.LinearSVC(
            penalty="l1",  # the designer's lambda weighs an L1 penalty
            dual=False,
            C=1.0 / (2.0 * params["lambda"]),
            max_iter=params["number_of_iterations"],
            random_state=seed,
        )
        return pipeline.make_pipeline(*steps, model) if steps else model
    if module == "Linear Regression":
        if params["solution_method"] == "Ordinary Least Squares":
            return linear_model.Ridge(
                alpha=params["l2_regularization_weight"],
                fit_intercept=params["include_intercept_term"],
            )
        model = linear_model.SGDRegressor(
            eta0=params["learning_rate"],
            max_iter=params["number_of_training_epochs"],
            alpha=params["l2_regularization_weight"],
            learning_rate="invscaling" if params["decrease_learning_rate"] else "constant",
            average=params["average_final_hypothesis"],
            tol=None,  # exactly the epochs asked for
            random_state=seed,
        )
        if params["normalize_features"]:
            return pipeline.make_pipeline(preprocessing.StandardScaler(), model)
        return model
    raise ValueError(f"{module!r} is not a learner module")
