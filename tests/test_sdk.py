"""The authoring SDK on its own: workspace discovery, datastores, compute, pipelines, metrics.

Nothing here runs Airflow (except one ``airflow providers list`` subprocess); these are fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from conftest import write_script

import mlpipe_provider
import mlpipe_provider.sdk as sdk
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.metrics import aggregate
from mlpipe_provider.sdk import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    CondaDependencies,
    DataReference,
    Datastore,
    Environment,
    NotSupportedError,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    Run,
    StepSequence,
    Workspace,
)

NOTICE = "no workspace config found"


# --- workspace discovery --------------------------------------------------------------------


def test_from_config_walks_up_from_a_subfolder_to_the_workspace(project, capsys):
    first = Workspace.create("team", subscription_id="sub-1", resource_group="rg-1")
    deep = project / "a" / "b" / "c"
    deep.mkdir(parents=True)
    os.chdir(deep)
    found = Workspace.from_config()
    assert found._dir == (project / ".mlpipe").resolve()
    assert found == first
    assert (found.name, found.subscription_id, found.resource_group) == ("team", "sub-1", "rg-1")
    assert not (deep / ".mlpipe").exists()
    assert NOTICE not in capsys.readouterr().err
    # an explicit path works the same, from anywhere
    os.chdir(project.parent)
    assert Workspace.from_config(path=str(deep))._dir == (project / ".mlpipe").resolve()
    # the workspace folder itself, or its config file, is that workspace (not a new one in it)
    for path in (project / ".mlpipe", project / ".mlpipe" / "config.json"):
        assert Workspace.from_config(path=str(path)) == first
    assert not (project / ".mlpipe" / ".mlpipe").exists()


@pytest.mark.parametrize("location", ["config.json", ".azureml/config.json"])
def test_v1_config_json_is_found_and_keeps_its_identity(project, capsys, location):
    identity = {
        "subscription_id": "00000000-1111-2222-3333-444444444444",
        "resource_group": "ml-rg",
        "workspace_name": "prod-ws",
    }
    path = project / location
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity))
    (project / "src").mkdir()
    os.chdir(project / "src")

    ws = Workspace.from_config()
    assert ws.name == "prod-ws"
    assert ws.subscription_id == identity["subscription_id"]
    assert ws.resource_group == "ml-rg"
    assert ws._dir == (project / ".mlpipe").resolve()
    assert ws.get_default_datastore().name == "workspaceblobstore"
    assert NOTICE not in capsys.readouterr().err
    # a second lookup (now through .mlpipe/config.json) sees the same identity
    again = Workspace.from_config()
    assert (again.name, again.subscription_id, again.resource_group) == (
        "prod-ws",
        identity["subscription_id"],
        "ml-rg",
    )


def test_a_json_file_without_workspace_name_is_not_a_workspace(project, capsys):
    (project / "config.json").write_text(json.dumps({"something": "else"}))
    ws = Workspace.from_config()
    assert ws.name == "local"
    assert NOTICE in capsys.readouterr().err


def test_no_config_gives_an_embedded_workspace_and_says_so_once(project, capsys):
    ws = Workspace.from_config()
    assert ws._dir == (project / ".mlpipe").resolve()
    assert (project / ".mlpipe" / "config.json").is_file()
    assert ws.name == "local"
    assert list(ws.datastores) == ["workspaceblobstore"]
    store = ws.get_default_datastore()
    assert isinstance(store, Datastore) and store.name == "workspaceblobstore"
    assert Workspace.from_config() == ws
    err = capsys.readouterr().err
    assert err.count(NOTICE) == 1, err
    assert str(project / ".mlpipe") in err


# --- datastores -------------------------------------------------------------------------------


def test_datastore_lookup(ws):
    default = ws.get_default_datastore()
    assert Datastore(ws, "workspaceblobstore") == default
    assert Datastore(ws, Datastore(ws, "workspaceblobstore")) == default  # v1 programs do this
    assert Datastore.get(ws, "workspaceblobstore") == default
    assert Datastore(ws).name == "workspaceblobstore"
    with pytest.raises(DatastoreError, match=r"unknown datastore 'nope'.*workspaceblobstore"):
        Datastore(ws, "nope")
    with pytest.raises(sdk.UserErrorException, match="unknown datastore 'nope'"):
        ws.set_default_datastore("nope")


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_datastore_upload_overwrite_upload_files_and_download(ws, project):
    store = ws.get_default_datastore()
    root = ws._dir / "datastores" / "workspaceblobstore"
    src = project / "local"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a1")
    (src / "sub" / "b.txt").write_text("b1")

    ref = store.upload(str(src), target_path="data/v1", overwrite=False, show_progress=False)
    assert isinstance(ref, DataReference) and ref.path_on_datastore == "data/v1"
    assert _tree(root / "data" / "v1") == {"a.txt": "a1", "sub/b.txt": "b1"}

    (src / "a.txt").write_text("a2")
    (src / "c.txt").write_text("c2")
    store.upload(str(src), target_path="data/v1", overwrite=False, show_progress=False)
    assert _tree(root / "data" / "v1") == {"a.txt": "a1", "sub/b.txt": "b1", "c.txt": "c2"}
    store.upload(str(src), target_path="data/v1", overwrite=True, show_progress=False)
    assert _tree(root / "data" / "v1") == {"a.txt": "a2", "sub/b.txt": "b1", "c.txt": "c2"}

    store.upload_files(
        [str(src / "a.txt"), str(src / "sub" / "b.txt")],
        relative_root=str(src),
        target_path="files",
        show_progress=False,
    )
    assert _tree(root / "files") == {"a.txt": "a2", "sub/b.txt": "b1"}
    store.upload_files([str(src / "c.txt")], target_path="flat", show_progress=False)
    assert _tree(root / "flat") == {"c.txt": "c2"}
    (src / "c.txt").write_text("c3")
    store.upload_files([str(src / "c.txt")], target_path="flat", show_progress=False)
    assert _tree(root / "flat") == {"c.txt": "c2"}
    store.upload_files(
        [str(src / "c.txt")], target_path="flat", overwrite=True, show_progress=False
    )
    assert _tree(root / "flat") == {"c.txt": "c3"}

    dest = project / "downloaded"
    count = store.download(str(dest), prefix="data/v1", show_progress=False)
    assert count == 3
    assert _tree(dest) == {"data/v1/a.txt": "a2", "data/v1/sub/b.txt": "b1", "data/v1/c.txt": "c2"}
    assert store.download(str(dest), prefix="data/v1", show_progress=False) == 0  # kept
    one = project / "one"
    assert store.download(str(one), prefix="data/v1/sub/b.txt", show_progress=False) == 1
    assert _tree(one) == {"data/v1/sub/b.txt": "b1"}  # full name, as v1 did
    assert store.download(str(project / "none"), prefix="missing", show_progress=False) == 0


def test_datastore_paths_cannot_leave_the_datastore(ws, project):
    store = ws.get_default_datastore()
    (project / "local").mkdir()
    (project / "local" / "x.txt").write_text("x")
    for bad in ("../escape", "/etc", "a/../../b"):
        with pytest.raises(DatastoreError):
            store.upload(str(project / "local"), target_path=bad, show_progress=False)
    with pytest.raises(DatastoreError):
        store.download(str(project / "out"), prefix="../..", show_progress=False)


# --- compute targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vm_size", "gpus"),
    [
        ("STANDARD_D2_V2", 0),
        ("STANDARD_NC6", 1),
        ("STANDARD_NC24", 4),
        ("STANDARD_ND40RS_V2", 8),
        ("Standard_NC6", 1),
        ("standard_nc24", 4),
    ],
)
def test_vm_size_table_gives_gpu_counts(ws, vm_size, gpus):
    target = ws.compute_targets[vm_size]  # a VM size name works without registering anything
    assert target.gpu_count == gpus
    assert target.vm_size == vm_size.upper()
    assert ComputeTarget(workspace=ws, name=vm_size).gpu_count == gpus


def test_unknown_compute_target_is_refused(ws):
    with pytest.raises(ComputeTargetException, match="'nope'"):
        ComputeTarget(workspace=ws, name="nope")
    with pytest.raises(KeyError):
        ws.compute_targets["nope"]
    assert "nope" not in ws.compute_targets


def test_created_compute_target_is_registered_in_the_workspace(ws, capsys):
    config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_NC24", min_nodes=0, max_nodes=2
    )
    target = ComputeTarget.create(ws, "gpu", config)
    target.wait_for_completion(show_output=True)
    assert "gpu" in capsys.readouterr().out
    assert isinstance(target, AmlCompute)
    assert target.gpu_count == 4

    fresh = Workspace.from_config()  # a new object reads the registration from disk
    assert fresh is not ws
    assert "gpu" in fresh.compute_targets
    again = ComputeTarget(workspace=fresh, name="gpu")
    assert again.vm_size == "STANDARD_NC24"
    assert again.gpu_count == 4
    assert again.scale_settings == {"minimum_node_count": 0, "maximum_node_count": 2}
    assert [t.name for t in ComputeTarget.list(fresh)] == ["gpu"]


@pytest.mark.parametrize("name", ["1gpu", "g", "has space", "x" * 33, "bad/name", "", None])
def test_bad_compute_target_names_are_refused(ws, name):
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6")
    with pytest.raises(ComputeTargetException):
        ComputeTarget.create(ws, name, config)
    assert ws._config.compute_targets == {}


def test_unknown_vm_size_is_refused(ws):
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_MADE_UP")
    with pytest.raises(ComputeTargetException, match="STANDARD_MADE_UP"):
        config.validate_configuration()
    with pytest.raises(ComputeTargetException, match="STANDARD_MADE_UP"):
        ComputeTarget.create(ws, "cpu", config)
    assert ws._config.compute_targets == {}


# --- pipelines --------------------------------------------------------------------------------


def _script_steps(project: Path, *names: str) -> dict[str, PythonScriptStep]:
    steps = {}
    for name in names:
        write_script(project / "src", f"{name}.py", "print('hi')\n")
        steps[name] = PythonScriptStep(f"{name}.py", name=name, source_directory="src")
    return steps


def test_pipeline_graph_validate_and_closure(ws, project):
    write_script(project / "src", "step.py", "print('hi')\n")
    (ws._dir / "datastores" / "workspaceblobstore" / "raw").mkdir(parents=True)
    store = ws.get_default_datastore()
    raw = DataReference(store, data_reference_name="raw", path_on_datastore="raw")
    a_out, b_out = PipelineData("a_out", datastore=store), PipelineData("b_out", datastore=store)
    a = PythonScriptStep(
        "step.py",
        name="a",
        arguments=[raw, a_out],
        inputs=[raw],
        outputs=[a_out],
        source_directory="src",
    )
    b = PythonScriptStep(
        "step.py",
        name="b",
        arguments=[a_out, b_out],
        inputs=[a_out],
        outputs=[b_out],
        source_directory="src",
    )
    c = PythonScriptStep(
        "step.py", name="c", arguments=[b_out], inputs=[b_out], source_directory="src"
    )
    side = PythonScriptStep("step.py", name="side", source_directory="src")

    pipeline = Pipeline(ws, [c, side])  # a and b are pulled in: they produce c's inputs
    assert {s.name for s in pipeline.steps} == {"a", "b", "c", "side"}
    assert a in pipeline.steps and b in pipeline.steps
    graph = pipeline.graph
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == {"a", "b", "c", "side"}
    assert set(graph.edges) == {("a", "b"), ("b", "c")}
    assert pipeline.validate() == []

    only_listed = Pipeline(ws, [c], resolve_closure=False)
    assert [s.name for s in only_listed.steps] == ["c"]
    problems = only_listed.validate()
    assert problems and all("'c'" in p for p in problems)


def test_step_sequence_orders_stages_and_nested_lists_run_in_parallel(ws, project):
    s = _script_steps(project, "first", "left", "right", "last")
    pipeline = Pipeline(ws, StepSequence([s["first"], [s["left"], s["right"]], s["last"]]))
    assert pipeline.validate() == []
    assert set(pipeline.graph.edges) == {
        ("first", "left"),
        ("first", "right"),
        ("left", "last"),
        ("right", "last"),
    }


def test_run_after_adds_an_edge_and_pulls_the_step_in(ws, project):
    s = _script_steps(project, "setup", "train")
    s["train"].run_after(s["setup"])
    pipeline = Pipeline(ws, [s["train"]])
    assert {step.name for step in pipeline.steps} == {"setup", "train"}
    assert set(pipeline.graph.edges) == {("setup", "train")}
    with pytest.raises(sdk.UserErrorException):
        s["train"].run_after("setup")


# --- runs and metrics -----------------------------------------------------------------------


def test_run_get_context_outside_a_pipeline_is_offline(capsys, monkeypatch):
    monkeypatch.delenv("MLPIPE_METRICS_FILE", raising=False)
    run = Run.get_context()
    assert run.id.startswith("OfflineRun_")
    run.log("accuracy", 0.9)
    assert "Attempted to log scalar metric accuracy" in capsys.readouterr().out
    assert run.get_metrics() == {"accuracy": 0.9}
    with pytest.raises(sdk.UserErrorException):
        Run.get_context(allow_offline=False)


def test_metrics_aggregate_in_v1_shapes(capsys):
    run = Run.get_context()
    run.log("loss", 1.0)
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.log("accuracy", 0.9)
    run.log_list("curve", [1, 2, 3])
    run.log_row("per_epoch", epoch=1, acc=0.5)
    run.log_row("per_epoch", epoch=2, acc=0.7)
    run.log_table("table", {"x": [1, 2], "y": [3, 4]})
    run.log_image("plot", path="plot.png")
    expected = {
        "loss": [1.0, 0.5, 0.25],
        "accuracy": 0.9,
        "curve": [1, 2, 3],
        "per_epoch": {"epoch": [1, 2], "acc": [0.5, 0.7]},
        "table": {"x": [1, 2], "y": [3, 4]},
        "plot": "plot.png",
    }
    assert aggregate(run._offline_records) == expected
    assert run.get_metrics() == expected
    assert run.get_metrics("loss") == {"loss": [1.0, 0.5, 0.25]}
    assert aggregate(
        [
            {"kind": "scalar", "name": "n", "value": 1},
            {"kind": "list", "name": "l", "value": [4, 5]},
            {"kind": "table", "name": "t", "value": {"a": 1}},
            {"kind": "scalar", "value": 3},  # no name: ignored
        ]
    ) == {"n": 1, "l": [4, 5], "t": {"a": [1]}}


# --- environments -----------------------------------------------------------------------------


def test_conda_dependencies_create():
    deps = CondaDependencies.create(
        pip_packages=["scikit-learn==1.5.0", "pandas"], conda_packages=["numpy", "numpy"]
    )
    assert deps.pip_packages == ["scikit-learn==1.5.0", "pandas"]
    assert deps.conda_packages == ["numpy"]
    text = deps.serialize_to_string()
    assert "    - scikit-learn==1.5.0" in text and "  - numpy" in text


def test_environment_from_pip_requirements(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# pinned for the model\n"
        "numpy==1.26.4\n"
        "\n"
        "pandas>=2  # data frames\n"
        "torch @ https://example.com/torch-2.3-cp311.whl#sha256=abc123\n"
    )
    env = Environment.from_pip_requirements("train-env", str(requirements))
    assert env.name == "train-env"
    assert env.python.conda_dependencies.pip_packages == [
        "numpy==1.26.4",
        "pandas>=2",
        "torch @ https://example.com/torch-2.3-cp311.whl#sha256=abc123",
    ]
    spec = env.to_spec()
    assert spec["dependencies"]["pip_packages"] == env.python.conda_dependencies.pip_packages


# --- unsupported names and the provider -------------------------------------------------------


@pytest.mark.parametrize("name", sdk.UNSUPPORTED_NAMES)
def test_unsupported_names_import_but_refuse_to_construct(name):
    cls = getattr(sdk, name)
    with pytest.raises(NotSupportedError, match=name):
        cls()
    with pytest.raises(NotSupportedError, match=name):
        cls("some", argument=1)


def test_provider_info_and_airflow_providers_list(tmp_path):
    info = mlpipe_provider.get_provider_info()
    assert info["package-name"] == "mlpipe"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run(
        [str(airflow), "providers", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mlpipe" in result.stdout


def test_submit_lowers_a_pipeline_once(ws, project, monkeypatch):
    """The DAG file, the parameter check and the graph kept with the run all come from one
    lowering (it used to run twice per submit). A bad parameter stops the submit after the DAG
    file is written and before anything starts, so no run is left behind."""
    import mlpipe_provider.client.submit as client_submit
    from mlpipe_provider.sdk import Experiment

    calls = []
    real_lower = client_submit.lower

    def counting_lower(pipeline):
        calls.append(pipeline)
        return real_lower(pipeline)

    monkeypatch.setattr(client_submit, "lower", counting_lower)
    steps = _script_steps(project, "only")
    pipeline = Pipeline(ws, [steps["only"]])
    with pytest.raises(sdk.UserErrorException, match="unknown parameter 'nope'"):
        Experiment(ws, "lower_once").submit(pipeline, pipeline_parameters={"nope": 1})
    assert calls == [pipeline]
    assert (ws.dags_dir / "lower_once.py").is_file()
    assert not ws.runs_dir.exists() or not any(ws.runs_dir.iterdir())
