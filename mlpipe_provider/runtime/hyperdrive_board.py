"""A sweep's board: where the trials of one pipeline run see each other's primary metric.

Early termination compares a running trial with the other trials at the same interval, so each
trial publishes its primary metric's values as it logs them: one small JSON file per trial in a
folder of the workspace keyed by (DAG, run, sweep), rewritten atomically. The monitor beside a
running trial (``TrialMonitor``) reads the trial's own ``run.log`` lines, publishes them, applies
the policy (``runtime/hyperdrive_policy.py``) and stops the trial's processes when it says so.
Reused trials publish their recorded values, so a later trial is judged against them too.

The folder is in the workspace directory, which every worker of a distributed deployment shares
(docs/steps/hyperdrive.md); a board is only a run's scratch space, never read for reuse, and
the sweep's step removes it once every trial is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.metrics import read_records
from mlpipe_provider.runtime.hyperdrive_policy import stop_reason

#: how often the monitor reads the trial's metrics (seconds)
POLL_S = 0.05
BOARD_DIR = "hyperdrive"


def primary_values(records: list[dict[str, Any]], name: str) -> list[float]:
    """The scalar values logged under ``name``, in order (numbers only)."""
    values = []
    for record in records:
        value = record.get("value")
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if record.get("name") == name and record.get("kind") == "scalar" and numeric:
            values.append(float(value))
    return values


def best_of(values: list[float], maximize: bool) -> float | None:
    return (max(values) if maximize else min(values)) if values else None


class Board:
    """The trials' entries of one sweep in one pipeline run."""

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def of(cls, workspace_dir: Path, dag_id: str, run_id: str, sweep_id: str) -> Board:
        key = hashlib.blake2s(f"{dag_id}\0{run_id}\0{sweep_id}".encode(), digest_size=10)
        return cls(Path(workspace_dir) / BOARD_DIR / key.hexdigest())

    def write(self, index: int, entry: dict[str, Any]) -> None:
        atomic_write_text(
            self.folder / f"trial-{index}.json", json.dumps({**entry, "index": index})
        )

    def discard(self) -> None:
        """Once every trial is done the board has served; the run's records keep the results."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def entries(self) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        if not self.folder.is_dir():
            return found
        for path in self.folder.glob("trial-*.json"):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # replaced while read; the next poll sees it
            found[int(entry["index"])] = entry
        return found


class TrialMonitor:
    """Publishes a running trial's values and stops it when the policy or the deadline says so."""

    def __init__(
        self,
        board: Board,
        index: int,
        sweep: dict[str, Any],
        hyperparameters: dict[str, Any],
        deadline: float | None,
        stop: Any,
        log: Any,
    ):
        self.board, self.index, self.sweep = board, index, sweep
        self.hyperparameters = hyperparameters
        self.deadline = deadline
        self.maximize = sweep["primary_metric_goal"] == "MAXIMIZE"
        self._stop_launch = stop
        self.log = log
        self.reason: str | None = None
        self.values: list[float] = []
        self.run_id: str | None = None
        self.metrics_file: Path | None = None
        self._evaluated = 0
        self._done = threading.Event()

    def publish(self, status: str, values: list[float] | None = None) -> None:
        if values is not None:
            self.values = list(values)
        self.board.write(
            self.index,
            {
                "run_id": self.run_id,
                "status": status,
                "values": self.values,
                "hyperparameters": self.hyperparameters,
            },
        )

    @contextlib.contextmanager
    def watch(self, metrics_file: Path, run_id: str) -> Iterator[None]:
        """Around the trial's launch (``runtime/script_step.py`` calls it with the run's files)."""
        self.metrics_file, self.run_id = Path(metrics_file), run_id
        self.publish("Running")
        thread = threading.Thread(target=self._loop, daemon=True, name="hyperdrive-monitor")
        thread.start()
        try:
            yield
        finally:
            self._done.set()
            thread.join(timeout=10)
            self._read()  # what the trial logged last, for the board and the record

    def _read(self) -> list[float]:
        assert self.metrics_file is not None
        values = primary_values(read_records(self.metrics_file), self.sweep["primary_metric_name"])
        if values != self.values:
            self.publish("Running", values)
        return values

    def _loop(self) -> None:
        while not self._done.wait(POLL_S):
            values = self._read()
            reason = self._judge(values)
            if reason is not None:
                self.reason = reason
                self.log.warning("mlpipe: trial %d canceled: %s", self.index, reason)
                self._stop_launch()
                return

    def _judge(self, values: list[float]) -> str | None:
        if self.deadline is not None and time.time() > self.deadline:
            return f"the sweep ran past max_duration_minutes={self.sweep['max_duration_minutes']}"
        policy = self.sweep["policy"]
        others = [e for i, e in sorted(self.board.entries().items()) if i != self.index]
        series = [list(e.get("values") or []) for e in others]
        finished = [e.get("status") != "Running" for e in others]
        while self._evaluated < len(values):
            self._evaluated += 1
            reason = stop_reason(policy, self.maximize, values[: self._evaluated], series, finished)
            if reason is not None:
                return reason
        return None
