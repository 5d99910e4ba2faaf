"""DAG files for published pipelines, schedules and datastore watchers.

A published pipeline is immutable, so its lowered form is kept (JSON, in the workspace's
registry) and every DAG made from it later (a schedule's, with other parameter defaults and a
timetable) is rendered from that record by the same ``render_dag``, never from the live
pipeline objects, which may have changed since.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import networkx as nx

from compiler.codegen import HEADER, relative_path, render_dag, render_pools, schedule_code
from compiler.literals import render
from compiler.lower import LoweredPipeline
from compiler.naming import dag_id_for

WATCH_OPERATOR = ("mlpipe_provider.operators.datastore_watch", "DatastoreWatchOperator")


# --- the lowered pipeline, stored ---------------------------------------------------------------
def lowered_to_json(lowered: LoweredPipeline) -> dict[str, Any]:
    graph = lowered.graph
    return {
        "format": 1,
        "steps": lowered.steps,
        "nodes": [[node, dict(attrs)] for node, attrs in graph.nodes(data=True)],
        "edges": [[u, v, dict(attrs)] for u, v, attrs in graph.edges(data=True)],
        "parameters": lowered.parameters,
        "description": lowered.description,
        "workspace_dir": str(lowered.workspace_dir) if lowered.workspace_dir else None,
        "workspace_name": lowered.workspace_name,
    }


def lowered_from_json(data: dict[str, Any]) -> LoweredPipeline:
    graph = nx.DiGraph()
    for node, attrs in data["nodes"]:
        graph.add_node(node, **attrs)
    for u, v, attrs in data["edges"]:
        graph.add_edge(u, v, **attrs)
    return LoweredPipeline(
        steps=copy.deepcopy(data["steps"]),
        graph=graph,
        parameters=copy.deepcopy(data["parameters"]),
        description=data.get("description"),
        workspace_dir=Path(data["workspace_dir"]) if data.get("workspace_dir") else None,
        workspace_name=data.get("workspace_name", "local"),
    )


def with_defaults(lowered: LoweredPipeline, defaults: dict[str, Any]) -> LoweredPipeline:
    """A copy whose DAG params default to ``defaults`` (a schedule's ``pipeline_parameters``)."""
    out = copy.copy(lowered)
    out.parameters = copy.deepcopy(lowered.parameters)
    for name, value in defaults.items():
        out.parameters[name]["default"] = value
    return out


# --- published pipelines ------------------------------------------------------------------------
def published_dag_id(lowered: LoweredPipeline, name: str, dags_dir: Path) -> tuple[str, str]:
    """``(dag_id, graph_id)``: the name plus a short digest of what the DAG would contain."""
    probe = render_dag(lowered, "mlpipe_published", dags_dir, origin=f"published pipeline {name!r}")
    graph_id = hashlib.blake2s(f"{name}\n{probe}".encode(), digest_size=4).hexdigest()
    return dag_id_for(f"{name}__{graph_id}"), graph_id


def render_published(
    lowered: LoweredPipeline, name: str, dag_id: str, dags_dir: Path, schedule: dict[str, Any]
) -> tuple[str, str | None]:
    text = render_dag(
        lowered,
        dag_id,
        dags_dir,
        origin=f"published pipeline {name!r}",
        tags=["published", f"published:{name}"[:100]],
        schedule=schedule,
    )
    return text, render_pools(lowered)


# --- datastore watchers ---------------------------------------------------------------------------
def render_watcher(
    *,
    dag_id: str,
    dags_dir: Path,
    workspace_dir: Path,
    schedule_name: str,
    datastore: str,
    path_on_datastore: str,
    state_name: str,
    parameter: str | None,
    parameter_kind: str,
    target_dag_id: str,
    schedule: dict[str, Any],
    tags: list[str],
) -> str:
    """A DAG that lists a datastore folder and triggers ``target_dag_id`` once per new file."""
    out = [HEADER.format(dag_id=dag_id, origin=f" from datastore schedule {schedule_name!r}")]
    imports, lines = schedule_code(schedule)
    out.append(
        "from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator"
    )
    out.append("from airflow.sdk import DAG")
    out.extend(imports)
    out.append(f"from {WATCH_OPERATOR[0]} import {WATCH_OPERATOR[1]}")
    out.append("")
    out.append(f"WORKSPACE = {render(relative_path(workspace_dir, dags_dir))}")
    out.append("")
    out.append("with DAG(")
    out.append(f"    dag_id={render(dag_id)},")
    where = f"{datastore}:{path_on_datastore or '/'}"
    description = f"Triggers {target_dag_id} once per file added or changed in {where}"
    out.append(f"    description={render(description[:200])},")
    out.extend(lines)
    out.append("    max_active_runs=1,")
    out.append(f"    tags={render(sorted({'mlpipe', *tags}))},")
    out.append(") as dag:")
    out.append(f"    watch = {WATCH_OPERATOR[1]}(")
    out.append("        task_id='watch',")
    out.append("        workspace=WORKSPACE,")
    for key, value in (
        ("datastore", datastore),
        ("path_on_datastore", path_on_datastore),
        ("state_name", state_name),
        ("parameter", parameter),
        ("parameter_kind", parameter_kind),
    ):
        out.append(f"        {key}={render(value)},")
    out.append("    )")
    out.append("    TriggerDagRunOperator.partial(")
    out.append("        task_id='trigger',")
    out.append(f"        trigger_dag_id={render(target_dag_id)},")
    out.append("        logical_date=None,")
    out.append("        skip_when_already_exists=True,")
    out.append("        retries=2,")
    out.append("    ).expand_kwargs(watch.output)")
    return "\n".join(out) + "\n"
