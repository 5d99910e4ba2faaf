"""The Airflow UI's extra links on step tasks (operators/links.py), from real ``dag.test`` runs,
read back the way the API server serves them (the serialized DAG's links, from their XComs).

Pipeline: ``a`` writes ``a_out``; ``b`` copies it to ``b_out``. Run 1 runs both: no "Reused
run" link. Run 2 changes nothing: the plan task skips both, and each links to the task of run 1
that produced its result. Run 3 edits a comment in ``a``'s script: ``a`` runs again and writes
the same bytes, so ``b`` decides at its own start to reuse, and its link (computed on the
worker this time) still names run 1's ``b``.
"""

from __future__ import annotations

from urllib.parse import quote

from conftest import task_links, write_script

from mlpipe_provider.operators.links import MLFLOW_LINK_NAME, REUSED_LINK_NAME
from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep

BASE_URL = "http://airflow.example.test:8080"

A = """
    import os, sys
    os.makedirs(sys.argv[1], exist_ok=True)
    open(os.path.join(sys.argv[1], "x.txt"), "w").write("x")
"""
B = """
    import os, shutil, sys
    shutil.copytree(sys.argv[1], sys.argv[2], dirs_exist_ok=True)
"""


def _pipeline(ws, project) -> Pipeline:
    a_out, b_out = PipelineData("a_out"), PipelineData("b_out")
    a = PythonScriptStep(
        "a.py",
        name="a",
        arguments=[a_out],
        outputs=[a_out],
        source_directory=str(project / "a"),
    )
    b = PythonScriptStep(
        "b.py",
        name="b",
        arguments=[a_out, b_out],
        inputs=[a_out],
        outputs=[b_out],
        source_directory=str(project / "b"),
    )
    return Pipeline(ws, [a, b])


def _task_url(dag_run, task_id: str) -> str:
    return f"{BASE_URL}/dags/{dag_run.dag_id}/runs/{quote(dag_run.run_id, safe='')}/tasks/{task_id}"


def test_reused_steps_link_to_the_task_instance_that_produced_their_result(
    ws, project, run_dag, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL + "/")
    write_script(project / "a", "a.py", A)
    write_script(project / "b", "b.py", B)

    first, records = run_dag(_pipeline(ws, project), dag_id="links")
    assert {t: s for t, (s, _) in records.items() if t in "ab"} == {"a": "success", "b": "success"}
    assert records["a"][1]["task_id"] == "a"  # the producing task is on the record (and entry)
    for task_id in ("a", "b"):
        links = task_links(first, task_id, timeout=0)
        assert links == {MLFLOW_LINK_NAME: None, REUSED_LINK_NAME: None}  # ran; no tracking

    second, records = run_dag(_pipeline(ws, project), dag_id="links")
    assert records["a"][0] == records["b"][0] == "skipped"
    for task_id in ("a", "b"):
        links = task_links(second, task_id)
        assert links[REUSED_LINK_NAME] == _task_url(first, task_id)
        assert links[MLFLOW_LINK_NAME] is None

    write_script(project / "a", "a.py", A + "    # same output, other source\n")
    third, records = run_dag(_pipeline(ws, project), dag_id="links")
    assert records["a"][0] == "success" and records["b"][0] == "skipped"
    assert task_links(third, "a", timeout=0)[REUSED_LINK_NAME] is None
    assert task_links(third, "b")[REUSED_LINK_NAME] == _task_url(first, "b")
