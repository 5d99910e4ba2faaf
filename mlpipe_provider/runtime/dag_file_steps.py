"""A compiled DAG file's steps and params, read without importing Airflow.

Importing Airflow and warming its in-process execution API costs ~9 s, which every embedded run
paid even when it had nothing to do. A generated DAG file is literal-only (invariant 6), so its
operators' keyword arguments can be read with ``ast.literal_eval``; ``OfflineStep`` holds them as
the operator would, which is all fingerprinting needs (``runtime/reuse.py``). The embedded
client plans with these before it starts Airflow, and records a run whose every step is reused
without starting Airflow at all (``runtime/reuse_plan.plan_before_airflow``).

Only the files the compiler writes are understood; anything else (an edited file, an operator
this module does not know) gives ``None``, and the run simply goes through Airflow.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlpipe_provider.contract.constants import COMPANION_OPERATORS
from mlpipe_provider.fingerprint import (
    command_settings,
    parallel_run_settings,
    script_reuse_has_effects,
    script_settings,
    transfer_reuse_has_effects,
    transfer_settings,
)

#: operator class -> the kind of settings it fingerprints
SCRIPT_OPERATORS = frozenset(
    {
        "PythonScriptStepOperator",
        "EstimatorStepOperator",
        "MpiStepOperator",
        "ModuleStepOperator",
    }
)
COMMAND_OPERATORS = frozenset({"CommandStepOperator"})
#: the operators that run processes: their settings beside what they run are the same
PROCESS_OPERATORS = SCRIPT_OPERATORS | COMMAND_OPERATORS
TRANSFER_OPERATORS = frozenset({"DataTransferStepOperator"})
#: a ParallelRunStep's own task; its companions (partition, mapped mini-batches) are not steps
PARALLEL_OPERATORS = frozenset({"ParallelRunStepOperator"})
STEP_OPERATORS = PROCESS_OPERATORS | TRANSFER_OPERATORS | PARALLEL_OPERATORS
#: keyword arguments that are Airflow wiring, not step settings (and not literals)
_NOT_SETTINGS = frozenset({"inlets", "outlets"})

log = logging.getLogger("mlpipe.plan")


class OfflineStep:
    """A step operator's settings as the operator holds them, without Airflow.

    The defaults mirror the operators' ``__init__`` (``operators/script.py``,
    ``operators/command.py``, ``operators/data_transfer.py``); ``tests/test_reuse_plan.py`` checks that every example's
    fingerprint material is the same read here and through the real operator.
    """

    def __init__(self, operator: str, task_id: str, kwargs: dict[str, Any], dag: Any):
        self.mlpipe_kind = operator
        self.task_id = task_id
        self.dag = dag
        self.log = log
        self.step_name: str = kwargs["step_name"]
        self.workspace: str = kwargs["workspace"]
        self.inputs = list(kwargs.get("inputs") or [])
        self.outputs = list(kwargs.get("outputs") or [])
        self.compute = dict(kwargs.get("compute") or {})
        self.allow_reuse = bool(kwargs.get("allow_reuse", True))
        self.source_directory: str | None = kwargs.get("source_directory")
        if operator in PARALLEL_OPERATORS:
            self.arguments = list(kwargs.get("arguments") or [])
            self.parallel = dict(kwargs["parallel"])
            self.environment = dict(kwargs.get("environment") or {})
            self.step_params: dict[str, Any] = {}
            self.distribution: dict[str, Any] = {}
        elif operator in PROCESS_OPERATORS:
            if operator in COMMAND_OPERATORS:
                self.command = list(kwargs["command"])
            else:
                self.script_name = kwargs["script_name"]
                self.arguments = list(kwargs.get("arguments") or [])
            self.step_params = dict(kwargs.get("step_params") or {})
            self.environment = dict(kwargs.get("environment") or {})
            self.distribution = dict(kwargs.get("distribution") or {})
        else:
            self.destination = dict(kwargs["destination"])
            self.source_reference_type = kwargs.get("source_reference_type")
            self.destination_reference_type = kwargs.get("destination_reference_type")

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.mlpipe_kind in PARALLEL_OPERATORS:
            return parallel_run_settings(self, params)
        if self.mlpipe_kind in COMMAND_OPERATORS:
            return command_settings(self, params)
        if self.mlpipe_kind in SCRIPT_OPERATORS:
            return script_settings(self, params)
        return transfer_settings(self)

    @property
    def reuse_has_effects(self) -> bool:
        if self.mlpipe_kind in PARALLEL_OPERATORS:
            return False
        if self.mlpipe_kind in PROCESS_OPERATORS:
            return script_reuse_has_effects(self.outputs)
        return transfer_reuse_has_effects(self.destination)


@dataclass
class DagFileSteps:
    dag_id: str
    #: param name -> default
    params: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    steps: list[OfflineStep] = field(default_factory=list)


class _NotUnderstood(Exception):
    pass


def _literal(node: ast.expr, constants: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise _NotUnderstood(ast.dump(node)[:80]) from exc


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _mapped_operator(node: ast.expr) -> str | None:
    """``X`` of a mapped task, ``X.partial(...).expand(...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    inner = node.func.value
    if node.func.attr != "expand" or not isinstance(inner, ast.Call):
        return None
    func = inner.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "partial"
        and isinstance(func.value, ast.Name)
    ):
        return func.value.id
    return None


def read_dag_file(path: Path) -> DagFileSteps | None:
    """The DAG and its steps as the compiler wrote them; None for a file it did not write."""
    try:
        return _read(Path(path))
    except (OSError, SyntaxError, KeyError, TypeError, _NotUnderstood):
        return None


def _read(path: Path) -> DagFileSteps | None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant):
                constants[target.id] = node.value.value
        if isinstance(node, ast.With) and _call_name(node.items[0].context_expr) == "DAG":
            return _read_dag(path, node, constants)
    return None


def _read_dag(path: Path, node: ast.With, constants: dict[str, Any]) -> DagFileSteps:
    call = node.items[0].context_expr
    assert isinstance(call, ast.Call)
    dag_kwargs = {k.arg: k.value for k in call.keywords if k.arg}
    found = DagFileSteps(dag_id=_literal(dag_kwargs["dag_id"], constants))
    if "tags" in dag_kwargs:
        found.tags = list(_literal(dag_kwargs["tags"], constants))
    params = dag_kwargs.get("params")
    if isinstance(params, ast.Dict):
        for key, value in zip(params.keys, params.values, strict=True):
            if key is None or _call_name(value) != "Param" or not value.args:  # type: ignore[arg-type]
                raise _NotUnderstood("params")
            found.params[_literal(key, constants)] = _literal(value.args[0], constants)  # type: ignore[union-attr]
    dag = SimpleNamespace(dag_id=found.dag_id, fileloc=str(path), tags=found.tags)
    _read_tasks(node.body, "", dag, constants, found)
    return found


def _read_tasks(
    body: list[ast.stmt], prefix: str, dag: Any, constants: dict[str, Any], found: DagFileSteps
) -> None:
    for stmt in body:
        if isinstance(stmt, ast.With) and _call_name(stmt.items[0].context_expr) == "TaskGroup":
            group = stmt.items[0].context_expr
            assert isinstance(group, ast.Call)
            kwargs = {k.arg: k.value for k in group.keywords if k.arg}
            group_id = _literal(kwargs["group_id"], constants)
            _read_tasks(stmt.body, f"{prefix}{group_id}.", dag, constants, found)
            continue
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
            continue
        operator = _call_name(stmt.value) or _mapped_operator(stmt.value)
        if operator == "ReusePlanOperator" or operator in COMPANION_OPERATORS:
            continue
        if operator not in STEP_OPERATORS:
            raise _NotUnderstood(f"operator {operator!r}")
        kwargs = {
            k.arg: _literal(k.value, constants)
            for k in stmt.value.keywords
            if k.arg and k.arg not in _NOT_SETTINGS
        }
        found.steps.append(OfflineStep(operator, f"{prefix}{kwargs['task_id']}", kwargs, dag))
