"""The step of a HyperDrive sweep: rank the trials, publish the best one's results.

It runs after every trial (reused, run, or canceled) and reads their records from the trials'
mapped XComs. Its fingerprint is made of the trials' fingerprints and how it ranks them, so
a rerun whose trials were all reused reuses the step too. Its outputs are what v1's
``TrainingOutput`` said: the best trial's model file (or its whole ``./outputs``), and the
metrics of every trial as v1's metrics JSON ``{run_id: {metric: [values]}}``.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider import layout
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.hyperdrive_trial import sweep_id
from mlpipe_provider.runtime.staging import StepData
from mlpipe_provider.runtime.step_context import StepWorkspace

TRIALS_CHILD_ID = "trials"


def trials_task_id(task_id: str) -> str:
    return f"{sweep_id(task_id)}.{TRIALS_CHILD_ID}"


def pull_trial_records(op: Any, context: Any) -> list[dict[str, Any]]:
    """Every trial's record, in trial order (each mapped task published one, reused or not)."""
    pulled = context["ti"].xcom_pull(
        task_ids=trials_task_id(op.task_id), map_indexes=list(range(op.trial_count))
    )
    records = list(pulled) if isinstance(pulled, (list, tuple)) else [pulled]
    if len(records) != op.trial_count or not all(isinstance(r, dict) for r in records):
        raise UserErrorException(
            f"step {op.step_name!r}: not every trial published its result "
            f"({sum(isinstance(r, dict) for r in records)} of {op.trial_count})"
        )
    return records


def step_settings(op: Any) -> dict[str, Any]:
    """What the step's result depends on: how it ranks, what it writes, and every trial."""
    records = getattr(op, "trial_records", None)
    if records is None:
        # the plan task asks before the trials ran: the step decides once they have
        raise LookupError("the sweep's trials decide first")
    return {
        "primary_metric_name": op.sweep["primary_metric_name"],
        "primary_metric_goal": op.sweep["primary_metric_goal"],
        "training_outputs": {o["name"]: o.get("training") for o in op.outputs},
        "trials": [r.get("fingerprint") for r in records],
    }


def _entry(record: dict[str, Any]) -> dict[str, Any]:
    summary = record.get("hyperdrive") or {}
    return {
        **summary,
        "run_id": record.get("step_run_id"),
        "metrics": record.get("metrics") or {},
        "reused": bool(record.get("reused")),
        "outputs": (record.get("outputs") or {}).get("outputs"),
    }


def rank(trials: list[dict[str, Any]], maximize: bool) -> list[dict[str, Any]]:
    """Trials with a primary metric, best first (ties: the earlier trial)."""
    scored = [t for t in trials if t.get("best_primary_metric") is not None]
    sign = -1 if maximize else 1
    return sorted(scored, key=lambda t: (sign * t["best_primary_metric"], t["index"]))


def metrics_json(trials: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """v1's metrics output: trial run id -> metric name -> its values (a list, always)."""
    found: dict[str, dict[str, list[Any]]] = {}
    for trial in trials:
        metrics = trial.get("metrics") or {}
        found[str(trial["run_id"])] = {
            name: value if isinstance(value, list) else [value] for name, value in metrics.items()
        }
    return found


def run_sweep_step(op: Any, context: Any, ws: StepWorkspace) -> dict[str, Any]:
    started = time.monotonic()
    trials = [_entry(r) for r in op.trial_records]
    maximize = op.sweep["primary_metric_goal"] == "MAXIMIZE"
    ranked = rank(trials, maximize)
    name = op.sweep["primary_metric_name"]
    if not ranked:
        raise UserErrorException(
            f"step {op.step_name!r}: no trial logged the primary metric {name!r} "
            "(hyperdrive_config.primary_metric_name); log it with run.log"
        )
    best = ranked[0]
    op.log.info(
        "mlpipe: step %r: best trial %d (run %s) with %s=%s; %d completed, %d canceled",
        op.step_name,
        best["index"],
        best["run_id"],
        name,
        best["best_primary_metric"],
        sum(t.get("status") == "Completed" for t in trials),
        sum(t.get("status") == "Canceled" for t in trials),
    )
    step_run_id = str(uuid.uuid4())
    data = StepData(ws, op.step_name, step_run_id, op.log)
    try:
        locations = _write_outputs(op, data, step_run_id, best, trials)
    finally:
        data.close()
    for trial in trials:
        trial.pop("outputs", None)
    return {
        "step_run_id": step_run_id,
        "step_name": op.step_name,
        "status": "Finished",
        "reused": False,
        "outputs": locations,
        "metrics": dict(best.get("metrics") or {}),
        "hyperdrive": {
            "primary_metric_name": name,
            "primary_metric_goal": op.sweep["primary_metric_goal"],
            "best_run_id": best["run_id"],
            "best_index": best["index"],
            "trials": trials,
        },
        "run_folder": {
            "datastore": ws.config.default_datastore,
            "path": layout.attempt_root(step_run_id),
        },
        "duration_s": round(time.monotonic() - started, 3),
        "dag_id": context["dag_run"].dag_id,
        "dag_run_id": context["dag_run"].run_id,
    }


def _write_outputs(
    op: Any,
    data: StepData,
    step_run_id: str,
    best: dict[str, Any],
    trials: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    locations: dict[str, dict[str, Any]] = {}
    best_folder: Path | None = None
    for spec in op.outputs:
        port = spec.get("output_name") or spec["name"]
        rel = layout.output_path(step_run_id, port)
        target = Path(data.output_path(port, spec["datastore"], rel, spec.get("path_on_compute")))
        locations[port] = {"datastore": spec["datastore"], "path": rel}
        training = spec.get("training") or {"type": "Outputs"}
        if training["type"] == "Metrics" or training.get("model_file"):
            _make_room_for_file(target)
        if training["type"] == "Metrics":
            target.write_text(json.dumps(metrics_json(trials), indent=2, sort_keys=True))
            continue
        if best_folder is None:
            best_folder = _best_outputs(op, data, best)
        model_file = training.get("model_file")
        if model_file:
            inner = (
                model_file[len("outputs/") :] if model_file.startswith("outputs/") else model_file
            )
            source = (best_folder / inner).resolve()
            if not source.is_relative_to(best_folder.resolve()) or not source.is_file():
                raise UserErrorException(
                    f"step {op.step_name!r}, output {spec['name']!r}: TrainingOutput.model_file "
                    f"{model_file!r} is not a file the best trial (run {best['run_id']}) wrote "
                    "in ./outputs"
                )
            shutil.copyfile(source, target)
        else:
            shutil.copytree(best_folder, target, dirs_exist_ok=True)
    uploaded = data.publish_outputs()
    for port, digested in uploaded.items():
        locations[port].update(digested)
    return locations


def _make_room_for_file(target: Path) -> None:
    """A file output (v1's metrics JSON, a model file) sits where an empty output folder was
    made ready: the consumer opens the path it is given as the file itself."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)


def _best_outputs(op: Any, data: StepData, best: dict[str, Any]) -> Path:
    where = best.get("outputs")
    if not where:
        raise UserErrorException(
            f"step {op.step_name!r}: the best trial (run {best['run_id']}, "
            f"{best.get('status')}) left no ./outputs folder to publish"
        )
    return Path(
        data.input_path(
            "best_trial_outputs",
            where["datastore"],
            where["path"],
            None,
            missing=f"step {op.step_name!r}: the best trial's ./outputs ({where['path']}) is gone",
        )
    )
