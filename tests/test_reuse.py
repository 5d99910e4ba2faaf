"""The reuse correctness matrix: every case is a real DAG run on Airflow (dag.test).

Pipeline under test: ``a`` reads a DataReference and writes ``a_out``; ``b`` reads ``a_out``
and the ``factor`` parameter and writes ``b_out``; ``c`` reads ``b_out`` and logs a metric.
Each script appends its name to $MLPIPE_TEST_CALLS, so a test sees exactly which steps executed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import step_fingerprint, write_script

from mlpipe_provider.sdk import (
    DataReference,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
)

A = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("a\\n")
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    data = open(src).read()
    open(os.path.join(out, "upper.txt"), "w").write(data.upper())
"""
B = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("b\\n")
    src, out, factor = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    text = open(os.path.join(src, "upper.txt")).read()
    open(os.path.join(out, "repeated.txt"), "w").write(text * factor)
"""
C = """
    import os, sys
    from mlpipe_provider.sdk import Run
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("c\\n")
    text = open(os.path.join(sys.argv[1], "repeated.txt")).read()
    Run.get_context().log("length", len(text))
"""


class Harness:
    def __init__(self, ws, project: Path, run_dag, monkeypatch):
        self.ws, self.project, self._run_dag = ws, project, run_dag
        self.calls = project / "calls.log"
        monkeypatch.setenv("MLPIPE_TEST_CALLS", str(self.calls))
        self.store = ws.get_default_datastore()
        for name, body in (("a.py", A), ("b.py", B), ("c.py", C)):
            write_script(project / "steps" / name[0], name, body)
        self.set_input("hello reuse\n")

    @property
    def datastore_root(self) -> Path:
        return self.ws._dir / "datastores" / "workspaceblobstore"

    def set_input(self, text: str) -> None:
        path = self.datastore_root / "inputs" / "text.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def pipeline(self, *, b_allow_reuse: bool = True) -> Pipeline:
        raw = DataReference(
            self.store, data_reference_name="raw", path_on_datastore="inputs/text.txt"
        )
        a_out, b_out = (
            PipelineData("a_out", datastore=self.store),
            PipelineData("b_out", datastore=self.store),
        )
        factor = PipelineParameter("factor", 2)
        a = PythonScriptStep(
            "a.py",
            name="a",
            arguments=[raw, a_out],
            inputs=[raw],
            outputs=[a_out],
            source_directory=str(self.project / "steps" / "a"),
        )
        b = PythonScriptStep(
            "b.py",
            name="b",
            arguments=[a_out, b_out, factor],
            inputs=[a_out],
            outputs=[b_out],
            source_directory=str(self.project / "steps" / "b"),
            allow_reuse=b_allow_reuse,
        )
        c = PythonScriptStep(
            "c.py",
            name="c",
            arguments=[b_out],
            inputs=[b_out],
            source_directory=str(self.project / "steps" / "c"),
        )
        return Pipeline(self.ws, [a, b, c])

    def run(
        self, dag_id: str = "reuse_matrix", conf: dict | None = None, **kwargs
    ) -> tuple[list[str], dict]:
        """Run once; return (steps that executed, {task_id: (state, record)})."""
        self.calls.write_text("")
        dag_run, records = self._run_dag(self.pipeline(**kwargs), dag_id=dag_id, conf=conf)
        assert str(dag_run.state) == "success", records
        return self.calls.read_text().split(), records


@pytest.fixture
def h(ws, project, run_dag, monkeypatch):
    return Harness(ws, project, run_dag, monkeypatch)


def test_second_identical_run_executes_nothing_and_reports_the_same_outputs(h):
    executed, first = h.run()
    assert executed == ["a", "b", "c"]
    executed, second = h.run()
    assert executed == []
    assert second["mlpipe.plan"][0] == "success"
    assert set(second) == {"mlpipe.plan", "a", "b", "c"}  # one task per step, plus the plan
    for step in "abc":
        state, record = second[step]
        assert state == "skipped"  # visible in the UI as skipped; the plan decided all three
        assert record["reused"] and record["reused_run_id"] == first[step][1]["step_run_id"]
        assert record["outputs"] == first[step][1]["outputs"]
    assert second["c"][1]["metrics"] == {"length": len("HELLO REUSE\n") * 2}


def test_editing_a_script_reruns_that_step_and_its_downstream_only(h):
    h.run()
    b = h.project / "steps" / "b" / "b.py"
    b.write_text(b.read_text().replace("text * factor", "text * factor + '!'"))
    executed, _ = h.run()
    assert executed == ["b", "c"]


def test_files_ignored_by_amlignore_do_not_cause_a_rerun(h):
    h.run()
    folder = h.project / "steps" / "a"
    (folder / ".amlignore").write_text("scratch/\n*.tmp\n")
    h.run()  # the ignore file itself is part of the source: this run re-executes a
    (folder / "notes.tmp").write_text("ignored")
    (folder / "scratch").mkdir()
    (folder / "scratch" / "big.bin").write_bytes(b"x" * 1000)
    executed, _ = h.run()
    assert executed == []


def test_changing_a_parameter_reruns_the_steps_that_use_it(h):
    h.run()
    executed, _ = h.run(conf={"factor": 3})
    assert executed == ["b", "c"]
    executed, _ = h.run(conf={"factor": 3})
    assert executed == []


def test_overwriting_datareference_bytes_in_place_reruns(h):
    h.run()
    h.set_input("other text\n")
    executed, _ = h.run()
    assert executed == ["a", "b", "c"]


def test_touch_alone_still_reuses(h):
    h.run()
    path = h.datastore_root / "inputs" / "text.txt"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    (h.project / "steps" / "a" / "a.py").touch()
    executed, _ = h.run()
    assert executed == []


def test_upstream_rerun_with_identical_bytes_keeps_downstream_reused(h):
    h.run()
    a = h.project / "steps" / "a" / "a.py"
    a.write_text(a.read_text() + "\n# a comment changes the source, not the output\n")
    executed, _ = h.run()
    assert executed == ["a"]


def test_allow_reuse_false_always_runs(h):
    h.run(b_allow_reuse=False)
    executed, _ = h.run(b_allow_reuse=False)
    assert executed == ["b"]  # b wrote the same bytes, so c is still reused


def test_regenerate_outputs_runs_every_step_and_its_results_are_reused_later(h):
    h.run()
    executed, _ = h.run(conf={"mlpipe_regenerate_outputs": True})
    assert executed == ["a", "b", "c"]
    executed, _ = h.run()
    assert executed == []


def test_deleting_a_stored_output_forces_a_rerun(h):
    _, first = h.run()
    location = first["b"][1]["outputs"]["b_out"]
    shutil.rmtree(h.datastore_root / location["path"])
    executed, _ = h.run()
    assert executed == ["b"]


def test_truncated_stored_output_is_a_miss(h):
    _, first = h.run()
    location = first["a"][1]["outputs"]["a_out"]
    (h.datastore_root / location["path"] / "upper.txt").write_text("")
    executed, _ = h.run()
    assert executed[0] == "a"


def test_same_step_in_another_pipeline_reuses(h):
    h.run(dag_id="pipeline_one")
    executed, _ = h.run(dag_id="pipeline_two")
    assert executed == []


def test_step_killed_mid_write_leaves_no_entry(h, run_dag):
    write_script(
        h.project / "steps" / "k",
        "k.py",
        """
        import os, signal, sys
        os.makedirs(sys.argv[1], exist_ok=True)
        open(os.path.join(sys.argv[1], "partial.bin"), "wb").write(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
    """,
    )
    out = PipelineData("k_out", datastore=h.store)
    step = PythonScriptStep(
        "k.py",
        name="k",
        arguments=[out],
        outputs=[out],
        source_directory=str(h.project / "steps" / "k"),
    )
    dag_run, records = run_dag(Pipeline(h.ws, [step]), dag_id="killed")
    assert records["k"][0] == "failed"
    fingerprint = step_fingerprint(dag_run, "k")
    from mlpipe_provider.runtime.step_context import StepWorkspace
    from mlpipe_provider.store import OutputStore

    sws = StepWorkspace(h.ws._dir, h.ws._config)
    store = OutputStore(sws.datastore("workspaceblobstore"))
    assert store.read_entry(fingerprint) is None
    assert store.read_lease(fingerprint) is None  # released, so the next run is not blocked


def test_same_size_corruption_is_caught_by_full_verification(h, monkeypatch):
    _, first = h.run()
    location = first["a"][1]["outputs"]["a_out"]
    stored = h.datastore_root / location["path"] / "upper.txt"
    stored.write_text(stored.read_text().lower())  # same size, different bytes
    executed, _ = h.run()
    assert executed == []  # the default check is sizes only: cheap, and misses this
    monkeypatch.setenv("MLPIPE_REUSE_VERIFY", "full")
    executed, _ = h.run()
    assert executed[0] == "a"


def _store(h):
    from mlpipe_provider.runtime.step_context import StepWorkspace
    from mlpipe_provider.store import OutputStore

    return OutputStore(StepWorkspace(h.ws._dir, h.ws._config).datastore("workspaceblobstore"))


def test_a_lease_whose_holder_died_expires_and_the_step_runs(h):
    _, first = h.run()
    fingerprint = first["a"][1]["fingerprint"]
    store = _store(h)
    store.delete_entry(fingerprint)
    lease_file = Path(store.root) / "leases" / f"{fingerprint}.json"
    lease_file.parent.mkdir(parents=True, exist_ok=True)
    lease_file.write_text(
        '{"holder": "dead/run/a", "heartbeat": 1.0, "ttl": 60, "host": "gone", "pid": 1}'
    )
    executed, _ = h.run()
    assert executed == ["a"]
    assert store.read_lease(fingerprint) is None


def test_sensor_waits_for_a_live_holder_then_runs_when_it_gives_up(h):
    import threading
    import time

    _, first = h.run()
    fingerprint = first["a"][1]["fingerprint"]
    store = _store(h)
    store.delete_entry(fingerprint)
    assert store.acquire(fingerprint, "other/run/a", ttl=60) is not None
    released_at: list[float] = []

    def release_later():
        time.sleep(4)
        released_at.append(time.time())
        store.release(fingerprint, "other/run/a")

    threading.Thread(target=release_later, daemon=True).start()
    started = time.time()
    executed, _ = h.run()
    assert executed == ["a"]
    assert released_at and released_at[0] - started >= 3.5  # it really waited for the holder


def test_a_script_writing_outputs_and_logs_in_its_folder_is_still_reused(ws, project, run_dag):
    """v1 scripts write ``./outputs`` and ``./logs`` (run artifacts there). A step runs in its
    source folder, so those folders are not source: the result is recorded, the rerun reused."""
    calls = project / "calls.log"
    write_script(
        project / "steps" / "w",
        "w.py",
        f"""
        import os
        open({str(calls)!r}, "a").write("w\\n")
        os.makedirs("outputs", exist_ok=True)
        os.makedirs("logs", exist_ok=True)
        open("outputs/model.txt", "a").write("weights\\n")
        open("logs/train.log", "a").write("epoch\\n")
        """,
    )
    step = PythonScriptStep("w.py", name="w", source_directory=str(project / "steps" / "w"))
    first, records = run_dag(Pipeline(ws, [step]), dag_id="artifacts")
    assert str(first.state) == "success" and records["w"][0] == "success"
    second, records = run_dag(Pipeline(ws, [step]), dag_id="artifacts")
    assert records["w"][0] == "skipped" and records["w"][1]["reused"]
    assert calls.read_text().split() == ["w"]
    (project / "steps" / "w" / "w.py").write_text(
        (project / "steps" / "w" / "w.py").read_text() + "\n# edited\n"
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="artifacts")
    assert records["w"][0] == "success"  # a source change still runs it
