"""The recent runs of a pipeline in the designer's Airflow, to follow one again after a reload.

A pipeline file's runs are the DAG runs of its designer DAG id (``runs.designer_dag_id``), a
draft's those of ``draft__<name>``; Airflow's own table is the source, so a run started from the
trigger form, the REST API or another page shows too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider.designer import files, runs, service

#: how many runs the list offers
RECENT_RUNS = 10


def file_dag_id(root: Path, relative: str, variable: str | None) -> str:
    """The DAG id a run of this saved file gets (its path, plus the variable when the file
    defines several pipelines), without lowering it."""
    path = files.pipeline_path(root, relative)
    if not path.is_file():
        raise service.NotFound(f"{relative} not found: save it first")
    with service._LOAD_LOCK:
        found = service._load(path, None)
    chosen = (
        found[0] if variable is None else next((f for f in found if f.dag_id == variable), None)
    )
    if chosen is None:
        raise service.NotFound(f"{relative} defines no pipeline named {variable!r}")
    return runs.designer_dag_id(relative, chosen.dag_id, len(found) > 1)


def recent_runs(dag_id: str, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """Newest first: ``{dag_id, run_id, state, start_date, end_date, url}``."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    base = runs.base_url()
    with create_session() as session:
        found = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id)
            .order_by(DagRun.run_after.desc(), DagRun.id.desc())
            .limit(limit)
        )
        return [
            {
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "state": str(run.state),
                "start_date": run.start_date.isoformat() if run.start_date else None,
                "end_date": run.end_date.isoformat() if run.end_date else None,
                "url": f"{base}/dags/{run.dag_id}/runs/{run.run_id}",
            }
            for run in found
        ]
