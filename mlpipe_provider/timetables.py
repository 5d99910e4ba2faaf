"""``ScheduleRecurrenceTimetable``: a v1 recurrence that no built-in Airflow timetable expresses.

Airflow's cron and delta timetables cover most of v1's recurrences (``compiler.timetables``
picks them where they are exact). They cannot say "every 2 days at 22:30", "every 3 weeks on
Monday and Friday", "every 5 hours counted from a start" or "every month on the 31st, else the
last day", so those compile to this timetable, constructed in the DAG file from literals only.

It is a core ``airflow.timetables.base.Timetable``: the scheduler, the DAG processor and the API
server find it through the provider's plugin (``mlpipe_provider.plugin``), which is how Airflow 3
deserializes a DAG whose timetable is not built in. Runs happen at exact times (data interval of
zero length, like ``CronTriggerTimetable``). With ``catchup=False`` (every schedule DAG) a run that
was missed while the scheduler was down is skipped, as v1 skipped it: the next run is the next
time the recurrence fires.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.exceptions import AirflowTimetableInvalid
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable

from mlpipe_provider.recurrence import Recurrence

_PLURAL = {"Minute": "minutes", "Hour": "hours", "Day": "days", "Week": "weeks", "Month": "months"}


def _pendulum(moment: dt.datetime) -> pendulum.DateTime:
    return pendulum.instance(moment.astimezone(dt.UTC))


class ScheduleRecurrenceTimetable(Timetable):
    """Fires when a v1 ``ScheduleRecurrence`` fires (``mlpipe_provider.recurrence`` has the rules).

    ``start`` is a wall-clock time (``YYYY-MM-DDThh:mm:ss``) in ``timezone`` (IANA): the
    recurrence's ``start_time``, or when the schedule was created if it had none (then
    ``run_immediately`` is true: that moment is itself a run, v1's "first workload is run
    instantly"). ``hours``/``minutes``/``week_days`` are the time pattern of a ``Day``/``Week``
    recurrence, with v1's defaults from the start already filled in.
    """

    def __init__(
        self,
        *,
        frequency: str,
        interval: int,
        start: str,
        timezone: str,
        hours: list[int] | None = None,
        minutes: list[int] | None = None,
        week_days: list[str] | None = None,
        run_immediately: bool = False,
    ) -> None:
        self.frequency = frequency
        self.interval = interval
        self.start = start
        self.timezone = timezone
        self.hours = list(hours) if hours is not None else None
        self.minutes = list(minutes) if minutes is not None else None
        self.week_days = list(week_days) if week_days is not None else None
        self.run_immediately = bool(run_immediately)
        self._rule: Recurrence | None = None
        self._error = ""
        try:
            self._rule = self._make_rule()
        except (TypeError, ValueError) as error:
            self._error = str(error)  # reported by validate(), when the DAG is parsed
        if self._rule is not None:
            self.description = self._describe()

    def _make_rule(self) -> Recurrence:
        return Recurrence(
            frequency=self.frequency,
            interval=self.interval,
            start=dt.datetime.fromisoformat(self.start),
            timezone=self.timezone,
            hours=tuple(self.hours) if self.hours is not None else None,
            minutes=tuple(self.minutes) if self.minutes is not None else None,
            week_days=tuple(self.week_days) if self.week_days is not None else None,
            start_runs=self.run_immediately or self.hours is None,
        )

    @property
    def rule(self) -> Recurrence:
        if self._rule is None:
            raise AirflowTimetableInvalid(f"ScheduleRecurrenceTimetable: {self._error}")
        return self._rule

    def _describe(self) -> str:
        every = (
            f"every {self.frequency.lower()}"
            if self.interval == 1
            else f"every {self.interval} {_PLURAL[self.frequency]}"
        )
        parts = [every]
        if self.week_days:
            parts.append("on " + ", ".join(self.week_days))
        if self.hours is not None and self.minutes is not None:
            times = [f"{h:02d}:{m:02d}" for h in sorted(self.hours) for m in sorted(self.minutes)]
            parts.append("at " + ", ".join(times))
        start = "created" if self.run_immediately else "from"
        parts.append(f"({start} {self.start}, {self.timezone})")
        return " ".join(parts)

    # --- Airflow's timetable protocol ------------------------------------------------------------
    @property
    def summary(self) -> str:
        return self.description or type(self).__name__

    def validate(self) -> None:
        self.rule  # noqa: B018 (raises AirflowTimetableInvalid for bad arguments)

    def serialize(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency,
            "interval": self.interval,
            "start": self.start,
            "timezone": self.timezone,
            "hours": self.hours,
            "minutes": self.minutes,
            "week_days": self.week_days,
            "run_immediately": self.run_immediately,
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScheduleRecurrenceTimetable):
            return NotImplemented
        return self.serialize() == other.serialize()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.serialize().items())))

    def infer_manual_data_interval(self, *, run_after: pendulum.DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        rule = self.rule
        now = dt.datetime.now(dt.UTC)
        earliest = restriction.earliest
        if last_automated_data_interval is not None:
            run = rule.next_after(last_automated_data_interval.end)
            if not restriction.catchup:  # v1 skipped what was missed; so do we
                run = max(run, rule.first_at_or_after(now))
        elif restriction.catchup:
            run = rule.first_at_or_after(earliest or rule.start_utc)
        elif self.run_immediately and earliest is None:
            run = rule.last_at_or_before(now) or rule.first_at_or_after(now)
        else:
            run = rule.first_at_or_after(max(now, earliest) if earliest else now)
        if earliest is not None and run < earliest:
            run = rule.first_at_or_after(earliest)
        if restriction.latest is not None and run > restriction.latest:
            return None
        return DagRunInfo.exact(_pendulum(run))
