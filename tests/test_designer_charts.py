"""The designer's Metrics panel data: chart JSON from what a real step logged through v1's Run
API (run in Airflow with ``dag.test``); the image a step logged, and nothing else: no traversal
through a logged file name or a symlink, no other type, no other workspace's runs.

A reused step's panel (the run it reused) is checked on the real Evaluate Model in
test_builtin_modules.py and in the browser (test_designer_ui.py), so this runs its step once."""

from __future__ import annotations

import json

import pytest
from conftest import write_script

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
MATRIX = {
    "schema_type": "confusion_matrix",
    "schema_version": "1.0.0",
    "data": {"class_labels": ["no", "yes"], "matrix": [[5, 1], [2, 7]]},
}
ACCURACY = {
    "schema_type": "accuracy_table",
    "schema_version": "1.0.1",
    "data": {
        "class_labels": ["0", "1"],
        "probability_thresholds": [0.0, 0.5, 1.0],
        # per class, per threshold: [TP, FP, TN, FN]
        "probability_tables": [
            [[4, 6, 0, 0], [3, 1, 5, 1], [0, 0, 6, 4]],
            [[6, 4, 0, 0], [5, 1, 3, 1], [0, 0, 4, 6]],
        ],
        "percentile_tables": [],
        "percentiles": [],
    },
}

LOGS = f"""
    import json, math, os, tempfile
    from mlpipe_provider.metrics import append_metric
    from mlpipe_provider.sdk import Run

    run = Run.get_context()
    for step, loss in enumerate([0.9, 0.5, 0.3, 0.2]):
        run.log("loss", loss, step=step * 10)
    run.log("accuracy", 0.875, description="on the test split")
    run.log("model", "forest")
    run.log("unstable", float("nan"))
    run.log("unstable", 1.5)
    run.log("unstable", 2.5)
    run.log_list("learning rate", [0.1, 0.05, 0.01])
    run.log_list("classes", ["no", "yes"])
    for epoch, (loss, acc) in enumerate([(0.7, 0.6), (0.4, 0.8), (0.3, 0.85)], start=1):
        run.log_row("epochs", epoch=epoch, loss=loss, acc=acc)
    run.log_row("notes", who="me", text="fine")
    run.log_table("ROC curve", {{"False positive rate": [0.0, 0.2, 1.0],
                                 "True positive rate": [0.0, 0.7, 1.0]}})
    run.log_confusion_matrix("Confusion matrix", {MATRIX!r})
    run.log_confusion_matrix("as text", json.dumps({MATRIX!r}))
    run.log_confusion_matrix("broken", {{"data": {{"class_labels": ["a"], "matrix": [[1, 2]]}}}})
    run.log_accuracy_table("Accuracy table", {ACCURACY!r})
    folder = tempfile.mkdtemp()
    for name in ("plot.png", "drawing.svg"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write({PNG!r})
    run.log_image("plot", path=os.path.join(folder, "plot.png"))
    run.log_image("drawing", path=os.path.join(folder, "drawing.svg"))
    # a script that tries to make the designer serve other files
    artifacts = os.environ["MLPIPE_ARTIFACTS_DIR"]
    os.symlink(os.path.abspath(__file__), os.path.join(artifacts, "outside.png"))
    os.symlink(os.path.join("..", "metrics.jsonl"), os.path.join(artifacts, "inside.png"))
    metrics = os.environ["MLPIPE_METRICS_FILE"]
    for name, value in [("escape", "../metrics.png"), ("outside", "outside.png"),
                        ("inside", "inside.png"), ("absolute", "/etc/hostname.png")]:
        append_metric(metrics, {{"kind": "image", "name": name, "value": value}})
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory, airflow_db):
    """One real step that logs every kind."""
    import os

    from conftest import _DAGS, task_records

    from mlpipe_provider.sdk import Pipeline, PythonScriptStep, Workspace

    project = tmp_path_factory.mktemp("charts")
    cwd = os.getcwd()
    os.chdir(project)
    try:
        ws = Workspace.from_config()
        write_script(project / "src", "logs.py", LOGS)
        step = PythonScriptStep("logs.py", source_directory=str(project / "src"))
        pipeline = Pipeline(ws, [step])
        from airflow.dag_processing.dagbag import DagBag

        from compiler.compile import compile_pipeline

        compiled = compile_pipeline(pipeline, "designer_charts", _DAGS)
        compiled.write()
        dag = DagBag(dag_folder=str(compiled.path)).get_dag(compiled.dag_id)
        first = dag.test()
    finally:
        os.chdir(cwd)
    (task_id,) = [t for t in task_records(first) if t != "mlpipe.plan"]
    return {"ws": ws, "project": project, "task_id": task_id, "run": first}


def _step_ws(ws):
    from mlpipe_provider.config import load_config
    from mlpipe_provider.runtime.step_context import StepWorkspace

    return StepWorkspace(ws.directory, load_config(ws.directory))


def _entries(logged):
    from mlpipe_provider.designer.step_metrics import metrics_of, step_record

    run = logged["run"]
    record = step_record(run.dag_id, run.run_id, logged["task_id"])
    return record, {e["name"]: e for e in metrics_of(_step_ws(logged["ws"]), record)}


def test_chart_json_of_every_log_kind(logged):
    record, entries = _entries(logged)
    assert not record["reused"]
    assert list(entries)[:3] == ["loss", "accuracy", "model"]  # in the order first logged
    assert entries["loss"]["kind"] == "line" and entries["loss"]["x_label"] == "step"
    assert entries["loss"]["series"] == [
        {"label": "loss", "x": [0, 10, 20, 30], "y": [0.9, 0.5, 0.3, 0.2]}
    ]
    assert entries["accuracy"] == {
        "name": "accuracy",
        "kind": "scalar",
        "source": "log",
        "value": 0.875,
        "description": "on the test split",
    }
    assert entries["model"]["value"] == "forest"
    # a NaN logged among numbers is left out of the line, the rest kept at their call index
    assert entries["unstable"]["series"][0] == {"label": "unstable", "x": [1, 2], "y": [1.5, 2.5]}
    lr = entries["learning rate"]
    assert (lr["kind"], lr["source"], lr["series"][0]["x"]) == ("line", "log_list", [0, 1, 2])
    assert entries["classes"]["kind"] == "table"
    assert entries["classes"]["rows"] == [["no"], ["yes"]]
    # rows of numbers: one line per column over the first, and the table
    epochs = entries["epochs"]
    assert epochs["kind"] == "line" and epochs["x_label"] == "epoch"
    assert [s["label"] for s in epochs["series"]] == ["loss", "acc"]
    assert epochs["series"][1]["y"] == [0.6, 0.8, 0.85]
    assert epochs["table"]["rows"][0] == [1, 0.7, 0.6]
    assert entries["notes"] == {
        "name": "notes",
        "kind": "table",
        "source": "log_row",
        "columns": ["who", "text"],
        "rows": [["me", "fine"]],
        "total_rows": 1,
    }
    # Evaluate Model's ROC curve: a table of two numeric columns, drawn as a curve
    roc = entries["ROC curve"]
    assert (roc["kind"], roc["source"]) == ("line", "log_table")
    assert (roc["x_label"], roc["y_label"]) == ("False positive rate", "True positive rate")
    assert roc["series"][0]["y"] == [0.0, 0.7, 1.0]
    for name in ("Confusion matrix", "as text"):
        assert entries[name]["kind"] == "confusion_matrix"
        assert entries[name]["labels"] == ["no", "yes"]
        assert entries[name]["matrix"] == [[5, 1], [2, 7]]
    assert entries["broken"]["kind"] == "json" and "square" in entries["broken"]["note"]
    # v1's accuracy table as one ROC curve per class: (FP/(FP+TN), TP/(TP+FN)) per threshold
    acc = entries["Accuracy table"]
    assert [s["label"] for s in acc["series"]] == ["0", "1"]
    assert acc["series"][0]["x"] == [1.0, 1 / 6, 0.0]
    assert acc["series"][0]["y"] == [1.0, 0.75, 0.0]
    assert entries["plot"] == {
        "name": "plot",
        "kind": "image",
        "source": "log_image",
        "file": "plot.png",
    }
    json.dumps(list(entries.values()), allow_nan=False)  # plain JSON, no NaN


def test_images_only_from_the_steps_artifacts(logged):
    from mlpipe_provider.designer import service
    from mlpipe_provider.designer.step_metrics import image_of, step_record

    ws = _step_ws(logged["ws"])
    run = logged["run"]
    record = step_record(run.dag_id, run.run_id, logged["task_id"])
    assert image_of(ws, record, logged["task_id"], "plot") == (PNG, "image/png")
    for name, why in [
        ("drawing", "not an image file"),  # SVG can carry script: never served
        ("escape", "not an image file"),
        ("absolute", "not an image file"),
        ("outside", "not among its artifacts"),  # a symlink out of the datastore
        ("inside", "not among its artifacts"),  # a symlink to the metrics file beside
        ("never logged", "logged no image"),
        ("model", "logged no image"),  # a metric, not an image
    ]:
        with pytest.raises(service.NotFound, match=why):
            image_of(ws, record, logged["task_id"], name)
    with pytest.raises(service.NotFound, match="has no step"):
        step_record(run.dag_id, run.run_id, "no_such_step")
    with pytest.raises(service.NotFound, match="not a step"):
        step_record(run.dag_id, run.run_id, "mlpipe.plan")


def test_metrics_and_images_only_of_runs_the_files_workspace_recorded(tmp_path):
    from mlpipe_provider.designer import files, service
    from mlpipe_provider.designer.step_metrics import run_workspace
    from mlpipe_provider.rest.runs import record_run
    from mlpipe_provider.sdk import Workspace

    root = tmp_path / "pipelines"
    ws = Workspace(_workspace_dir=root / ".mlpipe")
    other = Workspace(_workspace_dir=root / "other" / ".mlpipe")
    record_run(ws.directory, "r1", {"dag_id": "d", "airflow_run_id": "mlpipe__r1"})
    record_run(other.directory, "r2", {"dag_id": "d", "airflow_run_id": "mlpipe__r2"})
    assert run_workspace(root, "a/pipe.py", "d", "mlpipe__r1").directory == ws.directory
    assert run_workspace(root, "other/pipe.py", "d", "mlpipe__r2").directory == other.directory
    for relative, dag_id, run_id in [
        ("a/pipe.py", "d", "mlpipe__r2"),  # another workspace's run
        ("a/pipe.py", "e", "mlpipe__r1"),  # the run is not of that DAG
        ("a/pipe.py", "d", "manual__r1"),  # not a run mlpipe recorded
        ("a/pipe.py", "d", "mlpipe__../r1"),
    ]:
        with pytest.raises(service.NotFound, match="was not started from"):
            run_workspace(root, relative, dag_id, run_id)
    with pytest.raises(files.PathRefused):
        run_workspace(root, "../pipe.py", "d", "mlpipe__r1")


def test_aggregate_only_and_long_series():
    """A record without its metrics file still shows (from v1's aggregate); a long series is
    thinned to MAX_POINTS, keeping its first and last points."""
    from mlpipe_provider.designer.charts import MAX_POINTS, MAX_ROWS, charts

    entries = charts(
        None,
        {
            "acc": 0.5,
            "loss": [3, 2, 1],
            "cm": {"confusion_matrix": [MATRIX]},
            "t": {"a": ["x"] * (MAX_ROWS + 5)},
        },
    )
    assert [e["kind"] for e in entries] == ["scalar", "line", "confusion_matrix", "table"]
    assert entries[3]["total_rows"] == MAX_ROWS + 5 and len(entries[3]["rows"]) == MAX_ROWS
    records = [{"kind": "scalar", "name": "n", "value": float(i)} for i in range(5000)]
    (line,) = charts(records, None)
    series = line["series"][0]
    assert len(series["x"]) == MAX_POINTS and line["points_logged"] == 5000
    assert (series["x"][0], series["x"][-1], series["y"][-1]) == (0, 4999, 4999.0)


@pytest.mark.azurite
def test_metrics_and_images_of_a_step_run_in_a_blob_datastore(ws, azurite, tmp_path):
    """Where the default datastore is Azure Blob, the step run's metrics file and images are
    read from the blob (here Azurite), with the same checks as on disk."""
    from azurite import register_blob_datastore

    from mlpipe_provider.designer import service
    from mlpipe_provider.designer.step_metrics import image_of, metrics_of
    from mlpipe_provider.metrics import append_metric
    from mlpipe_provider.sdk.run import Run

    access = register_blob_datastore(ws, azurite, "blobstore", default=True)._access()
    local = tmp_path / "meta"
    run = Run(
        run_id="r",
        _metrics_file=str(local / "metrics.jsonl"),
        _artifacts_dir=str(local / "artifacts"),
    )
    local.mkdir()
    run.log_list("loss", [3, 2, 1])
    run.log_confusion_matrix("cm", MATRIX)
    (tmp_path / "p.png").write_bytes(PNG)
    run.log_image("plot", path=str(tmp_path / "p.png"))
    append_metric(local / "metrics.jsonl", {"kind": "image", "name": "escape", "value": "../x.png"})
    for path in local.rglob("*"):
        if path.is_file():
            rel = path.relative_to(local).as_posix()
            access.fs.pipe(access.full_path(f"azureml/r/.mlpipe/{rel}"), path.read_bytes())
    record = {"run_folder": {"datastore": "blobstore", "path": "azureml/r"}}
    step_ws = _step_ws(ws)
    kinds = {e["name"]: e["kind"] for e in metrics_of(step_ws, record)}
    assert kinds == {"loss": "line", "cm": "confusion_matrix", "plot": "image", "escape": "image"}
    assert image_of(step_ws, record, "s", "plot") == (PNG, "image/png")
    with pytest.raises(service.NotFound, match="not an image file"):
        image_of(step_ws, record, "s", "escape")
    gone = {"run_folder": {"datastore": "blobstore", "path": "azureml/gone"}}
    assert metrics_of(step_ws, {**gone, "metrics": {"a": 1}})[0]["value"] == 1
    with pytest.raises(service.NotFound, match="logged no image"):
        image_of(step_ws, gone, "s", "plot")
