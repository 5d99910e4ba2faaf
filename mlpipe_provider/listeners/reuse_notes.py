"""A note on every reused step's task instance, naming the run it reused.

A reused step is ``skipped`` in Airflow. Skipped by the plan task it never ran, so it has no log
of its own to say why; a task cannot write its own note from a worker (the execution API has
no call for it). The scheduler can: when a DAG run ends, Airflow calls this listener in the
process that owns the metadata DB (the scheduler, or ``dag.test``), and it writes each reused
step's note ("reused step run ... of DAG ... run ...") from the records the run published. The
UI shows the note on the task instance, next to its ``skipped`` state.

The listener is called inside the scheduler's own transaction, where committing is forbidden
(Airflow guards it: "UNEXPECTED COMMIT - THIS WILL BREAK HA LOCKS"), so the notes are written
from a short-lived thread with a session of its own, after that transaction ends. Best effort:
a note that cannot be written never fails the run or the scheduler; an existing note (a
person's) is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


def reuse_note(record: dict[str, Any]) -> str:
    """The note's text: which step run was reused, from which pipeline run."""
    return (
        f"mlpipe: reused step run {record.get('reused_run_id')} "
        f"(DAG {record.get('reused_dag_id')!r}, run {record.get('reused_pipeline_run_id')!r})"
    )


def write_reuse_notes(dag_id: str, run_id: str) -> int:
    """Note every skipped step of the run that carries a reused record; how many were noted."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from mlpipe_provider.contract.constants import PLAN_TASK_ID, planned_record

    noted = 0
    with create_session() as session:
        # keyed by (task id, map index): each mapped task instance (a sweep's trial) has its own
        skipped = {
            (ti.task_id, ti.map_index): ti
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.state == TaskInstanceState.SKIPPED,
                )
            )
        }
        if not skipped:
            return 0
        values: dict[tuple[str, int], Any] = {}
        for xcom in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id.in_([PLAN_TASK_ID, *(key[0] for key in skipped)]),
                XComModel.key == "return_value",
            )
        ):
            values[(xcom.task_id, xcom.map_index)] = XComModel.deserialize_value(xcom)
        plan = values.get((PLAN_TASK_ID, -1))
        for (task_id, map_index), ti in skipped.items():
            planned = planned_record(plan, task_id)
            record = planned or values.get((task_id, map_index))
            if planned is not None:  # never started: no worker stored its links
                _store_links(session, dag_id, run_id, task_id, planned)
            if isinstance(record, dict) and record.get("reused") and not ti.note:
                ti.note = reuse_note(record)
                noted += 1
    return noted


def _store_links(session: Any, dag_id: str, run_id: str, task_id: str, record: Any) -> None:
    """The extra links of a step the plan task skipped, where a worker would have put them
    (the XCom keys of ``operators/links.py``'s link classes)."""
    from airflow.models.xcom import XComModel

    from mlpipe_provider.operators.links import STEP_LINKS, mlflow_run_url, reused_run_url

    urls = {"MlflowRunLink": mlflow_run_url(record), "ReusedRunLink": reused_run_url(record)}
    for link in STEP_LINKS:
        url = urls.get(type(link).__name__)
        if url:
            XComModel.set(
                link.xcom_key, url, dag_id=dag_id, task_id=task_id, run_id=run_id, session=session
            )


def _write(dag_id: str, run_id: str) -> None:
    try:
        write_reuse_notes(dag_id, run_id)
    except Exception as exc:  # noqa: BLE001 - a note is never worth failing a run for
        log.warning("mlpipe: could not note reused steps of %s: %s", run_id, exc)


def _note(dag_run: Any) -> None:
    """Write the notes from a thread: its session (sessions are per thread) commits on its own,
    never the caller's, which the scheduler holds open and may not commit here."""
    import threading

    try:
        dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)
    except Exception:  # noqa: BLE001 - never disturb the caller
        return
    threading.Thread(
        target=_write, args=(dag_id, run_id), name="mlpipe-reuse-notes", daemon=True
    ).start()


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _note(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _note(dag_run)
