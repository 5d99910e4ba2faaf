"""``Schedule.create_for_pipeline_endpoint``: a router DAG that runs the endpoint's current default.

No Airflow server here: the router DAG is compiled and loaded as Airflow loads it, and run with
``dag.test()``; the run it triggers is read from Airflow's metadata DB (dag.test does not run the
triggered DAG, a scheduler would). The real-scheduler check of schedules is in test_schedule.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import _DAGS, write_script

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.endpoint_route import RUN_ID_PREFIX
from mlpipe_provider.runtime.step_failure import CONTINUE_PARAM
from mlpipe_provider.sdk import (
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
)

ROUTER_IMPORTS = {"airflow.sdk", "datetime", "mlpipe_provider.operators.endpoint_trigger"}


def publish(ws, project: Path, name: str, *, with_n: bool = True, text: str = "v"):
    """A one-step pipeline in its own folder (the folder is part of the DAG, so of its id)."""
    folder = project / f"{name}-{text}"
    write_script(folder, "s.py", f"print({text!r})\n")
    arguments = ["--n", PipelineParameter("n", 1)] if with_n else []
    step = PythonScriptStep("s.py", arguments=arguments, source_directory=str(folder))
    return Pipeline(ws, [step]).publish(name=name)


def load(path: Path, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def summary(dag) -> str:
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(dag.timetable).summary


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return modules | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_endpoint_schedule_compiles_a_router_and_lists_gets_and_disables(ws, project):
    v0 = publish(ws, project, "train", text="v0")
    endpoint = PipelineEndpoint.publish(ws, name="train-ep", description="", pipeline=v0)
    schedule = Schedule.create_for_pipeline_endpoint(
        ws,
        name="every-30",
        pipeline_endpoint_id=endpoint.id,
        experiment_name="nightly",
        recurrence=ScheduleRecurrence(frequency="Minute", interval=30),
        description="half-hourly",
        pipeline_parameters={"n": 7},
    )
    path = ws.dags_dir / f"{schedule.dag_id}.py"
    text = path.read_text()
    assert imports_of(path) <= ROUTER_IMPORTS
    assert v0.dag_id not in text  # the file names the endpoint; the version is chosen at run time
    assert f"pipeline_endpoint_id={endpoint.id!r}," in text
    assert "pipeline_parameters={'n': 7}," in text
    dag = load(path, schedule.dag_id)
    assert summary(dag) == "0:30:00" and dag.task_ids == ["trigger"]
    assert "experiment:nightly" in dag.tags and "endpoint:train-ep" in dag.tags

    found = Schedule.get(ws, schedule.id)
    assert (found.pipeline_id, found.pipeline_endpoint_id, found.status) == (
        None,
        endpoint.id,
        "Active",
    )
    assert found.description == "half-hourly" and "Pipeline Endpoint Id" in repr(found)
    assert [s.id for s in Schedule.list(ws)] == [schedule.id]
    assert [s.id for s in Schedule.list(ws, pipeline_endpoint_id=endpoint.id)] == [schedule.id]
    assert Schedule.list(ws, pipeline_id=v0.id) == []
    assert [s.id for s in Schedule.get_schedules_for_pipeline_endpoint_id(ws, endpoint.id)] == [
        schedule.id
    ]

    schedule.disable()
    assert summary(load(path, schedule.dag_id)) == "None"
    assert Schedule.list(ws) == [] and Schedule.get(ws, schedule.id).status == "Disabled"
    schedule.enable()
    assert summary(load(path, schedule.dag_id)) == "0:30:00"
    schedule.update(pipeline_parameters={"n": 9})
    assert "pipeline_parameters={'n': 9}," in path.read_text()
    assert schedule.get_pipeline_runs() == []  # no server configured: nothing fired it


def test_endpoint_schedule_checks_its_input(ws, project):
    v0 = publish(ws, project, "train", text="v0")
    endpoint = PipelineEndpoint.publish(ws, name="ep", description="", pipeline=v0)
    minute = ScheduleRecurrence(frequency="Minute", interval=1)
    with pytest.raises(UserErrorException, match="no PipelineEndpoint with id"):
        Schedule.create_for_pipeline_endpoint(ws, "s", "not-an-endpoint", "e", recurrence=minute)
    with pytest.raises(UserErrorException, match="parameter 'n' expects integer"):
        Schedule.create_for_pipeline_endpoint(
            ws, "s", endpoint.id, "e", recurrence=minute, pipeline_parameters={"n": "x"}
        )
    with pytest.raises(ValueError, match="recurrence or a datastore"):
        Schedule.create_for_pipeline_endpoint(ws, "s", endpoint.id, "e")
    with pytest.raises(UserErrorException, match="Schedule name"):
        Schedule.create_for_pipeline_endpoint(
            ws, 'x"""\nimport os\n"""', endpoint.id, "e", recurrence=minute
        )
    endpoint.disable()
    with pytest.raises(UserErrorException, match="needs an active one"):
        Schedule.create_for_pipeline_endpoint(ws, "s", endpoint.id, "e", recurrence=minute)
    assert Schedule.list(ws, active_only=False) == []


def test_parameter_values_stay_literals_and_are_not_templated(ws, project):
    folder = project / "p"
    write_script(folder, "s.py", "print(1)\n")
    label = PipelineParameter("label", "x")
    step = PythonScriptStep("s.py", arguments=[label], source_directory=str(folder))
    published = Pipeline(ws, [step]).publish(name="labels")
    endpoint = PipelineEndpoint.publish(ws, name="labels-ep", description="", pipeline=published)
    nasty = "'''\nimport os; os.system('echo pwned')\n'''{{ dag_run.run_id }}"
    schedule = Schedule.create_for_pipeline_endpoint(
        ws,
        "lit",
        endpoint.id,
        "e",
        recurrence=ScheduleRecurrence(frequency="Hour", interval=1),
        pipeline_parameters={"label": nasty},
    )
    path = ws.dags_dir / f"{schedule.dag_id}.py"
    tree = ast.parse(path.read_text())
    assert not any(
        isinstance(n, ast.Call) and getattr(n.func, "id", "") == "system" for n in ast.walk(tree)
    )
    task = load(path, schedule.dag_id).get_task("trigger")
    assert task.pipeline_parameters == {"label": nasty}
    assert task.template_fields == ()  # '{{ }}' reaches the run as typed, not rendered


@pytest.fixture
def in_dags_folder():
    """Link DAG files into the Airflow DAG folder the test session's dag.test syncs from.

    The links resolve to the workspace's own folder, so the files' relative WORKSPACE paths hold.
    """
    links: list[Path] = []

    def link(path: Path) -> Path:
        target = _DAGS / path.name
        target.symlink_to(path)
        links.append(target)
        return target

    yield link
    for target in links:
        target.unlink(missing_ok=True)


def triggered_runs(schedule_id: str) -> list[tuple[str, dict]]:
    """(dag_id, conf) of the runs the router started, oldest first, from Airflow's DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(
            select(DagRun)
            .where(DagRun.run_id.startswith(f"{RUN_ID_PREFIX}__{schedule_id}__"))
            .order_by(DagRun.id)
        ).all()
        return [(r.dag_id, dict(r.conf or {})) for r in runs]


def test_each_firing_runs_the_current_default_version(
    airflow_db, ws, project, in_dags_folder, capfd
):
    v0 = publish(ws, project, "train", text="v0")
    endpoint = PipelineEndpoint.publish(ws, name="train-ep", description="", pipeline=v0)
    schedule = Schedule.create_for_pipeline_endpoint(
        ws,
        "hourly",
        endpoint.id,
        "nightly",
        recurrence=ScheduleRecurrence(frequency="Hour", interval=1),
        pipeline_parameters={"n": 7},
        continue_on_step_failure=True,
    )
    v1 = publish(ws, project, "train", text="v1")
    no_n = publish(ws, project, "train", with_n=False, text="v2")
    for published in (v0, v1, no_n):
        in_dags_folder(ws.dags_dir / f"{published.dag_id}.py")
    router_file = in_dags_folder(ws.dags_dir / f"{schedule.dag_id}.py")

    def fire() -> str:
        dag_run = load(router_file, schedule.dag_id).test()
        return str(dag_run.state)

    assert fire() == "success"
    assert triggered_runs(schedule.id) == [(v0.dag_id, {"n": 7, CONTINUE_PARAM: True})]

    endpoint.add_default(v1)  # after the schedule was created: the next firing runs v1
    assert fire() == "success"
    assert [d for d, _ in triggered_runs(schedule.id)] == [v0.dag_id, v1.dag_id]

    endpoint.add_default(no_n)  # a default that does not take the schedule's 'n': a clear failure
    capfd.readouterr()
    assert fire() == "failed"  # at once: a retry cannot fix it (no retry delay to wait out)
    assert len(triggered_runs(schedule.id)) == 2
    out, err = capfd.readouterr()
    assert "pipeline_parameters 'n' are not parameters of its default version '2'" in out + err


def test_a_datastore_schedule_of_an_endpoint_watches_and_triggers_the_router(ws, project):
    v0 = publish(ws, project, "train", text="v0")
    endpoint = PipelineEndpoint.publish(ws, name="train-ep", description="", pipeline=v0)
    schedule = Schedule.create_for_pipeline_endpoint(
        ws,
        "on-data",
        endpoint.id,
        "ingest",
        datastore=ws.get_default_datastore(),
        path_on_datastore="incoming",
        polling_interval=2,
    )
    watcher = ws.dags_dir / f"{schedule.watcher_dag_id}.py"
    assert f"trigger_dag_id={schedule.dag_id!r}," in watcher.read_text()
    assert summary(load(watcher, schedule.watcher_dag_id)) == "0:02:00"
    router = ws.dags_dir / f"{schedule.dag_id}.py"
    assert summary(load(router, schedule.dag_id)) == "None"  # it runs when the watcher says
