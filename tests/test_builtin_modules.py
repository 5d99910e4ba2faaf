"""The built-in module library: installed as ordinary modules, run for real, reused, checked.

The example (examples/builtins, 200 rows) goes select -> clean -> split -> train -> score ->
evaluate on the embedded Airflow, twice; a tiny 40-row CSV feeds the compile-error checks, the
run-time parameter check and a Normalize -> Join -> Export run.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import REPO

from mlpipe_provider import builtin_modules
from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import (
    DataReference,
    Module,
    ModuleStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    install_builtin_modules,
)
from mlpipe_provider.sdk.builtin_modules import builtin_modules_version


def _csv() -> str:
    rows = ["age,income,score,extra,label"]
    for i in range(40):
        age = "" if i in (3, 17) else str(20 + i)
        income = str(1000 + 37 * i)
        label = 1 if i % 2 else 0
        rows.append(f"{age},{income},{(i * 7) % 11 + label * 10},x{i},{label}")
    return "\n".join(rows) + "\n"


@pytest.fixture
def data(ws):
    store = ws.get_default_datastore()
    path = ws._dir / "datastores" / store.name / "tables" / "people.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_csv())
    return DataReference(store, data_reference_name="people", path_on_datastore="tables/people.csv")


def _pipeline(ws, data, *, train_params=None, split_params=None) -> Pipeline:
    store = ws.get_default_datastore()
    selected, cleaned = PipelineData("selected", store), PipelineData("cleaned", store)
    train, test = PipelineData("train", store), PipelineData("test", store)
    model, scored = PipelineData("model", store), PipelineData("scored", store)
    evaluation = PipelineData("evaluation", store)

    def step(module, name, inputs, outputs, params=None):
        return ModuleStep(
            module=Module.get(ws, name=module),
            name=name,
            inputs_map=inputs,
            outputs_map=outputs,
            params=params or {},
        )

    steps = [
        step(
            "Select Columns in Dataset",
            "select",
            {"dataset": data},
            {"results_dataset": selected},
            {"columns": "age,income,score,label"},
        ),
        step(
            "Clean Missing Data",
            "clean",
            {"dataset": selected},
            {"cleaned_dataset": cleaned},
            {"cleaning_mode": "Replace with mean"},
        ),
        step(
            "Split Data",
            "split",
            {"dataset": cleaned},
            {"results_dataset1": train, "results_dataset2": test},
            {"fraction": 0.75, "random_seed": 7, **(split_params or {})},
        ),
        step(
            "Train Model",
            "train",
            {"dataset": train},
            {"trained_model": model},
            {
                "label_column": "label",
                "estimator": "DecisionTreeClassifier",
                "estimator_params": '{"max_depth": 3, "random_state": 0}',
                **(train_params or {}),
            },
        ),
        step(
            "Score Model",
            "score",
            {"trained_model": model, "dataset": test},
            {"scored_dataset": scored},
        ),
        step(
            "Evaluate Model",
            "evaluate",
            {"scored_dataset": scored},
            {"evaluation_results": evaluation},
        ),
    ]
    return Pipeline(ws, steps)


def test_install_is_idempotent_and_registers_ordinary_modules(ws):
    first = install_builtin_modules(ws)
    assert [v.module_name for v in first] == builtin_modules.names()
    registry = sorted(p.read_bytes() for p in (ws._dir / "modules").rglob("*.json"))
    again = install_builtin_modules(ws)
    assert [v.module_version_id for v in again] == [v.module_version_id for v in first]
    assert sorted(p.read_bytes() for p in (ws._dir / "modules").rglob("*.json")) == registry
    split = Module.get(ws, name="Split Data")
    assert split.default_version == builtin_modules_version()
    version = split.get_default()
    assert version.category == "Built-in"
    assert version.params == {
        "fraction": 0.5,
        "randomized_split": True,
        "random_seed": 0,
        "stratify_column": "",
    }
    assert [p.name for p in version.output_port_defs] == ["results_dataset1", "results_dataset2"]
    assert version.output_port_defs[0].data_type == "DataFrameDirectory"
    with pytest.raises(UserErrorException, match="no built-in module 'Nope'"):
        install_builtin_modules(ws, names=["Nope"])

    # they appear wherever registered modules do: the designer's palette lists them
    from mlpipe_provider.designer.palette import modules

    listed = {m["module"]: m for m in modules(ws)}
    assert set(builtin_modules.names()) <= set(listed)
    train = listed["Train Model"]
    assert train["params"]["estimator"] == "LogisticRegression"
    assert train["outputs"] == [
        {"name": "trained_model", "data_type": "ModelDirectory", "label": "Trained model"}
    ]


def test_the_example_runs_logs_metrics_and_reuses(tmp_path, monkeypatch, run_dag):
    """examples/builtins: select -> clean -> split -> train -> score -> evaluate, all built-ins,
    on the embedded Airflow in-process; the second run reuses every step."""
    import importlib.util
    import shutil

    folder = tmp_path / "builtins"
    shutil.copytree(
        REPO / "examples" / "builtins", folder, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    monkeypatch.chdir(folder)  # a fresh embedded workspace: the example installs the built-ins
    spec = importlib.util.spec_from_file_location("builtins_example", folder / "pipeline.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    csv = example.ws._dir / "datastores" / "workspaceblobstore" / "builtins" / "customers.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    example.write_customers(str(csv))

    dag_run, first = run_dag(example.builtins_pipeline, dag_id="builtins_pipeline")
    assert str(dag_run.state) == "success", first
    steps = ["select_columns", "clean_missing_data", "split_data", "train_model"]
    steps += ["score_model", "evaluate_model"]
    for name in steps:
        state, record = first[f"{name}.module"]
        assert state == "success" and not record.get("reused"), (name, record)
    assert first["clean_missing_data.module"][1]["metrics"]["Missing values"] == 11
    split = first["split_data.module"][1]["metrics"]
    assert split["Rows in dataset 1"] + split["Rows in dataset 2"] == 200
    assert abs(split["Rows in dataset 1"] - 140) <= 1  # 70%, stratified by the label
    logged = first["evaluate_model.module"][1]["metrics"]
    for metric in ("Accuracy", "Precision", "Recall", "F1 Score", "AUC"):
        assert 0.0 <= logged[metric] <= 1.0, (metric, logged)
    assert logged["Accuracy"] > 0.8, logged  # the label is a simple rule of two features
    assert "confusion_matrix" in json.dumps(logged["Confusion matrix"])
    roc = logged["ROC curve"]
    roc = json.loads(roc) if isinstance(roc, str) else roc
    assert "True positive rate" in json.dumps(roc)

    dag_run, second = run_dag(example.builtins_pipeline, dag_id="builtins_pipeline")
    assert str(dag_run.state) == "success"
    for name in steps:
        state, record = second[f"{name}.module"]
        assert state == "skipped" and record["reused"], (name, state, record)
    # the designer's Metrics panel of the reused Evaluate Model: its charts, from the run it reused
    from mlpipe_provider.config import load_config
    from mlpipe_provider.designer.step_metrics import metrics_of, step_record
    from mlpipe_provider.runtime.step_context import StepWorkspace

    ws = StepWorkspace(example.ws._dir, load_config(example.ws._dir))
    record = step_record(dag_run.dag_id, dag_run.run_id, "evaluate_model.module")
    charts = {e["name"]: e for e in metrics_of(ws, record)}
    matrix = charts["Confusion matrix"]
    assert matrix["kind"] == "confusion_matrix" and len(matrix["labels"]) == 2
    assert sum(map(sum, matrix["matrix"])) == 60  # the 30% test split of 200 rows
    roc = charts["ROC curve"]
    assert (roc["kind"], roc["x_label"], roc["y_label"]) == (
        "line",
        "False positive rate",
        "True positive rate",
    )
    assert roc["series"][0]["y"][-1] == 1.0 and charts["AUC"]["kind"] == "scalar"


def test_bad_parameter_values_are_compile_errors_naming_module_and_field(ws, data, run_dag):
    install_builtin_modules(ws)
    bad = _pipeline(
        ws,
        data,
        train_params={"estimator": "SVC", "label_column": ""},
        split_params={"fraction": 1.5, "randomized_split": "maybe"},
    )
    with pytest.raises(PipelineValidationError) as caught:
        run_dag(bad, dag_id="bad_builtins")
    text = str(caught.value)
    assert "'Split Data'" in text and "params['fraction']" in text and "at most 1.0" in text
    assert "params['randomized_split']" in text and "must be a bool" in text
    assert "'Train Model'" in text and "params['estimator']" in text and "'SVC'" in text
    assert "params['label_column']" in text and "is required" in text

    with pytest.raises(PipelineValidationError) as caught:
        run_dag(
            _pipeline(ws, data, train_params={"estimator_params": '{"max_depthh": 3}'}),
            dag_id="bad_builtins",
        )
    assert "params['estimator_params']" in str(caught.value)
    assert "'max_depthh'" in str(caught.value)
    # a PipelineParameter's default is checked too
    with pytest.raises(PipelineValidationError, match=r"params\['fraction'\]"):
        run_dag(
            _pipeline(ws, data, split_params={"fraction": PipelineParameter("f", -0.5)}),
            dag_id="bad_builtins",
        )


def test_a_bad_value_passed_at_run_time_fails_the_step_naming_module_and_field(ws, data, run_dag):
    """A PipelineParameter's value arrives only at run time: the script checks it as it starts."""
    install_builtin_modules(ws)
    store = ws.get_default_datastore()
    split = ModuleStep(
        module=Module.get(ws, name="Split Data"),
        name="split",
        inputs_map={"dataset": data},
        outputs_map={
            "results_dataset1": PipelineData("first", store),
            "results_dataset2": PipelineData("second", store),
        },
        params={"fraction": PipelineParameter("f", 0.75)},
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        dag_run, records = run_dag(Pipeline(ws, [split]), dag_id="runtime_builtins", conf={"f": 7})
    assert str(dag_run.state) == "failed"
    assert records["split.module"][0] == "failed"
    assert "built-in module 'Split Data', field \"params['fraction']\"" in buffer.getvalue()
    assert "must be at most 1.0, got 7.0" in buffer.getvalue()


def test_normalize_join_and_export_write_what_they_say(ws, data, run_dag):
    install_builtin_modules(ws)
    store = ws.get_default_datastore()
    normalized, joined = PipelineData("normalized", store), PipelineData("joined", store)
    exported = PipelineData("exported", store)
    normalize = ModuleStep(
        module=Module.get(ws, name="Normalize Data"),
        name="normalize",
        inputs_map={"dataset": data},
        outputs_map={"transformed_dataset": normalized},
        params={"transformation_method": "MinMax", "columns": "income", "exclude_columns": ""},
    )
    join = ModuleStep(
        module=Module.get(ws, name="Join Data"),
        name="join",
        inputs_map={"left_dataset": data, "right_dataset": normalized},
        outputs_map={"results_dataset": joined},
        params={"left_keys": "extra", "join_type": "Inner Join"},
    )
    export = ModuleStep(
        module=Module.get(ws, name="Export Data"),
        name="export",
        inputs_map={"dataset": joined},
        outputs_map={"exported_data": exported},
        params={"file_name": "people.jsonl", "file_format": "jsonl"},
    )
    dag_run, records = run_dag(Pipeline(ws, [normalize, join, export]), dag_id="builtins_export")
    assert str(dag_run.state) == "success", records
    location = records["export.module"][1]["outputs"]["exported"]
    folder = ws._dir / "datastores" / location["datastore"] / location["path"]
    rows = [json.loads(line) for line in (folder / "people.jsonl").read_text().splitlines()]
    assert len(rows) == 40
    assert rows[0]["income"] == 1000 and rows[0]["income (2)"] == 0.0
    assert rows[-1]["income (2)"] == 1.0
    assert records["join.module"][1]["metrics"]["Rows"] == 40


def test_cli_installs_and_lists_builtins(ws, capsys):
    from mlpipe_provider.cli.main import main

    assert main(["modules", "install-builtins", "Split Data"]) == 0
    assert f"Split Data: version {builtin_modules_version()}" in capsys.readouterr().out
    assert main(["modules", "ls"]) == 0
    out = capsys.readouterr().out
    assert f"| Split Data | {builtin_modules_version()} |" in out and "Built-in" in out
    assert "Train Model" not in out
    assert main(["modules", "install-builtins", "Nope"]) == 1
    assert "no built-in module 'Nope'" in capsys.readouterr().err


def test_the_designer_docs_list_every_builtin_port_and_parameter():
    text = (REPO / "docs" / "designer.md").read_text()
    section = text[text.index("## Built-in modules") : text.index("## Layers")]
    for name in builtin_modules.names():
        row = next(line for line in section.splitlines() if line.startswith(f"| **{name}** |"))
        definition = builtin_modules.definition(name)
        for port in [*definition["inputs"], *definition["outputs"]]:
            assert f"`{port['name']}`" in row, (name, port["name"])
        for param, spec in definition["params"].items():
            assert f"`{param}` {spec['type']}" in row, (name, param)
