"""Every example program runs for real, as a user would run it: ``python pipeline.py`` in a copy
of ``examples/`` (its committed workspace config and module registry included), submitting to the
embedded Airflow; a second run of one example reuses every step."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = ["prep_train_evaluate", "data_transfer", "module", "command", "parallel_run"]


@pytest.fixture(scope="module")
def examples_copy(tmp_path_factory):
    target = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(
        REPO / "examples",
        target,
        ignore=shutil.ignore_patterns(
            "__pycache__", "data", "datastores", "runs", "airflow", "cache", "envs", "dags"
        ),
    )
    return target


def run_example(folder: Path) -> str:
    result = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=folder, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "PipelineRun Status: Finished" in result.stdout
    return result.stdout


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_end_to_end(examples_copy, name):
    out = run_example(examples_copy / name)
    assert "Status: Failed" not in out


def test_second_run_of_an_example_reuses_every_step(examples_copy):
    out = run_example(examples_copy / "prep_train_evaluate")
    steps = [
        line for line in out.splitlines() if line.startswith("StepRun(") and "Finished" in line
    ]
    assert len(steps) == 3 and all("reused run" in line for line in steps), out
