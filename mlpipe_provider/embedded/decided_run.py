"""An embedded run with nothing to do, recorded without starting Airflow.

Every embedded run used to pay Airflow's fixed start-up (~9 s: imports, the metadata DB, the
in-process execution API) even when every step was reused, which is the edit-rerun loop's
common case. The plan (``runtime/reuse_plan.plan_before_airflow``) reads the compiled DAG file
without Airflow and looks every step up; when all are reused the run is written as finished,
with the same ``status.json`` the runner writes (each step ``skipped`` in Airflow's terms,
``Finished`` with its reused record in v1's), so ``PipelineRun``, ``StepRun`` and the CLI see no
difference. When any step must run, nothing is written here and the runner starts as before;
the plan task in the DAG then decides again (the stored results may have changed meanwhile).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from mlpipe_provider.embedded.status import STATUS_FILE, write_json


def record_if_all_reused(run_dir: Path, request: dict[str, Any]) -> bool:
    """Write the run as Finished if every step of it is reused; False (nothing written) else."""
    from mlpipe_provider.runtime.reuse_plan import plan_before_airflow
    from mlpipe_provider.tracking import track_step

    planned = plan_before_airflow(
        Path(request["dag_file"]), dict(request.get("conf") or {}), f"mlpipe_{request['run_id']}"
    )
    if planned is None:
        return False
    found, plan = planned
    if plan.undecided:
        return False
    now = dt.datetime.now(dt.UTC).isoformat()
    steps: dict[str, Any] = {}
    context = {"params": {**found.params, **(request.get("conf") or {})}}
    context["dag_run"] = _DecidedRun(found.dag_id, request)
    for step in found.steps:
        record = plan.reused[step.task_id]
        steps[step.task_id] = {
            "state": "skipped",
            "status": "Finished",
            "start": now,
            "end": now,
            "try_number": 0,
            "display_name": step.step_name,
            "operator": step.mlpipe_kind,
            "record": record,
            "fingerprint": record["fingerprint"],
            **({"target": str(step.compute["name"])} if step.compute.get("name") else {}),
        }
        track_step(step, context, record)  # MLflow, if configured; never raises
    write_json(
        run_dir / STATUS_FILE,
        {
            "status": "Finished",
            "error": None,
            "updated": time.time(),
            "airflow_run_id": None,
            "dag_state": "success",
            "decided_before_airflow": True,
            "steps": steps,
        },
    )
    return True


class _DecidedRun:
    """What MLflow tracking reads of a DAG run, for a run Airflow never saw."""

    def __init__(self, dag_id: str, request: dict[str, Any]):
        self.dag_id = dag_id
        self.run_id = f"mlpipe_{request['run_id']}"
        self.conf = dict(request.get("conf") or {})
        self.logical_date = request.get("logical_date")
