"""A v1 user's notebook, executed for real: nbclient runs it in an IPython kernel started from
this venv's Python (ipykernel), cell by cell, as Jupyter would.

The notebook builds a two-step pipeline, submits it to the embedded Airflow, shows
``RunDetails(run).show()`` while it runs, then ``run.wait_for_completion(show_output=True)``,
and submits it again to see the steps reused. A kernel already runs an asyncio event loop and
captures stdout through ZMQ, which a plain script never meets: the assertions are on what the
user reads in the cells' outputs (no traceback, no event-loop error, the lines in order).
"""

from __future__ import annotations

import textwrap

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

STEP = """
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--out")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
open(os.path.join(args.out, "numbers.txt"), "w").write("1 2 3\\n")
print("prepared")
"""
TRAIN = """
import argparse, os
from mlpipe_provider.sdk import Run
parser = argparse.ArgumentParser()
parser.add_argument("--data")
args = parser.parse_args()
numbers = open(os.path.join(args.data, "numbers.txt")).read().split()
Run.get_context().log("total", sum(int(n) for n in numbers))
"""

CELLS = [
    """
    from mlpipe_provider.sdk import (
        Experiment, Pipeline, PipelineData, PythonScriptStep, RunDetails, Workspace,
    )

    ws = Workspace.from_config()
    prepared = PipelineData("prepared", datastore=ws.get_default_datastore())
    prep = PythonScriptStep(
        script_name="prep.py", arguments=["--out", prepared], outputs=[prepared],
        source_directory="steps", allow_reuse=True,
    )
    train = PythonScriptStep(
        script_name="train.py", arguments=["--data", prepared], inputs=[prepared],
        source_directory="steps",
    )
    pipeline = Pipeline(workspace=ws, steps=[prep, train])
    pipeline.validate()
    """,
    """
    run = Experiment(ws, "notebook-demo").submit(pipeline)
    details = RunDetails(run)
    details.show()
    """,
    """
    status = run.wait_for_completion(show_output=True)
    print("final:", status)
    import time
    time.sleep(2.5)  # the table's next refresh (every second) shows the end, then it stops
    print("table still refreshing:", details._thread.is_alive())
    """,
    """
    train_run = run.find_step_run("train.py")[0]
    print("total =", train_run.get_metrics()["total"])
    """,
    """
    again = Experiment(ws, "notebook-demo").submit(pipeline)
    again.wait_for_completion(show_output=True)
    print([(s.name, s.get_details()["properties"].get("azureml.reusedrunid") == r.id)
           for s, r in zip(sorted(again.get_steps(), key=lambda s: s.name),
                           sorted(run.get_steps(), key=lambda s: s.name))])
    RunDetails(again).show()
    """,
]


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif output.get("output_type") in ("display_data", "execute_result"):
            data = output.get("data", {})
            parts.append(data.get("text/html") or data.get("text/plain") or "")
        elif output.get("output_type") == "error":
            parts.append("ERROR " + output["ename"] + ": " + output["evalue"])
    return "".join(parts)


def test_a_notebook_builds_submits_and_follows_a_pipeline(project):
    (project / "steps").mkdir()
    (project / "steps" / "prep.py").write_text(STEP)
    (project / "steps" / "train.py").write_text(TRAIN)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    client = nbclient.NotebookClient(
        notebook,
        timeout=240,
        kernel_name="python3",
        resources={"metadata": {"path": str(project)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    outputs = [_text(cell) for cell in notebook.cells]
    everything = "\n".join(outputs)
    for bad in ("Traceback", "ERROR ", "event loop", "RuntimeWarning", "coroutine", "asyncio"):
        assert bad not in everything, everything

    details, follow, metrics, second = outputs[1], outputs[2], outputs[3], outputs[4]
    # the step table rendered, and its background refresh brought it to the run's end, then
    # stopped (the HTML output is updated in place through its display id)
    assert "prep.py" in details and "train.py" in details
    assert ": Finished</b>" in details and details.count("<td>Finished</td>") == 2
    assert "table still refreshing: False" in follow
    lines = follow.splitlines()
    assert lines[0].startswith("PipelineRunId: ")
    assert "final: Finished" in follow and "PipelineRun Status: Finished" in follow
    assert any("prep.py" in line for line in lines) and any("train.py" in line for line in lines)
    assert "total = 6" in metrics
    assert "[('prep.py', True), ('train.py', True)]" in second
