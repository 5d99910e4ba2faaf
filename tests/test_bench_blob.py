"""bench/blob.py end to end in a tiny mode: it starts Azurite, runs every part (transfers,
fingerprints, the dag.test() pipeline) and checks its own results, so the benchmark cannot rot
unnoticed between the runs that produce the figures in bench/README.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from services import unavailable

REPO = Path(__file__).resolve().parents[1]

ROWS = [
    ("upload", "`Datastore.upload`"),
    ("upload", "step output (`publish_outputs`)"),
    ("download", "input staging (`input_path`)"),
    ("download", "`Datastore.download`"),
    ("fingerprint, cold", "`digest_remote`, empty cache"),
    ("fingerprint, no change", "`digest_remote`, warm cache"),
    ("fingerprint, 1 blob changed", "`digest_remote`, warm cache"),
    ("pipeline decision, cold", "decision of step a, 1st run"),
    ("pipeline decision, no change", "decision of step a, reused run"),
    ("pipeline decision, 1 blob changed", "decision of step a"),
    ("pipeline `dag.test()`, reused run", "2 steps, none ran"),
]


def _table(stdout: str) -> dict[tuple[str, str, str], list[str]]:
    """``(data, measurement, mlpipe path) -> cells`` of the printed Markdown table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] not in ("data", "---"):
            rows[(cells[0], cells[1], cells[2])] = cells
    return rows


@pytest.mark.azurite
def test_blob_benchmark_tiny_mode_runs_and_checks_itself():
    from azurite import install

    if install() is None:
        unavailable("azurite", "Azurite needs node and npm to install (tools/azurite)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    result = subprocess.run(
        [sys.executable, "bench/blob.py", "--blobs", "12", "--size", "4KiB"]
        + ["--large", "1x5MiB", "--reps", "1", "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "all checks passed" in result.stdout
    table = _table(result.stdout)
    for measure, path in ROWS:
        assert ("12 x 4 KiB", measure, path) in table, (measure, path, sorted(table))
    for measure, path in ROWS[:7]:  # the big blob (streamed, not batched): no pipeline there
        assert ("1 x 5 MiB", measure, path) in table, (measure, path, sorted(table))

    def read(data: str, measure: str, path: str) -> str:
        return table[(data, measure, path)][9]

    small = "12 x 4 KiB"
    assert read(small, "fingerprint, cold", "`digest_remote`, empty cache") == "12"
    assert read(small, "fingerprint, no change", "`digest_remote`, warm cache") == "0"
    assert read(small, "fingerprint, 1 blob changed", "`digest_remote`, warm cache") == "1"
    assert read(small, *ROWS[7]) == "12" and read(small, *ROWS[8]) == "0"
    assert read(small, *ROWS[9]) == "1"
    assert read("1 x 5 MiB", "fingerprint, cold", "`digest_remote`, empty cache") == "1"
