"""Schedules: v1 recurrences as Airflow 3 timetables, rendered into DAG files; datastore triggers.

Most tests check what is compiled (the timetable in the DAG file, as Airflow loads it). One test
deploys schedules to a real ``airflow standalone`` (started once for this module) and waits for
them to fire: a 1-minute recurrence, and a datastore trigger that must start exactly one run per
file added.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from airflow_server import AirflowServer
from conftest import write_script

from compiler.timetables import timetable_for
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk import (
    DataPath,
    DataPathComputeBinding,
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
    TimeZone,
    Workspace,
)

READER = """
    import os, sys
    data = sys.argv[1]
    path = data if os.path.isfile(data) else os.path.join(data, "data.txt")
    print("read", path, open(path).read().strip())
"""
CREATED = dt.datetime(2026, 3, 10, 8, 17, 45, tzinfo=dt.UTC)


def publish_reader(ws, folder: Path, name: str = "reader"):
    write_script(folder / "src", "reader.py", READER)
    target = ws._dir / "datastores" / "workspaceblobstore" / "raw" / "data.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("default")
    data = PipelineParameter(
        "input_data", DataPath(ws.get_default_datastore(), path_on_datastore="raw")
    )
    step_input = (data, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "reader.py",
        arguments=[step_input, "--n", PipelineParameter("n", 1)],
        inputs=[step_input],
        source_directory=str(folder / "src"),
    )
    return Pipeline(ws, [step]).publish(name=name)


def load_dag(ws, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ws.dags_dir / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


ALLOWED_IMPORTS = {
    "airflow.sdk",
    "airflow.providers.standard.operators.trigger_dagrun",
    "datetime",
    "pendulum",
    "mlpipe_provider.operators.datastore_watch",
    "mlpipe_provider.operators.script",
    "mlpipe_provider.operators.reuse_plan",
    "mlpipe_provider.timetables",
}


def imports_of(path: Path) -> set[str]:
    """Generated files import only Airflow, the provider's runtime and date helpers."""
    import ast

    tree = ast.parse(path.read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return modules | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def summary(dag) -> str:
    """What the Airflow UI shows as the DAG's schedule."""
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(dag.timetable).summary


def rec(**kwargs) -> dict:
    """A validated recurrence as ``timetable_for`` sees it (IANA zone)."""
    from mlpipe_provider.sdk.timezones import iana_zone

    recurrence = ScheduleRecurrence(**kwargs)
    recurrence.validate()
    data = recurrence._to_record()
    data["time_zone"] = iana_zone(data["time_zone"])
    return data


# --- recurrence -> timetable ------------------------------------------------------------------------


def test_minute_interval_is_a_delta_that_starts_at_once():
    table = timetable_for(rec(frequency="Minute", interval=15), CREATED)
    assert table["timetable"] == {"kind": "delta", "unit": "minutes", "amount": 15}
    assert table["start_date"] is None  # v1: without start_time the first run is immediate


def test_a_start_in_the_past_moves_to_the_next_slot_in_its_time_zone():
    table = timetable_for(
        rec(
            frequency="Hour",
            interval=1,
            start_time="2020-01-13T12:55:00",
            time_zone=TimeZone.PacificStandardTime,
        ),
        CREATED,
    )
    # counted from the start in elapsed hours, not from when the scheduler first sees it
    assert table["timetable"] == {
        "kind": "recurrence",
        "frequency": "Hour",
        "interval": 1,
        "start": "2020-01-13T12:55:00",
        "timezone": "America/Los_Angeles",
        "hours": None,
        "minutes": None,
        "week_days": None,
        "run_immediately": False,
    }
    from mlpipe_provider.timetables import ScheduleRecurrenceTimetable

    params = {k: v for k, v in table["timetable"].items() if k != "kind"}
    rule = ScheduleRecurrenceTimetable(**params).rule
    # 08:17:45 UTC is 01:17:45 in Los Angeles (PDT on 10 March 2026): next xx:55 is 01:55
    assert rule.first_at_or_after(CREATED) == dt.datetime(2026, 3, 10, 8, 55, tzinfo=dt.UTC)


def test_week_days_and_time_of_day_are_a_cron_in_the_time_zone():
    table = timetable_for(
        rec(
            frequency="Week",
            interval=1,
            week_days=["Monday", "Wednesday"],
            time_of_day="18:30",
            time_zone=TimeZone.WEuropeStandardTime,
        ),
        CREATED,
    )
    assert table["timetable"] == {
        "kind": "cron",
        "expression": "30 18 * * 1,3",
        "timezone": "Europe/Berlin",
        "run_immediately": True,
    }


def test_hours_and_minutes_of_a_daily_recurrence():
    table = timetable_for(
        rec(frequency="Day", interval=1, hours=[14, 10], minutes=[30, 0], time_zone="Asia/Tokyo"),
        CREATED,
    )
    assert table["timetable"]["expression"] == "0,30 10,14 * * *"
    assert table["timetable"]["timezone"] == "Asia/Tokyo"


def test_months_and_longer_days():
    start = {"start_time": "2019-11-01T09:00:00", "time_zone": TimeZone.UTC}
    monthly = timetable_for(rec(frequency="Month", interval=1, **start), CREATED)
    assert monthly["timetable"]["expression"] == "0 9 1 * *"
    assert monthly["start_date"]["year"] == 2026  # not before the schedule existed
    quarterly = timetable_for(rec(frequency="Month", interval=3, **start), CREATED)
    assert quarterly["timetable"]["expression"] == "0 9 1 2,5,8,11 *"
    every_five = timetable_for(rec(frequency="Month", interval=5, **start), CREATED)
    assert every_five["timetable"]["kind"] == "recurrence"  # tests/test_v1_schedules.py
    assert every_five["timetable"]["start"] == "2019-11-01T09:00:00"
    every_two_days = timetable_for(rec(frequency="Day", interval=2), CREATED)
    assert every_two_days["timetable"] == {"kind": "delta", "unit": "days", "amount": 2}
    biweekly = timetable_for(rec(frequency="Week", interval=2, week_days=["Monday"]), CREATED)
    assert biweekly["timetable"]["kind"] == "recurrence"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frequency": "Year", "interval": 1}, "Invalid value for frequency"),
        ({"frequency": "Day", "interval": 0}, "Interval must be an integer greater than 0"),
        ({"frequency": "Hour", "interval": 1, "hours": [3]}, "Can only specify hours"),
        ({"frequency": "Month", "interval": 1, "minutes": [3]}, "Can only specify minutes"),
        (
            {"frequency": "Day", "interval": 1, "week_days": ["Monday"]},
            "Can only specify week days",
        ),
        ({"frequency": "Day", "interval": 1, "hours": [24]}, "Hours must be between 0 and 23"),
        ({"frequency": "Day", "interval": 1, "minutes": [60]}, "Minutes must be between 0 and 59"),
        ({"frequency": "Week", "interval": 1, "week_days": ["Funday"]}, "Week days must be"),
        ({"frequency": "Day", "interval": 1, "time_zone": "Mars/Olympus"}, "not a valid TimeZone"),
    ],
)
def test_v1_recurrence_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScheduleRecurrence(**kwargs).validate()


def test_v1_recurrence_construction_errors():
    with pytest.raises(ValueError, match="Can not specify time_of_day and hours or minutes"):
        ScheduleRecurrence("Day", 1, hours=[1], time_of_day="10:00")
    with pytest.raises(ValueError, match="hh:mm"):
        ScheduleRecurrence("Day", 1, time_of_day="10h")
    with pytest.raises(ValueError, match="use time_zone instead"):
        ScheduleRecurrence("Day", 1, start_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    # v1: a start_time without a time zone means GMT Standard Time
    assert ScheduleRecurrence("Day", 1, start_time="2026-01-01T00:00:00").time_zone == (
        TimeZone.GMTStandardTime
    )


# --- schedules compiled into DAG files -------------------------------------------------------------


def test_schedule_dag_has_the_timetable_and_the_parameters_as_defaults(ws, project):
    published = publish_reader(ws, project)
    recurrence = ScheduleRecurrence(
        frequency="Week",
        interval=1,
        week_days=["Friday"],
        hours=[6],
        minutes=[15],
        time_zone=TimeZone.EasternStandardTime,
    )
    schedule = Schedule.create(
        ws,
        "weekly",
        published.id,
        "reports",
        recurrence=recurrence,
        description="every Friday",
        pipeline_parameters={"n": 7, "input_data": "raw"},
    )
    text = (ws.dags_dir / f"{schedule.dag_id}.py").read_text()
    assert (
        "schedule=CronTriggerTimetable('15 6 * * 5', timezone='America/New_York', "
        "run_immediately=True)," in text
    )
    dag = load_dag(ws, schedule.dag_id)
    assert summary(dag) == "15 6 * * 5"
    assert dag.params["n"] == 7
    assert dag.params["input_data"] == {
        "datastore": "workspaceblobstore",
        "path_on_datastore": "raw",
    }
    assert "experiment:reports" in dag.tags
    # the published pipeline's own DAG is unchanged and unscheduled
    assert load_dag(ws, published.dag_id).params["n"] == 1

    found = Schedule.get(ws, schedule.id)
    assert (found.name, found.description, found.status, found.pipeline_id) == (
        "weekly",
        "every Friday",
        "Active",
        published.id,
    )
    assert found.recurrence.week_days == ["Friday"]
    assert found.recurrence.time_zone == TimeZone.EasternStandardTime
    assert [s.id for s in Schedule.list(ws)] == [schedule.id]
    assert [s.id for s in Schedule.list(ws, pipeline_id=published.id)] == [schedule.id]

    schedule.disable()
    assert "    schedule=None,\n" in (ws.dags_dir / f"{schedule.dag_id}.py").read_text()
    assert Schedule.list(ws) == [] and len(Schedule.list(ws, active_only=False)) == 1
    assert Schedule.get(ws, schedule.id).status == "Disabled"
    schedule.enable()
    assert summary(load_dag(ws, schedule.dag_id)) == "15 6 * * 5"

    schedule.update(recurrence=ScheduleRecurrence(frequency="Minute", interval=30), name="often")
    dag = load_dag(ws, schedule.dag_id)
    assert summary(dag) == "0:30:00"
    assert imports_of(ws.dags_dir / f"{schedule.dag_id}.py") <= ALLOWED_IMPORTS
    assert Schedule.get(ws, schedule.id).name == "often"
    # nothing ran it: no server is configured, so there are no runs to report
    assert schedule.get_pipeline_runs() == [] and schedule.get_last_pipeline_run() is None


def test_schedule_create_refuses_bad_combinations(ws, project):
    published = publish_reader(ws, project)
    ds = ws.get_default_datastore()
    minute = ScheduleRecurrence(frequency="Minute", interval=1)
    with pytest.raises(ValueError, match="both a Recurrence and a Datastore"):
        Schedule.create(ws, "s", published.id, "e", recurrence=minute, datastore=ds)
    with pytest.raises(ValueError, match="Data Path parameter name can only"):
        Schedule.create(ws, "s", published.id, "e", recurrence=minute, data_path_parameter_name="n")
    with pytest.raises(ValueError, match="recurrence or a datastore"):
        Schedule.create(ws, "s", published.id, "e")
    with pytest.raises(ValueError, match="'nope' is not a parameter"):
        Schedule.create(ws, "s", published.id, "e", datastore=ds, data_path_parameter_name="nope")
    with pytest.raises(ValueError, match="must be a DataPath"):
        Schedule.create(ws, "s", published.id, "e", datastore=ds, data_path_parameter_name="n")
    with pytest.raises(UserErrorException, match="parameter 'n' expects integer"):
        Schedule.create(
            ws, "s", published.id, "e", recurrence=minute, pipeline_parameters={"n": "x"}
        )
    # a name reaches the DAG file's docstring: nothing that could close it is accepted
    with pytest.raises(UserErrorException, match="Schedule name"):
        Schedule.create(ws, 'x"""\nimport os\n"""', published.id, "e", recurrence=minute)
    published.disable()
    with pytest.raises(UserErrorException, match="needs an active one"):
        Schedule.create(ws, "s", published.id, "e", recurrence=minute)
    assert Schedule.list(ws, active_only=False) == []


def test_datastore_schedule_compiles_a_watcher_and_snapshots_the_folder(ws, project):
    from mlpipe_provider.datastores import open_datastore
    from mlpipe_provider.runtime import datastore_watch as watch

    published = publish_reader(ws, project)
    incoming = ws._dir / "datastores" / "workspaceblobstore" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "old.csv").write_text("already here")
    schedule = Schedule.create(
        ws,
        "on-data",
        published.id,
        "ingest",
        datastore=ws.get_default_datastore(),
        path_on_datastore="incoming",
        polling_interval=2,
        data_path_parameter_name="input_data",
    )
    for dag_id in (schedule.dag_id, schedule.watcher_dag_id):
        assert imports_of(ws.dags_dir / f"{dag_id}.py") <= ALLOWED_IMPORTS
    watcher = load_dag(ws, schedule.watcher_dag_id)
    assert summary(watcher) == "0:02:00"
    assert set(watcher.task_ids) == {"watch", "trigger"}
    assert summary(load_dag(ws, schedule.dag_id)) == "None"
    store = open_datastore(ws._dir, ws._config, "workspaceblobstore")
    assert set(watch.read_state(store, schedule.id)) == {"incoming/old.csv"}
    # the poll's logic: one new file and one changed file; subfolders and dot-files are not watched
    (incoming / "new.csv").write_text("1")
    (incoming / "old.csv").write_text("changed, and longer")
    (incoming / "sub").mkdir()
    (incoming / "sub" / "deep.csv").write_text("2")
    (incoming / ".partial.csv").write_text("3")
    current = watch.list_files(store, "incoming")
    assert watch.changed_files(watch.read_state(store, schedule.id), current) == [
        "incoming/new.csv",
        "incoming/old.csv",
    ]
    schedule.disable()
    assert summary(load_dag(ws, schedule.watcher_dag_id)) == "None"


# --- a real scheduler -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_ws():
    """``airflow standalone`` reading the workspace's DAG folder; the workspace config names it."""
    from mlpipe_provider.config import AirflowServerConfig

    root = Path(tempfile.mkdtemp(prefix="mlpipe-schedules-"))
    ws = Workspace(_workspace_dir=root / "project" / ".mlpipe")
    server = AirflowServer(root / "airflow")
    server.dags = ws.dags_dir
    server.dags.mkdir(parents=True, exist_ok=True)
    server.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(ws.dags_dir)
    server.env["AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL"] = "2"
    server.start()
    config = ws._config
    config.airflow = AirflowServerConfig(url=server.url)
    ws._save(config)
    yield server, ws, root / "project"
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def wait_until(check, timeout_s: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_schedules_fire_on_a_real_scheduler(server_ws):
    server, ws, project = server_ws
    published = publish_reader(ws, project)

    # a recurrence every minute, no start time: v1 runs the first one at once
    every_minute = Schedule.create(
        ws,
        "every-minute",
        published.id,
        "scheduled",
        recurrence=ScheduleRecurrence(frequency="Minute", interval=1),
        pipeline_parameters={"n": 4},
        wait_for_provisioning=True,
        wait_timeout=120,
    )
    runs = wait_until(
        lambda: [r for r in every_minute.get_pipeline_runs() if r.get_status() == "Finished"],
        120,
        "the every-minute schedule to fire",
    )
    run = runs[0]
    assert run.get_details()["airflowDagId"] == every_minute.dag_id
    assert [s.name for s in run.get_steps()] == ["reader.py"]  # the reuse sensor folds in
    (step,) = run.find_step_run("reader.py")
    assert step.get_status() == "Finished"
    assert step.id != f"{run.id}:reader.py"  # the step's record came back through the REST API
    assert run.get_details()["parameters"] == {}  # scheduled: the DAG's defaults (n=4) apply
    assert every_minute.get_last_pipeline_run().id == runs[0].id or len(runs) > 1
    server_runs = server.get(f"/api/v2/dags/{every_minute.dag_id}/dagRuns")["dag_runs"]
    assert all(r["run_type"] == "scheduled" for r in server_runs)
    every_minute.disable()

    # a datastore trigger: one run per file added, with that file's path as the DataPath
    incoming = ws._dir / "datastores" / "workspaceblobstore" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "before.txt").write_text("there before the schedule")
    on_data = Schedule.create(
        ws,
        "on-data",
        published.id,
        "ingest",
        datastore=ws.get_default_datastore(),
        path_on_datastore="incoming",
        polling_interval=0.1,  # minutes; mlpipe takes fractions (v1: whole minutes)
        data_path_parameter_name="input_data",
        wait_for_provisioning=True,
        wait_timeout=120,
    )
    watch_runs = f"/api/v2/dags/{on_data.watcher_dag_id}/dagRuns?state=success"
    wait_until(lambda: server.get(watch_runs)["total_entries"] >= 1, 120, "a first poll")
    staging = ws._dir / "datastores" / "workspaceblobstore" / "staging"
    staging.mkdir()
    for name in ("a.txt", "b.txt"):  # complete files appear at once (rename)
        (staging / name).write_text(f"content of {name}")
        os.replace(staging / name, incoming / name)

    def finished_runs():
        runs = server.get(f"/api/v2/dags/{on_data.dag_id}/dagRuns")["dag_runs"]
        return runs if len(runs) >= 2 and all(r["state"] == "success" for r in runs) else None

    runs = wait_until(finished_runs, 180, "two triggered runs to finish")
    paths = sorted(r["conf"]["input_data"]["path_on_datastore"] for r in runs)
    assert paths == ["incoming/a.txt", "incoming/b.txt"]
    assert {r["conf"]["input_data"]["datastore"] for r in runs} == {"workspaceblobstore"}
    # nothing more added: later polls trigger nothing
    polls = server.get(watch_runs)["total_entries"]
    wait_until(lambda: server.get(watch_runs)["total_entries"] >= polls + 2, 60, "two more polls")
    assert len(server.get(f"/api/v2/dags/{on_data.dag_id}/dagRuns")["dag_runs"]) == 2
    adopted = on_data.get_pipeline_runs()
    assert (
        sorted(r.get_details()["parameters"]["input_data"]["path_on_datastore"] for r in adopted)
        == paths
    )
    assert {r.get_status() for r in adopted} == {"Finished"}
    on_data.disable()
