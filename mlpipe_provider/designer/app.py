"""The designer's HTTP side: a FastAPI app the provider's plugin mounts in the Airflow API server.

Every ``/api`` route goes through Airflow's own authentication (``get_user``: a bearer token or
the UI's session cookie; none -> 401) and authorization: reading needs DAG read access, writing
(validate, save) needs DAG edit access (``PUT`` on DAGs -> 403 without it). The page and its
assets (``static/``, built from ``designer/ui``) hold no data and are served as files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from mlpipe_provider.designer import files, service
from mlpipe_provider.designer.graph import Graph
from mlpipe_provider.designer.writer import GraphProblems
from mlpipe_provider.errors import MlpipeError

STATIC = Path(__file__).parent / "static"

_read = [Depends(requires_access_dag("GET"))]
_edit = [Depends(requires_access_dag("PUT"))]


class ValidateBody(BaseModel):
    path: str
    graph: Graph


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
        return FileResponse(page)

    @app.get("/assets/{name}", include_in_schema=False)
    def asset(name: str) -> Any:
        path = STATIC / "assets" / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404, "no such asset")
        return FileResponse(path)

    @app.get("/api/me")
    def me(user: GetUserDep) -> dict[str, Any]:
        from airflow.api_fastapi.app import get_auth_manager

        can_edit = get_auth_manager().is_authorized_dag(
            method="PUT", details=DagDetails(id=None), user=user
        )
        return {"user": user.get_name(), "can_edit": bool(can_edit)}

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

    return app
