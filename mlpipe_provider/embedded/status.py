"""The run record files a pipeline run keeps in the workspace (``runs/<run id>/``).

``request.json`` says what was asked, ``status.json`` is rewritten (atomically) by the runner as
steps change state, so any later process can follow or inspect the run without Airflow imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe_provider.config import atomic_write_text

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


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
