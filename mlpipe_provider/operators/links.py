"""Extra links on every step task in the Airflow UI: its MLflow run, and the run it reused.

Airflow 3 computes an operator's extra links on the worker when the task ends (the task runner
calls ``get_link`` and stores each URL as an XCom named by the link's ``xcom_key``); the API
server only reads those XComs back, so the link classes need no plugin registration and the API
server never imports this module. The URLs come from the step's own record (its XCom return
value): ``mlflow_run_url`` (written by tracking when an MLflow server is configured) and, for a
reused step, the dag id, run id and task id of the task that produced the result.

A step the pipeline's plan task found reused never starts, so no worker computes its links: the
listener that writes reuse notes (``listeners/reuse_notes.py``) stores its "Reused run" link
under the same XCom key when the DAG run ends.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

MLFLOW_LINK_NAME = "MLflow run"
REUSED_LINK_NAME = "Reused run"


def airflow_base_url() -> str:
    """Where the Airflow UI answers (``[api] base_url``), as Airflow builds its own log URLs."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")


def task_instance_url(dag_id: str, run_id: str, task_id: str | None) -> str:
    """The Airflow UI page of one task instance (of its DAG run, where the task is unknown)."""
    url = f"{airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{url}/tasks/{quote(task_id, safe='')}" if task_id else url


def reused_run_url(record: Any) -> str:
    """The task instance that produced a reused step's result; "" for a step that ran."""
    if not isinstance(record, dict) or not record.get("reused"):
        return ""
    dag_id, run_id = record.get("reused_dag_id"), record.get("reused_pipeline_run_id")
    if not dag_id or not run_id:
        return ""
    return task_instance_url(str(dag_id), str(run_id), record.get("reused_task_id"))


def mlflow_run_url(record: Any) -> str:
    """The step's MLflow run in the MLflow UI; "" without tracking or with a file store."""
    if not isinstance(record, dict):
        return ""
    return str(record.get("mlflow_run_url") or "")


def _record(ti: Any) -> Any:
    """The step record the task published (``ti`` is the running task instance at its end)."""
    pull = getattr(ti, "xcom_pull", None)
    if pull is None:
        return None
    try:
        return pull(task_ids=ti.task_id, key="return_value")
    except Exception:  # noqa: BLE001 - no record (the step failed early): no link
        return None


class MlflowRunLink(BaseOperatorLink):
    """The step's run in MLflow, when the workspace tracks runs in an MLflow server."""

    name = MLFLOW_LINK_NAME

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return mlflow_run_url(_record(ti_key))


class ReusedRunLink(BaseOperatorLink):
    """For a reused (skipped) step, the task instance of the run whose result it reused."""

    name = REUSED_LINK_NAME

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return reused_run_url(_record(ti_key))


STEP_LINKS = (MlflowRunLink(), ReusedRunLink())
