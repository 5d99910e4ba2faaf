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
    """Step entries from task entries: each reuse sensor folds into the step it decides for.

    A reused step's task is skipped in Airflow; for v1 callers it is a finished step whose record
    (outputs, metrics, ``azureml.reusedrunid``) is the one the sensor found.

    Why a step failed (``runtime/step_failure.publish_error``) becomes the entry's ``error``. A
    sensor that failed stands for its step: the step never started, but it is Failed with the
    sensor's cause (a bad parameter, a missing input path), or Canceled when it was only stopped
    because another step failed; it never shows NotStarted with no reason.
    """
    from mlpipe_provider.contract.constants import ERROR_XCOM, REUSE_SUFFIX

    steps: dict[str, dict[str, Any]] = {}
    for task_id, info in tasks.items():
        if info.get("operator") == "StepReuseSensor":
            continue
        entry = dict(info)
        sensor = tasks.get(f"{task_id}{REUSE_SUFFIX}") or {}
        decision = sensor.get("record")
        if isinstance(decision, dict):
            entry["fingerprint"] = decision.get("fingerprint")
            if decision.get("decision") == "reuse":
                entry["record"] = decision.get("record")
                entry["status"] = "Finished"
        if entry.get("state") is None and sensor.get("state") in ("running", "up_for_reschedule"):
            entry["status"] = "Running"
        own_error = (info.get("xcom") or {}).get(ERROR_XCOM)
        sensor_error = (sensor.get("xcom") or {}).get(ERROR_XCOM)
        if isinstance(own_error, dict) and entry.get("state") == "failed":
            entry["error"] = own_error.get("error")
        elif isinstance(sensor_error, dict) and sensor.get("state") == "failed":
            entry["error"] = sensor_error.get("error")
            if entry.get("state") in (None, "upstream_failed"):
                entry["status"] = "Canceled" if sensor_error.get("kind") == "stopped" else "Failed"
        elif entry.get("state") == "upstream_failed" or sensor.get("state") == "upstream_failed":
            entry["status"] = "Canceled"
            entry["error"] = "not run: a step it depends on failed or did not run"
        steps[task_id] = entry
    return steps
