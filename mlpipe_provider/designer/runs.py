"""Run a saved pipeline file from the designer, and follow its steps' states.

The designer sits beside ``client/`` (it may not import it), so it does here, inside the API
server, what ``mlpipe compile`` then a submit do: load the saved file, lower it (any compiler
problem refuses the run), write its DAG into the DAG folder this Airflow reads, wait until the
DAG processor has parsed exactly that text, record the run as every mlpipe run is recorded
(``runs/<id>/request.json`` in the workspace, so ``PipelineRun`` and ``mlpipe runs`` follow it)
and create the DAG run through Airflow's own trigger function (its param checks, its run
creation). Only a change writes the DAG file, so running an unchanged pipeline again starts at
once and its steps are reused.

A step's state comes from Airflow's task instance; what the product wrote about it from its
step record (the task's XCom, or the reuse plan's record for a step the plan reused): the
metrics, the run a reused step reused. A failed step shows the tail of its Airflow log, read
by Airflow's own log reader (``logs.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from compiler.compile import compile_lowered
from compiler.lower import lower
from mlpipe_provider.contract.constants import (
    CONTINUE_PARAM,
    PLAN_TASK_ID,
    REGENERATE_PARAM,
    planned_record,
)
from mlpipe_provider.designer import files, logs, service
from mlpipe_provider.designer.writer import GraphProblems
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.rest import runs as recorded_runs
from mlpipe_provider.runtime.pipeline_parameters import check_conf

#: how long a run waits for the DAG processor to parse a just-written DAG
PARSE_WAIT_S = 90.0


class NotParsed(RuntimeError):
    """Airflow did not parse the DAG in time (503), or cannot import it."""


def dags_folder() -> Path:
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).resolve()


def base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="").rstrip("/")


def designer_dag_id(relative: str, variable: str, several: bool) -> str:
    """The DAG id of a pipeline run from the designer: from the file's path (two files that
    both call their pipeline ``pipeline`` must not share a DAG), plus the variable when the file
    defines several pipelines. ``compile_lowered`` makes it a valid DAG id."""
    stem = relative[: -len(".py")] if relative.endswith(".py") else relative
    name = stem.replace("/", "__")
    return f"{name}__{variable}" if several else name


def load_lowered(root: Path, relative: str, variable: str | None) -> tuple[str, Any]:
    """The pipeline's DAG id (``designer_dag_id``) and its lowered form."""
    path = files.pipeline_path(root, relative)
    if not path.is_file():
        raise service.NotFound(f"{relative} not found: save it first")
    with service._LOAD_LOCK:
        found = service._load(path, None)
        chosen = (
            found[0] if variable is None else next((f for f in found if f.dag_id == variable), None)
        )
        if chosen is None:
            raise service.NotFound(f"{relative} defines no pipeline named {variable!r}")
        lowered = lower(chosen.pipeline)
    if lowered.problems:
        raise GraphProblems(list(lowered.problems))
    return designer_dag_id(relative, chosen.dag_id, len(found) > 1), lowered


def parameters(root: Path, relative: str, variable: str | None) -> dict[str, Any]:
    """The PipelineParameters the run form offers: name -> {type, default}."""
    _, lowered = load_lowered(root, relative, variable)
    return {
        name: {"type": p["type"], "default": p["default"]}
        for name, p in sorted(lowered.parameters.items())
    }


def compile_into_dags(relative: str, dag_id: str, lowered: Any) -> tuple[str, Path, bool]:
    """Write the DAG (and its pools) into Airflow's DAG folder; whether the file changed.

    A DAG file of that name that the designer did not write for this pipeline file (its first
    line names another origin) is never replaced: a 409 conflict."""
    compiled = compile_lowered(
        lowered,
        dag_id,
        dags_folder(),
        origin=f"the designer's {relative}",
        tags=["mlpipe", "designer"],
    )
    old = compiled.path.read_text(encoding="utf-8") if compiled.path.is_file() else None
    if old is not None and old.partition("\n")[0] != compiled.text.partition("\n")[0]:
        raise files.Conflict(
            f"{compiled.path.name} in Airflow's DAG folder was not written by the designer for "
            f"{relative}; it is left alone (rename the pipeline file to run it from here)"
        )
    changed = old != compiled.text
    if changed or (compiled.pools_path is not None and not compiled.pools_path.is_file()):
        compiled.write()
    if compiled.pools_text:
        _apply_pools(json.loads(compiled.pools_text))
    return compiled.dag_id, compiled.path, changed


def _apply_pools(pools: dict[str, Any]) -> None:
    """The DAG's GPU pools, as a submit to a server applies them."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        for name, pool in pools.items():
            Pool.create_or_update_pool(
                name,
                pool["slots"],
                pool.get("description", ""),
                pool.get("include_deferred", False),
                session=session,
            )


def wait_parsed(dag_id: str, dag_file: Path, timeout_s: float = PARSE_WAIT_S) -> None:
    """Until Airflow holds exactly this file's text for ``dag_id``; unpause it (it has no
    schedule). An import error of the file written ends the wait with its traceback."""
    from airflow.models.dag import DagModel
    from airflow.models.dagcode import DagCode
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session
    from sqlalchemy import select

    text = dag_file.read_text(encoding="utf-8")
    written = dag_file.stat().st_mtime
    deadline = time.monotonic() + timeout_s
    while True:
        with create_session() as session:
            dag = session.scalar(
                select(DagModel).where(DagModel.dag_id == dag_id, ~DagModel.is_stale)
            )
            if dag is not None:
                try:
                    source = DagCode.code(dag_id, session=session)
                except Exception:  # noqa: BLE001 - not stored yet
                    source = None
                if source == text:
                    if dag.is_paused and dag.timetable_summary is None:
                        dag.is_paused = False
                    return
            for error in session.scalars(
                select(ParseImportError).where(ParseImportError.filename.like(f"%{dag_file.name}"))
            ):
                if error.timestamp is not None and error.timestamp.timestamp() >= written - 1:
                    raise UserErrorException(
                        f"Airflow cannot import {dag_file.name}:\n{(error.stacktrace or '').rstrip()}"
                    )
        if time.monotonic() > deadline:
            raise NotParsed(
                f"Airflow has not parsed DAG {dag_id!r} from {dag_file} within {timeout_s:.0f} s; "
                "is the DAG processor running on this DAG folder?"
            )
        time.sleep(1)


def start_run(
    root: Path,
    relative: str,
    variable: str | None,
    given: dict[str, Any],
    user_name: str,
    trigger: Any,
    authorize: Any,
    *,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
) -> dict[str, Any]:
    """Compile, install and trigger the saved pipeline at ``relative`` with ``given`` values.

    ``authorize(dag_id)`` is Airflow's check that the user may trigger this DAG (403);
    ``trigger(dag_id, airflow_run_id, conf)`` creates the DAG run. Nothing is recorded or
    triggered before every check passed.
    """
    name, lowered = load_lowered(root, relative, variable)
    return start_lowered(
        relative,
        name,
        lowered,
        given,
        user_name,
        trigger,
        authorize,
        tags={"mlpipe.designer": relative},
        regenerate_outputs=regenerate_outputs,
        continue_on_step_failure=continue_on_step_failure,
    )


def start_lowered(
    label: str,
    name: str,
    lowered: Any,
    given: dict[str, Any],
    user_name: str,
    trigger: Any,
    authorize: Any,
    *,
    tags: dict[str, str],
    experiment: str | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
) -> dict[str, Any]:
    """``start_run`` for a pipeline already lowered (a saved file's, or a draft's kept graph).

    v1's submit arguments become the DAG run's conf as ``Experiment.submit`` passes them:
    ``regenerate_outputs`` makes every step run, ``continue_on_step_failure`` keeps running the
    steps that do not depend on a failed one.
    """
    conf = check_conf(
        lowered.parameters, given or {}, workspace_dir=lowered.workspace_dir, what="parameters"
    )
    if regenerate_outputs:
        conf[REGENERATE_PARAM] = True
    if continue_on_step_failure:
        conf[CONTINUE_PARAM] = True
    dag_id, dag_file, _ = compile_into_dags(label, name, lowered)
    authorize(dag_id)
    wait_parsed(dag_id, dag_file)
    run_id = recorded_runs.new_run_id()
    airflow_run_id = f"{recorded_runs.RUN_ID_PREFIX}{run_id}"
    folder = recorded_runs.record_run(
        Path(lowered.workspace_dir),
        run_id,
        {
            "experiment": experiment or dag_id,
            "dag_id": dag_id,
            "dag_file": str(dag_file),
            "pools_file": None,
            "server": base_url(),
            "airflow_run_id": airflow_run_id,
            "conf": conf,
            "tags": tags,
            "regenerate_outputs": bool(regenerate_outputs),
            "continue_on_step_failure": bool(continue_on_step_failure),
            "submitted_by": user_name,
            "created": time.time(),
        },
    )
    try:
        trigger(dag_id, airflow_run_id, conf)
    except BaseException:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {
        "dag_id": dag_id,
        "run_id": airflow_run_id,
        "pipeline_run_id": run_id,
        "url": f"{base_url()}/dags/{dag_id}/runs/{airflow_run_id}",
    }


def run_state(dag_id: str, run_id: str) -> dict[str, Any]:
    """The run's state and each step's: ``{state, url, steps: {step name: {...}}}``."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    base = base_url()
    with create_session() as session:
        dag_run = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
        if dag_run is None:
            raise service.NotFound(f"no run {run_id!r} of DAG {dag_id!r}")
        tis = list(
            session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
                )
            )
        )
        values: dict[str, Any] = {}
        for xcom in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.key == "return_value",
                XComModel.map_index == -1,
            )
        ):
            values[xcom.task_id] = XComModel.deserialize_value(xcom)
        steps: dict[str, dict[str, Any]] = {}
        plan = values.get(PLAN_TASK_ID)
        for ti in tis:
            if ti.task_id == PLAN_TASK_ID or ti.map_index not in (-1, 0):
                continue
            state = None if ti.state is None else str(ti.state)
            record = planned_record(plan, ti.task_id) or values.get(ti.task_id)
            record = record if isinstance(record, dict) else {}
            entry: dict[str, Any] = {
                "task_id": ti.task_id,
                "state": _label(state, record),
                "airflow_state": state,
                "log_url": f"{base}/dags/{dag_id}/runs/{run_id}/tasks/{ti.task_id}",
                "metrics": _scalars(record.get("metrics")),
            }
            if record.get("reused"):
                entry["reused"] = _reused(record, base)
            if state == "failed":
                entry["error"], entry["error_source"] = logs.error_tail(ti)
            steps[ti.task_display_name or ti.task_id] = entry
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": str(dag_run.state),
            "url": f"{base}/dags/{dag_id}/runs/{run_id}",
            "steps": steps,
        }


def _reused(record: dict[str, Any], base: str) -> dict[str, Any]:
    """The step run a reused step reused, and the Airflow page of the task that produced it
    (``docs/runs.md``'s "Reused run" link; a record without the task links to its DAG run)."""
    dag_id, run_id = record.get("reused_dag_id"), record.get("reused_pipeline_run_id")
    task_id = record.get("reused_task_id")
    url = None
    if dag_id and run_id:
        url = f"{base}/dags/{dag_id}/runs/{run_id}" + (f"/tasks/{task_id}" if task_id else "")
    return {
        "pipeline_run_id": run_id,
        "dag_id": dag_id,
        "task_id": task_id,
        "step_run_id": record.get("reused_run_id"),
        "url": url,
    }


def _label(state: str | None, record: dict[str, Any]) -> str:
    """The designer's words for a step: queued, running, executed, reused, failed, ..."""
    if state == "success":
        return "reused" if record.get("reused") else "executed"
    if state == "skipped":
        return "reused" if record.get("reused") else "skipped"
    if state in ("running", "deferred", "up_for_reschedule", "restarting"):
        return "running"
    if state in ("failed", "upstream_failed"):
        return state
    return "queued"


def _scalars(metrics: Any) -> dict[str, Any]:
    """A step's metrics as its node shows them: scalars, and the last value of a list."""
    if not isinstance(metrics, dict):
        return {}
    shown: dict[str, Any] = {}
    for name, value in sorted(metrics.items()):
        if isinstance(value, list) and value and isinstance(value[-1], (int, float, str)):
            shown[name] = value[-1]
        elif isinstance(value, (int, float, str, bool)):
            shown[name] = value
    return shown
