"""What the SDK's v1 methods need from the layers above it, as small Protocols.

The SDK only describes: a ``Pipeline`` is data. Yet v1 gives that data verbs
(``Pipeline.validate/graph/submit/publish``, ``Experiment.submit``, ``Schedule.create``), and the
code behind them (compiling, rendering DAG files, installing and triggering them) lives above
the SDK, in ``compiler`` and ``mlpipe_provider.client``, which import the SDK. Importing them back
from here, even inside a function, would be a cycle. So the SDK declares what it needs here and
finds the implementations through the ``mlpipe.services`` entry points (pyproject.toml), loaded
once and cached: the dependency points down, the lookup goes through installed package metadata.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from mlpipe_provider.errors import MlpipeError

GROUP = "mlpipe.services"


class CompilerService(Protocol):
    """The compiler's read-only answers about a pipeline (``compiler/service.py``)."""

    def graph(self, pipeline: Any) -> Any:
        """The step graph as a ``networkx.DiGraph``."""

    def validate(self, pipeline: Any) -> list[str]:
        """Every problem compiling would refuse, naming step and field."""

    def lowered_from_json(self, data: dict[str, Any]) -> Any:
        """A lowered pipeline kept as JSON (a published graph, a run's graph), read back."""

    def lowered_json(self, pipeline: Any) -> dict[str, Any]:
        """``pipeline`` lowered and kept as JSON (a draft's graph); raises
        ``PipelineValidationError`` listing every problem when it would not compile."""

    def dag_id_for(self, name: str) -> str:
        """The Airflow DAG id a name compiles to."""

    def timetable_for(self, recurrence: dict[str, Any], anchor: Any) -> dict[str, Any]:
        """A schedule recurrence as the timetable literal its DAG file carries; raises when
        Airflow cannot express it."""


class ClientService(Protocol):
    """Submitting, publishing and deploying (``mlpipe_provider/client/service.py``)."""

    def submit_pipeline(self, experiment: Any, pipeline: Any, **kwargs: Any) -> Any:
        """Compile, install and start ``pipeline``; the ``PipelineRun``."""

    def start_server_run(
        self,
        experiment: Any,
        dag_id: str,
        dag_file: Path,
        pools_file: Path | None,
        conf: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        """Install a compiled DAG on the workspace's Airflow server and trigger it."""

    def adopt_runs(
        self,
        workspace: Any,
        client: Any,
        dag_id: str,
        experiment: str,
        tags: dict[str, Any],
        **kwargs: Any,
    ) -> list[str]:
        """Runs the server started on its own (a schedule's), recorded as workspace runs."""

    def submit_lowered(self, experiment: Any, lowered: Any, **kwargs: Any) -> Any:
        """Compile, install and start an already lowered pipeline (a draft's graph)."""

    def publish_pipeline(
        self,
        pipeline: Any,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None,
    ) -> Any:
        """Lower ``pipeline`` and publish it; the ``PublishedPipeline``."""

    def publish_lowered(
        self,
        ws: Any,
        lowered: Any,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None,
    ) -> Any:
        """Publish an already lowered pipeline (a run's graph, a published one's graph)."""

    def deploy_schedule(self, schedule: Any) -> None:
        """(Re)write a schedule's DAG files from its record."""


@functools.cache
def _load(name: str) -> Any:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise MlpipeError(
            f"no {name!r} entry point in group {GROUP!r}: the mlpipe distribution is not installed "
            "(its metadata declares the services the SDK's v1 methods call); "
            "run `uv sync` or `pip install -e .`"
        )
    return found[0].load()()


def compiler() -> CompilerService:
    """The compiler, loaded once."""
    return _load("compiler")


def client() -> ClientService:
    """The client, loaded once."""
    return _load("client")
