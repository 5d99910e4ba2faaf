"""Where a step input's data is in this run: one resolver per input kind, chosen from a table.

Running a script (stage the data at a path) and deciding reuse (digest the data) both start by
asking where an input's data is; answering that in one place, per kind, means a new input kind
is one more entry in ``RESOLVERS``, never another ``if kind == ...`` branch in each caller.
Datasets and SQL results are not looked up here: they are materialized (``runtime/datasets.py``,
``runtime/sql_source.py``) rather than found at one datastore path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlpipe_provider.contract.constants import PLAN_TASK_ID, InputKind, planned_record
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.data_path import data_path_of_run, missing_data_message


@dataclass(frozen=True)
class InputLocation:
    """An input's data in this run: a path on a datastore, and what to say when it is not there."""

    datastore: str
    path: str
    #: the error when nothing is at ``path``: names the step, the input, and where the path came from
    missing: str
    #: what ``path`` is, for path-safety errors
    what: str
    #: the digest the producing step recorded for it, when it did (no need to read the data again)
    digest: str | None = None


def upstream_record(ti: Any, producer_task_id: str) -> dict[str, Any] | None:
    """What a producing step published: the reused record the plan task found for it, or the
    step's own record (produced, or reused when the step decided that itself as it started)."""
    # The plan first: a step the plan found reused never runs, so it has no record of its own,
    # and most upstream steps of a re-run are found by the plan (one XCom read, not two).
    planned = planned_record(_plan_of_run(ti), producer_task_id)
    if planned is not None:
        return planned
    return ti.xcom_pull(task_ids=producer_task_id) or None


#: (dag id, run id, task id, try) -> the plan task's return value, read once per task attempt
_PLANS: dict[tuple[Any, ...], Any] = {}


def _plan_of_run(ti: Any) -> Any:
    """The plan's decisions for this run: final before any step starts, so read once per task."""
    key = tuple(getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id", "try_number"))
    if None in key or key not in _PLANS:
        value = ti.xcom_pull(task_ids=PLAN_TASK_ID)
        if None in key:
            return value
        _PLANS[key] = value
    return _PLANS[key]


def _on_datastore(
    step_name: str, spec: Mapping[str, Any], ti: Any, params: Mapping[str, Any]
) -> InputLocation:
    """A ``DataReference``: the path the pipeline definition fixed."""
    return InputLocation(
        datastore=spec["datastore"],
        path=spec["path_on_datastore"],
        missing=missing_data_message(step_name, dict(spec)),
        what=f"input {spec['name']!r} path_on_datastore",
    )


def _data_path(
    step_name: str, spec: Mapping[str, Any], ti: Any, params: Mapping[str, Any]
) -> InputLocation:
    """A ``DataPath`` parameter: this run's value says where, like a ``DataReference``."""
    return _on_datastore(
        step_name, {**spec, **data_path_of_run(dict(spec), params, step_name)}, ti, params
    )


def _upstream(
    step_name: str, spec: Mapping[str, Any], ti: Any, params: Mapping[str, Any]
) -> InputLocation:
    """Another step's output: where its record (fresh or reused) says it wrote it."""
    name, producer, port = spec["name"], spec["producer"], spec["output"]
    record = upstream_record(ti, producer)
    location = (record or {}).get("outputs", {}).get(port)
    if not location:
        raise UserErrorException(
            f"step {step_name!r}, input {name!r}: step {producer!r} published no output {port!r}"
        )
    datastore, rel = location["datastore"], location["path"]
    return InputLocation(
        datastore=datastore,
        path=rel,
        missing=(
            f"step {step_name!r}, input {name!r}: the output {port!r} of step {producer!r} is "
            f"no longer at {rel!r} in datastore {datastore!r}"
        ),
        what=f"input {name!r}",
        digest=location.get("digest"),
    )


Resolver = Callable[[str, Mapping[str, Any], Any, Mapping[str, Any]], InputLocation]

#: input kind -> how to find its data in this run
RESOLVERS: dict[str, Resolver] = {
    InputKind.DATA_REFERENCE: _on_datastore,
    InputKind.DATA_PATH: _data_path,
    InputKind.PIPELINE_DATA: _upstream,
}


def locate_input(
    step_name: str, spec: Mapping[str, Any], ti: Any, params: Mapping[str, Any] | None = None
) -> InputLocation:
    """Where input ``spec`` of step ``step_name`` has its data in this run."""
    resolver = RESOLVERS.get(spec["kind"])
    if resolver is None:
        raise UserErrorException(
            f"step {step_name!r}, input {spec['name']!r}: an input of kind {spec['kind']!r} has "
            "no single datastore path"
        )
    return resolver(step_name, spec, ti, params or {})
