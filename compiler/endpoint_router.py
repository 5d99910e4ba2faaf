"""The DAG file of a schedule made with ``Schedule.create_for_pipeline_endpoint``.

One task, ``PipelineEndpointTriggerOperator``, on the schedule's timetable (or on none, for a
datastore schedule, whose watcher DAG triggers this one with the new file as conf). Which pipeline
it runs is decided when it runs, from the endpoint's default version: the file names only the
endpoint. Every value is a literal (``compiler.literals.render``), as in every generated file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.codegen import HEADER, docstring_safe, relative_path, schedule_code
from compiler.literals import render

ROUTER_OPERATOR = ("mlpipe_provider.operators.endpoint_trigger", "PipelineEndpointTriggerOperator")


def render_endpoint_router(
    *,
    dag_id: str,
    dags_dir: Path,
    workspace_dir: Path,
    schedule_name: str,
    schedule_id: str,
    endpoint_id: str,
    endpoint_name: str,
    pipeline_parameters: dict[str, Any],
    continue_on_step_failure: bool | None,
    schedule: dict[str, Any],
    tags: list[str],
) -> str:
    origin = f"schedule {schedule_name!r} of pipeline endpoint {endpoint_name!r}"
    out = [HEADER.format(dag_id=dag_id, origin=f" from {docstring_safe(origin)}")]
    imports, lines = schedule_code(schedule)
    out.append("from airflow.sdk import DAG")
    out.extend(imports)
    out.append(f"from {ROUTER_OPERATOR[0]} import {ROUTER_OPERATOR[1]}")
    out.append("")
    out.append(f"WORKSPACE = {render(relative_path(workspace_dir, dags_dir))}")
    out.append("")
    out.append("with DAG(")
    out.append(f"    dag_id={render(dag_id)},")
    description = f"Runs the default version of pipeline endpoint {endpoint_name}"
    out.append(f"    description={render(description[:200])},")
    out.extend(lines)
    out.append(f"    tags={render(sorted({'mlpipe', *tags}))},")
    out.append(") as dag:")
    out.append(f"    {ROUTER_OPERATOR[1]}(")
    out.append("        task_id='trigger',")
    out.append("        task_display_name='run the default version',")
    out.append("        workspace=WORKSPACE,")
    for key, value in (
        ("pipeline_endpoint_id", endpoint_id),
        ("schedule_id", schedule_id),
        ("pipeline_parameters", dict(sorted(pipeline_parameters.items()))),
        ("continue_on_step_failure", continue_on_step_failure),
    ):
        out.append(f"        {key}={render(value, indent=8)},")
    out.append("        retries=2,")
    out.append("    )")
    return "\n".join(out) + "\n"
