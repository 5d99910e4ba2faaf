"""mlpipe DAGs on a multi-service Airflow: PostgreSQL metadata DB, CeleryExecutor on Redis, one
Celery worker for the ``default`` queue and one for the GPU target's queue (``gpu-cluster``).

Everything is started by this module on 127.0.0.1, in temporary folders, and stopped at its end:
a private PostgreSQL cluster (``initdb`` as the ``postgres`` OS user), a ``redis-server`` without
persistence, and Airflow's api-server, scheduler, dag-processor and two Celery workers. Proves:
GPU steps run on the GPU worker and the CPU step on the default worker; the 1-slot GPU pool never
runs the two 1-GPU steps at once; a second identical run reuses every step; a run triggered with
``airflow dags trigger --conf`` succeeds too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

import pytest
from airflow_server import AirflowServer, _free_port
from conftest import write_script
from postgres_server import AVAILABLE as POSTGRES_AVAILABLE
from postgres_server import PostgresCluster
from services import require

REDIS = shutil.which("redis-server")

MISSING = (
    None
    if POSTGRES_AVAILABLE and REDIS
    else "needs PostgreSQL (initdb, pg_ctl; as root also a postgres OS user) and redis-server "
    "(apt-get install postgresql redis-server; .ci/run installs them)"
)
pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.airflow_server]


@pytest.fixture(scope="module", autouse=True)
def _services():
    """CI sets MLPIPE_REQUIRE_CELERY_POSTGRES=1: missing binaries then fail the tests instead."""
    require("celery", MISSING)


DAG_ID = "celery_postgres"
GPU = "gpu-cluster"
WORKERS = {"default": "mlpipe-default-worker", GPU: "mlpipe-gpu-worker"}

# Each worker's TI ``hostname`` is its own name (Airflow's [core] hostname_callable), so the
# REST task instances say which worker ran them; the scripts also record it in their outputs.
HOSTNAME_MODULE = """
import os
import socket


def hostname():
    return os.environ.get("MLPIPE_TEST_WORKER") or socket.getfqdn()
"""

STEP = """
    import json, os, sys, time
    out, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    start = time.time()
    time.sleep(seconds)
    json.dump({"worker": os.environ.get("MLPIPE_TEST_WORKER"), "tag": tag, "start": start,
               "end": time.time()}, open(os.path.join(out, "span.json"), "w"))
"""


class RedisServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlpipe-redis-"))
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("redis-server did not answer PING")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class CeleryAirflow(AirflowServer):
    """api-server, scheduler, dag-processor and two Celery workers, each its own process group."""

    def __init__(self, home: Path, db_url: str, broker_url: str):
        super().__init__(home, parallelism=4)
        (home / "mlpipe_test_hostname.py").write_text(HOSTNAME_MODULE)
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
                "AIRFLOW__CELERY__BROKER_URL": broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url.replace("+psycopg2", ""),
                "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "mlpipe_test_hostname.hostname",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                "MLPIPE_DEVICE_LOCK_DIR": str(home / "device-locks"),
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(home), os.environ.get("PYTHONPATH")) if p
                ),
            }
        )
        self.airflow = str(Path(sys.executable).parent / "airflow")
        self.procs: dict[str, subprocess.Popen] = {}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(  # noqa: S603
            [self.airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"airflow {args}: {result.stdout}{result.stderr}"
        return result

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> None:
        with open(self.home / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(  # noqa: S603
                [self.airflow, *args],
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}"
            for log in sorted(self.home.glob("*.log"))
        )

    def start(self, timeout_s: float = 150) -> None:
        self.cli("db", "migrate")
        self._spawn("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port)])
        self._spawn("scheduler", ["scheduler", "--skip-serve-logs"])
        self._spawn("dag-processor", ["dag-processor"])
        for queue, hostname in WORKERS.items():
            self._spawn(
                hostname,
                [
                    "celery",
                    "worker",
                    "--queues",
                    queue,
                    "--concurrency",
                    "2",
                    "--celery-hostname",
                    f"{hostname}@%h",
                    "--skip-serve-logs",
                ],
                env={**self.env, "MLPIPE_TEST_WORKER": hostname},
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited:\n{self.logs()}")
            try:
                health = self.get("/api/v2/monitor/health")
                if all(
                    health.get(k, {}).get("status") == "healthy"
                    for k in ("metadatabase", "scheduler", "dag_processor")
                ):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(1)
        raise RuntimeError(f"Airflow not healthy after {timeout_s} s:\n{self.logs()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def server():
    if MISSING:
        pytest.fail(MISSING)
    postgres, redis = PostgresCluster(), RedisServer()
    home = Path(tempfile.mkdtemp(prefix="mlpipe-celery-"))
    airflow = None
    try:
        postgres.start()
        redis.start()
        airflow = CeleryAirflow(home, postgres.url, redis.url)
        airflow.start()
        yield airflow
    finally:
        if airflow is not None:
            airflow.stop()
        redis.stop()
        postgres.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(server, tmp_path_factory):
    """A tmp project with a 1-node STANDARD_NC6 target: two 1-GPU steps and a CPU step."""
    from compiler.compile import compile_pipeline
    from mlpipe_provider.sdk import (
        AmlCompute,
        ComputeTarget,
        Pipeline,
        PipelineData,
        PipelineParameter,
        PythonScriptStep,
        Workspace,
    )

    project = tmp_path_factory.mktemp("celery-project")
    cwd = os.getcwd()
    os.chdir(project)
    try:
        ws = Workspace.from_config()
        gpu = ComputeTarget.create(
            ws, GPU, AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=1)
        )
        write_script(project / "src", "step.py", STEP)
        tag = PipelineParameter("tag", "default")
        steps = []
        for name, target, seconds in (("left", gpu, 3), ("right", gpu, 3), ("cpu", None, 1)):
            out = PipelineData(f"{name}_out", datastore=ws.get_default_datastore())
            kwargs = {"compute_target": target} if target is not None else {}
            steps.append(
                PythonScriptStep(
                    "step.py",
                    name=name,
                    arguments=[out, tag, str(seconds)],
                    outputs=[out],
                    source_directory="src",
                    **kwargs,
                )
            )
        compiled = compile_pipeline(Pipeline(ws, steps), DAG_ID, server.dags)
        compiled.write()
    finally:
        os.chdir(cwd)
    pools = json.loads(compiled.pools_text)
    assert pools[GPU]["slots"] == 1, pools
    server.set_pool(GPU, pools[GPU]["slots"])
    server.wait_for_dag(DAG_ID)
    return ws


def _spans(tis: dict, names=("left", "right")) -> list[tuple[dt.datetime, dt.datetime]]:
    return [
        (
            dt.datetime.fromisoformat(tis[n]["start_date"]),
            dt.datetime.fromisoformat(tis[n]["end_date"]),
        )
        for n in names
    ]


def _outputs(ws) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    root = ws._dir / "datastores" / "workspaceblobstore" / "azureml"
    for path in root.glob("*/*_out/span.json"):
        found.setdefault(path.parent.name.removesuffix("_out"), []).append(
            json.loads(path.read_text())
        )
    return found


@pytest.fixture(scope="module")
def first_run(server, deployed):
    run_id = server.trigger(DAG_ID, {"tag": "rest"})
    state = server.wait_for_run(DAG_ID, run_id, timeout_s=120)
    tis = server.task_instances(DAG_ID, run_id)
    assert state == "success", (tis, server.logs())
    return tis


def test_steps_run_on_their_queues_workers(server, deployed, first_run):
    tis = first_run
    for name in ("left", "right", "cpu"):
        assert tis[name]["state"] == "success", tis[name]
    for name in ("left", "right"):
        assert tis[name]["queue"] == GPU
        assert tis[name]["pool"] == GPU
        assert tis[name]["hostname"] == WORKERS[GPU], tis[name]
    assert tis["cpu"]["queue"] == "default"
    assert tis["cpu"]["hostname"] == WORKERS["default"], tis["cpu"]
    outputs = _outputs(deployed)
    assert {o["worker"] for o in outputs["left"] + outputs["right"]} == {WORKERS[GPU]}
    assert {o["worker"] for o in outputs["cpu"]} == {WORKERS["default"]}
    assert {o["tag"] for outputs_ in outputs.values() for o in outputs_} == {"rest"}


def test_one_gpu_pool_never_overlaps_the_two_gpu_steps(first_run):
    (a_start, a_end), (b_start, b_end) = _spans(first_run)
    assert a_end <= b_start or b_end <= a_start, (a_start, a_end, b_start, b_end)


def test_second_identical_run_reuses_every_step(server, first_run):
    run_id = server.trigger(DAG_ID, {"tag": "rest"})
    assert server.wait_for_run(DAG_ID, run_id, timeout_s=90) == "success"
    tis = server.task_instances(DAG_ID, run_id)
    for name in ("left", "right", "cpu"):
        assert tis[name]["state"] == "skipped", tis[name]
    assert tis["mlpipe.plan"]["state"] == "success", tis["mlpipe.plan"]


def test_cli_trigger_with_conf(server, first_run):
    run_id = "cli_" + secrets.token_hex(4)
    server.cli("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps({"tag": "cli"}))
    assert server.wait_for_run(DAG_ID, run_id, timeout_s=120) == "success"
    tis = server.task_instances(DAG_ID, run_id)
    for name in ("left", "right", "cpu"):  # a new tag: every step runs again
        assert tis[name]["state"] == "success", tis[name]
    (a_start, a_end), (b_start, b_end) = _spans(tis)
    assert a_end <= b_start or b_end <= a_start
