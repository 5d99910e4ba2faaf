"""Open, validate and save pipeline files: the designer's backend logic, free of HTTP.

Loading a pipeline file runs it (as the compiler does: an import under a private module name,
``main()`` not called) from its own folder, which changes the process's working directory; the
API server serves requests on threads, so every load holds one lock.
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from compiler.loader import load_pipelines
from compiler.lower import lower
from mlpipe_provider.designer import files
from mlpipe_provider.designer.graph import Graph
from mlpipe_provider.designer.reader import read_graph
from mlpipe_provider.designer.writer import HEADER, GraphProblems, write_pipeline
from mlpipe_provider.errors import MlpipeError

_LOAD_LOCK = threading.Lock()
_WHERE_RE = re.compile(
    r"^(?:[^:]*:\d+: )?step (?P<q>['\"])(?P<step>.*?)(?P=q)(?: \(task '[^']*'\))?, "
    r"field (?P<fq>['\"])(?P<field>.*?)(?P=fq): "
)


class NotFound(LookupError):
    pass


def problem_entry(message: str) -> dict[str, Any]:
    """A problem with the step and field it names split out, for marking them on the canvas."""
    match = _WHERE_RE.match(message)
    if match is None:
        return {"step": None, "field": None, "message": message}
    return {"step": match["step"], "field": match["field"], "message": message}


def _load(path: Path, variable: str | None) -> list[Any]:
    target = f"{path}:{variable}" if variable else str(path)
    names_before = set(sys.modules)
    try:
        return load_pipelines(target)
    finally:
        for name in set(sys.modules) - names_before:
            if name.startswith("mlpipe_pipeline_"):
                sys.modules.pop(name, None)


def open_pipeline(root: Path, relative: str, variable: str | None = None) -> dict[str, Any]:
    path = files.pipeline_path(root, relative)
    text = files.read_text(path)
    if text is None:
        raise NotFound(f"{relative} not found")
    with _LOAD_LOCK:
        found = _load(path, None)
        chosen = (
            found[0] if variable is None else next((f for f in found if f.dag_id == variable), None)
        )
        if chosen is None:
            raise NotFound(f"{relative} defines no pipeline named {variable!r}")
        graph = read_graph(chosen.pipeline, chosen.dag_id, path.parent)
        lowered = lower(chosen.pipeline)
    return {
        "path": relative,
        "hash": files.file_hash(text),
        "designer_file": text.startswith(HEADER),
        "pipelines": [f.dag_id for f in found],
        "graph": graph.model_dump(mode="json"),
        "edges": graph.edges(),
        "layout": files.read_layout(path),
        "problems": [problem_entry(p) for p in lowered.problems],
        "warnings": lowered.warnings,
    }


def _workspace_datastores(folder: Path, root: Path) -> set[str] | None:
    from mlpipe_provider.designer.palette import workspace_for

    ws = workspace_for(folder, root)
    return None if ws is None else set(ws.settings.datastores)


def validate_graph(root: Path, relative: str, graph: Graph) -> dict[str, Any]:
    """The compiler's problems for ``graph`` as it would be saved at ``relative``.

    The graph is written to a hidden temporary file next to where it would be saved (so
    ``source_directory`` and the workspace resolve as they will), loaded and lowered.
    """
    path = files.pipeline_path(root, relative)
    try:
        text = write_pipeline(graph, _workspace_datastores(path.parent, root))
    except GraphProblems as exc:
        return {"problems": [problem_entry(p) for p in exc.problems], "warnings": [], "text": None}
    problems, warnings = _compile_problems(path, text, graph.variable)
    return {"problems": [problem_entry(p) for p in problems], "warnings": warnings, "text": text}


def _compile_problems(path: Path, text: str, variable: str) -> tuple[list[str], list[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.parent / f".designer-{uuid.uuid4().hex}.py"
    scratch.write_text(text, encoding="utf-8")
    try:
        with _LOAD_LOCK:
            try:
                [found] = _load(scratch, variable)
            except MlpipeError as exc:
                return [f"pipeline: {exc}"], []
            lowered = lower(found.pipeline)
        return list(lowered.problems), list(lowered.warnings)
    finally:
        scratch.unlink(missing_ok=True)


def save_pipeline(
    root: Path,
    relative: str,
    graph: Graph,
    base_hash: str | None,
    layout: dict[str, Any] | None,
) -> dict[str, Any]:
    """Write ``graph`` to ``relative``; an unchanged graph keeps the file byte for byte.

    Raises ``files.Conflict`` when the file is not the one the client opened, or when the graph
    changed and the file was written by hand (saving would replace its code: save under a new
    name instead); ``GraphProblems`` when the graph does not compile.
    """
    path = files.pipeline_path(root, relative)
    current = files.check_base(path, base_hash)
    if current is not None:
        with _LOAD_LOCK:
            found = _load(path, None)
            on_disk = next((f for f in found if f.dag_id == graph.variable), None)
            same = on_disk is not None and (
                read_graph(on_disk.pipeline, on_disk.dag_id, path.parent) == graph
            )
        if same:
            if layout is not None:
                files.write_layout(path, layout)
            return {"path": relative, "hash": files.file_hash(current), "written": False}
        if not current.startswith(HEADER):
            raise files.Conflict(
                f"{relative} was written by hand; saving the edited graph would replace its "
                "code, so save it under a new name"
            )
    text = write_pipeline(graph, _workspace_datastores(path.parent, root))
    problems, _ = _compile_problems(path, text, graph.variable)
    if problems:
        raise GraphProblems(problems)
    files.write_file(path, text)
    if layout is not None:
        files.write_layout(path, layout)
    return {"path": relative, "hash": files.file_hash(text), "written": True}
