"""The Airflow UI check (docs/screenshot.py): a compiled DAG on a real Airflow 3, its docs and
tags through the REST API, the graph the README shows (one task per step plus the pipeline's
reuse check, which skips every step on the second run), and a screenshot of that graph from
headless Chromium.

The screenshot test is skipped only when no Chromium is installed (`.ci/run` installs Debian's
`chromium`); the REST checks run either way.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from services import unavailable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docs"))

import screenshot  # noqa: E402

from mlpipe_provider.contract.constants import PLAN_TASK_ID  # noqa: E402

DAG_ID = "prep_train_evaluate"
STEP_TABLE = "| step | script | compute target | reuse |"
STEPS = {"prep", "train", "evaluate"}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    out = tmp_path_factory.mktemp("ui") / "dag-graph.png"
    chromium = screenshot.find_chromium()
    # Two runs, as the README's picture: the first computes every step, the second reuses them.
    return screenshot.make_screenshot(DAG_ID, out if chromium else None, runs=2)


@pytest.mark.airflow_server
def test_dag_runs_and_shows_its_steps_and_tags(ui):
    assert list(ui["states"].values()) == ["success", "success"]
    first = next(iter(ui["runs"].values()))
    assert {ti["state"] for ti in first.values()} == {"success"}
    # one node per step, plus the one pipeline-level reuse check
    names = {t["task_id"]: t.get("task_display_name") for t in ui["tasks"]}
    assert set(names) == STEPS | {PLAN_TASK_ID}
    assert names[PLAN_TASK_ID] == "reuse check"
    dag = ui["dag"]
    assert STEP_TABLE in dag["doc_md"]
    for row in (
        "| prep | prep.py | cpu-cluster | yes |",
        "| train | train.py | gpu-cluster | yes |",
    ):
        assert row in dag["doc_md"]
    tags = {tag["name"] if isinstance(tag, dict) else tag for tag in dag["tags"]}
    assert "mlpipe" in tags
    assert {p for p in dag["params"]} >= {"epochs", "learning_rate", "test_fraction"}


@pytest.mark.airflow_server
def test_the_second_run_is_the_reuse_check_alone_with_every_step_skipped(ui):
    assert screenshot.reused_graph_problems(ui["task_instances"]) == []
    assert set(ui["task_instances"]) == STEPS | {PLAN_TASK_ID}


def test_the_reuse_check_on_the_picture_is_verified():
    """What keeps a rerun that recomputed a step (or whose check failed) out of the README."""
    reused = {PLAN_TASK_ID: {"state": "success"}, "a": {"state": "skipped"}}
    assert screenshot.reused_graph_problems(reused) == []
    recomputed = {**reused, "b": {"state": "success"}}
    assert screenshot.reused_graph_problems(recomputed) == ["b: success, not skipped"]
    failed = {**reused, PLAN_TASK_ID: {"state": "failed"}}
    assert screenshot.reused_graph_problems(failed) == [f"{PLAN_TASK_ID}: failed"]
    assert screenshot.reused_graph_problems({PLAN_TASK_ID: {"state": "success"}}) == [
        "no step tasks"
    ]


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_screenshot_of_the_graph(ui):
    if ui["png"] is None:
        unavailable(
            "chromium", "no chromium on PATH (apt-get install -y chromium; .ci/run installs it)"
        )
    # make_screenshot only saves once every task's node is drawn in the graph view.
    assert png_size(ui["png"]) == (1600, 600)
    assert ui["png"].stat().st_size > 20_000  # a blank or login page compresses far smaller


def test_committed_screenshot_is_in_the_readme():
    image = REPO / "docs" / "images" / "dag-graph.png"
    assert png_size(image) == (1600, 600)
    assert 20_000 < image.stat().st_size < 500_000
    assert "docs/images/dag-graph.png" in (REPO / "README.md").read_text()
