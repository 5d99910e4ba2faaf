"""The built-ins that follow the Azure ML designer's components: learner modules feeding Train
Model's ``untrained_model`` port, Normalize Data's five methods, and the everyday modules.

Kept fast: the scripts' arithmetic is checked by running each script in-process (its real
argument parsing, parameter checks and files), and one embedded-Airflow run strings several
modules together.
"""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlpipe_provider import builtin_modules
from mlpipe_provider.errors import PipelineValidationError
from mlpipe_provider.sdk import (
    DataReference,
    Module,
    ModuleStep,
    Pipeline,
    PipelineData,
    install_builtin_modules,
)

SCRIPTS = builtin_modules.SCRIPTS_DIR


def _run_script(monkeypatch, module: str, ports: dict[str, str], params: dict[str, object]):
    """Run a built-in's script in this process as a step would: ``--port path`` arguments and
    ``AML_PARAMETER_*`` values (as their text)."""
    script = builtin_modules.definition(module)["script"]
    argv = [script]
    for port, path in ports.items():
        argv += [f"--{port}", str(path)]
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "argv", argv)
    for name, value in params.items():
        monkeypatch.setenv(f"AML_PARAMETER_{name}", str(value))
    runpy.run_path(str(SCRIPTS / script), run_name="__main__")


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "data.csv")


def _learner_defaults(module: str) -> dict:
    cat = builtin_modules.catalogue()
    return {k: cat.parse_value(s, s["default"]) for k, s in cat.MODULES[module]["params"].items()}


def test_every_learner_module_maps_its_designer_parameters_to_scikit_learn():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import _learners
    finally:
        sys.path.remove(str(SCRIPTS))
    frame = pd.DataFrame({"a": [float(i % 7) for i in range(60)], "b": range(60)})
    binary = (frame["a"] + frame["b"] > 30).astype(int)
    multi = frame["b"] // 20
    numbers = 3 * frame["a"] - frame["b"] + 1.5
    for module, definition in builtin_modules.catalogue().LEARNERS.items():
        assert definition["outputs"] == [
            {
                "name": "untrained_model",
                "label": "Untrained model",
                "data_type": "UntrainedModelDirectory",
            }
        ]
        for key, spec in definition["params"].items():  # the designer's label, in snake case
            label = spec["label"].split(" (")[0]
            assert key == label.lower().replace(" ", "_").replace("-", "_"), (module, key)
        params = _learner_defaults(module)
        for trees in ("number_of_trees_constructed", "total_number_of_trees_constructed"):
            if trees in params:
                params[trees] = 5  # quick on a busy machine; the mapping is what is tested
        model = _learners.make_learner(module, params)
        target = {"binary": binary, "multiclass": multi, "regression": numbers}
        model.fit(frame, target[definition["learner_task"]])
        assert len(model.predict(frame)) == 60
    # the designer's own mapping: L2 weight -> C = 1 / weight; lambda -> C = 1 / (2 lambda)
    params = {**_learner_defaults("Two-Class Logistic Regression"), "l2_regularization_weight": 4}
    assert _learners.make_learner("Two-Class Logistic Regression", params).C == 0.25
    params = {**_learner_defaults("Two-Class Support Vector Machine"), "lambda": 0.5}
    svm = _learners.make_learner("Two-Class Support Vector Machine", params)
    assert svm.steps[-1][1].C == 1.0 and svm.steps[0][0] == "standardscaler"
    params = {
        **_learner_defaults("Decision Forest Regression"),
        "resampling_method": "Replicate Resampling",
    }
    assert _learners.make_learner("Decision Forest Regression", params).bootstrap is False
    params = {
        **_learner_defaults("Linear Regression"),
        "solution_method": "Online Gradient Descent",
    }
    sgd = _learners.make_learner("Linear Regression", params).steps[-1][1]
    assert (sgd.eta0, sgd.max_iter, sgd.learning_rate) == (0.1, 10, "invscaling")


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("ZScore", [-1.0, -1.0, 1.0, 1.0]),
        ("MinMax", [0.0, 0.0, 1.0, 1.0]),
        (
            "Logistic",
            [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-1))] + [1 / (1 + math.exp(-3))] * 2,
        ),
        ("Tanh", [math.tanh(1), math.tanh(1), math.tanh(3), math.tanh(3)]),
        ("LogNormal", [0.15865525393145707, 0.15865525393145707] + [0.8413447460685429] * 2),
    ],
)
def test_normalize_data_has_the_designers_five_methods(tmp_path, monkeypatch, method, expected):
    source = tmp_path / "in.csv"
    source.write_text("x,same,name\n1,5,a\n1,5,b\n3,5,c\n3,5,d\n")
    _run_script(
        monkeypatch,
        "Normalize Data",
        {"dataset": source, "transformed_dataset": tmp_path / "out"},
        {"transformation_method": method, "columns": "", "exclude_columns": ""},
    )
    out = _table(tmp_path / "out")
    assert out["x"].tolist() == pytest.approx(expected)
    assert out["name"].tolist() == ["a", "b", "c", "d"]  # not numeric: left alone
    if method in ("ZScore", "MinMax", "LogNormal"):  # a constant column becomes 0
        assert out["same"].tolist() == [0.0] * 4


def test_normalize_data_constant_columns_become_nan_when_unchecked(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("x,same\n1,5\n3,5\n")
    _run_script(
        monkeypatch,
        "Normalize Data",
        {"dataset": source, "transformed_dataset": tmp_path / "out"},
        {"transformation_method": "MinMax", "use_0_for_constant_columns_when_checked": False},
    )
    out = _table(tmp_path / "out")
    assert out["x"].tolist() == [0.0, 1.0] and out["same"].isna().all()
    with pytest.raises(SystemExit):
        source.write_text("x\n0\n3\n")
        _run_script(
            monkeypatch,
            "Normalize Data",
            {"dataset": source, "transformed_dataset": tmp_path / "out2"},
            {"transformation_method": "LogNormal"},
        )


@pytest.fixture
def people(ws):
    store = ws.get_default_datastore()
    path = ws._dir / "datastores" / store.name / "tables" / "people.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["age,income,score,extra,label"]
    for i in range(40):
        age = "" if i in (3, 17) else str(20 + i)
        label = 1 if i % 2 else 0
        rows.append(f"{age},{1000 + 37 * i},{(i * 7) % 11 + label * 10},x{i},{label}")
    path.write_text("\n".join(rows) + "\n")
    return DataReference(store, data_reference_name="people", path_on_datastore="tables/people.csv")


def _step(ws, module, name, inputs, outputs, params=None):
    return ModuleStep(
        module=Module.get(ws, name=module),
        name=name,
        inputs_map=inputs,
        outputs_map=outputs,
        params=params or {},
    )


def test_train_model_refuses_an_estimator_and_an_untrained_model_at_once(ws, people, run_dag):
    install_builtin_modules(ws, names=["Two-Class Decision Forest", "Train Model"])
    store = ws.get_default_datastore()
    learner, model = PipelineData("learner", store), PipelineData("model", store)
    steps = [
        _step(
            ws,
            "Two-Class Decision Forest",
            "forest",
            {},
            {"untrained_model": learner},
            {"number_of_decision_trees": 0},
        ),
        _step(
            ws,
            "Train Model",
            "train",
            {"untrained_model": learner, "dataset": people},
            {"trained_model": model},
            {"label_column": "label", "estimator": "RandomForestClassifier"},
        ),
    ]
    with pytest.raises(PipelineValidationError) as caught:
        run_dag(Pipeline(ws, steps), dag_id="both_shapes")
    text = str(caught.value)
    assert "params['number_of_decision_trees']" in text and "at least 1" in text
    assert "params['estimator']" in text and "untrained model is connected" in text


def test_learner_modules_feed_train_model_score_and_evaluate(ws, people, run_dag):
    """The designer's shape on the embedded Airflow: a learner's untrained model and a dataset
    into Train Model, then Score and Evaluate; a regression learner beside it."""
    install_builtin_modules(ws)
    store = ws.get_default_datastore()
    data = {n: PipelineData(n, store) for n in ("sel", "clean", "svm", "model", "scored", "ev")}
    data.update({n: PipelineData(n, store) for n in ("linear", "regression")})
    steps = [
        _step(
            ws,
            "Select Columns in Dataset",
            "select",
            {"dataset": people},
            {"results_dataset": data["sel"]},
            {"columns": "age,income,score,label"},
        ),
        _step(
            ws,
            "Clean Missing Data",
            "clean",
            {"dataset": data["sel"]},
            {"cleaned_dataset": data["clean"]},
            {"cleaning_mode": "Replace with mean"},
        ),
        _step(
            ws,
            "Two-Class Support Vector Machine",
            "svm",
            {},
            {"untrained_model": data["svm"]},
            {"number_of_iterations": 50},
        ),
        _step(
            ws,
            "Train Model",
            "train",
            {"untrained_model": data["svm"], "dataset": data["clean"]},
            {"trained_model": data["model"]},
            {"label_column": "label"},
        ),
        _step(
            ws,
            "Score Model",
            "score",
            {"trained_model": data["model"], "dataset": data["clean"]},
            {"scored_dataset": data["scored"]},
        ),
        _step(
            ws,
            "Evaluate Model",
            "evaluate",
            {"scored_dataset": data["scored"]},
            {"evaluation_results": data["ev"]},
        ),
        _step(
            ws,
            "Linear Regression",
            "linear",
            {},
            {"untrained_model": data["linear"]},
            {"solution_method": "Online Gradient Descent", "number_of_training_epochs": 20},
        ),
        _step(
            ws,
            "Train Model",
            "train_regression",
            {"untrained_model": data["linear"], "dataset": data["clean"]},
            {"trained_model": data["regression"]},
            {"label_column": "score"},
        ),
    ]
    dag_run, records = run_dag(Pipeline(ws, steps), dag_id="designer_learners")
    assert str(dag_run.state) == "success", records
    logged = records["evaluate.module"][1]["metrics"]
    assert logged["Accuracy"] > 0.8, logged  # the label shifts 'score' by 10
    assert 0.5 < logged["AUC"] <= 1.0  # from the SVM's margin: it has no probabilities
    assert records["svm.module"][1]["metrics"]["Learner"] == "Two-Class Support Vector Machine"

    def folder(step, name):
        location = records[f"{step}.module"][1]["outputs"][name]
        return ws._dir / "datastores" / location["datastore"] / location["path"]

    settings = json.loads((folder("svm", "svm") / "learner.json").read_text())
    assert settings["params"]["number_of_iterations"] == 50 and settings["task"] == "binary"
    meta = json.loads((folder("train_regression", "regression") / "model.json").read_text())
    assert meta["task"] == "regression" and meta["estimator"] == "Linear Regression"
    assert meta["features"] == ["age", "income", "label"]
