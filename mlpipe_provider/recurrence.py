"""When a v1 ``ScheduleRecurrence`` fires: the calendar arithmetic behind its Airflow timetable.

Pure date arithmetic (no Airflow), so the timetable, the compiler and the tests share one meaning:

* ``Minute`` / ``Hour`` every *n*: ``start + k*n`` units of elapsed time (v1 counts these from the
  start; the time zone only says which instant the start is).
* ``Day`` / ``Week`` / ``Month`` every *n* without a time pattern: ``start + k*n`` days, weeks or
  months of the *wall clock* in the time zone, so 09:00 stays 09:00 across daylight-saving
  changes. A month that lacks the start's day runs on its last day (31 January, then 28 February,
  31 March: each run is counted from the start, not from the previous run).
* ``Day`` every *n* with a pattern: the days ``start day + k*n``, at every ``hours`` x ``minutes``.
* ``Week`` every *n* with a pattern: the weeks ``start's week + k*n`` (weeks run Sunday to
  Saturday, the order of v1's service's week days), on each of ``week_days``, at every
  ``hours`` x ``minutes``.
* With a pattern the start itself is not a run (v1: "If start_time matches week_days and
  time_of_day ... the first work load does not run at start_time"): only times after it are.
  ``start_runs`` adds the start as a run of its own: the "first workload runs instantly" of a
  recurrence that had no ``start_time`` (its start is then when the schedule was created).

A wall-clock time the spring change skips runs when the clock has passed it (02:30 becomes 03:30;
several times of one pattern skipped together run once); one the autumn change repeats runs once,
at its second occurrence. Airflow's cron timetables do exactly the same (tests/test_v1_schedules.py
compares the two over a year of changes), so a recurrence behaves alike whichever timetable it
compiles to.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
# Sunday first: a week period of a ``Week`` recurrence starts on Sunday.
WEEK_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_UTC = dt.UTC


def localize(naive: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall-clock time in ``zone`` (a skipped time moves forward by the gap;
    a repeated one is its second occurrence)."""
    later = naive.replace(tzinfo=zone, fold=1)
    if later.astimezone(_UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return later.astimezone(_UTC)
    return naive.replace(tzinfo=zone, fold=0).astimezone(_UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    """A plain ``datetime`` in UTC (Airflow passes pendulum's subclass, whose arithmetic differs)."""
    m = moment.astimezone(_UTC)
    return dt.datetime(
        m.year, m.month, m.day, m.hour, m.minute, m.second, m.microsecond, tzinfo=_UTC
    )


def add_months(naive: dt.datetime, months: int) -> dt.datetime:
    """``naive`` moved by whole months, the day clamped to the target month's last day."""
    index = naive.year * 12 + naive.month - 1 + months
    year, month = divmod(index, 12)
    day = min(naive.day, calendar.monthrange(year, month + 1)[1])
    return naive.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class Recurrence:
    """A resolved recurrence: a pattern's missing fields already filled in from the start."""

    frequency: str
    interval: int
    start: dt.datetime  # naive: wall clock in ``timezone``
    timezone: str
    hours: tuple[int, ...] | None = None  # a pattern: all three set (week_days only for Week)
    minutes: tuple[int, ...] | None = None
    week_days: tuple[str, ...] | None = None
    start_runs: bool = False

    def __post_init__(self) -> None:
        """Refuse what could never fire, with the field named (the timetable's ``validate``)."""
        if self.frequency not in FREQUENCIES:
            raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}")
        if not isinstance(self.interval, int) or isinstance(self.interval, bool):
            raise ValueError("interval must be an integer greater than 0")
        if self.interval < 1:
            raise ValueError("interval must be an integer greater than 0")
        if self.start.tzinfo is not None:
            raise ValueError("start must be a wall-clock time without tzinfo")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        if self.pattern:
            if self.frequency not in ("Day", "Week"):
                raise ValueError("hours and minutes are only for Day and Week recurrences")
            if not self.hours or not self.minutes:
                raise ValueError("a time pattern needs at least one hour and one minute")
            if any(not 0 <= h <= 23 for h in self.hours):
                raise ValueError("hours must be between 0 and 23")
            if any(not 0 <= m <= 59 for m in self.minutes):
                raise ValueError("minutes must be between 0 and 59")
            if (self.frequency == "Week") != bool(self.week_days):
                raise ValueError("week_days is needed for, and only for, a Week pattern")
            if any(d not in WEEK_DAYS for d in self.week_days or ()):
                raise ValueError(f"week_days must be among {', '.join(WEEK_DAYS)}")
        elif self.week_days is not None or self.minutes is not None:
            raise ValueError("a time pattern needs hours and minutes together")

    @property
    def pattern(self) -> bool:
        return self.hours is not None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start_utc(self) -> dt.datetime:
        return localize(self.start, self.zone)

    # --- the runs of one period ------------------------------------------------------------------
    def _step(self) -> dt.timedelta:
        unit = {"Minute": "minutes", "Hour": "hours", "Day": "days", "Week": "weeks"}
        return dt.timedelta(**{unit[self.frequency]: self.interval})

    def _base_date(self) -> dt.date:
        """The first day of period 0 (a Week pattern's periods start on Sunday)."""
        day = self.start.date()
        if self.pattern and self.frequency == "Week":
            day -= dt.timedelta(days=(day.weekday() + 1) % 7)
        return day

    def _period_of(self, moment: dt.datetime) -> int:
        """The index of the period holding ``moment``, give or take one (callers scan around it)."""
        if self.frequency in ("Minute", "Hour"):
            return math.floor((moment - self.start_utc) / self._step())
        local = moment.astimezone(self.zone).replace(tzinfo=None)
        if self.frequency == "Month":
            months = (local.year - self.start.year) * 12 + local.month - self.start.month
            return months // self.interval
        return (local.date() - self._base_date()).days // self._step().days

    def _wall_times(self, k: int) -> list[dt.datetime]:
        """A pattern's wall-clock times (naive, sorted) in period ``k`` >= 0."""
        first = self._base_date() + k * self._step()
        if self.frequency == "Day":
            days = [first]
        else:
            days = [first + dt.timedelta(days=WEEK_DAYS.index(d)) for d in self.week_days or ()]
        return sorted(
            dt.datetime.combine(day, dt.time(h, m))
            for day in days
            for h in self.hours or ()
            for m in self.minutes or ()
        )

    def _period(self, k: int) -> list[dt.datetime]:
        """The runs (UTC) of period ``k`` >= 0, not sorted; duplicates possible at a DST gap."""
        if self.frequency in ("Minute", "Hour"):
            return [self.start_utc + k * self._step()]
        if self.frequency == "Month":
            return [localize(add_months(self.start, k * self.interval), self.zone)]
        if not self.pattern:
            return [localize(self.start + k * self._step(), self.zone)]
        start = self.start_utc
        runs = (localize(wall, self.zone) for wall in self._wall_times(k))
        return [r for r in runs if r > start]  # v1: a pattern never runs at the start itself

    def _next_pattern_run(self, moment: dt.datetime) -> dt.datetime:
        """The pattern's next run after ``moment``, found on the wall clock as cron finds it.

        The next wall-clock time of the pattern after ``moment``'s own, made an instant: so two
        times that one spring change skips (00:00 and 00:30 where midnight becomes 01:00) run
        once, at 01:00, exactly as Airflow's ``CronTriggerTimetable`` runs them.
        """
        wall = moment.astimezone(self.zone).replace(tzinfo=None)
        start = self.start_utc
        k = max(0, (wall.date() - self._base_date()).days // self._step().days - 1)
        while True:
            for p in range(k, k + 3):
                for time in self._wall_times(p):
                    if time <= wall:
                        continue
                    run = localize(time, self.zone)
                    if run > moment and run > start:
                        return run
            k += 3

    # --- queries ------------------------------------------------------------------------------------
    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first run strictly after ``moment`` (aware), in UTC."""
        moment = _utc(moment)
        start = self.start_utc
        if self.start_runs and moment < start:
            return start
        if self.pattern:
            return self._next_pattern_run(moment)
        k = max(0, self._period_of(moment) - 1)
        while True:
            found = [r for p in range(k, k + 3) for r in self._period(p) if r > moment]
            if found:
                return min(found)
            k += 3

    def first_at_or_after(self, moment: dt.datetime) -> dt.datetime:
        return self.next_after(moment - dt.timedelta(microseconds=1))

    def last_at_or_before(self, moment: dt.datetime) -> dt.datetime | None:
        """The latest run at or before ``moment`` (aware), or None when none is that early."""
        moment = _utc(moment)
        if moment < self.start_utc:
            return None
        k = self._period_of(moment) + 1
        found = [r for p in range(max(0, k - 3), k + 1) for r in self._period(p) if r <= moment]
        if self.start_runs:
            found.append(self.start_utc)
        return max(found) if found else None

    def runs(self, after: dt.datetime, count: int) -> list[dt.datetime]:
        """The next ``count`` runs strictly after ``after`` (for previews and tests)."""
        out: list[dt.datetime] = []
        for _ in range(count):
            after = self.next_after(after)
            out.append(after)
        return out
