"""Which DAG a schedule of a pipeline endpoint runs now, and with which conf.

A v1 schedule made with ``Schedule.create_for_pipeline_endpoint`` submits the endpoint's *current*
default version each time it fires, so the choice is made when the router DAG's task runs, from the
same registry record ``PipelineEndpoint`` reads (``endpoints/<id>.json`` in the workspace), never
at compile time. This module reads those records through ``mlpipe_provider.records`` (the layer the
SDK's classes are views on): it runs on Airflow workers, where the authoring SDK is not imported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mlpipe_provider.contract.constants import CONTINUE_PARAM
from mlpipe_provider.contract.constants import ENDPOINT_RUN_ID_PREFIX as RUN_ID_PREFIX
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import ACTIVE, ENDPOINTS, PUBLISHED


def triggered_run_id(schedule_id: str, router_run_id: str) -> str:
    """The run id of the pipeline run one router run starts: the same on a retry, so a retried
    router task never starts a second run (the trigger skips a run that already exists), and
    ``Schedule.get_pipeline_runs`` finds this schedule's runs among the DAG's other runs."""
    return f"{RUN_ID_PREFIX}__{schedule_id}__{router_run_id}"


@dataclasses.dataclass(frozen=True)
class EndpointTarget:
    """The published pipeline that an endpoint's default version names, as the registry has it."""

    endpoint_id: str
    endpoint_name: str
    version: str
    pipeline_id: str
    pipeline_name: str
    dag_id: str
    parameters: dict[str, Any]
    continue_on_step_failure: bool | None


def current_target(workspace_dir: Path, endpoint_id: str) -> EndpointTarget:
    """The endpoint's default version right now; a clear error when it cannot be run."""
    endpoint = ENDPOINTS.find(workspace_dir, endpoint_id)
    if endpoint is None:
        raise UserErrorException(
            f"pipeline endpoint {endpoint_id!r} does not exist in workspace {str(workspace_dir)!r}"
        )
    name = endpoint.get("name", endpoint_id)
    if endpoint.get("status") != ACTIVE:
        raise UserErrorException(
            f"PipelineEndpoint {name!r} is {endpoint.get('status')}; enable() it to run its schedules"
        )
    version = str(endpoint["default_version"])
    entry = next((v for v in endpoint["versions"] if str(v["version"]) == version), None)
    if entry is None:
        raise UserErrorException(f"PipelineEndpoint {name!r} has no version {version!r}")
    published = PUBLISHED.find(workspace_dir, entry["pipeline_id"])
    if published is None:
        raise UserErrorException(
            f"PipelineEndpoint {name!r} version {version!r}: published pipeline "
            f"{entry['pipeline_id']!r} is missing from the workspace"
        )
    if published.get("status") != ACTIVE:
        raise UserErrorException(
            f"PipelineEndpoint {name!r} version {version!r}: published pipeline "
            f"{published.get('name')!r} ({published['id']}) is {published.get('status')}"
        )
    return EndpointTarget(
        endpoint_id=endpoint_id,
        endpoint_name=name,
        version=version,
        pipeline_id=published["id"],
        pipeline_name=published.get("name", ""),
        dag_id=published["dag_id"],
        parameters=dict(published.get("parameters") or {}),
        continue_on_step_failure=published.get("continue_on_step_failure"),
    )


def conf_for(
    target: EndpointTarget,
    schedule_parameters: dict[str, Any] | None,
    run_conf: dict[str, Any] | None,
    continue_on_step_failure: bool | None,
) -> dict[str, Any]:
    """The triggered run's conf: the schedule's parameters, then this firing's own conf.

    ``run_conf`` is what a datastore watcher passes (the new file's path) or what someone gave
    the router run by hand. A name that the current default version does not take fails here,
    naming the endpoint, version and parameter: the version may have changed since the schedule
    was created, and silently dropping a parameter would run with its default.
    ``continue_on_step_failure`` None means: what the published pipeline was published with.
    """
    conf = {**(schedule_parameters or {}), **(run_conf or {})}
    unknown = sorted(set(conf) - set(target.parameters))
    if unknown:
        known = ", ".join(sorted(target.parameters)) or "none"
        raise UserErrorException(
            f"schedule of PipelineEndpoint {target.endpoint_name!r}: pipeline_parameters "
            f"{', '.join(map(repr, unknown))} are not parameters of its default version "
            f"{target.version!r} (published pipeline {target.pipeline_name!r}, parameters: {known})"
        )
    if continue_on_step_failure is None:
        continue_on_step_failure = target.continue_on_step_failure
    if continue_on_step_failure:
        conf[CONTINUE_PARAM] = True
    return conf
