"""MLflow tracking (docs/tracking.md) against a real ``mlflow server`` with a SQLite backend store.

The full ``mlflow`` server package would downgrade Airflow's dependencies, so the server lives
in its own venv, built once with uv under ``~/.cache/mlpipe-test-mlflow-server`` and reused
after. Without PyPI the tests skip, unless ``MLPIPE_REQUIRE_MLFLOW=1`` (CI), which fails them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import _DAGS, task_links, task_records
from services import unavailable
from test_metrics import EXPECTED_TRAIN, PNG, two_step_pipeline

MLFLOW_VERSION = "3.17.2"


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlpipe-test-mlflow-server"


def _unavailable(reason: str) -> None:
    unavailable("mlflow", reason)


def _pypi_reachable() -> bool:
    index = os.environ.get("UV_INDEX_URL") or "https://pypi.org/simple/"
    try:
        with urllib.request.urlopen(index.rstrip("/") + "/mlflow/", timeout=15):  # noqa: S310
            return True
    except (urllib.error.URLError, OSError):
        return False


def _server_python() -> Path:
    """The server venv's python, built on first use (under a lock: sessions may run at once)."""
    venv = _cache_dir() / f"venv-{MLFLOW_VERSION}"
    python = venv / "bin" / "python"
    done = venv / ".mlpipe-complete"
    if done.is_file():
        return python
    uv = shutil.which("uv")
    if uv is None:
        _unavailable("uv is not on PATH to build the mlflow server venv")
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if done.is_file():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted run
        steps = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(python), f"mlflow=={MLFLOW_VERSION}"],
        ]
        for argv in steps:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                output = (result.stdout + result.stderr)[-2000:]
                if not _pypi_reachable():
                    _unavailable(f"PyPI is unreachable to install mlflow=={MLFLOW_VERSION}")
                pytest.fail(f"{' '.join(argv[:3])} failed:\n{output}")
        done.write_text(MLFLOW_VERSION + "\n")
    return python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real tracking server: SQLite backend store, artifacts proxied to a local folder."""
    python = _server_python()
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(  # noqa: S603 - fixed argument list
            [
                str(python),
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):  # noqa: S310
                    break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    pytest.fail(f"mlflow server did not start on {uri}:\n{tail}")
                time.sleep(0.5)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _run(pipeline, dag_id: str, experiment: str):
    """Compile as ``Experiment.submit`` does (tagged with the experiment) and run with dag.test."""
    from airflow.dag_processing.dagbag import DagBag

    from compiler.compile import compile_pipeline

    compiled = compile_pipeline(pipeline, dag_id, _DAGS, tags=[f"experiment:{experiment}"])
    compiled.write()
    bag = DagBag(dag_folder=str(compiled.path))
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.get_dag(compiled.dag_id).test()
    return dag_run, task_records(dag_run)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(client, experiment_id: str, query: str) -> list:
    return list(client.search_runs([experiment_id], filter_string=query, max_results=1000))


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def _pipeline_run(client, experiment_id: str, dag_run):
    query = (
        f"tags.`mlpipe.role` = 'pipeline' and tags.`airflow.run_id` = '{dag_run.run_id}' "
        f"and tags.`airflow.dag_id` = '{dag_run.dag_id}'"
    )
    (parent,) = _runs(client, experiment_id, query)
    return parent


def _steps(client, experiment_id: str, parent_id: str) -> dict:
    children = _runs(client, experiment_id, f"tags.`mlflow.parentRunId` = '{parent_id}'")
    by_name = {run.info.run_name: run for run in children}
    assert len(by_name) == len(children) == 2, [r.info.run_name for r in children]
    return by_name


def _assert_train_metrics(client, run, tmp_path: Path) -> None:
    run_id = run.info.run_id
    assert _history(client, run_id, "loss") == [(0, 0.5), (1, 0.25)]
    assert run.data.metrics["accuracy"] == 0.9
    assert "model" not in run.data.metrics  # a string: only in mlpipe/metrics.json
    assert _history(client, run_id, "lr") == [(0, 0.1), (1, 0.01)]
    assert _history(client, run_id, "curve/epoch") == [(0, 1.0), (1, 2.0)]
    assert _history(client, run_id, "curve/val") == [(0, 0.3), (1, 0.2)]
    assert _history(client, run_id, "confusion/tp") == [(0, 5.0), (1, 6.0)]
    images = [a.path for a in client.list_artifacts(run_id, "images")]
    assert images == ["images/plots_roc.bin"]
    target = tmp_path / run_id
    target.mkdir()
    image = client.download_artifacts(run_id, "images/plots_roc.bin", str(target))
    assert Path(image).read_bytes() == PNG
    saved = client.download_artifacts(run_id, "mlpipe/metrics.json", str(target))
    assert json.loads(Path(saved).read_text()) == EXPECTED_TRAIN


def test_pipeline_run_and_steps_are_mlflow_runs_also_when_reused(
    mlflow_server, ws, airflow_db, monkeypatch, tmp_path
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = ws._config
    config.mlflow_tracking_uri = mlflow_server  # the workspace config's field, read by the worker
    ws._save(config)
    assert ws.get_mlflow_tracking_uri() == mlflow_server
    pipeline = two_step_pipeline(ws, Path.cwd() / "src")

    dag_run, records = _run(pipeline, "mlflow_two_steps", "Mlflow-Tracking")
    assert str(dag_run.state) == "success"
    client = _client(mlflow_server)
    experiment = client.get_experiment_by_name("Mlflow-Tracking")
    assert experiment is not None
    eid = experiment.experiment_id
    parent = _pipeline_run(client, eid, dag_run)
    assert parent.info.status == "FINISHED"  # the last step ended it
    assert parent.data.params == {"alpha": "0.5"}
    steps = _steps(client, eid, parent.info.run_id)
    train, score = steps["train.py"], steps["score.py"]
    train_record = records["train.py"][1]
    assert train.data.tags["mlpipe.step_run_id"] == train_record["step_run_id"]
    assert train.data.tags["mlpipe.fingerprint"] == train_record["fingerprint"]
    for step, task_id in ((train, "train.py"), (score, "score.py")):
        tags = step.data.tags
        assert tags["airflow.dag_id"] == dag_run.dag_id
        assert tags["airflow.run_id"] == dag_run.run_id
        assert tags["airflow.task_id"] == task_id
        assert tags["mlpipe.reused"] == "false"
        assert step.info.status == "FINISHED"
    assert train.data.params == {"alpha": "0.5", "arguments": '["<output:model>", "--alpha", 0.5]'}
    _assert_train_metrics(client, train, tmp_path)
    assert score.data.metrics == {"score": 1.0}
    # each step task links to its MLflow run in the Airflow UI (operators/links.py)
    for step, task_id in ((train, "train.py"), (score, "score.py")):
        url = f"{mlflow_server}/#/experiments/{eid}/runs/{step.info.run_id}"
        assert records[task_id][1]["mlflow_run_id"] == step.info.run_id
        assert task_links(dag_run, task_id, timeout=0)["MLflow run"] == url

    # a second run reuses both steps: nested runs tagged reused, with the original metrics
    again, _ = _run(pipeline, "mlflow_two_steps", "Mlflow-Tracking")
    assert str(again.state) == "success" and again.run_id != dag_run.run_id
    parents = _runs(client, eid, "tags.`mlpipe.role` = 'pipeline'")
    assert len(parents) == 2
    second = _pipeline_run(client, eid, again)
    assert second.info.status == "FINISHED"
    reused = _steps(client, eid, second.info.run_id)
    for name, original in (("train.py", train), ("score.py", score)):
        tags = reused[name].data.tags
        assert tags["mlpipe.reused"] == "true"
        assert tags["airflow.run_id"] == again.run_id
        assert tags["azureml.reusedrunid"] == original.data.tags["mlpipe.step_run_id"]
        assert tags["mlpipe.reused_airflow_run_id"] == dag_run.run_id
    _assert_train_metrics(client, reused["train.py"], tmp_path)
    assert reused["score.py"].data.metrics == {"score": 1.0}
    for name in ("train.py", "score.py"):  # the reused step's own nested run, and its producer
        links = task_links(again, name)
        assert links["MLflow run"] == f"{mlflow_server}/#/experiments/{eid}/runs/" + (
            reused[name].info.run_id
        )
        assert f"/dags/{dag_run.dag_id}/runs/" in links["Reused run"]
        assert links["Reused run"].endswith(f"/tasks/{name}")


def test_a_tracking_server_that_is_down_does_not_fail_the_pipeline(
    ws, airflow_db, monkeypatch, capfd
):
    from mlpipe_provider.sdk import Pipeline, PythonScriptStep

    down = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    assert ws.get_mlflow_tracking_uri() == down  # the environment wins over the config
    folder = Path.cwd() / "down"
    folder.mkdir()
    (folder / "s.py").write_text(
        "from mlpipe_provider.sdk import Run\nRun.get_context().log('x', 1)\n"
    )
    step = PythonScriptStep("s.py", source_directory=str(folder))
    started = time.monotonic()
    dag_run, records = _run(Pipeline(ws, [step]), "mlflow_server_down", "Mlflow-Down")
    assert str(dag_run.state) == "success"
    assert records["s.py"][1]["metrics"] == {"x": 1}
    assert time.monotonic() - started < 120  # no minutes of HTTP retries
    out, err = capfd.readouterr()  # the task's log (structlog writes to the console)
    assert "MLflow tracking of step 's.py' skipped" in out + err
    assert f"{down} is unreachable" in out + err


def test_concurrent_steps_create_one_pipeline_run(mlflow_server, ws, tmp_path):
    """Steps of one DAG run in parallel worker processes: all find or create the same run."""
    script = tmp_path / "racer.py"
    script.write_text(
        "import sys, types\n"
        "from mlflow.tracking import MlflowClient\n"
        "from mlpipe_provider.runtime.step_context import StepWorkspace\n"
        "from mlpipe_provider.tracking import mlflow as tracking\n"
        "uri, ws_dir, go = sys.argv[1:4]\n"
        "client = MlflowClient(tracking_uri=uri)\n"
        "dag = types.SimpleNamespace(dag_id='race', tags=['experiment:Mlflow-Race'])\n"
        "op = types.SimpleNamespace(dag=dag)\n"
        "dag_run = types.SimpleNamespace(dag_id='race', run_id='manual__1', logical_date=None)\n"
        "context = {'dag_run': dag_run, 'params': {'n': 1}}\n"
        "from mlpipe_provider.config import load_config\n"
        "from pathlib import Path\n"
        "ws = StepWorkspace(Path(ws_dir), load_config(Path(ws_dir)))\n"
        "eid = tracking._experiment_id(client, 'Mlflow-Race')\n"
        "import os, time\n"
        "while not os.path.exists(go):\n"
        "    time.sleep(0.01)\n"
        "print(tracking._pipeline_run(client, eid, op, context, ws))\n"
    )
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, str(script), mlflow_server, str(ws._dir), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(3)  # all started and waiting
    go.touch()
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs
    ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(ids) == 1
    client = _client(mlflow_server)
    eid = client.get_experiment_by_name("Mlflow-Race").experiment_id
    (parent,) = _runs(client, eid, "tags.`mlpipe.role` = 'pipeline'")
    assert parent.info.run_id in ids
    assert parent.data.tags["airflow.run_id"] == "manual__1"
    assert parent.data.params == {"n": "1"}


def test_generated_dags_and_untracked_steps_do_not_import_mlflow():
    code = (
        "import sys\n"
        "import mlpipe_provider.runtime.step_protocol, mlpipe_provider.operators.script\n"
        "import mlpipe_provider.operators.reuse_plan, mlpipe_provider.tracking\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
