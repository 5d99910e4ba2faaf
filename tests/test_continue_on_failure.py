"""v1's ``continue_on_step_failure``: real DAG runs (dag.test) of a pipeline where one step fails.

Pipeline under test: ``a`` fails; ``b`` (slow) writes ``b_out``, which ``c`` reads; ``d`` reads
``a``'s output. With the flag False (v1's default) ``c`` must not start once ``a`` has failed and
the run is failed; with True the independent branch ``b -> c`` runs to the end. ``d`` depends on
the failed step, so it never runs either way. Each script appends its name to $MLPIPE_TEST_CALLS.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import task_xcoms, write_script

from mlpipe_provider.contract.constants import ERROR_XCOM
from mlpipe_provider.runtime.step_failure import CONTINUE_PARAM
from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep

SCRIPTS = {
    "a.py": """
        import os, sys
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("a\\n")
        sys.exit(3)
    """,
    "b.py": """
        import os, sys, time
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("b\\n")
        time.sleep(1.0)
        os.makedirs(sys.argv[1], exist_ok=True)
        open(os.path.join(sys.argv[1], "b.txt"), "w").write("from b")
    """,
    "c.py": """
        import os, sys
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("c\\n")
        assert open(os.path.join(sys.argv[1], "b.txt")).read() == "from b"
    """,
    "d.py": """
        import os
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("d\\n")
    """,
}


@pytest.fixture
def calls(project: Path, monkeypatch) -> Path:
    path = project / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(path))
    for name, body in SCRIPTS.items():
        write_script(project / "steps", name, body)
    return path


def pipeline(ws, project: Path) -> Pipeline:
    store = ws.get_default_datastore()
    a_out, b_out = PipelineData("a_out", datastore=store), PipelineData("b_out", datastore=store)
    folder = str(project / "steps")

    def step(name: str, **kwargs) -> PythonScriptStep:
        return PythonScriptStep(
            f"{name}.py", name=name, source_directory=folder, allow_reuse=False, **kwargs
        )

    return Pipeline(
        ws,
        [
            step("a", arguments=[a_out], outputs=[a_out]),
            step("b", arguments=[b_out], outputs=[b_out]),
            step("c", arguments=[b_out], inputs=[b_out]),
            step("d", arguments=[a_out], inputs=[a_out]),
        ],
    )


def executed(calls: Path) -> set[str]:
    return set(calls.read_text().split()) if calls.exists() else set()


def test_default_is_v1_false_the_independent_branch_stops_and_the_run_fails(
    ws, project, calls, run_dag
):
    dag_run, records = run_dag(pipeline(ws, project), dag_id="stop_default")
    assert str(dag_run.state) == "failed"
    assert records["a"][0] == "failed"
    # dag.test runs one task at a time: b (independent of a) either started before a failed
    # and finished, or started after and stopped itself, failed and marked as stopped
    xcoms = task_xcoms(dag_run)
    if records["b"][0] == "success":
        assert records["c"][0] == "failed"  # stopped as it started
        stopped = "c"
    else:
        assert records["b"][0] == "failed" and records["c"][0] == "upstream_failed"
        stopped = "b"
    error = xcoms[stopped][ERROR_XCOM]
    assert error["kind"] == "stopped" and "after step 'a' failed" in error["error"]
    assert records["d"][0] == "upstream_failed"
    assert executed(calls) <= {"a", "b"} and "c" not in executed(calls)


def test_false_in_conf_stops_the_run_and_the_log_names_the_failed_step(
    ws, project, calls, run_dag, capfd
):
    dag_run, records = run_dag(
        pipeline(ws, project), dag_id="stop_false", conf={CONTINUE_PARAM: False}
    )
    assert str(dag_run.state) == "failed"
    assert records["c"][0] in ("failed", "upstream_failed")  # stopped, or after a stopped b
    assert "c" not in executed(calls)
    stopped = "c" if records["b"][0] == "success" else "b"
    out, err = capfd.readouterr()  # the task log, as Airflow prints it during dag.test
    assert (
        "pipeline stops after step 'a' failed (continue_on_step_failure=False): "
        f"step '{stopped}' does not run" in out + err
    )


def test_true_keeps_the_independent_branch_running(ws, project, calls, run_dag):
    dag_run, records = run_dag(
        pipeline(ws, project), dag_id="stop_true", conf={CONTINUE_PARAM: True}
    )
    assert str(dag_run.state) == "failed"  # a still failed: v1 reports the run as Failed too
    assert records["a"][0] == "failed"
    assert records["b"][0] == records["c"][0] == "success"
    assert records["d"][0] == "upstream_failed"  # downstream of the failure never runs
    assert executed(calls) == {"a", "b", "c"}


def test_a_run_without_failures_is_unaffected(ws, project, calls, run_dag):
    write_script(project / "steps", "a.py", SCRIPTS["d.py"].replace('"d', '"a'))
    dag_run, records = run_dag(pipeline(ws, project), dag_id="stop_none")
    assert str(dag_run.state) == "success"
    assert executed(calls) == {"a", "b", "c", "d"}


def test_compiled_dag_declares_the_param_with_v1_default_false(ws, project, calls):
    from compiler.codegen import render_dag
    from compiler.compile import compile_pipeline
    from compiler.lower import lower

    compiled = compile_pipeline(pipeline(ws, project), "declared", project / "dags")
    assert f"'{CONTINUE_PARAM}': Param(False, type='boolean'" in compiled.text, (
        "the DAG param must default to v1's False"
    )
    scheduled = render_dag(
        lower(pipeline(ws, project)), "declared", project / "dags", continue_on_step_failure=True
    )
    assert f"'{CONTINUE_PARAM}': Param(True, type='boolean'" in scheduled


def test_experiment_submit_passes_the_flag_to_the_embedded_run(ws, project, calls):
    """``experiment.submit(..., continue_on_step_failure=...)`` end to end (background runner)."""
    from mlpipe_provider.sdk import Experiment

    experiment = Experiment(ws, "keep-going")
    run = experiment.submit(pipeline(ws, project), continue_on_step_failure=True)
    assert (
        run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    )  # v1: a failed step fails it
    assert executed(calls) == {"a", "b", "c"}
    calls.unlink()
    run = experiment.submit(pipeline(ws, project))  # v1's default: False
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert "c" not in executed(calls) and "a" in executed(calls)
