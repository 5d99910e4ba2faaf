"""The reuse sensor in front of every step: reuse a verified result, wait for one, or let it run.

It reads the step's settings from the step's own operator in the same DAG (no duplicate
configuration in the DAG file), computes the fingerprint, and publishes its decision as XCom.
On a hit the step's task skips itself, and downstream steps read the reused outputs from here.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue


class StepReuseSensor(BaseSensorOperator):
    """Decide whether step ``step_task_id`` must run in this DAG run.

    ``verify="sizes"`` (the default) checks that every stored output file is present with its
    recorded size; ``verify="full"`` re-hashes the stored outputs too. Without an explicit value,
    ``$MLPIPE_REUSE_VERIFY`` decides.
    """

    template_fields = ()
    ui_color = "#eef6e8"

    def __init__(self, *, step_task_id: str, verify: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 2.0)
        kwargs.setdefault("timeout", 24 * 3600)
        kwargs.setdefault("mode", "poke")
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        if verify not in (None, "sizes", "full"):
            raise ValueError(f"verify must be 'sizes' or 'full', got {verify!r}")
        self.step_task_id = step_task_id
        self.verify = verify

    @property
    def verify_mode(self) -> str:
        """``$MLPIPE_REUSE_VERIFY`` on the worker sets the default, so operators can turn on full checks."""
        import os

        return self.verify or os.environ.get("MLPIPE_REUSE_VERIFY", "sizes")

    def poke(self, context: Any) -> bool | PokeReturnValue:
        from mlpipe_provider.runtime.reuse_decision import decide

        decision = decide(self, context)
        if decision is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=decision)
