"""The reuse sensor in front of every step: reuse a verified result, wait for one, or let it run.

It reads the step's settings from the step's own operator in the same DAG (no duplicate
configuration in the DAG file), computes the fingerprint, and publishes its decision as XCom.
On a hit the step's task skips itself, and downstream steps read the reused outputs from here.
A run whose conf names a parameter the DAG does not have fails here, before any step starts.
With ``continue_on_step_failure=False`` (v1's default) the sensor also fails, so its step never
starts, once any task of the run has failed (``runtime/step_failure.py``).
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
        # "reschedule", not "poke": a sensor waiting for a concurrent run's producer must give
        # its worker slot back, or identical concurrent runs fill every slot with waiting
        # sensors while the producing step stays queued behind them (a hang, found by
        # bench/scale.py: 20 identical runs on 4 LocalExecutor slots). A decision on the first
        # poke, the common case, costs the same in both modes. The interval is long because a
        # rescheduled sensor that is queued again before the executor has reported its previous
        # try is failed by the scheduler (seen with 2 s on a loaded 2-core machine); Airflow
        # advises a minute for reschedule mode.
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 30.0)
        kwargs.setdefault("timeout", 24 * 3600)
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

    def execute(self, context: Any) -> Any:
        from mlpipe_provider.runtime.step_failure import publish_error

        try:
            return self._execute(context)
        except BaseException as exc:
            publish_error(context, exc, stopped=bool(getattr(exc, "mlpipe_stopped", False)))
            raise

    def _execute(self, context: Any) -> Any:
        unknown = unknown_conf_keys(self.dag, context)
        if unknown:
            from airflow.sdk.exceptions import AirflowFailException

            known = ", ".join(sorted(self.dag.params)) or "none"
            raise AirflowFailException(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} in this run's conf; "
                f"DAG {self.dag.dag_id!r} takes: {known}. No step runs."
            )
        return super().execute(context)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        from mlpipe_provider.runtime.reuse_decision import decide
        from mlpipe_provider.runtime.step_failure import stop_reason

        # Checked on every poke: a step waiting for a concurrent producer stops too.
        step = self.dag.get_task(self.step_task_id)
        reason = stop_reason(self.dag, context, getattr(step, "step_name", self.step_task_id))
        if reason is not None:
            from airflow.sdk.exceptions import AirflowFailException

            self.log.error("mlpipe: %s", reason)
            stop = AirflowFailException(reason)
            stop.mlpipe_stopped = True  # type: ignore[attr-defined] - read by execute()
            raise stop
        decision = decide(self, context)
        if decision is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=decision)


def unknown_conf_keys(dag: Any, context: Any) -> list[str]:
    """Keys of the run's conf that are not params of the DAG.

    Airflow validates the types of declared params when a run is created but accepts any extra
    key; a misspelt parameter would then silently run with its default. Every step's reuse
    sensor refuses such a run before its step can start.
    """
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    return sorted(key for key in conf if key not in dag.params)
