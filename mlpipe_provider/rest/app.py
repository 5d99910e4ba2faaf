"""The FastAPI app behind ``/mlpipe``: v1's pipeline-run routes, inside Airflow's API server.

Every route depends on Airflow's own ``get_user`` (no or a bad token: 401) and asks Airflow's
auth manager, through ``requires_access_dag``, whether the user may trigger (or read) the runs of
the published pipeline's DAG (403 when not), so a deployment's users, roles and auth manager
apply unchanged. A submit starts the DAG run through the function behind Airflow's own
``POST /api/v2/dags/{dag_id}/dagRuns`` route, so the DAG's param schemas, import errors and
allowed run types are Airflow's checks too. Nothing is started before every check passed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mlpipe_provider import rest
from mlpipe_provider.config import load_config
from mlpipe_provider.contract.constants import CONTINUE_PARAM, PLAN_TASK_ID
from mlpipe_provider.rest import runs, targets
from mlpipe_provider.rest.v1_body import (
    MAX_BODY_BYTES,
    BadRequest,
    Submission,
    conf_for,
    parse_body,
)
from mlpipe_provider.rest.workspace import served_workspace

#: how long a submit waits for Airflow to parse a just-published DAG before answering 503
DAG_WAIT_S = 60.0


def create_app() -> FastAPI:
    from airflow.api_fastapi.common.dagbag import create_dag_bag
    from airflow.api_fastapi.core_api.security import get_user

    app = FastAPI(
        title="mlpipe: Azure ML v1 pipeline REST",
        description="v1's published-pipeline routes (PipelineSubmit, PipelineEndpointSubmit, "
        "PipelineRuns) on Airflow, behind Airflow's authentication: send "
        "`Authorization: Bearer <token from POST /auth/token>`.",
    )
    app.state.dag_bag = create_dag_bag()

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        code = {404: "NotFound", 409: "Conflict", 413: "RequestTooLarge"}.get(exc.status)
        return JSONResponse(
            status_code=exc.status,
            content={
                "error": {"code": code or "UserError", "message": str(exc)},
                "detail": str(exc),
            },
        )

    user_dep = Depends(get_user)

    @app.post(rest.SUBMIT_PATH)
    async def submit_published(pipeline_id: str, request: Request, user: Any = user_dep) -> Any:
        submission = parse_body(await _read_body(request))
        return await run_in_threadpool(
            _submit, request, user, submission, lambda ws: targets.published(ws, pipeline_id)
        )

    @app.post(rest.ENDPOINT_ID_PATH)
    async def submit_endpoint_by_id(
        endpoint_id: str, request: Request, user: Any = user_dep
    ) -> Any:
        submission = parse_body(await _read_body(request))
        return await run_in_threadpool(
            _submit,
            request,
            user,
            submission,
            lambda ws: targets.endpoint_version(
                ws, endpoint_id=endpoint_id, name=None, version=submission.pipeline_version
            ),
        )

    @app.post(rest.ENDPOINT_NAME_PATH)
    async def submit_endpoint_by_name(name: str, request: Request, user: Any = user_dep) -> Any:
        submission = parse_body(await _read_body(request))
        return await run_in_threadpool(
            _submit,
            request,
            user,
            submission,
            lambda ws: targets.endpoint_version(
                ws, endpoint_id=None, name=name, version=submission.pipeline_version
            ),
        )

    @app.get(rest.RUN_PATH)
    def get_run(run_id: str, request: Request, user: Any = user_dep) -> Any:
        ws, recorded, dag_run = _recorded_run(request, user, run_id)
        return runs.run_entity(recorded, dag_run, _base_url())

    @app.get(rest.STEP_RUNS_PATH)
    def get_step_runs(run_id: str, request: Request, user: Any = user_dep) -> Any:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import requires_access_dag
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        ws, recorded, dag_run = _recorded_run(request, user, run_id)
        requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE, param_dag_id=recorded["dag_id"])(
            request, user
        )
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance)
                .where(
                    TaskInstance.dag_id == recorded["dag_id"],
                    TaskInstance.run_id == recorded["airflow_run_id"],
                    TaskInstance.task_id != PLAN_TASK_ID,
                )
                .order_by(TaskInstance.start_date, TaskInstance.task_id)
            ).all()
            return [runs.step_entity(run_id, ti) for ti in tis]

    return app


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes the limit: never read whole into memory."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _workspace() -> Path:
    ws = served_workspace()
    if ws is None:
        raise BadRequest(
            "this Airflow serves no mlpipe workspace: set $MLPIPE_WORKSPACE for the API server, "
            "or make its DAG folder a workspace's dags/ folder",
            status=503,
        )
    return ws


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="").rstrip("/")


def _authorize(request: Request, user: Any, method: str, dag_id: str) -> None:
    """Airflow's own check (HTTPException 403) of ``method`` on the DAG's runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    requires_access_dag(method, DagAccessEntity.RUN, param_dag_id=dag_id)(request, user)


def _recorded_run(request: Request, user: Any, run_id: str) -> tuple[Path, dict[str, Any], Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    ws = _workspace()
    targets.check_id(run_id, "pipeline run")
    recorded = runs.read_run(ws, run_id)
    if recorded is None or not recorded.get("airflow_run_id"):
        raise BadRequest(f"no pipeline run {run_id!r} on this Airflow server", status=404)
    _authorize(request, user, "GET", recorded["dag_id"])
    with create_session() as session:
        dag_run = session.scalar(
            select(DagRun).where(
                DagRun.dag_id == recorded["dag_id"], DagRun.run_id == recorded["airflow_run_id"]
            )
        )
        if dag_run is None:
            raise BadRequest(
                f"pipeline run {run_id!r} did not run on this Airflow server", status=404
            )
        session.expunge(dag_run)
    return ws, recorded, dag_run


def _submit(request: Request, user: Any, submission: Submission, resolve: Any) -> dict[str, Any]:
    """Check everything, then create the DAG run; a refusal at any step leaves nothing behind."""
    ws = _workspace()
    target: targets.Target = resolve(ws)
    _authorize(request, user, "POST", target.dag_id)
    config = load_config(ws)
    pipeline = target.pipeline
    conf = conf_for(submission, pipeline["parameters"], ws, config.datastores)
    continue_on = submission.continue_on_step_failure
    if continue_on is None:
        continue_on = bool(pipeline.get("continue_on_step_failure"))
    if continue_on:
        conf[CONTINUE_PARAM] = True
    dag_file = ws / pipeline["dag_file"]
    if not dag_file.is_file():
        raise BadRequest(
            f"published pipeline {pipeline['name']!r}: its DAG file {pipeline['dag_file']!r} is missing",
            status=409,
        )
    _ready_dag(target.dag_id)
    _apply_pools(ws, pipeline)
    run_id = runs.new_run_id()
    tags = {
        **submission.tags,
        "azureml.pipelineid": pipeline["id"],
        "azureml.runsource": "azureml.PipelineRun",
    }
    if target.endpoint is not None:
        tags["azureml.pipelineendpointid"] = target.endpoint["id"]
    airflow_run_id = f"{runs.RUN_ID_PREFIX}{run_id}"
    v1 = {
        "Description": submission.description,
        "RunSource": submission.run_source,
        "ParameterAssignments": submission.parameter_assignments,
        "DataPathAssignments": submission.data_path_assignments,
        "DataSetDefinitionValueAssignments": submission.dataset_assignments,
        "TotalRunSteps": len(pipeline.get("step_names") or []),
    }
    recorded = {
        "run_id": run_id,
        "experiment": submission.experiment_name,
        "dag_id": target.dag_id,
        "dag_file": str(dag_file),
        "pools_file": str(ws / pipeline["pools_file"]) if pipeline.get("pools_file") else None,
        "server": (config.airflow.url if config.airflow else _base_url()).rstrip("/"),
        "airflow_run_id": airflow_run_id,
        "conf": conf,
        "tags": tags,
        "regenerate_outputs": False,
        "continue_on_step_failure": bool(continue_on),
        "submitted_by": user.get_name(),
        "v1": v1,
        "created": time.time(),
    }
    folder = runs.record_run(ws, run_id, recorded)
    try:
        dag_run = _trigger(request, user, target.dag_id, airflow_run_id, conf, submission)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return runs.run_entity(recorded, dag_run, _base_url())


def _trigger(
    request: Request, user: Any, dag_id: str, run_id: str, conf: dict[str, Any], sub: Submission
) -> Any:
    """Airflow's own trigger route, called in-process (its checks, its run creation)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run
    from airflow.utils.session import create_session

    body = TriggerDAGRunPostBody(
        dag_run_id=run_id, logical_date=None, conf=conf, note=sub.description or None
    )
    with create_session() as session:
        dag_run = trigger_dag_run(dag_id, body, request.app.state.dag_bag, user, session, request)
        session.flush()
        session.expunge(dag_run)
    return dag_run


def _ready_dag(dag_id: str) -> None:
    """Wait until Airflow has parsed the published DAG (publishing only wrote its file), and
    unpause it when it is paused and has no schedule (it runs only when submitted)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = time.monotonic() + DAG_WAIT_S
    while True:
        with create_session() as session:
            dag = session.scalar(
                select(DagModel).where(DagModel.dag_id == dag_id, ~DagModel.is_stale)
            )
            if dag is not None:
                if dag.is_paused and dag.timetable_summary is None:
                    dag.is_paused = False
                return
        if time.monotonic() > deadline:
            raise BadRequest(
                f"Airflow has not parsed DAG {dag_id!r} yet (is its DAG folder this workspace's "
                "dags/ folder?); try again",
                status=503,
            )
        time.sleep(1)


def _apply_pools(ws: Path, pipeline: dict[str, Any]) -> None:
    """The published pipeline's GPU pools, as ``client/server_runs.install_dag`` applies them."""
    if not pipeline.get("pools_file"):
        return
    path = ws / pipeline["pools_file"]
    if not path.is_file():
        return
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        for name, pool in json.loads(path.read_text(encoding="utf-8")).items():
            Pool.create_or_update_pool(
                name,
                pool["slots"],
                pool.get("description", ""),
                pool.get("include_deferred", False),
                session=session,
            )
