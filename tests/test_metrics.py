"""Metrics a step logs (``run.log`` and friends) as v1's ``get_metrics()`` returns them, for a step
that ran and for one that reused it, read back through ``PipelineRun``/``StepRun``."""

from __future__ import annotations

import pytest
from conftest import write_script

from mlpipe_provider.metrics import aggregate
from mlpipe_provider.sdk.run import Run

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16

TRAIN = """
    import os, sys, tempfile
    from mlpipe_provider.sdk import Run

    run = Run.get_context()
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.log("accuracy", 0.9, description="once")
    run.log("model", "resnet")
    run.log_list("lr", [0.1, 0.01])
    run.log_row("curve", epoch=1, val=0.3)
    run.log_row("curve", epoch=2, val=0.2)
    run.log_table("confusion", {"tp": [5, 6], "fp": [1, 0]})
    plot = os.path.join(tempfile.mkdtemp(), "plot.bin")  # not in the source folder: it is hashed
    with open(plot, "wb") as f:
        f.write(PNG)
    run.log_image("plots/roc", path=plot)
    os.makedirs(sys.argv[1], exist_ok=True)
    open(os.path.join(sys.argv[1], "model.txt"), "w").write("m")
"""

SCORE = """
    from mlpipe_provider.sdk import Run

    Run.get_context().log("score", 1.0)
"""

EXPECTED_TRAIN = {
    "loss": [0.5, 0.25],
    "accuracy": 0.9,
    "model": "resnet",
    "lr": [0.1, 0.01],
    "curve": {"epoch": [1, 2], "val": [0.3, 0.2]},
    "confusion": {"tp": [5, 6], "fp": [1, 0]},
    "plots/roc": "plots_roc.bin",
}


def two_step_pipeline(ws, folder):
    """train (every log kind, one output) -> score (reads it); shared with test_mlflow.py."""
    from mlpipe_provider.sdk import Pipeline, PipelineData, PipelineParameter, PythonScriptStep

    write_script(folder, "train.py", f"PNG = {PNG!r}\n" + _dedent(TRAIN))
    write_script(folder, "score.py", SCORE)
    model = PipelineData("model", datastore=ws.get_default_datastore())
    alpha = PipelineParameter("alpha", default_value=0.5)
    train = PythonScriptStep(
        "train.py",
        arguments=[model, "--alpha", alpha],
        outputs=[model],
        source_directory=str(folder),
    )
    score = PythonScriptStep(
        "score.py", arguments=[model], inputs=[model], source_directory=str(folder)
    )
    return Pipeline(ws, [train, score])


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


def test_aggregate_gives_v1_shapes():
    records = [
        {"kind": "scalar", "name": "a", "value": 1},
        {"kind": "scalar", "name": "v", "value": [1, 2]},  # one scalar whose value is a list
        {"kind": "scalar", "name": "a", "value": 2},
        {"kind": "scalar", "name": "a", "value": 3},
        {"kind": "list", "name": "l", "value": [1]},
        {"kind": "list", "name": "l", "value": [4, 5]},  # v1: the last list wins
        {"kind": "row", "name": "r", "value": {"x": 1}},
        {"kind": "row", "name": "r", "value": {"x": 2, "y": 3}},
        {"kind": "table", "name": "t", "value": {"c": [1, 2], "d": 7}},
        {"kind": "image", "name": "i", "value": "i.png"},
    ]
    assert aggregate(records) == {
        "a": [1, 2, 3],
        "v": [1, 2],
        "l": [4, 5],
        "r": {"x": [1, 2], "y": [3]},
        "t": {"c": [1, 2], "d": [7]},
        "i": "i.png",
    }
    # a scalar whose value is a list, logged again, is a series of two values, not three
    again = records[:2] + [{"kind": "scalar", "name": "v", "value": 3}]
    assert aggregate(again)["v"] == [[1, 2], 3]


def test_log_image_needs_one_source_and_stays_in_the_artifacts_folder(tmp_path):
    from mlpipe_provider.errors import UserErrorException

    metrics_file = tmp_path / "m.jsonl"
    artifacts = tmp_path / "artifacts"
    run = Run(run_id="r", _metrics_file=str(metrics_file), _artifacts_dir=str(artifacts))
    image = tmp_path / "x.JPG"
    image.write_bytes(PNG)
    run.log_image("../../escape/x", path=str(image))
    with open(image, "rb") as stream:
        run.log_image("from stream", path=stream)
    with pytest.raises(UserErrorException, match="exactly one"):
        run.log_image("neither")
    assert sorted(p.name for p in artifacts.iterdir()) == ["_.._escape_x.jpg", "from_stream.png"]
    assert run.get_metrics() == {
        "../../escape/x": "_.._escape_x.jpg",
        "from stream": "from_stream.png",
    }


def test_every_log_kind_reaches_get_metrics_also_when_reused(project, monkeypatch):
    from mlpipe_provider.sdk import Experiment, Workspace

    ws = Workspace.from_config()
    pipeline = two_step_pipeline(ws, project / "src")
    experiment = Experiment(ws, "metrics")
    first = experiment.submit(pipeline)
    assert first.wait_for_completion(show_output=False) == "Finished"
    second = experiment.submit(pipeline)
    assert second.wait_for_completion(show_output=False) == "Finished"

    (train1,) = first.find_step_run("train.py")
    (score1,) = first.find_step_run("score.py")
    (train2,) = second.find_step_run("train.py")
    (score2,) = second.find_step_run("score.py")
    assert not train1.reused and train2.reused and score2.reused
    assert train1.get_metrics() == EXPECTED_TRAIN
    assert train1.get_metrics("loss") == {"loss": [0.5, 0.25]}
    assert train1.get_metrics("missing") == {}
    assert score1.get_metrics() == {"score": 1.0}
    # v1: a reused step reports the metrics of the run it reused, and names that run
    assert train2.get_metrics() == EXPECTED_TRAIN
    assert score2.get_metrics() == {"score": 1.0}
    assert train2.get_properties()["azureml.reusedrunid"] == train1.id
    # v1: recursive get_metrics is keyed by step run id
    assert first.get_metrics(recursive=True) == {
        train1.id: EXPECTED_TRAIN,
        score1.id: {"score": 1.0},
    }
    assert second.get_metrics(recursive=True) == first.get_metrics(recursive=True)
    assert first.get_metrics() == {**EXPECTED_TRAIN, "score": 1.0}
    # the image is kept with the step run that logged it (the reused step points at it)
    from mlpipe_provider.datastores import open_datastore

    store = open_datastore(ws._dir, ws._config, ws._config.default_datastore)
    image = store.local_path(f"azureml/{train1.id}/.mlpipe/artifacts/plots_roc.bin")
    assert image.read_bytes() == PNG
