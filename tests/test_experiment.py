"""Experiment.submit on the embedded Airflow: the seed v1 program, run records, reuse, parameters.

These start real background runner processes (each runs its DAG with dag.test on the workspace's
own SQLite Airflow), so they are the slowest tests; they share one workspace per module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlpipe_provider.errors import UserErrorException

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seedproject") / "seed"
    shutil.copytree(
        REPO / "examples" / "seed", folder, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    return folder


def run_seed(seed_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "seed.py"], cwd=seed_dir, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_seed_program_runs_twice_and_the_second_run_reuses(seed_dir, monkeypatch):
    first_out = run_seed(seed_dir)
    assert "PipelineRun Status: Finished" in first_out
    second_out = run_seed(seed_dir)
    assert "reused run" in second_out

    monkeypatch.chdir(seed_dir)
    from mlpipe_provider.sdk import Experiment, PipelineRun, Workspace

    ws = Workspace.from_config()
    runs = list(Experiment(ws, "MyExperiment").get_runs())  # newest first, from another process
    assert len(runs) == 2
    second, first = runs
    assert first.get_status() == second.get_status() == "Finished"
    (first_step,) = first.find_step_run("train.py")
    (second_step,) = second.find_step_run("train.py")
    assert first_step.get_metrics()["accuracy"] > 0.9
    assert "azureml.reusedrunid" not in first_step.get_properties()
    assert second_step.get_properties()["azureml.reusedrunid"] == first_step.id
    assert (
        second_step.get_metrics() == first_step.get_metrics()
    )  # v1 reports the original run's metrics

    output = second_step.get_output_data("output_data1")
    local = Path(output.download(str(seed_dir / "downloaded")))
    assert (local / "model.json").is_file()
    again = PipelineRun(Experiment(ws, "MyExperiment"), first.id)
    assert again.get_details()["status"] == "Finished"
    assert (
        first.get_metrics(recursive=True)[first_step.id]["accuracy"]
        == first_step.get_metrics()["accuracy"]
    )


def test_parameters_are_checked_before_anything_runs(seed_dir, monkeypatch):
    monkeypatch.chdir(seed_dir)
    from mlpipe_provider.sdk import (
        Experiment,
        Pipeline,
        PipelineParameter,
        PythonScriptStep,
        Workspace,
    )

    ws = Workspace.from_config()
    (seed_dir / "p").mkdir(exist_ok=True)
    (seed_dir / "p" / "echo.py").write_text("import sys\nprint(sys.argv[1:])\n")
    step = PythonScriptStep("echo.py", arguments=[PipelineParameter("n", 3)], source_directory="p")
    experiment = Experiment(ws, "params")
    with pytest.raises(UserErrorException, match="unknown parameter 'm'"):
        experiment.submit(Pipeline(ws, [step]), pipeline_parameters={"m": 1})
    with pytest.raises(UserErrorException, match="parameter 'n' expects integer"):
        experiment.submit(Pipeline(ws, [step]), pipeline_parameters={"n": "three"})
    assert list(experiment.get_runs()) == []
    run = experiment.submit(Pipeline(ws, [step]), pipeline_parameters={"n": 5})
    assert run.wait_for_completion(show_output=False) == "Finished"
    rerun = experiment.submit(
        Pipeline(ws, [step]), pipeline_parameters={"n": 5}, regenerate_outputs=True
    )
    assert rerun.wait_for_completion(show_output=False) == "Finished"
    (step_run,) = rerun.find_step_run("echo.py")
    assert not step_run.reused  # regenerate_outputs ran it although an entry existed


def test_two_concurrent_runs_compute_each_step_once(seed_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(seed_dir)
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    from mlpipe_provider.sdk import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace

    ws = Workspace.from_config()
    folder = seed_dir / "slow"
    folder.mkdir(exist_ok=True)
    (folder / "slow.py").write_text(
        "import os, sys, time\n"
        "open(os.environ['MLPIPE_TEST_CALLS'], 'a').write('slow\\n')\n"
        "time.sleep(3)\n"
        "os.makedirs(sys.argv[1], exist_ok=True)\n"
        "open(os.path.join(sys.argv[1], 'x'), 'w').write('done')\n"
    )
    out = PipelineData("slow_out", datastore=ws.get_default_datastore())
    step = PythonScriptStep("slow.py", arguments=[out], outputs=[out], source_directory="slow")
    pipeline = Pipeline(ws, [step])
    runs = [Experiment(ws, "concurrent").submit(pipeline) for _ in range(2)]
    statuses = [run.wait_for_completion(show_output=False) for run in runs]
    assert statuses == ["Finished", "Finished"]
    assert calls.read_text().split() == ["slow"]
    reused = [run.find_step_run("slow.py")[0].reused for run in runs]
    assert sorted(reused) == [False, True]
