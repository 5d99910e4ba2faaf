"""The task of an endpoint schedule's router DAG: run the endpoint's current default version.

``Schedule.create_for_pipeline_endpoint`` compiles a small DAG on the schedule's timetable with one
``PipelineEndpointTriggerOperator``. When it runs, it reads the endpoint's default version from the
workspace registry (``runtime/endpoint_route.py``), so a ``set_default_version`` made after the
schedule was created takes effect at the next firing, and triggers that published pipeline's DAG
with the schedule's parameters, through Airflow's own ``TriggerDagRunOperator`` (the triggered run
is visible in the UI and linked from this task).

Nothing is templated: parameter values are literals from the DAG file and must reach the run
exactly, so a value that happens to contain ``{{`` is not rendered by Jinja.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator


class PipelineEndpointTriggerOperator(TriggerDagRunOperator):
    """Trigger the DAG of pipeline endpoint ``pipeline_endpoint_id``'s default version.

    ``pipeline_parameters`` are the schedule's; the router run's own conf (a datastore watcher's
    file path) is laid over them. ``continue_on_step_failure`` None takes the published pipeline's.
    """

    template_fields = ()
    ui_color = "#f4e8fb"

    def __init__(
        self,
        *,
        workspace: str,
        pipeline_endpoint_id: str,
        schedule_id: str,
        pipeline_parameters: dict[str, Any] | None = None,
        continue_on_step_failure: bool | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("logical_date", None)  # runs of the target need no unique logical date
        kwargs.setdefault("skip_when_already_exists", True)
        kwargs.setdefault("openlineage_inject_parent_info", False)  # the conf is the pipeline's
        super().__init__(trigger_dag_id=f"<default version of {pipeline_endpoint_id}>", **kwargs)
        self.workspace = workspace
        self.pipeline_endpoint_id = pipeline_endpoint_id
        self.schedule_id = schedule_id
        self.pipeline_parameters = dict(pipeline_parameters or {})
        self.continue_on_step_failure = continue_on_step_failure

    def execute(self, context: Any) -> Any:
        from mlpipe_provider.errors import UserErrorException
        from mlpipe_provider.runtime.endpoint_route import (
            conf_for,
            current_target,
            triggered_run_id,
        )
        from mlpipe_provider.runtime.step_context import StepWorkspace

        ws = StepWorkspace.for_operator(self.workspace, self.dag.fileloc)
        dag_run = context["dag_run"]
        try:
            target = current_target(ws.directory, self.pipeline_endpoint_id)
            self.conf = conf_for(
                target,
                self.pipeline_parameters,
                getattr(dag_run, "conf", None) or {},
                self.continue_on_step_failure,
            )
        except UserErrorException as exc:  # a retry cannot fix the registry: fail at once
            from airflow.sdk.exceptions import AirflowFailException

            self.log.error("mlpipe: %s", exc)
            raise AirflowFailException(str(exc)) from exc
        self.trigger_dag_id = target.dag_id
        self.trigger_run_id = triggered_run_id(self.schedule_id, dag_run.run_id)
        self.log.info(
            "mlpipe: PipelineEndpoint %r default version %r is published pipeline %r (%s): "
            "triggering DAG %r run %r with conf %s",
            target.endpoint_name,
            target.version,
            target.pipeline_name,
            target.pipeline_id,
            target.dag_id,
            self.trigger_run_id,
            self.conf,
        )
        return super().execute(context)
