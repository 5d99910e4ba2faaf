"""The protocol every step operator follows, whatever its kind (see ``operators/base.py``).

Order matters for the store: outputs are complete and digested before the manifest is written,
the manifest is written in one atomic step, and only when the inputs did not change while the
step ran; a failed or killed attempt leaves no entry and its lease is released or expires.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mlpipe_provider.runtime.reuse import StepReuse, holder_id, reuse_task_id
from mlpipe_provider.store import lease_ttl
from mlpipe_provider.tracking import track_step


def _skip_if_reused(op: Any, context: Any) -> None:
    decision = context["ti"].xcom_pull(task_ids=reuse_task_id(op.task_id))
    if isinstance(decision, dict) and decision.get("decision") == "reuse":
        from airflow.sdk.exceptions import AirflowSkipException

        record = decision["record"]
        message = (
            f"mlpipe: step {op.step_name!r} reused step run {record['reused_run_id']} "
            f"(DAG {record.get('reused_dag_id')!r}, run {record.get('reused_pipeline_run_id')!r}, "
            f"fingerprint {decision['fingerprint']})"
        )
        op.log.info("%s", message)
        track_step(op, context, record)  # MLflow, if configured; never raises
        raise AirflowSkipException(message)


class _Heartbeat:
    """Keeps this run's lease on the fingerprint alive while the script runs."""

    def __init__(self, reuse: StepReuse, fingerprint: str, holder: str):
        self.reuse, self.fingerprint, self.holder = reuse, fingerprint, holder
        self.ttl = lease_ttl()
        self.held = reuse.store.acquire(fingerprint, holder, self.ttl) is not None
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
    """Skip on reuse; otherwise produce under the lease, digest outputs, commit the entry."""
    _skip_if_reused(op, context)
    reuse = StepReuse(op, context)
    try:
        fingerprint, _ = reuse.fingerprint()
        heartbeat = _Heartbeat(reuse, fingerprint, holder_id(context, op.task_id))
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
            if reuse.fingerprint()[0] == fingerprint:
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
