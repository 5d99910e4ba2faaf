"""What a submit route runs: the published pipeline a route's id, or an endpoint's version, names.

Read from the workspace registry (``mlpipe_provider.records``), the same records the SDK's
``PublishedPipeline`` and ``PipelineEndpoint`` are views on. An id is checked to be a UUID before
it becomes part of a path, so no request can name a file outside the registry.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from mlpipe_provider.records import ACTIVE, ENDPOINTS, PUBLISHED, RecordError
from mlpipe_provider.rest.v1_body import BadRequest

_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_id(value: str, what: str) -> str:
    if not _ID_RE.match(value):
        raise BadRequest(f"{what} {value!r} is not an id (a UUID)", status=404)
    return value


@dataclasses.dataclass(frozen=True)
class Target:
    """A published pipeline to run, and the endpoint (if any) that named it."""

    pipeline: dict[str, Any]
    endpoint: dict[str, Any] | None = None

    @property
    def dag_id(self) -> str:
        return self.pipeline["dag_id"]


def published(workspace_dir: Path, pipeline_id: str) -> Target:
    check_id(pipeline_id, "published pipeline")
    try:
        record = PUBLISHED.find(workspace_dir, pipeline_id)
    except RecordError as exc:
        raise BadRequest(str(exc), status=500) from None
    if record is None:
        raise BadRequest(f"no published pipeline {pipeline_id!r} in this workspace", status=404)
    if record.get("status") != ACTIVE:
        raise BadRequest(
            f"published pipeline {record.get('name')!r} ({pipeline_id}) is {record.get('status')}; "
            "enable() it to submit",
            status=409,
        )
    return Target(record)


def endpoint_version(
    workspace_dir: Path, *, endpoint_id: str | None, name: str | None, version: str | None
) -> Target:
    """The endpoint's ``version``, or its default version when None (v1's ``PipelineVersion``)."""
    if endpoint_id is not None:
        check_id(endpoint_id, "pipeline endpoint")
        endpoint = ENDPOINTS.find(workspace_dir, endpoint_id)
        label = f"id {endpoint_id!r}"
    else:
        endpoint = next((r for r in ENDPOINTS.list(workspace_dir) if r["name"] == name), None)
        label = f"name {name!r}"
    if endpoint is None:
        raise BadRequest(f"no PipelineEndpoint with {label} in this workspace", status=404)
    if endpoint.get("status") != ACTIVE:
        raise BadRequest(
            f"PipelineEndpoint {endpoint['name']!r} is {endpoint.get('status')}; enable() it to submit",
            status=409,
        )
    wanted = str(endpoint["default_version"]) if version is None else version
    entry = next((v for v in endpoint["versions"] if str(v["version"]) == wanted), None)
    if entry is None:
        known = ", ".join(str(v["version"]) for v in endpoint["versions"])
        raise BadRequest(
            f"PipelineVersion: PipelineEndpoint {endpoint['name']!r} has no version {wanted!r} "
            f"(versions: {known})"
        )
    return dataclasses.replace(published(workspace_dir, entry["pipeline_id"]), endpoint=endpoint)
