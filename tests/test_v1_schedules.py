"""Every recurrence v1 accepts fires exactly when v1 fired it (issue 11, item 8).

The table below gives, for each recurrence, its first runs as computed by hand (UTC, with the
wall-clock times in comments), across daylight-saving changes in both directions. Each row is
compiled the way a schedule is (``timetable_for`` then the DAG file's ``schedule=`` code, executed
as Airflow would execute it) and the runs come from Airflow's own scheduling call,
``next_dagrun_info``, whether the compiler chose a built-in cron timetable or the provider's
``ScheduleRecurrenceTimetable``. Further tests: the timetable survives Airflow's serialization,
the provider's plugin is what lets Airflow deserialize it, and a schedule's DAG file parses and
schedules in a DagBag.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pendulum
import pytest

from compiler.codegen import schedule_code
from compiler.timetables import timetable_for
from mlpipe_provider.sdk import Schedule, ScheduleRecurrence, TimeZone
from mlpipe_provider.sdk.timezones import iana_zone

CREATED = dt.datetime(2026, 1, 5, 12, 0, 0, tzinfo=dt.UTC)


def rec(**kwargs) -> dict:
    """A recurrence validated by v1's rules, as the schedule record holds it (IANA zone)."""
    recurrence = ScheduleRecurrence(**kwargs)
    recurrence.validate()
    data = recurrence._to_record()
    data["time_zone"] = iana_zone(data["time_zone"])
    return data


def compiled(schedule: dict) -> dict:
    """Execute the ``schedule=``/``start_date=`` lines a DAG file gets: what Airflow would see."""
    imports, lines = schedule_code(schedule)
    namespace: dict = {}
    exec("\n".join([*imports, "kwargs = dict(", *lines, ")"]), namespace)  # noqa: S102
    return namespace["kwargs"]


def first_runs(kwargs: dict, count: int) -> list[str]:
    """The first ``count`` runs Airflow schedules, as UTC ``YYYY-MM-DDThh:mm:ssZ``."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(kwargs["schedule"])
    start_date = kwargs.get("start_date")
    restriction = TimeRestriction(earliest=start_date, latest=None, catchup=True)
    last, out = None, []
    for _ in range(count):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last, restriction=restriction
        )
        assert info is not None
        out.append(info.run_after.in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
        last = info.data_interval
    return out


BERLIN, NEW_YORK = TimeZone.WEuropeStandardTime, TimeZone.EasternStandardTime
# Europe/Berlin: CET (+1) -> CEST (+2) on 2026-03-29, back on 2026-10-25.
# America/New_York: EDT (-4) -> EST (-5) on 2026-11-01.
TABLE = [
    pytest.param(
        {
            "frequency": "Day",
            "interval": 2,
            "hours": [22],
            "minutes": [30],
            "time_zone": BERLIN,
            "start_time": "2026-03-26T08:00:00",
        },
        "custom",
        # 26 Mar 22:30 CET, 28 Mar 22:30 CET, 30 Mar 22:30 CEST, 1 Apr 22:30 CEST
        [
            "2026-03-26T21:30:00Z",
            "2026-03-28T21:30:00Z",
            "2026-03-30T20:30:00Z",
            "2026-04-01T20:30:00Z",
        ],
        id="day-every-2-at-22:30-across-spring-change",
    ),
    pytest.param(
        {
            "frequency": "Week",
            "interval": 3,
            "week_days": ["Monday", "Friday"],
            "time_of_day": "09:00",
            "time_zone": NEW_YORK,
            "start_time": "2026-10-21T12:00:00",
        },
        "custom",
        # weeks Sunday-Saturday from the start's (18-24 Oct), every third: Fri 23 Oct 09:00 EDT,
        # Mon 9 / Fri 13 Nov 09:00 EST, Mon 30 Nov 09:00 EST
        [
            "2026-10-23T13:00:00Z",
            "2026-11-09T14:00:00Z",
            "2026-11-13T14:00:00Z",
            "2026-11-30T14:00:00Z",
        ],
        id="week-every-3-on-mon-fri-across-autumn-change",
    ),
    pytest.param(
        {
            "frequency": "Hour",
            "interval": 5,
            "time_zone": BERLIN,
            "start_time": "2026-10-24T20:00:00",
        },
        "custom",
        # elapsed hours from 20:00 CEST: 01:00 CEST, then 05:00 and 10:00 CET
        [
            "2026-10-24T18:00:00Z",
            "2026-10-24T23:00:00Z",
            "2026-10-25T04:00:00Z",
            "2026-10-25T09:00:00Z",
        ],
        id="hour-every-5-from-a-start",
    ),
    pytest.param(
        {
            "frequency": "Minute",
            "interval": 90,
            "time_zone": TimeZone.UTC,
            "start_time": "2026-01-01T00:00:00",
        },
        "custom",
        ["2026-01-01T00:00:00Z", "2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"],
        id="minute-every-90-from-a-start",
    ),
    pytest.param(
        {
            "frequency": "Month",
            "interval": 1,
            "time_zone": BERLIN,
            "start_time": "2026-01-31T09:00:00",
        },
        "custom",
        # the 31st, else the month's last day, each counted from the start: 09:00 local
        [
            "2026-01-31T08:00:00Z",
            "2026-02-28T08:00:00Z",
            "2026-03-31T07:00:00Z",
            "2026-04-30T07:00:00Z",
        ],
        id="month-on-the-31st",
    ),
    pytest.param(
        {
            "frequency": "Month",
            "interval": 5,
            "time_zone": TimeZone.UTC,
            "start_time": "2026-01-15T06:30:00",
        },
        "custom",
        [
            "2026-01-15T06:30:00Z",
            "2026-06-15T06:30:00Z",
            "2026-11-15T06:30:00Z",
            "2027-04-15T06:30:00Z",
        ],
        id="month-every-5",
    ),
    pytest.param(
        {
            "frequency": "Month",
            "interval": 3,
            "time_zone": TimeZone.UTC,
            "start_time": "2026-02-10T08:00:00",
        },
        "cron",
        [
            "2026-02-10T08:00:00Z",
            "2026-05-10T08:00:00Z",
            "2026-08-10T08:00:00Z",
            "2026-11-10T08:00:00Z",
        ],
        id="month-every-3-is-a-cron",
    ),
    pytest.param(
        {
            "frequency": "Day",
            "interval": 1,
            "hours": [2],
            "minutes": [30],
            "time_zone": BERLIN,
            "start_time": "2026-03-27T00:00:00",
        },
        "cron",
        # 02:30 does not exist on 29 Mar: it runs at 03:30 CEST
        [
            "2026-03-27T01:30:00Z",
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:30:00Z",
        ],
        id="day-at-02:30-is-a-cron-across-the-gap",
    ),
    pytest.param(
        {
            "frequency": "Day",
            "interval": 2,
            "hours": [2],
            "minutes": [30],
            "time_zone": BERLIN,
            "start_time": "2026-03-27T00:00:00",
        },
        "custom",
        # the custom timetable treats the gap as the cron does
        ["2026-03-27T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-31T00:30:00Z"],
        id="day-every-2-at-02:30-across-the-gap",
    ),
    pytest.param(
        {
            "frequency": "Day",
            "interval": 2,
            "hours": [2],
            "minutes": [30],
            "time_zone": BERLIN,
            "start_time": "2026-10-23T00:00:00",
        },
        "custom",
        # 02:30 happens twice on 25 Oct: one run, at the second (CET), as Airflow's cron does
        ["2026-10-23T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-27T01:30:00Z"],
        id="day-every-2-at-02:30-repeated-hour",
    ),
    pytest.param(
        {
            "frequency": "Day",
            "interval": 3,
            "time_zone": BERLIN,
            "start_time": "2026-03-28T02:30:00",
        },
        "custom",
        # no pattern: every third day at the start's wall-clock time
        ["2026-03-28T01:30:00Z", "2026-03-31T00:30:00Z", "2026-04-03T00:30:00Z"],
        id="day-every-3-from-a-start-keeps-the-wall-clock",
    ),
    pytest.param(
        {
            "frequency": "Week",
            "interval": 1,
            "week_days": ["Monday"],
            "time_of_day": "09:00",
            "time_zone": TimeZone.UTC,
            "start_time": "2026-03-16T09:00:00",
        },
        "cron",
        # v1: a start that is itself a scheduled time is not a run
        ["2026-03-23T09:00:00Z", "2026-03-30T09:00:00Z"],
        id="week-start-on-a-slot-is-skipped-cron",
    ),
    pytest.param(
        {
            "frequency": "Week",
            "interval": 2,
            "week_days": ["Monday"],
            "time_of_day": "09:00",
            "time_zone": TimeZone.UTC,
            "start_time": "2026-03-16T09:00:00",
        },
        "custom",
        ["2026-03-30T09:00:00Z", "2026-04-13T09:00:00Z"],
        id="week-start-on-a-slot-is-skipped-custom",
    ),
    pytest.param(
        {
            "frequency": "Week",
            "interval": 2,
            "hours": [8, 17],
            "minutes": [0, 30],
            "time_zone": TimeZone.UTC,
            "start_time": "2026-03-11T12:00:00",
        },
        "custom",
        # no week_days: the start's (Wednesday); four times a day, after the start
        [
            "2026-03-11T17:00:00Z",
            "2026-03-11T17:30:00Z",
            "2026-03-25T08:00:00Z",
            "2026-03-25T08:30:00Z",
            "2026-03-25T17:00:00Z",
        ],
        id="week-every-2-hours-and-minutes",
    ),
    pytest.param(
        {
            "frequency": "Day",
            "interval": 4,
            "hours": [6],
            "time_zone": TimeZone.UTC,
            "start_time": "2026-05-01T10:45:00",
        },
        "custom",
        # minutes come from the start (45); 06:45 on 1 May is before the start
        ["2026-05-05T06:45:00Z", "2026-05-09T06:45:00Z"],
        id="day-every-4-hours-only",
    ),
    pytest.param(
        {
            "frequency": "Week",
            "interval": 1,
            "time_zone": NEW_YORK,
            "start_time": "2026-10-28T07:15:00",
        },
        "cron",
        # every Wednesday at 07:15 local, across the autumn change
        ["2026-10-28T11:15:00Z", "2026-11-04T12:15:00Z"],
        id="week-from-a-start-is-a-cron",
    ),
]


@pytest.mark.parametrize(("recurrence", "kind", "expected"), TABLE)
def test_recurrence_fires_when_v1_fired_it(recurrence, kind, expected):
    schedule = timetable_for(rec(**recurrence), CREATED)
    assert schedule["timetable"]["kind"] == ("recurrence" if kind == "custom" else "cron")
    assert first_runs(compiled(schedule), len(expected)) == expected


def test_the_issue_example_compiles_to_the_custom_timetable_from_literals():
    schedule = timetable_for(
        rec(frequency="Day", interval=2, hours=[22], minutes=[30], time_zone=BERLIN), CREATED
    )
    imports, lines = schedule_code(schedule)
    assert imports == ["from mlpipe_provider.timetables import ScheduleRecurrenceTimetable"]
    assert lines[:10] == [
        "    schedule=ScheduleRecurrenceTimetable(",
        "        frequency='Day',",
        "        interval=2,",
        "        start='2026-01-05T13:00:00',",  # created, in Berlin: v1 counts days from it
        "        timezone='Europe/Berlin',",
        "        hours=[22],",
        "        minutes=[30],",
        "        week_days=None,",
        "        run_immediately=True,",
        "    ),",
    ]


def test_without_a_start_the_first_run_is_at_once_then_the_pattern():
    from airflow.timetables.base import DataInterval, TimeRestriction

    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    created = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=5)
    local = created.astimezone(dt.timezone(dt.timedelta(0)))
    timetable = ScheduleRecurrenceTimetable(
        frequency="Day",
        interval=2,
        start=local.replace(tzinfo=None).isoformat(),
        timezone="UTC",
        hours=[22],
        minutes=[30],
        run_immediately=True,
    )
    no_catchup = TimeRestriction(earliest=None, latest=None, catchup=False)
    first = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=no_catchup)
    assert first.run_after == created  # v1: "the first workload is run instantly"
    second = timetable.next_dagrun_info(
        last_automated_data_interval=first.data_interval, restriction=no_catchup
    )
    day = created.date() if created.time() < dt.time(22, 30) else created.date() + dt.timedelta(2)
    assert second.run_after == dt.datetime.combine(day, dt.time(22, 30), dt.UTC)
    # a missed run is skipped, as v1 skipped it: after a long outage the next run is in the future
    old = DataInterval.exact(pendulum.datetime(2020, 1, 1))
    later = timetable.next_dagrun_info(last_automated_data_interval=old, restriction=no_catchup)
    assert later.run_after > pendulum.now("UTC")


def test_past_start_runs_next_in_the_future():
    from airflow.timetables.base import TimeRestriction

    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    timetable = ScheduleRecurrenceTimetable(
        frequency="Hour", interval=5, start="2020-01-01T00:00:00", timezone="UTC"
    )
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=None, latest=None, catchup=False),
    )
    now = pendulum.now("UTC")
    assert now <= info.run_after <= now.add(hours=5)
    assert (info.run_after - pendulum.datetime(2020, 1, 1)).total_seconds() % (5 * 3600) == 0


def test_serialization_round_trip_needs_the_plugin():
    from airflow import plugins_manager
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    from mlpipe_provider.plugin import MlpipePlugin
    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    registered = plugins_manager.get_timetables_plugins()
    path = "mlpipe_provider.timetables.ScheduleRecurrenceTimetable"
    assert registered[path] is ScheduleRecurrenceTimetable  # found through the entry point
    assert any(isinstance(p, MlpipePlugin) for p in plugins_manager._get_plugins()[0])

    timetable = ScheduleRecurrenceTimetable(
        frequency="Week",
        interval=3,
        start="2026-10-21T12:00:00",
        timezone="America/New_York",
        hours=[9],
        minutes=[0],
        week_days=["Monday", "Friday"],
    )
    encoded = json.loads(json.dumps(encode_timetable(timetable)))
    assert encoded["__type"] == path
    decoded = decode_timetable(encoded)
    assert decoded == timetable and decoded is not timetable
    assert decoded.summary == (
        "every 3 weeks on Monday, Friday at 09:00 (from 2026-10-21T12:00:00, America/New_York)"
    )


def test_bad_timetable_arguments_fail_validation_with_the_field():
    from airflow.exceptions import AirflowTimetableInvalid

    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    bad = ScheduleRecurrenceTimetable(
        frequency="Day", interval=2, start="2026-01-01T00:00:00", timezone="Mars/Olympus"
    )
    with pytest.raises(AirflowTimetableInvalid, match="timezone 'Mars/Olympus'"):
        bad.validate()
    bad = ScheduleRecurrenceTimetable(
        frequency="Month",
        interval=1,
        start="2026-01-01T00:00:00",
        timezone="UTC",
        hours=[1],
        minutes=[0],
    )
    with pytest.raises(AirflowTimetableInvalid, match="only for Day and Week"):
        bad.validate()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # v1 still refuses these, with v1's messages
        ({"frequency": "Month", "interval": 2, "hours": [3]}, "Can only specify hours"),
        ({"frequency": "Hour", "interval": 5, "minutes": [3]}, "Can only specify minutes"),
        ({"frequency": "Day", "interval": 2, "week_days": ["Monday"]}, "Can only specify week"),
        ({"frequency": "Week", "interval": 0}, "Interval must be an integer greater than 0"),
    ],
)
def test_what_v1_refused_is_still_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScheduleRecurrence(**kwargs).validate()


def test_schedule_dag_parses_and_the_scheduler_deserializes_it(ws, project, airflow_db):
    """A schedule v1 accepted and mlpipe refused before: its DAG file, as the scheduler sees it."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    from test_schedule import publish_reader

    published = publish_reader(ws, project)
    schedule = Schedule.create(
        ws,
        "every-other-night",
        published.id,
        "nightly",
        recurrence=ScheduleRecurrence(
            frequency="Day",
            interval=2,
            hours=[22],
            minutes=[30],
            start_time="2031-01-01T00:00:00",
            time_zone=BERLIN,
        ),
    )
    path = ws.dags_dir / f"{schedule.dag_id}.py"
    text = path.read_text()
    assert "schedule=ScheduleRecurrenceTimetable(" in text
    schedule.disable()
    schedule.enable()
    assert path.read_text() == text  # re-rendered byte-identically

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[schedule.dag_id]
    data = json.loads(json.dumps(DagSerialization.to_dict(dag)))
    scheduled = DagSerialization.from_dict(data)  # what the scheduler works from
    assert type(scheduled.timetable).__name__ == "ScheduleRecurrenceTimetable"
    first = scheduled.next_dagrun_info(last_automated_run_info=None)
    second = scheduled.next_dagrun_info(last_automated_run_info=first)
    # 1 Jan 2031 22:30 CET, then 3 Jan
    assert [first.run_after, second.run_after] == [
        pendulum.datetime(2031, 1, 1, 21, 30),
        pendulum.datetime(2031, 1, 3, 21, 30),
    ]

    # the DAG processor's write to the metadata DB plans the first run from the timetable
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, "v1-schedules") is None:
            session.add(DagBundleModel(name="v1-schedules"))
    sync_bag_to_db(bag, "v1-schedules", None)
    with create_session() as session:
        model = session.get(DagModel, schedule.dag_id)
        assert model.timetable_summary.startswith("every 2 days at 22:30")
        assert pendulum.instance(model.next_dagrun_create_after) == first.run_after


@pytest.mark.parametrize(
    "zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Havana"]
)
def test_every_1_agrees_with_airflows_cron_for_a_year_of_dst_changes(zone):
    """An independent oracle: with interval 1 the custom timetable must fire exactly when
    Airflow's own ``CronTriggerTimetable`` does (half-hour DST in Lord Howe, midnight changes in
    Havana), so a recurrence means the same whichever timetable it compiles to."""
    from zoneinfo import ZoneInfo

    from airflow.timetables.trigger import CronTriggerTimetable

    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    for hours, minutes, days in [([0, 2, 3], [0, 30], None), ([1, 23], [15], ["Sunday"])]:
        cron = CronTriggerTimetable(
            f"{','.join(map(str, minutes))} {','.join(map(str, hours))} * * {'0' if days else '*'}",
            timezone=zone,
        )
        start = dt.datetime(2025, 12, 31, 0, 0, 0, 1, tzinfo=ZoneInfo(zone))
        ours = ScheduleRecurrenceTimetable(
            frequency="Week" if days else "Day",
            interval=1,
            start="2025-12-31T00:00:00",
            timezone=zone,
            hours=hours,
            minutes=minutes,
            week_days=days,
        )
        count = 60 if days else 370 * 6
        theirs = first_runs({"schedule": cron, "start_date": pendulum.instance(start)}, count)
        assert first_runs({"schedule": ours}, count) == theirs


def test_every_n_is_every_1_on_every_nth_day_or_week():
    """Another oracle for interval > 1: its runs are exactly Airflow's cron runs (interval 1)
    that fall on a day (a week, counted Sunday to Saturday) a multiple of n after the start's."""
    from zoneinfo import ZoneInfo

    from airflow.timetables.trigger import CronTriggerTimetable
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mlpipe_provider.recurrence import localize
    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    zones = ["Europe/Berlin", "America/New_York", "America/Santiago", "UTC"]
    days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    @settings(max_examples=int(os.environ.get("V1_SCHEDULE_EXAMPLES", "25")), deadline=None)
    @given(
        weekly=st.booleans(),
        interval=st.integers(2, 5),
        hours=st.sets(st.integers(0, 23), min_size=1, max_size=3),
        minutes=st.sets(st.sampled_from([0, 15, 30, 59]), min_size=1, max_size=2),
        week_days=st.sets(st.sampled_from(days), min_size=1, max_size=3),
        zone=st.sampled_from(zones),
        start=st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2026, 12, 31)),
    )
    def check(weekly, interval, hours, minutes, week_days, zone, start):
        start = start.replace(microsecond=0)
        ordered = [d for d in days if d in week_days] if weekly else None
        ours = ScheduleRecurrenceTimetable(
            frequency="Week" if weekly else "Day",
            interval=interval,
            start=start.isoformat(),
            timezone=zone,
            hours=sorted(hours),
            minutes=sorted(minutes),
            week_days=ordered,
        )
        dow = ",".join(str(days.index(d)) for d in ordered) if weekly else "*"
        cron = CronTriggerTimetable(
            f"{','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))} * * {dow}",
            timezone=zone,
        )
        after = pendulum.instance(localize(start, ZoneInfo(zone)))  # as the table pins it
        first = start.date()
        if weekly:
            first -= dt.timedelta(days=(first.weekday() + 1) % 7)  # that week's Sunday
        every_1 = first_runs({"schedule": cron, "start_date": after.add(seconds=1)}, 400)
        expected = []
        for run in every_1:
            local = pendulum.parse(run).in_timezone(zone).date()
            if ((local - first).days // (7 if weekly else 1)) % interval == 0:
                expected.append(run)
        wanted = min(len(expected), 12)
        assert first_runs({"schedule": ours}, wanted) == expected[:wanted]

    check()
