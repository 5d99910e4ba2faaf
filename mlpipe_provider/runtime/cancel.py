"""Stop what a step started when Airflow kills its task, and clean up after a worker that died.

Two ways a step's processes, containers or pods can outlive its task, one mechanism for both:

* the task is killed (``on_kill``): step processes run in their own process groups (so a
  timeout can take down all they started), which also means a signal to the task does not reach
  them. Whatever a backend starts registers a stopper here for the duration (``stoppable``);
  ``MlpipeStepOperator.on_kill`` calls them all (``stop_all``).
* the worker itself is SIGKILLed (OOM killer, a lost node): no Python runs, nothing can be
  stopped then. So every container or pod carries the labels of ``TaskIdentity`` (DAG, Airflow
  run, task, map index) and a backend removes whatever still carries its task's labels before the
  next attempt of that task starts its own. Two attempts of one task instance never run at once,
  so what is found then belongs to a dead attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

LABEL_PREFIX = "io.mlpipe"

_stoppers: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def stoppable(stop: Callable[[], None]) -> Iterator[None]:
    with _lock:
        key = id(stop)
        _stoppers[key] = stop
    try:
        yield
    finally:
        with _lock:
            _stoppers.pop(key, None)


def stop_all() -> int:
    with _lock:
        stoppers = list(_stoppers.values())
    for stop in stoppers:
        with contextlib.suppress(Exception):
            stop()
    return len(stoppers)


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def label_value(value: str) -> str:
    """``value`` as a Kubernetes label value (63 characters of ``[A-Za-z0-9_.-]``).

    Airflow run ids (``manual__2026-01-01T00:00:00+00:00``) are not valid label values; a digest
    keeps them distinct while a readable prefix keeps ``kubectl get -l`` output recognisable.
    """
    if _LABEL_VALUE.match(value):
        return value
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", value).strip("-_.")[:40].strip("-_.")
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return f"{readable}-{digest}" if readable else digest


@dataclass(frozen=True)
class TaskIdentity:
    """The task instance a launch belongs to: what a later attempt looks its leftovers up by."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of(cls, op: Any, context: Any) -> TaskIdentity | None:
        """The identity of ``op`` running in ``context``; ``None`` outside an Airflow task run."""
        context = context or {}
        getter = getattr(context, "get", None)
        run_id = getter("run_id") if getter else None
        dag_id = getattr(op, "dag_id", None)
        task_id = getattr(op, "task_id", None)
        if not (run_id and dag_id and task_id):
            return None
        ti = getter("ti") if getter else None
        map_index = getattr(ti, "map_index", -1)
        return cls(str(dag_id), str(run_id), str(task_id), map_index if map_index else -1)

    def labels(self) -> dict[str, str]:
        """Labels valid for Docker and Kubernetes alike (Kubernetes is the stricter)."""
        return {
            f"{LABEL_PREFIX}/dag": label_value(self.dag_id),
            f"{LABEL_PREFIX}/airflow-run": label_value(self.run_id),
            f"{LABEL_PREFIX}/task": label_value(self.task_id),
            f"{LABEL_PREFIX}/map-index": str(self.map_index).replace("-", "m"),
        }

    def selector(self) -> str:
        """The labels as a Kubernetes label selector (``k=v,k=v``)."""
        return ",".join(f"{key}={value}" for key, value in self.labels().items())
