"""Runs on an Airflow server: install a compiled DAG there and trigger it through the REST API.

The server reads the workspace's DAG folder, so installing is: apply the DAG's pools, wait until
the server has parsed exactly the file just written (an import error ends the wait with its
traceback), unpause it. Triggering posts the run's conf to ``/api/v2/dags/{id}/dagRuns`` and
records the run in ``runs/<id>/request.json`` with ``"server": url``, so any later process can
follow it (``sdk/run_source.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.airflow_api import AirflowApiError, AirflowClient
from mlpipe_provider.embedded.status import REQUEST_FILE, write_json
from mlpipe_provider.errors import UserErrorException

#: Airflow run ids of mlpipe's runs: the PipelineRun id with this prefix
RUN_ID_PREFIX = "mlpipe__"


def client_for(workspace: Any) -> AirflowClient:
    """The workspace's server, as the workspace's ``auth`` logs in when it was given one
    (``Workspace(..., auth=ServicePrincipalAuthentication(...))`` submits as that principal's
    Airflow user, as v1 submitted as the principal), else as the config's login."""
    auth = getattr(workspace, "_auth", None)
    if auth is not None and hasattr(auth, "_login"):
        server = workspace._config.airflow
        if server is not None:
            username, password = auth._login(workspace, server)
            return AirflowClient(server.url, username, password)
    return AirflowClient.from_workspace(workspace._dir)


def install_dag(
    client: AirflowClient,
    workspace: Any,
    dag_id: str,
    dag_file: Path,
    pools_file: Path | None,
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Make the server run ``dag_file`` as ``dag_id``: pools, parsed at this version, unpaused."""
    dags_dir = workspace.dags_dir.resolve()
    if dag_file.resolve().parent != dags_dir:
        raise UserErrorException(
            f"DAG file {dag_file} is not in the workspace's DAG folder {dags_dir}, which is the "
            f"folder the Airflow server at {client.url} reads; compile it there"
        )
    if pools_file is not None and pools_file.is_file():
        client.set_pools(json.loads(pools_file.read_text(encoding="utf-8")))
    return client.wait_for_dag(dag_id, dag_file, timeout_s=timeout_s)


def dag_params(client: AirflowClient, dag_id: str) -> dict[str, dict[str, Any]]:
    """The DAG's params as the server has them: ``{name: {value, schema, description}}``."""
    return dict(client.dag_details(dag_id).get("params") or {})


def trigger_run(
    experiment: Any,
    client: AirflowClient,
    dag_id: str,
    conf: dict[str, Any],
    *,
    dag_file: Path | None = None,
    pools_file: Path | None = None,
    tags: dict | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
) -> Any:
    """Trigger ``dag_id`` with ``conf`` and return the ``PipelineRun`` that follows it.

    A conf key that is not one of the DAG's params is refused here (Airflow would accept it and
    the run's reuse sensors would then fail it); Airflow itself refuses values of the wrong type.
    """
    from mlpipe_provider.sdk.experiment import PipelineRun

    details = client.dag_details(dag_id)
    params = dict(details.get("params") or {})
    unknown = sorted(set(conf) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise UserErrorException(
            f"unknown parameter {unknown[0]!r} for DAG {dag_id!r} (its parameters: {known})"
        )
    ws = experiment.workspace
    run_id = str(uuid.uuid4())
    try:
        dag_run = client.trigger(dag_id, conf, dag_run_id=f"{RUN_ID_PREFIX}{run_id}")
    except AirflowApiError as exc:
        if exc.status == 400:
            raise UserErrorException(
                f"Airflow refused the run of {dag_id!r}: {exc.detail}"
            ) from exc
        raise
    run_dir = ws.runs_dir / run_id
    run_dir.mkdir(parents=True)
    write_json(
        run_dir / REQUEST_FILE,
        {
            "run_id": run_id,
            "experiment": experiment.name,
            "dag_id": dag_id,
            "dag_file": str(dag_file) if dag_file else None,
            "pools_file": str(pools_file) if pools_file else None,
            "server": client.url,
            "airflow_run_id": dag_run["dag_run_id"],
            "conf": conf,
            "tags": dict(tags or {}),
            "created": time.time(),
            "regenerate_outputs": bool(regenerate_outputs),
            "continue_on_step_failure": bool(continue_on_step_failure),
        },
    )
    print(
        f"Submitted PipelineRun {run_id} (experiment {experiment.name!r}, DAG {dag_id!r}) "
        f"to Airflow at {client.url}"
    )
    if details.get("is_paused"):
        print(f"  note: DAG {dag_id!r} is paused on the server; the run starts when it is unpaused")
    return PipelineRun(experiment, run_id)


def start_server_run(
    experiment: Any,
    dag_id: str,
    dag_file: Path,
    pools_file: Path | None,
    conf: dict[str, Any],
    **kwargs: Any,
) -> Any:
    """``start_run`` for a workspace whose config names an Airflow server."""
    client = client_for(experiment.workspace)
    install_dag(client, experiment.workspace, dag_id, dag_file, pools_file)
    return trigger_run(
        experiment, client, dag_id, conf, dag_file=dag_file, pools_file=pools_file, **kwargs
    )
