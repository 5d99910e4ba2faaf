"""Where each step's tasks go in the DAG: at the top level, or inside a TaskGroup of their own.

Lowering names every step with a task id (``task_id_for(step.name)``). A kind with ``group=True``
(modules) compiles into a TaskGroup named after the step instead: the group id is that task id
made valid for a group (no dots), the operator's id inside the group is the kind's name, and
Airflow prefixes it, so the step's real task id is ``"<group>.<kind>"``. Everything that names a
task at run time (a consumer's ``producer``, ``upstream_record``, the plan task's decisions, the
embedded runner's status) uses the real id, so codegen rewrites the lowered references through
``Placement``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from compiler.kinds import KINDS
from mlpipe_provider.contract.constants import PLAN_TASK_ID, InputKind

_GROUP_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")
MAX_GROUP_ID = 200  # Airflow's limit for group keys; task ids (<= 250) add ".<kind>"


@dataclass(frozen=True)
class Placement:
    airflow_id: str  # the task id Airflow knows the step's operator by
    child_id: str  # what the DAG file passes as task_id (inside a group: without the prefix)
    group_id: str | None = None


def group_id_for(task_id: str) -> str:
    cleaned = _GROUP_ID_BAD.sub("_", task_id).strip("_") or "step"
    if len(cleaned) > MAX_GROUP_ID:
        digest = hashlib.blake2s(task_id.encode("utf-8", "surrogatepass"), digest_size=3)
        cleaned = f"{cleaned[: MAX_GROUP_ID - 7]}_{digest.hexdigest()}"
    return cleaned


def place_tasks(steps: dict[str, dict[str, Any]], order: list[str]) -> dict[str, Placement]:
    """A placement for every step, with group ids that collide with no other id in the DAG."""
    taken: set[str] = {PLAN_TASK_ID}
    for task_id in order:
        if not KINDS[steps[task_id]["kind"]].group:
            taken.add(task_id)
    placements: dict[str, Placement] = {}
    for task_id in order:
        kind = KINDS[steps[task_id]["kind"]]
        if not kind.group:
            placements[task_id] = Placement(task_id, task_id)
            continue
        base = group_id_for(task_id)
        group, n = base, 2
        while _ids_in(group, kind.name) & taken:
            suffix = f"_{n}"
            group = f"{base[: MAX_GROUP_ID - len(suffix)]}{suffix}"
            n += 1
        taken |= _ids_in(group, kind.name)
        placements[task_id] = Placement(f"{group}.{kind.name}", kind.name, group)
    return placements


def _ids_in(group: str, child: str) -> set[str]:
    full = f"{group}.{child}"
    return {
        group,
        full,
        f"{group}.upstream_join_id",
        f"{group}.downstream_join_id",
    }


def with_airflow_ids(spec: dict[str, Any], placements: dict[str, Placement]) -> dict[str, Any]:
    """``spec`` with its inputs' producers named by their real Airflow task ids."""
    inputs = spec.get("inputs") or []
    moved = [
        i
        for i in inputs
        if i.get("kind") == InputKind.PIPELINE_DATA
        and i.get("producer") in placements
        and placements[i["producer"]].airflow_id != i["producer"]
    ]
    if not moved:
        return spec
    remapped = [
        {**i, "producer": placements[i["producer"]].airflow_id} if any(i is m for m in moved) else i
        for i in inputs
    ]
    return {**spec, "inputs": remapped}
