"""Step kinds: how each v1 step class is lowered and which operator runs it.

``lower.py`` handles what every step has (name, inputs, outputs, arguments, parameters, compute,
ordering); a kind adds its own fields to the spec and says how they become operator keyword
arguments. Adding a step kind is adding a module here, never another branch in the compiler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CompanionTask:
    """A task a kind compiles into its step's TaskGroup, before the step's own task.

    ``kwargs`` are literals (rendered like the step's; ``("workspace", None)`` is the DAG file's
    ``WORKSPACE``); ``expand`` maps the task over another companion's return value (Airflow
    dynamic task mapping): ``(argument, companion child id)``; ``expand_values`` maps it over a
    literal list known at compile time (a sweep's trials): ``(argument, values)``. Companions run
    in list order, the step's own task after the last one.
    """

    child_id: str
    operator_module: str
    operator_class: str
    kwargs: list[tuple[str, Any]]
    expand: tuple[str, str] | None = None
    expand_values: tuple[str, list[Any]] | None = None


@dataclass(frozen=True)
class StepKind:
    name: str
    operator_module: str
    operator_class: str
    lower: Callable[[Any, Any, dict[str, Any]], None]
    kwargs: Callable[[dict[str, Any], Path], list[tuple[str, Any]]]
    group: bool = False  # compile into a TaskGroup named after the step (modules)
    #: tasks before the step's own one in its group: (spec, step's Airflow task id, pools)
    #: ``(spec, step's Airflow task id, pools, DAG folder)`` (paths in companions' kwargs are
    #: written relative to the DAG folder, as the step's are)
    companions: (
        Callable[[dict[str, Any], str, dict[str, Any], Path], list[CompanionTask]] | None
    ) = None

    @property
    def operator(self) -> tuple[str, str]:
        return self.operator_module, self.operator_class


KINDS: dict[str, StepKind] = {}


def register(kind: StepKind) -> StepKind:
    KINDS[kind.name] = kind
    return kind


def _load() -> None:
    from compiler.kinds import (  # noqa: F401 - registers on import
        command,
        data_transfer,
        distributed,
        hyperdrive,
        module,
        parallel_run,
        script,
    )


_load()
