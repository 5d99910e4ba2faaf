"""Compile pipelines to DAG files: lower, refuse on problems, render, write only on change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.codegen import asset_schedule, render_dag, render_pools
from compiler.lower import lower
from compiler.naming import dag_id_for
from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.errors import MlpipeError, PipelineValidationError


@dataclass
class CompiledDag:
    dag_id: str
    path: Path
    text: str
    pools_path: Path | None
    pools_text: str | None

    def is_current(self) -> bool:
        """True when the files on disk are exactly what compiling gives now (``--check``)."""
        if not self.path.is_file() or self.path.read_text(encoding="utf-8") != self.text:
            return False
        if self.pools_path is not None:
            return (
                self.pools_path.is_file()
                and self.pools_path.read_text(encoding="utf-8") == self.pools_text
            )
        return True

    def write(self) -> bool:
        """Write the files; returns False when they were already current (nothing touched)."""
        if self.is_current():
            return False
        atomic_write_text(self.path, self.text)
        if self.pools_path is not None and self.pools_text is not None:
            atomic_write_text(self.pools_path, self.pools_text)
        return True


def compile_pipeline(
    pipeline: Any,
    dag_id: str,
    dags_dir: str | Path,
    *,
    origin: str | None = None,
    tags: list[str] | None = None,
    schedule_on_assets: list[str] | None = None,
) -> CompiledDag:
    """Render ``pipeline`` as DAG ``dag_id`` for ``dags_dir``; raises on any validation problem.

    ``schedule_on_assets`` (mlpipe asset URIs, docs/lineage.md) makes the DAG run whenever each
    of those assets got an event, e.g. whenever another pipeline's output was produced anew.
    """
    return compile_lowered(
        lower(pipeline),
        dag_id,
        dags_dir,
        origin=origin,
        tags=tags,
        schedule_on_assets=schedule_on_assets,
    )


def compile_lowered(
    lowered: Any,
    dag_id: str,
    dags_dir: str | Path,
    *,
    origin: str | None = None,
    tags: list[str] | None = None,
    schedule_on_assets: list[str] | None = None,
) -> CompiledDag:
    """``compile_pipeline`` for a pipeline already lowered, so a submit that also needs the
    lowered form (its parameters, the graph kept with the run) lowers once."""
    dags_dir = Path(dags_dir).resolve()
    dag_id = dag_id_for(dag_id)
    if lowered.problems:
        raise PipelineValidationError(lowered.problems)
    try:
        schedule = asset_schedule(schedule_on_assets) if schedule_on_assets else None
    except ValueError as exc:
        raise MlpipeError(f"--schedule-on-asset: {exc}") from exc
    text = render_dag(lowered, dag_id, dags_dir, origin=origin, tags=tags, schedule=schedule)
    pools_text = render_pools(lowered)
    return CompiledDag(
        dag_id=dag_id,
        path=dags_dir / f"{dag_id}.py",
        text=text,
        pools_path=dags_dir / f"{dag_id}.pools.json" if pools_text else None,
        pools_text=pools_text,
    )
