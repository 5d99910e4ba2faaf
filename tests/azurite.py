"""Azurite, Microsoft's Azure Storage emulator, on loopback for the tests and benchmarks.

Installed from the npm registry into ``tools/azurite`` (pinned by its package-lock.json) the first
time it is needed; ``.ci/run`` installs it up front. Data is kept in a folder, so ``stop()`` then
``start()`` brings the same blobs back on the same port: the datastore-outage tests use that.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOL_DIR = REPO / "tools" / "azurite"
BINARY = TOOL_DIR / "node_modules" / ".bin" / "azurite-blob"

# The emulator's well-known development account (public, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def install() -> Path | None:
    """The azurite-blob binary, installing it with ``npm ci`` if needed; None without npm."""
    if BINARY.exists():
        return BINARY
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=TOOL_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return BINARY if BINARY.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Azurite:
    """One azurite-blob process; ``account_url`` is where its blob endpoint answers."""

    def __init__(self, binary: Path, location: Path | None = None, port: int | None = None):
        self.binary = binary
        self.location = location or Path(tempfile.mkdtemp(prefix="mlpipe-azurite-"))
        self.port = port or _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.location / "azurite.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.location),
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"azurite exited with {self.process.returncode}; see {self.location}/azurite.log"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"azurite did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def new_container(self) -> str:
        """A fresh, empty container name, so tests never see each other's blobs."""
        import adlfs

        name = f"t{uuid.uuid4().hex[:20]}"
        fs = adlfs.AzureBlobFileSystem(
            connection_string=self.connection_string, skip_instance_cache=True
        )
        fs.mkdir(name)
        return name

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.location, ignore_errors=True)


def register_blob_datastore(
    ws, azurite: Azurite, name: str = "blobstore", *, default: bool = False
):
    """Register a fresh Azurite container as a datastore of ``ws`` the way a v1 program would."""
    from mlpipe_provider.sdk import Datastore

    store = Datastore.register_azure_blob_container(
        workspace=ws,
        datastore_name=name,
        container_name=azurite.new_container(),
        account_name=ACCOUNT_NAME,
        account_key=ACCOUNT_KEY,
        protocol="http",
        endpoint=f"127.0.0.1:{azurite.port}",
    )
    if default:
        store.set_as_default()
    return store
