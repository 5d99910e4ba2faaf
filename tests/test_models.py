"""Registered models (docs/models.md): the registry, and models as pipeline steps read them.

Step tests run real DAGs on the embedded Airflow (``run_dag``); a step script appends to
$MLPIPE_TEST_CALLS so a test sees whether it ran or was reused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.cli.migrate import migrate_source
from mlpipe_provider.datastores import open_datastore
from mlpipe_provider.errors import NotSupportedError, UserErrorException
from mlpipe_provider.sdk import Model, Pipeline, PipelineData, PythonScriptStep


def _file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_register_file_versions_increment_and_content_is_stored(ws, project):
    path = _file(project / "m", "model.pkl", "weights-1")
    first = Model.register(ws, str(path), "clf", tags={"area": "iris"}, description="first")
    assert (first.name, first.version, first.id) == ("clf", 1, "clf:1")
    assert first.tags == {"area": "iris"} and first.description == "first"
    assert first.created_time.year >= 2024
    path.write_text("weights-2")
    second = Model.register(ws, str(path), "clf", properties={"acc": 0.9})
    assert (second.version, second.properties) == (2, {"acc": "0.9"})
    assert first.digest != second.digest
    # version 1 still holds its bytes: versions are immutable and stored by content
    assert Path(Model.get_model_path("clf", version=1, _workspace=ws)).read_text() == "weights-1"
    assert Path(Model.get_model_path("clf", _workspace=ws)).read_text() == "weights-2"
    assert first.path.startswith("models/clf/") and first.path.endswith("/model.pkl")


def test_register_folder_and_child_paths_and_download(ws, project, tmp_path):
    folder = project / "bundle"
    _file(folder, "weights.bin", "w")
    _file(folder / "conf", "c.json", "{}")
    _file(folder, "notes.txt", "skip me")
    model = Model.register(ws, str(folder), "bundle")
    got = Path(model.download(str(tmp_path / "out")))
    assert got == tmp_path / "out" / "bundle"
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == [
        "conf/c.json",
        "notes.txt",
        "weights.bin",
    ]
    with pytest.raises(UserErrorException, match="exist_ok"):
        model.download(str(tmp_path / "out"))
    model.download(str(tmp_path / "out"), exist_ok=True)
    part = Model.register(ws, str(folder), "bundle", child_paths=["weights.bin", "conf/c.json"])
    assert part.version == 2
    assert sorted(part.serialize()["files"]) == ["conf/c.json", "weights.bin"]


def test_model_lookup_list_and_filters(ws, project):
    path = _file(project, "m.txt", "a")
    Model.register(ws, str(path), "a", tags={"stage": "dev"})
    Model.register(ws, str(path), "a", tags={"stage": "prod", "team": "x"})
    Model.register(ws, str(path), "b", tags={"stage": "prod"})
    assert Model(ws, "a").version == 2
    assert Model(ws, "a", version=1).tags == {"stage": "dev"}
    assert Model(ws, id="a:1").version == 1
    assert Model(ws, "a", tags=[["stage", "dev"]]).version == 1
    assert [m.id for m in Model.list(ws, name="a")] == ["a:2", "a:1"]
    assert {m.id for m in Model.list(ws, tags=[["stage", "prod"]])} == {"a:2", "b:1"}
    assert {m.id for m in Model.list(ws, tags=["team"])} == {"a:2"}
    assert {m.id for m in Model.list(ws, latest=True)} == {"a:2", "b:1"}
    with pytest.raises(UserErrorException, match="no version 7"):
        Model(ws, "a", version=7)
    with pytest.raises(UserErrorException, match="no model named 'nope'"):
        Model(ws, "nope")
    with pytest.raises(NotSupportedError, match="inference"):
        Model.deploy(ws, "svc", [Model(ws, "a")])


SCORE = """
    import os, sys
    from mlpipe_provider.sdk import Model, Run

    def init():
        global weights
        weights = open(Model.get_model_path("scorer")).read()

    def run(out):
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("score\\n")
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, "scored.txt"), "w").write(weights)

    init()
    run(sys.argv[1])
"""


def _scoring_pipeline(ws, project, script: str = SCORE):
    write_script(project / "score", "score.py", script)
    out = PipelineData("scored", datastore=ws.get_default_datastore())
    step = PythonScriptStep(
        name="score",
        script_name="score.py",
        source_directory=str(project / "score"),
        arguments=[out],
        outputs=[out],
    )
    return Pipeline(ws, [step])


def _calls(project: Path) -> list[str]:
    path = project / "calls.log"
    return path.read_text().split() if path.exists() else []


def _scored(ws, record: dict) -> str:
    location = record["outputs"]["scored"]
    store = open_datastore(ws.directory, ws.settings, location["datastore"])
    return (store.local_path(location["path"]) / "scored.txt").read_text()


def test_get_model_path_in_a_step_and_the_reuse_rule(ws, project, run_dag, monkeypatch):
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(project / "calls.log"))
    weights = _file(project / "w", "weights.txt", "v1-weights")
    Model.register(ws, str(weights), "scorer")

    _, records = run_dag(_scoring_pipeline(ws, project), dag_id="models_reuse")
    state, record = records["score"]
    assert state == "success" and _calls(project) == ["score"]
    assert [(m["name"], m["requested"], m["version"]) for m in record["models"]] == [
        ("scorer", None, 1)
    ]
    assert _scored(ws, record) == "v1-weights"

    # same model version: reused
    _, records = run_dag(_scoring_pipeline(ws, project), dag_id="models_reuse")
    assert records["score"][0] == "skipped" and _calls(project) == ["score"]

    # a new version of a model the step read as "latest": the step runs again and reads it
    weights.write_text("v2-weights")
    Model.register(ws, str(weights), "scorer")
    _, records = run_dag(_scoring_pipeline(ws, project), dag_id="models_reuse")
    state, record = records["score"]
    assert state == "success" and _calls(project) == ["score", "score"]
    assert record["models"][0]["version"] == 2
    assert _scored(ws, record) == "v2-weights"

    # and that result is reused next time
    _, records = run_dag(_scoring_pipeline(ws, project), dag_id="models_reuse")
    assert records["score"][0] == "skipped" and _calls(project) == ["score", "score"]


def test_a_pinned_version_keeps_being_reused(ws, project, run_dag, monkeypatch):
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(project / "calls.log"))
    weights = _file(project / "w", "weights.txt", "v1-weights")
    Model.register(ws, str(weights), "scorer")
    pinned = SCORE.replace('get_model_path("scorer")', 'get_model_path("scorer", version=1)')
    _, records = run_dag(_scoring_pipeline(ws, project, pinned), dag_id="models_pinned")
    assert records["score"][1]["models"][0]["requested"] == 1
    weights.write_text("v2-weights")
    Model.register(ws, str(weights), "scorer")
    _, records = run_dag(_scoring_pipeline(ws, project, pinned), dag_id="models_pinned")
    assert records["score"][0] == "skipped" and _calls(project) == ["score"]


REGISTER = """
    import os, sys
    from mlpipe_provider.sdk import Run
    run = Run.get_context()
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.txt", "w") as handle:
        handle.write("trained")
    model = run.register_model("trained", model_path="outputs/model.txt", tags={"by": "step"})
    run.log("registered_version", model.version)
"""


def test_run_register_model_inside_a_step(ws, project, run_dag):
    write_script(project / "train", "train.py", REGISTER)
    step = PythonScriptStep(
        name="train", script_name="train.py", source_directory=str(project / "train")
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="models_register")
    state, record = records["train"]
    assert state == "success", record
    assert record["metrics"]["registered_version"] == 1
    model = Model(ws, "trained")
    assert model.tags == {"by": "step"}
    assert model.run_id == record["step_run_id"]
    assert Path(Model.get_model_path("trained", _workspace=ws)).read_text() == "trained"


def test_records_are_json_on_disk(ws, project):
    path = _file(project, "m.txt", "x")
    Model.register(ws, str(path), "on-disk")
    stored = json.loads((ws.directory / "models" / "on-disk" / "1.json").read_text())
    assert stored["id"] == "on-disk:1" and stored["digest"].startswith("blake3:")


@pytest.mark.parametrize(
    "line",
    [
        "from azureml.core.model import Model\n",
        "from azureml.core import Model\n",
    ],
)
def test_migrate_maps_model(line):
    program = line + "print(Model.get_model_path, Model.register, Model.list)\n"
    after, findings = migrate_source(program)
    assert after.splitlines()[0] == "from mlpipe_provider.sdk import Model"
    assert findings == []


def test_azure_service_only_kinds_stay_clear_errors():
    from mlpipe_provider.sdk import AutoMLConfig, AutoMLStep, DatabricksStep

    for kind in (AutoMLStep, AutoMLConfig, DatabricksStep):
        with pytest.raises(NotSupportedError, match="instead|train with"):
            kind(name="x")


def test_registration_is_mirrored_to_mlflow_when_configured(ws, project, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    path = _file(project, "m.txt", "x")
    Model.register(ws, str(path), "mirrored", tags={"k": "v"}, description="d")
    path.write_text("y")
    second = Model.register(ws, str(path), "mirrored")
    versions = MlflowClient(tracking_uri=uri).search_model_versions("name='mirrored'")
    by_number = {int(v.version): v for v in versions}
    assert sorted(by_number) == [1, 2]
    assert by_number[1].tags["k"] == "v" and by_number[1].description == "d"
    assert by_number[2].tags["mlpipe.digest"] == second.digest
    assert by_number[2].source.startswith("file://")


def test_an_unreachable_mlflow_does_not_fail_registration(ws, project, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    path = _file(project, "m.txt", "x")
    assert Model.register(ws, str(path), "offline-mirror").version == 1
    assert "not mirrored to MLflow" in caplog.text


def test_stale_model_rule(ws, project):
    from mlpipe_provider import model_registry

    path = _file(project, "m.txt", "x")
    first = Model.register(ws, str(path), "rule")
    read_latest = [{"name": "rule", "requested": None, "version": 1, "digest": first.digest}]
    assert model_registry.stale_model(ws.directory, read_latest) is None
    assert model_registry.stale_model(ws.directory, None) is None
    Model.register(ws, str(path), "rule")  # same bytes, new version: latest moved on
    assert "newer version (2)" in model_registry.stale_model(ws.directory, read_latest)
    pinned = [{**read_latest[0], "requested": 1}]
    assert model_registry.stale_model(ws.directory, pinned) is None
    gone = [{"name": "other", "requested": None, "version": 1, "digest": first.digest}]
    assert "no longer registered" in model_registry.stale_model(ws.directory, gone)
    assert "malformed" in model_registry.stale_model(ws.directory, {"name": "rule"})
    tampered = [{**pinned[0], "digest": "blake3:00"}]
    assert "no longer holds" in model_registry.stale_model(ws.directory, tampered)
