"""The designer's routes for drafts and for picking a recent run (``app.py`` adds them).

Same rules as the other routes: Airflow's own authentication; reading drafts and runs needs
DAG read access, saving and publishing a draft DAG edit access, running one permission to
trigger DAG runs (checked again for the draft's own DAG before it is triggered).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel

from mlpipe_provider.designer import drafts, history
from mlpipe_provider.designer.graph import Graph

_read = [Depends(requires_access_dag("GET"))]
_edit = [Depends(requires_access_dag("PUT"))]
_trigger = [Depends(requires_access_dag("POST", DagAccessEntity.RUN))]
_read_runs = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]


class DraftBody(BaseModel):
    path: str
    graph: Graph
    layout: dict[str, Any] | None = None
    name: str
    experiment_name: str | None = None
    pipeline_parameters: dict[str, Any] = {}
    continue_on_step_failure: bool | None = None
    id: str | None = None


class DraftRef(BaseModel):
    path: str | None = None
    id: str


def add_routes(
    app: FastAPI,
    call: Callable[..., Any],
    root: Callable[[], Path],
    trigger_dag_run: Callable[..., None],
) -> None:
    """``call`` turns the designer's errors into 4xx answers; ``root`` is the pipelines folder;
    ``trigger_dag_run`` is app.py's in-process call of Airflow's trigger route."""

    @app.get("/api/drafts", dependencies=_read)
    def list_drafts(path: str | None = None) -> dict[str, Any]:
        return {"drafts": call(drafts.list_drafts, root(), path)}

    @app.get("/api/draft", dependencies=_read)
    def open_draft(id: str = Query(...), path: str | None = None) -> dict[str, Any]:
        return call(drafts.open_draft, root(), path, id)

    @app.post("/api/draft", dependencies=_edit)
    def save_draft(body: DraftBody) -> dict[str, Any]:
        return call(
            drafts.save_draft,
            root(),
            body.path,
            body.graph,
            body.layout,
            body.name,
            body.experiment_name,
            body.pipeline_parameters,
            body.continue_on_step_failure,
            body.id,
        )

    @app.post("/api/draft/run", dependencies=_trigger)
    def run_draft(body: DraftRef, request: Request, user: GetUserDep) -> dict[str, Any]:
        def authorize(dag_id: str) -> None:
            requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=dag_id)(request, user)

        def trigger(dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
            trigger_dag_run(app, request, user, dag_id, run_id, conf)

        return call(
            drafts.run_draft, root(), body.path, body.id, user.get_name(), trigger, authorize
        )

    @app.post("/api/draft/publish", dependencies=_edit)
    def publish_draft(body: DraftRef) -> dict[str, Any]:
        return call(drafts.publish_draft, root(), body.path, body.id)

    @app.get("/api/runs", dependencies=_read_runs)
    def recent_runs(
        path: str | None = None, variable: str | None = None, dag_id: str | None = None
    ) -> dict[str, Any]:
        if dag_id is None:
            if not path:
                return {"dag_id": None, "runs": []}
            dag_id = call(history.file_dag_id, root(), path, variable)
        return {"dag_id": dag_id, "runs": call(history.recent_runs, dag_id)}
