"""Publish a saved pipeline file from the designer, exactly as its code would.

The file is loaded as the compiler loads it and its ``Pipeline`` published with v1's own
``pipeline.publish(name=..., description=...)`` (the SDK's verb, which reaches the client
through the SDK's services), so a designer publish and a coder's publish make the same
``PublishedPipeline``. With an endpoint name, the published pipeline becomes the default
version of that ``PipelineEndpoint`` (created by ``PipelineEndpoint.publish`` when new, else
``add_default``), so callers of the endpoint get it at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider.designer import files, service
from mlpipe_provider.designer.writer import GraphProblems
from mlpipe_provider.errors import PipelineValidationError


def publish_file(
    root: Path,
    relative: str,
    variable: str | None,
    name: str,
    description: str | None,
    version: str | None,
    endpoint: str | None,
) -> dict[str, Any]:
    from mlpipe_provider.sdk.published import PipelineEndpoint

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
        pipeline = chosen.pipeline
        try:
            published = pipeline.publish(name=name, description=description, version=version)
        except PipelineValidationError as exc:
            raise GraphProblems(list(getattr(exc, "problems", None) or [str(exc)])) from exc
        answer: dict[str, Any] = {
            "id": published.id,
            "name": published.name,
            "version": published.version,
            "endpoint": None,
        }
        if endpoint:
            ws = pipeline._workspace
            existing = [e for e in PipelineEndpoint.list(ws) if e.name == endpoint]
            if existing:
                existing[0].add_default(published)
                answer["endpoint"] = existing[0].name
            else:
                answer["endpoint"] = PipelineEndpoint.publish(
                    ws, endpoint, description, published
                ).name
    return answer
