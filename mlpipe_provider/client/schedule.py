"""Deploying a schedule: render its DAG files (the compiler's) and write them.

A schedule of a published pipeline is that pipeline's DAG on the schedule's timetable; a
schedule of an endpoint is a small router DAG that submits the endpoint's current default; a
datastore-watching schedule adds a watcher DAG that polls the folder and triggers the first.
"""

from __future__ import annotations

from typing import Any

from compiler.codegen import render_dag, render_pools
from compiler.compile import CompiledDag
from compiler.endpoint_router import render_endpoint_router
from compiler.publish import render_watcher, with_defaults
from compiler.timetables import polling_timetable, unscheduled
from mlpipe_provider.runtime.data_path import is_data_path_type
from mlpipe_provider.sdk.published import PublishedPipeline
from mlpipe_provider.sdk.schedule import ACTIVE, record_timetable


def deploy_schedule(schedule: Any) -> None:
    """(Re)write ``schedule``'s DAG files from its record; unchanged files are not touched."""
    record = schedule._record
    ws = schedule._workspace
    dags_dir = ws.dags_dir.resolve()
    active = record["status"] == ACTIVE
    timetable = record_timetable(record) if record.get("recurrence") and active else unscheduled()
    tags = [f"schedule:{record['name']}"[:100], f"experiment:{record['experiment_name']}"[:100]]
    dag_id = record["dag_id"]
    if record.get("pipeline_endpoint_id"):
        published = schedule._target_pipeline()  # for the watcher's parameter kind only
        endpoint_name = schedule._endpoint().name
        text = render_endpoint_router(
            dag_id=dag_id,
            dags_dir=dags_dir,
            workspace_dir=ws._dir,
            schedule_name=record["name"],
            schedule_id=record["id"],
            endpoint_id=record["pipeline_endpoint_id"],
            endpoint_name=endpoint_name,
            pipeline_parameters=record["pipeline_parameters"],
            continue_on_step_failure=record.get("continue_on_step_failure"),
            schedule=timetable,
            tags=[*tags, f"endpoint:{endpoint_name}"[:100]],
        )
        CompiledDag(dag_id, dags_dir / f"{dag_id}.py", text, None, None).write()
    else:
        published = PublishedPipeline.get(ws, record["pipeline_id"])
        lowered = with_defaults(published._lowered(), record["pipeline_parameters"])
        keep_going = record.get("continue_on_step_failure")
        if keep_going is None:  # as a submit of the published pipeline would (v1)
            keep_going = published.continue_on_step_failure
        text = render_dag(
            lowered,
            dag_id,
            dags_dir,
            origin=f"schedule {record['name']!r} of published pipeline {published.name!r}",
            tags=tags,
            schedule=timetable,
            continue_on_step_failure=bool(keep_going),
        )
        pools = render_pools(lowered)
        CompiledDag(
            dag_id=dag_id,
            path=dags_dir / f"{dag_id}.py",
            text=text,
            pools_path=dags_dir / f"{dag_id}.pools.json" if pools else None,
            pools_text=pools,
        ).write()
    if record.get("watcher_dag_id"):
        parameter = record.get("data_path_parameter_name")
        kind = "none"
        if parameter is not None:
            kind = (
                "data_path"
                if is_data_path_type(published._record["parameters"][parameter]["type"])
                else "string"
            )
        watcher = record["watcher_dag_id"]
        text = render_watcher(
            dag_id=watcher,
            dags_dir=dags_dir,
            workspace_dir=ws._dir,
            schedule_name=record["name"],
            datastore=record["datastore_name"],
            path_on_datastore=record["path_on_datastore"] or "",
            state_name=schedule.id,
            parameter=parameter,
            parameter_kind=kind,
            target_dag_id=dag_id,
            schedule=polling_timetable(record["polling_interval"]) if active else unscheduled(),
            tags=tags,
        )
        CompiledDag(watcher, dags_dir / f"{watcher}.py", text, None, None).write()
