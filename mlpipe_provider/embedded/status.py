"""The run record files a pipeline run keeps in the workspace (``runs/<run id>/``).

``request.json`` says what was asked, ``status.json`` is rewritten (atomically) by the runner as
steps change state, so any later process can follow or inspect the run without Airflow imported.
"""

from __future__ import annotations

from typing import Any

# the run files' JSON helpers are the records layer's (one JSON form for every workspace file)
from mlpipe_provider.records.store import read_json as read_json
from mlpipe_provider.records.store import write_json as write_json

REQUEST_FILE = "request.json"
STATUS_FILE = "status.json"
LOG_FILE = "runner.log"

# Airflow task states -> v1 step statuses
STEP_STATUS = {
    None: "NotStarted",
    "scheduled": "Queued",
    "queued": "Queued",
    "running": "Running",
    "deferred": "Running",
    "up_for_reschedule": "Running",
    "up_for_retry": "Running",
    "restarting": "Running",
    "success": "Finished",
    "skipped": "Skipped",
    "failed": "Failed",
    "upstream_failed": "NotStarted",
    "removed": "Canceled",
}
TERMINAL = {"Finished", "Failed", "Canceled"}


def merge_reuse_decisions(tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Step entries from task entries: the plan task's decisions fold into the steps they decide.

    A reused step's task is skipped in Airflow (by the plan task, or by itself as it started);
    for v1 callers it is a finished step whose record (outputs, metrics, ``azureml.reusedrunid``)
    is the reused one: in the plan's return value (``contract.planned_record``), or the step's own.

    Why a step failed (``runtime/step_failure.publish_error``) becomes the entry's ``error``; a
    step stopped because another failed (continue_on_step_failure=False) is Canceled. When the
    plan task failed (a conf key the DAG does not take), no step started, and each is Failed
    with the plan's cause; it never shows NotStarted with no reason.
    """
    from mlpipe_provider.contract.constants import (
        COMPANION_OPERATORS,
        ERROR_XCOM,
        FINGERPRINT_XCOM,
        PLAN_TASK_ID,
        planned_record,
    )

    plan = tasks.get(PLAN_TASK_ID) or {}
    plan_error = (plan.get("xcom") or {}).get(ERROR_XCOM) if plan.get("state") == "failed" else None
    # a companion task (a ParallelRunStep's partition) that failed: its step, in the same
    # TaskGroup, did not start, and shows the companion's error as its own
    companion_errors = {
        task_id.rpartition(".")[0]: (info.get("xcom") or {}).get(ERROR_XCOM)
        for task_id, info in tasks.items()
        if info.get("operator") in COMPANION_OPERATORS and info.get("state") == "failed"
    }
    steps: dict[str, dict[str, Any]] = {}
    for task_id, info in tasks.items():
        if task_id == PLAN_TASK_ID or info.get("operator") in COMPANION_OPERATORS:
            continue
        entry = dict(info)
        companion_error = (
            companion_errors.get(task_id.rpartition(".")[0]) if "." in task_id else None
        )
        if isinstance(companion_error, dict) and entry.get("state") == "upstream_failed":
            entry["state"] = "failed"
            entry["status"] = "Canceled" if companion_error.get("kind") == "stopped" else "Failed"
            entry["error"] = companion_error.get("error")
            steps[task_id] = entry
            continue
        record = planned_record(plan.get("record"), task_id)
        if record is not None:
            entry["record"] = record
        record = entry.get("record")
        own_fingerprint = (info.get("xcom") or {}).get(FINGERPRINT_XCOM)
        if own_fingerprint:  # a step that ran published it as it started, even if it then failed
            entry["fingerprint"] = own_fingerprint
        if isinstance(record, dict):
            entry["fingerprint"] = record.get("fingerprint") or entry.get("fingerprint")
            if record.get("reused") and entry.get("state") == "skipped":
                entry["status"] = "Finished"
        own_error = (info.get("xcom") or {}).get(ERROR_XCOM)
        if isinstance(own_error, dict) and entry.get("state") == "failed":
            entry["error"] = own_error.get("error")
            if own_error.get("kind") == "stopped":
                entry["status"] = "Canceled"
        elif isinstance(plan_error, dict) and entry.get("state") in (None, "upstream_failed"):
            entry["error"] = plan_error.get("error")
            entry["status"] = "Failed"
        elif entry.get("state") == "upstream_failed":
            entry["status"] = "Canceled"
            entry["error"] = "not run: a step it depends on failed or did not run"
        steps[task_id] = entry
    return steps
