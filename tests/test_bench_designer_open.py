"""bench/designer_open.py's pieces that need no server or browser: the pipelines it opens, the
split of an open into phases from the page's marks, and the table, so the arithmetic behind the
figures in bench/README.md and docs/designer.md cannot rot between the (slow) runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import designer_open  # noqa: E402


def _open(laid_out: float, interactive: float, server_ms: float, **cpu: float):
    marks = {
        "boot": 100.0,
        "open:start": 110.0,
        "open:fetched": 150.0 + server_ms,
        "open:layout": 155.0 + server_ms,
        "open:rendered": 300.0 + server_ms,
        "open:fitted": 300.0 + server_ms,
        "open:edges": 310.0 + server_ms,
        "open:click": 900.0 + server_ms,
        "open:selected": 920.0 + server_ms,
    }
    api = {"requestStart": 20.0, "responseStart": 20.0 + server_ms, "decodedBodySize": 2048}
    return designer_open.Open(
        laid_out, interactive, marks, api, {"responseEnd": 60.0}, 0.01, {}, cpu, 0.5
    )


def test_the_chain_has_the_edges_the_benchmark_waits_for(tmp_path):
    graph = designer_open.chain_graph(20)
    inputs = sum(len(s.inputs) for s in graph.steps)
    assert inputs == designer_open.chain_edges(20) == 19 + 13
    assert designer_open.chain_edges(200) == 392  # the browser test's figure
    paths = designer_open.write_pipelines(tmp_path, [3, 20])
    assert paths == {3: "bench/chain3.py", 20: "bench/chain20.py"}
    assert "PythonScriptStep" in (tmp_path / paths[20]).read_text()
    assert (tmp_path / "bench" / "src" / "prep.py").is_file()


def test_phases_split_the_open_from_the_page_marks():
    phases = designer_open.phases(
        _open(1.0, 1.5, 400.0, TaskDuration=0.8, LayoutDuration=0.1, RecalcStyleDuration=0.05)
    )
    assert phases["code started at"] == pytest.approx(0.1)
    assert phases["open asked at"] == pytest.approx(0.02)
    assert phases["server"] == pytest.approx(0.4)
    assert phases["layout"] == pytest.approx(0.005)
    assert phases["first render"] == pytest.approx(0.145)
    assert phases["click to selected"] == pytest.approx(0.02)
    assert phases["of it layout+style"] == pytest.approx(0.15)
    assert phases["Chromium CPU"] == 0.5
    # a mark the page did not set is "n/a", not a wrong number
    partial = _open(1.0, 1.5, 400.0)
    del partial.marks["open:edges"]
    assert designer_open.phases(partial)["edges at"] is None
    assert designer_open.phases(partial)["of it layout+style"] is None


def test_the_table_gives_each_size_as_a_ratio_to_the_smallest():
    small = designer_open.Size(10, 12, [_open(0.5, 0.5, 50.0), _open(0.7, 0.7, 50.0)])
    big = designer_open.Size(200, 392, [_open(1.0, 1.4, 400.0), _open(1.2, 1.2, 400.0)])
    small.server_open_s, big.server_open_s = [0.03], [0.3]
    rows = designer_open.table([small, big]).splitlines()
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    last = [c.strip() for c in rows[3].strip("|").split("|")]
    assert head[0] == "steps" and head[-1] == "ratio to 10 steps"
    assert last[0] == "200" and last[1] == "392"
    assert last[head.index("interactive s")] == "1.300"
    assert last[-1] == "2.17x"  # 1.3 / 0.6


def test_chromium_cpu_is_none_without_the_benchmarks_browser(monkeypatch):
    monkeypatch.setattr(designer_open, "MARKER", "--no-process-carries-this-marker")
    assert designer_open.chrome_cpu_s() is None
