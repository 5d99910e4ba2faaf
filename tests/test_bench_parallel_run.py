"""bench/parallel_run.py end to end in a tiny mode (30 files, mini-batches of 10, 2 changed), so
the benchmark behind the figures in bench/README.md cannot rot unnoticed. It checks its own
result: both pipelines write the same rows, and the partial rerun is faster than a full one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_parallel_run_benchmark_runs_and_prints_its_table():
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "parallel_run.py"),
            "--files",
            "30",
            "--batch",
            "10",
            "--changed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    cases = [[c.strip() for c in row.strip("|").split("|")] for row in rows[1:]]
    assert [c[0] for c in cases] == ["everything runs"] * 2 + ["1 files changed"] * 2 + [
        "nothing changed"
    ] * 2
    assert "1 of 3 mini-batches run" in cases[2][1]
    assert all(float(c[2]) > 0 for c in cases)
