"""A v1 ``ScheduleRecurrence`` as an Airflow 3 timetable (plain data for ``codegen``).

Every recurrence v1 accepts gets a timetable that fires exactly when v1 would have fired it
(``mlpipe_provider.recurrence`` states the rules). A built-in timetable where one is exact:

* no ``start_time``, ``Minute``/``Hour``/``Day``/``Week`` every *n*, no time pattern:
  ``DeltaTriggerTimetable(timedelta(...=n))``, first run at once, then every *n* after the last
  run (v1: "runs future workloads based on the last run time"; the time zone applies only with a
  start time);
* a time pattern (``hours``/``minutes``/``week_days``/``time_of_day``) every 1, and ``Day``/``Week``
  every 1 from a ``start_time`` on a whole minute: ``CronTriggerTimetable("M H * * DOW",
  timezone=...)``, so the wall-clock time holds across daylight-saving changes; missing fields come
  from the start (``start_time``, or the moment the schedule was created), as in v1;
* ``Month`` every *n* dividing 12, on a day every month has (1-28), on a whole minute: a cron on the
  start's day and time in the months congruent to the start month.

Everything else (``Day`` every 2 at 22:30, ``Week`` every 3 on Monday and Friday, ``Hour`` every 5
from a start, ``Month`` every 5 or on the 31st, a start on a non-zero second) compiles to
``mlpipe_provider.timetables.ScheduleRecurrenceTimetable``, registered by the provider's plugin.

Times are in the recurrence's time zone (an IANA name; the SDK maps v1's Windows names).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

_UNITS = {"Minute": "minutes", "Hour": "hours", "Day": "days", "Week": "weeks"}
_CRON_DAY = {
    "Sunday": 0,
    "Monday": 1,
    "Tuesday": 2,
    "Wednesday": 3,
    "Thursday": 4,
    "Friday": 5,
    "Saturday": 6,
}
_WEEK_ORDER = list(_CRON_DAY)  # Sunday first, as the recurrence's weeks run


def _when(moment: dt.datetime, tz: str) -> dict[str, Any]:
    local = moment.astimezone(ZoneInfo(tz))
    return {
        "year": local.year,
        "month": local.month,
        "day": local.day,
        "hour": local.hour,
        "minute": local.minute,
        "second": local.second,
        "timezone": tz,
    }


def _start_time(recurrence: dict[str, Any], tz: str) -> dt.datetime | None:
    text = recurrence.get("start_time")
    if text is None:
        return None
    naive = dt.datetime.fromisoformat(text)
    if naive.tzinfo is not None:
        raise ValueError("Can not specify tzinfo for start_time, use time_zone instead.")
    return naive.replace(tzinfo=ZoneInfo(tz))


def _cron_field(values: list[int]) -> str:
    return ",".join(str(v) for v in sorted(set(values)))


def timetable_for(recurrence: dict[str, Any], created: dt.datetime) -> dict[str, Any]:
    """The ``schedule`` argument of ``codegen.render_dag`` for a validated recurrence.

    ``created`` (aware) is when the schedule was created or its recurrence last changed: without
    a ``start_time`` it is the start v1 counts from, and a start in the past moves a built-in
    timetable's ``start_date`` to after it. The result depends only on its arguments, so a
    schedule re-renders byte-identically.
    """
    tz = recurrence.get("time_zone") or "UTC"
    frequency, interval = recurrence["frequency"], int(recurrence["interval"])
    if frequency not in ("Minute", "Hour", "Day", "Week", "Month"):
        raise ValueError(f"unknown frequency {frequency!r}")
    start = _start_time(recurrence, tz)
    anchor = (start or created).astimezone(ZoneInfo(tz)).replace(microsecond=0)
    hours, minutes, week_days = (
        recurrence.get("hours"),
        recurrence.get("minutes"),
        recurrence.get("week_days"),
    )
    pattern = hours is not None or minutes is not None or week_days is not None
    result: dict[str, Any] = {"start_date": None, "is_paused_upon_creation": False}

    if not pattern and start is None and frequency != "Month":
        result["timetable"] = {"kind": "delta", "unit": _UNITS[frequency], "amount": interval}
        return result

    if pattern:  # v1 fills what is missing from the start (or the creation time)
        hours = sorted(set(hours if hours is not None else [anchor.hour]))
        minutes = sorted(set(minutes if minutes is not None else [anchor.minute]))
        if frequency == "Week":
            days = set(week_days) if week_days else {_WEEK_ORDER[anchor.isoweekday() % 7]}
            week_days = [d for d in _WEEK_ORDER if d in days]

    on_the_minute = anchor.second == 0
    if frequency in ("Day", "Week") and interval == 1 and (pattern or on_the_minute):
        day_field = "*"
        if frequency == "Week":
            day_field = _cron_field(
                [_CRON_DAY[d] for d in week_days] if pattern else [anchor.isoweekday() % 7]
            )
        expression = (
            f"{_cron_field(minutes if pattern else [anchor.minute])} "
            f"{_cron_field(hours if pattern else [anchor.hour])} * * {day_field}"
        )
        # v1: with a pattern, a run falling exactly on start_time is skipped
        first = start + dt.timedelta(seconds=1) if start is not None and pattern else start
        return _cron(result, expression, tz, first, created)

    if frequency == "Month" and 12 % interval == 0 and anchor.day <= 28 and on_the_minute:
        months = [m for m in range(1, 13) if (m - anchor.month) % interval == 0]
        month_field = "*" if interval == 1 else _cron_field(months)
        expression = f"{anchor.minute} {anchor.hour} {anchor.day} {month_field} *"
        return _cron(result, expression, tz, start, created)

    result["timetable"] = {
        "kind": "recurrence",
        "frequency": frequency,
        "interval": interval,
        "start": anchor.replace(tzinfo=None).isoformat(),
        "timezone": tz,
        "hours": hours if pattern else None,
        "minutes": minutes if pattern else None,
        "week_days": week_days if pattern and frequency == "Week" else None,
        "run_immediately": start is None,
    }
    return result


def _cron(
    result: dict[str, Any],
    expression: str,
    tz: str,
    start: dt.datetime | None,
    created: dt.datetime,
) -> dict[str, Any]:
    # Without a start, v1 runs at once: the most recent slot runs immediately, then the pattern.
    result["timetable"] = {
        "kind": "cron",
        "expression": expression,
        "timezone": tz,
        "run_immediately": start is None,
    }
    if start is not None:
        result["start_date"] = _when(max(start, created), tz)
    return result


def polling_timetable(minutes: float) -> dict[str, Any]:
    """The watcher DAG of a datastore schedule polls every ``minutes`` (first poll at once)."""
    amount: int | float = int(minutes) if float(minutes).is_integer() else float(minutes)
    return {
        "timetable": {"kind": "delta", "unit": "minutes", "amount": amount},
        "start_date": None,
        "is_paused_upon_creation": False,
    }


def unscheduled() -> dict[str, Any]:
    """No timetable (a disabled schedule, a published or datastore-triggered pipeline), unpaused."""
    return {"timetable": None, "start_date": None, "is_paused_upon_creation": False}
