"""Wait, in the triggerer, for another run's lease on a fingerprint to end.

Two runs that miss on the same fingerprint at once must not both compute it: one takes the
lease and produces; the other defers its task to this trigger, which gives the worker slot back
(invariant: waiting never holds a slot; the reuse sensors it replaces had to reschedule every
30 s for that, and so noticed a commit up to 30 s late). It checks the store every
``poll_interval`` seconds and fires as soon as the entry is committed or the lease is released
or expired (its holder died); the deferred step then decides again, and reuses or runs.

The store calls are blocking (fsspec, Azure SDK), so each check runs in a thread: a triggerer
runs many triggers on one event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

#: how often a waiting step looks at the store: the bound on how late it notices a commit
DEFAULT_POLL_INTERVAL_S = 0.5


def open_store(workspace_dir: str) -> Any:
    """The workspace's output store (opened once per wait: a blob client is not free)."""
    from mlpipe_provider.config import load_config
    from mlpipe_provider.runtime.step_context import StepWorkspace
    from mlpipe_provider.store import OutputStore

    directory = Path(workspace_dir)
    ws = StepWorkspace(directory, load_config(directory))
    return OutputStore(ws.datastore(ws.config.default_datastore))


def lease_state(store: Any, fingerprint: str) -> str | None:
    """``committed`` or ``free`` once the waiting step should decide again; None while held."""
    if store.read_entry(fingerprint) is not None:
        return "committed"
    lease = store.read_lease(fingerprint)
    if lease is None or not lease.alive():
        return "free"
    return None


class LeaseTrigger(BaseTrigger):
    """Fires when fingerprint ``fingerprint`` is committed, or its lease is gone or expired."""

    def __init__(
        self,
        *,
        workspace_dir: str,
        fingerprint: str,
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.workspace_dir = workspace_dir
        self.fingerprint = fingerprint
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "workspace_dir": self.workspace_dir,
                "fingerprint": self.fingerprint,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        store = await asyncio.to_thread(open_store, self.workspace_dir)
        while True:
            state = await asyncio.to_thread(lease_state, store, self.fingerprint)
            if state is not None:
                yield TriggerEvent({"fingerprint": self.fingerprint, "state": state})
                return
            await asyncio.sleep(self.poll_interval)
