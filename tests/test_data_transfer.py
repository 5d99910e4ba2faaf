"""``DataTransferStep``: real DAG runs between two local datastores, reuse, and every refusal.

The workspace has its default datastore ``workspaceblobstore`` and a second local one,
``archive``. Transfers go both ways, as single files and as folder trees, to ``DataReference``
and ``PipelineData`` destinations; a script step reads ``get_output()``.
"""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest
from conftest import write_script

from compiler.compile import compile_pipeline
from mlpipe_provider.errors import PipelineValidationError
from mlpipe_provider.hashing import hash_bytes, hash_file_uncached
from mlpipe_provider.runtime.transfer.copy import copy_verified, stream_copy
from mlpipe_provider.runtime.transfer.errors import TransferVerificationError
from mlpipe_provider.runtime.transfer.verify import verify_copy
from mlpipe_provider.sdk import (
    ComputeTarget,
    ComputeTargetException,
    DataFactoryCompute,
    DataReference,
    Datastore,
    DataTransferStep,
    Pipeline,
    PipelineData,
    PythonScriptStep,
)

READ = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("read\\n")
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    if os.path.isdir(src):
        names = sorted(
            os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs
        )
        text = "".join(n + "=" + open(os.path.join(src, n)).read() for n in names)
    else:
        text = open(src).read()
    open(os.path.join(out, "seen.txt"), "w").write(text)
"""


class Stores:
    """The two datastores of the test workspace, as folders."""

    def __init__(self, ws, project: Path, run_dag, monkeypatch):
        self.ws, self.project, self._run_dag = ws, project, run_dag
        self.blob = ws.get_default_datastore()
        self.archive = Datastore.register_local(ws, "archive", "datastores/archive")
        self.calls = project / "calls.log"
        monkeypatch.setenv("MLPIPE_TEST_CALLS", str(self.calls))
        write_script(project / "steps", "read.py", READ)

    def root(self, name: str) -> Path:
        return self.ws._dir / "datastores" / name

    def put(self, store: str, rel: str, data: bytes | str) -> Path:
        path = self.root(store) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def datastore(self, name: str):
        return self.blob if name == "workspaceblobstore" else self.archive

    def reader(self, data, name: str = "read") -> PythonScriptStep:
        seen = PipelineData("seen", datastore=self.blob)
        return PythonScriptStep(
            "read.py",
            name=name,
            arguments=[data, seen],
            inputs=[data],
            outputs=[seen],
            source_directory=str(self.project / "steps"),
        )

    def run(self, *steps, expect: str = "success"):
        self.calls.write_text("")
        dag_run, records = self._run_dag(Pipeline(self.ws, list(steps)), dag_id="transfer")
        assert str(dag_run.state) == expect, records
        return records

    def output_path(self, record: dict, port: str) -> Path:
        location = record["outputs"][port]
        return self.root(location["datastore"]) / location["path"]


@pytest.fixture
def s(ws, project, run_dag, monkeypatch):
    return Stores(ws, project, run_dag, monkeypatch)


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- transfers ------------------------------------------------------------------------------

DIRECTIONS = [("workspaceblobstore", "archive"), ("archive", "workspaceblobstore")]


@pytest.mark.parametrize(("source_store", "dest_store"), DIRECTIONS)
def test_file_transfer_to_a_data_reference(s, source_store, dest_store):
    payload = os.urandom(300_000)
    s.put(source_store, "in/data.bin", payload)
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.datastore(source_store), "raw", "in/data.bin"),
        destination_data_reference=DataReference(s.datastore(dest_store), "copied", "out/data.bin"),
        source_reference_type="file",
        destination_reference_type="file",
    )
    records = s.run(transfer)
    state, record = records["copy"]
    assert state == "success"
    assert (s.root(dest_store) / "out" / "data.bin").read_bytes() == payload
    # the published output: a file in a fresh attempt folder, with the digest of the bytes
    output = record["outputs"]["copied"]
    assert output["datastore"] == dest_store
    assert output["path"].startswith(f"azureml/{record['step_run_id']}/")
    assert output["digest"] == hash_bytes(payload)
    assert s.output_path(record, "copied").read_bytes() == payload
    assert record["transfer"]["destination"]["files_written"] == 1


@pytest.mark.parametrize(("source_store", "dest_store"), DIRECTIONS)
def test_directory_transfer_to_a_data_reference_keeps_relative_paths(s, source_store, dest_store):
    files = {"a.csv": "1,2\n", "nested/b.csv": "3,4\n", "nested/deeper/c.txt": "five"}
    for rel, text in files.items():
        s.put(source_store, f"tree/{rel}", text)
    s.put(dest_store, "mirror/kept.txt", "already there")  # a directory destination is merged into
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.datastore(source_store), "tree", "tree"),
        destination_data_reference=DataReference(s.datastore(dest_store), "mirror", "mirror"),
    )
    records = s.run(transfer)
    expected = {rel: text.encode() for rel, text in files.items()}
    assert tree(s.root(dest_store) / "mirror") == {**expected, "kept.txt": b"already there"}
    assert tree(s.output_path(records["copy"][1], "mirror")) == expected
    assert records["copy"][1]["transfer"]["files"] == 3


def test_file_into_a_directory_destination_keeps_its_name(s):
    s.put("workspaceblobstore", "in/report.csv", "x,y\n")
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "report", "in/report.csv"),
        destination_data_reference=DataReference(s.archive, "reports", "reports"),
        destination_reference_type="directory",
    )
    s.run(transfer)
    assert (s.root("archive") / "reports" / "report.csv").read_text() == "x,y\n"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_pipeline_data_destination_feeds_a_script_through_get_output(s, kind):
    if kind == "file":
        s.put("archive", "in/notes.txt", "hello transfer")
        source = DataReference(s.archive, "notes", "in/notes.txt")
        expected = "hello transfer"
    else:
        s.put("archive", "in/dir/one.txt", "1")
        s.put("archive", "in/dir/sub/two.txt", "2")
        source = DataReference(s.archive, "notes", "in/dir")
        expected = "one.txt=1sub/two.txt=2"
    copied = PipelineData("copied", datastore=s.blob)
    transfer = DataTransferStep(
        name="copy", source_data_reference=source, destination_data_reference=copied
    )
    assert transfer.get_output() is copied
    records = s.run(s.reader(transfer.get_output()))  # the transfer comes in through the data
    assert records["copy"][0] == "success"
    assert (s.output_path(records["read"][1], "seen") / "seen.txt").read_text() == expected
    assert s.calls.read_text().split() == ["read"]


def test_get_output_of_a_data_reference_destination_feeds_a_script(s):
    s.put("workspaceblobstore", "in/msg.txt", "via archive")
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "msg", "in/msg.txt"),
        destination_data_reference=DataReference(s.archive, "archived", "kept/msg.txt"),
    )
    output = transfer.get_output()
    assert isinstance(output, PipelineData) and output.name == "archived"
    records = s.run(s.reader(output))
    assert (s.output_path(records["read"][1], "seen") / "seen.txt").read_text() == "via archive"
    state, read = records["read"]
    assert state == "success" and not read.get("reused")


def test_a_pipeline_data_source_from_an_upstream_step(s):
    s.put("workspaceblobstore", "in/msg.txt", "from upstream")
    first = s.reader(DataReference(s.blob, "msg", "in/msg.txt"), name="first")
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=first._outputs[0],
        destination_data_reference=DataReference(s.archive, "seen_copy", "copies/seen"),
    )
    s.run(transfer)
    assert (s.root("archive") / "copies" / "seen" / "seen.txt").read_text() == "from upstream"


# --- reuse ----------------------------------------------------------------------------------


def _reuse_pipeline(s):
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "raw", "in/data.txt"),
        destination_data_reference=DataReference(s.archive, "archived", "out/data.txt"),
        compute_target=DataFactoryCompute(s.ws, "adf"),
    )
    return s.reader(transfer.get_output())


def test_second_identical_run_reuses_and_changed_source_bytes_transfer_again(s):
    ComputeTarget.create(s.ws, "adf", DataFactoryCompute.provisioning_configuration())
    s.put("workspaceblobstore", "in/data.txt", "version one")
    first = s.run(_reuse_pipeline(s))
    assert first["copy"][0] == "success" and s.calls.read_text().split() == ["read"]

    second = s.run(_reuse_pipeline(s))
    assert second["copy"][0] == "skipped"
    reused = second["copy"][1]
    assert reused["reused"]
    assert reused["reused_run_id"] == first["copy"][1]["step_run_id"]
    assert reused["outputs"] == first["copy"][1]["outputs"]
    assert second["read"][0] == "skipped" and s.calls.read_text() == ""

    s.put("workspaceblobstore", "in/data.txt", "version two")  # same size, other bytes
    third = s.run(_reuse_pipeline(s))
    assert third["copy"][0] == "success"
    assert third["copy"][1]["step_run_id"] != first["copy"][1]["step_run_id"]
    assert (s.root("archive") / "out" / "data.txt").read_text() == "version two"
    assert s.calls.read_text().split() == ["read"]
    assert (s.output_path(third["read"][1], "seen") / "seen.txt").read_text() == "version two"


def test_a_reused_transfer_puts_back_a_destination_changed_since(s):
    s.put("workspaceblobstore", "in/data.txt", "the real bytes")
    first = s.run(_reuse_pipeline_no_compute(s))
    dest = s.root("archive") / "out" / "data.txt"
    dest.write_text("tampered bytes")  # same size, changed in place
    second = s.run(_reuse_pipeline_no_compute(s))
    assert second["copy"][0] == "skipped"  # still reused: the source did not change
    assert second["copy"][1]["reused_run_id"] == first["copy"][1]["step_run_id"]
    assert dest.read_text() == "the real bytes"
    dest.unlink()
    s.run(_reuse_pipeline_no_compute(s))
    assert dest.read_text() == "the real bytes"
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".mlpipe-partial-")]


def _reuse_pipeline_no_compute(s):
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "raw", "in/data.txt"),
        destination_data_reference=DataReference(s.archive, "archived", "out/data.txt"),
    )
    return s.reader(transfer.get_output())


def test_a_reused_directory_transfer_restores_only_the_files_that_changed(s):
    s.put("archive", "src/a.txt", "a")
    s.put("archive", "src/sub/b.txt", "b")

    def pipeline():
        return DataTransferStep(
            name="copy",
            source_data_reference=DataReference(s.archive, "src", "src"),
            destination_data_reference=DataReference(s.blob, "dst", "dst"),
        )

    s.run(pipeline())
    dest = s.root("workspaceblobstore") / "dst"
    (dest / "sub" / "b.txt").unlink()
    untouched = (dest / "a.txt").stat().st_ino
    (dest / "extra.txt").write_text("someone else's file")
    assert s.run(pipeline())["copy"][0] == "skipped"
    assert tree(dest) == {"a.txt": b"a", "sub/b.txt": b"b", "extra.txt": b"someone else's file"}
    assert (dest / "a.txt").stat().st_ino == untouched  # a current file is not rewritten


def test_allow_reuse_false_always_transfers(s):
    s.put("workspaceblobstore", "in/data.txt", "x")

    def pipeline():
        return DataTransferStep(
            name="copy",
            source_data_reference=DataReference(s.blob, "raw", "in/data.txt"),
            destination_data_reference=PipelineData("copied", datastore=s.archive),
            allow_reuse=False,
        )

    s.run(pipeline())
    assert s.run(pipeline())["copy"][0] == "success"


# --- run-time refusals ----------------------------------------------------------------------


def test_a_symlink_out_of_the_destination_datastore_is_refused(s, tmp_path):
    s.put("workspaceblobstore", "in/data.txt", "secret-free")
    outside = tmp_path / "outside"
    outside.mkdir()
    (s.root("archive")).mkdir(parents=True, exist_ok=True)
    (s.root("archive") / "escape").symlink_to(outside, target_is_directory=True)
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "raw", "in/data.txt"),
        destination_data_reference=DataReference(s.archive, "archived", "escape/data.txt"),
    )
    records = s.run(transfer, expect="failed")
    assert records["copy"][0] == "failed"
    assert list(outside.iterdir()) == []


def test_a_symlinked_source_file_pointing_out_of_its_datastore_is_refused(s, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not in any datastore")
    s.put("workspaceblobstore", "in/dir/ok.txt", "ok")
    (s.root("workspaceblobstore") / "in" / "dir" / "link.txt").symlink_to(secret)
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "raw", "in/dir"),
        destination_data_reference=DataReference(s.archive, "archived", "out"),
    )
    records = s.run(transfer, expect="failed")
    assert records["copy"][0] == "failed"
    assert not (s.root("archive") / "out" / "link.txt").exists()


def test_a_source_of_the_wrong_type_fails_the_task(s):
    s.put("workspaceblobstore", "in/dir/a.txt", "a")
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(s.blob, "raw", "in/dir"),
        destination_data_reference=PipelineData("copied", datastore=s.archive),
        source_reference_type="file",
    )
    records = s.run(transfer, expect="failed")
    assert records["copy"][0] == "failed"


# --- the copy and its verification, directly ---------------------------------------------------


def test_verify_copy_refuses_a_file_that_differs_from_what_was_read(tmp_path):
    fs = fsspec.filesystem("file")
    landed = tmp_path / "landed.bin"
    landed.write_bytes(b"what landed")
    assert verify_copy(hash_bytes(b"what landed"), fs, str(landed), what="t") == hash_bytes(
        b"what landed"
    )
    with pytest.raises(TransferVerificationError, match="does not match what was read"):
        verify_copy(hash_bytes(b"what was read"), fs, str(landed), what="step 'copy'")


def test_stream_copy_reads_in_chunks_and_digests_like_the_hashing_module(tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)  # above the mmap threshold, not a chunk multiple
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    local = fsspec.filesystem("file")

    class Counting:
        """Wraps a filesystem to record every read size."""

        def __init__(self, fs):
            self.fs, self.reads = fs, []

        def open(self, path, mode, **kwargs):
            handle = self.fs.open(path, mode, **kwargs)
            original = handle.read

            def read(n=-1):
                self.reads.append(n)
                return original(n)

            handle.read = read
            return handle

    counting = Counting(local)
    digest, size = stream_copy(counting, str(src), local, str(tmp_path / "dst.bin"), 1 << 20)
    assert size == len(payload)
    assert digest == hash_file_uncached(src) == hash_bytes(payload)
    assert counting.reads and all(0 < n <= 1 << 20 for n in counting.reads)
    assert (tmp_path / "dst.bin").read_bytes() == payload


def test_copy_verified_works_with_another_fsspec_filesystem(tmp_path):
    memory = fsspec.filesystem("memory")
    src = tmp_path / "src.txt"
    src.write_text("to memory and back")
    local = fsspec.filesystem("file")
    digest, _ = copy_verified(
        local, str(src), memory, "/mlpipe-test/a/b.txt", what="t", replace=True
    )
    assert memory.cat_file("/mlpipe-test/a/b.txt") == b"to memory and back"
    assert [p for p in memory.ls("/mlpipe-test/a", detail=False)] == ["/mlpipe-test/a/b.txt"]
    back = tmp_path / "back.txt"
    assert (
        copy_verified(memory, "/mlpipe-test/a/b.txt", local, str(back), what="t", replace=False)[0]
        == digest
    )
    memory.rm("/mlpipe-test", recursive=True)


# --- SDK ----------------------------------------------------------------------------------------


def test_data_factory_compute_registers_a_local_target(ws):
    with pytest.raises(ComputeTargetException):
        DataFactoryCompute(ws, "adf")
    ComputeTarget.create(ws, "adf", DataFactoryCompute.provisioning_configuration())
    target = ws._config.compute_targets["adf"]
    assert (target.backend, target.compute_type) == ("local", "DataFactory")
    fetched = DataFactoryCompute(ws, "adf")
    assert fetched.type == "DataFactory" and fetched.gpu_count == 0
    ComputeTarget.attach(ws, "adf2", DataFactoryCompute.attach_configuration("rg", "factory"))
    assert ws._config.compute_targets["adf2"].compute_type == "DataFactory"


# --- compile-time refusals --------------------------------------------------------------------


def problems_of(s, *steps) -> list[str]:
    pipeline = Pipeline(s.ws, list(steps))
    problems = pipeline.validate()
    with pytest.raises(PipelineValidationError):
        compile_pipeline(pipeline, "refused", s.project / "refused-dags")
    assert not (s.project / "refused-dags").exists()
    return problems


def the_problem(problems: list[str], *fragments: str) -> str:
    matching = [p for p in problems if all(f in p for f in fragments)]
    assert len(matching) == 1, (fragments, problems)
    return matching[0]


def transfer(s, **kwargs) -> DataTransferStep:
    kwargs.setdefault("source_data_reference", DataReference(s.blob, "raw", "in/data.txt"))
    kwargs.setdefault(
        "destination_data_reference", DataReference(s.archive, "archived", "out/data.txt")
    )
    return DataTransferStep(name="t", **kwargs)


def test_missing_source_and_destination(s):
    problems = problems_of(
        s, DataTransferStep(name="t", source_data_reference=None, destination_data_reference=None)
    )
    the_problem(problems, "step 't', field 'source_data_reference'", "is required")
    the_problem(problems, "step 't', field 'destination_data_reference'", "is required")
    with pytest.raises(Exception, match="get_output"):
        DataTransferStep(name="t").get_output()


def test_source_and_destination_of_the_wrong_type(s):
    problems = problems_of(
        s, transfer(s, source_data_reference="in/data.txt", destination_data_reference=42)
    )
    the_problem(problems, "field 'source_data_reference'", "got str")
    the_problem(problems, "field 'destination_data_reference'", "got int")


def test_unknown_datastores_on_either_side(s):
    problems = problems_of(
        s,
        transfer(
            s,
            source_data_reference=DataReference("nowhere", "raw", "in/data.txt"),
            destination_data_reference=DataReference("nothere", "archived", "out/data.txt"),
        ),
    )
    the_problem(problems, "step 't', field 'source_data_reference'", "unknown datastore 'nowhere'")
    the_problem(
        problems, "step 't', field 'destination_data_reference'", "unknown datastore 'nothere'"
    )
    assert len(problems) == 2, problems


@pytest.mark.parametrize("field", ["source_reference_type", "destination_reference_type"])
def test_bad_reference_type(s, field):
    problems = problems_of(s, transfer(s, **{field: "folder"}))
    the_problem(problems, f"step 't', field '{field}'", "'file' or 'directory'", "'folder'")


def test_directory_source_to_file_destination(s):
    problems = problems_of(
        s, transfer(s, source_reference_type="directory", destination_reference_type="file")
    )
    the_problem(problems, "field 'destination_reference_type'", "'directory'")


def test_source_pipeline_data_that_no_step_produces(s):
    problems = problems_of(s, transfer(s, source_data_reference=PipelineData("orphan")))
    the_problem(
        problems, "step 't', field 'source_data_reference'", "'orphan'", "not produced by any step"
    )


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("../outside.txt", "'..'"),
        ("/etc/passwd", "absolute"),
        (None, "root of datastore"),
        ("azureml/some-run/out", "'azureml'"),
        ("mlpipe-store/v1/x", "'mlpipe-store'"),
    ],
)
def test_destination_paths_that_are_refused(s, path, fragment):
    problems = problems_of(
        s, transfer(s, destination_data_reference=DataReference(s.archive, "archived", path))
    )
    the_problem(problems, "step 't', field 'destination_data_reference'", fragment)


def test_destination_overlapping_the_source(s):
    problems = problems_of(
        s,
        transfer(
            s,
            source_data_reference=DataReference(s.blob, "raw", "data"),
            destination_data_reference=DataReference(s.blob, "copy", "data/copy"),
        ),
    )
    the_problem(problems, "field 'destination_data_reference'", "overlaps the source")


def test_source_at_the_datastore_root(s):
    problems = problems_of(s, transfer(s, source_data_reference=DataReference(s.blob, "all")))
    the_problem(problems, "field 'source_data_reference'", "root of datastore")


@pytest.mark.parametrize(
    ("target", "fragment"),
    [("gpu", "1 GPU(s)"), ("docker-target", "'docker'"), ("nope", "does not exist")],
)
def test_compute_targets_that_cannot_run_a_transfer(s, target, fragment):
    from mlpipe_provider.sdk import AmlCompute

    ComputeTarget.create(s.ws, "gpu", AmlCompute.provisioning_configuration("STANDARD_NC6"))
    ComputeTarget.create(
        s.ws,
        "docker-target",
        AmlCompute.provisioning_configuration("STANDARD_D2_V2", backend="docker"),
    )
    problems = problems_of(s, transfer(s, compute_target=target))
    the_problem(problems, "step 't', field 'compute_target'", fragment)


def test_a_data_factory_or_local_cpu_target_compiles(s, project):
    ComputeTarget.create(s.ws, "adf", DataFactoryCompute.provisioning_configuration())
    for target in ("adf", None, "local", "STANDARD_D2_V2"):
        assert Pipeline(s.ws, [transfer(s, compute_target=target)]).validate() == []
