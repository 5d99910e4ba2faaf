"""``PipelineDraft`` (v1 ``azureml.pipeline.core.PipelineDraft``): a pipeline kept to be edited.

A draft is the mutable sibling of a published pipeline: a name, an experiment to run in,
parameter values, tags, and the pipeline itself, which can be replaced (``update``), run
(``submit_run``) and frozen (``publish``) at any time. The pipeline is kept the way a published
pipeline keeps it: lowered and stored as JSON (the compiler's own form, checked when the draft is
created or updated, so a draft never holds a pipeline that would not compile). The record is
``<workspace>/drafts/<id>.json`` through the records layer; the designer saves drafts here too.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import DRAFTS
from mlpipe_provider.sdk import services
from mlpipe_provider.sdk.published import _check_name

DRAFT_TAG = "azureml.pipelineDraftId"


def _check_dict(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UserErrorException(
            f"PipelineDraft: {field} must be a dict with string keys, got {value!r}"
        )
    return dict(value)


def _check_bool(value: Any, field: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise UserErrorException(f"PipelineDraft: {field} must be True, False or None")
    return value


def _graph(pipeline: Any) -> dict[str, Any]:
    from mlpipe_provider.sdk.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline):
        raise UserErrorException(
            f"PipelineDraft: pipeline must be a Pipeline, got {type(pipeline).__name__}"
        )
    return services.compiler().lowered_json(pipeline)


def _checked_parameters(workspace: Any, graph: dict[str, Any], given: Any) -> dict[str, Any]:
    """Only the pipeline's own PipelineParameters, with values of their type (as submit checks)."""
    from mlpipe_provider.sdk.experiment import check_parameters

    given = _check_dict(given, "pipeline_parameters")
    check_parameters(graph["parameters"], given, workspace)
    return given


class PipelineDraft:
    """A named, editable pipeline of the workspace that can be run and published."""

    def __init__(self, workspace: Any, record: dict[str, Any]):
        self._workspace = workspace
        self._record = record

    # --- the registry -----------------------------------------------------------------------------
    @staticmethod
    def create(
        workspace: Any,
        pipeline: Any,
        name: str,
        description: str | None = None,
        experiment_name: str | None = None,
        pipeline_parameters: dict | None = None,
        continue_on_step_failure: bool | None = None,
        tags: dict | None = None,
        properties: dict | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PipelineDraft:
        """Keep ``pipeline`` as a new draft; it must compile (every problem is listed)."""
        name = _check_name(name, "PipelineDraft")
        if description is not None and not isinstance(description, str):
            raise UserErrorException("PipelineDraft: description must be a string")
        experiment_name = _check_name(experiment_name or name, "PipelineDraft experiment")
        graph = _graph(pipeline)
        record = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": description if description is not None else pipeline.description,
            "experiment_name": experiment_name,
            "pipeline_parameters": _checked_parameters(workspace, graph, pipeline_parameters),
            "continue_on_step_failure": _check_bool(
                continue_on_step_failure, "continue_on_step_failure"
            ),
            "tags": _check_dict(tags, "tags"),
            "properties": _check_dict(properties, "properties"),
            "graph": graph,
            "step_names": [spec["step_name"] for spec in graph["steps"].values()],
            "last_submitted_pipeline_run_id": None,
            "created": time.time(),
        }
        DRAFTS.save(workspace._dir, record)
        return PipelineDraft(workspace, record)

    @staticmethod
    def get(
        workspace: Any, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> PipelineDraft:
        try:
            uuid.UUID(str(id))
        except ValueError:
            raise UserErrorException(f"PipelineDraft id {id!r} is not a draft id") from None
        record = DRAFTS.get(
            workspace._dir, str(id), f"no pipeline draft {id!r} in workspace {workspace.name!r}"
        )
        return PipelineDraft(workspace, record)

    @staticmethod
    def list(
        workspace: Any,
        tags: dict | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[PipelineDraft]:
        """The workspace's drafts, newest first; with ``tags``, only drafts having every one of
        them (v1: a tag given with value ``None`` matches any value of that tag)."""
        wanted = _check_dict(tags, "tags")
        found = []
        for record in DRAFTS.list(workspace._dir):
            have = record.get("tags", {})
            if all(k in have and (v is None or have[k] == v) for k, v in wanted.items()):
                found.append(PipelineDraft(workspace, record))
        return sorted(found, key=lambda d: (-d._record.get("created", 0), d.id))

    # --- editing ----------------------------------------------------------------------------------
    def update(
        self,
        pipeline: Any = None,
        description: str | None = None,
        experiment_name: str | None = None,
        tags: dict | None = None,
        pipeline_parameters: dict | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> None:
        """Change what is given; the rest stays. A new pipeline replaces the graph, and the kept
        parameter values must still fit it."""
        changes: dict[str, Any] = {}
        if pipeline is not None:
            graph = _graph(pipeline)
            changes["graph"] = graph
            changes["step_names"] = [spec["step_name"] for spec in graph["steps"].values()]
        if description is not None:
            if not isinstance(description, str):
                raise UserErrorException("PipelineDraft: description must be a string")
            changes["description"] = description
        if experiment_name is not None:
            changes["experiment_name"] = _check_name(experiment_name, "PipelineDraft experiment")
        if tags is not None:
            changes["tags"] = _check_dict(tags, "tags")
        if continue_on_step_failure is not None:
            changes["continue_on_step_failure"] = _check_bool(
                continue_on_step_failure, "continue_on_step_failure"
            )
        graph = changes.get("graph", self._record["graph"])
        parameters = (
            pipeline_parameters
            if pipeline_parameters is not None
            else self._record.get("pipeline_parameters", {})
        )
        changes["pipeline_parameters"] = _checked_parameters(self._workspace, graph, parameters)
        self._record = DRAFTS.update(
            self._workspace._dir,
            self.id,
            lambda record: {**record, **changes},
            f"pipeline draft {self.name!r} ({self.id}) was deleted",
        )

    def delete(self, _workflow_provider: Any = None) -> None:
        if not DRAFTS.delete(self._workspace._dir, self.id):
            raise UserErrorException(f"pipeline draft {self.name!r} ({self.id}) does not exist")

    def save(self, path: str | None = None, _workflow_provider: Any = None) -> str:
        """Write the draft (its settings and graph) as JSON to ``path`` (default
        ``<name>.json``). v1 wrote its own YAML here; mlpipe's graph format is JSON."""
        target = Path(path) if path else Path(f"{self.name}.json")
        if target.is_dir():
            target = target / f"{self.name}.json"
        target.write_text(json.dumps(self._record, indent=2, sort_keys=True) + "\n")
        return str(target)

    # --- running and publishing -------------------------------------------------------------------
    def _lowered(self) -> Any:
        self._reload()
        return services.compiler().lowered_from_json(copy.deepcopy(self._record["graph"]))

    def submit_run(self, _workflow_provider: Any = None) -> Any:
        """Run the draft's pipeline in its experiment with its parameter values; the run is
        tagged with the draft's id and becomes ``last_submitted_pipeline_run_id``."""
        from mlpipe_provider.sdk.experiment import Experiment

        lowered = self._lowered()
        run = services.client().submit_lowered(
            Experiment(self._workspace, self.experiment_name),
            lowered,
            tags={**self.tags, DRAFT_TAG: self.id},
            pipeline_parameters=self.pipeline_parameters,
            continue_on_step_failure=bool(self.continue_on_step_failure),
        )
        self._record = DRAFTS.update(
            self._workspace._dir,
            self.id,
            lambda record: {**record, "last_submitted_pipeline_run_id": run.id},
        )
        return run

    def publish(self, _workflow_provider: Any = None) -> Any:
        """Freeze the draft's current pipeline as a ``PublishedPipeline`` named after it."""
        from mlpipe_provider.sdk.published import publish_lowered

        return publish_lowered(
            self._workspace,
            self._lowered(),
            self.name,
            self.description,
            None,
            self.continue_on_step_failure,
        )

    # --- v1 attributes ----------------------------------------------------------------------------
    def _reload(self) -> None:
        found = DRAFTS.find(self._workspace._dir, self.id)
        if found is None:
            raise UserErrorException(f"pipeline draft {self.name!r} ({self.id}) was deleted")
        self._record = found

    id = property(lambda self: self._record["id"])
    name = property(lambda self: self._record["name"])
    description = property(lambda self: self._record.get("description"))
    experiment_name = property(lambda self: self._record["experiment_name"])
    pipeline_parameters = property(lambda self: dict(self._record.get("pipeline_parameters", {})))
    continue_on_step_failure = property(lambda self: self._record.get("continue_on_step_failure"))
    tags = property(lambda self: dict(self._record.get("tags", {})))
    properties = property(lambda self: dict(self._record.get("properties", {})))
    last_submitted_pipeline_run_id = property(
        lambda self: self._record.get("last_submitted_pipeline_run_id")
    )

    @property
    def pipeline_submission_info(self) -> dict[str, Any]:
        """What ``submit_run`` uses (v1 exposes it as one object)."""
        return {
            "experiment_name": self.experiment_name,
            "pipeline_parameters": self.pipeline_parameters,
            "continue_on_step_failure": self.continue_on_step_failure,
            "tags": self.tags,
        }

    def get_step_names(self) -> list[str]:
        return list(self._record.get("step_names", []))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineDraft) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"PipelineDraft(Name: {self.name}, Id: {self.id}, Experiment: {self.experiment_name})"
        )
