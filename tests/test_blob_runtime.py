"""Steps against Azure Blob datastores (Azurite): inputs downloaded, outputs uploaded on success,
remote content digests that stay cheap when nothing changed, and reuse verified on blobs.

Every pipeline case is a real ``dag.test`` run. Pipeline: ``a`` reads a DataReference on blob and
writes ``a_out``; ``b`` reads ``a_out`` and writes ``b_out``; each script appends its name to
$MLPIPE_TEST_CALLS so a test sees which steps executed.
"""

from __future__ import annotations

import json
import posixpath
import time

import pytest
from azurite import ACCOUNT_KEY, register_blob_datastore
from conftest import write_script

from mlpipe_provider import remote_digest
from mlpipe_provider.hashing import StatCache, digest_path
from mlpipe_provider.sdk import DataReference, Pipeline, PipelineData, PythonScriptStep

A = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("a\\n")
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    data = open(src).read()
    open(os.path.join(out, "upper.txt"), "w").write(data.upper())
    os.makedirs(os.path.join(out, "sub"), exist_ok=True)
    open(os.path.join(out, "sub", "n.txt"), "w").write(str(len(data)))
"""
B = """
    import os, sys
    from mlpipe_provider.sdk import Run
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("b\\n")
    src, out = sys.argv[1], sys.argv[2]
    text = open(os.path.join(src, "upper.txt")).read()
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "twice.txt"), "w").write(text * 2)
    Run.get_context().log("length", len(text))
"""


class Blob:
    """A registered Azurite container and direct access to its blobs (what another tool sees)."""

    def __init__(self, ws, server, name: str = "blobstore", *, default: bool = True):
        if hasattr(server, "register"):  # any emulated object store (tests/object_stores.py)
            self.sdk = server.register(ws, name, default=default)
        else:
            self.sdk = register_blob_datastore(ws, server, name, default=default)
        self.access = self.sdk._access()
        self.fs = self.access.fs

    def full(self, rel: str) -> str:
        return self.access.full_path(rel)

    def write(self, rel: str, data: bytes | str) -> None:
        self.fs.pipe(self.full(rel), data.encode() if isinstance(data, str) else data)

    def read(self, rel: str) -> bytes:
        return self.fs.cat_file(self.full(rel))

    def files(self, rel: str = "") -> list[str]:
        root = self.full(rel)
        return sorted(posixpath.relpath(p, root) for p in self.fs.find(root))


class Harness:
    def __init__(self, ws, project, run_dag, monkeypatch, blob: Blob, data_store=None):
        self.ws, self.project, self._run_dag, self.blob = ws, project, run_dag, blob
        self.data_store = data_store or blob.sdk
        self.calls = project / "calls.log"
        monkeypatch.setenv("MLPIPE_TEST_CALLS", str(self.calls))
        monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.2")
        for name, body in (("a.py", A), ("b.py", B)):
            write_script(project / "steps" / name[0], name, body)

    def pipeline(self, **a_input) -> Pipeline:
        raw = DataReference(
            self.data_store, data_reference_name="raw", path_on_datastore="inputs/text.txt"
        )
        a_out = PipelineData("a_out", datastore=self.blob.sdk)
        b_out = PipelineData("b_out", datastore=self.blob.sdk)
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
            arguments=[a_out, b_out],
            inputs=[a_out],
            outputs=[b_out],
            source_directory=str(self.project / "steps" / "b"),
        )
        return Pipeline(self.ws, [a, b])

    def run(self, dag_id: str = "blob_runtime", expect: str = "success"):
        self.calls.write_text("")
        dag_run, records = self._run_dag(self.pipeline(), dag_id=dag_id)
        assert str(dag_run.state) == expect, records
        return self.calls.read_text().split(), records


@pytest.fixture
def blob(ws, azurite):
    return Blob(ws, azurite)


@pytest.fixture
def h(ws, project, run_dag, monkeypatch, blob):
    blob.write("inputs/text.txt", "hello blob\n")
    return Harness(ws, project, run_dag, monkeypatch, blob)


@pytest.fixture
def any_blob(ws, object_store):
    """The same, on each object store: Azure Blob, S3 and GCS (conftest's ``object_store``)."""
    return Blob(ws, object_store)


@pytest.fixture
def any_h(ws, project, run_dag, monkeypatch, any_blob):
    any_blob.write("inputs/text.txt", "hello blob\n")
    return Harness(ws, project, run_dag, monkeypatch, any_blob)


def _record(records, task_id):
    state, record = records[task_id]
    assert state == "success", records
    return record


def test_pipeline_on_blob_uploads_outputs_and_a_second_run_reuses_everything(any_h, any_blob, ws):
    h, blob = any_h, any_blob
    executed, records = h.run()
    assert executed == ["a", "b"]
    a, b = _record(records, "a"), _record(records, "b")
    out = a["outputs"]["a_out"]
    assert out["datastore"] == "blobstore"
    assert out["path"] == f"azureml/{a['step_run_id']}/a_out"
    assert blob.files(out["path"]) == ["sub/n.txt", "upper.txt"]
    assert blob.read(f"{out['path']}/upper.txt") == b"HELLO BLOB\n"
    assert out["files"] == {"upper.txt": 11, "sub/n.txt": 2}
    assert blob.read(f"{b['outputs']['b_out']['path']}/twice.txt") == b"HELLO BLOB\n" * 2
    # the run records and metrics reach the (remote) default datastore too
    run_json = json.loads(blob.read(f"azureml/{b['step_run_id']}/.mlpipe/run.json"))
    assert run_json["metrics"] == {"length": 11} == b["metrics"]
    assert b'"length"' in blob.read(f"azureml/{b['step_run_id']}/.mlpipe/metrics.jsonl")
    # nothing was written to a local datastore folder, and the staging area is gone
    assert not (ws._dir / "datastores" / "workspaceblobstore" / "azureml").exists()
    assert list((ws._dir / "cache" / "attempts").iterdir()) == []

    executed, records = h.run()
    assert executed == []
    assert records["a"][0] == records["b"][0] == "skipped"
    assert records["b"][1]["reused_run_id"] == b["step_run_id"]


def test_an_input_blob_changed_in_place_reruns_its_reader_and_identical_output_cuts_off(
    any_h, any_blob
):
    h, blob = any_h, any_blob
    h.run()
    # same size, other bytes: only the blob's version says it changed (v1 reused here)
    blob.write("inputs/text.txt", "HELLO blob\n")
    executed, records = h.run()
    assert executed == ["a"]  # a's output is byte-identical: b keeps its reuse (early cutoff)
    assert records["b"][0] == "skipped"

    blob.write("inputs/text.txt", "hello blobs\n")
    executed, _ = h.run()
    assert executed == ["a", "b"]


def test_a_deleted_output_blob_makes_the_entry_a_miss(any_h, any_blob):
    h, blob = any_h, any_blob
    _, records = h.run()
    out = _record(records, "a")["outputs"]["a_out"]["path"]
    blob.fs.rm(blob.full(f"{out}/sub/n.txt"))
    executed, _ = h.run()
    assert executed == ["a"]  # re-made with the same bytes: b still reused


def test_full_verification_re_digests_remote_outputs(h, blob, monkeypatch):
    _, records = h.run()
    out = _record(records, "a")["outputs"]["a_out"]["path"]
    blob.write(f"{out}/upper.txt", "HELLO BLOX\n")  # same size: a size check cannot see it
    executed, _ = h.run()
    assert executed == []
    monkeypatch.setenv("MLPIPE_REUSE_VERIFY", "full")
    executed, _ = h.run()
    assert executed == ["a"]


@pytest.fixture
def failing(ws, project, run_dag, monkeypatch, any_blob):
    blob = any_blob
    write_script(
        project / "steps" / "f",
        "f.py",
        """
        import os, sys
        os.makedirs(sys.argv[1], exist_ok=True)
        open(os.path.join(sys.argv[1], "partial.txt"), "w").write("half")
        sys.exit(3)
        """,
    )
    out = PipelineData("f_out", datastore=blob.sdk)
    step = PythonScriptStep(
        "f.py",
        name="f",
        arguments=[out],
        outputs=[out],
        source_directory=str(project / "steps" / "f"),
    )
    return Pipeline(ws, [step])


def test_failing_step_leaves_no_upload_and_no_entry(failing, run_dag, any_blob, ws):
    blob = any_blob
    from mlpipe_provider.datastores import open_datastore
    from mlpipe_provider.store import OutputStore

    dag_run, records = run_dag(failing, dag_id="blob_failing")
    assert str(dag_run.state) == "failed"
    assert records["f"][0] == "failed"
    assert not any("partial.txt" in p for p in blob.files())
    assert not any(p.startswith("azureml/") for p in blob.files())
    store = OutputStore(open_datastore(ws._dir, ws._config, "blobstore"))
    assert store.entries() == []


def test_path_on_compute_places_inputs_and_outputs_in_the_working_folder(
    ws, project, run_dag, blob
):
    blob.write("inputs/config.txt", "from blob")
    write_script(project / "steps" / "p", "helper.txt", "a file of the source directory")
    write_script(
        project / "steps" / "p",
        "p.py",
        """
        import os, sys
        # hard-coded relative paths, as v1 scripts that use path_on_compute have
        text = open("data/config.txt").read() + "|" + open("helper.txt").read()
        os.makedirs("results", exist_ok=True)
        open("results/out.txt", "w").write(text)
        assert sys.argv[1] == os.path.abspath("data/config.txt"), sys.argv
        assert sys.argv[2] == os.path.abspath("results"), sys.argv
        """,
    )
    ref = DataReference(
        blob.sdk, data_reference_name="cfg", path_on_datastore="inputs/config.txt"
    ).as_download(path_on_compute="data/config.txt")
    out = PipelineData("res", datastore=blob.sdk, output_path_on_compute="results")
    step = PythonScriptStep(
        "p.py",
        name="p",
        arguments=[ref, out],
        inputs=[ref],
        outputs=[out],
        source_directory=str(project / "steps" / "p"),
    )
    dag_run, records = run_dag(Pipeline(ws, [step]), dag_id="blob_poc")
    assert str(dag_run.state) == "success", records
    location = _record(records, "p")["outputs"]["res"]
    assert blob.read(f"{location['path']}/out.txt") == b"from blob|a file of the source directory"
    assert not (project / "steps" / "p" / "results").exists()  # the source folder is untouched


def test_path_on_compute_cannot_leave_the_working_folder(ws, project, run_dag, blob):
    from mlpipe_provider.errors import PipelineValidationError, UserErrorException
    from mlpipe_provider.runtime.staging import StepData
    from mlpipe_provider.runtime.step_context import StepWorkspace

    write_script(project / "steps" / "q", "q.py", "print('must not run')\n")
    ref = DataReference(
        blob.sdk, data_reference_name="cfg", path_on_datastore="inputs/config.txt"
    ).as_download(path_on_compute="../escape.txt")
    step = PythonScriptStep(
        "q.py", name="q", inputs=[ref], source_directory=str(project / "steps" / "q")
    )
    with pytest.raises(PipelineValidationError, match="path_on_compute"):
        run_dag(Pipeline(ws, [step]), dag_id="blob_poc_escape")
    # and at run time too, for a DAG file written by hand
    data = StepData(StepWorkspace.for_operator(str(ws._dir), None), "q", "run-1")
    try:
        for bad in ("../escape.txt", "/etc/passwd"):
            with pytest.raises(UserErrorException, match="step 'q', input 'cfg' path_on_compute"):
                data.working_place(bad, "input 'cfg'")
        data.working_place("data", "input 'cfg'")
        with pytest.raises(UserErrorException, match="overlaps input 'cfg'"):
            data.working_place("data/inner", "output 'out'")
    finally:
        data.close()


def test_a_local_input_feeds_a_blob_output_with_a_local_default_datastore(
    ws, project, run_dag, monkeypatch, azurite
):
    blob = Blob(ws, azurite, default=False)
    local = ws.get_default_datastore()
    root = ws._dir / "datastores" / "workspaceblobstore"
    (root / "inputs").mkdir(parents=True)
    (root / "inputs" / "text.txt").write_text("local bytes\n")
    h = Harness(ws, project, run_dag, monkeypatch, blob, data_store=local)
    executed, records = h.run(dag_id="mixed")
    assert executed == ["a", "b"]
    out = _record(records, "b")["outputs"]["b_out"]
    assert out["datastore"] == "blobstore"
    assert blob.read(f"{out['path']}/twice.txt") == b"LOCAL BYTES\n" * 2
    # run records stay on the local default datastore; no output folder was made there
    assert (
        root / "azureml" / _record(records, "b")["step_run_id"] / ".mlpipe" / "run.json"
    ).is_file()
    assert not (root / out["path"]).exists()
    executed, _ = h.run(dag_id="mixed")
    assert executed == []


def test_remote_digest_equals_the_local_digest_of_the_same_bytes(any_blob, tmp_path):
    blob = any_blob
    layout = {
        "a.txt": b"alpha",
        "sub/b.bin": bytes(range(256)) * 40,
        "sub/deeper/c.txt": b"",
        "__pycache__/x.pyc": b"ignored on both sides",
    }
    for rel, data in layout.items():
        (tmp_path / "tree" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / rel).write_bytes(data)
        blob.write(f"tree/{rel}", data)
    local = digest_path(tmp_path / "tree", StatCache(None))
    cache = remote_digest.RemoteDigestCache(tmp_path / "cache.sqlite")
    remote = remote_digest.digest_remote(blob.access, "tree", cache)
    assert remote.digest == local.digest and remote.files == local.files
    one = remote_digest.digest_remote(blob.access, "tree/sub/b.bin", cache)
    assert one.digest == digest_path(tmp_path / "tree/sub/b.bin", StatCache(None)).digest
    assert remote_digest.digest_remote(blob.access, "nothing/here", cache) is None


def test_no_change_fingerprint_of_200_blobs_downloads_nothing(
    ws, project, run_dag, monkeypatch, any_blob
):
    blob = any_blob
    for i in range(200):
        blob.write(f"many/part-{i:03d}.txt", f"row {i}\n" * 10)
    write_script(
        project / "steps" / "m",
        "m.py",
        """
        import os, sys
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("m\\n")
        assert len(os.listdir(sys.argv[1])) == 200
        """,
    )
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(project / "calls.log"))
    ref = DataReference(blob.sdk, data_reference_name="many", path_on_datastore="many")
    step = PythonScriptStep(
        "m.py",
        name="m",
        arguments=[ref],
        inputs=[ref],
        source_directory=str(project / "steps" / "m"),
    )
    pipeline = Pipeline(ws, [step])
    remote_digest.STATS.clear()
    dag_run, _ = run_dag(pipeline, dag_id="many_blobs")
    assert str(dag_run.state) == "success"
    assert remote_digest.STATS["files_read"] == 200  # digested once; later checks hit the cache

    remote_digest.STATS.clear()
    started = time.perf_counter()
    dag_run, records = run_dag(pipeline, dag_id="many_blobs")
    elapsed = time.perf_counter() - started
    assert str(dag_run.state) == "success" and records["m"][0] == "skipped"
    assert remote_digest.STATS["files_read"] == 0 and remote_digest.STATS["bytes_read"] == 0
    print(f"no-change run over 200 blobs: {elapsed:.2f} s, 0 blobs read")

    blob.write("many/part-007.txt", "row 7 changed\n")
    remote_digest.STATS.clear()
    dag_run, records = run_dag(pipeline, dag_id="many_blobs")
    assert records["m"][0] == "success"
    assert remote_digest.STATS["files_read"] == 1  # only the changed blob is read to digest it


def test_a_datastore_outage_is_retried_then_reported_without_secrets(blob, azurite, monkeypatch):
    import threading

    from mlpipe_provider.errors import DatastoreError
    from mlpipe_provider.runtime.transfer.retry import Retrier

    blob.write("outage/a.txt", "x")
    # up to ~30 s of backoff: Azurite (node) can take several seconds to come back on a loaded
    # machine, and this half only asserts that the outage is ridden out
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "7")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.5")
    call = Retrier("reader", blob.access)
    azurite.stop()
    try:
        restart = threading.Timer(1.5, azurite.start)
        restart.start()
        listed = remote_digest.list_tree(blob.access, "outage", call=call)
        restart.join()
        assert [f.rel for f in listed] == ["a.txt"]

        azurite.stop()
        monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "3")
        monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.1")
        started = time.monotonic()
        with pytest.raises(DatastoreError) as caught:
            remote_digest.list_tree(blob.access, "outage", call=call)
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert "step 'reader'" in message and "'blobstore'" in message and "list" in message
        assert "failed 3 times" in message
        assert ACCOUNT_KEY not in message
    finally:
        if azurite.process is None:
            azurite.start()


def test_file_dataset_on_blob_is_downloaded_and_fingerprinted_by_content(
    ws, project, run_dag, monkeypatch, blob
):
    from mlpipe_provider.sdk import Dataset

    blob.write("ds/one.csv", "a,b\n1,2\n")
    blob.write("ds/nested/two.csv", "a,b\n3,4\n")
    blob.write("ds/skip.txt", "not csv")
    write_script(
        project / "steps" / "d",
        "d.py",
        """
        import os, sys
        from mlpipe_provider.sdk import Run
        open(os.environ["MLPIPE_TEST_CALLS"], "a").write("d\\n")
        folder = Run.get_context().input_datasets["tables"]
        found = sorted(
            os.path.relpath(os.path.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs
        )
        assert found == ["nested/two.csv", "one.csv"], found
        """,
    )
    calls = project / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    dataset = Dataset.File.from_files((blob.sdk, "ds/**/*.csv"))
    assert sorted(dataset.to_path()) == ["/nested/two.csv", "/one.csv"]
    step = PythonScriptStep(
        "d.py",
        name="d",
        inputs=[dataset.as_named_input("tables").as_download()],
        source_directory=str(project / "steps" / "d"),
    )
    pipeline = Pipeline(ws, [step])
    for expected, change in ((["d"], None), ([], None), (["d"], "ds/one.csv")):
        if change:
            blob.write(change, "a,b\n9,9\n")
        calls.write_text("")
        dag_run, records = run_dag(pipeline, dag_id="blob_dataset")
        assert str(dag_run.state) == "success", records
        assert calls.read_text().split() == expected


def test_the_seed_program_runs_with_its_default_datastore_on_blob(tmp_path, monkeypatch, azurite):
    """examples/seed as a user runs it (``python seed.py``, embedded Airflow in the background),
    with the workspace's ``workspaceblobstore`` an Azurite container: it uploads its data there,
    trains, and the second run reuses the step."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mlpipe_provider.sdk import Experiment, Workspace

    seed = tmp_path / "seed"
    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(
        repo / "examples" / "seed", seed, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    monkeypatch.chdir(seed)
    ws = Workspace.from_config()
    blob = Blob(ws, azurite, default=False)
    config_file = ws._dir / "config.json"
    config = json.loads(config_file.read_text())
    config["datastores"]["workspaceblobstore"] = config["datastores"]["blobstore"]
    config["default_datastore"] = "workspaceblobstore"
    config_file.write_text(json.dumps(config, indent=2))

    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "seed.py"], cwd=seed, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "PipelineRun Status: Finished" in result.stdout, result.stdout[-3000:]
        outputs.append(result.stdout)
    assert "reused run" not in outputs[0] and "reused run" in outputs[1]
    assert blob.read("20newsgroups/20news.pkl")[:1] == b"\x80"  # uploaded by the program

    ws = Workspace.from_config()
    second, first = list(Experiment(ws, "MyExperiment").get_runs())
    (step,) = first.find_step_run("train.py")
    assert step.get_metrics()["accuracy"] > 0.9
    output = step.get_output_data("output_data1")
    assert output.datastore_name == "workspaceblobstore"
    assert blob.files(output.path_on_datastore) == ["model.json"]
    assert json.loads(blob.read(f"azureml/{step.id}/.mlpipe/run.json"))["step_run_id"] == step.id
    local = Path(output.download(str(tmp_path / "downloaded")))
    assert (local / "model.json").is_file()
    assert not (ws._dir / "datastores" / "workspaceblobstore" / "azureml").exists()


def test_output_dataset_on_blob_is_pruned_before_upload_copied_and_registered(
    ws, project, run_dag, blob
):
    from mlpipe_provider.sdk import Dataset, OutputFileDatasetConfig

    write_script(
        project / "steps" / "o",
        "o.py",
        """
        import os, sys
        out = sys.argv[1]
        os.makedirs(os.path.join(out, "logs"), exist_ok=True)
        open(os.path.join(out, "keep.csv"), "w").write("a\\n1\\n")
        open(os.path.join(out, "logs", "debug.log"), "w").write("noise")
        """,
    )
    out = (
        OutputFileDatasetConfig("result", destination=(blob.sdk, "exports/{output-name}"))
        .as_upload(source_globs=["*.csv"])
        .register_on_complete("blob_result")
    )
    step = PythonScriptStep(
        "o.py", name="o", arguments=[out], source_directory=str(project / "steps" / "o")
    )
    pipeline = Pipeline(ws, [step])
    for expected_state in ("success", "skipped"):
        dag_run, records = run_dag(pipeline, dag_id="blob_output_dataset")
        assert str(dag_run.state) == "success", records
        assert records["o"][0] == expected_state
        blob.fs.rm(blob.full("exports/result/keep.csv"))  # put back when reused
    dag_run, records = run_dag(pipeline, dag_id="blob_output_dataset")
    assert blob.read("exports/result/keep.csv") == b"a\n1\n"
    first_location = records["o"][1]["outputs"]["result"]
    assert blob.files(first_location["path"]) == ["keep.csv"]  # pruned before the upload
    assert first_location["files"] == {"keep.csv": 4}
    registered = Dataset.get_by_name(ws, "blob_result")
    assert registered.to_path() == ["/keep.csv"]
