"""``Pipeline.publish`` and ``PipelineRun.publish_pipeline``: render the published DAG, keep
its graph, then let the SDK record it (``sdk/published.py``'s ``record_published``)."""

from __future__ import annotations

from typing import Any

from compiler.compile import CompiledDag
from compiler.lower import lower
from compiler.publish import lowered_to_json, published_dag_id, render_published
from compiler.timetables import unscheduled
from mlpipe_provider.errors import PipelineValidationError
from mlpipe_provider.sdk.published import PublishedPipeline, record_published


def publish_pipeline(
    pipeline: Any,
    name: str,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
) -> PublishedPipeline:
    """Lower ``pipeline`` (refusing on any problem) and publish it under ``name``."""
    lowered = lower(pipeline)
    if lowered.problems:
        raise PipelineValidationError(lowered.problems)
    if description is None:
        description = pipeline.description
    return publish_lowered(
        pipeline._workspace, lowered, name, description, version, continue_on_step_failure
    )


def publish_lowered(
    ws: Any,
    lowered: Any,
    name: str,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
) -> PublishedPipeline:
    """Write the published DAG (unscheduled: it runs when submitted), then let the SDK record it
    with its graph. Two publishes of the same graph share one DAG and one graph file."""
    dags_dir = ws.dags_dir.resolve()
    dag_id, graph_id = published_dag_id(lowered, name, dags_dir)
    text, pools_text = render_published(lowered, name, dag_id, dags_dir, unscheduled())
    compiled = CompiledDag(
        dag_id=dag_id,
        path=dags_dir / f"{dag_id}.py",
        text=text,
        pools_path=dags_dir / f"{dag_id}.pools.json" if pools_text else None,
        pools_text=pools_text,
    )
    compiled.write()
    return record_published(
        ws,
        name=name,
        description=description,
        version=version,
        graph_id=graph_id,
        graph=lowered_to_json(lowered),
        dag_id=dag_id,
        dag_file=compiled.path,
        pools_file=compiled.pools_path,
        parameters=lowered.parameters,
        step_names=[spec["step_name"] for spec in lowered.steps.values()],
        continue_on_step_failure=continue_on_step_failure,
    )
