"""bench/conditional_writes.py in a tiny mode: both emulators, both implementations, the race
rounds and ``--check`` (no wrong outcome for the conditional writes), so the benchmark behind
the figures in bench/README.md cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from object_stores import fake_gcs_binary, moto_binary
from services import unavailable

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.s3
@pytest.mark.gcs
def test_bench_conditional_writes_runs_and_conditional_writes_have_one_winner():
    if moto_binary() is None:
        unavailable("s3", "moto_server (moto[server]) is not installed")
    if fake_gcs_binary() is None:
        unavailable("gcs", "fake-gcs-server is not installed")
    done = subprocess.run(
        [sys.executable, "bench/conditional_writes.py", "--writes", "3", "--rounds", "3"]
        + ["--racers", "4", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {
        tuple(cells[:3])
        for line in done.stdout.splitlines()
        if (cells := [c.strip() for c in line.strip().strip("|").split("|")]) and len(cells) == 7
    }
    for row in [
        ("s3", "conditional", "`S3Objects`"),
        ("s3", "fallback", "`FsspecObjects`"),
        ("gcs", "conditional", "`GcsObjects`"),
        ("gcs", "fallback", "`FsspecObjects`"),
    ]:
        assert row in rows, done.stdout
    for line in done.stdout.splitlines():
        if "| conditional |" in line:
            assert line.rstrip().endswith("| 0/3 | 0/3 |"), line
