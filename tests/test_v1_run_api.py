"""v1's run API on real embedded runs: what a v1 program calls on the runs it submitted.

One two-step pipeline (``prep`` writes an output that ``train`` reads) runs once for the whole
module; many assertions read that run. One pipeline whose second step raises shows that a
failure reaches the program (v1's ActivityFailedException with the step's name and error), and a
DAG that cannot even be imported shows a failure before any step starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.errors import (
    ActivityFailedException,
    ComputeTargetException,
    NotSupportedError,
    UserErrorException,
)
from mlpipe_provider.sdk import (
    ComputeTarget,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
    Run,
    RunDetails,
    StepRun,
    StepRunOutput,
    Workspace,
)

PREP = """
    import os, sys
    from mlpipe_provider.sdk import Run
    print("hello from prep")
    os.makedirs(sys.argv[1], exist_ok=True)
    with open(os.path.join(sys.argv[1], "rows.txt"), "w") as f:
        f.write("1,2,3")
    Run.get_context().log("rows", 3)
"""
TRAIN = """
    import os, sys
    print("train read", open(os.path.join(sys.argv[1], "rows.txt")).read())
"""
BAD = """
    import sys
    print("about to fail")
    raise ValueError("broken input 42")
"""


def _pipeline(ws: Workspace, folder: Path, second: str) -> Pipeline:
    prepared = PipelineData("prepared", datastore=ws.get_default_datastore())
    prep = PythonScriptStep(
        "prep.py",
        name="prep",
        source_directory=str(folder),
        arguments=[prepared],
        outputs=[prepared],
        compute_target="STANDARD_D2_V2",
    )
    train = PythonScriptStep(
        second,
        name="train",
        source_directory=str(folder),
        arguments=[prepared],
        inputs=[prepared],
        allow_reuse=False,
    )
    return Pipeline(ws, [prep, train])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(workspace, experiment, run, scripts folder) of one successful two-step run."""
    root = tmp_path_factory.mktemp("runapi")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the embedded workspace is made in the cwd
        yield _finished(root)


def _finished(root: Path):
    folder = root / "src"
    write_script(folder, "prep.py", PREP)
    write_script(folder, "train.py", TRAIN)
    write_script(folder, "bad.py", BAD)
    ws = Workspace.from_config(path=str(root))
    experiment = Experiment(ws, "runapi")
    run = experiment.submit(_pipeline(ws, folder, "train.py"))
    assert run.wait_for_completion(show_output=False) == "Finished"
    return ws, experiment, run, folder


def test_get_children_are_the_step_runs_and_filter_like_v1(finished):
    _, _, run, _ = finished
    children = run.get_children()
    assert not isinstance(children, list)  # v1 returns a generator
    steps = list(children)
    assert sorted(s.name for s in steps) == ["prep", "train"]
    assert all(isinstance(s, StepRun) for s in steps)
    assert [s.name for s in run.get_children(status="Finished")] == [s.name for s in steps]
    assert list(run.get_children(status="Failed")) == []
    assert len(list(run.get_children(properties={"azureml.nodeid": "prep"}))) == 1


def test_step_details_have_v1_keys(finished):
    _, _, run, _ = finished
    prep = run.find_step_run("prep")[0]
    details = prep.get_details()
    for key in (
        "runId",
        "target",
        "status",
        "startTimeUtc",
        "endTimeUtc",
        "properties",
        "inputDatasets",
        "outputDatasets",
        "logFiles",
    ):
        assert key in details, key
    assert details["runId"] == prep.id
    assert details["target"] == "STANDARD_D2_V2"
    assert run.find_step_run("train")[0].get_details()["target"] == "local"
    assert details["status"] == "Finished"
    assert details["startTimeUtc"] <= details["endTimeUtc"]
    assert details["properties"]["azureml.nodeid"] == "prep"
    assert "error" not in details
    json.dumps(details)  # plain data, as v1's dict


def test_job_log_and_details_with_logs_hold_the_steps_output(finished):
    _, _, run, _ = finished
    prep = run.find_step_run("prep")[0]
    train = run.find_step_run("train")[0]
    assert "hello from prep" in prep.get_job_log()
    assert "hello from prep" not in train.get_job_log()
    assert "train read 1,2,3" in train.get_job_log()
    logs = prep.get_details_with_logs()["logFiles"]
    assert any("hello from prep" in text for text in logs.values())
    whole = run.get_details_with_logs()["logFiles"]
    assert any("train read" in text for text in whole.values())


def test_outputs_are_step_run_outputs_with_a_port_data_reference(finished, tmp_path):
    _, _, run, _ = finished
    prep = run.find_step_run("prep")[0]
    output = prep.get_outputs()["prepared"]
    assert isinstance(output, StepRunOutput)
    assert isinstance(prep.get_output("prepared"), StepRunOutput)
    reference = output.get_port_data_reference()
    where = Path(reference.download(str(tmp_path)))
    assert (where / "rows.txt").read_text() == "1,2,3"
    assert run.get_pipeline_output("prepared").path_on_datastore == reference.path_on_datastore
    again = reference.as_mount()  # an input of a later pipeline, at the same path
    assert (again.datastore_name, again.path_on_datastore) == (
        reference.datastore_name,
        reference.path_on_datastore,
    )
    with pytest.raises(UserErrorException, match="no output 'nope'"):
        prep.get_output("nope")


def test_waits_and_metrics(finished):
    _, _, run, _ = finished
    prep = run.find_step_run("prep")[0]
    assert prep.wait_for_completion(show_output=False) == "Finished"
    assert run.wait_for_completion(show_output=False, timeout_seconds=5) == "Finished"
    assert run.get_metrics()["rows"] == 3
    details = run.get_details()
    assert details["status"] == "Finished" and details["runId"] == run.id
    assert "endTimeUtc" in details and details["airflowDagId"] == "runapi"


def test_publish_pipeline_from_the_run_and_endpoint_versions(finished):
    ws, _, run, _ = finished
    published = run.publish_pipeline(
        name="from_run", description="published from a run", version="1.0"
    )
    assert isinstance(published, PublishedPipeline)
    assert published.version == "1.0" and published.description == "published from a run"
    assert sorted(published.get_step_names()) == ["prep", "train"]
    again = PublishedPipeline.get(ws, published.id)
    assert again.dag_id == published.dag_id
    endpoint = PipelineEndpoint.publish(ws, "runapi_endpoint", "versions", published)
    versions = endpoint.list_versions()
    assert [(v.version, v.pipeline.id) for v in versions] == [("0", published.id)]
    assert [e.name for e in PipelineEndpoint.get_all(ws)] == ["runapi_endpoint"]
    with pytest.raises(NotSupportedError, match="DAG file"):
        published.save("pipeline.yaml")


def test_workspace_get_run_and_unsupported_methods(finished):
    ws, experiment, run, _ = finished
    assert ws.get_run(run.id).id == run.id
    assert Run.get(ws, run.id).id == run.id
    assert PipelineRun.get(ws, run.id).get_status() == "Finished"
    assert run.id in [r.id for r in Run.list(experiment)]
    with pytest.raises(UserErrorException):
        ws.get_run("../../etc")
    with pytest.raises(NotSupportedError, match="get_file_names"):
        run.get_file_names()
    with pytest.raises(NotSupportedError, match="register_model"):
        run.find_step_run("prep")[0].register_model("m")
    with pytest.raises(NotSupportedError, match="start_logging"):
        experiment.start_logging()
    run.tag("team", "data")
    assert ws.get_run(run.id).get_tags()["team"] == "data"


def test_run_details_prints_the_step_table_outside_jupyter(finished, capsys):
    _, _, run, _ = finished
    RunDetails(run).show()  # returns: outside Jupyter it prints the current state once
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"PipelineRun {run.id}: Finished"
    assert lines[1].split() == ["Step", "Status", "Reused", "from", "Duration"]
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert rows["prep"][1] == "Finished" and rows["train"][1] == "Finished"
    page = RunDetails(run).html()  # what Jupyter shows, refreshed until the run ends
    assert "<td>prep</td><td>Finished</td>" in page
    data = RunDetails(run).get_widget_data()
    assert data["status"] == "Finished"
    assert sorted(c["name"] for c in data["child_runs"]) == ["prep", "train"]


def test_compute_target_status_and_exception_message(ws):
    target = ComputeTarget(workspace=ws, name="STANDARD_NC6")
    status = target.get_status()
    assert status.provisioning_state == "Succeeded"
    assert status.current_node_count == status.target_node_count == 0
    assert status.node_state_counts.idle_node_count == 0
    serialized = status.serialize()
    assert serialized["vmSize"] == "STANDARD_NC6"
    assert serialized["scaleSettings"]["maxNodeCount"] >= 1
    assert set(serialized["nodeStateCounts"]) >= {"idleNodeCount", "runningNodeCount"}
    with pytest.raises(ComputeTargetException) as caught:
        ComputeTarget(workspace=ws, name="no-such-target")
    assert "no-such-target" in caught.value.message


def test_a_failed_step_reaches_the_program(finished, capsys):
    ws, experiment, _, folder = finished
    run = experiment.submit(_pipeline(ws, folder, "bad.py"))
    with pytest.raises(ActivityFailedException) as caught:
        run.wait_for_completion(show_output=True)
    message = caught.value.message
    assert "step 'train' failed" in message
    assert "ValueError: broken input 42" in message
    assert "runner.log" not in message
    printed = capsys.readouterr().out
    assert "PipelineRun Status: Failed" in printed and "broken input 42" in printed
    train = run.find_step_run("train")[0]
    assert train.get_status() == "Failed"
    assert "broken input 42" in train.get_details()["error"]["error"]["message"]
    assert "about to fail" in train.get_job_log()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert "broken input 42" in run.get_details()["error"]["error"]["message"]
    assert "broken input 42" in caught.value.run_details["error"]["error"]["message"]
    with pytest.raises(ActivityFailedException, match="broken input 42"):
        train.wait_for_completion(show_output=False)
    table = RunDetails(run)
    assert "train: ValueError: broken input 42" in table.text()


def test_a_failure_before_any_step_names_the_cause(finished):
    from mlpipe_provider.sdk.experiment import start_run

    ws, experiment, _, _ = finished
    dag_file = ws.dags_dir / "broken_import.py"
    dag_file.write_text(  # names airflow and DAG, so Airflow's DagBag really imports it
        "from airflow.sdk import DAG\nraise RuntimeError('cannot load: missing module foo')\n"
    )
    try:
        run = start_run(experiment, "broken_import", dag_file, None, {})
        with pytest.raises(ActivityFailedException) as caught:
            run.wait_for_completion(show_output=False, timeout_seconds=300)
    finally:
        dag_file.unlink()
    assert "DAG import failed" in caught.value.message
    assert "missing module foo" in caught.value.message
    assert [s.get_status() for s in run.get_steps()] == []  # none shows NotStarted


def test_a_bad_conf_fails_every_step_with_its_cause_before_any_starts(finished):
    """Airflow accepts a conf key the DAG lacks; the plan task refuses it before any step
    starts. The program sees why, on every step (none of them ran)."""
    from mlpipe_provider.sdk.experiment import start_run

    ws, experiment, run, _ = finished
    request = run._request
    bad = start_run(experiment, request["dag_id"], Path(request["dag_file"]), None, {"epochz": 3})
    with pytest.raises(ActivityFailedException) as caught:
        bad.wait_for_completion(show_output=False, timeout_seconds=300)
    assert "step 'prep' failed" in caught.value.message
    assert "unknown parameter(s) 'epochz'" in caught.value.message
    statuses = {s.name: s.get_status() for s in bad.get_steps()}
    assert statuses == {"prep": "Failed", "train": "Failed"}
    assert "unknown parameter(s) 'epochz'" in bad.find_step_run("train")[0].error


def test_step_entries_fold_the_plan_and_their_errors():
    """The folding rules on their own: a step's own error, a stop after another step failed, a
    step cut off upstream, a step the plan found reused, and a plan that refused the run."""
    from mlpipe_provider.embedded.status import merge_reuse_decisions

    reused = {"reused": True, "reused_run_id": "r1", "fingerprint": "f", "outputs": {}}
    tasks = {
        "mlpipe.plan": {"state": "success", "record": {"reused": {"e": reused}}},
        "a": {"state": "failed", "status": "Failed", "xcom": {"mlpipe_error": {"error": "boom"}}},
        "c": {
            "state": "failed",
            "status": "Failed",
            "xcom": {"mlpipe_error": {"error": "pipeline stops after 'a'", "kind": "stopped"}},
        },
        "d": {"state": "upstream_failed", "status": "NotStarted"},
        "e": {"state": "skipped", "status": "Skipped"},
    }
    steps = merge_reuse_decisions(tasks)
    assert sorted(steps) == ["a", "c", "d", "e"]
    assert (steps["a"]["status"], steps["a"]["error"]) == ("Failed", "boom")
    assert steps["c"]["status"] == "Canceled" and "stops after" in steps["c"]["error"]
    assert steps["d"]["status"] == "Canceled" and "depends on" in steps["d"]["error"]
    assert steps["e"]["status"] == "Finished" and steps["e"]["record"]["reused_run_id"] == "r1"

    refused = merge_reuse_decisions(
        {
            "mlpipe.plan": {"state": "failed", "xcom": {"mlpipe_error": {"error": "bad param"}}},
            "a": {"state": "upstream_failed", "status": "NotStarted"},
        }
    )
    assert (refused["a"]["status"], refused["a"]["error"]) == ("Failed", "bad param")
