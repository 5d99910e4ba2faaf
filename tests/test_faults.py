"""The fault catalogue (docs/reliability.md): each fault is injected into a real run on Airflow.

Every case checks invariant 3 from both sides: nothing partial is ever reused (no entry points at
a killed or failed attempt, a damaged entry is a miss), and nothing is lost (a later run
recomputes and produces complete, correct outputs). Faults already covered elsewhere are listed
in docs/reliability.md with their tests and not repeated here: a step that kills itself
mid-write (tests/test_reuse.py), a lease file of a dead holder, a stored output folder deleted or
truncated to empty, same-size corruption under full verification, on_kill, the step timeout
(tests/test_operator.py) and two concurrent embedded runs (tests/test_experiment.py).

Steps append one line per execution to a calls file opened with O_APPEND, so a test counts
exactly how many times a step really ran, across processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import _DAGS, step_fingerprint, task_records, write_script

from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep

SIZE = 100_000  # bytes of each output file when a step completes

# Writes two files; blocks halfway through the second while $FAULT_BLOCK exists, after telling
# the test (through $FAULT_PIDS) its pid, its parent's pid (the Airflow task process) and its
# step run id.
WRITER = """
    import os, sys, time
    out, size = sys.argv[1], int(sys.argv[2])
    fd = os.open(os.environ["FAULT_CALLS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (os.environ["MLPIPE_RUN_ID"] + "\\n").encode())
    os.close(fd)
    deadline = time.time() + 60  # $FAULT_BARRIER: wait until that many executions started
    while len(open(os.environ["FAULT_CALLS"]).read().split()) < int(os.environ.get("FAULT_BARRIER", 0)):
        assert time.time() < deadline, "barrier not reached"
        time.sleep(0.01)
    time.sleep(float(os.environ.get("FAULT_DELAY", 0)))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "first.bin"), "wb") as handle:
        handle.write(b"a" * size)
    with open(os.path.join(out, "second.bin"), "wb") as handle:
        handle.write(b"b" * (size // 2))
        handle.flush()
        block = os.environ.get("FAULT_BLOCK", "")
        if block and os.path.exists(block):
            pids = os.environ["FAULT_PIDS"]
            with open(pids + ".tmp", "w") as note:
                note.write(f"{os.getpid()} {os.getppid()} {os.environ['MLPIPE_RUN_ID']}")
            os.replace(pids + ".tmp", pids)
            deadline = time.time() + 120
            while os.path.exists(block) and time.time() < deadline:
                time.sleep(0.05)
        handle.write(b"b" * (size - size // 2))
"""

# Reads both files of its input and checks they are whole: a reused partial output fails here.
READER = """
    import os, sys
    src = sys.argv[1]
    sizes = {name: os.path.getsize(os.path.join(src, name)) for name in ("first.bin", "second.bin")}
    assert sizes == {"first.bin": int(sys.argv[2]), "second.bin": int(sys.argv[2])}, sizes
    fd = os.open(os.environ["FAULT_CALLS"] + ".reader", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"r\\n")
    os.close(fd)
"""


class Faults:
    """One project with the writer (``w``) and reader (``r``) steps, and the files to watch."""

    def __init__(self, ws, project: Path, monkeypatch: pytest.MonkeyPatch):
        self.ws, self.project = ws, project
        self.calls = project / "calls.log"
        self.block = project / "block"
        self.pids = project / "pids"
        for key, path in (
            ("FAULT_CALLS", self.calls),
            ("FAULT_BLOCK", self.block),
            ("FAULT_PIDS", self.pids),
        ):
            monkeypatch.setenv(key, str(path))
        write_script(project / "steps" / "w", "w.py", WRITER)
        write_script(project / "steps" / "r", "r.py", READER)

    @property
    def datastore_root(self) -> Path:
        return self.ws._dir / "datastores" / "workspaceblobstore"

    def pipeline(self, size: int = SIZE, *, reader: bool = True, **writer: Any) -> Pipeline:
        out = PipelineData("w_out", datastore=self.ws.get_default_datastore())
        steps = [
            PythonScriptStep(
                "w.py",
                name="w",
                arguments=[out, size],
                outputs=[out],
                source_directory=str(self.project / "steps" / "w"),
                **writer,
            )
        ]
        if reader:
            steps.append(
                PythonScriptStep(
                    "r.py",
                    name="r",
                    arguments=[out, size],
                    inputs=[out],
                    source_directory=str(self.project / "steps" / "r"),
                )
            )
        return Pipeline(self.ws, steps)

    def executions(self) -> list[str]:
        """Step run ids of every execution of ``w`` so far, in order."""
        return self.calls.read_text().split() if self.calls.exists() else []

    def store(self):
        from mlpipe_provider.runtime.step_context import StepWorkspace
        from mlpipe_provider.store import OutputStore

        return OutputStore(
            StepWorkspace(self.ws._dir, self.ws._config).datastore("workspaceblobstore")
        )

    def entry_file(self, fingerprint: str) -> Path:
        return Path(self.store()._entry_path(fingerprint))

    def attempt_folder(self, step_run_id: str) -> Path:
        return self.datastore_root / "azureml" / step_run_id

    def assert_complete(self, record: dict, size: int = SIZE) -> None:
        folder = self.datastore_root / record["outputs"]["w_out"]["path"]
        assert (folder / "first.bin").read_bytes() == b"a" * size
        assert (folder / "second.bin").read_bytes() == b"b" * size

    def referenced_attempts(self, step: str = "w") -> set[str]:
        """Step run ids of ``step`` named by entries of the store: what later runs could reuse."""
        return {e["step_run_id"] for e in self.store().entries() if e.get("step_name") == step}


@pytest.fixture
def faults(airflow_db, ws, project, monkeypatch) -> Faults:
    return Faults(ws, project, monkeypatch)


def load_dag(pipeline: Pipeline, dag_id: str, default_args: str | None = None):
    """Compile into the session's DAG folder and load it the way the scheduler would.

    ``default_args`` (Python source) is added to the generated ``DAG(...)``: mlpipe has no
    retries setting of its own (v1 had none), a deployment sets Airflow's defaults.
    """
    from airflow.dag_processing.dagbag import DagBag

    from compiler.compile import compile_pipeline

    compiled = compile_pipeline(pipeline, dag_id, _DAGS)
    compiled.write()
    if default_args:
        text = compiled.path.read_text("utf-8")
        assert text.count("with DAG(\n") == 1
        text = text.replace("with DAG(\n", f"with DAG(\n    default_args={default_args},\n")
        compiled.path.write_text(text, "utf-8")
    bag = DagBag(dag_folder=str(compiled.path))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(compiled.dag_id)


def run(dag, conf: dict | None = None) -> tuple[Any, dict, str]:
    """``dag.test()``; returns (dag_run, {task_id: (state, record)}, the run's log text)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        dag_run = dag.test(run_conf=conf)
    return dag_run, task_records(dag_run), buffer.getvalue()


def when_blocked(pids: Path, action: Callable[[int, int, str], None]) -> threading.Thread:
    """Call ``action(step pid, task pid, step run id)`` once the writer blocks mid-write."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 120
        while not pids.exists():
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        step_pid, task_pid, run_id = pids.read_text().split()
        action(int(step_pid), int(task_pid), run_id)

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def forked_task_processes(task_ids: set[str]) -> Iterator[None]:
    """Run these tasks the way a LocalExecutor or Celery worker does: Airflow's supervisor forks a
    task process and reports its exit (a SIGKILL is a failure, retried if the task has retries).

    ``dag.test()`` normally runs tasks inside the test process, which a test cannot kill; here
    only the transport to the execution API is in-process instead of HTTP.
    """
    from airflow.executors.workloads import BundleInfo
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.execution_time import supervisor
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    original = supervisor.run_task_in_process

    def run_task(ti, task, client=None):
        if task.task_id not in task_ids:
            return original(ti, task, client)
        supervisor.supervise_task(
            ti=ti,
            bundle_info=BundleInfo(name="dags-folder"),
            dag_rel_path=Path(task.dag.fileloc).relative_to(_DAGS),
            token="",
            client=supervisor.InProcessTestSupervisor._api_client(task.dag),
            log_path=str(_DAGS.parent / "logs" / f"forked-{ti.id}-{ti.try_number}.log"),
        )
        with create_session() as session:
            row = session.scalar(select(TaskInstance).where(TaskInstance.id == ti.id))
            if row.state == TaskInstanceState.RUNNING:
                # The process died without reporting (SIGKILL): the scheduler's part, as when
                # the executor reports a failed workload for a running task: fail or retry it.
                row.task = task
                row.handle_failure("the task process was killed", session=session)
            state = row.state
        return SimpleNamespace(ti=SimpleNamespace(state=state, task=task), msg=None, state=state)

    supervisor.run_task_in_process = run_task
    try:
        yield
    finally:
        supervisor.run_task_in_process = original


# --- processes killed -------------------------------------------------------------------------


def test_step_sigkilled_mid_write_leaves_nothing_reusable_and_the_next_run_recomputes(faults):
    """kill -9 of the step's process from outside while its second output file is half written."""
    faults.block.touch()
    killed: list[str] = []

    def kill_step(step_pid: int, task_pid: int, run_id: str) -> None:
        killed.append(run_id)
        kill(step_pid)

    when_blocked(faults.pids, kill_step)
    dag = load_dag(faults.pipeline(), "faults_step_killed")
    dag_run, records, log = run(dag)
    assert records["w"][0] == "failed" and records["r"][0] == "upstream_failed", records
    assert "exited with code -9" in log
    (killed_run,) = killed
    partial = faults.attempt_folder(killed_run) / "w_out" / "second.bin"
    assert partial.stat().st_size == SIZE // 2  # the half-written file is there...
    fingerprint = step_fingerprint(dag_run, "w")
    assert faults.store().read_entry(fingerprint) is None  # ...and nothing points at it
    assert faults.store().read_lease(fingerprint) is None  # the task released its lease

    faults.block.unlink()
    dag_run, records, _ = run(dag)
    assert str(dag_run.state) == "success", records
    assert faults.executions() == [killed_run, records["w"][1]["step_run_id"]]
    faults.assert_complete(records["w"][1])
    assert faults.referenced_attempts() == {records["w"][1]["step_run_id"]}


def test_task_process_sigkilled_leaves_a_lease_that_expires(faults, monkeypatch):
    """kill -9 of the Airflow task process (the worker) mid-step: its heartbeat stops, so the
    lease it held expires after MLPIPE_LEASE_TTL_S instead of blocking later runs."""
    monkeypatch.setenv("MLPIPE_LEASE_TTL_S", "3")
    faults.block.touch()
    killed: list[str] = []

    def kill_worker(step_pid: int, task_pid: int, run_id: str) -> None:
        assert task_pid != os.getpid()
        killed.append(run_id)
        step_pids.append(step_pid)
        kill(task_pid)  # only the worker: the kernel takes its step down with it (PDEATHSIG)

    step_pids: list[int] = []
    when_blocked(faults.pids, kill_worker)
    dag = load_dag(faults.pipeline(), "faults_worker_killed")
    with forked_task_processes({"w"}):
        dag_run, records, _ = run(dag)
    assert records["w"][0] == "failed", records
    (step_pid,) = step_pids
    deadline = time.monotonic() + 10
    while process_alive(step_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(step_pid), "the step outlived its killed worker"
    (killed_run,) = killed
    fingerprint = step_fingerprint(dag_run, "w")
    assert faults.store().read_entry(fingerprint) is None
    lease = faults.store().read_lease(fingerprint)
    assert lease is not None and lease.holder.endswith("/w") and lease.ttl == 3  # left behind

    faults.block.unlink()
    started = time.monotonic()
    dag_run, records, _ = run(dag)
    assert str(dag_run.state) == "success", records
    assert time.monotonic() - started < 60  # waited for the lease's expiry, not a 600 s claim
    assert faults.executions() == [killed_run, records["w"][1]["step_run_id"]]
    faults.assert_complete(records["w"][1])
    assert faults.referenced_attempts() == {records["w"][1]["step_run_id"]}
    assert faults.store().read_lease(fingerprint) is None


def test_worker_killed_mid_step_is_retried_and_the_retry_recomputes(faults):
    """kill -9 of the task process with retries=1: Airflow retries the task, the retry writes a
    fresh attempt and commits it; the killed attempt is never referenced."""
    faults.block.touch()
    killed: list[str] = []

    def kill_worker(step_pid: int, task_pid: int, run_id: str) -> None:
        assert task_pid != os.getpid()
        killed.append(run_id)
        kill(task_pid)
        kill(step_pid)
        faults.block.unlink()  # the retry does not block

    when_blocked(faults.pids, kill_worker)
    dag = load_dag(
        faults.pipeline(),
        "faults_worker_retried",
        default_args="{'retries': 1, 'retry_delay': __import__('datetime').timedelta(seconds=1)}",
    )
    assert dag.get_task("w").retries == 1
    with forked_task_processes({"w"}):
        dag_run, records, _ = run(dag)
    assert str(dag_run.state) == "success", records
    (killed_run,) = killed
    retry_run = faults.executions()[-1]
    assert faults.executions() == [killed_run, retry_run] and retry_run != killed_run
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tries = session.scalar(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == dag.dag_id,
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.task_id == "w",
            )
        )
    assert tries == 2
    assert faults.referenced_attempts() == {retry_run}
    faults.assert_complete(records["w"][1])
    assert records["r"][0] == "success"  # the reader saw whole files


# --- the disk fills up ------------------------------------------------------------------------


@pytest.fixture
def small_disk(faults) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted as the default datastore's folder (entries, leases and outputs)."""
    root = faults.datastore_root
    root.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "mlpipe-faults", str(root)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {mounted.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_disk_full_while_writing_outputs_commits_nothing_and_a_rerun_succeeds(faults, small_disk):
    filler = small_disk / "filler.bin"
    filler.write_bytes(b"\0" * 3 * 2**20)  # 1 MiB left; the step writes 2 x 1 MB
    size = 1_000_000
    dag = load_dag(faults.pipeline(size), "faults_disk_full")
    dag_run, records, log = run(dag)
    assert records["w"][0] == "failed" and records["r"][0] == "upstream_failed", records
    assert "No space left on device" in log and "step 'w' failed" in log
    fingerprint = step_fingerprint(dag_run, "w")
    assert faults.store().read_entry(fingerprint) is None
    assert faults.store().read_lease(fingerprint) is None
    assert faults.referenced_attempts() == set()

    filler.unlink()  # free the space; the same step (same fingerprint) runs again
    for folder in (small_disk / "azureml").iterdir():  # and the failed attempt's leftovers
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    dag_run, records, _ = run(dag)
    assert str(dag_run.state) == "success", records
    assert step_fingerprint(dag_run, "w") == fingerprint
    faults.assert_complete(records["w"][1], size)
    assert faults.referenced_attempts() == {records["w"][1]["step_run_id"]}


# --- damaged entries and damaged stored outputs ----------------------------------------------


def _manifest_damage(good: bytes, fingerprint: str) -> dict[str, bytes]:
    manifest = json.loads(good)

    def variant(**changes: Any) -> bytes:
        data = {**manifest, **changes}
        return json.dumps({k: v for k, v in data.items() if v is not None}).encode()

    output = manifest["outputs"]["w_out"]
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "not json": b"\x00\xff{not json",
        "a JSON list": b"[1, 2]",
        "another fingerprint": variant(fingerprint="0" * len(fingerprint)),
        "no outputs": variant(outputs=None),
        "empty outputs": variant(outputs={}),
        "outputs not an object": variant(outputs=["w_out"]),
        "output without a path": variant(outputs={"w_out": {"datastore": output["datastore"]}}),
        "output path escaping": variant(outputs={"w_out": {**output, "path": "../../../etc"}}),
        "output on an unknown datastore": variant(
            outputs={"w_out": {**output, "datastore": "nosuch"}}
        ),
        "no step run id": variant(step_run_id=None),
    }


def test_a_damaged_manifest_is_a_miss_and_the_step_runs_again(faults):
    dag = load_dag(faults.pipeline(), "faults_manifest")
    dag_run, records, _ = run(dag)
    assert str(dag_run.state) == "success", records
    fingerprint = step_fingerprint(dag_run, "w")
    entry = faults.entry_file(fingerprint)
    for case, damaged in _manifest_damage(entry.read_bytes(), fingerprint).items():
        entry.write_bytes(damaged)
        before = len(faults.executions())
        dag_run, records, log = run(dag)
        assert str(dag_run.state) == "success", (case, records, log[-3000:])
        assert records["w"][0] == "success", (case, records)  # ran: not a hit, not a crash
        assert len(faults.executions()) == before + 1, case
        faults.assert_complete(records["w"][1])
        assert (
            faults.store().read_entry(fingerprint)["step_run_id"]
            == (records["w"][1]["step_run_id"])
        ), case  # the new result replaced the damaged entry


def test_damaged_stored_outputs_under_a_manifest_are_a_miss(faults, monkeypatch):
    """Deleted folder, empty file and same-size change under full verification are in
    tests/test_reuse.py; these are the other ways a stored output can stop matching."""

    def remove_one_file(folder: Path) -> None:
        (folder / "second.bin").unlink()

    def grow_a_file(folder: Path) -> None:
        with open(folder / "first.bin", "ab") as handle:
            handle.write(b"a")

    def shrink_a_file(folder: Path) -> None:
        os.truncate(folder / "second.bin", SIZE - 1)

    def add_a_file(folder: Path) -> None:
        (folder / "stray.txt").write_text("not from the step")

    def replace_folder_with_a_file(folder: Path) -> None:
        subprocess.run(["rm", "-rf", str(folder)], check=True)
        folder.write_bytes(b"a" * SIZE)

    def same_size_other_bytes(folder: Path) -> None:
        (folder / "first.bin").write_bytes(b"z" * SIZE)
        monkeypatch.setenv("MLPIPE_REUSE_VERIFY", "full")

    dag = load_dag(faults.pipeline(), "faults_outputs")
    dag_run, records, _ = run(dag)
    fingerprint = step_fingerprint(dag_run, "w")
    for damage in (
        remove_one_file,
        grow_a_file,
        shrink_a_file,
        add_a_file,
        replace_folder_with_a_file,
        same_size_other_bytes,
    ):
        stored = faults.store().read_entry(fingerprint)["outputs"]["w_out"]
        damage(faults.datastore_root / stored["path"])
        before = len(faults.executions())
        dag_run, records, log = run(dag)
        assert str(dag_run.state) == "success", (damage.__name__, records, log[-3000:])
        assert len(faults.executions()) == before + 1, damage.__name__
        faults.assert_complete(records["w"][1])


# --- the datastore goes away ------------------------------------------------------------------


def test_datastore_unreachable_mid_run_retries_then_fails_clearly(faults, azurite, monkeypatch):
    """Slow (about a minute, most of it the blob client's timeouts while Azurite is down).

    Azurite (the default datastore) stops while the step runs: its output upload is retried
    with backoff, then the step fails naming the datastore, with no secret in the message; after
    Azurite is back, a re-run succeeds and reuses nothing from the failed attempt."""
    from azurite import ACCOUNT_KEY, register_blob_datastore

    register_blob_datastore(faults.ws, azurite, "outagestore", default=True)
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "3")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.5")
    faults.block.touch()
    stopped_at: list[float] = []

    def outage(step_pid: int, task_pid: int, run_id: str) -> None:
        azurite.stop()
        stopped_at.append(time.monotonic())
        faults.block.unlink()  # the script finishes; its outputs cannot be stored

    when_blocked(faults.pids, outage)
    dag = load_dag(faults.pipeline(), "faults_outage")
    try:
        dag_run, records, log = run(dag)
        failed_at = time.monotonic()
    finally:
        azurite.start()
    assert stopped_at, log[-3000:]
    assert records["w"][0] == "failed" and records["r"][0] == "upstream_failed", records
    assert failed_at - stopped_at[0] >= 1.5  # waited 0.5 s, then 1 s, between its 3 attempts
    failure = log[log.find("outagestore") - 300 :][:2000]
    assert "outagestore" in log and "'w'" in failure, log[-3000:]
    assert ACCOUNT_KEY not in log and ACCOUNT_KEY[:20] not in log

    dag_run, records, log = run(dag)
    assert str(dag_run.state) == "success", (records, log[-3000:])
    assert records["w"][0] == "success" and records["r"][0] == "success"  # r checks the sizes
    assert len(faults.executions()) == 2


# --- many runs at once ------------------------------------------------------------------------


def test_ten_concurrent_identical_runs_compute_each_step_once(faults, monkeypatch):
    """Slow (about a minute on 2 cores): ten embedded runs (Experiment.submit, one process and
    one Airflow DB each) of the same pipeline at once."""
    from mlpipe_provider.sdk import Experiment

    monkeypatch.setenv("FAULT_DELAY", "3")  # the first run is still computing when the rest arrive
    pipeline = faults.pipeline()
    experiment = Experiment(faults.ws, "faults_ten")
    runs = [experiment.submit(pipeline) for _ in range(10)]
    statuses = [run.wait_for_completion(show_output=False) for run in runs]
    assert statuses == ["Finished"] * 10
    assert len(faults.executions()) == 1
    assert (faults.project / "calls.log.reader").read_text().split() == ["r"]
    folders = set()
    for pipeline_run in runs:
        (writer,) = pipeline_run.find_step_run("w")
        output = writer.get_output_data("w_out")
        folders.add(output.path_on_datastore)
        faults.assert_complete({"outputs": {"w_out": {"path": output.path_on_datastore}}})
    assert len(folders) == 1  # every run got the one computed result


def test_two_runs_committing_the_same_entry_at_once_leave_one_whole_entry(faults, monkeypatch):
    """Slow (two embedded runs): allow_reuse=False so both compute; a barrier in the script makes
    them finish, digest and commit the same fingerprint together."""
    from mlpipe_provider.sdk import Experiment

    monkeypatch.setenv("FAULT_BARRIER", "2")
    pipeline = faults.pipeline(reader=False, allow_reuse=False)
    experiment = Experiment(faults.ws, "faults_race")
    runs = [experiment.submit(pipeline) for _ in range(2)]
    assert [run.wait_for_completion(show_output=False) for run in runs] == ["Finished"] * 2
    computed = faults.executions()
    assert len(computed) == 2
    (entry,) = [e for e in faults.store().entries() if e.get("step_name") == "w"]
    assert entry["step_run_id"] in computed
    faults.assert_complete(entry)
    assert faults.store().read_lease(entry["fingerprint"]) is None


RACER = """
import json, sys, time
from pathlib import Path
from mlpipe_provider.config import load_config
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.store import OutputStore

ws_dir, datastore, who, start, rounds = sys.argv[1:6]
ws = Path(ws_dir)
store = OutputStore(StepWorkspace(ws, load_config(ws)).datastore(datastore))
pad = who * 100_000  # large enough that an interleaved or torn write would show
torn = []
for i in range(int(rounds)):
    fingerprint = f"{i:064x}"
    while time.time() < float(start) + i * 0.3:
        time.sleep(0.001)
    if who == "reader":  # read raw bytes through the slot, as a reuse sensor would
        until = time.time() + 0.25
        while time.time() < until:
            found = store.objects.read(store._entry_path(fingerprint))
            if found is not None:
                try:
                    data = json.loads(found[0])
                    assert data["pad"] == data["step_run_id"] * 100_000
                except Exception as exc:
                    torn.append(f"{i}: {exc!r}")
    else:
        store.commit({"fingerprint": fingerprint, "step_run_id": who, "outputs": {}, "pad": pad})
print(json.dumps(torn))
"""


@pytest.mark.parametrize("where", ["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def test_two_processes_committing_the_same_fingerprint_at_the_same_instant(faults, request, where):
    """Two writers race on each of several fingerprints through ``OutputStore.commit`` while a
    third process reads the entry raw: every read and the final entry are whole manifests."""
    datastore, rounds = "workspaceblobstore", 8
    if where == "azurite":
        from azurite import register_blob_datastore

        datastore, rounds = "racestore", 5
        register_blob_datastore(faults.ws, request.getfixturevalue("azurite"), datastore)
    start = str(time.time() + 3)  # the three processes import first, then meet at ``start``
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(faults.ws._dir), datastore, who, start, str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for who in ("A", "B", "reader")
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    assert json.loads(outputs[2]) == []  # no torn read
    from mlpipe_provider.config import load_config
    from mlpipe_provider.runtime.step_context import StepWorkspace
    from mlpipe_provider.store import OutputStore

    store = OutputStore(
        StepWorkspace(faults.ws._dir, load_config(faults.ws._dir)).datastore(datastore)
    )
    for i in range(rounds):
        entry = store.read_entry(f"{i:064x}")
        assert entry is not None and entry["step_run_id"] in ("A", "B")
        assert entry["pad"] == entry["step_run_id"] * 100_000
