"""Published pipelines, pipeline endpoints and DataPath parameters, on the embedded Airflow.

The registry tests run nothing; the run tests start real background runs (one process each, as
``Experiment.submit`` does) in one workspace per module, in order, because reuse depends on
what earlier runs stored.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import write_script

from compiler.lower import lower
from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import (
    DataPath,
    DataPathComputeBinding,
    Experiment,
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    Workspace,
)

READER = """
    import os, sys
    data, n, calls = sys.argv[1], sys.argv[2], os.environ["MLPIPE_TEST_CALLS"]
    path = data if os.path.isfile(data) else os.path.join(data, "data.txt")
    content = open(path).read().strip()
    with open(calls, "a") as log:
        log.write(f"{n}:{content}\\n")
"""


def reader_pipeline(ws, folder, default_path: str = "raw", n_default: int = 1) -> Pipeline:
    write_script(folder / "src", "reader.py", READER)
    data = PipelineParameter(
        name="input_data", default_value=DataPath(ws.get_default_datastore(), default_path)
    )
    step_input = (data, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "reader.py",
        arguments=[step_input, PipelineParameter("n", n_default)],
        inputs=[step_input],
        source_directory=str(folder / "src"),
    )
    return Pipeline(ws, [step], description="reads one DataPath")


def put(ws, path: str, text: str) -> None:
    target = ws._dir / "datastores" / "workspaceblobstore" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


# --- registry, no runs ----------------------------------------------------------------------------


def test_datapath_parameter_lowers_to_a_data_path_input_and_a_param_schema(ws, project):
    lowered = lower(reader_pipeline(ws, project))
    assert lowered.problems == []
    assert lowered.parameters["input_data"] == {
        "default": {"datastore": "workspaceblobstore", "path_on_datastore": "raw"},
        "type": ["object", "string"],
    }
    (spec,) = lowered.steps.values()
    assert spec["arguments"] == [{"input": "input_data"}, {"param": "n"}]
    assert spec["inputs"] == [
        {
            "name": "input_data",
            "kind": "data_path",
            "parameter": "input_data",
            "datastore": "workspaceblobstore",
            "mode": "mount",
            "path_on_compute": None,
        }
    ]


def test_bad_datapath_defaults_are_compile_errors(ws, project):
    write_script(project / "src", "reader.py", READER)
    for default, expected in (
        (DataPath("nosuchstore", "raw"), "unknown datastore 'nosuchstore'"),
        (DataPath(ws.get_default_datastore(), "../outside"), "contains '..'"),
    ):
        param = PipelineParameter("input_data", default)
        step = PythonScriptStep(
            "reader.py",
            arguments=[(param, DataPathComputeBinding())],
            source_directory=str(project / "src"),
        )
        problems = Pipeline(ws, [step]).validate()
        assert any(expected in p and "arguments[0]" in p for p in problems), problems


def test_publish_get_list_disable_and_versions_as_dags(ws, project):
    pipeline = reader_pipeline(ws, project)
    first = pipeline.publish(name="reader", description="v1 reader", version="1.0")
    assert (first.name, first.description, first.version, first.status) == (
        "reader",
        "v1 reader",
        "1.0",
        "Active",
    )
    assert first.dag_id == f"reader__{first.graph_id}"
    assert (ws.dags_dir / f"{first.dag_id}.py").is_file()
    assert first.endpoint == f"embedded:{ws.dags_dir / (first.dag_id + '.py')}"
    assert first.published_by and first.total_run_steps == 1
    assert first.get_step_names() == ["reader.py"]

    # same content again: a new published pipeline on the same (immutable) DAG
    again = pipeline.publish(name="reader")
    assert again.id != first.id and again.dag_id == first.dag_id
    # other content: another DAG, the first one's file untouched
    before = (ws.dags_dir / f"{first.dag_id}.py").read_text()
    changed = reader_pipeline(ws, project, n_default=5).publish(name="reader")
    assert changed.dag_id != first.dag_id
    assert (ws.dags_dir / f"{first.dag_id}.py").read_text() == before
    assert "Param(5, type='integer'" in (ws.dags_dir / f"{changed.dag_id}.py").read_text()

    other = Workspace.from_config()  # another handle (or process) reads the same registry
    assert PublishedPipeline.get(other, first.id).dag_id == first.dag_id
    assert [p.id for p in PublishedPipeline.list(other)] == [changed.id, again.id, first.id]

    first.disable()
    assert PublishedPipeline.get(ws, first.id).status == "Disabled"
    assert first.id not in [p.id for p in PublishedPipeline.list(ws)]
    assert first.id in [p.id for p in PublishedPipeline.list(ws, active_only=False)]
    with pytest.raises(UserErrorException, match="is Disabled; enable"):
        first.submit(ws, "reader-runs")
    with pytest.raises(UserErrorException, match="is Disabled"):
        Experiment(ws, "reader-runs").submit(first)
    assert list(Experiment(ws, "reader-runs").get_runs()) == []
    first.enable()
    assert PublishedPipeline.get(ws, first.id).status == "Active"

    with pytest.raises(UserErrorException, match="unknown parameter 'm'"):
        first.submit(ws, "reader-runs", pipeline_parameters={"m": 1})
    with pytest.raises(UserErrorException, match="unknown datastore 'elsewhere'"):
        first.submit(ws, "reader-runs", {"input_data": {"datastore": "elsewhere", "path": "x"}})
    with pytest.raises(UserErrorException, match="contains '..'"):
        first.submit(ws, "reader-runs", {"input_data": "../x"})
    with pytest.raises(UserErrorException, match="no published pipeline"):
        PublishedPipeline.get(ws, "00000000-0000-0000-0000-000000000000")


def test_publish_refuses_an_invalid_pipeline(ws, project):
    step = PythonScriptStep("missing.py", source_directory=str(project))
    with pytest.raises(PipelineValidationError, match="missing.py"):
        Pipeline(ws, [step]).publish(name="broken")
    assert PublishedPipeline.list(ws) == []


def test_endpoint_urls_are_the_v1_rest_routes_when_a_server_is_configured(ws, project):
    from mlpipe_provider.config import AirflowServerConfig

    published = reader_pipeline(ws, project).publish(name="reader")
    config = ws._config
    config.airflow = AirflowServerConfig(url="http://airflow.example:8080/")
    ws._save(config)
    assert published.endpoint == (
        "http://airflow.example:8080/mlpipe/api/v1.0/PipelineRuns/PipelineSubmit/" + published.id
    )
    endpoint = PipelineEndpoint.publish(ws, "reader-endpoint", "", published)
    assert endpoint.endpoint == (
        "http://airflow.example:8080/mlpipe/api/v1.0/PipelineRuns/PipelineEndpointSubmit/Id/"
        + endpoint.id
    )


def test_endpoint_versions_and_default(ws, project):
    v0 = reader_pipeline(ws, project).publish(name="reader")
    v1 = reader_pipeline(ws, project, n_default=2).publish(name="reader")
    endpoint = PipelineEndpoint.publish(ws, "reader-endpoint", "reads data", v0)
    assert (endpoint.name, endpoint.description, endpoint.status) == (
        "reader-endpoint",
        "reads data",
        "Active",
    )
    assert endpoint.get_default_version() == "0"
    with pytest.raises(UserErrorException, match="already exists"):
        PipelineEndpoint.publish(ws, "reader-endpoint", "", v1)

    endpoint.add(v1)
    assert [(v.version, v.pipeline_id) for v in endpoint.list_versions()] == [
        ("0", v0.id),
        ("1", v1.id),
    ]
    assert endpoint.get_default_version() == "0"
    assert endpoint.get_pipeline().id == v0.id and endpoint.get_pipeline("1").id == v1.id
    endpoint.set_default(v1)
    assert PipelineEndpoint.get(ws, name="reader-endpoint").get_default_version() == "1"
    endpoint.set_default_version(0)
    assert PipelineEndpoint.get(ws, id=endpoint.id).get_pipeline().id == v0.id

    # a Pipeline is published on the way in; add_default makes it the default at once
    endpoint.add_default(reader_pipeline(ws, project, n_default=3))
    assert endpoint.get_default_version() == "2"
    assert (
        "Param(3, type='integer'"
        in (ws.dags_dir / f"{endpoint.get_pipeline().dag_id}.py").read_text()
    )
    assert {p.id for p in endpoint.list_pipelines()} >= {v0.id, v1.id}

    with pytest.raises(UserErrorException, match="no version '7'"):
        endpoint.set_default_version("7")
    stranger = reader_pipeline(ws, project, n_default=9).publish(name="stranger")
    with pytest.raises(UserErrorException, match="not a version"):
        endpoint.set_default(stranger)

    endpoint.disable()
    assert PipelineEndpoint.list(ws) == []
    assert [e.id for e in PipelineEndpoint.list(ws, active_only=False)] == [endpoint.id]
    with pytest.raises(UserErrorException, match="is Disabled"):
        endpoint.submit("reader-runs")
    endpoint.enable()
    assert [e.name for e in PipelineEndpoint.list(ws)] == ["reader-endpoint"]


# --- runs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs_ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("publish-runs")
    ws = Workspace(_workspace_dir=folder / ".mlpipe")
    yield ws, folder
    shutil.rmtree(folder, ignore_errors=True)


def calls_of(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_published_runs_take_parameters_and_datapaths_reuse_by_content(runs_ws, monkeypatch):
    ws, folder = runs_ws
    calls = folder / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    put(ws, "raw/data.txt", "alpha")
    put(ws, "other/data.txt", "beta")
    published = reader_pipeline(ws, folder).publish(name="reader")
    experiment = Experiment(ws, "reader-runs")

    first = published.submit(ws, "reader-runs", pipeline_parameters={"n": 2})
    assert first.wait_for_completion(show_output=False) == "Finished"
    assert calls_of(calls) == ["2:alpha"]
    assert first.get_details()["airflowDagId"] == published.dag_id
    assert first.get_details()["parameters"] == {"n": 2}
    assert first.get_tags()["azureml.pipelineid"] == published.id

    # Experiment.submit(published_pipeline): same parameters and data: the step is reused
    second = experiment.submit(published, pipeline_parameters={"n": 2})
    assert second.wait_for_completion(show_output=False) == "Finished"
    assert calls_of(calls) == ["2:alpha"]
    assert second.find_step_run("reader.py")[0].reused

    # the same path with other content: reuse hashes the data, so the step runs again
    put(ws, "raw/data.txt", "gamma")
    third = experiment.submit(published, pipeline_parameters={"n": 2})
    assert third.wait_for_completion(show_output=False) == "Finished"
    assert calls_of(calls) == ["2:alpha", "2:gamma"]
    assert not third.find_step_run("reader.py")[0].reused

    # through an endpoint, with another DataPath as the value
    endpoint = PipelineEndpoint.publish(ws, "reader-endpoint", "", published)
    ds = ws.get_default_datastore()
    fourth = endpoint.submit(
        "reader-runs", pipeline_parameters={"input_data": DataPath(ds, "other")}
    )
    assert fourth.wait_for_completion(show_output=False) == "Finished"
    assert calls_of(calls) == ["2:alpha", "2:gamma", "1:beta"]
    assert fourth.get_details()["parameters"] == {
        "input_data": {"datastore": "workspaceblobstore", "path_on_datastore": "other"}
    }
    assert fourth.get_tags()["azureml.pipelineendpointid"] == endpoint.id

    # a different path holding identical content is the same input: reused
    put(ws, "copy/data.txt", "beta")
    fifth = endpoint.submit("reader-runs", pipeline_parameters={"input_data": "copy"})
    assert fifth.wait_for_completion(show_output=False) == "Finished"
    assert calls_of(calls) == ["2:alpha", "2:gamma", "1:beta"]
    assert fifth.find_step_run("reader.py")[0].reused
    assert json.loads(json.dumps(fifth.get_details()["parameters"]))["input_data"] == {
        "datastore": "workspaceblobstore",
        "path_on_datastore": "copy",
    }
    assert len(list(experiment.get_runs())) == 5
