"""Names in a generated DAG: Airflow task ids and Python identifiers, both derived from step names.

Step names in v1 are free text ("Train model (GPU)"); Airflow task ids are not. The readable
original stays visible as the task's display name; these helpers only make safe, stable keys.
"""

from __future__ import annotations

import hashlib
import keyword
import re

from mlpipe_provider.contract.constants import PLAN_TASK_ID

_TASK_ID_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_IDENT_BAD = re.compile(r"[^A-Za-z0-9_]")
MAX_TASK_ID = 200


def _short_hash(text: str) -> str:
    return hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=3).hexdigest()


def task_id_for(name: str) -> str:
    """A valid Airflow task id; names that had to change get a hash suffix to stay unique."""
    cleaned = _TASK_ID_BAD.sub("_", name).strip(".") or "step"
    # PLAN_TASK_ID is the pipeline-level reuse check's: a step may not take it
    if cleaned != name or len(cleaned) > MAX_TASK_ID or cleaned == PLAN_TASK_ID:
        cleaned = f"{cleaned[:MAX_TASK_ID]}_{_short_hash(name)}"
    return cleaned


def dag_id_for(name: str) -> str:
    cleaned = _TASK_ID_BAD.sub("_", name).strip(".") or "pipeline"
    return cleaned[:MAX_TASK_ID]


def identifier_for(task_id: str, taken: set[str]) -> str:
    """A Python variable name for a task, unique within the generated file."""
    ident = _IDENT_BAD.sub("_", task_id).strip("_").lower() or "step"
    if (
        ident[0].isdigit()
        or keyword.iskeyword(ident)
        or ident in {"dag", "DAG", "Param", "reuse_plan"}
    ):
        ident = f"step_{ident}"
    base, n = ident, 2
    while ident in taken:
        ident = f"{base}_{n}"
        n += 1
    taken.add(ident)
    return ident
