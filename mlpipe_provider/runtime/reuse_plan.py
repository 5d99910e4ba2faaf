"""The pipeline-level reuse check: decide, in one task, every step whose inputs are already known.

A re-run where little changed should cost about one Airflow task, not one per step. The plan task
at the root of every compiled DAG walks the steps in topological order and fingerprints each one
whose inputs it can know now: data references, data paths, datasets, parameters, and outputs of
steps it has just found reused. Every step with a verified stored result is reused: the plan
publishes the records (its return value, read with ``contract.planned_record``) for the steps
after them and skips their tasks in one go. A step it cannot decide (an upstream step will run, a SQL input whose query it must
not run twice, a reuse that still has work to do, ``allow_reuse=False``) decides when it starts,
with the same rule (``runtime/reuse_decision.py``), so early cutoff and
``continue_on_step_failure`` stay exact.

Nothing here takes a lease: a planned step is one whose result already exists.

``plan_before_airflow`` makes the same plan from the DAG file alone, without Airflow, so that
an embedded run with nothing to do is recorded without paying Airflow's start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlpipe_provider.contract.constants import (
    PLAN_TASK_ID,
    REGENERATE_PARAM,
    InputKind,
)
from mlpipe_provider.runtime.dag_file_steps import DagFileSteps, read_dag_file
from mlpipe_provider.runtime.reuse import StepReuse
from mlpipe_provider.runtime.reuse_decision import reuse_message, stored_result

offline_log = logging.getLogger("mlpipe.plan")


@dataclass
class Plan:
    """What the plan decided: reused steps with their records, and steps left to themselves."""

    reused: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: task id -> why the plan left the step to decide when it starts
    undecided: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The plan task's return value, the one XCom the steps after it, the run's status and
        the reuse notes read (``contract.planned_record``)."""
        return {"reused": dict(self.reused), "undecided": dict(self.undecided)}


def unknown_conf_keys(dag: Any, context: Any) -> list[str]:
    """Keys of the run's conf that are not params of the DAG.

    Airflow validates the types of declared params when a run is created but accepts any extra
    key; a misspelt parameter would then silently run with its default. The plan task refuses
    such a run before any step can start.
    """
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return sorted(key for key in conf if key not in dag.params)


def step_tasks(dag: Any) -> list[Any]:
    """The DAG's step operators in a topological order (the DAG file's order, made sure of)."""
    steps = {t.task_id: t for t in dag.tasks if callable(getattr(t, "fingerprint_settings", None))}
    ordered: list[Any] = []
    placed: set[str] = set()
    pending = list(steps)
    while pending:
        progressed = []
        for task_id in pending:
            if all(u in placed or u not in steps for u in steps[task_id].upstream_task_ids):
                ordered.append(steps[task_id])
                placed.add(task_id)
                progressed.append(task_id)
        if not progressed:  # a cycle cannot come from the compiler; decide nothing then
            return []
        pending = [t for t in pending if t not in placed]
    return ordered


class _PlannedRecords:
    """The run's task instance as fingerprinting sees it during planning: an upstream step's
    record is the one the plan has just decided (nothing is published until the plan ends)."""

    def __init__(self, ti: Any, reused: dict[str, dict[str, Any]]):
        self._ti, self._reused = ti, reused

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **kwargs: Any) -> Any:
        if task_ids == PLAN_TASK_ID and key == "return_value":
            return {"reused": self._reused}
        return None  # a step the plan has not found reused is not decided here

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)


def _not_plannable(step: Any, reused: dict[str, dict[str, Any]]) -> str | None:
    if not step.allow_reuse:
        return "allow_reuse=False"
    if step.reuse_has_effects:
        return "a reused result still copies or registers data"
    for spec in step.inputs:
        if spec["kind"] == InputKind.SQL:
            return f"input {spec['name']!r} is a SQL query, run when the step starts"
        if spec["kind"] == InputKind.PIPELINE_DATA and spec["producer"] not in reused:
            return f"step {spec['producer']!r} runs first"
    return None


def make_plan(steps: Iterable[Any], context: Any, log: Any) -> Plan:
    """Fingerprint and look up every step that can be decided now, in order."""
    plan = Plan()
    steps = list(steps)
    if context["params"].get(REGENERATE_PARAM):
        plan.undecided = {s.task_id: "regenerate_outputs=True" for s in steps}
        return plan
    planning = {**context, "ti": _PlannedRecords(context["ti"], plan.reused)}
    for step in steps:
        why = _not_plannable(step, plan.reused)
        if why is None:
            why = _look_up(step, planning, plan, log)
        if why is not None:
            plan.undecided[step.task_id] = why
    return plan


def _look_up(step: Any, context: Any, plan: Plan, log: Any) -> str | None:
    """Record the step as reused and return None, or say why it is left to decide itself."""
    reuse = StepReuse(step, context)
    try:
        fingerprint, _ = reuse.fingerprint()
        record, why = stored_result(step, reuse, fingerprint, context["params"], log)
    except Exception as exc:  # noqa: BLE001 - the step meets the same error, with its own name
        return f"not fingerprinted here ({type(exc).__name__}: {exc})"
    finally:
        reuse.close()
    if record is None:
        return why
    plan.reused[step.task_id] = record
    log.info("%s", reuse_message(step, record))
    return None


class _NoTaskInstance:
    """Planning before Airflow runs: no task has published anything yet."""

    def xcom_pull(self, *args: Any, **kwargs: Any) -> Any:
        return None


def plan_before_airflow(
    dag_file: Path, conf: dict[str, Any], run_id: str
) -> tuple[DagFileSteps, Plan] | None:
    """The plan of a run of ``dag_file`` with ``conf``, made without importing Airflow.

    None when this cannot stand for the plan task: a DAG file the compiler did not write, a conf
    key the DAG lacks (Airflow's run refuses it, with its message), ``regenerate_outputs``.
    """
    found = read_dag_file(dag_file)
    if found is None or not found.steps or any(key not in found.params for key in conf):
        return None
    params = {**found.params, **conf}
    if params.get(REGENERATE_PARAM):
        return None
    dag_run = SimpleNamespace(dag_id=found.dag_id, run_id=run_id, conf=dict(conf))
    context = {"params": params, "ti": _NoTaskInstance(), "dag_run": dag_run}
    return found, make_plan(found.steps, context, offline_log)
