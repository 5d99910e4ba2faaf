"""The operators of a ``ParallelRunStep``'s TaskGroup (see ``compiler/kinds/parallel_run.py``).

``ParallelRunStepOperator`` is the step: it holds every setting, takes part in the reuse protocol
like every step (``operators/base.py``) and, when it runs, gathers the mini-batches' results.
``ParallelRunPartitionOperator`` and ``ParallelRunMiniBatchOperator`` hold only the step's task
id and read the rest from that task, so a setting is written once in the DAG file. The work is in
``mlpipe_provider/runtime/parallel_run.py``, imported inside ``execute``, so parsing a DAG file
imports only this module.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from mlpipe_provider.operators.base import MlpipeStepOperator, drop_copied_dag_params


class ParallelRunStepOperator(MlpipeStepOperator):
    """The step of a ``ParallelRunStep``: decides reuse, gathers the mini-batches, applies the
    failure thresholds, writes ``parallel_run_step.txt`` and records the step's output."""

    ui_color = "#f3e6d8"

    def __init__(
        self,
        *,
        source_directory: str,
        parallel: dict[str, Any],
        arguments: list[Any] | None = None,
        environment: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(environment=environment, **kwargs)
        self.source_directory = source_directory
        self.parallel = dict(parallel)
        self.arguments = list(arguments or [])
        self.environment = dict(environment or {})
        # what every process step's fingerprint reads (``fingerprint.process_settings``)
        self.step_params: dict[str, Any] = {}
        self.distribution: dict[str, Any] = {}

    @property
    def companion_task_ids(self) -> tuple[str, ...]:
        """The group's partition and mini-batch tasks: the reuse plan skips them with a reused
        step, so a reused step costs no task at all (the mapped task is skipped before it is
        expanded; left to the trigger rule, ``dag.test()`` idles a second per loop on it)."""
        group = self.task_id.rpartition(".")[0]
        return (f"{group}.partition", f"{group}.mini_batch") if group else ()

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        from mlpipe_provider.fingerprint import parallel_run_settings

        return parallel_run_settings(self, params)

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.parallel_run import gather

        return gather(self, context, reuse)


class _CompanionOperator(BaseOperator):
    """A task of the group that is not the step: it reads the step's settings from its task."""

    template_fields = ()

    def __init__(self, *, step_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        drop_copied_dag_params(self)
        self.step_task_id = step_task_id

    @property
    def step(self) -> ParallelRunStepOperator:
        return self.dag.get_task(self.step_task_id)  # type: ignore[return-value]


class ParallelRunPartitionOperator(_CompanionOperator):
    """List the input files (with their digests) and cut them into mini-batches; the return
    value is the list the ``mini_batch`` task is mapped over (empty when the whole step is
    reused: its task then decides so itself)."""

    ui_color = "#f7efe6"

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from mlpipe_provider.runtime.parallel_run import partition
        from mlpipe_provider.runtime.step_failure import publish_error

        try:
            return partition(self, context)
        except BaseException as exc:
            publish_error(context, exc, stopped=bool(getattr(exc, "mlpipe_stopped", False)))
            raise


class ParallelRunMiniBatchOperator(_CompanionOperator):
    """One mini-batch: reuse its stored result, or run ``init()`` and ``run(mini_batch)``.

    A failure is retried by Airflow (``retries`` = run_max_try - 1); after the last try the
    failure is recorded (its XCom) and the task ends skipped, so the step still gathers and
    applies v1's thresholds (error_threshold, allowed_failed_count/percent).
    """

    ui_color = "#f7efe6"

    def __init__(self, *, mini_batch: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mini_batch = mini_batch

    def execute(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.parallel_run import run_mini_batch

        return run_mini_batch(self, context, self.mini_batch)

    def on_kill(self) -> None:
        from mlpipe_provider.runtime.cancel import stop_all

        stop_all()
