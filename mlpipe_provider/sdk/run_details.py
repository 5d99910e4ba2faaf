"""What v1's run objects report about themselves, built from a run's ``status.json`` shape.

``get_details()`` in v1 is a dict with fixed keys (``runId``, ``target``, ``status``,
``startTimeUtc``, ``endTimeUtc``, ``properties``, ``inputDatasets``, ``outputDatasets``,
``logFiles``, ``error`` when it failed); programs index into it, so every key is present with the
same meaning. ``endTimeUtc`` is left out while a run is in progress, as v1 does.

Methods that only make sense against the Azure service (run artifacts, portal URLs, model
registration) raise ``NotSupportedError`` through ``not_supported`` so a migrated program fails at
the call with a pointer to what to use instead, never silently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlpipe_provider.errors import NotSupportedError

#: the log file name a step's log has in ``logFiles`` (v1's driver log, where a script's output was)
STEP_LOG_NAME = "azureml-logs/70_driver_log.txt"
TERMINAL_STEP = {"Finished", "Failed", "Canceled", "Skipped"}


def error_details(message: str | None) -> dict[str, Any] | None:
    """v1's ``details["error"]``: ``{"error": {"code", "message"}}`` (only for a failed run)."""
    if not message:
        return None
    return {"error": {"code": "UserError", "message": message}}


def base_details(
    run_id: str,
    target: str | None,
    status: str,
    start: str | None,
    end: str | None,
    properties: dict[str, str],
    log_files: dict[str, str],
    error: str | None,
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "runId": run_id,
        "target": target,
        "status": status,
        "startTimeUtc": start,
        "properties": properties,
        "inputDatasets": [],
        "outputDatasets": [],
        "logFiles": log_files,
        "submittedBy": _user(),
    }
    if status in TERMINAL_STEP and end:
        details["endTimeUtc"] = end
    failure = error_details(error)
    if failure is not None:
        details["error"] = failure
    return details


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is no reason to fail a status call
        return ""


def duration_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two ISO times (``end`` missing: until now)."""
    if not start:
        return None
    try:
        began = dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        ended = (
            dt.datetime.fromisoformat(str(end).replace("Z", "+00:00"))
            if end
            else dt.datetime.now(dt.UTC)
        )
    except ValueError:
        return None
    return max(0.0, (ended - began).total_seconds())


def not_supported(owner: str, method: str, instead: str) -> Any:
    """A v1 method that cannot mean anything here: calling it says so and names what to use."""

    def _method(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(f"{owner}.{method} is not supported by mlpipe: {instead}")

    _method.__name__ = method
    _method.__doc__ = f"Not supported: {instead}."
    return _method


#: v1 ``Run`` methods about the Azure run-history service, shared by PipelineRun and StepRun
ARTIFACT_INSTEAD = (
    "runs keep no artifact store here; a step's outputs are on its datastore "
    "(get_output_data(name).download(...)) and its log is get_job_log()"
)
RUN_SERVICE_METHODS = {
    "get_file_names": ARTIFACT_INSTEAD,
    "download_file": ARTIFACT_INSTEAD,
    "download_files": ARTIFACT_INSTEAD,
    "upload_file": ARTIFACT_INSTEAD,
    "upload_files": ARTIFACT_INSTEAD,
    "upload_folder": ARTIFACT_INSTEAD,
    "register_model": "model registration is not part of mlpipe; keep models as step outputs",
    "get_snapshot_id": "there are no snapshots; the step's source folder is part of its fingerprint",
    "restore_snapshot": "there are no snapshots; the step's source folder is part of its fingerprint",
    "get_environment": "a step's environment is in its definition (RunConfiguration.environment)",
    "clean": "there is nothing to clean on a compute target",
    "start_logging": "log from inside a step with Run.get_context().log(...)",
    "child_run": "steps are the children of a pipeline run; they are not created by hand",
    "create_children": "steps are the children of a pipeline run; they are not created by hand",
    "get_secret": "keep secrets in Airflow connections or variables and read them in the step",
    "get_secrets": "keep secrets in Airflow connections or variables and read them in the step",
    "submit_child": "submit a Pipeline with Experiment.submit instead",
}


def add_service_methods(cls: type, owner: str) -> type:
    for method, instead in RUN_SERVICE_METHODS.items():
        if not hasattr(cls, method):
            setattr(cls, method, not_supported(owner, method, instead))
    return cls
