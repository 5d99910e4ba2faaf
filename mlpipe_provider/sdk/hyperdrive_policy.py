"""v1's early termination policies, as data.

A policy only describes when a trial is stopped; the rule runs beside each trial while it runs
(``runtime/hyperdrive_policy.py``), on the metric values the trial logs with ``run.log``.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import UserErrorException


def _count(value: Any, field: str, policy: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserErrorException(
            f"{policy}: {field} must be an integer >= {minimum}, got {value!r}"
        )
    return value


class EarlyTerminationPolicy:
    """What every policy has: how often it looks (``evaluation_interval``, in logged values of
    the primary metric) and how many values it waits for first (``delay_evaluation``)."""

    kind = "none"

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0):
        name = type(self).__name__
        self._evaluation_interval = _count(evaluation_interval, "evaluation_interval", name, 1)
        self._delay_evaluation = _count(delay_evaluation, "delay_evaluation", name, 0)

    @property
    def evaluation_interval(self) -> int:
        return self._evaluation_interval

    @property
    def delay_evaluation(self) -> int:
        return self._delay_evaluation

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "evaluation_interval": self._evaluation_interval,
            "delay_evaluation": self._delay_evaluation,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_spec()!r})"


class NoTerminationPolicy(EarlyTerminationPolicy):
    """Every trial runs to its end (v1's default when no policy is given)."""

    kind = "none"

    def __init__(self) -> None:
        super().__init__()


class BanditPolicy(EarlyTerminationPolicy):
    """Stop a trial whose metric falls outside ``slack_factor`` (a ratio) or ``slack_amount``
    (an absolute distance) of the best trial's value at the same evaluation."""

    kind = "bandit"

    def __init__(
        self,
        evaluation_interval: int = 1,
        slack_factor: float | None = None,
        slack_amount: float | None = None,
        delay_evaluation: int = 0,
    ):
        super().__init__(evaluation_interval, delay_evaluation)
        if (slack_factor is None) == (slack_amount is None):
            raise UserErrorException(
                "BanditPolicy: give exactly one of slack_factor and slack_amount"
            )
        for field, value in (("slack_factor", slack_factor), ("slack_amount", slack_amount)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise UserErrorException(
                    f"BanditPolicy: {field} must be a number >= 0, got {value!r}"
                )
        self.slack_factor = slack_factor
        self.slack_amount = slack_amount

    def to_spec(self) -> dict[str, Any]:
        return {
            **super().to_spec(),
            "slack_factor": self.slack_factor,
            "slack_amount": self.slack_amount,
        }


class MedianStoppingPolicy(EarlyTerminationPolicy):
    """Stop a trial whose best value is worse than the median of the other trials' running
    averages at the same evaluation."""

    kind = "median"


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """At each evaluation, stop a trial that is among the lowest ``truncation_percentage`` percent
    of the trials that reached it."""

    kind = "truncation"

    def __init__(
        self,
        truncation_percentage: int,
        evaluation_interval: int = 1,
        delay_evaluation: int = 0,
        exclude_finished_jobs: bool = False,
    ):
        super().__init__(evaluation_interval, delay_evaluation)
        if (
            isinstance(truncation_percentage, bool)
            or not isinstance(truncation_percentage, int)
            or not 1 <= truncation_percentage <= 99
        ):
            raise UserErrorException(
                "TruncationSelectionPolicy: truncation_percentage must be an integer from 1 to "
                f"99, got {truncation_percentage!r}"
            )
        if not isinstance(exclude_finished_jobs, bool):
            raise UserErrorException(
                "TruncationSelectionPolicy: exclude_finished_jobs must be True or False"
            )
        self.truncation_percentage = truncation_percentage
        self.exclude_finished_jobs = exclude_finished_jobs

    def to_spec(self) -> dict[str, Any]:
        return {
            **super().to_spec(),
            "truncation_percentage": self.truncation_percentage,
            "exclude_finished_jobs": self.exclude_finished_jobs,
        }
