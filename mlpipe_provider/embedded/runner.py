"""Entry point of the background process that runs one pipeline run on the embedded Airflow.

``Experiment.submit`` starts it and returns at once; it migrates the SQLite DB if needed (under a
file lock, so concurrent submits do not race), runs the DAG with ``dag.test()``, and keeps
``status.json`` current from Airflow's own task instance table.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from mlpipe_provider.embedded.status import (
    REQUEST_FILE,
    STATUS_FILE,
    STEP_STATUS,
    merge_reuse_decisions,
    read_json,
    write_json,
)


def ensure_database(airflow_home: Path, run_db: Path) -> None:
    """Give this run its own SQLite metadata DB, copied from a template migrated once.

    Separate files mean concurrent runs never contend for SQLite's single writer lock, and each
    run keeps its full Airflow record beside its status. Migrating the template happens once per
    workspace, in a child process (Airflow binds its DB at import) and under a file lock.
    """
    airflow_home.mkdir(parents=True, exist_ok=True)
    template = airflow_home / "template.db"
    with open(airflow_home / ".mlpipe-db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            partial = airflow_home / "template.db.partial"
            partial.unlink(missing_ok=True)
            env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{partial}"}
            subprocess.run(  # noqa: S603 - our own interpreter and a fixed snippet
                [sys.executable, "-c", "from airflow.utils import db; db.initdb()"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            os.replace(partial, template)
    run_db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, run_db)


def ensure_pools(pools_file: Path | None) -> None:
    if pools_file is None or not pools_file.is_file():
        return
    from airflow.models.pool import Pool

    for name, pool in json.loads(pools_file.read_text()).items():
        Pool.create_or_update_pool(
            name, pool["slots"], pool.get("description", ""), pool.get("include_deferred", False)
        )


def snapshot(dag_id: str, logical_date: dt.datetime) -> dict[str, Any] | None:
    """States and published records of the run's tasks, read from Airflow's metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dag_run = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date)
        )
        if dag_run is None:
            return None
        steps: dict[str, Any] = {}
        for ti in session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ):
            steps[ti.task_id] = {
                "state": ti.state,
                "status": STEP_STATUS.get(ti.state, "Running"),
                "start": ti.start_date.isoformat() if ti.start_date else None,
                "end": ti.end_date.isoformat() if ti.end_date else None,
                "try_number": ti.try_number,
                "display_name": getattr(ti, "task_display_name", None) or ti.task_id,
                "operator": ti.operator,
            }
        for xcom in session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id)
        ):
            entry = steps.setdefault(xcom.task_id, {})
            value = XComModel.deserialize_value(xcom)
            if xcom.key == "return_value":
                entry["record"] = value
            else:
                entry.setdefault("xcom", {})[xcom.key] = value
        return {
            "airflow_run_id": dag_run.run_id,
            "dag_state": str(dag_run.state),
            "steps": merge_reuse_decisions(steps),
        }


def step_targets(dag: Any) -> dict[str, str]:
    """Each step task's compute target name (v1's ``get_details()["target"]``)."""
    targets = {}
    for task_id, task in dag.task_dict.items():
        compute = getattr(task, "compute", None)
        if isinstance(compute, dict) and compute.get("name"):
            targets[task_id] = str(compute["name"])
    return targets


class StatusWriter:
    def __init__(
        self,
        run_dir: Path,
        request: dict[str, Any],
        logical_date: dt.datetime,
        targets: dict[str, str] | None = None,
    ):
        self.run_dir = run_dir
        self.request = request
        self.logical_date = logical_date
        self.targets = dict(targets or {})
        self.stop = threading.Event()
        self.last: dict[str, Any] = {}

    def write(self, status: str, error: str | None = None) -> None:
        try:
            snap = snapshot(self.request["dag_id"], self.logical_date) or {}
        except Exception:  # noqa: BLE001 - a busy SQLite must not kill the run; next tick retries
            snap = self.last
        self.last = snap
        for task_id, entry in (snap.get("steps") or {}).items():
            if task_id in self.targets:
                entry["target"] = self.targets[task_id]
        if status in ("Failed", "Canceled") and error is None:
            error = failure_summary(snap.get("steps") or {})
        write_json(
            self.run_dir / STATUS_FILE,
            {"status": status, "error": error, "updated": time.time(), **snap},
        )

    def loop(self) -> None:
        while not self.stop.wait(0.5):
            self.write("Running")


def failure_summary(steps: dict[str, Any]) -> str | None:
    """Which steps failed and why, for the run's ``error`` (what ``wait_for_completion`` raises).

    Steps with the same error share one line: a run the plan task refused (a conf key the DAG
    does not take) fails every step with the plan's one cause.
    """
    by_error: dict[str, list[str]] = {}
    for task_id, entry in sorted(steps.items()):
        if entry.get("status") == "Failed":
            name = (
                (entry.get("record") or {}).get("step_name") or entry.get("display_name") or task_id
            )
            by_error.setdefault(entry.get("error") or "(no error recorded)", []).append(repr(name))
    lines = [f"step {', '.join(names)} failed: {error}" for error, names in by_error.items()]
    return "\n".join(lines) or None


def run(run_dir: Path) -> int:
    """Run the request; whatever goes wrong before a step starts still ends in ``Failed`` with
    its cause in ``status.json``, so a program following the run never waits on a dead runner."""
    try:
        return _run(run_dir)
    except Exception as exc:  # noqa: BLE001 - recorded for the program, then the process fails
        write_json(
            run_dir / STATUS_FILE,
            {
                "status": "Failed",
                "error": "the run could not start: " + "".join(traceback.format_exception(exc)),
                "updated": time.time(),
                "steps": {},
            },
        )
        return 1


def _run(run_dir: Path) -> int:
    request = read_json(run_dir / REQUEST_FILE)
    assert request is not None, f"no {REQUEST_FILE} in {run_dir}"
    write_json(run_dir / STATUS_FILE, {"status": "Preparing", "updated": time.time(), "steps": {}})
    ensure_database(Path(request["airflow_home"]), Path(request["airflow_db"]))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=request["dag_file"])
    dag = None if bag.import_errors else bag.get_dag(request["dag_id"])
    if dag is None:
        errors = "\n".join(f"{k}: {v}" for k, v in bag.import_errors.items())
        errors = errors or f"{request['dag_file']} defines no DAG {request['dag_id']!r}"
        write_json(
            run_dir / STATUS_FILE,
            {
                "status": "Failed",
                "error": f"DAG import failed, no step started:\n{errors}",
                "updated": time.time(),
                "steps": {},
            },
        )
        return 1
    ensure_pools(Path(request["pools_file"]) if request.get("pools_file") else None)
    logical_date = dt.datetime.fromisoformat(request["logical_date"])
    writer = StatusWriter(run_dir, request, logical_date, step_targets(dag))
    thread = threading.Thread(target=writer.loop, daemon=True)
    thread.start()
    try:
        dag_run = dag.test(logical_date=logical_date, run_conf=request.get("conf") or None)
        state = str(getattr(dag_run, "state", "failed"))
        status = "Finished" if state == "success" else "Failed"
        error = None
    except Exception as exc:  # noqa: BLE001 - recorded for the user, then the process fails
        status, error = "Failed", "".join(traceback.format_exception(exc))
    writer.stop.set()
    thread.join(timeout=5)
    writer.write(status, error)
    return 0 if status == "Finished" else 1


def main() -> None:
    sys.exit(run(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
