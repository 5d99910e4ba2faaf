"""Pipeline steps. Each step kind is a description that the compiler turns into one operator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException


class PipelineStep:
    """Base of every step: a name, inputs, outputs, arguments and explicit ordering."""

    _step_kind = "abstract"

    def __init__(
        self,
        name: str,
        inputs: list | None = None,
        outputs: list | None = None,
        arguments: list | None = None,
        fix_port_name_collisions: bool = False,
        resource_inputs: list | None = None,
    ):
        if not isinstance(name, str) or not name.strip():
            raise UserErrorException(
                f"{type(self).__name__}: step name must be a non-empty string, got {name!r}"
            )
        self.name = name
        self._inputs = list(_as_list(inputs, name, "inputs"))
        self._outputs = list(_as_list(outputs, name, "outputs"))
        self._arguments = list(_as_list(arguments, name, "arguments"))
        self._resource_inputs = list(resource_inputs or [])
        self._run_after: list[PipelineStep] = []
        self._allow_reuse = True
        self._source_directory: str | None = None
        from mlpipe_provider.sdk.data import PipelineData

        for out in self._outputs:
            if isinstance(out, PipelineData):
                out._producers.append(self)
        from mlpipe_provider.sdk.output_dataset import note_producer

        note_producer(self, [*self._outputs, *self._arguments])  # OutputFileDatasetConfig

    @property
    def inputs(self) -> list:
        return list(self._inputs)

    @property
    def outputs(self) -> list:
        return list(self._outputs)

    @property
    def arguments(self) -> list:
        return list(self._arguments)

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    @property
    def step_kind(self) -> str:
        """Which compile rule lowers this step (``compiler/kinds/<kind>.py``)."""
        return self._step_kind

    @property
    def reuse_allowed(self) -> bool:
        """v1 ``allow_reuse``: whether an earlier result of the same step may stand in for a run."""
        return self._allow_reuse

    @property
    def arguments_field(self) -> str:
        """What the user called ``arguments`` (``command`` on a CommandStep), for error messages."""
        return "arguments"

    @property
    def runs_after(self) -> tuple[PipelineStep, ...]:
        """The steps given to ``run_after``: ordering without data between them."""
        return tuple(self._run_after)

    def run_after(self, step: PipelineStep) -> None:
        """Run this step only after ``step`` finishes, even without data between them."""
        if not isinstance(step, PipelineStep):
            raise UserErrorException(
                f"step {self.name!r}: run_after expects a step, got {type(step).__name__}"
            )
        self._run_after.append(step)

    def create_node(self, graph: Any, default_datastore: Any, context: Any) -> Any:
        from mlpipe_provider.errors import NotSupportedError

        raise NotSupportedError(
            "create_node is Azure ML's internal graph API; mlpipe builds DAGs instead"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _as_list(value: Any, step: str, field: str) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise UserErrorException(f"step {step!r}: {field} must be a list, got {type(value).__name__}")


def _resolve_source_directory(source_directory: Any, step_name: str) -> str | None:
    if source_directory is None:
        return None
    if not isinstance(source_directory, (str, os.PathLike)):
        raise UserErrorException(
            f"step {step_name!r}: source_directory must be a path, got {type(source_directory).__name__}"
        )
    return str(Path(source_directory).resolve())


class PythonScriptStep(PipelineStep):
    """Run ``python script_name arguments...`` from ``source_directory`` on a compute target."""

    _step_kind = "python_script"

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        arguments: list | None = None,
        compute_target: Any = None,
        runconfig: Any = None,
        runconfig_pipeline_params: dict | None = None,
        inputs: list | None = None,
        outputs: list | None = None,
        params: dict | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list | None = None,
    ):
        if not isinstance(script_name, str) or not script_name:
            raise UserErrorException(
                f"PythonScriptStep: script_name must be a non-empty string, got {script_name!r}"
            )
        super().__init__(name or script_name, inputs, outputs, arguments)
        self.script_name = script_name
        self.compute_target = compute_target
        self.runconfig = runconfig
        self.runconfig_pipeline_params = dict(runconfig_pipeline_params or {})
        if params is not None and not isinstance(params, dict):
            raise UserErrorException(
                f"step {self.name!r}: params must be a dict, got {type(params).__name__}"
            )
        self.params = dict(params or {})
        self._source_directory = _resolve_source_directory(source_directory, self.name)
        if not isinstance(allow_reuse, bool):
            raise UserErrorException(
                f"step {self.name!r}: allow_reuse must be True or False, got {allow_reuse!r}"
            )
        self._allow_reuse = allow_reuse
        self.version = version
        self.hash_paths = list(hash_paths or [])

    @property
    def source_directory(self) -> str | None:
        return self._source_directory
