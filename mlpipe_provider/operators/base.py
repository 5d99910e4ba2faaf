"""What every mlpipe step operator shares: its data, its compute, and the reuse protocol.

Subclasses say what makes their result what it is (``fingerprint_settings``) and how to produce
it (``produce``); the base class decides reuse when the task starts (a verified result: publish
it and skip; another run producing it: defer until that run commits; else run), holds the lease
while producing, digests the outputs and records the store entry. That keeps invariants 1-5 in
one place for every step kind, in one Airflow task per step. Steps the pipeline's plan task
(``operators/reuse_plan.py``) found reused never start at all.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from mlpipe_provider.contract.specs import StepSpec, validate_step_kwargs
from mlpipe_provider.operators.links import STEP_LINKS


def drop_copied_dag_params(task: BaseOperator) -> None:
    """Keep no copy of the DAG's params on ``task``.

    Airflow copies the DAG's params into every task, then serializes and validates each copy:
    most of the cost of serializing a 1,000-step DAG. An mlpipe task never has params of its own,
    and a running task reads the DAG's params anyway (``process_params`` merges them in first),
    so the copy buys nothing.
    """
    from airflow.sdk.definitions.param import ParamsDict

    task.params = ParamsDict()


class MlpipeStepOperator(BaseOperator):
    """Base of the step operators. No field is templated: values reach the step exactly as written."""

    template_fields = ()
    #: "MLflow run" and "Reused run" in the task's Airflow UI page (operators/links.py)
    operator_extra_links = STEP_LINKS

    def __init__(
        self,
        *,
        step_name: str,
        workspace: str,
        inputs: list[dict[str, Any]] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        compute: dict[str, Any] | None = None,
        allow_reuse: bool = True,
        environment: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # An upstream step the plan skipped (reused) is no reason not to run: ``none_failed``
        # runs once every upstream succeeded or was skipped, and not after a failure.
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        drop_copied_dag_params(self)
        #: the arguments checked against the compile/run contract: a hand-edited DAG file with a
        #: missing or mistyped field fails here, at parse time, naming the task and the field
        self.spec: StepSpec = validate_step_kwargs(
            self.task_id,
            step_name=step_name,
            workspace=workspace,
            inputs=inputs,
            outputs=outputs,
            compute=compute,
            environment=environment,
            allow_reuse=allow_reuse,
        )
        self.step_name = step_name
        self.workspace = workspace
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.compute = dict(compute or {})
        self.allow_reuse = allow_reuse

    #: folder (relative to the DAG file) whose content is part of the fingerprint, if any
    source_directory: str | None = None

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """This kind's settings that can change the result, with this run's parameter values."""
        raise NotImplementedError

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        """Run the step; return its record (``outputs`` locations, ``metrics``, ...)."""
        raise NotImplementedError

    #: whether reusing this step's result still does work (copies to a destination, registers a
    #: dataset), so the step must start even when reused; the plan task leaves such steps alone
    reuse_has_effects: bool = False

    def on_reused(self, context: Any, record: dict[str, Any]) -> None:
        """Work a reused result still needs before the step skips (see ``reuse_has_effects``)."""

    def on_kill(self) -> None:
        """The task was killed from outside: stop the step's processes, containers or pods too."""
        from mlpipe_provider.runtime.cancel import stop_all

        stopped = stop_all()
        self.log.info(
            "mlpipe: step %r killed; stopped %d running launch(es)", self.step_name, stopped
        )

    def execute(self, context: Any) -> dict[str, Any]:
        return self._run_step(context)

    def execute_after_wait(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Back from waiting on another run's lease (``triggers/lease.py``): decide again; its
        result is most likely committed now and is reused. (Not through ``execute``: Airflow
        guards that against calls from anywhere but the task runner.)"""
        return self._run_step(context)

    def _run_step(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.step_failure import publish_error
        from mlpipe_provider.runtime.step_protocol import run_step

        try:
            record = run_step(self, context)
        except BaseException as exc:
            publish_error(context, exc, stopped=bool(getattr(exc, "mlpipe_stopped", False)))
            raise
        if self.outlets:
            self._describe_asset_events(context, record)
        return record

    def _describe_asset_events(self, context: Any, record: dict[str, Any]) -> None:
        """Put where this run wrote each outlet and its digest on the asset event (docs/lineage.md).

        Airflow records one event per outlet when the task succeeds; a reused (skipped) step
        records none, because the data did not change.
        """
        from mlpipe_provider.lineage import event_extras

        extras = event_extras(self, record)
        events = context["outlet_events"]
        for asset in self.outlets:
            extra = extras.get(getattr(asset, "uri", None))
            if extra:
                events[asset].extra.update(extra)
