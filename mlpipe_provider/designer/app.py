"""The designer's HTTP side: a FastAPI app the provider's plugin mounts in the Airflow API server.

Every ``/api`` route goes through Airflow's own authentication (``get_user``: a bearer token or
the UI's session cookie; none -> 401) and authorization: reading needs DAG read access, writing
(validate, save) needs DAG edit access (``PUT`` on DAGs -> 403 without it). The page and its
assets (``static/``, built from ``designer/ui``) hold no data and are served as files.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel

from mlpipe_provider.designer import files, runs, service
from mlpipe_provider.designer.graph import Graph
from mlpipe_provider.designer.writer import GraphProblems
from mlpipe_provider.errors import MlpipeError

STATIC = Path(__file__).parent / "static"

_read = [Depends(requires_access_dag("GET"))]
_edit = [Depends(requires_access_dag("PUT"))]
_trigger = [Depends(requires_access_dag("POST", DagAccessEntity.RUN))]
_read_tasks = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]


class ValidateBody(BaseModel):
    path: str
    graph: Graph


class RunBody(BaseModel):
    path: str
    variable: str | None = None
    parameters: dict[str, Any] = {}
    regenerate_outputs: bool = False
    continue_on_step_failure: bool = False


class PublishBody(BaseModel):
    path: str
    variable: str | None = None
    name: str
    description: str | None = None
    version: str | None = None
    endpoint: str | None = None


class SaveBody(BaseModel):
    path: str
    graph: Graph
    base_hash: str | None = None
    layout: dict[str, Any] | None = None


def _root() -> Path:
    try:
        return files.designer_root()
    except files.PathRefused as exc:
        raise HTTPException(503, str(exc)) from exc


def _call(func: Any, *args: Any) -> Any:
    """Run ``func``, turning the designer's errors into 4xx answers with a clear message."""
    try:
        return func(*args)
    except files.PathRefused as exc:
        raise HTTPException(400, str(exc)) from exc
    except service.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except files.Conflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except runs.NotParsed as exc:
        raise HTTPException(503, str(exc)) from exc
    except GraphProblems as exc:
        detail = {
            "message": "the pipeline has problems",
            "problems": [service.problem_entry(p) for p in exc.problems],
        }
        raise HTTPException(422, detail) from exc
    except MlpipeError as exc:
        raise HTTPException(422, {"message": str(exc), "problems": []}) from exc


def create_app() -> FastAPI:
    app = FastAPI(title="mlpipe pipelines designer", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> Any:
        page = STATIC / "index.html"
        if not page.is_file():
            raise HTTPException(503, "the designer's page is not built (npm run build)")
        # always revalidated: a new build must reach the browser at once
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Any:
        path = STATIC / "assets" / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404, "no such asset")
        # names carry a hash of the content (Vite), so the browser may keep them for good
        # instead of asking the API server again on every page load
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})

    @app.get("/api/me")
    def me(user: GetUserDep) -> dict[str, Any]:
        from airflow.api_fastapi.app import get_auth_manager

        can_edit = get_auth_manager().is_authorized_dag(
            method="PUT", details=DagDetails(id=None), user=user
        )
        can_run = get_auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=None), user=user
        )
        return {"user": user.get_name(), "can_edit": bool(can_edit), "can_run": bool(can_run)}

    @app.get("/api/files", dependencies=_read)
    def list_files() -> dict[str, Any]:
        return {"files": files.pipeline_files(_root())}

    @app.get("/api/pipeline", dependencies=_read)
    def open_file(path: str = Query(...), variable: str | None = None) -> dict[str, Any]:
        return _call(service.open_pipeline, _root(), path, variable)

    @app.get("/api/palette", dependencies=_read)
    def palette(path: str = Query(...)) -> dict[str, Any]:
        from mlpipe_provider.designer.palette import palette as build

        root = _root()
        target = _call(files.pipeline_path, root, path)
        return build(target.parent, root)

    @app.post("/api/validate", dependencies=_edit)
    def validate(body: ValidateBody) -> dict[str, Any]:
        return _call(service.validate_graph, _root(), body.path, body.graph)

    @app.post("/api/save", dependencies=_edit)
    def save(body: SaveBody) -> dict[str, Any]:
        return _call(
            service.save_pipeline, _root(), body.path, body.graph, body.base_hash, body.layout
        )

    @app.get("/api/run/parameters", dependencies=_read)
    def run_parameters(path: str = Query(...), variable: str | None = None) -> dict[str, Any]:
        return {"parameters": _call(runs.parameters, _root(), path, variable)}

    @app.post("/api/run", dependencies=_trigger)
    def run(body: RunBody, request: Request, user: GetUserDep) -> dict[str, Any]:
        def authorize(dag_id: str) -> None:
            requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=dag_id)(request, user)

        def trigger(dag_id: str, run_id: str, conf: dict[str, Any]) -> None:
            _trigger_dag_run(app, request, user, dag_id, run_id, conf)

        return _call(
            partial(
                runs.start_run,
                regenerate_outputs=body.regenerate_outputs,
                continue_on_step_failure=body.continue_on_step_failure,
            ),
            _root(),
            body.path,
            body.variable,
            body.parameters,
            user.get_name(),
            trigger,
            authorize,
        )

    @app.get("/api/run", dependencies=_read_tasks)
    def run_state(dag_id: str = Query(...), run_id: str = Query(...)) -> dict[str, Any]:
        return _call(runs.run_state, dag_id, run_id)

    @app.get("/api/run/metrics", dependencies=_read_tasks)
    def run_metrics(
        path: str = Query(...),
        dag_id: str = Query(...),
        run_id: str = Query(...),
        task_id: str = Query(...),
    ) -> dict[str, Any]:
        from mlpipe_provider.designer.step_metrics import step_metrics

        return _call(step_metrics, _root(), path, dag_id, run_id, task_id)

    @app.get("/api/run/image", dependencies=_read_tasks)
    def run_image(
        path: str = Query(...),
        dag_id: str = Query(...),
        run_id: str = Query(...),
        task_id: str = Query(...),
        name: str = Query(...),
    ) -> Response:
        from mlpipe_provider.designer.step_metrics import step_image

        data, media_type = _call(step_image, _root(), path, dag_id, run_id, task_id, name)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"}
        return Response(data, media_type=media_type, headers=headers)

    @app.post("/api/publish", dependencies=_edit)
    def publish(body: PublishBody) -> dict[str, Any]:
        from mlpipe_provider.designer.publish import publish_file

        return _call(
            publish_file,
            _root(),
            body.path,
            body.variable,
            body.name,
            body.description,
            body.version,
            body.endpoint,
        )

    from mlpipe_provider.designer.draft_routes import add_routes

    add_routes(app, _call, _root, _trigger_dag_run)
    return app


def _trigger_dag_run(
    app: FastAPI, request: Request, user: Any, dag_id: str, run_id: str, conf: dict[str, Any]
) -> None:
    """Airflow's own trigger route, called in-process (its param checks, its run creation)."""
    from airflow.api_fastapi.common.dagbag import create_dag_bag
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run
    from airflow.utils.session import create_session

    if getattr(app.state, "dag_bag", None) is None:
        app.state.dag_bag = create_dag_bag()
    body = TriggerDAGRunPostBody(
        dag_run_id=run_id, logical_date=None, conf=conf, note="started from the designer"
    )
    with create_session() as session:
        trigger_dag_run(dag_id, body, app.state.dag_bag, user, session, request)
