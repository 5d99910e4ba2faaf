"""What ``bench/run.py`` measured, as figures against their baselines, and the markdown table.

Pure functions of plain data (no Airflow, no processes), so they are unit-tested on their own
(tests/test_bench_report.py) and the benchmark's arithmetic cannot rot between the rare runs.

Task instances are counted by state, never by task id: the benchmark must read today's DAGs
(a reuse sensor plus a step task per step) and the one-task-per-step DAGs with a pipeline-level
check alike, so any task whose id is not a step name is "other" (mlpipe's own overhead).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EXECUTED_STATES = ("success", "failed")


@dataclass
class TaskCounts:
    """The task instances of one DAG run, by state, split into step tasks and the rest."""

    steps: Counter[str] = field(default_factory=Counter)
    other: Counter[str] = field(default_factory=Counter)
    executed: int = 0  # success or failed with a start date: work Airflow really ran
    started: int = 0  # try_number >= 1: a worker (or dag.test) picked the task up at all

    @property
    def total(self) -> int:
        return sum(self.steps.values()) + sum(self.other.values())

    @property
    def steps_executed(self) -> int:
        return self.steps["success"] + self.steps["failed"]

    def describe(self) -> str:
        """``"20 TIs (steps: 10 success; other: 10 success), 20 executed, 20 started"``."""

        def states(counter: Counter[str]) -> str:
            return ", ".join(f"{n} {s}" for s, n in sorted(counter.items())) or "none"

        return (
            f"{self.total} TIs (steps: {states(self.steps)}; other: {states(self.other)}), "
            f"{self.executed} executed, {self.started} started"
        )


def count_task_instances(tis: Iterable[Mapping[str, Any]], steps: Iterable[str]) -> TaskCounts:
    """Count task instances (REST or metadata-DB rows: ``task_id``, ``state``, ``start_date``,
    ``try_number``); a task whose id is a step name is a step, anything else is other."""
    step_ids = set(steps)
    counts = TaskCounts()
    for ti in tis:
        state = str(ti.get("state") or "none")
        (counts.steps if ti["task_id"] in step_ids else counts.other)[state] += 1
        if state in EXECUTED_STATES and ti.get("start_date"):
            counts.executed += 1
        if (ti.get("try_number") or 0) >= 1:
            counts.started += 1
    return counts


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


@dataclass
class Figure:
    """One line of the table: an mlpipe measurement and the baseline it is read against.

    ``value`` and ``baseline`` are medians in seconds; ``ratio`` is value / baseline. ``met`` is
    decided by the row that measured it (the targets differ in kind: a ratio, a count, a delay).
    """

    row: str
    name: str
    value: float | None
    baseline_name: str = ""
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    detail: str = ""
    unit: str = "s"

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} {unit}" if abs(value) >= 10 else f"{value:.2f} {unit}"


def format_table(figures: Iterable[Figure]) -> str:
    """The markdown table ``bench/run.py`` prints (bench/README.md says how to read it)."""
    head = ["row", "figure", "mlpipe", "baseline", "baseline value", "ratio", "target", "met"]
    head.append("detail")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        ratio = f.ratio
        cells = [
            f.row,
            f.name,
            _num(f.value, f.unit),
            f.baseline_name or "-",
            _num(f.baseline, f.unit) if f.baseline_name else "-",
            f"{ratio:.2f}x" if ratio is not None else "-",
            f.target or "-",
            {True: "yes", False: "no", None: "-"}[f.met],
            f.detail.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


HELD_SHARE = 0.3  # every wait starts with one short run of the task that finds the lease taken


@dataclass
class WaitingSlot:
    """What a waiting run's tasks did while another run's identical step was running."""

    samples: int
    states: Counter[str]
    running: int  # samples in which one of the waiter's tasks was running (held a worker slot)

    @property
    def held(self) -> bool | None:
        """Whether the waiter held a worker slot: running in more than ``HELD_SHARE`` of the
        samples; None with no sample (the producer's run was never seen running)."""
        return None if not self.samples else self.running / self.samples > HELD_SHARE

    def describe(self) -> str:
        states = ", ".join(f"{s} {n}" for s, n in self.states.most_common()) or "none"
        verdict = {
            True: "holds a worker slot",
            False: "does not hold a worker slot",
            None: "slot unknown (never sampled while the producer's step ran)",
        }[self.held]
        return (
            f"waiter {verdict}: running in {self.running} of {self.samples} "
            f"samples; its task states: {states}"
        )


def waiting_slot(
    samples: Iterable[Mapping[str, Mapping[str, str | None]]],
    producer: str,
    waiter: str,
    step: str,
) -> WaitingSlot:
    """From samples of ``{run id: {task id: state}}``, the waiter's task states in those where
    the producer's ``step`` task was running (tasks not yet scheduled are left out)."""
    window = [s for s in samples if s[producer].get(step) == "running"]
    states: Counter[str] = Counter(
        str(state)
        for s in window
        for state in s[waiter].values()
        if state not in (None, "scheduled")
    )
    running = sum(1 for s in window if "running" in s[waiter].values())
    return WaitingSlot(len(window), states, running)
