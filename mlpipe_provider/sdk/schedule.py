"""``Schedule`` and ``ScheduleRecurrence``: published pipelines run on a timetable or on new data.

A schedule compiles DAGs of its own from its published pipeline's stored graph, with the
schedule's ``pipeline_parameters`` as the DAG params' defaults:

* a **recurrence** schedule is one DAG whose Airflow timetable is the recurrence
  (``compiler.timetables`` has the exact mapping, time zone included);
* a **datastore** schedule is a pipeline DAG without a timetable plus a small watcher DAG that
  polls the folder every ``polling_interval`` minutes and triggers the pipeline DAG once per file
  added or changed directly in it, with that file's path as ``data_path_parameter_name``.

A schedule of a **pipeline endpoint** (``create_for_pipeline_endpoint``) runs the endpoint's
*current* default version each time it fires, so it cannot be compiled from one pipeline: its DAG
is a small router (``compiler/endpoint_router.py``) on the same timetable whose one task reads the
endpoint's default version from the registry when it runs and triggers that published pipeline's
own DAG with the schedule's parameters (``operators/endpoint_trigger.py``). A datastore schedule
of an endpoint has a watcher DAG that triggers the router once per new file.

The DAG files go to the workspace's DAG folder, which the Airflow scheduler must read (with no
scheduler, nothing fires: the embedded Airflow only runs submits). ``disable`` re-renders them
without their timetable (the files stay, so a run in progress finishes), ``enable`` restores it.
The registry is ``schedules/<id>.json`` in the workspace.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.embedded.status import read_json
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import ACTIVE, DISABLED, SCHEDULES
from mlpipe_provider.sdk import services
from mlpipe_provider.sdk.timezones import TimeZone, iana_zone, time_zone_value

FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ScheduleRecurrence:
    """How often a schedule fires: v1's constructor and ``validate`` rules."""

    def __init__(
        self,
        frequency: str,
        interval: int,
        start_time: dt.datetime | str | None = None,
        time_zone: TimeZone | str | None = None,
        hours: list[int] | None = None,
        minutes: list[int] | None = None,
        week_days: list[str] | None = None,
        time_of_day: str | None = None,
    ):
        self.frequency = frequency
        self.interval = interval
        self.start_time: str | None = None
        if start_time is not None:
            if isinstance(start_time, dt.datetime):
                if start_time.tzinfo is not None:
                    raise ValueError(
                        "Can not specify tzinfo for start_time, use time_zone instead."
                    )
                self.start_time = start_time.strftime("%Y-%m-%dT%H:%M:%S")
            else:
                self.start_time = start_time
        self.time_zone = time_zone
        if self.start_time is not None and self.time_zone is None:
            self.time_zone = TimeZone.GMTStandardTime  # what v1 did
        self.hours = hours
        self.minutes = minutes
        if time_of_day is not None and (hours is not None or minutes is not None):
            raise ValueError("Can not specify time_of_day and hours or minutes.")
        if time_of_day is not None:
            if not isinstance(time_of_day, str) or not re.match(
                r"[0-9]{1,2}:[0-9]{2}$", time_of_day
            ):
                raise ValueError("time_of_day should be in the format hh:mm.")
            hour, minute = (int(x) for x in time_of_day.split(":"))
            if not 0 <= hour <= 23:
                raise ValueError("Time of day hour value must be between 0 and 23.")
            if not 0 <= minute <= 59:
                raise ValueError("Time of day minute value must be between 0 and 59.")
            self.hours, self.minutes = [hour], [minute]
        self.week_days = week_days

    def validate(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise ValueError(
                "Invalid value for frequency, only one of Minute, Hour, Day, Week, or Month accepted"
            )
        if (
            not isinstance(self.interval, int)
            or isinstance(self.interval, bool)
            or self.interval < 1
        ):
            raise ValueError("Interval must be an integer greater than 0.")
        if self.frequency not in ("Day", "Week") and self.hours is not None:
            raise ValueError("Can only specify hours if frequency is Week or Day.")
        if self.frequency not in ("Day", "Week") and self.minutes is not None:
            raise ValueError("Can only specify minutes if frequency is Week or Day.")
        if self.frequency != "Week" and self.week_days is not None:
            raise ValueError("Can only specify week days if frequency is Week.")
        for hour in self.hours or []:
            if not isinstance(hour, int) or not 0 <= hour <= 23:
                raise ValueError("Hours must be between 0 and 23.")
        for minute in self.minutes or []:
            if not isinstance(minute, int) or not 0 <= minute <= 59:
                raise ValueError("Minutes must be between 0 and 59.")
        for day in self.week_days or []:
            if day not in WEEK_DAYS:
                raise ValueError(
                    "Week days must be a list of str, accepted values: Monday, Tuesday, Wednesday, "
                    "Thursday, Friday, Saturday, Sunday."
                )
        time_zone_value(self.time_zone)  # raises for anything that is not a time zone
        if self.start_time is not None:
            try:
                parsed = dt.datetime.fromisoformat(self.start_time)
            except (TypeError, ValueError):
                raise ValueError(
                    f"start_time must be a datetime or 'YYYY-MM-DDThh:mm:ss', got {self.start_time!r}"
                ) from None
            if parsed.tzinfo is not None:
                raise ValueError("Can not specify tzinfo for start_time, use time_zone instead.")
        if self.start_time is not None and self.time_zone is None:
            raise ValueError("Must specify time_zone if start_time is provided.")

    def _to_record(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency,
            "interval": self.interval,
            "start_time": self.start_time,
            "time_zone": time_zone_value(self.time_zone),
            "hours": self.hours,
            "minutes": self.minutes,
            "week_days": self.week_days,
        }

    @staticmethod
    def _from_record(data: dict[str, Any]) -> ScheduleRecurrence:
        zone = data.get("time_zone")
        enum_values = {tz.value: tz for tz in TimeZone}
        recurrence = ScheduleRecurrence(
            data["frequency"],
            data["interval"],
            start_time=data.get("start_time"),
            time_zone=enum_values.get(zone, zone),
            hours=data.get("hours"),
            minutes=data.get("minutes"),
            week_days=data.get("week_days"),
        )
        return recurrence

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._to_record().items() if v is not None)
        return f"ScheduleRecurrence({fields})"


def _datastore_name(workspace: Any, datastore: Any) -> str:
    name = datastore if isinstance(datastore, str) else getattr(datastore, "name", None)
    if not isinstance(name, str) or name not in workspace._config.datastores:
        known = ", ".join(sorted(workspace._config.datastores)) or "none"
        raise ValueError(
            f"datastore must be a Datastore of this workspace ({known}), got {datastore!r}"
        )
    return name


def _check_polling(polling_interval: Any) -> float:
    if (
        not isinstance(polling_interval, (int, float))
        or isinstance(polling_interval, bool)
        or not polling_interval > 0
    ):
        raise ValueError(
            f"The polling interval must be greater than 0 minutes, got {polling_interval!r}"
        )
    return polling_interval


class Schedule:
    """A schedule that submits a published pipeline on a recurrence or when data arrives."""

    def __init__(self, workspace: Any, record: dict[str, Any]):
        self._workspace = workspace
        self._record = record

    # --- creation ---------------------------------------------------------------------------------
    @staticmethod
    def create(
        workspace: Any,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> Schedule:
        from mlpipe_provider.sdk.published import PublishedPipeline

        _check_kind(workspace, name, experiment_name, recurrence, datastore)
        _check_datastore_only(recurrence, data_path_parameter_name, path_on_datastore)
        published = PublishedPipeline.get(workspace, pipeline_id)
        if published.status != ACTIVE:
            raise UserErrorException(
                f"published pipeline {pipeline_id} is {published.status}; a schedule needs an active one"
            )
        return Schedule._create(
            workspace,
            published,
            {"pipeline_id": pipeline_id, "pipeline_endpoint_id": None},
            name=name,
            experiment_name=experiment_name,
            recurrence=recurrence,
            description=description,
            pipeline_parameters=pipeline_parameters,
            wait_for_provisioning=wait_for_provisioning,
            wait_timeout=wait_timeout,
            datastore=datastore,
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure,
            path_on_datastore=path_on_datastore,
        )

    @staticmethod
    def create_for_pipeline_endpoint(
        workspace: Any,
        name: str,
        pipeline_endpoint_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> Schedule:
        """A schedule that runs the endpoint's default version *as it is when the schedule fires*.

        Parameters are checked against the default version now; at each firing they are checked
        again against the then-current default, and a name it does not take fails that firing.
        """
        from mlpipe_provider.sdk.published import PipelineEndpoint

        _check_kind(workspace, name, experiment_name, recurrence, datastore)
        _check_datastore_only(recurrence, data_path_parameter_name, path_on_datastore)
        if not isinstance(pipeline_endpoint_id, str):
            raise UserErrorException(
                f"pipeline_endpoint_id must be a PipelineEndpoint id, got {pipeline_endpoint_id!r}"
            )
        endpoint = PipelineEndpoint.get(workspace, id=pipeline_endpoint_id)
        if endpoint.status != ACTIVE:
            raise UserErrorException(
                f"PipelineEndpoint {endpoint.name!r} is {endpoint.status}; a schedule needs an "
                "active one"
            )
        published = endpoint.get_pipeline()
        if published.status != ACTIVE:
            raise UserErrorException(
                f"PipelineEndpoint {endpoint.name!r}: its default version's published pipeline "
                f"{published.id} is {published.status}; a schedule needs an active one"
            )
        return Schedule._create(
            workspace,
            published,
            {"pipeline_id": None, "pipeline_endpoint_id": endpoint.id},
            name=name,
            experiment_name=experiment_name,
            recurrence=recurrence,
            description=description,
            pipeline_parameters=pipeline_parameters,
            wait_for_provisioning=wait_for_provisioning,
            wait_timeout=wait_timeout,
            datastore=datastore,
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure,
            path_on_datastore=path_on_datastore,
        )

    @staticmethod
    def _create(
        workspace: Any,
        published: Any,
        target: dict[str, str | None],
        *,
        name: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None,
        description: str | None,
        pipeline_parameters: dict | None,
        wait_for_provisioning: bool,
        wait_timeout: int,
        datastore: Any,
        polling_interval: float,
        data_path_parameter_name: str | None,
        continue_on_step_failure: bool | None,
        path_on_datastore: str | None,
    ) -> Schedule:
        """Record and deploy a checked schedule; ``target`` names its pipeline or its endpoint."""
        conf = published._check_conf(pipeline_parameters)
        schedule_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        record: dict[str, Any] = {
            "id": schedule_id,
            "name": name,
            "description": description,
            **target,
            "experiment_name": experiment_name,
            "status": ACTIVE,
            "recurrence": recurrence._to_record() if recurrence is not None else None,
            "anchor_time": now.isoformat(),
            "datastore_name": None,
            "polling_interval": None,
            "data_path_parameter_name": None,
            "path_on_datastore": None,
            "continue_on_step_failure": continue_on_step_failure,
            "pipeline_parameters": conf,
            "dag_id": _dag_id(name, schedule_id),
            "watcher_dag_id": None,
            "created": time.time(),
        }
        if datastore is not None:
            record.update(
                datastore_name=_datastore_name(workspace, datastore),
                polling_interval=_check_polling(polling_interval),
                data_path_parameter_name=_check_data_path_parameter(
                    published, data_path_parameter_name
                ),
                path_on_datastore=_watched_folder(path_on_datastore),
                watcher_dag_id=f"{record['dag_id']}_watch",
            )
        if recurrence is not None:
            record_timetable(record)  # refuses recurrences Airflow cannot express, before writing
        schedule = Schedule(workspace, record)
        if datastore is not None:
            schedule._snapshot()
        schedule._save()
        schedule._deploy()
        if workspace._config.airflow is None:
            print(
                f"mlpipe: schedule {name!r} is DAG {record['dag_id']!r} in {workspace.dags_dir}; it "
                "fires only on an Airflow scheduler reading that folder (set 'airflow.url' in the "
                "workspace config to follow its runs from here)",
                file=sys.stderr,
            )
        if wait_for_provisioning:
            schedule._wait_for_provisioning(wait_timeout)
        return schedule

    # --- lookup -------------------------------------------------------------------------------------
    @staticmethod
    def get(
        workspace: Any, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> Schedule:
        if not isinstance(id, str) or not re.fullmatch(r"[0-9a-f-]{36}", id):
            raise UserErrorException(f"Schedule id {id!r} is not a schedule id")
        record = SCHEDULES.get(
            workspace._dir, id, f"no schedule {id!r} in workspace {workspace.name!r}"
        )
        return Schedule(workspace, record)

    @staticmethod
    def list(
        workspace: Any,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[Schedule]:
        """Schedules of the workspace, newest first; ``active_only`` applies without a pipeline
        or pipeline endpoint id."""
        found = []
        for record in SCHEDULES.list(workspace._dir):
            if pipeline_id is not None or pipeline_endpoint_id is not None:
                if pipeline_id is not None and record.get("pipeline_id") != pipeline_id:
                    continue
                if (
                    pipeline_endpoint_id is not None
                    and record.get("pipeline_endpoint_id") != pipeline_endpoint_id
                ):
                    continue
            elif active_only and record["status"] != ACTIVE:
                continue
            found.append(Schedule(workspace, record))
        return sorted(found, key=lambda s: (-s._record.get("created", 0), s.id))

    @staticmethod
    def get_all(
        workspace: Any,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[Schedule]:
        """Deprecated in v1 in favour of ``list``."""
        return Schedule.list(workspace, active_only, pipeline_id, pipeline_endpoint_id)

    @staticmethod
    def get_schedules_for_pipeline_id(
        workspace: Any,
        pipeline_id: str,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[Schedule]:
        return Schedule.list(workspace, pipeline_id=pipeline_id)

    @staticmethod
    def get_schedules_for_pipeline_endpoint_id(
        workspace: Any, pipeline_endpoint_id: str, **kwargs: Any
    ) -> list[Schedule]:
        return Schedule.list(workspace, pipeline_endpoint_id=pipeline_endpoint_id)

    # --- v1 attributes ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def name(self) -> str:
        return self._record["name"]

    @property
    def description(self) -> str | None:
        return self._record.get("description")

    @property
    def pipeline_id(self) -> str | None:
        """The published pipeline; None for a schedule of a pipeline endpoint (as in v1)."""
        return self._record.get("pipeline_id")

    @property
    def pipeline_endpoint_id(self) -> str | None:
        return self._record.get("pipeline_endpoint_id")

    @property
    def status(self) -> str:
        return self._record["status"]

    @property
    def recurrence(self) -> ScheduleRecurrence | None:
        data = self._record.get("recurrence")
        return ScheduleRecurrence._from_record(data) if data else None

    @property
    def datastore_name(self) -> str | None:
        return self._record.get("datastore_name")

    @property
    def polling_interval(self) -> float | None:
        return self._record.get("polling_interval")

    @property
    def data_path_parameter_name(self) -> str | None:
        return self._record.get("data_path_parameter_name")

    @property
    def continue_on_step_failure(self) -> bool | None:
        return self._record.get("continue_on_step_failure")

    @property
    def path_on_datastore(self) -> str | None:
        return self._record.get("path_on_datastore")

    @property
    def dag_id(self) -> str:
        """The DAG whose runs are this schedule's pipeline runs (an mlpipe addition); for a
        schedule of a pipeline endpoint, the router DAG that triggers the default version's DAG."""
        return self._record["dag_id"]

    @property
    def watcher_dag_id(self) -> str | None:
        """For a datastore schedule, the DAG that polls the folder (an mlpipe addition)."""
        return self._record.get("watcher_dag_id")

    # --- changes ----------------------------------------------------------------------------------
    def update(
        self,
        name: str | None = None,
        description: str | None = None,
        recurrence: ScheduleRecurrence | None = None,
        pipeline_parameters: dict | None = None,
        status: str | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float | None = None,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
    ) -> None:
        from mlpipe_provider.sdk.published import PublishedPipeline, _check_name

        self._reload()
        record = dict(self._record)
        is_datastore = record.get("datastore_name") is not None
        if recurrence is not None:
            if is_datastore:
                raise ValueError("Can not specify a recurrence for a Datastore schedule.")
            recurrence.validate()
            record["recurrence"] = recurrence._to_record()
            record["anchor_time"] = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        if (
            datastore is not None
            or polling_interval is not None
            or data_path_parameter_name is not None
            or path_on_datastore is not None
        ) and not is_datastore:
            raise ValueError("Can not specify a Datastore for a Recurrence schedule.")
        if status is not None and status not in (ACTIVE, DISABLED):
            raise ValueError("Status must be either Active or Disabled")
        published = (
            self._target_pipeline()
            if record.get("pipeline_endpoint_id")
            else PublishedPipeline.get(self._workspace, record["pipeline_id"])
        )
        resnapshot = False
        if datastore is not None:
            new = _datastore_name(self._workspace, datastore)
            resnapshot = new != record["datastore_name"]
            record["datastore_name"] = new
        if path_on_datastore is not None:
            new = _watched_folder(path_on_datastore)
            resnapshot = resnapshot or new != record["path_on_datastore"]
            record["path_on_datastore"] = new
        if polling_interval is not None:
            record["polling_interval"] = _check_polling(polling_interval)
        if data_path_parameter_name is not None:
            record["data_path_parameter_name"] = _check_data_path_parameter(
                published, data_path_parameter_name
            )
        if pipeline_parameters is not None:
            record["pipeline_parameters"] = published._check_conf(pipeline_parameters)
        if name is not None:
            _check_name(name, "Schedule")
        for key, value in (
            ("name", name),
            ("description", description),
            ("continue_on_step_failure", continue_on_step_failure),
            ("status", status),
        ):
            if value is not None:
                record[key] = value
        if record.get("recurrence"):
            record_timetable(record)
        self._record = record
        if resnapshot:
            self._snapshot()
        self._save()
        self._deploy()
        if wait_for_provisioning:
            self._wait_for_provisioning(wait_timeout)

    def enable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        """Active again: the DAGs get their timetables back."""
        self.update(
            status=ACTIVE, wait_for_provisioning=wait_for_provisioning, wait_timeout=wait_timeout
        )

    def activate(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        self.enable(wait_for_provisioning, wait_timeout)

    def disable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        """Stop firing: the DAGs are re-rendered without a timetable (runs in progress finish)."""
        self.update(
            status=DISABLED, wait_for_provisioning=wait_for_provisioning, wait_timeout=wait_timeout
        )

    # --- runs ---------------------------------------------------------------------------------------
    def get_pipeline_runs(self) -> list[Any]:
        """The runs this schedule started, newest first, read from the Airflow server.

        With no server in the workspace config this is empty: nothing here can have fired it.
        """
        from mlpipe_provider.sdk.experiment import Experiment, PipelineRun

        adopt = services.client().adopt_runs
        client = _client(self._workspace)
        if client is None:
            return []
        experiment = Experiment(self._workspace, self._record["experiment_name"])
        if self.pipeline_endpoint_id is None:
            ids = adopt(
                self._workspace,
                client,
                self.dag_id,
                experiment.name,
                {"azureml.pipelineid": self.pipeline_id, "azureml.scheduleid": self.id},
            )
            return [PipelineRun(experiment, run_id) for run_id in ids]
        # An endpoint schedule's runs are runs of its versions' DAGs that its router started.
        from mlpipe_provider.contract.constants import ENDPOINT_RUN_ID_PREFIX as RUN_ID_PREFIX
        from mlpipe_provider.embedded.status import REQUEST_FILE
        from mlpipe_provider.sdk.published import PipelineEndpoint

        endpoint = PipelineEndpoint.get(self._workspace, id=self.pipeline_endpoint_id)
        ids = []
        for published in endpoint.list_pipelines(active_only=False):
            if client.dag(published.dag_id) is None:
                continue  # a version the server has not parsed has no runs
            ids += adopt(
                self._workspace,
                client,
                published.dag_id,
                experiment.name,
                {
                    "azureml.pipelineid": published.id,
                    "azureml.pipelineendpointid": endpoint.id,
                    "azureml.scheduleid": self.id,
                },
                run_id_prefix=f"{RUN_ID_PREFIX}__{self.id}__",
            )

        def created(run_id: str) -> float:
            data = read_json(self._workspace.runs_dir / run_id / REQUEST_FILE) or {}
            return float(data.get("created", 0))

        return [PipelineRun(experiment, r) for r in sorted(ids, key=created, reverse=True)]

    def get_last_pipeline_run(self) -> Any:
        runs = self.get_pipeline_runs()
        return runs[0] if runs else None

    # --- internals ----------------------------------------------------------------------------------
    @property
    def _path(self) -> Path:
        return SCHEDULES.path(self._workspace._dir, self.id)

    def _save(self) -> None:
        SCHEDULES.save(self._workspace._dir, self._record)

    def _reload(self) -> None:
        self._record = SCHEDULES.find(self._workspace._dir, self.id) or self._record

    def _snapshot(self) -> None:
        """Record what the watched folder holds now: only later additions and changes trigger."""
        from mlpipe_provider.datastores import open_datastore
        from mlpipe_provider.runtime import datastore_watch as watch

        store = open_datastore(
            self._workspace._dir, self._workspace._config, self._record["datastore_name"]
        )
        watch.write_state(
            store, self.id, watch.list_files(store, self._record["path_on_datastore"])
        )

    def _endpoint(self) -> Any:
        from mlpipe_provider.sdk.published import PipelineEndpoint

        return PipelineEndpoint.get(self._workspace, id=self._record["pipeline_endpoint_id"])

    def _target_pipeline(self) -> Any:
        """The published pipeline that firing now would run: an endpoint's current default."""
        from mlpipe_provider.sdk.published import PublishedPipeline

        if self._record.get("pipeline_endpoint_id"):
            return self._endpoint().get_pipeline()
        return PublishedPipeline.get(self._workspace, self._record["pipeline_id"])

    def _deploy(self) -> None:
        """(Re)write the schedule's DAG files from the record; unchanged files are not touched.
        Rendering and writing are the client's (``mlpipe_provider/client/schedule.py``)."""
        services.client().deploy_schedule(self)

    def _wait_for_provisioning(self, timeout_seconds: float) -> str:
        """With a server configured, wait until it has parsed the schedule's DAGs."""
        client = _client(self._workspace)
        if client is None:
            return "Completed"
        wanted = [d for d in (self.dag_id, self.watcher_dag_id) if d]
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if all(client.dag(d) is not None for d in wanted):
                print("Provisioning status: Completed")
                return "Completed"
            time.sleep(2)
        print(f"Timed out of waiting, status:Provisioning (DAGs {wanted} not on {client.url}).")
        return "Provisioning"

    def __repr__(self) -> str:
        kind = (
            f"Datastore: {self.datastore_name}:{self.path_on_datastore or '/'}"
            if self.datastore_name
            else f"Recurrence: {self.recurrence!r}"
        )
        target = (
            f"Pipeline Endpoint Id: {self.pipeline_endpoint_id}"
            if self.pipeline_endpoint_id
            else f"Pipeline Id: {self.pipeline_id}"
        )
        return (
            f"Schedule(Name: {self.name}, Id: {self.id}, Status: {self.status}, {target}, {kind})"
        )


def _check_kind(
    workspace: Any,
    name: str,
    experiment_name: str,
    recurrence: ScheduleRecurrence | None,
    datastore: Any,
) -> None:
    """v1's checks shared by ``create`` and ``create_for_pipeline_endpoint``."""
    from mlpipe_provider.sdk.experiment import Experiment
    from mlpipe_provider.sdk.published import _check_name

    if recurrence is not None:
        if datastore is not None:
            raise ValueError("Can not specify both a Recurrence and a Datastore")
        if not isinstance(recurrence, ScheduleRecurrence):
            raise ValueError(f"recurrence must be a ScheduleRecurrence, got {recurrence!r}")
        recurrence.validate()
    elif datastore is None:
        raise ValueError("Specify a recurrence or a datastore to monitor")
    _check_name(name, "Schedule")  # it reaches the DAG file's docstring: no quotes
    Experiment(workspace, experiment_name)  # validates the name


def _check_datastore_only(
    recurrence: ScheduleRecurrence | None,
    data_path_parameter_name: str | None,
    path_on_datastore: str | None,
) -> None:
    if recurrence is None:
        return
    if data_path_parameter_name is not None:
        raise ValueError("Data Path parameter name can only be specified for Datastore schedules.")
    if path_on_datastore is not None:
        raise ValueError(
            "Path on datastore parameter can only be specified for Datastore schedules."
        )


def _client(workspace: Any) -> Any:
    """The REST client of the workspace's Airflow server, or None when it names none."""
    from mlpipe_provider.airflow_api import AirflowClient

    if workspace._config.airflow is None:
        return None
    return AirflowClient.from_workspace(workspace._dir)


def _dag_id(name: str, schedule_id: str) -> str:
    return services.compiler().dag_id_for(f"schedule_{name[:80]}_{schedule_id[:8]}")


def _watched_folder(path: str | None) -> str:
    from mlpipe_provider.datastores import safe_relative_path

    return safe_relative_path(path, what="path_on_datastore")


def _check_data_path_parameter(published: Any, name: str | None) -> str | None:
    from mlpipe_provider.runtime.data_path import is_data_path_type

    if name is None:
        return None
    parameters = published._record["parameters"]
    if name not in parameters:
        known = ", ".join(sorted(parameters)) or "none"
        raise ValueError(
            f"data_path_parameter_name {name!r} is not a parameter of published pipeline "
            f"{published.name!r} (it has: {known})"
        )
    kind = parameters[name]["type"]
    if not (is_data_path_type(kind) or kind == "string"):
        raise ValueError(
            f"data_path_parameter_name {name!r} must be a DataPath (or string) parameter, it is {kind}"
        )
    return name


def record_timetable(record: dict[str, Any]) -> dict[str, Any]:
    """The timetable literal of a schedule record's recurrence; raises when Airflow cannot
    express it (checked before anything is written)."""
    recurrence = dict(record["recurrence"])
    recurrence["time_zone"] = iana_zone(recurrence.get("time_zone"))
    return services.compiler().timetable_for(
        recurrence, dt.datetime.fromisoformat(record["anchor_time"])
    )
