"""The interface of every built-in module: ports, typed parameters, defaults, allowed values.

Kept next to the scripts (and so inside every published snapshot) because both sides need it: the
package registers modules and checks parameters at compile time from it, and each script parses
and checks its ``AML_PARAMETER_*`` values at run time from the same definition, so the two can
never disagree. Plain data and the standard library only: scripts import it as a sibling file.
"""

from __future__ import annotations

import json
from typing import Any

CATEGORY = "Built-in"
DATAFRAME = "DataFrameDirectory"
MODEL = "ModelDirectory"
# the designer's port type for a learner module's output: a model with its settings, not fitted
UNTRAINED = "UntrainedModelDirectory"

ESTIMATORS = {
    # name -> (sklearn module, task)
    "LogisticRegression": ("sklearn.linear_model", "classification"),
    "DecisionTreeClassifier": ("sklearn.tree", "classification"),
    "RandomForestClassifier": ("sklearn.ensemble", "classification"),
    "GradientBoostingClassifier": ("sklearn.ensemble", "classification"),
    "LinearRegression": ("sklearn.linear_model", "regression"),
    "Ridge": ("sklearn.linear_model", "regression"),
    "DecisionTreeRegressor": ("sklearn.tree", "regression"),
    "RandomForestRegressor": ("sklearn.ensemble", "regression"),
}


def _param(kind: str, default: Any, label: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "default": default, "label": label, **extra}


def _in(name: str, label: str, types: list[str] | None = None, optional: bool = False):
    return {
        "name": name,
        "label": label,
        "data_types": types or [DATAFRAME, "AnyFile"],
        "is_optional": optional,
    }


def _out(name: str, label: str, kind: str = DATAFRAME):
    return {"name": name, "label": label, "data_type": kind}


DEFAULT_PYTHON_SCRIPT = """\
# The script must define azureml_main, which the module calls with the datasets connected to
# dataframe1 and dataframe2 (None for one not connected).
import pandas as pd


def azureml_main(dataframe1=None, dataframe2=None):
    # Return up to two pandas DataFrames as a sequence: return dataframe1, or
    # return dataframe1, dataframe2
    print(f"Input pandas.DataFrame #1: {dataframe1}")
    return (dataframe1,)
"""


def _seed() -> dict[str, Any]:
    # the designer's blank seed drew one from the clock; 0 here seeds with 0, so a re-run trains
    # the same model and the steps after it can reuse
    return _param("int", 0, "Random number seed", min=0)


def _learner(task: str, script: str, description: str, params: dict[str, Any]) -> dict[str, Any]:
    """A designer learner module: no inputs, one untrained-model output that Train Model fits."""
    return {
        "script": script,
        "helpers": ["_learners.py"],
        "learner_task": task,
        "description": description,
        "inputs": [],
        "outputs": [_out("untrained_model", "Untrained model", UNTRAINED)],
        "params": params,
    }


def _logistic(task: str, script: str, description: str) -> dict[str, Any]:
    return _learner(
        task,
        script,
        description,
        {
            "optimization_tolerance": _param(
                "float", 1e-07, "Optimization tolerance", greater_than=0.0
            ),
            "l2_regularization_weight": _param("float", 1.0, "L2 regularization weight", min=0.0),
            "random_number_seed": _seed(),
        },
    )


def _forest(task: str, script: str, description: str) -> dict[str, Any]:
    return _learner(
        task,
        script,
        description,
        {
            "resampling_method": _param(
                "str",
                "Bagging Resampling",
                "Resampling method",
                allowed=["Bagging Resampling", "Replicate Resampling"],
            ),
            "number_of_decision_trees": _param("int", 8, "Number of decision trees", min=1),
            "maximum_depth_of_the_decision_trees": _param(
                "int", 32, "Maximum depth of the decision trees", min=1
            ),
            "minimum_number_of_samples_per_leaf_node": _param(
                "int", 1, "Minimum number of samples per leaf node", min=1
            ),
        },
    )


def _boosted(task: str, script: str, description: str, trees_label: str) -> dict[str, Any]:
    trees_key = trees_label.lower().replace(" ", "_")
    return _learner(
        task,
        script,
        description,
        {
            "maximum_number_of_leaves_per_tree": _param(
                "int", 20, "Maximum number of leaves per tree", min=2
            ),
            "minimum_number_of_samples_per_leaf_node": _param(
                "int", 10, "Minimum number of samples per leaf node", min=1
            ),
            "learning_rate": _param("float", 0.2, "Learning rate", greater_than=0.0, max=1.0),
            trees_key: _param("int", 100, trees_label, min=1),
            "random_number_seed": _seed(),
        },
    )


# The designer's learner modules ("Initialize model" in its palette), in its order. A parameter's
# key is the designer's label in snake case; the designer's "Create trainer mode" (its Parameter
# Range feeds Tune Model Hyperparameters, which is not built in) and parameters its own
# scikit-learn implementation ignored are left out (docs/designer.md lists them).
LEARNERS: dict[str, dict[str, Any]] = {
    "Two-Class Logistic Regression": _logistic(
        "binary",
        "two_class_logistic_regression.py",
        "An untrained two-class logistic regression model (scikit-learn LogisticRegression)",
    ),
    "Two-Class Boosted Decision Tree": _boosted(
        "binary",
        "two_class_boosted_decision_tree.py",
        "An untrained two-class boosted decision tree (HistGradientBoostingClassifier)",
        "Number of trees constructed",
    ),
    "Two-Class Decision Forest": _forest(
        "binary",
        "two_class_decision_forest.py",
        "An untrained two-class decision forest (scikit-learn RandomForestClassifier)",
    ),
    "Two-Class Support Vector Machine": _learner(
        "binary",
        "two_class_support_vector_machine.py",
        "An untrained two-class linear support vector machine (scikit-learn LinearSVC)",
        {
            "number_of_iterations": _param("int", 10, "Number of iterations", min=1),
            "lambda": _param("float", 0.001, "Lambda", greater_than=0.0),
            "normalize_features": _param("bool", True, "Normalize features"),
            "project_to_the_unit_sphere": _param("bool", False, "Project to the unit-sphere"),
            "random_number_seed": _seed(),
        },
    ),
    "Multiclass Logistic Regression": _logistic(
        "multiclass",
        "multiclass_logistic_regression.py",
        "An untrained multiclass (multinomial) logistic regression model",
    ),
    "Multiclass Decision Forest": _forest(
        "multiclass",
        "multiclass_decision_forest.py",
        "An untrained multiclass decision forest (scikit-learn RandomForestClassifier)",
    ),
    "Linear Regression": _learner(
        "regression",
        "linear_regression.py",
        "An untrained linear regression model: ordinary least squares (Ridge) or online "
        "gradient descent (SGDRegressor)",
        {
            "solution_method": _param(
                "str",
                "Ordinary Least Squares",
                "Solution method",
                allowed=["Ordinary Least Squares", "Online Gradient Descent"],
            ),
            "l2_regularization_weight": _param("float", 0.001, "L2 regularization weight", min=0.0),
            "include_intercept_term": _param("bool", True, "Include intercept term"),
            "learning_rate": _param(
                "float", 0.1, "Learning rate (online gradient descent)", greater_than=0.0
            ),
            "number_of_training_epochs": _param(
                "int", 10, "Number of training epochs (online gradient descent)", min=1
            ),
            "decrease_learning_rate": _param(
                "bool", True, "Decrease learning rate (online gradient descent)"
            ),
            "normalize_features": _param(
                "bool", True, "Normalize features (online gradient descent)"
            ),
            "average_final_hypothesis": _param(
                "bool", True, "Average final hypothesis (online gradient descent)"
            ),
            "random_number_seed": _seed(),
        },
    ),
    "Decision Forest Regression": _forest(
        "regression",
        "decision_forest_regression.py",
        "An untrained decision forest regression model (scikit-learn RandomForestRegressor)",
    ),
    "Boosted Decision Tree Regression": _boosted(
        "regression",
        "boosted_decision_tree_regression.py",
        "An untrained boosted decision tree regression model (HistGradientBoostingRegressor)",
        "Total number of trees constructed",
    ),
}


# name -> definition; a port name is also the script's --<port> argument
MODULES: dict[str, dict[str, Any]] = {
    "Select Columns in Dataset": {
        "script": "select_columns.py",
        "description": "Keep the named columns of a dataset (a CSV file or a folder of CSV files)",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("results_dataset", "Results dataset")],
        "params": {
            "columns": _param("str", "", "Comma-separated column names (empty: all)"),
        },
    },
    "Clean Missing Data": {
        "script": "clean_missing_data.py",
        "description": "Remove or replace missing values in the chosen columns",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("cleaned_dataset", "Cleaned dataset")],
        "params": {
            "columns": _param("str", "", "Comma-separated columns to clean (empty: all)"),
            "cleaning_mode": _param(
                "str",
                "Remove entire row",
                "Cleaning mode",
                allowed=[
                    "Remove entire row",
                    "Remove entire column",
                    "Replace with mean",
                    "Replace with median",
                    "Replace with mode",
                    "Custom substitution value",
                ],
            ),
            "replacement_value": _param("str", "0", "Replacement value (custom substitution)"),
        },
    },
    "Split Data": {
        "script": "split_data.py",
        "description": "Split rows into two datasets by a fraction, optionally shuffled/stratified",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [
            _out("results_dataset1", "Results dataset 1"),
            _out("results_dataset2", "Results dataset 2"),
        ],
        "params": {
            "fraction": _param(
                "float", 0.5, "Fraction of rows in the first output", min=0.0, max=1.0
            ),
            "randomized_split": _param("bool", True, "Randomized split"),
            "random_seed": _param("int", 0, "Random seed", min=0),
            "stratify_column": _param("str", "", "Stratification key column (empty: none)"),
        },
    },
    "Normalize Data": {
        "script": "normalize_data.py",
        "description": "Rescale numeric columns: ZScore, MinMax, Logistic, LogNormal or Tanh",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("transformed_dataset", "Transformed dataset")],
        "params": {
            "transformation_method": _param(
                "str",
                "ZScore",
                "Transformation method",
                allowed=["ZScore", "MinMax", "Logistic", "LogNormal", "Tanh"],
            ),
            "columns": _param(
                "str", "", "Columns to transform, comma-separated (empty: every numeric one)"
            ),
            "exclude_columns": _param("str", "", "Comma-separated columns to leave alone"),
            "use_0_for_constant_columns_when_checked": _param(
                "bool", True, "Use 0 for constant columns when checked (else NaN)"
            ),
        },
    },
    "Join Data": {
        "script": "join_data.py",
        "description": "Join two datasets on key columns",
        "inputs": [_in("left_dataset", "Left dataset"), _in("right_dataset", "Right dataset")],
        "outputs": [_out("results_dataset", "Results dataset")],
        "params": {
            "left_keys": _param(
                "str", "", "Comma-separated key columns of the left dataset", required=True
            ),
            "right_keys": _param("str", "", "Key columns of the right dataset (empty: as left)"),
            "join_type": _param(
                "str",
                "Inner Join",
                "Join type",
                allowed=["Inner Join", "Left Outer Join", "Full Outer Join", "Left Semi-Join"],
            ),
        },
    },
    **LEARNERS,
    "Train Model": {
        "script": "train_model.py",
        "helpers": ["_learners.py"],
        "description": "Train a model on a labelled dataset: the untrained model a learner module "
        "made, or the scikit-learn estimator named here",
        "inputs": [
            _in("untrained_model", "Untrained model", [UNTRAINED], optional=True),
            _in("dataset", "Dataset"),
        ],
        "outputs": [_out("trained_model", "Trained model", MODEL)],
        "params": {
            "label_column": _param("str", "", "Label column", required=True),
            "estimator": _param(
                "str",
                "LogisticRegression",
                "scikit-learn estimator (when no untrained model is connected)",
                allowed=list(ESTIMATORS),
            ),
            "estimator_params": _param(
                "json",
                "{}",
                'Estimator parameters as a JSON object (e.g. {"max_depth": 3}; when no untrained '
                "model is connected)",
            ),
            "model_explanations": _param(
                "bool", False, "Model explanations (permutation feature importance)"
            ),
        },
    },
    "Score Model": {
        "script": "score_model.py",
        "description": "Predict with a trained model: adds 'Scored Labels' (and probabilities)",
        "inputs": [
            _in("trained_model", "Trained model", [MODEL]),
            _in("dataset", "Dataset"),
        ],
        "outputs": [_out("scored_dataset", "Scored dataset")],
        "params": {
            "append_score_columns": _param("bool", True, "Append score columns to the input"),
        },
    },
    "Evaluate Model": {
        "script": "evaluate_model.py",
        "description": "Metrics of a scored dataset, logged to the run with charts as tables",
        "inputs": [_in("scored_dataset", "Scored dataset")],
        "outputs": [_out("evaluation_results", "Evaluation results")],
        "params": {},
    },
    "Export Data": {
        "script": "export_data.py",
        "description": "Write a dataset as one CSV or JSON-lines file in its output folder",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("exported_data", "Exported data", "AnyDirectory")],
        "params": {
            "file_name": _param("str", "data.csv", "File name", required=True),
            "file_format": _param("str", "csv", "File format", allowed=["csv", "jsonl"]),
        },
    },
    "Execute Python Script": {
        "script": "execute_python_script.py",
        "description": "Run your own azureml_main(dataframe1, dataframe2) on up to two "
        "datasets; it returns up to two DataFrames",
        "inputs": [
            _in("dataframe1", "Dataframe1", optional=True),
            _in("dataframe2", "Dataframe2", optional=True),
            _in("script_bundle", "Script bundle", ["AnyFile", "AnyDirectory"], optional=True),
        ],
        "outputs": [
            _out("result_dataset1", "Result dataset 1"),
            _out("result_dataset2", "Result dataset 2"),
        ],
        "params": {
            "python_script": _param(
                "str",
                DEFAULT_PYTHON_SCRIPT,
                "Python script",
                check="python_script",
                multiline=True,
            ),
        },
    },
    "Edit Metadata": {
        "script": "edit_metadata.py",
        "description": "Change the data type of columns and rename them",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("results_dataset", "Results dataset")],
        "params": {
            "column": _param("str", "", "Column (comma-separated names)", required=True),
            "data_type": _param(
                "str",
                "Unchanged",
                "Data type",
                allowed=["Unchanged", "String", "Integer", "Double", "Boolean", "DateTime"],
            ),
            "datetime_format": _param("str", "", "DateTime format (strftime codes; empty: infer)"),
            "new_column_names": _param(
                "str", "", "New column names (comma-separated, one per column; empty: keep)"
            ),
        },
    },
    "Remove Duplicate Rows": {
        "script": "remove_duplicate_rows.py",
        "description": "Keep one row per distinct value of the key columns",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("results_dataset", "Results dataset")],
        "params": {
            "key_columns": _param(
                "str", "", "Key column selection filter expression (comma-separated; empty: all)"
            ),
            "retain_first_duplicate_row": _param("bool", True, "Retain first duplicate row"),
        },
    },
    "Add Rows": {
        "script": "add_rows.py",
        "description": "Append the rows of the second dataset to the first (same columns)",
        "inputs": [_in("dataset1", "Dataset1"), _in("dataset2", "Dataset2")],
        "outputs": [_out("results_dataset", "Results dataset")],
        "params": {},
    },
    "Add Columns": {
        "script": "add_columns.py",
        "description": "Put the right dataset's columns beside the left's (same number of rows)",
        "inputs": [_in("left_dataset", "Left dataset"), _in("right_dataset", "Right dataset")],
        "outputs": [_out("combined_dataset", "Combined dataset")],
        "params": {},
    },
    "Apply SQL Transformation": {
        "script": "apply_sql_transformation.py",
        "description": "Run a SQLite query over up to three datasets, as tables t1, t2 and t3",
        "inputs": [
            _in("t1", "Dataset1 (table t1)"),
            _in("t2", "Dataset2 (table t2)", optional=True),
            _in("t3", "Dataset3 (table t3)", optional=True),
        ],
        "outputs": [_out("result_dataset", "Result dataset")],
        "params": {
            "sql_query_script": _param(
                "str",
                "select * from t1;",
                "SQL query script",
                required=True,
                check="sql",
                multiline=True,
            ),
        },
    },
    "Partition and Sample": {
        "script": "partition_and_sample.py",
        "description": "Take the first rows, or a random (optionally stratified) sample",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("results_dataset", "Results dataset")],
        "params": {
            "partition_or_sample_mode": _param(
                "str", "Sampling", "Partition or sample mode", allowed=["Sampling", "Head"]
            ),
            "rate_of_sampling": _param("float", 0.01, "Rate of sampling", min=0.0, max=1.0),
            "random_seed_for_sampling": _param("int", 0, "Random seed for sampling", min=0),
            "stratified_split_for_sampling": _param("bool", False, "Stratified split for sampling"),
            "stratification_key_column_for_sampling": _param(
                "str", "", "Stratification key column for sampling"
            ),
            "number_of_rows_to_select": _param("int", 10, "Number of rows to select (Head)", min=0),
        },
    },
    "Summarize Data": {
        "script": "summarize_data.py",
        "description": "One row of statistics per column: counts, quartiles, moments, percentiles",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("result_dataset", "Result dataset")],
        "params": {},
    },
    "Enter Data Manually": {
        "script": "enter_data_manually.py",
        "description": "A small dataset typed in as CSV or TSV",
        "inputs": [],
        "outputs": [_out("dataset", "Dataset")],
        "params": {
            "data_format": _param("str", "CSV", "DataFormat", allowed=["CSV", "TSV"]),
            "has_header": _param("bool", True, "HasHeader"),
            "data": _param("str", "", "Data", required=True, multiline=True),
        },
    },
    "Convert to CSV": {
        "script": "convert_to_csv.py",
        "description": "Write a dataset as one CSV file (data.csv)",
        "inputs": [_in("dataset", "Dataset")],
        "outputs": [_out("results_dataset", "Results dataset", "AnyDirectory")],
        "params": {},
    },
}


def sql_statements(text: str) -> list[str]:
    """The SQL statements of ``text`` in order, split at the semicolons that end one (SQLite's
    own test, so a semicolon inside a string literal does not split); ``ValueError`` for none
    or for an unfinished one."""
    import sqlite3

    statements, current = [], ""
    for piece in text.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):
        raise ValueError(f"has an unfinished statement: {current.strip()[:60]!r}")
    if not statements:
        raise ValueError("has no SQL statement")
    return statements


def _check_python_script(text: str) -> None:
    """The script parses and defines ``azureml_main`` at its top level."""
    import ast

    try:
        tree = ast.parse(text, filename="python_script")
    except SyntaxError as exc:
        raise ValueError(f"has a syntax error at line {exc.lineno}: {exc.msg}") from None
    defined = {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if "azureml_main" not in defined:
        raise ValueError("must define azureml_main(dataframe1=None, dataframe2=None)")


CHECKS = {"python_script": _check_python_script, "sql": sql_statements}


def parse_value(spec: dict[str, Any], value: Any) -> Any:
    """The typed value of one parameter, from a Python literal or its ``AML_PARAMETER_`` text.

    Raises ``ValueError`` with the reason (the caller names module and field).
    """
    kind = spec["type"]
    if kind == "bool":
        if isinstance(value, bool):
            parsed: Any = value
        elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
            parsed = value.strip().lower() == "true"
        else:
            raise ValueError(f"must be a bool (True or False), got {value!r}")
    elif kind == "int":
        if isinstance(value, (bool, float)):
            raise ValueError(f"must be an int, got {value!r}")
        try:
            parsed = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be an int, got {value!r}") from None
    elif kind == "float":
        if isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, got {value!r}") from None
    elif kind == "json":
        if not isinstance(value, str):
            raise ValueError(f"must be a JSON object as a string, got {type(value).__name__}")
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"is not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"must be a JSON object, got {value!r}")
    else:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {type(value).__name__} {value!r}")
        parsed = value
    if "allowed" in spec and parsed not in spec["allowed"]:
        allowed = ", ".join(repr(a) for a in spec["allowed"])
        raise ValueError(f"must be one of {allowed}, got {parsed!r}")
    if "greater_than" in spec and parsed <= spec["greater_than"]:
        raise ValueError(f"must be greater than {spec['greater_than']}, got {parsed!r}")
    if "min" in spec and parsed < spec["min"]:
        raise ValueError(f"must be at least {spec['min']}, got {parsed!r}")
    if "max" in spec and parsed > spec["max"]:
        raise ValueError(f"must be at most {spec['max']}, got {parsed!r}")
    if spec.get("required") and parsed == "":
        raise ValueError("is required (got an empty value)")
    if "check" in spec:
        CHECKS[spec["check"]](parsed)
    return parsed


def check_params(module: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    """Every problem with ``values`` for built-in ``module``, as ``(field, message)`` pairs."""
    specs = MODULES[module]["params"]
    problems = []
    for name, spec in specs.items():
        field = f"params[{name!r}]"
        try:
            parse_value(spec, values.get(name, spec["default"]))
        except ValueError as exc:
            problems.append((field, f"built-in module {module!r}: {spec['label']!r} {exc}"))
    return problems


def make_estimator(name: str, params: dict[str, Any]) -> Any:
    """The scikit-learn estimator ``name`` with ``params``; ``ValueError`` naming unknown ones.

    Imported lazily: only Train Model (at run time) and the compile-time check of a Train Model
    step pay for importing scikit-learn.
    """
    import importlib

    module_name, _task = ESTIMATORS[name]
    estimator = getattr(importlib.import_module(module_name), name)()
    known = estimator.get_params()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"{name} has no parameter {', '.join(repr(u) for u in unknown)} "
            f"(parameters: {', '.join(sorted(known))})"
        )
    return estimator.set_params(**params)
