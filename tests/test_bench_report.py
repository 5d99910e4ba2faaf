"""bench/report.py: the arithmetic and the table of bench/run.py, which no test runs whole (it
starts servers and takes minutes), so its counting and ratios are checked here on plain data."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from report import Figure, count_task_instances, format_table, median, waiting_slot  # noqa: E402


def test_task_instances_are_counted_by_state_and_any_non_step_id_is_other():
    today = [  # a reused step today: its sensor ran, its step task started and skipped itself
        {"task_id": "a.reuse", "state": "success", "start_date": "t", "try_number": 1},
        {"task_id": "a", "state": "skipped", "start_date": "t", "try_number": 1},
    ]
    planned = [  # one check at the root skipped the step before it was ever scheduled
        {"task_id": "mlpipe.plan", "state": "success", "start_date": "t", "try_number": 1},
        {"task_id": "a", "state": "skipped", "start_date": None, "try_number": 0},
        {"task_id": "b", "state": "success", "start_date": "t", "try_number": 1},
        {"task_id": "c", "state": "failed", "start_date": None, "try_number": 0},
    ]
    old = count_task_instances(today, ["a"])
    assert (old.total, old.executed, old.started) == (2, 1, 2)
    assert old.steps == {"skipped": 1} and old.other == {"success": 1}
    new = count_task_instances(planned, ["a", "b", "c"])
    assert (new.total, new.executed, new.started, new.steps_executed) == (4, 2, 2, 2)
    assert new.describe() == (
        "4 TIs (steps: 1 failed, 1 skipped, 1 success; other: 1 success), 2 executed, 2 started"
    )
    assert count_task_instances([], ["a"]).describe() == (
        "0 TIs (steps: none; other: none), 0 executed, 0 started"
    )


def test_ratios_medians_and_the_table():
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([]) is None
    reused = Figure(
        "1", "fully reused 10-step chain", 3.0, "plain 1-task DAG", 10.0, "<= 0.3x", True, "a|b"
    )
    delay = Figure("4", "waiter notices the commit", 25.5, target="<= 2 s", met=False)
    missing = Figure("2", "cold 100 steps", None, "plain 100-task DAG", 50.0)
    assert reused.ratio == 0.3 and delay.ratio is None and missing.ratio is None
    lines = format_table([reused, delay, missing]).splitlines()
    assert lines[0].startswith("| row | figure | mlpipe | baseline |") and len(lines) == 5
    assert lines[2] == (
        "| 1 | fully reused 10-step chain | 3.00 s | plain 1-task DAG | 10.0 s | 0.30x "
        "| <= 0.3x | yes | a/b |"
    )
    assert lines[3] == "| 4 | waiter notices the commit | 25.5 s | - | - | - | <= 2 s | no |  |"
    assert lines[4] == "| 2 | cold 100 steps | n/a | plain 100-task DAG | 50.0 s | - | - | - |  |"


def test_a_waiter_holds_a_slot_only_when_it_keeps_running_while_the_producer_runs():
    def sample(producer: str | None, *waiter: str | None) -> dict:
        return {"p": {"nap": producer}, "w": {f"t{i}": s for i, s in enumerate(waiter)}}

    rescheduled = [  # today: the sensor pokes once, then gives its slot back for 30 s
        sample("queued", "scheduled", None),
        sample("running", "running", None),
        *[sample("running", "up_for_reschedule", None)] * 8,
        sample("success", "running", None),  # after the producer: not the wait
    ]
    wait = waiting_slot(rescheduled, "p", "w", "nap")
    assert (wait.samples, wait.running, wait.held) == (9, 1, False)
    assert wait.describe() == (
        "waiter does not hold a worker slot: running in 1 of 9 samples; "
        "its task states: up_for_reschedule 8, running 1"
    )
    poking = [sample("running", "running", "deferred")] * 4 + [sample("running", "deferred")] * 6
    assert waiting_slot(poking, "p", "w", "nap").held is True  # 4 of 10 > 30%
    never = waiting_slot([sample("queued", "running")], "p", "w", "nap")
    assert never.held is None and never.describe().startswith("waiter slot unknown")
