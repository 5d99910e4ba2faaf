"""v1 calls found in Microsoft's pipeline notebooks that mlpipe dropped, refused or lacked.

Most checks need no run. One embedded two-step run covers what only a run shows: parameters
given by v1's deprecated ``pipeline_params`` keyword reach the step, a step script reaches its
workspace through ``Run.get_context().experiment.workspace``, and ``get_steps`` lists newest first.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import (
    Environment,
    Experiment,
    MpiStep,
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    RunConfiguration,
    Workspace,
)
from mlpipe_provider.sdk.experiment import PIPELINE_SUBMIT_KEYWORDS, submit_keywords

WRITER = """
    import os, sys
    from mlpipe_provider.sdk import Run
    ws = Run.get_context().experiment.workspace
    os.makedirs(sys.argv[2], exist_ok=True)
    with open(os.path.join(sys.argv[2], "seen.txt"), "w") as f:
        f.write(f"{sys.argv[1]}|{ws.name}|{ws.get_default_datastore().name}")
"""
READER = """
    import os, sys
    print("reader saw", open(os.path.join(sys.argv[1], "seen.txt")).read())
"""


def _one_step(ws: Workspace, folder, runconfig=None) -> Pipeline:
    write_script(folder, "noop.py", "print('ok')\n")
    step = PythonScriptStep(
        "noop.py", name="noop", source_directory=str(folder), runconfig=runconfig
    )
    return Pipeline(ws, [step])


# --- submit keywords (no run) ---------------------------------------------------------------------
def test_pipeline_params_is_read_as_pipeline_parameters_with_v1_notice(caplog):
    with caplog.at_level(logging.WARNING):
        out = submit_keywords({"pipeline_params": {"n": 3}}, PIPELINE_SUBMIT_KEYWORDS, "submit")
    assert out == {"pipeline_parameters": {"n": 3}}
    assert "'pipeline_params' argument is deprecated" in caplog.text
    with pytest.raises(TypeError, match="not both"):
        submit_keywords(
            {"pipeline_params": {"n": 3}, "pipeline_parameters": {"n": 4}},
            PIPELINE_SUBMIT_KEYWORDS,
            "submit",
        )


def test_unknown_submit_keyword_is_ignored_as_v1_did_but_loudly():
    """v1 ignored keywords its submit did not know; a program that ran there must run here."""
    with pytest.warns(UserWarning, match="'pipeline_parmeters'.*as v1 did"):
        out = submit_keywords(
            {"pipeline_parmeters": {"n": 1}, "regenerate_outputs": True},
            PIPELINE_SUBMIT_KEYWORDS,
            "submit",
        )
    assert out == {"regenerate_outputs": True}


# --- PipelineEndpoint's deprecated aliases (publish only, no run) ---------------------------------
def test_endpoint_get_all_aliases(ws, project):
    first = _one_step(ws, project / "src").publish(name="noop")
    endpoint = PipelineEndpoint.publish(ws, "noop-endpoint", "", first)
    endpoint.add(_one_step(ws, project / "src2").publish(name="noop"))
    assert [e.id for e in PipelineEndpoint.get_all(ws)] == [endpoint.id]
    versions = endpoint.get_all_versions()
    assert [(v.version, v.pipeline_id) for v in versions] == [
        (v.version, v.pipeline_id) for v in endpoint.list_versions()
    ]
    assert len(versions) == 2
    assert [p.id for p in endpoint.get_all_pipelines()] == [p.id for p in endpoint.list_pipelines()]
    endpoint.get_pipeline("1").disable()
    assert [p.id for p in endpoint.get_all_pipelines()] == [first.id]
    assert len(endpoint.get_all_pipelines(active_only=False)) == 2


# --- workspace ------------------------------------------------------------------------------------
def test_get_default_compute_target_is_none_as_for_a_workspace_without_one(ws):
    assert ws.get_default_compute_target("CPU") is None
    assert ws.get_default_compute_target("gpu") is None
    with pytest.raises(UserErrorException, match="'CPU' or 'GPU'"):
        ws.get_default_compute_target("TPU")


def test_experiment_workspace_outside_a_step_says_why(monkeypatch):
    from mlpipe_provider.sdk import Run

    monkeypatch.delenv("MLPIPE_STEP_WORKSPACE", raising=False)
    run = Run.get_context()
    with pytest.raises(UserErrorException, match="not a pipeline step run"):
        _ = run.experiment.workspace


# --- MpiStep(runconfig=) --------------------------------------------------------------------------
def test_mpistep_accepts_a_runconfig_as_v1_notebooks_pass_it(ws, project):
    write_script(project / "src", "train.py", "print('mpi')\n")
    runconfig = RunConfiguration()
    runconfig.environment.python.conda_dependencies.add_pip_package("tqdm")
    alone = MpiStep(
        name="mpi",
        source_directory=str(project / "src"),
        script_name="train.py",
        compute_target="STANDARD_D2_V2",
        node_count=1,
        process_count_per_node=2,
        runconfig=runconfig,
    )
    assert "tqdm" in alone.estimator.environment.python.conda_dependencies.pip_packages
    own = MpiStep(
        name="mpi",
        source_directory=str(project / "src"),
        script_name="train.py",
        compute_target="STANDARD_D2_V2",
        node_count=1,
        process_count_per_node=2,
        runconfig=runconfig,
        use_gpu=False,
        pip_packages=["rich"],
    )
    pips = own.estimator.environment.python.conda_dependencies.pip_packages
    assert "rich" in pips and "tqdm" not in pips
    assert Pipeline(ws, [own]).validate() == []
    with pytest.raises(UserErrorException, match="runconfig must be a RunConfiguration"):
        MpiStep(
            name="mpi",
            source_directory=str(project / "src"),
            script_name="train.py",
            runconfig="cpu-cluster",
        )


# --- environment.spark, docker.gpu_support --------------------------------------------------------
def test_spark_section_is_data_and_packages_are_refused_at_compile(ws, project):
    runconfig = RunConfiguration()
    runconfig.environment.spark.precache_packages = False
    assert runconfig.environment.spark.repositories == []
    assert Pipeline(ws, [_one_step(ws, project / "src", runconfig)._steps[0]]).validate() == []
    env = Environment("sparky")
    assert env.spark.precache_packages is True
    runconfig.environment.spark.packages = [{"group": "g", "artifact": "a", "version": "1"}]
    with pytest.raises(PipelineValidationError, match=r"noop.*spark\.packages.*not supported"):
        _one_step(ws, project / "src", runconfig)._check()


def test_gpu_support_is_accepted_with_v1s_deprecation_notice(caplog):
    env = Environment("gpu")
    with caplog.at_level(logging.WARNING):
        env.docker.gpu_support = True
    assert "'gpu_support' is no longer necessary" in caplog.text
    assert env.docker.gpu_support is True
    assert "gpu_support" not in vars(env.docker)  # nothing stored: GPUs are found, not asked for


# --- one embedded run -----------------------------------------------------------------------------
def test_a_run_with_pipeline_params_workspace_in_step_and_newest_first(ws, project, airflow_db):
    folder = project / "src"
    write_script(folder, "writer.py", WRITER)
    write_script(folder, "reader.py", READER)
    seen = PipelineData("seen", datastore=ws.get_default_datastore())
    greeting = PipelineParameter("greeting", default_value="default")
    writer = PythonScriptStep(
        "writer.py",
        name="writer",
        source_directory=str(folder),
        arguments=[greeting, seen],
        outputs=[seen],
    )
    reader = PythonScriptStep(
        "reader.py", name="reader", source_directory=str(folder), arguments=[seen], inputs=[seen]
    )
    run = Experiment(ws, "gaps").submit(
        Pipeline(ws, [writer, reader]), pipeline_params={"greeting": "given"}
    )
    assert run.wait_for_completion(show_output=False) == "Finished"

    assert [s.name for s in run.get_steps()] == ["reader", "writer"]  # newest first, as v1
    assert next(run.get_children()).name == "reader"
    target = run.find_step_run("writer")[0].get_output_data("seen")
    local = target.download(str(project / "got"))
    text = next(Path(local).rglob("seen.txt")).read_text()
    assert text == f"given|{ws.name}|workspaceblobstore"

    again = PipelineRun(ws.experiments["gaps"], run.id)  # v1's way back to a run
    assert again.get_status() == "Finished"
