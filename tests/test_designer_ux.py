"""The designer's drafts (``designer/drafts.py``) without HTTP, the failed-step log tail, and
the side form's environment variables and DataReference names as the writer writes them.

A draft saved from the canvas is the SDK's own ``PipelineDraft`` record (``PipelineDraft.get``
and ``list`` in Python see it, with the lowered pipeline a coder's draft would hold); it reopens
on the canvas as the graph it was saved from, and a draft made (or replaced) in Python opens
read-only, drawn from its lowered pipeline. Running and publishing drafts from the page, against
a real Airflow, are in test_designer_ui.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.loader import load_pipelines
from mlpipe_provider.designer import drafts, logs, service
from mlpipe_provider.designer.graph import Graph
from mlpipe_provider.designer.writer import GraphProblems
from mlpipe_provider.sdk import PipelineDraft, Workspace

REPO = Path(__file__).resolve().parents[1]
FILE = "prep_train_evaluate/pipeline.py"


@pytest.fixture
def root(tmp_path):
    dest = tmp_path / "pipelines"
    shutil.copytree(
        REPO / "examples", dest, ignore=shutil.ignore_patterns("__pycache__", "datastores")
    )
    return dest.resolve()


def _ws(root: Path) -> Workspace:
    return Workspace(_workspace_dir=root / ".mlpipe")


def test_a_draft_saved_from_the_canvas_is_the_sdks_draft_and_reopens_editable(root):
    graph = Graph.model_validate(service.open_pipeline(root, FILE)["graph"])
    layout = {"nodes": {"prep": {"x": 10, "y": 20}}}
    saved = drafts.save_draft(root, FILE, graph, layout, "iris-draft", "iris-exp", {}, True, None)
    draft = PipelineDraft.get(_ws(root), saved["id"])
    assert (draft.name, draft.experiment_name, draft.continue_on_step_failure) == (
        "iris-draft",
        "iris-exp",
        True,
    )
    assert draft.get_step_names() == ["prep", "train", "evaluate"]
    assert [d.id for d in PipelineDraft.list(_ws(root))] == [saved["id"]]
    # the lowered pipeline is the one the file itself lowers to
    from compiler.lower import lower

    [found] = load_pipelines(str(root / FILE))
    assert sorted(draft._record["graph"]["steps"]) == sorted(lower(found.pipeline).steps)
    opened = drafts.open_draft(root, FILE, saved["id"])
    assert opened["draft"]["editable"] is True and opened["draft"]["path"] == FILE
    assert Graph.model_validate(opened["graph"]) == graph
    assert opened["layout"] == layout

    # an update from the canvas keeps the id; a parameter value of the wrong type is refused
    graph.steps[0].allow_reuse = False
    again = drafts.save_draft(root, FILE, graph, None, "iris-draft", None, {}, False, saved["id"])
    assert again["id"] == saved["id"] and again["continue_on_step_failure"] is False
    assert (
        PipelineDraft.get(_ws(root), saved["id"])._record["graph"]["steps"]["prep"]["allow_reuse"]
        is False
    )
    with pytest.raises(Exception, match="no PipelineParameter|unknown parameter"):
        drafts.save_draft(
            root, FILE, graph, None, "iris-draft", None, {"nope": 1}, None, saved["id"]
        )


def test_a_draft_that_does_not_compile_names_the_step_and_field(root):
    graph = Graph.model_validate(service.open_pipeline(root, FILE)["graph"])
    graph.steps[1].compute_target = "no-such-cluster"
    with pytest.raises(GraphProblems) as caught:
        drafts.save_draft(root, FILE, graph, None, "broken", None, {}, None, None)
    entries = [service.problem_entry(p) for p in caught.value.problems]
    assert ("train", "compute_target") in {(e["step"], e["field"]) for e in entries}
    assert PipelineDraft.list(_ws(root)) == []
    assert not list((root / "prep_train_evaluate").glob(".designer-*"))  # no scratch left


def test_a_draft_made_or_replaced_in_python_opens_read_only_with_its_edges(root):
    [found] = load_pipelines(str(root / FILE))
    made = PipelineDraft.create(_ws(root), found.pipeline, name="from-python")
    opened = drafts.open_draft(root, None, made.id)
    assert opened["draft"]["editable"] is False
    steps = {s["name"]: s for s in opened["graph"]["steps"]}
    assert set(steps) == {"prep", "train", "evaluate"}
    assert all(not s["editable"] and s["kind"] == "PythonScriptStep" for s in steps.values())
    assert {(e["source"], e["target"], e["data"]) for e in opened["edges"]} == {
        ("data:raw_data", "prep", "raw_data"),
        ("prep", "train", "prepared"),
        ("prep", "evaluate", "prepared"),
        ("train", "evaluate", "model"),
    }
    # a designer draft whose pipeline Python replaced is no longer the canvas it was saved from
    graph = Graph.model_validate(service.open_pipeline(root, FILE)["graph"])
    saved = drafts.save_draft(root, FILE, graph, None, "mixed", None, {}, None, None)
    assert drafts.open_draft(root, FILE, saved["id"])["draft"]["editable"] is True
    [other] = load_pipelines(str(root / "module" / "pipeline.py"))
    PipelineDraft.get(_ws(root), saved["id"]).update(pipeline=other.pipeline)
    reopened = drafts.open_draft(root, FILE, saved["id"])
    assert reopened["draft"]["editable"] is False
    assert {s["name"] for s in reopened["graph"]["steps"]} == {"clean", "word_counts"}
    assert [d["name"] for d in drafts.list_drafts(root, FILE)] == ["mixed", "from-python"]
    with pytest.raises(service.NotFound):
        drafts.open_draft(root, FILE, "00000000-0000-0000-0000-000000000000")


def test_log_tail_keeps_the_end_and_the_exception_without_the_readers_notes():
    messages = [
        {"event": "::group::Log message source details", "sources": ["/x/attempt=1.log"]},
        {"event": "::endgroup::"},
        *({"event": f"line {i}"} for i in range(100)),
        {
            "event": "Task failed with exception",
            "error_detail": [{"exc_type": "ValueError", "exc_value": "the rows are bad: 42"}],
        },
    ]
    tail = logs._tail(messages)
    lines = tail.splitlines()
    assert len(lines) == logs.ERROR_TAIL_LINES
    assert lines[-1] == "ValueError: the rows are bad: 42" and lines[0] == "line 90"
    assert "source details" not in tail


def test_environment_variables_and_a_renamed_data_reference_stay_literals(root):
    """What the side form edits (a step's RunConfiguration environment variables, a
    DataReference's name and path) reaches the file as literals and reads back the same."""
    import ast

    from mlpipe_provider.designer.writer import write_pipeline

    hostile = "x'); import os; os.system('touch PWNED') #\n\"\"\"\\"
    graph = Graph.model_validate(service.open_pipeline(root, FILE)["graph"])
    [ref] = graph.data_references
    old = ref.name
    ref.name, ref.path_on_datastore = "iris_table", "iris/" + hostile  # renamed where it is used:
    for step in graph.steps:
        step.inputs = ["iris_table" if i == old else i for i in step.inputs]
        for arg in step.arguments:
            if getattr(arg, "data", None) == old:
                arg.data = "iris_table"
    graph.steps[0].environment_variables = {"MODE": hostile, "SEED": "7"}
    text = write_pipeline(graph)
    assert all(isinstance(n, (ast.ImportFrom, ast.Assign)) for n in ast.parse(text).body)
    path = root / "prep_train_evaluate" / "renamed.py"
    path.write_text(text)
    opened = service.open_pipeline(root, "prep_train_evaluate/renamed.py")
    assert not (root / "prep_train_evaluate" / "PWNED").exists()
    assert Graph.model_validate(opened["graph"]) == graph
    assert ("data:iris_table", "prep", "iris_table") in {
        (e["source"], e["target"], e["data"]) for e in opened["edges"]
    }
    assert opened["graph"]["steps"][0]["editable"] is True  # env vars alone stay editable
