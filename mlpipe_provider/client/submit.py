"""``Experiment.submit(pipeline)``: lower once, compile, install, start, keep the graph."""

from __future__ import annotations

from typing import Any

from compiler.compile import compile_lowered
from compiler.lower import lower
from compiler.publish import lowered_to_json
from mlpipe_provider.embedded.status import write_json
from mlpipe_provider.sdk.experiment import GRAPH_FILE, PipelineRun, check_parameters, start_run


def submit_pipeline(
    experiment: Any,
    pipeline: Any,
    tags: dict | None = None,
    pipeline_parameters: dict | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
    **kwargs: Any,
) -> PipelineRun:
    """Compile ``pipeline`` into the workspace's DAG folder and start it as a run of
    ``experiment``. The pipeline is lowered once: the same lowered form gives the DAG file, the
    parameter checks and the graph kept with the run."""
    return submit_lowered(
        experiment,
        lower(pipeline),
        tags=tags,
        pipeline_parameters=pipeline_parameters,
        regenerate_outputs=regenerate_outputs,
        continue_on_step_failure=continue_on_step_failure,
    )


def submit_lowered(
    experiment: Any,
    lowered: Any,
    tags: dict | None = None,
    pipeline_parameters: dict | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
) -> PipelineRun:
    """Compile an already lowered pipeline (``submit_pipeline``'s, or a ``PipelineDraft``'s
    kept graph) into the experiment's DAG and start it."""
    ws = experiment.workspace
    compiled = compile_lowered(
        lowered,
        experiment.name,
        ws.dags_dir,
        origin=f"experiment {experiment.name}",
        tags=[f"experiment:{experiment.name}"],
    )
    compiled.write()
    conf = check_parameters(lowered.parameters, pipeline_parameters, ws)
    run = start_run(
        experiment,
        compiled.dag_id,
        compiled.path,
        compiled.pools_path,
        conf,
        tags=tags,
        regenerate_outputs=regenerate_outputs,
        continue_on_step_failure=continue_on_step_failure,
    )
    keep_graph(run, lowered)
    return run


def keep_graph(run: PipelineRun, lowered: Any) -> None:
    """Keep the lowered pipeline with its run, so ``run.publish_pipeline(...)`` can publish
    exactly what ran (v1 publishes a run's graph)."""
    write_json(run._dir / GRAPH_FILE, lowered_to_json(lowered))
