"""A v1 ``ScheduleRecurrence`` as an Airflow 3 timetable (plain data for ``codegen``).

The mapping, chosen so that every schedule fires exactly when v1 would have fired it:

* ``Minute`` / ``Hour`` every *n*: ``DeltaTriggerTimetable(timedelta(minutes|hours=n))``.
  Without ``start_time`` the first run is at once (v1: "the first workload is run instantly");
  with one, the DAG starts at the first ``start_time + k*interval`` not in the past.
* ``Day`` / ``Week`` with ``hours``/``minutes``/``week_days``/``time_of_day``, and ``Day``/``Week``
  every 1 with a ``start_time``: ``CronTriggerTimetable("M H * * DOW", timezone=...)``, so the
  wall-clock time holds across daylight-saving changes. Missing fields come from the start
  (``start_time``, or the moment the schedule was created), as in v1. Every *n* > 1 together with
  hours/minutes/week days has no exact Airflow timetable and is refused.
* ``Day`` / ``Week`` every *n* without a time pattern: a delta of *n* days / weeks.
* ``Month`` every *n*: a cron on the start's day and time when *n* divides 12 (months congruent
  to the start month), else ``DeltaTriggerTimetable(relativedelta(months=n))``.

Times are in the recurrence's time zone (an IANA name; the SDK maps v1's Windows names).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

from mlpipe_provider.errors import NotSupportedError

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

    ``created`` (aware) is when the schedule was created or its recurrence last changed: a start
    in the past moves to the first time after it, and fields v1 takes from the start default to it.
    """
    tz = recurrence.get("time_zone") or "UTC"
    frequency, interval = recurrence["frequency"], int(recurrence["interval"])
    start = _start_time(recurrence, tz)
    anchor = (start or created).astimezone(ZoneInfo(tz))
    hours, minutes, week_days = (
        recurrence.get("hours"),
        recurrence.get("minutes"),
        recurrence.get("week_days"),
    )
    pattern = hours is not None or minutes is not None or week_days is not None
    result: dict[str, Any] = {"start_date": None, "is_paused_upon_creation": False}

    if frequency in ("Minute", "Hour") or (
        frequency in ("Day", "Week") and not pattern and (interval > 1 or start is None)
    ):
        unit = _UNITS[frequency]
        result["timetable"] = {"kind": "delta", "unit": unit, "amount": interval}
        if start is not None:
            step = dt.timedelta(**{unit: interval})  # elapsed time, as Airflow adds it (UTC)
            behind = (created - start) / step
            first = start.astimezone(dt.UTC) + step * max(0, math.ceil(behind))
            result["start_date"] = _when(first, tz)
        return result

    if frequency in ("Day", "Week"):
        if interval != 1:
            raise NotSupportedError(
                f"ScheduleRecurrence(frequency={frequency!r}, interval={interval}) with hours, "
                "minutes, week_days or time_of_day has no exact Airflow timetable; use interval=1 "
                "(or one schedule per time of day without hours/minutes)"
            )
        day_field = "*"
        if frequency == "Week":
            days = [_CRON_DAY[d] for d in week_days] if week_days else [anchor.isoweekday() % 7]
            day_field = _cron_field(days)
        expression = (
            f"{_cron_field(minutes if minutes is not None else [anchor.minute])} "
            f"{_cron_field(hours if hours is not None else [anchor.hour])} * * {day_field}"
        )
        return _cron(result, expression, tz, start, created)

    if frequency == "Month":
        if 12 % interval == 0:
            months = [m for m in range(1, 13) if (m - anchor.month) % interval == 0]
            month_field = "*" if interval == 1 else _cron_field(months)
            expression = f"{anchor.minute} {anchor.hour} {anchor.day} {month_field} *"
            return _cron(result, expression, tz, start, created)
        result["timetable"] = {"kind": "months", "months": interval}
        if start is not None:
            from dateutil.relativedelta import relativedelta

            first, k = start, 0
            while first < created:
                k += 1
                first = start + relativedelta(months=interval * k)
            result["start_date"] = _when(first, tz)
        return result
    raise ValueError(f"unknown frequency {frequency!r}")


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
