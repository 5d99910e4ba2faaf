"""Pipelines on a real Airflow server: ``mlpipe server up``, ``deploy``, ``submit``, ``runs``,
``Experiment.submit`` through the REST API, and parameter checks at every entrance.

One server for the whole module, started with ``mlpipe server up`` in a temporary workspace
(about 30-40 s) and stopped with ``mlpipe server down`` by the last test (and the fixture).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.airflow_api import AirflowApiError, AirflowClient
from mlpipe_provider.cli.deploy_cmd import parse_params
from mlpipe_provider.errors import UserErrorException

MAKE = """
    import argparse, json, os
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int); p.add_argument("--label"); p.add_argument("--out")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    json.dump({"numbers": list(range(a.n)), "label": a.label},
              open(os.path.join(a.out, "numbers.json"), "w"))
"""
TOTAL = """
    import argparse, json, os
    from mlpipe_provider.sdk import Run
    p = argparse.ArgumentParser()
    p.add_argument("--data"); p.add_argument("--scale", type=float); p.add_argument("--out")
    a = p.parse_args()
    data = json.load(open(os.path.join(a.data, "numbers.json")))
    total = sum(data["numbers"]) * a.scale
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "total.txt"), "w").write(f"{data['label']}={total}")
    Run.get_context().log("total", total)
    Run.get_context().log("count", len(data["numbers"]))
"""
PIPELINE = """
    from mlpipe_provider.sdk import (
        Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace,
    )


    def build(ws):
        store = ws.get_default_datastore()
        numbers = PipelineData("numbers", datastore=store)
        summary = PipelineData("summary", datastore=store)
        make = PythonScriptStep(
            "make.py", name="make", source_directory="src", outputs=[numbers],
            arguments=["--n", PipelineParameter("n", 3), "--label",
                       PipelineParameter("label", "sum"), "--out", numbers],
        )
        total = PythonScriptStep(
            "total.py", name="total", source_directory="src", inputs=[numbers],
            outputs=[summary],
            arguments=["--data", numbers, "--scale", PipelineParameter("scale", 1.5),
                       "--out", summary],
        )
        return Pipeline(ws, [total])


    numbers_pipeline = build(Workspace.from_config())
"""
DAG_ID = "numbers_pipeline"


@dataclass
class Server:
    project: Path
    workspace: Path
    url: str
    up_output: str

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "mlpipe_provider.cli.main", *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    @property
    def client(self) -> AirflowClient:
        return AirflowClient.from_workspace(self.workspace)

    def password(self) -> str:
        return json.loads((self.workspace / "server" / PASSWORDS).read_text())["admin"]


PASSWORDS = "simple_auth_manager_passwords.json.generated"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from mlpipe_provider.sdk import Workspace

    project = tmp_path_factory.mktemp("server-project")
    write_script(project / "src", "make.py", MAKE)
    write_script(project / "src", "total.py", TOTAL)
    write_script(project, "pipeline.py", PIPELINE)
    workspace = project / ".mlpipe"
    Workspace(_workspace_dir=workspace)  # an embedded workspace's config, as a newcomer has
    port = _free_port()
    srv = Server(project, workspace, f"http://127.0.0.1:{port}", "")
    up = srv.cli("server", "up", "--workspace", str(workspace), "--port", str(port))
    srv.up_output = up.stdout + up.stderr
    assert up.returncode == 0, srv.up_output
    yield srv
    srv.cli("server", "down", "--workspace", str(workspace))


def _runs(server: Server, experiment: str) -> list:
    from mlpipe_provider.sdk import Experiment, Workspace

    return list(Experiment(Workspace(_workspace_dir=server.workspace), experiment).get_runs())


def test_server_up_records_the_server_but_never_the_password(server):
    assert server.url in server.up_output and "Log in as 'admin'" in server.up_output
    config = json.loads((server.workspace / "config.json").read_text())
    assert config["airflow"] == {
        "url": server.url,
        "username": "admin",
        "password_file": f"server/{PASSWORDS}",
    }
    assert server.password() not in (server.workspace / "config.json").read_text()
    assert stat.S_IMODE((server.workspace / "server" / PASSWORDS).stat().st_mode) == 0o600
    assert stat.S_IMODE((server.workspace / "server").stat().st_mode) == 0o700
    status = server.cli("server", "status", "--workspace", str(server.workspace))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "scheduler: healthy" in status.stdout and "login as 'admin': ok" in status.stdout
    again = server.cli("server", "up", "--workspace", str(server.workspace), check=True)
    assert "already running" in again.stdout


def test_deploy_then_submit_with_params_then_submit_again_and_reuse(server):
    deployed = server.cli("deploy", "pipeline.py", check=True)
    assert f"DAG {DAG_ID!r}" in deployed.stdout
    assert server.client.dag(DAG_ID)["is_paused"] is False

    params = ["--param", "n=5", "--param", "scale=2", "--param", "label=five"]
    first = server.cli("submit", DAG_ID, *params, check=True)
    assert "make" in first.stdout and "executed" in first.stdout, first.stdout
    assert "PipelineRun Status: Finished" in first.stdout
    (run,) = _runs(server, DAG_ID)
    assert run.get_status() == "Finished"
    assert run.get_details()["parameters"] == {"n": 5, "scale": 2, "label": "five"}
    (total,) = run.find_step_run("total")
    assert total.get_metrics() == {"total": 20.0, "count": 5}
    assert not total.reused
    local = Path(total.get_output_data("summary").download(str(server.project / "dl")))
    assert (local / "total.txt").read_text() == "five=20.0"

    second = server.cli("submit", DAG_ID, *params, check=True)
    assert second.stdout.count("reused run") == 2, second.stdout
    newest, oldest = _runs(server, DAG_ID)
    assert oldest.id == run.id
    for name in ("make", "total"):
        (before,) = oldest.find_step_run(name)
        (after,) = newest.find_step_run(name)
        assert after.reused and after.get_status() == "Finished"
        assert after.get_properties()["azureml.reusedrunid"] == before.id
        assert after.get_metrics() == before.get_metrics()
    states = {
        ti["task_id"]: ti["state"]
        for ti in server.client.task_instances(DAG_ID, newest._request["airflow_run_id"])
    }
    # one task per step, and the plan decided both: the run executed one task
    assert states == {"mlpipe.plan": "success", "make": "skipped", "total": "skipped"}
    # the scheduler's listener notes each reused step with the run it reused (UI: task note)
    import time

    deadline = time.monotonic() + 30
    while True:
        notes = {
            ti["task_id"]: ti.get("note")
            for ti in server.client.task_instances(DAG_ID, newest._request["airflow_run_id"])
        }
        if (notes["make"] and notes["total"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    (before_make,) = oldest.find_step_run("make")
    assert f"reused step run {before_make.id}" in (notes["make"] or ""), notes

    listed = server.cli("runs", DAG_ID, check=True).stdout
    assert newest._request["airflow_run_id"] in listed and "success" in listed


def test_submit_refuses_unknown_and_mistyped_params_before_triggering(server):
    before = len(server.client.dag_runs(DAG_ID, limit=100))
    unknown = server.cli("submit", DAG_ID, "--param", "epochs=3")
    assert unknown.returncode == 1
    assert "'epochs'" in unknown.stderr and "its parameters: label" in unknown.stderr
    mistyped = server.cli("submit", DAG_ID, "--param", "n=three")
    assert mistyped.returncode == 1
    assert "parameter 'n' expects integer, got 'three'" in mistyped.stderr
    not_a_number = server.cli("submit", DAG_ID, "--param", "scale=big")
    assert not_a_number.returncode == 1 and "'scale'" in not_a_number.stderr
    from_file = server.cli("submit", "pipeline.py", "--param", "label=7", "--param", "n=x")
    assert from_file.returncode == 1 and "parameter 'n' expects integer" in from_file.stderr
    assert len(server.client.dag_runs(DAG_ID, limit=100)) == before


def test_param_values_are_parsed_by_their_schema_type():
    params = {
        "n": {"schema": {"type": "integer"}},
        "rate": {"schema": {"type": "number"}},
        "flag": {"schema": {"type": "boolean"}},
        "name": {"schema": {"type": "string"}},
        "where": {"schema": {"type": ["object", "string"]}},
    }
    raw = ["n=3", "rate=0.5", "flag=true", "name=007", "where=data/x.csv"]
    assert parse_params(raw, params, "d") == {
        "n": 3,
        "rate": 0.5,
        "flag": True,
        "name": "007",
        "where": "data/x.csv",
    }
    assert parse_params(
        ["rate=2", 'where={"datastore": "s", "path_on_datastore": "p"}'], params, "d"
    ) == {
        "rate": 2,
        "where": {"datastore": "s", "path_on_datastore": "p"},
    }
    for bad, name in (("n=1.5", "'n'"), ("flag=maybe", "'flag'"), ("rate=nan", "'rate'")):
        with pytest.raises(UserErrorException, match=name):
            parse_params([bad], params, "d")
    with pytest.raises(UserErrorException, match="NAME=VALUE"):
        parse_params(["n"], params, "d")


def test_experiment_submit_goes_through_the_rest_api(server, monkeypatch):
    monkeypatch.chdir(server.project)
    sys.path.insert(0, str(server.project))
    try:
        from mlpipe_provider.sdk import Experiment, Workspace

        ws = Workspace.from_config()
        import importlib

        build = importlib.import_module("pipeline").build
        experiment = Experiment(ws, "rest-experiment")
        with pytest.raises(UserErrorException, match="unknown parameter 'm'"):
            experiment.submit(build(ws), pipeline_parameters={"m": 1})
        run = experiment.submit(build(ws), pipeline_parameters={"n": 4, "label": "rest"})
    finally:
        sys.path.remove(str(server.project))
        sys.modules.pop("pipeline", None)
    request = json.loads((ws.runs_dir / run.id / "request.json").read_text())
    assert request["server"] == server.url and "airflow_db" not in request
    assert (ws.dags_dir / "rest-experiment.py").is_file()
    assert run.wait_for_completion(show_output=False) == "Finished"
    airflow_run_id = run.get_details()["airflowRunId"]
    assert server.client.dag_run("rest-experiment", airflow_run_id)["state"] == "success"
    assert run.get_metrics() == {"total": 9.0, "count": 4}
    assert run.get_properties()["mlpipe.airflow.server"] == server.url
    # the finished state is kept in the workspace: readable without asking the server again
    assert json.loads((ws.runs_dir / run.id / "status.json").read_text())["status"] == "Finished"


def test_airflow_cli_trigger_and_dag_params_reject_bad_conf(server):
    """``airflow dags trigger --conf`` runs the DAG; a wrong type is refused when the run is
    created, an unknown key fails the run in the reuse sensors before any step starts."""
    from mlpipe_provider.cli.server_cmd import LocalServer

    local = LocalServer(server.workspace.resolve())
    settings = local.settings()
    env = local.env(settings["port"], settings["db"], settings["parallelism"])
    triggered = subprocess.run(
        [
            str(Path(sys.executable).parent / "airflow"),
            "dags",
            "trigger",
            DAG_ID,
            "--conf",
            json.dumps({"n": 2, "label": "cli"}),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    client = server.client
    cli_run = next(r for r in client.dag_runs(DAG_ID, limit=5) if r["conf"].get("label") == "cli")

    with pytest.raises(AirflowApiError, match="Invalid input for param n") as refused:
        client.trigger(DAG_ID, {"n": "two"})
    assert refused.value.status == 400

    bad = client.trigger(DAG_ID, {"n": 2, "nn": 3})["dag_run_id"]
    _wait_for(client, DAG_ID, cli_run["dag_run_id"], "success")
    _wait_for(client, DAG_ID, bad, "failed")
    states = {ti["task_id"]: ti["state"] for ti in client.task_instances(DAG_ID, bad)}
    assert states["mlpipe.plan"] == "failed"
    assert states["make"] == states["total"] == "upstream_failed"
    log = next(
        (local.home / "logs").glob(f"dag_id={DAG_ID}/run_id={bad}/task_id=mlpipe.plan/*.log")
    )
    assert "unknown parameter(s) 'nn'" in log.read_text()


def _wait_for(client: AirflowClient, dag_id: str, run_id: str, expected: str) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = client.dag_run(dag_id, run_id)["state"]
        if state in ("success", "failed"):
            assert state == expected, (run_id, state)
            return
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish")


def test_an_import_error_on_the_server_is_reported_with_its_traceback(server):
    broken = server.workspace / "dags" / "broken_pipeline.py"
    broken.write_text(
        "from airflow.sdk import DAG\n\nraise RuntimeError('boom from the broken DAG file')\n"
    )
    try:
        with pytest.raises(UserErrorException, match="boom from the broken DAG file") as error:
            server.client.wait_for_dag("broken_pipeline", broken, timeout_s=60)
        assert "cannot import broken_pipeline.py" in str(error.value)
    finally:
        broken.unlink()


def test_the_password_is_in_no_log_or_dag_and_server_down_stops_everything(server):
    password = server.password()
    for folder in (server.workspace / "server" / "logs", server.workspace / "dags"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert password not in path.read_text(errors="replace"), path
    assert password not in (server.workspace / "server" / "server.log").read_text(errors="replace")
    for path in (server.workspace / "runs").rglob("*.json"):
        assert password not in path.read_text(), path

    pid = int((server.workspace / "server" / "server.pid").read_text())
    down = server.cli("server", "down", "--workspace", str(server.workspace), check=True)
    assert f"stopped Airflow (pid {pid})" in down.stdout
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    status = server.cli("server", "status", "--workspace", str(server.workspace))
    assert status.returncode == 1 and "not running" in status.stdout


def test_server_up_refuses_a_database_it_cannot_use_without_printing_its_password():
    from mlpipe_provider.cli.server_cmd import _check_db_driver

    with pytest.raises(UserErrorException, match="expected a postgresql:// or sqlite:/// URL"):
        _check_db_driver("mysql://u:pw@h/db")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        with pytest.raises(UserErrorException, match="psycopg2") as error:
            _check_db_driver("postgresql://airflow:s3cret@db.example/airflow")
        assert "s3cret" not in str(error.value) and "airflow:***@" in str(error.value)
