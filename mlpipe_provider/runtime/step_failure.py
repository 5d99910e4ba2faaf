"""v1's ``continue_on_step_failure``: whether a pipeline run goes on after one of its steps failed.

Airflow's own rule is v1's ``True``: a failed task stops only its downstream, and independent
branches keep running. v1's default is ``False``: once a step fails, no further step starts and the
run is Failed. Every compiled DAG has the boolean param ``CONTINUE_PARAM`` (default False); each
step calls ``stop_reason`` as it starts (and again after waiting for another run's lease), and
fails at once, without running, when the flag is off and a task of the same DAG run has failed. A step that is already running is left to finish, as in v1, where a failing step does
not cancel steps already running; its outputs are recorded and reusable as usual.

Airflow's DAG-level ``fail_fast`` is not used: it is fixed per DAG (v1's flag is per submit), and
it refuses trigger rules other than ``all_success``; steps need ``none_failed`` (an upstream step
the plan task skipped because it was reused must not stop them).
"""

from __future__ import annotations

import contextlib
from typing import Any

from mlpipe_provider.contract.constants import CONTINUE_PARAM, ERROR_XCOM

CONTINUE_DESCRIPTION = (
    "Keep running steps that do not depend on a failed step (v1 continue_on_step_failure); "
    "when false, no further step starts once a step has failed"
)


def failed_tasks(context: Any) -> list[str]:
    """Task ids of this DAG run that are ``failed`` now, asked through the task-sdk.

    ``RuntimeTaskInstance.get_task_states`` goes through the supervisor to the execution API (a
    running task has no database session); it answers ``{run_id: {task_id: state}}``.
    """
    ti = context["ti"]
    dag_run = context["dag_run"]
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id])
    return sorted(
        task_id
        for task_id, state in (states.get(dag_run.run_id) or {}).items()
        if str(getattr(state, "value", state)) == "failed"
    )


def _step_label(dag: Any, task_id: str) -> str:
    """The v1 step name of a task, else the task id."""
    task = dag.task_dict.get(task_id) if dag is not None else None
    return str(getattr(task, "step_name", None) or task_id)


def _was_stopped(error: Any) -> bool:
    return isinstance(error, dict) and error.get("kind") == "stopped"


def stop_reason(dag: Any, context: Any, step_name: str) -> str | None:
    """Why step ``step_name`` must not start in this run, or None when it may.

    The steps named are the failed step tasks; a step stopped by this very rule is failed too,
    and is named only when no step failed of its own accord (it is not the cause).
    """
    if context["params"].get(CONTINUE_PARAM, False):
        return None
    failed = [t for t in failed_tasks(context) if t in dag.task_dict]
    if not failed:
        return None
    if len(failed) > 1:  # leave out steps stopped by this rule, if a step failed by itself
        ti = context["ti"]
        causes = [t for t in failed if not _was_stopped(ti.xcom_pull(task_ids=t, key=ERROR_XCOM))]
        failed = causes or failed
    labels = sorted({_step_label(dag, t) for t in failed})
    names = ", ".join(repr(label) for label in labels)
    return (
        f"pipeline stops after step {names} failed (continue_on_step_failure=False): "
        f"step {step_name!r} does not run"
    )


#: the last characters of an error kept for the program (a step's stderr tail is in the message)
ERROR_TAIL_CHARS = 4000
# Airflow's control-flow exceptions: a skip, a sensor's reschedule or a deferral is no failure
_CONTROL_FLOW = {
    "AirflowSkipException",
    "AirflowRescheduleException",
    "TaskDeferred",
    "DownstreamTasksSkipped",
}


def publish_error(context: Any, exc: BaseException, *, stopped: bool = False) -> None:
    """Leave ``exc`` where the program following the run reads it (``wait_for_completion``).

    Today's alternative was a pointer to a log file; the XCom travels with the task instance, so
    the embedded runner and the REST run source both see it. ``stopped`` marks a step that did
    not start because another failed (continue_on_step_failure=False), which is not its fault.
    Never raises: reporting must not hide the original error.
    """
    if type(exc).__name__ in _CONTROL_FLOW:
        return
    text = f"{type(exc).__name__}: {exc}" if not stopped else str(exc)
    if len(text) > ERROR_TAIL_CHARS:
        text = "..." + text[-ERROR_TAIL_CHARS:]
    # best effort: the task fails with exc either way
    with contextlib.suppress(Exception):
        context["ti"].xcom_push(
            key=ERROR_XCOM, value={"error": text, "kind": "stopped" if stopped else "failed"}
        )
