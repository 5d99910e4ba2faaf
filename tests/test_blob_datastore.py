"""Azure Blob datastores on Azurite: registration, credentials kept out of the config, and v1's
upload/download on a real blob service."""

from __future__ import annotations

import json
import stat

import pytest
from azurite import ACCOUNT_KEY, register_blob_datastore

from mlpipe_provider.errors import DatastoreError


def test_register_keeps_the_key_out_of_the_config(ws, azurite):
    store = register_blob_datastore(ws, azurite)
    config_text = (ws._dir / "config.json").read_text()
    assert ACCOUNT_KEY not in config_text
    entry = json.loads(config_text)["datastores"]["blobstore"]
    assert entry["datastore_type"] == "AzureBlob"
    assert entry["account_url"] == azurite.account_url
    secret_file = ws._dir / entry["credential_file"]
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert json.loads(secret_file.read_text())["account_key"] == ACCOUNT_KEY
    assert store.datastore_type == "AzureBlob"
    assert ACCOUNT_KEY not in repr(store._access())


def test_upload_then_download_round_trips(ws, azurite, tmp_path):
    store = register_blob_datastore(ws, azurite)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.csv").write_text("x\n1\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    ref = store.upload(str(src), target_path="raw/v1", show_progress=False)
    assert ref.path_on_datastore == "raw/v1"
    assert store.upload(str(src), target_path="raw/v1", show_progress=False)  # no overwrite: kept
    out = tmp_path / "out"
    assert store.download(str(out), prefix="raw/v", show_progress=False) == 2
    assert (out / "raw/v1/a.csv").read_text() == "x\n1\n"
    assert (out / "raw/v1/sub/b.bin").read_bytes() == bytes(range(256)) * 10


def test_missing_container_is_a_clear_error(ws, azurite):
    from mlpipe_provider.sdk import Datastore

    with pytest.raises(DatastoreError, match="does not exist"):
        Datastore.register_azure_blob_container(
            ws,
            "nostore",
            "no-such-container",
            "devstoreaccount1",
            account_key=ACCOUNT_KEY,
            protocol="http",
            endpoint=f"127.0.0.1:{azurite.port}",
        )
    created = Datastore.register_azure_blob_container(
        ws,
        "made",
        "made-here",
        "devstoreaccount1",
        account_key=ACCOUNT_KEY,
        protocol="http",
        endpoint=f"127.0.0.1:{azurite.port}",
        create_if_not_exists=True,
    )
    assert created.container_name == "made-here"


def test_a_wrong_key_fails_registration_and_keeps_the_working_one(ws, azurite):
    from mlpipe_provider.sdk import Datastore

    store = register_blob_datastore(ws, azurite)
    secret_file = ws._dir / "credentials" / "blobstore.json"
    wrong_key = "V3JvbmdLZXk" + "A" * 77 + "=="
    with pytest.raises(DatastoreError, match="cannot reach container") as caught:
        Datastore.register_azure_blob_container(
            ws,
            "blobstore",
            store.container_name,
            "devstoreaccount1",
            account_key=wrong_key,
            protocol="http",
            endpoint=f"127.0.0.1:{azurite.port}",
        )
    assert wrong_key not in str(caught.value) and ACCOUNT_KEY not in str(caught.value)
    assert json.loads(secret_file.read_text())["account_key"] == ACCOUNT_KEY
    assert sorted(p.name for p in secret_file.parent.iterdir()) == ["blobstore.json"]
    assert store._access().exists("")  # still registered with the working key


def test_download_prefix_with_a_trailing_slash_matches_only_that_folder(ws, azurite, tmp_path):
    """``data/`` is that folder; ``data`` is a string prefix (``data2/`` too), as in v1."""
    store = register_blob_datastore(ws, azurite, name="prefixes")
    for folder in ("data", "data2"):
        src = tmp_path / folder
        src.mkdir()
        (src / "f.txt").write_text(folder)
        store.upload(str(src), target_path=folder, show_progress=False)
    assert store.download(str(tmp_path / "slash"), prefix="data/", show_progress=False) == 1
    assert not (tmp_path / "slash" / "data2").exists()
    assert store.download(str(tmp_path / "bare"), prefix="data", show_progress=False) == 2


# --- the same on S3 (moto) and GCS (fake-gcs-server), and on Azurite --------------------------


def test_upload_then_download_round_trips_on_every_object_store(ws, object_store, tmp_path):
    store = object_store.register(ws, "objstore")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.csv").write_text("x\n1\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    ref = store.upload(str(src), target_path="raw/v1", show_progress=False)
    assert ref.path_on_datastore == "raw/v1"
    out = tmp_path / "out"
    assert store.download(str(out), prefix="raw/", show_progress=False) == 2
    assert (out / "raw/v1/a.csv").read_text() == "x\n1\n"
    assert (out / "raw/v1/sub/b.bin").read_bytes() == bytes(range(256)) * 10
    # what another tool sees in the bucket: the files under the datastore's root
    access = store._access()
    assert sorted(access.fs.find(access.full_path("raw"))) == [
        access.full_path("raw/v1/a.csv"),
        access.full_path("raw/v1/sub/b.bin"),
    ]


def test_a_missing_bucket_is_a_clear_error_for_the_output_store(ws, object_store):
    """A datastore whose bucket (container) is gone or misspelt: the output store says so,
    naming the datastore and the bucket, instead of "someone else holds the lease"."""
    from mlpipe_provider.config import load_config
    from mlpipe_provider.datastores import open_datastore
    from mlpipe_provider.store import OutputStore

    bucket = object_store.new_bucket()
    object_store.register(ws, "gone", bucket=bucket)
    object_store.filesystem().rmdir(bucket)
    store = OutputStore(open_datastore(ws._dir, load_config(ws._dir), "gone"))
    with pytest.raises(DatastoreError, match=rf"datastore 'gone'.*{bucket}.*does not exist"):
        store.acquire("f" * 64, "run/step", ttl=60)


def test_a_missing_bucket_is_a_clear_error_for_an_upload(ws, object_store, tmp_path):
    bucket = object_store.new_bucket()
    gone = object_store.register(ws, "gone", bucket=bucket)
    object_store.filesystem().rmdir(bucket)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    with pytest.raises(DatastoreError, match=rf"datastore 'gone'.*{bucket}.*does not exist"):
        gone.upload(str(tmp_path / "src"), target_path="x", show_progress=False)
