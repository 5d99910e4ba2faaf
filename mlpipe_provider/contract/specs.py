"""Typed shapes of what a compiled step carries: its inputs, outputs, compute and environment.

The compiler lowers each v1 step to these shapes and writes them into the DAG file as plain
literals (a DAG file stays readable and literal-only); each operator checks its keyword arguments
against them in ``__init__``, so a hand-edited DAG file with a missing or mistyped field fails
when Airflow parses it, naming the task and the field, instead of halfway through a run.

The models allow extra keys: a compute target carries backend settings (image, network, ...)
and a dataset input its tabular options, and a key the run-time does not know is harmless. What
they check is what the run-time relies on: every required key is there, with the right type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mlpipe_provider.contract.constants import InputKind


class ContractError(ValueError):
    """A step's operator arguments do not match the compile/run contract."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _InputBase(_Spec):
    name: str
    mode: str | None = None
    path_on_compute: str | None = None


class DataReferenceInput(_InputBase):
    """A fixed place on a datastore."""

    kind: Literal[InputKind.DATA_REFERENCE]
    datastore: str
    path_on_datastore: str


class DataPathInput(_InputBase):
    """A ``DataPath`` pipeline parameter: ``datastore`` is the default's, each run says where."""

    kind: Literal[InputKind.DATA_PATH]
    parameter: str
    datastore: str


class PipelineDataInput(_InputBase):
    """Output ``output`` of the upstream task ``producer``."""

    kind: Literal[InputKind.PIPELINE_DATA]
    producer: str
    output: str
    datastore: str


class DatasetInput(_InputBase):
    """A dataset's files (``paths``) or a dataset parameter (``parameter``)."""

    kind: Literal[InputKind.DATASET]
    dataset_type: str


class SqlInput(_InputBase):
    """A SQL query's result, staged as CSV."""

    kind: Literal[InputKind.SQL]
    datastore: str
    sql: dict[str, Any]


InputSpec = Annotated[
    DataReferenceInput | DataPathInput | PipelineDataInput | DatasetInput | SqlInput,
    Field(discriminator="kind"),
]


class OutputSpec(_Spec):
    """A step output: written under the step run's folder on ``datastore``."""

    name: str
    datastore: str
    output_name: str | None = None
    mode: str | None = None
    path_on_compute: str | None = None
    is_directory: bool = False


class ComputeSpec(_Spec):
    """The compute target resolved at compile time: its backend and capacity."""

    name: str
    backend: str = "local"
    gpus: int = 0
    vm_size: str | None = None
    cpus: int | float | None = None
    memory_gb: int | float | None = None
    max_nodes: int | None = None


class EnvironmentSpec(_Spec):
    """A v1 ``Environment`` as ``Environment.to_spec`` gives it (empty: the worker's Python)."""

    name: str | None = None
    image: str | None = None
    user_managed_dependencies: bool = False
    dependencies: dict[str, Any] | None = None
    environment_variables: dict[str, str] = {}


class TransferDestination(_Spec):
    """Where a ``DataTransferStep`` copies to: a step output, or also a fixed datastore place."""

    kind: Literal[InputKind.PIPELINE_DATA, InputKind.DATA_REFERENCE]
    output: str
    datastore: str | None = None
    path_on_datastore: str | None = None


class StepSpec(_Spec):
    """What every step operator receives: its name, workspace, data and compute."""

    step_name: str
    workspace: str
    inputs: list[InputSpec] = []
    outputs: list[OutputSpec] = []
    compute: ComputeSpec | None = None
    environment: EnvironmentSpec | None = None
    allow_reuse: bool = True


_STEP = TypeAdapter(StepSpec)
_TAGS = set(InputKind.ALL)
_DESTINATION = TypeAdapter(TransferDestination)


def _describe(exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for error in exc.errors():
        where = prefix
        for part in error["loc"]:
            if isinstance(part, int):
                where += f"[{part}]"
            elif part not in _TAGS:  # a discriminated union puts the kind in the path
                where += f".{part}" if where else str(part)
        lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines)


def validate_step_kwargs(task_id: str, **fields: Any) -> StepSpec:
    """Check an operator's step arguments; raise ``ContractError`` naming the task and field."""
    try:
        return _STEP.validate_python({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ContractError(
            f"task {task_id!r}: invalid step arguments (regenerate the DAG file with "
            f"`mlpipe compile`): {_describe(exc)}"
        ) from None


def validate_destination(task_id: str, destination: Any) -> TransferDestination:
    """Check a ``DataTransferStep`` operator's ``destination``."""
    try:
        return _DESTINATION.validate_python(destination)
    except ValidationError as exc:
        raise ContractError(
            f"task {task_id!r}: invalid step arguments (regenerate the DAG file with "
            f"`mlpipe compile`): {_describe(exc, 'destination')}"
        ) from None
