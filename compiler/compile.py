"""Compile pipelines to DAG files: lower, refuse on problems, render, write only on change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.codegen import render_dag, render_pools
from compiler.lower import lower
from compiler.naming import dag_id_for
from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.errors import PipelineValidationError


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
) -> CompiledDag:
    """Render ``pipeline`` as DAG ``dag_id`` for ``dags_dir``; raises on any validation problem."""
    dags_dir = Path(dags_dir).resolve()
    dag_id = dag_id_for(dag_id)
    lowered = lower(pipeline)
    if lowered.problems:
        raise PipelineValidationError(lowered.problems)
    text = render_dag(lowered, dag_id, dags_dir, origin=origin, tags=tags)
    pools_text = render_pools(lowered)
    return CompiledDag(
        dag_id=dag_id,
        path=dags_dir / f"{dag_id}.py",
        text=text,
        pools_path=dags_dir / f"{dag_id}.pools.json" if pools_text else None,
        pools_text=pools_text,
    )
