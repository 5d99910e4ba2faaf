"""The client as the SDK sees it (``mlpipe_provider/sdk/services.py``'s ``ClientService``).

Registered as the ``client`` entry point of group ``mlpipe.services``, so the SDK's v1 verbs
(``Experiment.submit``, ``Pipeline.publish``, ``Schedule.create``, ...) reach this layer without
the SDK importing it. Each method only forwards to the module that owns the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider.client import adopted_runs, publish, schedule, server_runs, submit


class ClientService:
    """Stateless: every call works on the workspace objects it is given."""

    def submit_pipeline(self, experiment: Any, pipeline: Any, **kwargs: Any) -> Any:
        return submit.submit_pipeline(experiment, pipeline, **kwargs)

    def submit_lowered(self, experiment: Any, lowered: Any, **kwargs: Any) -> Any:
        return submit.submit_lowered(experiment, lowered, **kwargs)

    def start_server_run(
        self,
        experiment: Any,
        dag_id: str,
        dag_file: Path,
        pools_file: Path | None,
        conf: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        return server_runs.start_server_run(
            experiment, dag_id, dag_file, pools_file, conf, **kwargs
        )

    def adopt_runs(
        self,
        workspace: Any,
        client: Any,
        dag_id: str,
        experiment: str,
        tags: dict[str, Any],
        **kwargs: Any,
    ) -> list[str]:
        return adopted_runs.adopt(workspace, client, dag_id, experiment, tags, **kwargs)

    def publish_pipeline(
        self,
        pipeline: Any,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None,
    ) -> Any:
        return publish.publish_pipeline(
            pipeline, name, description, version, continue_on_step_failure
        )

    def publish_lowered(
        self,
        ws: Any,
        lowered: Any,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None,
    ) -> Any:
        return publish.publish_lowered(
            ws, lowered, name, description, version, continue_on_step_failure
        )

    def deploy_schedule(self, schedule_: Any) -> None:
        schedule.deploy_schedule(schedule_)
