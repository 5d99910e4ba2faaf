"""Pipeline runs started through the v1 routes: recorded for the SDK, shown in v1's shape.

A run started here is recorded exactly as ``client/server_runs.py`` records the runs the SDK
starts on a server (``runs/<id>/request.json`` with ``"server": url``), so
``PipelineRun(experiment, run_id)``, ``Experiment.get_runs()`` and ``mlpipe runs`` follow it
like any other. The response fields are v1's ``PipelineRun`` REST entity: ``Id`` and
``Status.StatusCode`` are what v1 clients read; mlpipe adds ``AirflowDagId`` and ``AirflowRunId``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.embedded.status import REQUEST_FILE, STEP_STATUS
from mlpipe_provider.records import read_json, write_json

#: Airflow run ids of mlpipe's runs: the PipelineRun id with this prefix (as the SDK's)
RUN_ID_PREFIX = "mlpipe__"
RUNS_DIR = "runs"
#: Airflow DAG run states -> v1 pipeline run status codes
RUN_STATUS = {
    None: "NotStarted",
    "queued": "Queued",
    "running": "Running",
    "success": "Finished",
    "failed": "Failed",
}


def new_run_id() -> str:
    return str(uuid.uuid4())


def run_dir(workspace_dir: Path, run_id: str) -> Path:
    return workspace_dir / RUNS_DIR / run_id


def record_run(workspace_dir: Path, run_id: str, request: dict[str, Any]) -> Path:
    folder = run_dir(workspace_dir, run_id)
    folder.mkdir(parents=True)
    write_json(folder / REQUEST_FILE, {"run_id": run_id, **request})
    return folder


def read_run(workspace_dir: Path, run_id: str) -> dict[str, Any] | None:
    request = read_json(run_dir(workspace_dir, run_id) / REQUEST_FILE)
    return request if isinstance(request, dict) and request.get("dag_id") else None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.isoformat()


def run_entity(request: dict[str, Any], dag_run: Any, base_url: str) -> dict[str, Any]:
    """v1's PipelineRun entity for a recorded run and its Airflow DAG run (None: not created)."""
    state = None if dag_run is None else str(dag_run.state)
    end = None if dag_run is None else dag_run.end_date
    tags = dict(request.get("tags") or {})
    v1 = request.get("v1") or {}
    return {
        "Id": request["run_id"],
        "Description": v1.get("Description"),
        "Status": {
            "StatusCode": RUN_STATUS.get(state, "Running"),
            "StatusDetail": None,
            "CreationTime": _iso(request.get("created")),
            "EndTime": _iso(end),
        },
        "ExperimentName": request.get("experiment"),
        "RunHistoryExperimentName": request.get("experiment"),
        "PipelineId": tags.get("azureml.pipelineid"),
        "PipelineEndpointId": tags.get("azureml.pipelineendpointid"),
        "RunSource": v1.get("RunSource"),
        "RunType": "HTTP",
        "ParameterAssignments": v1.get("ParameterAssignments", {}),
        "DataPathAssignments": v1.get("DataPathAssignments", {}),
        "DataSetDefinitionValueAssignments": v1.get("DataSetDefinitionValueAssignments", {}),
        "TotalRunSteps": v1.get("TotalRunSteps"),
        "Tags": tags,
        "Properties": {},
        "StepTags": {},
        "IsSubmitted": True,
        "HasErrors": state == "failed",
        "EntityStatus": "Active",
        "RunUrl": f"{base_url}/dags/{request['dag_id']}/runs/{request['airflow_run_id']}",
        "AirflowDagId": request["dag_id"],
        "AirflowRunId": request["airflow_run_id"],
    }


def step_entity(run_id: str, ti: Any) -> dict[str, Any]:
    """A step run (a task instance). A reused step is skipped in Airflow; for v1 it finished."""
    state = None if ti.state is None else str(ti.state)
    status = "Finished" if state == "skipped" else STEP_STATUS.get(state, "Running")
    return {
        "Id": f"{run_id}:{ti.task_id}",
        "Name": ti.task_display_name or ti.task_id,
        "TaskId": ti.task_id,
        "Status": {
            "StatusCode": status,
            "StartTime": _iso(ti.start_date),
            "EndTime": _iso(ti.end_date),
        },
        "Reused": state == "skipped",
        "TryNumber": ti.try_number,
    }
