"""Stop what a step started when Airflow kills its task (``on_kill``).

Step processes run in their own process groups (so a timeout can take down all they started),
which also means a signal to the task does not reach them. Whatever a backend starts registers a
stopper here for the duration; ``MlpipeStepOperator.on_kill`` calls them all.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

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
