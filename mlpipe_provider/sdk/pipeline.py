"""``Pipeline`` and ``StepSequence``: the graph of steps a user submits or compiles."""

from __future__ import annotations

import collections
import os
from typing import Any

from mlpipe_provider.errors import NotSupportedError, PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import services
from mlpipe_provider.sdk.steps import PipelineStep, _resolve_source_directory


class StepSequence:
    """Steps that run in order; a nested list is a stage whose steps run in parallel."""

    def __init__(self, steps: list | None = None):
        self._stages: list[list[PipelineStep]] = []
        for item in steps or []:
            stage = list(item) if isinstance(item, (list, tuple)) else [item]
            for step in stage:
                if not isinstance(step, PipelineStep):
                    raise UserErrorException(
                        f"StepSequence accepts steps only, got {type(step).__name__}"
                    )
            self._stages.append(stage)
        for before, after in zip(self._stages, self._stages[1:], strict=False):
            for step in after:
                for prior in before:
                    if prior not in step._run_after:
                        step._run_after.append(prior)

    @property
    def steps(self) -> list[PipelineStep]:
        return [step for stage in self._stages for step in stage]


def _flatten(steps: Any) -> list[PipelineStep]:
    if isinstance(steps, StepSequence):
        return steps.steps
    if isinstance(steps, PipelineStep):
        return [steps]
    if not isinstance(steps, (list, tuple)):
        raise UserErrorException(
            f"Pipeline steps must be a list of steps, got {type(steps).__name__}"
        )
    flat: list[PipelineStep] = []
    for item in steps:
        if isinstance(item, (list, tuple, StepSequence)):
            flat.extend(_flatten(item))
        elif isinstance(item, PipelineStep):
            flat.append(item)
        else:
            raise UserErrorException(
                f"Pipeline steps must be steps, got {type(item).__name__}: {item!r}"
            )
    return flat


class Pipeline:
    """A pipeline: the listed steps plus every step that feeds them through data (v1 does this)."""

    def __init__(
        self,
        workspace: Any,
        steps: Any,
        description: str | None = None,
        default_datastore: Any = None,
        default_source_directory: str | None = None,
        resolve_closure: bool = True,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        **kwargs: Any,
    ):
        from mlpipe_provider.sdk.workspace import Workspace

        if not isinstance(workspace, Workspace):
            raise UserErrorException(
                f"Pipeline workspace must be a Workspace, got {type(workspace).__name__}"
            )
        self._workspace = workspace
        self._listed_steps = _flatten(steps)
        self.description = description
        self._default_datastore = default_datastore
        self._default_source_directory = _resolve_source_directory(
            default_source_directory, "<pipeline>"
        )
        self._resolve_closure = resolve_closure
        self._definition_dir = os.getcwd()
        self._name = kwargs.pop("name", None)
        self._kwargs = kwargs
        self._steps = self._collect_steps() if resolve_closure else list(self._listed_steps)
        self._graph_cache: Any = None

    def _collect_steps(self) -> list[PipelineStep]:
        """Listed steps first, then every step they depend on (data producers, ``run_after``)."""
        from mlpipe_provider.sdk.data import InputPortBinding, PipelineData
        from mlpipe_provider.sdk.output_dataset import producers_of

        seen: list[PipelineStep] = []
        seen_ids: set[int] = set()
        pending = collections.deque(self._listed_steps)
        while pending:
            step = pending.popleft()
            if id(step) in seen_ids:
                continue
            seen_ids.add(id(step))
            seen.append(step)
            pending.extend(step._run_after)
            for item in [*step._inputs, *step._arguments]:
                data = item.bind_object if isinstance(item, InputPortBinding) else item
                if isinstance(data, PipelineData):
                    pending.extend(data._producers)
                pending.extend(producers_of(item))  # an OutputFileDatasetConfig consumed here
        return seen

    # --- v1 API ----------------------------------------------------------------------------
    @property
    def graph(self) -> Any:
        """The step graph as a ``networkx.DiGraph`` (nodes are step names)."""
        return services.compiler().graph(self)

    def validate(self) -> list[str]:
        """Every problem the compiler would refuse, as messages naming step and field."""
        return services.compiler().validate(self)

    def _check(self) -> None:
        problems = self.validate()
        if problems:
            raise PipelineValidationError(problems)

    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        parent_run_id: str | None = None,
        credential_passthrough: Any = None,
        **kwargs: Any,
    ) -> Any:
        from mlpipe_provider.sdk.experiment import Experiment

        return Experiment(self._workspace, experiment_name).submit(
            self,
            pipeline_parameters=pipeline_parameters,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            **kwargs,
        )

    def publish(
        self,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        continue_on_step_failure: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Freeze this pipeline as a ``PublishedPipeline`` with its own DAG (see docs/publishing.md)."""
        from mlpipe_provider.sdk.published import publish_pipeline

        return publish_pipeline(self, name, description, version, continue_on_step_failure)

    def load_yaml(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError("Pipeline.load_yaml is not supported by mlpipe")

    @property
    def steps(self) -> list[PipelineStep]:
        return list(self._steps)

    @property
    def workspace(self) -> Any:
        return self._workspace

    @property
    def default_datastore(self) -> Any:
        return self._default_datastore

    @property
    def script_folder(self) -> str:
        """Where a step without ``source_directory`` finds its script: the pipeline's
        ``default_source_directory``, else the folder the pipeline was defined from (v1's rule)."""
        return self._default_source_directory or self._definition_dir

    def __repr__(self) -> str:
        return f"Pipeline(steps={[s.name for s in self._steps]!r})"
