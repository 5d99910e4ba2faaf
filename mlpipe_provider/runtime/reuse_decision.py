"""What the reuse sensor decides on each poke (see ``sensors/reuse.py``)."""

from __future__ import annotations

from typing import Any

from mlpipe_provider.contract.constants import REGENERATE_PARAM
from mlpipe_provider.runtime.reuse import StepReuse, holder_id
from mlpipe_provider.store import CLAIM_TTL_S


def _run(fingerprint: str, reason: str) -> dict[str, Any]:
    return {"decision": "run", "fingerprint": fingerprint, "reason": reason}


def decide(sensor: Any, context: Any) -> dict[str, Any] | None:
    """A decision dict, or None to poke again (another run is producing this result right now)."""
    step = sensor.dag.get_task(sensor.step_task_id)
    reuse = StepReuse(step, context)
    try:
        fingerprint, _ = reuse.fingerprint()
        log = sensor.log
        log.info("mlpipe: step %r fingerprint %s", step.step_name, fingerprint)
        if context["params"].get(REGENERATE_PARAM):
            log.info("mlpipe: regenerate_outputs=True: step %r runs", step.step_name)
            return _run(fingerprint, "regenerate_outputs=True")
        if not step.allow_reuse:
            log.info("mlpipe: allow_reuse=False: step %r runs", step.step_name)
            return _run(fingerprint, "allow_reuse=False")
        manifest, why = reuse.verified_entry(fingerprint, full=sensor.verify_mode == "full")
        if manifest is not None:
            record = {
                **{
                    k: manifest[k]
                    for k in ("outputs", "metrics", "run_folder", "duration_s")
                    if k in manifest
                },
                "step_run_id": manifest["step_run_id"],
                "step_name": step.step_name,
                "status": "Finished",
                "reused": True,
                "reused_run_id": manifest["step_run_id"],
                "reused_pipeline_run_id": manifest.get("dag_run_id"),
                "reused_dag_id": manifest.get("dag_id"),
                "fingerprint": fingerprint,
            }
            log.info(
                "mlpipe: reusing step run %s of DAG %r run %r for step %r (fingerprint %s)",
                manifest["step_run_id"],
                manifest.get("dag_id"),
                manifest.get("dag_run_id"),
                step.step_name,
                fingerprint,
            )
            return {"decision": "reuse", "fingerprint": fingerprint, "record": record}
        if why != "no entry":
            log.warning(
                "mlpipe: stored entry for %s is not usable (%s): step runs again", fingerprint, why
            )
        holder = holder_id(context, step.task_id)
        if reuse.store.acquire(fingerprint, holder, CLAIM_TTL_S) is not None:
            return _run(fingerprint, why)
        current = reuse.store.read_lease(fingerprint)
        log.info(
            "mlpipe: %s is computing this result right now (fingerprint %s); waiting",
            current.holder if current else "another run",
            fingerprint,
        )
        return None
    finally:
        reuse.close()
