"""One HyperDrive trial: the sweep's script with the trial's values, watched by the policy.

A trial is a ``PythonScriptStep`` run (``runtime/script_step.py``) with ``--name value`` for each
hyperparameter appended to the arguments, as v1 passed them, and its ``./outputs`` folder as an
output of its own. While it runs, ``TrialMonitor`` publishes its primary metric on the sweep's
board and stops it when the early termination policy says so; a stopped trial's record has
status ``Canceled`` and the metrics it logged, and the task still succeeds (a canceled trial is
a result of the sweep, not a failure).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider import layout
from mlpipe_provider.config import resolve_workspace_dir
from mlpipe_provider.errors import StepFailedError
from mlpipe_provider.metrics import aggregate, read_records
from mlpipe_provider.runtime.hyperdrive_board import Board, TrialMonitor, best_of
from mlpipe_provider.runtime.step_context import StepWorkspace


def argument_name(name: str) -> str:
    """``--name`` for a hyperparameter ``name`` (a name given with dashes is used as written)."""
    return name if name.startswith("-") else f"--{name}"


def trial_arguments(base: list[Any], hyperparameters: dict[str, Any]) -> list[Any]:
    extra: list[Any] = []
    for name, value in hyperparameters.items():
        extra += [argument_name(name), value]
    return [*base, *extra]


def sweep_id(task_id: str) -> str:
    """The sweep's TaskGroup id, shared by its trials (``G.trials``) and its step (``G.hyperdrive``)."""
    return task_id.rsplit(".", 1)[0]


def board_for(op: Any, context: Any) -> Board:
    dag_dir = Path(op.dag.fileloc).resolve().parent
    workspace = resolve_workspace_dir(op.workspace, dag_dir)
    dag_run = context["dag_run"]
    return Board.of(workspace, str(dag_run.dag_id), str(dag_run.run_id), sweep_id(op.task_id))


def propose_if_needed(op: Any, context: Any) -> None:
    """Bayesian trials get their values when they start, from the trials finished so far."""
    if op.hyperparameters is not None:
        return
    from mlpipe_provider.runtime.hyperdrive_bayes import propose

    sweep = op.sweep
    maximize = sweep["primary_metric_goal"] == "MAXIMIZE"
    finished = []
    for index, entry in sorted(board_for(op, context).entries().items()):
        best = best_of(list(entry.get("values") or []), maximize)
        if index != op.trial_index and entry.get("status") == "Completed" and best is not None:
            finished.append((dict(entry.get("hyperparameters") or {}), best))
    sampling = sweep["sampling"]
    op.hyperparameters = propose(
        sampling["parameter_space"],
        sampling["seed"],
        op.trial_index,
        finished,
        maximize,
        total=int(sweep["max_total_runs"]),
    )
    op.arguments = trial_arguments(op.script_arguments, op.hyperparameters)
    op.log.info(
        "mlpipe: trial %d proposed by Optuna's TPE sampler from %d finished trial(s): %s",
        op.trial_index,
        len(finished),
        op.hyperparameters,
    )


def _deadline(op: Any, context: Any) -> float | None:
    start = getattr(context["dag_run"], "start_date", None)
    if start is None:
        return None
    return start.timestamp() + 60 * int(op.sweep["max_duration_minutes"])


def trial_summary(op: Any, status: str, values: list[float], reason: str | None) -> dict[str, Any]:
    maximize = op.sweep["primary_metric_goal"] == "MAXIMIZE"
    return {
        "index": op.trial_index,
        "hyperparameters": dict(op.hyperparameters or {}),
        "status": status,
        "values": list(values),
        "best_primary_metric": best_of(values, maximize),
        "reason": reason,
        "script": op.script_name,
        "arguments": [a if isinstance(a, (str, int, float, bool)) else None for a in op.arguments],
    }


def run_trial(op: Any, context: Any, ws: StepWorkspace) -> dict[str, Any]:
    from mlpipe_provider.runtime.cancel import stop_all
    from mlpipe_provider.runtime.script_step import run_script

    board = board_for(op, context)
    monitor = TrialMonitor(
        board,
        op.trial_index,
        op.sweep,
        dict(op.hyperparameters or {}),
        _deadline(op, context),
        stop_all,
        op.log,
    )
    started = time.monotonic()
    if monitor.deadline is not None and time.time() > monitor.deadline:
        reason = f"the sweep ran past max_duration_minutes={op.sweep['max_duration_minutes']}"
        op.log.warning("mlpipe: trial %d not started: %s", op.trial_index, reason)
        monitor.publish("Canceled")
        return _canceled(op, context, ws, monitor, reason, started)
    try:
        record = run_script(op, context, ws, watch=monitor.watch)
    except StepFailedError:
        if monitor.reason is None:
            monitor.publish("Failed")
            raise
        monitor.publish("Canceled")
        return _canceled(op, context, ws, monitor, monitor.reason, started)
    monitor.publish("Completed")
    record["hyperdrive"] = trial_summary(op, "Completed", monitor.values, None)
    return record


def _canceled(
    op: Any, context: Any, ws: StepWorkspace, monitor: TrialMonitor, reason: str, started: float
) -> dict[str, Any]:
    """The record of a trial the policy stopped: what it logged, and an empty ``./outputs``."""
    metrics = aggregate(read_records(monitor.metrics_file)) if monitor.metrics_file else {}
    run_id = monitor.run_id or str(uuid.uuid4())
    return {
        "step_run_id": run_id,
        "step_name": op.step_name,
        "status": "Finished",
        "reused": False,
        "outputs": _empty_outputs(op, ws, run_id),
        "metrics": metrics,
        "run_folder": {
            "datastore": ws.config.default_datastore,
            "path": layout.attempt_root(run_id),
        },
        "duration_s": round(time.monotonic() - started, 3),
        "dag_id": context["dag_run"].dag_id,
        "dag_run_id": context["dag_run"].run_id,
        "hyperdrive": trial_summary(op, "Canceled", monitor.values, reason),
    }


def _empty_outputs(op: Any, ws: StepWorkspace, run_id: str) -> dict[str, Any]:
    """A canceled trial's outputs: empty folders, so its record is complete and reusable (on a
    local datastore; on an object store a canceled trial records none and runs again)."""
    outputs: dict[str, Any] = {}
    for spec in op.outputs:
        store = ws.datastore(spec["datastore"])
        if not store.is_local:
            return {}
        port = spec.get("output_name") or spec["name"]
        rel = layout.output_path(run_id, port)
        store.local_path(rel, what=f"output {port!r}").mkdir(parents=True, exist_ok=True)
        outputs[port] = {"datastore": spec["datastore"], "path": rel}
    return outputs


def publish_reused(op: Any, context: Any, record: dict[str, Any]) -> None:
    """A reused trial's values go on the board, so later trials are judged against them."""
    summary = record.get("hyperdrive") or {}
    board_for(op, context).write(
        op.trial_index,
        {
            "run_id": record.get("step_run_id"),
            "status": summary.get("status", "Completed"),
            "values": list(summary.get("values") or []),
            "hyperparameters": dict(op.hyperparameters or {}),
        },
    )
