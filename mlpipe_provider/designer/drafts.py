"""``PipelineDraft``s from the designer: save the canvas as a draft, open, run and publish one.

A draft is the SDK's own record (``sdk/pipeline_draft.py``): the page's graph is written as the
v1 program a Save would write, loaded as the compiler loads a file, and its ``Pipeline`` handed
to ``PipelineDraft.create`` / ``update``, so ``PipelineDraft.get/list`` in Python see exactly
what a coder's draft would hold (the lowered pipeline, checked to compile). To reopen it on the
canvas the record also keeps, under ``designer``, the graph, its layout, the file path it was
designed at (its scripts' folders) and a digest of the lowered pipeline it was saved with. A
draft whose pipeline was since replaced from Python (``draft.update(pipeline=...)``), or made
in Python in the first place, has no current designer graph: it opens read-only, drawn from its
lowered pipeline (steps, data, edges), and can still be run and published from the page.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from compiler.naming import dag_id_for
from compiler.publish import lowered_from_json
from mlpipe_provider.designer import files, runs, service
from mlpipe_provider.designer.graph import DataReferenceNode, Graph, PipelineDataNode, Step
from mlpipe_provider.designer.writer import GraphProblems, write_pipeline
from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.records import DRAFTS
from mlpipe_provider.sdk.pipeline_draft import DRAFT_TAG, PipelineDraft

#: the lowered step kinds, as the v1 class names the canvas shows
_KIND_NAMES = {
    "python_script": "PythonScriptStep",
    "module": "ModuleStep",
    "command": "CommandStep",
    "data_transfer": "DataTransferStep",
    "parallel_run": "ParallelRunStep",
    "mpi": "MpiStep",
    "estimator": "EstimatorStep",
}
READ_ONLY_REASON = (
    "this draft's pipeline was made or replaced in Python: it is shown as it runs; edit its code "
    "and call draft.update(pipeline=...), or save the canvas as a new pipeline file"
)


def _digest(lowered_json: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(lowered_json, sort_keys=True).encode()).hexdigest()


def _workspace(root: Path, relative: str | None) -> Any:
    """The workspace of the pipeline file at ``relative`` (the pipelines folder's without)."""
    from mlpipe_provider.designer.palette import workspace_for

    folder = files.pipeline_path(root, relative).parent if relative else root
    ws = workspace_for(folder, root)
    if ws is None:
        raise service.NotFound(f"no workspace (.mlpipe/config.json) for {relative or 'the folder'}")
    return ws


def _get(ws: Any, draft_id: str) -> PipelineDraft:
    try:
        return PipelineDraft.get(ws, draft_id)
    except UserErrorException as exc:
        raise service.NotFound(str(exc)) from exc


def _designer_part(draft: PipelineDraft) -> dict[str, Any] | None:
    """The designer's graph of the draft, if it is still the draft's pipeline."""
    part = draft._record.get("designer")
    if not isinstance(part, dict) or part.get("lowered_digest") != _digest(draft._record["graph"]):
        return None
    return part


def summary(draft: PipelineDraft) -> dict[str, Any]:
    part = _designer_part(draft)
    return {
        "id": draft.id,
        "name": draft.name,
        "description": draft.description,
        "experiment_name": draft.experiment_name,
        "pipeline_parameters": draft.pipeline_parameters,
        "continue_on_step_failure": draft.continue_on_step_failure,
        "step_names": draft.get_step_names(),
        "last_submitted_pipeline_run_id": draft.last_submitted_pipeline_run_id,
        "created": draft._record.get("created"),
        "path": part.get("path") if part else None,
        "dag_id": draft_dag_id(draft),
        "editable": part is not None,
    }


def list_drafts(root: Path, relative: str | None) -> list[dict[str, Any]]:
    """The workspace's drafts, newest first (``PipelineDraft.list``)."""
    return [summary(d) for d in PipelineDraft.list(_workspace(root, relative))]


def save_draft(
    root: Path,
    relative: str,
    graph: Graph,
    layout: dict[str, Any] | None,
    name: str,
    experiment_name: str | None,
    pipeline_parameters: dict[str, Any],
    continue_on_step_failure: bool | None,
    draft_id: str | None,
) -> dict[str, Any]:
    """Create (no ``draft_id``) or update a draft from the canvas; the graph must compile.

    The graph is written as the file a Save would write (a hidden scratch file next to
    ``relative``, so its scripts' folders and workspace resolve as the file's would) and loaded;
    its ``Pipeline`` goes to the SDK, which lowers and checks it.
    """
    path = files.pipeline_path(root, relative)
    ws = _workspace(root, relative)
    existing = _get(ws, draft_id) if draft_id else None
    text = write_pipeline(graph, service._workspace_datastores(path.parent, root))
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.parent / f".designer-{uuid.uuid4().hex}.py"
    scratch.write_text(text, encoding="utf-8")
    try:
        with service._LOAD_LOCK:
            [found] = service._load(scratch, graph.variable)
            try:
                if existing is None:
                    draft = PipelineDraft.create(
                        ws,
                        found.pipeline,
                        name=name,
                        experiment_name=experiment_name or None,
                        pipeline_parameters=pipeline_parameters,
                        continue_on_step_failure=continue_on_step_failure,
                    )
                else:
                    existing.update(
                        pipeline=found.pipeline,
                        experiment_name=experiment_name or None,
                        pipeline_parameters=pipeline_parameters,
                        continue_on_step_failure=continue_on_step_failure,
                    )
                    draft = existing
            except PipelineValidationError as exc:
                raise GraphProblems(list(getattr(exc, "problems", None) or [str(exc)])) from exc
    finally:
        scratch.unlink(missing_ok=True)
    part = {
        "format": 1,
        "path": relative,
        "graph": graph.model_dump(mode="json"),
        "layout": layout or {},
        "lowered_digest": _digest(draft._record["graph"]),
    }
    draft._record = DRAFTS.update(ws._dir, draft.id, lambda record: {**record, "designer": part})
    return summary(draft)


def graph_from_lowered(lowered_json: dict[str, Any], variable: str) -> Graph:
    """A read-only canvas of a lowered pipeline: its steps (kind, compute, ports), its
    ``DataReference``s and ``PipelineData``, so edges draw as they run."""
    refs: dict[str, DataReferenceNode] = {}
    data: dict[str, PipelineDataNode] = {}
    steps = []
    for task_id, spec in lowered_json["steps"].items():
        inputs = []
        for port in spec.get("inputs") or []:
            if port.get("kind") == "data_reference":
                refs.setdefault(
                    port["name"],
                    DataReferenceNode(
                        name=port["name"],
                        datastore=str(port.get("datastore") or ""),
                        path_on_datastore=port.get("path_on_datastore"),
                        mode=str(port.get("mode") or "mount"),
                    ),
                )
                inputs.append(port["name"])
            elif port.get("kind") == "pipeline_data":
                inputs.append(port.get("output") or port["name"])
        outputs = []
        for port in spec.get("outputs") or []:
            data.setdefault(
                port["name"], PipelineDataNode(name=port["name"], datastore=port.get("datastore"))
            )
            outputs.append(port["name"])
        steps.append(
            Step(
                id=task_id,
                name=spec.get("step_name") or task_id,
                kind=_KIND_NAMES.get(spec.get("kind"), str(spec.get("kind"))),
                editable=False,
                reason=READ_ONLY_REASON,
                compute_target=(spec.get("compute") or {}).get("name"),
                allow_reuse=bool(spec.get("allow_reuse", True)),
                script_name=spec.get("script_name"),
                inputs=inputs,
                outputs=outputs,
            )
        )
    return Graph(
        variable=variable,
        description=lowered_json.get("description"),
        data_references=list(refs.values()),
        pipeline_data=list(data.values()),
        steps=steps,
    )


def open_draft(root: Path, relative: str | None, draft_id: str) -> dict[str, Any]:
    """The draft's graph for the canvas: the designer's own (editable), else read-only."""
    draft = _get(_workspace(root, relative), draft_id)
    part = _designer_part(draft)
    if part is not None:
        graph = Graph.model_validate(part["graph"])
        layout = part.get("layout") or {}
    else:
        variable = "".join(c if c.isalnum() else "_" for c in draft.name) or "pipeline"
        graph = graph_from_lowered(draft._record["graph"], variable)
        layout = {}
    return {
        "draft": summary(draft),
        "graph": graph.model_dump(mode="json"),
        "edges": graph.edges(),
        "layout": layout,
    }


def draft_dag_id(draft: PipelineDraft) -> str:
    """Runs of a draft from the designer share one DAG per draft name."""
    return dag_id_for(f"draft__{draft.name}")


def run_draft(
    root: Path,
    relative: str | None,
    draft_id: str,
    user_name: str,
    trigger: Any,
    authorize: Any,
) -> dict[str, Any]:
    """``draft.submit_run()`` in the designer's Airflow: the draft's pipeline, parameter values
    and ``continue_on_step_failure``, in its experiment, tagged with its id; the run becomes its
    ``last_submitted_pipeline_run_id``. (``submit_run`` from Python goes through the workspace's
    own runner; here the run goes to the Airflow serving the page, so its nodes can be followed.)
    """
    ws = _workspace(root, relative)
    draft = _get(ws, draft_id)
    lowered = lowered_from_json(draft._record["graph"])
    if lowered.workspace_dir is None:
        lowered.workspace_dir = Path(ws._dir)
    started = runs.start_lowered(
        f"draft {draft.name!r}",
        draft_dag_id(draft),
        lowered,
        draft.pipeline_parameters,
        user_name,
        trigger,
        authorize,
        tags={**draft.tags, DRAFT_TAG: draft.id, "mlpipe.designer": f"draft:{draft.name}"},
        experiment=draft.experiment_name,
        continue_on_step_failure=bool(draft.continue_on_step_failure),
    )
    DRAFTS.update(
        ws._dir,
        draft.id,
        lambda record: {**record, "last_submitted_pipeline_run_id": started["pipeline_run_id"]},
    )
    return started


def publish_draft(root: Path, relative: str | None, draft_id: str) -> dict[str, Any]:
    """``draft.publish()``: a ``PublishedPipeline`` named after the draft."""
    draft = _get(_workspace(root, relative), draft_id)
    try:
        published = draft.publish()
    except PipelineValidationError as exc:
        raise GraphProblems(list(getattr(exc, "problems", None) or [str(exc)])) from exc
    return {"id": published.id, "name": published.name, "version": published.version}
