"""The operator at the root of every compiled DAG: the pipeline-level reuse check.

One task decides every step it can (``runtime/reuse_plan.py``), publishes the reused records and
skips those steps' tasks in one call, so a pipeline with nothing to do costs this task alone.
It is also where a run is refused before any step starts: a conf key the DAG has no param for.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class ReusePlanOperator(BaseOperator):
    """Find every step whose result already exists; skip them, and tell the steps after them."""

    template_fields = ()
    ui_color = "#eef6e8"

    def __init__(self, **kwargs: Any) -> None:
        from mlpipe_provider.operators.base import drop_copied_dag_params

        super().__init__(**kwargs)
        drop_copied_dag_params(self)

    def execute(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.step_failure import publish_error

        try:
            return self._execute(context)
        except BaseException as exc:
            publish_error(context, exc)
            raise

    def _execute(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.reuse_plan import make_plan, step_tasks, unknown_conf_keys
        from mlpipe_provider.tracking import track_step

        unknown = unknown_conf_keys(self.dag, context)
        if unknown:
            from airflow.sdk.exceptions import AirflowFailException

            known = ", ".join(sorted(self.dag.params)) or "none"
            raise AirflowFailException(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} in this run's conf; "
                f"DAG {self.dag.dag_id!r} takes: {known}. No step runs."
            )
        steps = step_tasks(self.dag)
        plan = make_plan(steps, context, self.log)
        ti = context["ti"]
        by_id = {step.task_id: step for step in steps}
        for task_id, record in plan.reused.items():
            track_step(by_id[task_id], context, record)  # MLflow, if configured; never raises
        for task_id, why in plan.undecided.items():
            self.log.info("mlpipe: step %r decides when it starts: %s", task_id, why)
        self.log.info(
            "mlpipe: plan: %d of %d step(s) reused, %d decide when they start",
            len(plan.reused),
            len(steps),
            len(plan.undecided),
        )
        summary = plan.summary()
        if plan.reused:
            from airflow.sdk.exceptions import DownstreamTasksSkipped

            # Raised, the return value is not pushed: push it first. Not through SkipMixin.skip,
            # whose XCom would keep a cleared step skipped; a cleared step decides again itself.
            ti.xcom_push(key="return_value", value=summary)
            skipped = [
                task_id
                for step_id in plan.reused
                for task_id in (step_id, *getattr(by_id[step_id], "companion_task_ids", ()))
            ]
            raise DownstreamTasksSkipped(tasks=skipped)
        return summary
