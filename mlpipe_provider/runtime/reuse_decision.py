"""Whether a step runs, is reused, or waits: one rule, asked by the plan task and by the step.

The pipeline-level plan (``runtime/reuse_plan.py``) asks ``stored_result`` for every step whose
inputs it already knows; a step the plan could not decide asks ``decide`` when it starts, which
adds the lease: of several runs that miss on one fingerprint at once, one takes the lease and
produces, the others wait for its commit (``triggers/lease.py``) and then reuse it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from mlpipe_provider.contract.constants import REGENERATE_PARAM
from mlpipe_provider.model_registry import stale_model
from mlpipe_provider.runtime.reuse import StepReuse, holder_id
from mlpipe_provider.store import lease_ttl

#: ``$MLPIPE_REUSE_VERIFY``: ``sizes`` (default) checks that every stored output file is present
#: with its recorded size; ``full`` re-hashes the stored outputs too
VERIFY_ENV = "MLPIPE_REUSE_VERIFY"


def verify_full() -> bool:
    mode = os.environ.get(VERIFY_ENV, "sizes")
    if mode not in ("sizes", "full"):
        raise ValueError(f"${VERIFY_ENV} must be 'sizes' or 'full', got {mode!r}")
    return mode == "full"


@dataclass(frozen=True)
class Decision:
    """What a step does in this run."""

    action: Literal["reuse", "run", "wait"]
    fingerprint: str
    #: why it runs (a miss's cause, ``regenerate_outputs=True``, ``allow_reuse=False``)
    reason: str = ""
    #: the reused record (``reuse``), as downstream steps and the run's status read it
    record: dict[str, Any] | None = None
    #: who holds the lease (``wait``)
    holder: str | None = None
    #: this step took the lease on ``fingerprint`` while deciding (``run``)
    leased: bool = False


def reused_record(step: Any, manifest: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """The record a reused step publishes: the stored one, marked with the run it came from."""
    return {
        **{
            k: manifest[k]
            for k in ("outputs", "metrics", "run_folder", "duration_s", "hyperdrive")
            if k in manifest
        },
        "step_run_id": manifest["step_run_id"],
        "step_name": step.step_name,
        "status": "Finished",
        "reused": True,
        "reused_run_id": manifest["step_run_id"],
        "reused_pipeline_run_id": manifest.get("dag_run_id"),
        "reused_dag_id": manifest.get("dag_id"),
        "reused_task_id": manifest.get("task_id"),
        "fingerprint": fingerprint,
    }


def reuse_message(step: Any, record: dict[str, Any]) -> str:
    """The log line (and skip reason) of a reused step: which step run, of which pipeline run."""
    return (
        f"mlpipe: step {step.step_name!r} reused step run {record['reused_run_id']} "
        f"(DAG {record.get('reused_dag_id')!r}, run {record.get('reused_pipeline_run_id')!r}, "
        f"fingerprint {record['fingerprint']})"
    )


def stored_result(
    step: Any, reuse: StepReuse, fingerprint: str, params: dict[str, Any], log: Any
) -> tuple[dict[str, Any] | None, str]:
    """The reused record for ``fingerprint`` if one may be used, else None and why the step runs."""
    if params.get(REGENERATE_PARAM):
        return None, "regenerate_outputs=True"
    if not step.allow_reuse:
        return None, "allow_reuse=False"
    manifest, why = reuse.verified_entry(fingerprint, full=verify_full())
    if manifest is not None:
        stale = stale_model(reuse.ws.directory, manifest.get("models"))
        if stale is None:
            return reused_record(step, manifest, fingerprint), "verified"
        log.info("mlpipe: stored result of step %r not reused: %s", step.step_name, stale)
        return None, stale
    if why != "no entry":
        log.warning(
            "mlpipe: stored entry for %s is not usable (%s): step %r runs again",
            fingerprint,
            why,
            step.step_name,
        )
    return None, why


def decide(step: Any, context: Any, reuse: StepReuse, fingerprint: str) -> Decision:
    """Reuse a verified result; else take the lease and run; else wait for the lease's holder.

    A run with ``regenerate_outputs`` or a step with ``allow_reuse=False`` runs without waiting
    for anyone (v1 recomputes those whatever else is running).
    """
    log = step.log
    record, why = stored_result(step, reuse, fingerprint, context["params"], log)
    if record is not None:
        return Decision("reuse", fingerprint, record=record)
    if why in ("regenerate_outputs=True", "allow_reuse=False"):
        log.info("mlpipe: %s: step %r runs", why, step.step_name)
        return Decision("run", fingerprint, reason=why)
    holder = holder_id(context, step.task_id)
    if reuse.store.acquire(fingerprint, holder, lease_ttl()) is not None:
        return Decision("run", fingerprint, reason=why, leased=True)
    current = reuse.store.read_lease(fingerprint)
    return Decision(
        "wait", fingerprint, reason=why, holder=current.holder if current else "another run"
    )
