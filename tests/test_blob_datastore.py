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
