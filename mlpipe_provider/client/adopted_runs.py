"""Runs a real Airflow scheduler started (schedules, datastore triggers) as ``PipelineRun``s.

``PipelineRun`` needs ``runs/<id>/request.json``. A run the scheduler started had no submit to
write one, so it is written here when the run is first seen on the server: ``"server"``,
``"dag_id"`` and ``"airflow_run_id"`` make it a server run, which ``PipelineRun`` follows through
the REST API like any other (``sdk/run_source.py``). The id is derived from the server, DAG and
Airflow run id, so the same Airflow run is always the same ``PipelineRun``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from mlpipe_provider.embedded.status import REQUEST_FILE, read_json, write_json


def _timestamp(text: str | None) -> float:
    if not text:
        return time.time()
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def adopt(
    workspace: Any,
    client: Any,
    dag_id: str,
    experiment_name: str,
    tags: dict[str, str],
    limit: int = 100,
    run_id_prefix: str | None = None,
) -> list[str]:
    """Run record ids of the runs of ``dag_id`` on the server, newest first.

    ``run_id_prefix`` keeps only the Airflow runs whose id starts with it (the runs one endpoint
    schedule started, among the runs of a published pipeline's DAG that others start too).
    """
    ids = []
    for run in client.dag_runs(dag_id, limit=limit):
        if run_id_prefix is not None and not str(run["dag_run_id"]).startswith(run_id_prefix):
            continue
        key = f"{client.url}/dags/{dag_id}/{run['dag_run_id']}"
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
        request_file = workspace.runs_dir / run_id / REQUEST_FILE
        if read_json(request_file) is None:
            started = run.get("run_after") or run.get("queued_at") or run.get("start_date")
            write_json(
                request_file,
                {
                    "run_id": run_id,
                    "experiment": experiment_name,
                    "dag_id": dag_id,
                    "airflow_run_id": run["dag_run_id"],
                    "server": client.url,
                    "conf": run.get("conf") or {},
                    "tags": dict(tags),
                    "created": _timestamp(started),
                    "run_type": run.get("run_type"),
                },
            )
        ids.append(run_id)
    return ids
