"""``DataTransferStep`` between a local datastore and Azure Blob containers, on Azurite.

Real ``dag.test`` runs for each direction (local -> blob, blob -> local, blob -> blob in one
container and across two), with folders of nested files and a 20 MB file checked byte for byte;
the digests recorded while streaming equal a fresh digest of the data; a blob default datastore
keeps the run record in the container; reuse and re-run after an in-place change; a missing
source blob; and an outage of the blob service: retried, then a clear, secret-free error that
leaves no destination behind.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from pathlib import Path

import adlfs
import fsspec
import pytest
from azurite import ACCOUNT_KEY, register_blob_datastore

from mlpipe_provider import remote_digest
from mlpipe_provider.config import load_config
from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.hashing import (
    StatCache,
    digest_path,
    hash_bytes,
    stat_cache_path,
    tree_digest,
)
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.runtime.transfer.copy import copy_verified
from mlpipe_provider.runtime.transfer.errors import TransferError
from mlpipe_provider.runtime.transfer.filesystems import DIGEST_METADATA_KEY
from mlpipe_provider.runtime.transfer.retry import bound_sdk_retries, with_retries
from mlpipe_provider.sdk import (
    DataReference,
    Datastore,
    DataTransferStep,
    Pipeline,
    PipelineData,
)

BIG = 20 * 1024 * 1024 + 12345  # above the 8 MiB chunk, not a multiple of it


@pytest.fixture(scope="module")
def big_payload() -> bytes:
    return os.urandom(BIG)


class Env:
    """A workspace with a local datastore ``archive`` and two Azurite containers."""

    def __init__(self, ws, azurite, run_dag, *, blob_default: bool = False):
        self.ws, self.azurite, self._run_dag = ws, azurite, run_dag
        self.archive = Datastore.register_local(ws, "archive", "datastores/archive")
        self.blob = register_blob_datastore(ws, azurite, "blobstore", default=blob_default)
        self.other = register_blob_datastore(ws, azurite, "otherblob")
        self.fs = adlfs.AzureBlobFileSystem(
            connection_string=azurite.connection_string, skip_instance_cache=True
        )

    # local files
    def local(self, rel: str) -> Path:
        return self.ws._dir / "datastores" / "archive" / rel

    def put_local(self, rel: str, data: bytes | str) -> None:
        path = self.local(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    # blobs
    def container(self, store) -> str:
        return store.container_name

    def put_blob(self, store, rel: str, data: bytes | str) -> None:
        self.fs.pipe_file(
            f"{self.container(store)}/{rel}", data.encode() if isinstance(data, str) else data
        )

    def blob_tree(self, store, rel: str) -> dict[str, bytes]:
        base = f"{self.container(store)}/{rel}".rstrip("/")
        self.fs.invalidate_cache()
        return {
            path[len(base) + 1 :]: self.fs.cat_file(path)
            for path in sorted(self.fs.find(base))
            if not path.endswith("/")
        }

    def blob_bytes(self, store, rel: str) -> bytes:
        self.fs.invalidate_cache()
        return self.fs.cat_file(f"{self.container(store)}/{rel}")

    def blob_exists(self, store, rel: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.exists(f"{self.container(store)}/{rel}")

    def run(self, *steps, expect: str = "success", dag_id: str = "blob_transfer"):
        """Run the pipeline; returns (records, the task log printed by ``dag.test``)."""
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            dag_run, records = self._run_dag(Pipeline(self.ws, list(steps)), dag_id=dag_id)
        log = buffer.getvalue()
        assert str(dag_run.state) == expect, (records, log[-4000:])
        return records, log


@pytest.fixture
def env(ws, azurite, run_dag, monkeypatch):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.05")
    return Env(ws, azurite, run_dag)


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def sample_tree(big: bytes) -> dict[str, bytes]:
    return {
        "a.csv": b"x,y\n1,2\n",
        "nested/b.txt": b"bee",
        "nested/deeper/c.json": b'{"c": 3}',
        "nested/deeper/big.bin": big,
        "empty.txt": b"",
    }


def expected_digest(files: dict[str, bytes]) -> str:
    return tree_digest((rel, len(data), hash_bytes(data)) for rel, data in files.items())


# --- each direction ---------------------------------------------------------------------------


def test_folder_from_local_to_a_blob_data_reference(env, big_payload):
    files = sample_tree(big_payload)
    for rel, data in files.items():
        env.put_local(f"tree/{rel}", data)
    env.put_blob(
        env.blob, "mirror/kept.txt", "already there"
    )  # a folder destination is merged into
    step = DataTransferStep(
        name="upload",
        source_data_reference=DataReference(env.archive, "tree", "tree"),
        destination_data_reference=DataReference(env.blob, "mirror", "mirror"),
        source_reference_type="directory",
    )
    records, log = env.run(step)
    state, record = records["upload"]
    assert state == "success"
    assert env.blob_tree(env.blob, "mirror") == {**files, "kept.txt": b"already there"}
    output = record["outputs"]["mirror"]
    assert output["datastore"] == "blobstore"
    assert output["path"].startswith(f"azureml/{record['step_run_id']}/")
    assert env.blob_tree(env.blob, output["path"]) == files
    # digested while streaming, and equal to the local digest of the source folder
    assert output["digest"] == expected_digest(files)
    assert output["digest"] == digest_path(env.local("tree"), StatCache(None)).digest
    assert output["files"] == {rel: len(data) for rel, data in files.items()}
    info = env.fs.info(f"{env.container(env.blob)}/mirror/nested/deeper/big.bin")
    assert info["metadata"][DIGEST_METADATA_KEY] == hash_bytes(big_payload)
    assert record["transfer"]["destination"]["files_written"] == len(files)
    assert ACCOUNT_KEY not in log
    # the transfer remembered what it wrote: digesting the destination now costs one listing
    store = StepWorkspace(ws_dir := env.ws._dir, load_config(ws_dir)).datastore("blobstore")
    cache = remote_digest.RemoteDigestCache(stat_cache_path(ws_dir))
    before = remote_digest.STATS["bytes_read"]
    digest = remote_digest.digest_remote(store, "mirror", cache).digest
    cache.close()
    assert digest == expected_digest({**files, "kept.txt": b"already there"})
    assert remote_digest.STATS["bytes_read"] - before == len(b"already there")


def test_folder_from_a_blob_to_a_local_data_reference(env, big_payload):
    files = sample_tree(big_payload)
    for rel, data in files.items():
        env.put_blob(env.blob, f"raw/{rel}", data)
    step = DataTransferStep(
        name="download",
        source_data_reference=DataReference(env.blob, "raw", "raw"),
        destination_data_reference=DataReference(env.archive, "landed", "landed"),
    )
    records, _ = env.run(step)
    record = records["download"][1]
    assert tree(env.local("landed")) == files
    output = record["outputs"]["landed"]
    assert output["datastore"] == "archive" and output["digest"] == expected_digest(files)
    assert tree(env.local(output["path"])) == files
    assert not list(env.local("landed").rglob(".mlpipe-partial-*"))


@pytest.mark.parametrize("direction", ["local-to-blob", "blob-to-local"])
def test_a_file_to_a_pipeline_data_destination(env, big_payload, direction):
    if direction == "local-to-blob":
        env.put_local("in/big.bin", big_payload)
        source = DataReference(env.archive, "big", "in/big.bin")
        target_store = env.blob
    else:
        env.put_blob(env.blob, "in/big.bin", big_payload)
        source = DataReference(env.blob, "big", "in/big.bin")
        target_store = env.archive
    copied = PipelineData("copied", datastore=target_store)
    step = DataTransferStep(
        name="copy",
        source_data_reference=source,
        destination_data_reference=copied,
        source_reference_type="file",
    )
    records, _ = env.run(step)
    output = records["copy"][1]["outputs"]["copied"]
    assert output["digest"] == hash_bytes(big_payload)
    assert output["files"] == {"": BIG}
    if direction == "local-to-blob":
        assert env.blob_bytes(env.blob, output["path"]) == big_payload
    else:
        assert env.local(output["path"]).read_bytes() == big_payload


@pytest.mark.parametrize("across", [False, True], ids=["same-container", "two-containers"])
def test_blob_to_blob(env, across):
    files = {"one.txt": b"1", "sub/two.txt": b"22", "sub/deep/three.bin": os.urandom(70_000)}
    for rel, data in files.items():
        env.put_blob(env.blob, f"src/{rel}", data)
    target = env.other if across else env.blob
    step = DataTransferStep(
        name="b2b",
        source_data_reference=DataReference(env.blob, "src", "src"),
        destination_data_reference=DataReference(target, "dst", "copies/dst"),
    )
    records, _ = env.run(step)
    assert env.blob_tree(target, "copies/dst") == files
    assert records["b2b"][1]["outputs"]["dst"]["digest"] == expected_digest(files)
    # a file into a folder destination keeps its name
    single = DataTransferStep(
        name="b2b_file",
        source_data_reference=DataReference(env.blob, "two", "src/sub/two.txt"),
        destination_data_reference=DataReference(target, "dir", "single"),
        destination_reference_type="directory",
    )
    env.run(single, dag_id="blob_transfer_file")
    assert env.blob_bytes(target, "single/two.txt") == b"22"


def test_a_blob_default_datastore_keeps_the_run_record_in_its_container(
    ws, azurite, run_dag, monkeypatch
):
    env = Env(ws, azurite, run_dag, blob_default=True)
    assert ws.get_default_datastore().name == "blobstore"
    env.put_local("in/notes.txt", "to the default store")
    step = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(env.archive, "notes", "in/notes.txt"),
        destination_data_reference=PipelineData("copied", datastore=env.blob),
    )
    records, _ = env.run(step)
    record = records["copy"][1]
    assert record["run_folder"]["datastore"] == "blobstore"
    run_json = env.blob_bytes(env.blob, f"{record['run_folder']['path']}/.mlpipe/run.json")
    assert b'"step_name": "copy"' in run_json
    assert ACCOUNT_KEY.encode() not in run_json
    assert env.blob_bytes(env.blob, record["outputs"]["copied"]["path"]) == b"to the default store"
    assert not (ws._dir / env.container(env.blob)).exists()  # nothing written to a local look-alike


# --- reuse (needs runtime/reuse.py to digest remote inputs and verify remote outputs) -------------


def _upload_pipeline(env):
    return DataTransferStep(
        name="upload",
        source_data_reference=DataReference(env.archive, "tree", "tree"),
        destination_data_reference=DataReference(env.blob, "mirror", "mirror"),
    )


def _download_pipeline(env):
    return DataTransferStep(
        name="download",
        source_data_reference=DataReference(env.blob, "raw", "raw"),
        destination_data_reference=DataReference(env.archive, "landed", "landed"),
    )


def test_local_to_blob_is_reused_then_runs_again_after_an_in_place_change(env):
    env.put_local("tree/a.txt", "version one")
    env.put_local("tree/sub/b.txt", "bee")
    first, _ = env.run(_upload_pipeline(env))
    assert first["upload"][0] == "success"
    second, log = env.run(_upload_pipeline(env))
    assert second["upload"][0] == "skipped", log[-3000:]
    assert second["upload"][1]["reused_run_id"] == first["upload"][1]["step_run_id"]
    env.put_local("tree/a.txt", "version two")  # same size, other bytes
    third, _ = env.run(_upload_pipeline(env))
    assert third["upload"][0] == "success"
    assert env.blob_bytes(env.blob, "mirror/a.txt") == b"version two"


def test_blob_to_local_is_reused_then_runs_again_after_a_blob_changes_in_place(env):
    env.put_blob(env.blob, "raw/a.txt", "version one")
    env.put_blob(env.blob, "raw/sub/b.txt", "bee")
    first, _ = env.run(_download_pipeline(env))
    assert first["download"][0] == "success"
    second, log = env.run(_download_pipeline(env))
    assert second["download"][0] == "skipped", log[-3000:]
    env.put_blob(env.blob, "raw/a.txt", "version two")  # rewritten in place, same size
    third, _ = env.run(_download_pipeline(env))
    assert third["download"][0] == "success"
    assert third["download"][1]["step_run_id"] != first["download"][1]["step_run_id"]
    assert env.local("landed/a.txt").read_text() == "version two"


def test_a_reused_transfer_restores_a_blob_destination_changed_since(env):
    env.put_local("tree/a.txt", "the real bytes")
    env.put_local("tree/sub/b.txt", "bee")
    env.run(_upload_pipeline(env))
    env.put_blob(env.blob, "mirror/a.txt", "tampered bytes")  # same size, changed in place
    env.fs.rm(f"{env.container(env.blob)}/mirror/sub/b.txt")
    second, _ = env.run(_upload_pipeline(env))
    assert second["upload"][0] == "skipped"
    assert env.blob_tree(env.blob, "mirror") == {"a.txt": b"the real bytes", "sub/b.txt": b"bee"}


# --- failures --------------------------------------------------------------------------------


def test_a_missing_source_blob_names_the_step_and_the_field(env):
    step = DataTransferStep(
        name="download",
        source_data_reference=DataReference(env.blob, "raw", "raw/missing.bin"),
        destination_data_reference=DataReference(env.archive, "landed", "landed.bin"),
    )
    records, log = env.run(step, expect="failed")
    assert "upstream_failed" in records["download"][0] or records["download"][0] == "failed"
    errors = [line for line in log.splitlines() if "UserErrorException: step 'download'" in line]
    assert errors, log[-3000:]
    # named by the reuse sensor, which digests the source first ("input 'raw'": the source's
    # DataReference), or by the transfer itself ("field 'source_data_reference'")
    message = errors[0]
    assert "'source_data_reference'" in message or "input 'raw'" in message
    assert "raw/missing.bin" in message and "blobstore" in message and "does not exist" in message
    assert not env.local("landed.bin").exists()


def test_a_service_error_fails_clearly_without_secrets_or_partial_output(env):
    """The destination container is gone: a service error no retry can fix. The step fails at
    once naming the step, the datastore and the path; no attempt folder or destination appears
    (and the container is not silently re-created)."""
    env.put_local("tree/a.txt", "a")
    env.put_local("tree/sub/b.txt", "b")
    step = DataTransferStep(
        name="upload",
        source_data_reference=DataReference(env.archive, "tree", "tree"),
        destination_data_reference=DataReference(env.blob, "mirror", "mirror"),
    )
    env.fs.rm(env.container(env.blob), recursive=True)
    records, log = env.run(step, expect="failed")
    assert records["upload"][0] == "failed"
    message = log[log.index("TransferError") :]
    assert "step 'upload', copying archive:tree/a.txt to blobstore:azureml/" in message
    assert "ContainerNotFound" in message or "container does not exist" in message.lower()
    assert ACCOUNT_KEY not in log and ACCOUNT_KEY.split("/")[0] not in log
    env.fs.invalidate_cache()
    assert not env.fs.exists(env.container(env.blob))


@pytest.fixture
def blob_access(azurite):
    """A datastore on a fresh Azurite container, with the SDK's own retries bounded the way a
    transfer bounds them, so the tests below see mlpipe's retries at work."""
    container = azurite.new_container()
    fs = adlfs.AzureBlobFileSystem(
        connection_string=azurite.connection_string, skip_instance_cache=True
    )
    store = DatastoreAccess(
        name="blobstore",
        url=f"az://{container}",
        fs=fs,
        root=container,
        options={"connection_string": azurite.connection_string},
    )
    bound_sdk_retries(store)
    return store


def test_an_outage_is_retried_a_bounded_number_of_times_then_named(
    azurite, blob_access, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "3")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.2")
    src = tmp_path / "a.bin"
    src.write_bytes(b"payload")
    local = fsspec.filesystem("file")
    fs, target = blob_access.fs, f"{blob_access.root}/out/a.bin"
    what = f"step 'copy', copying archive:a.bin to blobstore:{target}"
    calls = []

    def attempt():
        calls.append(time.monotonic())
        return copy_verified(local, str(src), fs, target, what=what, replace=False)

    azurite.stop()
    try:
        with pytest.raises(TransferError) as caught:
            with_retries(attempt, what=what, stores=(blob_access,))
    finally:
        azurite.start()
    assert len(calls) == 3
    assert calls[2] - calls[0] >= (0.2 + 0.4) * 0.5  # backed off (with jitter) between tries
    assert calls[2] - calls[0] < 30  # bounded: the SDK's own minutes-long retries are cut short
    message = str(caught.value)
    assert message.startswith(what) and "after 3 attempt(s)" in message
    assert ACCOUNT_KEY not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    fs.invalidate_cache()
    assert not fs.exists(target)  # nothing half-written


def test_a_short_outage_is_ridden_out_by_retries(
    azurite, blob_access, tmp_path, monkeypatch, big_payload
):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "8")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.4")
    fs, source = blob_access.fs, f"{blob_access.root}/big.bin"
    fs.pipe_file(source, big_payload)
    target = tmp_path / "big.bin"
    calls = []

    def attempt():
        calls.append(time.monotonic())
        return copy_verified(
            fs, source, fsspec.filesystem("file"), str(target), what="t", replace=True
        )

    azurite.stop()
    restarter = threading.Timer(1.5, azurite.start)
    restarter.start()
    try:
        digest, size = with_retries(attempt, what="t", stores=(blob_access,))
    finally:
        restarter.join()
    assert len(calls) > 1  # the first attempt met the outage
    assert (digest, size) == (hash_bytes(big_payload), BIG)
    assert target.read_bytes() == big_payload
    assert not list(tmp_path.glob(".mlpipe-partial-*"))


class _FailingSource:
    """A source filesystem whose stream breaks after ``fail_after`` bytes (a dropped connection
    half-way through a large read); the destination under test is the real blob service."""

    protocol = "failing"

    def __init__(self, data: bytes, fail_after: int):
        self.data, self.fail_after, self.opened = data, fail_after, 0

    def open(self, path, mode="rb", **kwargs):
        self.opened += 1
        source = self

        class Reader(io.BytesIO):
            def read(self, n=-1):
                if self.tell() >= source.fail_after:
                    raise ConnectionResetError("connection reset by peer")
                return super().read(n)

        return Reader(self.data)


def test_a_stream_broken_half_way_commits_nothing_over_the_old_blob(
    blob_access, monkeypatch, big_payload
):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "2")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.05")
    fs, target = blob_access.fs, f"{blob_access.root}/mirror/big.bin"
    fs.pipe_file(target, b"the previous version")
    source = _FailingSource(big_payload, fail_after=16 << 20)  # two 8 MiB blocks staged first
    what = f"step 'upload', copying archive:big.bin to blobstore:{target}"
    with pytest.raises(TransferError, match="after 2 attempt"):
        with_retries(
            lambda: copy_verified(source, "big.bin", fs, target, what=what, replace=True),
            what=what,
            stores=(blob_access,),
        )
    assert source.opened == 2
    fs.invalidate_cache()
    assert fs.cat_file(target) == b"the previous version"  # the staged blocks were dropped


def test_a_transfer_failing_at_its_destination_publishes_nothing(env):
    """The whole source was copied, then the destination refuses it (a file where the folder
    should go): the step fails naming it, the file is untouched, the attempt copy is removed
    and no reuse entry is recorded."""
    env.put_blob(env.blob, "raw/a.txt", "a")
    env.put_blob(env.blob, "raw/sub/b.txt", "b")
    env.put_local("landed", "a file, not a folder")
    records, log = env.run(_download_pipeline(env), expect="failed")
    assert records["download"][0] == "failed"
    assert "step 'download', destination archive:landed: is a file" in log
    assert env.local("landed").read_text() == "a file, not a folder"
    assert not [p for p in env.local("azureml").rglob("*") if p.is_file()]  # attempt removed
    store = env.ws._dir / "datastores" / "workspaceblobstore" / "mlpipe-store" / "v1"
    assert (store / "leases").is_dir()  # the store is here (the run took its lease)
    assert not list((store / "entries").rglob("*.json"))  # and never recorded


# --- the same transfers on every object store: Azure Blob, S3 (moto), GCS (fake-gcs-server) ---


def test_a_folder_goes_to_an_object_store_and_back_and_is_reused(
    ws, object_store, run_dag, monkeypatch
):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.05")
    archive = Datastore.register_local(ws, "archive", "datastores/archive")
    remote = object_store.register(ws, "remote")
    access = remote._access()
    files = {
        "a.csv": b"x,y\n1,2\n",
        "nested/b.txt": b"bee",
        "nested/deeper/big.bin": os.urandom(9 * 1024 * 1024),  # above one 8 MiB chunk
        "empty.txt": b"",
    }
    for rel, data in files.items():
        path = ws._dir / "datastores" / "archive" / "tree" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def upload():
        return DataTransferStep(
            name="upload",
            source_data_reference=DataReference(archive, "tree", "tree"),
            destination_data_reference=DataReference(remote, "mirror", "mirror"),
            source_reference_type="directory",
        )

    dag_run, records = run_dag(Pipeline(ws, [upload()]), dag_id=f"up_{object_store.kind}")
    state, record = records["upload"]
    assert state == "success", records
    access.fs.invalidate_cache()
    root = access.full_path("mirror")
    found = {p[len(root) + 1 :]: access.fs.cat_file(p) for p in sorted(access.fs.find(root))}
    assert found == files
    assert record["outputs"]["mirror"]["digest"] == expected_digest(files)

    download = DataTransferStep(
        name="download",
        source_data_reference=DataReference(remote, "mirror", "mirror"),
        destination_data_reference=DataReference(archive, "landed", "landed"),
    )
    _, records = run_dag(Pipeline(ws, [download]), dag_id=f"down_{object_store.kind}")
    assert records["download"][0] == "success", records
    assert tree(ws._dir / "datastores" / "archive" / "landed") == files
    assert records["download"][1]["outputs"]["landed"]["digest"] == expected_digest(files)

    _, records = run_dag(Pipeline(ws, [upload()]), dag_id=f"up_{object_store.kind}")
    assert records["upload"][0] == "skipped"  # nothing changed: reused, not copied again
    assert records["upload"][1]["reused_run_id"] == record["step_run_id"]
