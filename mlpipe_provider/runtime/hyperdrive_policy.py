"""The early termination rules of v1's policies, on the primary metric's logged values.

A trial's *k*-th logged value of the primary metric is its *k*-th interval. A policy looks at
interval *k* at every multiple of ``evaluation_interval`` that is at least ``delay_evaluation``
(v1's reference), and compares the trial with the other trials of the sweep that reached interval
*k* (those still running and those done), as v1's service did. Pure functions: ``runtime/hyperdrive_board.py`` calls them
beside each trial while it runs.
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def evaluates_at(policy: dict[str, Any], interval: int) -> bool:
    """Whether ``policy`` looks at a trial when it has logged ``interval`` values."""
    if policy.get("kind", "none") == "none":
        return False
    every = int(policy.get("evaluation_interval") or 1)
    return interval >= int(policy.get("delay_evaluation") or 0) and interval % every == 0


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def stop_reason(
    policy: dict[str, Any],
    maximize: bool,
    own: list[float],
    others: list[list[float]],
    finished: list[bool] | None = None,
) -> str | None:
    """Why the trial with values ``own`` stops at its latest interval, or None to go on.

    ``others`` are the other trials' values so far; ``finished[i]`` says whether other trial
    ``i`` is done (``TruncationSelectionPolicy(exclude_finished_jobs=True)`` leaves those out).
    """
    k = len(own)
    if k == 0 or not evaluates_at(policy, k):
        return None
    value = own[k - 1]
    if not _finite(value):
        return None
    peers = [o[k - 1] for o in others if len(o) >= k and _finite(o[k - 1])]
    kind = policy["kind"]
    if kind == "bandit":
        # v1: the trial's best value so far against the best trial's at this interval
        own_best = _best([v for v in own if _finite(v)], maximize)
        peer_bests = [
            _best([v for v in o[:k] if _finite(v)], maximize) for o in others if len(o) >= k
        ]
        return _bandit(policy, maximize, own_best, [p for p in peer_bests if p is not None], k)
    if kind == "median":
        return _median(maximize, own, [o for o in others if len(o) >= k], k)
    if kind == "truncation":
        done = finished or [False] * len(others)
        if policy.get("exclude_finished_jobs"):
            peers = [
                o[k - 1]
                for o, end in zip(others, done, strict=True)
                if len(o) >= k and not end and _finite(o[k - 1])
            ]
        return _truncation(policy, maximize, value, peers, k)
    return None


def _best(values: list[float], maximize: bool) -> float | None:
    return (max(values) if maximize else min(values)) if values else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _bandit(
    policy: dict[str, Any], maximize: bool, value: float, peers: list[float], k: int
) -> str | None:
    best = max([value, *peers]) if maximize else min([value, *peers])
    factor, amount = policy.get("slack_factor"), policy.get("slack_amount")
    if factor is not None:
        limit = best / (1 + factor) if maximize else best * (1 + factor)
        slack = f"slack_factor {factor}"
    else:
        limit = best - amount if maximize else best + amount
        slack = f"slack_amount {amount}"
    if _better(limit, value, maximize):
        return (
            f"BanditPolicy: best value {value:g} by interval {k} is outside {slack} of the "
            f"best trial's {best:g} (limit {limit:g})"
        )
    return None


def _median(maximize: bool, own: list[float], others: list[list[float]], k: int) -> str | None:
    averages = [statistics.fmean(o[:k]) for o in others if all(_finite(v) for v in o[:k])]
    if not averages:
        return None
    median = statistics.median(averages)
    finite = [v for v in own[:k] if _finite(v)]
    best = max(finite) if maximize else min(finite)
    if _better(median, best, maximize):
        return (
            f"MedianStoppingPolicy: best value {best:g} by interval {k} is worse than the median "
            f"{median:g} of the other trials' running averages"
        )
    return None


def _truncation(
    policy: dict[str, Any], maximize: bool, value: float, peers: list[float], k: int
) -> str | None:
    count = len(peers) + 1
    cut = math.floor(count * int(policy["truncation_percentage"]) / 100)
    if cut < 1:
        return None
    better = sum(1 for p in peers if _better(p, value, maximize))
    if better >= count - cut:  # among the lowest `cut` (ties keep the trial)
        return (
            f"TruncationSelectionPolicy: value {value:g} at interval {k} is in the lowest "
            f"{policy['truncation_percentage']}% of {count} trials"
        )
    return None
