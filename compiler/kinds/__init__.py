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
class MappedTasks:
    """Tasks a step runs before its operator, inside its TaskGroup: one operator mapped over a
    list (Airflow's dynamic task mapping, ``Operator.partial(...).expand(name=[...])``), so the UI
    lists every item and Airflow schedules, limits and retries each one (HyperDrive's trials)."""

    child_id: str  # task id inside the step's group
    operator_module: str
    operator_class: str
    partial: list[tuple[str, Any]]  # keyword arguments every mapped task shares
    expand: dict[str, list[Any]]  # keyword -> the list it is mapped over

    @property
    def operator(self) -> tuple[str, str]:
        return self.operator_module, self.operator_class


@dataclass(frozen=True)
class StepKind:
    name: str
    operator_module: str
    operator_class: str
    lower: Callable[[Any, Any, dict[str, Any]], None]
    kwargs: Callable[[dict[str, Any], Path], list[tuple[str, Any]]]
    group: bool = False  # compile into a TaskGroup named after the step (modules)
    #: mapped tasks the step's operator waits for inside its group (needs ``group=True``)
    mapped: Callable[[dict[str, Any], Path], MappedTasks] | None = None

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
        script,
    )


_load()
