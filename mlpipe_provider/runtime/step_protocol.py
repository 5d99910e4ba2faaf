"""The protocol every step operator follows, whatever its kind (see ``operators/base.py``).

Order matters for the store: outputs are complete and digested before the manifest is written,
the manifest is written in one atomic step, and only when the inputs did not change while the
step ran; a failed or killed attempt leaves no entry and its lease is released or expires.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mlpipe_provider.contract.constants import FINGERPRINT_XCOM
from mlpipe_provider.runtime.reuse import StepReuse, holder_id
from mlpipe_provider.runtime.reuse_decision import Decision, decide, reuse_message
from mlpipe_provider.store import lease_ttl
from mlpipe_provider.tracking import track_step


def refuse_if_stopped(op: Any, context: Any) -> None:
    """v1's ``continue_on_step_failure=False``: no step starts once a step of the run failed."""
    from mlpipe_provider.runtime.step_failure import stop_reason

    reason = stop_reason(op.dag, context, op.step_name)
    if reason is None:
        return
    from airflow.sdk.exceptions import AirflowFailException

    op.log.error("mlpipe: %s", reason)
    stop = AirflowFailException(reason)
    stop.mlpipe_stopped = True  # type: ignore[attr-defined] - read by the operator's execute()
    raise stop


def _skip_reused(op: Any, context: Any, record: dict[str, Any]) -> None:
    """Publish the reused record (for later steps and the run's status), then skip the task."""
    from airflow.sdk.exceptions import AirflowSkipException

    op.on_reused(context, record)
    record = dict(record)
    track_step(op, context, record)  # MLflow, if configured; never raises; adds its run id
    context["ti"].xcom_push(key="return_value", value=record)
    message = reuse_message(op, record)
    op.log.info("%s", message)
    raise AirflowSkipException(message)


def _wait_for_holder(op: Any, reuse: StepReuse, decision: Decision) -> None:
    """Give the worker slot back until the lease's holder commits or its lease ends."""
    from mlpipe_provider.triggers.lease import LeaseTrigger

    op.log.info(
        "mlpipe: %s is computing this result right now (fingerprint %s); step %r waits for it "
        "without holding a worker slot",
        decision.holder,
        decision.fingerprint,
        op.step_name,
    )
    op.defer(
        trigger=LeaseTrigger(
            workspace_dir=str(reuse.ws.directory), fingerprint=decision.fingerprint
        ),
        method_name="execute_after_wait",
    )


class _Heartbeat:
    """Keeps this run's lease on the fingerprint alive while the script runs."""

    def __init__(self, reuse: StepReuse, fingerprint: str, holder: str, leased: bool):
        self.reuse, self.fingerprint, self.holder = reuse, fingerprint, holder
        self.ttl = lease_ttl()
        # the decision took the lease already, unless the step runs without asking for it
        # (regenerate_outputs, allow_reuse=False): then take it if it is free, else run anyway
        self.held = leased or reuse.store.acquire(fingerprint, holder, self.ttl) is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        if self.held:
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(max(self.ttl / 4, 0.2)):
            self.reuse.store.heartbeat(self.fingerprint, self.holder, self.ttl)

    def stop(self) -> None:
        self._stop.set()
        if self.held:
            self._thread.join(timeout=5)
            self.reuse.store.release(self.fingerprint, self.holder)


def run_step(op: Any, context: Any) -> dict[str, Any]:
    """Decide (reuse, wait, or run); run under the lease, digest outputs, commit the entry."""
    refuse_if_stopped(op, context)
    reuse = StepReuse(op, context)
    try:
        fingerprint, _ = reuse.fingerprint()
        op.log.info("mlpipe: step %r fingerprint %s", op.step_name, fingerprint)
        decision = decide(op, context, reuse, fingerprint)
        if decision.action == "reuse":
            assert decision.record is not None
            _skip_reused(op, context, decision.record)
        if decision.action == "wait":
            _wait_for_holder(op, reuse, decision)
        context["ti"].xcom_push(key=FINGERPRINT_XCOM, value=fingerprint)
        heartbeat = _Heartbeat(
            reuse, fingerprint, holder_id(context, op.task_id), leased=decision.leased
        )
        try:
            record = op.produce(context, reuse)
            for location in record["outputs"].values():
                if location.get("digest") and isinstance(location.get("files"), dict):
                    # digested while written (a data transfer hashes what it streams): reading
                    # a remote output back would download it a second time
                    location.setdefault("size", sum(location["files"].values()))
                    continue
                tree = reuse.output_digest(location)
                location["digest"] = tree.digest
                location["files"] = tree.files
                location["size"] = tree.total_size
            record["fingerprint"] = fingerprint
            # a step may finish without a result worth reusing (a ParallelRunStep whose failed
            # mini-batches stayed within its thresholds: its next run retries them)
            reusable = record.pop("reusable", True)
            if not reusable:
                op.log.warning(
                    "mlpipe: step %r finished with failures it tolerates; its result is not "
                    "recorded for reuse",
                    op.step_name,
                )
            elif reuse.fingerprint()[0] == fingerprint:
                reuse.store.commit({**record, "fingerprint": fingerprint, "created": time.time()})
            else:
                op.log.warning(
                    "mlpipe: the inputs or source of step %r changed while it ran; its result is not "
                    "recorded for reuse",
                    op.step_name,
                )
            track_step(op, context, record, reuse.ws)  # MLflow, if configured; never raises
            return record
        finally:
            heartbeat.stop()
    finally:
        reuse.close()
