"""v1 REST clients against a real Airflow API server: the ``/mlpipe`` routes and v1's auth classes.

One server for the module, started with ``mlpipe server up --user viewer:viewer --user
runner:user`` (about 30-40 s), stopped at the end. The v1 idiom is run exactly as v1 programs
write it: ``requests.post(published.endpoint, headers=auth.get_authentication_header(),
json={"ExperimentName": ..., "ParameterAssignments": {...}})``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import write_script

from mlpipe_provider.airflow_api import AirflowApiError
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk import (
    DataPath,
    DataPathComputeBinding,
    Experiment,
    InteractiveLoginAuthentication,
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    ServicePrincipalAuthentication,
    Workspace,
)

READER = """
    import os, sys
    data, n, marks = sys.argv[1], sys.argv[2], sys.argv[3]
    content = open(os.path.join(data, "data.txt")).read().strip()
    with open(marks, "a") as log:
        log.write(f"{n}:{content}\\n")
"""
PASSWORDS = "simple_auth_manager_passwords.json.generated"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlpipe_provider.cli.main", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _put(ws: Workspace, path: str, text: str) -> None:
    target = ws._dir / "datastores" / "workspaceblobstore" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _pipeline(ws: Workspace, project: Path, n_default: int) -> Pipeline:
    write_script(project / "src", "reader.py", READER)
    data = PipelineParameter(
        name="input_data", default_value=DataPath(ws.get_default_datastore(), "raw")
    )
    step_input = (data, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "reader.py",
        name="read",
        arguments=[step_input, PipelineParameter("n", n_default), str(project / "marks.txt")],
        inputs=[step_input],
        source_directory=str(project / "src"),
    )
    return Pipeline(ws, [step])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    project = tmp_path_factory.mktemp("rest-project")
    workspace = project / ".mlpipe"
    Workspace(_workspace_dir=workspace)
    port = _free_port()
    up = _cli(
        project,
        *("server", "up", "--workspace", str(workspace), "--port", str(port)),
        *("--user", "viewer:viewer", "--user", "runner:user"),
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield project, workspace, f"http://127.0.0.1:{port}"
    finally:
        _cli(project, "server", "down", "--workspace", str(workspace))


@pytest.fixture(scope="module")
def published(server):
    project, workspace, url = server
    auth = InteractiveLoginAuthentication()
    ws = Workspace(_workspace_dir=workspace, auth=auth)
    _put(ws, "raw/data.txt", "raw data")
    _put(ws, "other/data.txt", "other data")
    v0 = _pipeline(ws, project, 1).publish(name="rest-reader")
    v1 = _pipeline(ws, project, 2).publish(name="rest-reader")
    endpoint = PipelineEndpoint.publish(ws, "rest-endpoint", "two versions", v0)
    endpoint.add(v1)
    return ws, auth, v0, v1, endpoint


def _passwords(workspace: Path) -> dict[str, str]:
    return json.loads((workspace / "server" / PASSWORDS).read_text())


def _wait(url: str, headers: dict, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        run = requests.get(url, headers=headers, timeout=30).json()
        if run["Status"]["StatusCode"] in ("Finished", "Failed", "Canceled"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(1)


def test_the_v1_idiom_starts_a_run_that_finishes_and_the_get_routes_report_it(server, published):
    project, workspace, url = server
    ws, auth, v0, _, _ = published
    assert v0.endpoint == f"{url}/mlpipe/api/v1.0/PipelineRuns/PipelineSubmit/{v0.id}"

    response = requests.post(
        v0.endpoint,
        headers=auth.get_authentication_header(),
        json={
            "ExperimentName": "rest-exp",
            "ParameterAssignments": {"n": 7},
            "DataPathAssignments": {
                "input_data": {"DataStoreName": "workspaceblobstore", "RelativePath": "other"}
            },
            "RunSource": "SDK",
            "Description": "from curl",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    run = response.json()
    run_id = run["Id"]
    assert run["PipelineId"] == v0.id and run["ExperimentName"] == "rest-exp"
    assert run["Status"]["StatusCode"] in ("NotStarted", "Queued", "Running")
    assert run["AirflowDagId"] == v0.dag_id

    run_url = f"{url}/mlpipe/api/v1.0/PipelineRuns/{run_id}"
    headers = auth.get_authentication_header()
    finished = _wait(run_url, headers)
    assert finished["Status"]["StatusCode"] == "Finished", finished
    assert finished["Status"]["EndTime"] and finished["Description"] == "from curl"
    assert (project / "marks.txt").read_text().splitlines() == ["7:other data"]

    steps = requests.get(f"{run_url}/StepRuns", headers=headers, timeout=30).json()
    assert [(s["Name"], s["Status"]["StatusCode"]) for s in steps] == [("read", "Finished")]
    assert steps[0]["Id"] == f"{run_id}:{steps[0]['TaskId']}"

    # the SDK follows the run like one it started itself
    runs = list(Experiment(ws, "rest-exp").get_runs())
    assert [r.id for r in runs] == [run_id]
    assert runs[0].get_status() == "Finished"


def test_endpoint_routes_run_the_default_version_or_the_one_asked_for(server, published):
    _, workspace, url = server
    ws, auth, v0, v1, endpoint = published
    assert endpoint.endpoint == (
        f"{url}/mlpipe/api/v1.0/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint.id}"
    )
    headers = auth.get_authentication_header()
    by_id = requests.post(endpoint.endpoint, headers=headers, json={"ExperimentName": "ep"})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["AirflowDagId"] == v0.dag_id
    assert by_id.json()["PipelineEndpointId"] == endpoint.id

    by_name = f"{url}/mlpipe/api/v1.0/PipelineRuns/PipelineEndpointSubmit/Name/rest-endpoint"
    versioned = requests.post(
        by_name, headers=headers, json={"ExperimentName": "ep", "PipelineVersion": "1"}
    )
    assert versioned.status_code == 200, versioned.text
    assert versioned.json()["AirflowDagId"] == v1.dag_id
    missing = requests.post(
        by_name, headers=headers, json={"ExperimentName": "ep", "PipelineVersion": "9"}
    )
    assert missing.status_code == 400 and "has no version '9'" in missing.text
    unknown = requests.post(f"{by_name}-nope", headers=headers, json={"ExperimentName": "ep"})
    assert unknown.status_code == 404 and "rest-endpoint-nope" in unknown.text
    for response in (by_id, versioned):
        assert (
            _wait(f"{url}/mlpipe/api/v1.0/PipelineRuns/{response.json()['Id']}", headers)["Status"][
                "StatusCode"
            ]
            == "Finished"
        )


def test_the_curl_calls_in_the_docs_work_as_written(server, published):
    import shutil

    if not (shutil.which("curl") and shutil.which("jq")):
        pytest.skip("curl and jq are needed to run the documented shell calls")
    _, workspace, url = server
    _, auth, v0, _, _ = published
    doc = (Path(__file__).parents[1] / "docs" / "publishing.md").read_text()
    script = doc.split("```bash\nTOKEN=", 1)[1].split("```", 1)[0]
    script = "TOKEN=" + script.replace("http://127.0.0.1:8080", url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "AIRFLOW_PASSWORD": _passwords(workspace)["admin"],
            "PIPELINE_ID": v0.id,
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("NotStarted", "Queued", "Running", "Finished"), done.stdout
    (run,) = [r for r in Experiment(Workspace(_workspace_dir=workspace), "nightly").get_runs()]
    assert _wait(f"{url}/mlpipe/api/v1.0/PipelineRuns/{run.id}", auth.get_authentication_header())[
        "ParameterAssignments"
    ] == {"n": 5}


def _dag_run_count(url: str, headers: dict, dag_id: str) -> int:
    return requests.get(f"{url}/api/v2/dags/{dag_id}/dagRuns", headers=headers, timeout=30).json()[
        "total_entries"
    ]


def test_no_token_is_401_a_viewer_is_403_and_nothing_starts(server, published):
    _, workspace, url = server
    ws, auth, v0, _, _ = published
    admin = auth.get_authentication_header()
    before = _dag_run_count(url, admin, v0.dag_id)
    runs_before = sorted(p.name for p in (workspace / "runs").iterdir())
    body = {"ExperimentName": "denied", "ParameterAssignments": {"n": 3}}

    assert requests.post(v0.endpoint, json=body, timeout=30).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert requests.post(v0.endpoint, json=body, headers=bad, timeout=30).status_code in (401, 403)

    config = ws._config
    config.airflow.service_principals = {"sp-viewer-id": "viewer", "sp-runner-id": "runner"}
    ws._save(config)
    viewer = ServicePrincipalAuthentication(
        "tenant", "sp-viewer-id", _passwords(workspace)["viewer"]
    )
    Workspace(_workspace_dir=workspace, auth=viewer)
    denied = requests.post(v0.endpoint, headers=viewer.get_authentication_header(), json=body)
    assert denied.status_code == 403, denied.text
    assert _dag_run_count(url, admin, v0.dag_id) == before
    assert sorted(p.name for p in (workspace / "runs").iterdir()) == runs_before
    # the SDK's own submit, in a workspace given that auth, runs as the same Airflow user
    as_viewer = Workspace(_workspace_dir=workspace, auth=viewer)
    with pytest.raises(AirflowApiError) as refused:
        PublishedPipeline.get(as_viewer, v0.id).submit(as_viewer, "denied", {"n": 3})
    assert refused.value.status == 403
    assert _dag_run_count(url, admin, v0.dag_id) == before

    # a viewer may read runs; a principal mapped to a user with the 'user' role may trigger
    run_id = runs_before[0]
    seen = requests.get(
        f"{url}/mlpipe/api/v1.0/PipelineRuns/{run_id}", headers=viewer.get_authentication_header()
    )
    assert seen.status_code == 200 and seen.json()["Id"] == run_id
    runner = ServicePrincipalAuthentication(
        "tenant", "sp-runner-id", _passwords(workspace)["runner"]
    )
    Workspace(_workspace_dir=workspace, auth=runner)
    allowed = requests.post(v0.endpoint, headers=runner.get_authentication_header(), json=body)
    assert allowed.status_code == 200, allowed.text
    assert (
        _wait(f"{url}/mlpipe/api/v1.0/PipelineRuns/{allowed.json()['Id']}", admin)["Status"][
            "StatusCode"
        ]
        == "Finished"
    )

    wrong = ServicePrincipalAuthentication("tenant", "sp-runner-id", "not-the-password")
    Workspace(_workspace_dir=workspace, auth=wrong)
    with pytest.raises(UserErrorException, match="refused the login of user 'runner'"):
        wrong.get_authentication_header()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"ExperimentName": "x", ', 400, "not valid JSON"),
        (b'["ExperimentName"]', 400, "must be a JSON object"),
        (b'{"ParameterAssignments": {}}', 400, "ExperimentName must be"),
        (b'{"ExperimentName": "x", "Bogus": 1}', 400, "unknown field 'Bogus'"),
        (
            b'{"ExperimentName": "x", "ParameterAssignments": {"nope": 1}}',
            400,
            "unknown parameter 'nope'",
        ),
        (
            b'{"ExperimentName": "x", "ParameterAssignments": {"n": "seven"}}',
            400,
            "parameter 'n' expects integer",
        ),
        (
            b'{"ExperimentName": "x", "DataPathAssignments": {"input_data": '
            b'{"DataStoreName": "nostore", "RelativePath": "raw"}}}',
            400,
            "unknown datastore 'nostore'",
        ),
        (
            b'{"ExperimentName": "x", "DataPathAssignments": {"input_data": '
            b'{"DataStoreName": "workspaceblobstore", "RelativePath": "../../etc"}}}',
            400,
            "..",
        ),
        (b'{"ExperimentName": "' + b"x" * 300_000 + b'"}', 413, "over 262144 bytes"),
    ],
)
def test_bad_bodies_are_refused_with_a_clear_message_and_start_nothing(
    server, published, body, status, message
):
    _, workspace, url = server
    ws, auth, v0, _, _ = published
    headers = {**auth.get_authentication_header(), "Content-Type": "application/json"}
    runs_before = sorted(p.name for p in (workspace / "runs").iterdir())
    before = _dag_run_count(url, headers, v0.dag_id)
    response = requests.post(v0.endpoint, data=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert _dag_run_count(url, headers, v0.dag_id) == before
    assert sorted(p.name for p in (workspace / "runs").iterdir()) == runs_before


def test_unknown_ids_are_404_and_no_secret_reaches_config_logs_dags_or_runs(server, published):
    project, workspace, url = server
    ws, auth, v0, _, _ = published
    headers = auth.get_authentication_header()
    base = f"{url}/mlpipe/api/v1.0/PipelineRuns"
    assert (
        requests.post(
            f"{base}/PipelineSubmit/not-an-id", headers=headers, json={"ExperimentName": "x"}
        ).status_code
        == 404
    )
    paths = requests.get(f"{url}/mlpipe/openapi.json", timeout=30).json()["paths"]
    assert "/api/v1.0/PipelineRuns/PipelineSubmit/{pipeline_id}" in paths
    assert v0.endpoint.startswith(f"{url}/mlpipe/api/v1.0/PipelineRuns/PipelineSubmit/")
    zero = "00000000-0000-0000-0000-000000000000"
    assert requests.get(f"{base}/{zero}", headers=headers).status_code == 404
    assert requests.get(f"{base}/../../etc", headers=headers).status_code == 404

    secrets = {f"password of {name}": pw for name, pw in _passwords(workspace).items()}
    secrets["bearer token"] = headers["Authorization"].split()[1]
    skip = {(workspace / "server" / PASSWORDS).resolve()}
    places = [
        path
        for path in project.rglob("*")
        if path.is_file() and path.resolve() not in skip and path.suffix not in (".db", ".pyc")
    ]
    assert any(p.name == "server.log" for p in places)
    assert any(p.name == "request.json" for p in places)
    leaks = [
        f"{what} in {path}"
        for path in places
        for what, secret in secrets.items()
        if secret in path.read_text(errors="replace")
    ]
    assert leaks == []


def test_the_plugin_stays_light_and_auth_without_a_server_says_why(tmp_path):
    probe = (
        "import sys, mlpipe_provider.plugin as p\n"
        "(app,) = [a for a in p.MlpipePlugin.fastapi_apps if a['url_prefix'] == '/mlpipe']\n"
        "print(type(app['app']).__name__, 'fastapi' in sys.modules,\n"
        "      'mlpipe_provider.rest.app' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["LazyRestApp", "False", "False"]

    ws = Workspace(_workspace_dir=tmp_path / ".mlpipe", auth=InteractiveLoginAuthentication())
    with pytest.raises(UserErrorException, match="names no Airflow server"):
        ws._auth.get_authentication_header()
    principal = ServicePrincipalAuthentication("tenant", "sp-id", "s3cret-password")
    assert "s3cret" not in repr(principal)
    with pytest.raises(UserErrorException, match="service_principal_password must be"):
        ServicePrincipalAuthentication("tenant", "sp-id", "")


def test_migrate_maps_v1_authentication_and_server_users_are_checked(tmp_path, capsys):
    from mlpipe_provider.cli.main import main
    from mlpipe_provider.cli.server_cmd import parse_users

    program = tmp_path / "auth.py"
    program.write_text(
        "import os\n"
        "from azureml.core.authentication import (\n"
        "    AzureCliAuthentication, InteractiveLoginAuthentication, MsiAuthentication,\n"
        "    ServicePrincipalAuthentication,\n"
        ")\n"
        "sp = ServicePrincipalAuthentication(tenant_id='t', service_principal_id='app',\n"
        "                                    service_principal_password=os.environ['PW'])\n"
        "print(sp, InteractiveLoginAuthentication(force=False, tenant_id='t'),\n"
        "      AzureCliAuthentication(), MsiAuthentication())\n"
    )
    assert main(["migrate", str(program)]) == 0
    assert "cannot map" not in capsys.readouterr().out
    assert "from azureml" not in program.read_text()
    done = subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env={**os.environ, "PW": "pw-not-shown"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ServicePrincipalAuthentication(service_principal_id='app')" in done.stdout
    assert "pw-not-shown" not in done.stdout

    assert parse_users(["analyst:viewer", "ci:user"]) == {
        "admin": "admin",
        "analyst": "viewer",
        "ci": "user",
    }
    with pytest.raises(UserErrorException, match="ROLE must be one of viewer, user, op, admin"):
        parse_users(["analyst:reader"])
    with pytest.raises(UserErrorException, match="the name must be"):
        parse_users(["../x:viewer"])
