"""The output store on Azure Blob (Azurite) with the guarantees it has on local disk: whole
entries, one winner per conditional write, leases that exactly one run can take or break; the
``mlpipe store`` commands on a blob default datastore; credentials from Airflow connections.

Most tests run on both backends (``store`` is parametrized): local disk is cheap, and the same
assertions on both are the point."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid

import pytest
from azurite import ACCOUNT_KEY, ACCOUNT_NAME, register_blob_datastore

from mlpipe_provider.config import DatastoreConfig, load_config
from mlpipe_provider.datastores import open_datastore, open_datastore_config
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.gcs_objects import GcsObjects
from mlpipe_provider.hooks.object_store import AzureBlobObjects, FsspecObjects, LocalObjects
from mlpipe_provider.hooks.s3_objects import S3Objects
from mlpipe_provider.store import OutputStore


def _fingerprint() -> str:
    return uuid.uuid4().hex * 2


def _manifest(fingerprint: str, step_run_id: str, **extra) -> dict:
    return {
        "fingerprint": fingerprint,
        "step_name": "make",
        "step_run_id": step_run_id,
        "dag_id": "d",
        "dag_run_id": "r",
        "created": time.time(),
        "outputs": {},
        **extra,
    }


@pytest.fixture(
    params=[
        "local",
        pytest.param("blob", marks=pytest.mark.azurite),
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("gcs", marks=pytest.mark.gcs),
    ]
)
def backend(request, ws):
    """(workspace, datastore name) with the store on local disk, Azurite, S3 (moto) or GCS
    (fake-gcs-server)."""
    if request.param == "local":
        return ws, "workspaceblobstore"
    if request.param == "blob":
        azurite = request.getfixturevalue("azurite")
        register_blob_datastore(ws, azurite, default=True)
        return ws, "blobstore"
    request.getfixturevalue(f"{request.param}_server").register(ws, "objstore", default=True)
    return ws, "objstore"


def _open_store(workspace_dir, name: str) -> OutputStore:
    return OutputStore(open_datastore(workspace_dir, load_config(workspace_dir), name))


@pytest.fixture
def store(backend) -> OutputStore:
    ws, name = backend
    return _open_store(ws._dir, name)


def test_the_backend_is_the_one_with_preconditions(store, backend):
    expected = {
        "file": LocalObjects,
        "az": AzureBlobObjects,
        "s3": S3Objects,
        "gs": GcsObjects,
    }[store.datastore.url.partition("://")[0] if "://" in store.datastore.url else "file"]
    assert isinstance(store.objects, expected) and store.objects.strict


# --- entries -----------------------------------------------------------------------------------


def test_commit_read_list_and_delete_entries(store):
    first, second = _fingerprint(), _fingerprint()
    assert store.read_entry(first) is None
    assert store.commit(_manifest(first, "run-1"))
    assert store.commit(_manifest(second, "run-2"))
    assert store.read_entry(first)["step_run_id"] == "run-1"
    assert sorted(m["step_run_id"] for m in store.entries()) == ["run-1", "run-2"]

    # An entry that failed verification is replaced by the run that computed it again.
    assert store.commit(_manifest(first, "run-3"))
    assert store.read_entry(first)["step_run_id"] == "run-3"

    # gc deletes only the manifest it read: one committed since is kept.
    stale = _manifest(second, "run-2", created=1.0)
    assert not store.delete_entry(second, expected=stale)
    assert store.read_entry(second) is not None
    assert store.delete_entry(second, expected=store.read_entry(second))
    assert store.read_entry(second) is None
    assert store.delete_entry(first)
    assert not store.delete_entry(first)
    assert store.entries() == []


def test_truncated_or_foreign_manifest_reads_as_a_miss(store):
    fingerprint = _fingerprint()
    whole = json.dumps(_manifest(fingerprint, "run-1")).encode()
    path = store._entry_path(fingerprint)
    assert store.objects.put_if_absent(path, whole[: len(whole) // 2]) is not None
    assert store.read_entry(fingerprint) is None
    assert store.entries() == []
    assert store.commit(_manifest(fingerprint, "run-2"))  # the corrupt one is replaced
    assert store.read_entry(fingerprint)["step_run_id"] == "run-2"

    other = _fingerprint()
    foreign = json.dumps(_manifest(_fingerprint(), "run-x")).encode()
    store.objects.put_if_absent(store._entry_path(other), foreign)
    assert store.read_entry(other) is None  # names another fingerprint: not this entry
    binary = _fingerprint()
    store.objects.put_if_absent(store._entry_path(binary), b"\xff\xfe\x00garbage")
    assert store.read_entry(binary) is None


def test_conditional_operations_refuse_stale_etags(store):
    objects = store.objects
    path = store._lease_path(_fingerprint())
    assert objects.read(path) is None
    first = objects.put_if_absent(path, b"one")
    assert first and objects.put_if_absent(path, b"two") is None
    assert objects.read(path) == (b"one", first)
    second = objects.put_if_match(path, b"two", first)
    assert second and second != first
    assert objects.put_if_match(path, b"three", first) is None
    # fake-gcs-server ignores preconditions on DELETE (GCS itself honours ifGenerationMatch
    # there; docs/datastores.md): a stale delete is checked on the other three backends.
    if not isinstance(objects, GcsObjects):
        assert not objects.delete_if_match(path, first)
    assert objects.read(path) == (b"two", second)
    assert objects.delete_if_match(path, second)
    assert objects.read(path) is None
    assert objects.put_if_match(path, b"four", second) is None  # gone: nothing to replace
    assert not objects.delete_if_match(path, second)


def _race(count: int, work):
    """Run ``work(index)`` in ``count`` threads released together; their results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_threads_racing_to_create_one_entry_one_wins_and_it_is_whole(store):
    fingerprint = _fingerprint()
    path = store._entry_path(fingerprint)
    padding = "x" * 200_000  # large enough that a torn write would show

    def create(index: int):
        data = json.dumps(_manifest(fingerprint, f"run-{index}", padding=padding)).encode()
        return store.objects.put_if_absent(path, data)

    results = _race(8, create)
    winners = [i for i, etag in enumerate(results) if etag is not None]
    assert len(winners) == 1
    entry = store.read_entry(fingerprint)
    assert entry["step_run_id"] == f"run-{winners[0]}" and entry["padding"] == padding


def _commit_in_process(workspace_dir, name, fingerprint, index, barrier, results):
    store = _open_store(workspace_dir, name)
    data = json.dumps(_manifest(fingerprint, f"process-{index}", padding="y" * 100_000)).encode()
    barrier.wait(timeout=60)
    results.put((index, store.objects.put_if_absent(store._entry_path(fingerprint), data)))


@pytest.mark.parametrize(
    "backend",
    # Separate processes add nothing per service over the thread race above (the service sees
    # the same concurrent conditional writes); spawning four interpreters that each import the
    # S3 and GCS clients cost ~4 minutes of the suite, so processes race on local disk and
    # Azurite only.
    ["local", pytest.param("blob", marks=pytest.mark.azurite)],
    indirect=True,
)
def test_processes_racing_to_create_one_entry_one_wins(backend):
    ws, name = backend
    fingerprint = _fingerprint()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results = context.Queue()
    processes = [
        context.Process(
            target=_commit_in_process,
            args=(ws._dir, name, fingerprint, i, barrier, results),
        )
        for i in range(4)
    ]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    winners = [i for i, etag in outcomes.items() if etag is not None]
    assert len(winners) == 1
    entry = _open_store(ws._dir, name).read_entry(fingerprint)
    assert entry["step_run_id"] == f"process-{winners[0]}" and len(entry["padding"]) == 100_000


# --- leases ------------------------------------------------------------------------------------


def test_lease_acquire_contend_expire_and_lose(store):
    fingerprint = _fingerprint()
    assert store.acquire(fingerprint, "run-a/step", ttl=60) is not None
    assert store.acquire(fingerprint, "run-b/step", ttl=60) is None  # held and alive
    assert store.acquire(fingerprint, "run-a/step", ttl=60) is not None  # ours: renewed
    assert store.read_lease(fingerprint).holder == "run-a/step"
    assert store.heartbeat(fingerprint, "run-a/step", ttl=60)
    assert set(store.live_leases()) == {fingerprint}

    assert store.heartbeat(fingerprint, "run-a/step", ttl=0.2)
    time.sleep(0.4)
    assert store.live_leases() == {}
    other = OutputStore(store.datastore)  # another run, with its own view of the store
    assert other.acquire(fingerprint, "run-b/step", ttl=60) is not None  # expired: broken
    assert not store.heartbeat(fingerprint, "run-a/step", ttl=60)  # lost, and it is told
    store.release(fingerprint, "run-a/step")  # never deletes the new holder's lease
    assert store.read_lease(fingerprint).holder == "run-b/step"
    other.release(fingerprint, "run-b/step")
    assert store.read_lease(fingerprint) is None


def test_heartbeat_from_a_fresh_store_and_release_by_holder_only(store):
    fingerprint = _fingerprint()
    assert store.acquire(fingerprint, "run-a/step", ttl=60) is not None
    fresh = OutputStore(store.datastore)  # no remembered etag: reads, checks the holder
    assert fresh.heartbeat(fingerprint, "run-a/step", ttl=60)
    assert not fresh.heartbeat(fingerprint, "run-b/step", ttl=60)
    fresh.release(fingerprint, "run-b/step")
    assert store.read_lease(fingerprint).holder == "run-a/step"
    # ``store`` remembered an etag that ``fresh`` replaced: release still finds its own lease.
    store.release(fingerprint, "run-a/step")
    assert store.read_lease(fingerprint) is None


@pytest.mark.parametrize("leftover", ["expired", "corrupt"])
def test_many_runs_break_an_expired_lease_and_exactly_one_wins(store, leftover):
    fingerprint = _fingerprint()
    dead = {"holder": "dead/run", "heartbeat": 1.0, "ttl": 60, "host": "gone", "pid": 1}
    payload = json.dumps(dead).encode() if leftover == "expired" else b'{"holder": "dead'
    assert store.objects.put_if_absent(store._lease_path(fingerprint), payload)
    assert store.read_lease(fingerprint) is None or not store.read_lease(fingerprint).alive()

    stores = [OutputStore(store.datastore) for _ in range(8)]
    results = _race(8, lambda i: stores[i].acquire(fingerprint, f"run-{i}/step", ttl=60))
    winners = [i for i, lease in enumerate(results) if lease is not None]
    assert len(winners) == 1
    assert store.read_lease(fingerprint).holder == f"run-{winners[0]}/step"
    losers = [i for i in range(8) if i not in winners]
    assert not any(stores[i].heartbeat(fingerprint, f"run-{i}/step", 60) for i in losers)
    assert stores[winners[0]].heartbeat(fingerprint, f"run-{winners[0]}/step", 60)


def test_many_runs_take_a_free_lease_and_exactly_one_wins(store):
    fingerprint = _fingerprint()
    stores = [OutputStore(store.datastore) for _ in range(8)]
    results = _race(8, lambda i: stores[i].acquire(fingerprint, f"run-{i}/step", ttl=60))
    assert sum(lease is not None for lease in results) == 1


# --- mlpipe store ls / gc on a blob default datastore ------------------------------------------


def _produce(access, store, step_run_id: str, *, created: float) -> dict:
    """What a step run leaves: an output and mlpipe's own files in its attempt folder, then its
    manifest."""
    output = f"azureml/{step_run_id}/made"
    access.write_bytes(f"{output}/data.bin", b"x" * 2048)
    access.write_bytes(f"azureml/{step_run_id}/.mlpipe/run.json", b"{}")
    manifest = _manifest(
        _fingerprint(),
        step_run_id,
        created=created,
        outputs={"made": {"datastore": access.name, "path": output, "size": 2048}},
    )
    assert store.commit(manifest)
    return manifest


def test_store_ls_and_gc_on_a_blob_default_datastore(ws, azurite, capsys):
    from mlpipe_provider.cli.main import main

    register_blob_datastore(ws, azurite, default=True)
    access = open_datastore(ws._dir, load_config(ws._dir), "blobstore")
    store = OutputStore(access)
    old = _produce(access, store, "old-run", created=time.time() - 10 * 86400)
    new = _produce(access, store, "new-run", created=time.time())
    leased = _produce(access, store, "leased-run", created=time.time() - 10 * 86400)
    access.write_bytes("azureml/failed-attempt/made/part.bin", b"z" * 10)  # no manifest
    access.write_bytes("inputs/raw/keep.csv", b"a\n")  # not a run folder: never touched

    assert main(["store", "ls", "--workspace", str(ws._dir)]) == 0
    listing = capsys.readouterr().out
    assert old["fingerprint"][:16] in listing and "3 entries, 6.0 KiB" in listing

    assert store.acquire(leased["fingerprint"], "someone/else/make", ttl=60)
    assert main(["store", "gc", "--older-than", "1", "--workspace", str(ws._dir)]) == 0
    out = capsys.readouterr().out
    assert "1 entry and 0 unrecorded attempt(s) freed" in out and "1 kept because leased" in out
    assert store.read_entry(old["fingerprint"]) is None
    assert not access.exists("azureml/old-run")  # its output and its .mlpipe files
    assert store.read_entry(leased["fingerprint"]) is not None
    assert access.exists("azureml/leased-run/made/data.bin")
    assert access.exists("azureml/failed-attempt")  # something is leased: orphans wait

    store.release(leased["fingerprint"], "someone/else/make")
    time.sleep(1.1)  # blob times have a resolution of one second
    assert main(["store", "gc", "--older-than", "0", "--dry-run", "--workspace", str(ws._dir)]) == 0
    assert "would delete unrecorded attempt blobstore:azureml/failed-attempt" in (
        capsys.readouterr().out
    )
    assert access.exists("azureml/failed-attempt")
    assert main(["store", "gc", "--older-than", "0", "--workspace", str(ws._dir)]) == 0
    assert "2 entries and 1 unrecorded attempt(s) freed" in capsys.readouterr().out
    assert store.entries() == []
    assert access.list_folders("azureml") == []
    assert access.read_bytes("inputs/raw/keep.csv") == b"a\n"
    assert store.read_entry(new["fingerprint"]) is None


# --- the generic fsspec fallback (S3, GCS, ...), on fsspec's in-memory filesystem --------------


def test_generic_fallback_keeps_the_same_contract_without_races(project):
    access = open_datastore_config(
        project, "mem", DatastoreConfig(url=f"memory://mlpipe-{uuid.uuid4().hex[:8]}")
    )
    store = OutputStore(access)
    assert isinstance(store.objects, FsspecObjects) and not store.objects.strict
    fingerprint = _fingerprint()
    assert store.commit(_manifest(fingerprint, "run-1"))
    assert store.commit(_manifest(fingerprint, "run-2"))
    assert [m["step_run_id"] for m in store.entries()] == ["run-2"]
    assert store.acquire(fingerprint, "a", ttl=60) and store.acquire(fingerprint, "b", 60) is None
    assert store.heartbeat(fingerprint, "a", ttl=60)
    store.release(fingerprint, "a")
    assert store.read_lease(fingerprint) is None and store.live_leases() == {}
    path = store._lease_path(fingerprint)
    etag = store.objects.put_if_absent(path, b"1")
    assert etag and store.objects.put_if_match(path, b"2", '"stale"') is None
    assert store.objects.delete_if_match(path, store.objects.read(path)[1])


# --- credentials -------------------------------------------------------------------------------


def _conn_config(container: str, conn_id: str) -> DatastoreConfig:
    return DatastoreConfig(
        url=f"az://{container}",
        datastore_type="AzureBlob",
        container_name=container,
        account_name=ACCOUNT_NAME,
        connection_id=conn_id,
    )


@pytest.mark.parametrize("url_in", ["host", "extra"])
def test_key_comes_from_an_airflow_connection_in_the_environment(
    ws, azurite, monkeypatch, tmp_path, url_in
):
    from mlpipe_provider.sdk import Datastore

    conn = {"conn_type": "wasb", "login": ACCOUNT_NAME, "password": ACCOUNT_KEY}
    if url_in == "host":
        conn["host"] = azurite.account_url
    else:
        conn["extra"] = json.dumps({"account_url": azurite.account_url})
    monkeypatch.setenv("AIRFLOW_CONN_MLPIPE_TEST_BLOB", json.dumps(conn))
    container = azurite.new_container()
    store = Datastore.register_azure_blob_container(
        ws, "viaconn", container, ACCOUNT_NAME, connection_id="mlpipe_test_blob"
    )
    config_text = (ws._dir / "config.json").read_text()
    entry = json.loads(config_text)["datastores"]["viaconn"]
    assert entry["connection_id"] == "mlpipe_test_blob" and "credential_file" not in entry
    assert ACCOUNT_KEY not in config_text
    assert not (ws._dir / "credentials" / "viaconn.json").exists()

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    store.upload(str(src), target_path="up", show_progress=False)
    assert store.download(str(tmp_path / "out"), prefix="up", show_progress=False) == 1
    assert (tmp_path / "out" / "up" / "a.txt").read_text() == "hello"
    access = store._access()
    assert access.options and ACCOUNT_KEY not in repr(access)
    output_store = OutputStore(access)
    assert output_store.commit(_manifest(_fingerprint(), "run-1"))
    assert len(output_store.entries()) == 1


def test_a_missing_connection_names_the_datastore_and_the_connection(project, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    with pytest.raises(DatastoreError) as caught:
        open_datastore_config(project, "lakestore", _conn_config("c", "no_such_conn"))
    message = str(caught.value)
    assert "'lakestore'" in message and "'no_such_conn'" in message
    assert "AIRFLOW_CONN_NO_SUCH_CONN" in message


@pytest.mark.parametrize("key", ["account_key", "sas_token", "connection_string", "secret"])
def test_secrets_in_storage_options_are_refused(project, key):
    config = DatastoreConfig(
        url="az://c",
        account_name=ACCOUNT_NAME,
        storage_options={key: ACCOUNT_KEY, "max_concurrency": 2},
    )
    with pytest.raises(DatastoreError, match=f"storage_options holds {key}") as caught:
        open_datastore_config(project, "leaky", config)
    assert ACCOUNT_KEY not in str(caught.value)


def test_errors_from_the_service_never_carry_the_key(ws, azurite):
    from mlpipe_provider.sdk import Datastore

    wrong_key = "V3JvbmdLZXk" + "A" * 77 + "=="
    store = Datastore.register_azure_blob_container(
        ws,
        "wrongkey",
        azurite.new_container(),
        ACCOUNT_NAME,
        account_key=wrong_key,
        protocol="http",
        endpoint=f"127.0.0.1:{azurite.port}",
        skip_validation=True,
    )
    access = store._access()
    assert wrong_key not in repr(access) and wrong_key not in repr(store)
    output_store = OutputStore(access)
    failures = [
        lambda: output_store.read_entry(_fingerprint()),
        lambda: output_store.commit(_manifest(_fingerprint(), "run-1")),
        lambda: output_store.entries(),
        lambda: output_store.acquire(_fingerprint(), "a", 60),
        lambda: access.read_bytes("x.bin"),
        lambda: access.write_bytes("x.bin", b"x"),
        lambda: access.find_with_detail("azureml"),
    ]
    for failure in failures:
        with pytest.raises(DatastoreError) as caught:
            failure()
        message = str(caught.value)
        assert "'wrongkey'" in message
        assert wrong_key not in message and ACCOUNT_KEY not in message

    with pytest.raises(DatastoreError) as caught:  # a key adlfs cannot even parse
        Datastore.register_azure_blob_container(
            ws,
            "badkey",
            "c",
            ACCOUNT_NAME,
            account_key="not base64 at all: s3cr3t-value",
            protocol="http",
            endpoint=f"127.0.0.1:{azurite.port}",
        )
    assert "s3cr3t-value" not in str(caught.value)


def test_local_disk_without_hard_links_still_has_one_winner(ws, monkeypatch):
    import errno
    import os

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store = _open_store(ws._dir, "workspaceblobstore")
    fingerprint = _fingerprint()
    path = store._entry_path(fingerprint)
    results = _race(8, lambda i: store.objects.put_if_absent(path, f"{i}".encode() * 1000))
    winners = [i for i, etag in enumerate(results) if etag is not None]
    assert len(winners) == 1
    assert store.objects.read(path) == (f"{winners[0]}".encode() * 1000, results[winners[0]])
    assert [p for p in os.listdir(os.path.dirname(path)) if p.startswith(".mlpipe-tmp-")] == []


def test_a_forked_child_does_not_inherit_a_lock_another_thread_holds(ws):
    """Airflow forks task processes: a child forked while a heartbeat thread held a folder's lock
    must still be able to take it once the parent lets go (no inherited lock, no deadlock)."""
    import os
    import signal

    store = _open_store(ws._dir, "workspaceblobstore")
    path = store._lease_path(_fingerprint())
    etag = store.objects.put_if_absent(path, b"parent")
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with store.objects._locked(path):
            entered.set()
            leave.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists here
        signal.alarm(20)
        ok = store.objects.put_if_match(path, b"child", etag) is not None
        os._exit(0 if ok else 3)
    time.sleep(0.3)
    leave.set()
    holder.join(10)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child is stuck on a lock it inherited")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.objects.read(path)[0] == b"child"


def test_conditional_writes_false_selects_the_fallback_for_a_service_without_them(ws, s3_server):
    """For an S3-compatible service that ignores conditional requests (docs/datastores.md)."""
    s3_server.register(ws, "plain")
    config = ws._config
    config.datastores["plain"].conditional_writes = False  # an extra field of the entry
    ws._save(config)
    store = _open_store(ws._dir, "plain")
    assert isinstance(store.objects, FsspecObjects) and not store.objects.strict
    fingerprint = _fingerprint()
    assert store.commit(_manifest(fingerprint, "run-1"))
    assert store.read_entry(fingerprint)["step_run_id"] == "run-1"
    s3_server.register(ws, "conditional")
    assert isinstance(_open_store(ws._dir, "conditional").objects, S3Objects)
