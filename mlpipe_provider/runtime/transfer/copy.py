"""One file copied chunk by chunk between any two fsspec filesystems, hashed on the way.

No file is ever held in memory whole. With ``replace`` (a destination others may read) a local
file is written to a temporary sibling and renamed over the target once verified, so a reader
never sees half a file; an object store commits an object only when its write completed (a
failed write is abandoned, never committed half-way). Inside one blob account a copy is done
by the service (``server_copy``), without moving the bytes through the worker. Many files
between this disk and a datastore (a step's staged inputs and outputs) go in one batched,
retried call (``download_files``, ``upload_files``).
"""

from __future__ import annotations

import os
import posixpath
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import DIGEST_PREFIX
from mlpipe_provider.runtime.transfer.errors import TransferError
from mlpipe_provider.runtime.transfer.filesystems import (
    DIGEST_METADATA_KEY,
    is_azure_blob,
    is_local,
    is_object_store,
)
from mlpipe_provider.runtime.transfer.verify import CHUNK_SIZE, verify_copy, verify_landed

PARTIAL_PREFIX = ".mlpipe-partial-"
SERVER_COPY_TIMEOUT_S = 600.0


def _abandon(writer: Any, fs: Any, path: str) -> None:
    """Close a write that failed without committing it. A buffered object-store file (adlfs,
    s3fs, gcsfs) commits on ``close()`` unless told its last block was already sent, so the
    staged blocks are dropped instead; other files are closed and removed."""
    try:
        if hasattr(writer, "forced") and hasattr(writer, "buffer"):
            writer.forced = True
            writer.close()
            return
        writer.close()
    except Exception:  # noqa: BLE001 - already failing; the original error matters
        pass
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001
        pass


def stream_copy(
    src_fs: Any, src: str, dst_fs: Any, dst: str, chunk_size: int = CHUNK_SIZE
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` chunk by chunk; returns (BLAKE3 of what was read, bytes).

    On a blob store the digest is set as the object's metadata before it is committed."""
    hasher = blake3.blake3()
    size = 0
    with src_fs.open(src, "rb", block_size=chunk_size) as reader:
        writer = dst_fs.open(dst, "wb", block_size=chunk_size)
        try:
            while chunk := reader.read(chunk_size):
                hasher.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            digest = DIGEST_PREFIX + hasher.hexdigest()
            if is_azure_blob(dst_fs):
                writer.metadata = {"is_directory": "false", DIGEST_METADATA_KEY: digest}
        except BaseException:
            _abandon(writer, dst_fs, dst)
            raise
        writer.close()
    return digest, size


def copy_verified(
    src_fs: Any, src: str, dst_fs: Any, dst: str, *, what: str, replace: bool
) -> tuple[str, int]:
    """Copy one file and verify it. With ``replace`` (a destination others may read), a local
    file is written to a temporary sibling and renamed over ``dst`` once verified; an object
    store commits the object only when the stream completed, so it is written in place."""
    parent = posixpath.dirname(dst)
    if parent and not is_object_store(dst_fs):
        dst_fs.makedirs(parent, exist_ok=True)
    if replace and dst_fs.isdir(dst):
        raise UserErrorException(f"{what}: {dst!r} is a directory; a file cannot replace it")
    if not replace or not is_local(dst_fs):
        digest, size = stream_copy(src_fs, src, dst_fs, dst)
        verify_landed(digest, size, dst_fs, dst, what=what)
        return digest, size
    tmp = posixpath.join(parent, f"{PARTIAL_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(dst)}")
    try:
        digest, size = stream_copy(src_fs, src, dst_fs, tmp)
        verify_copy(digest, dst_fs, tmp, what=what)
        os.replace(tmp, dst)  # atomic on one filesystem
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return digest, size


def server_copy(fs: Any, src: str, dst: str, *, expected: str, size: int, what: str) -> None:
    """Copy an object inside one blob account without moving its bytes through the worker, then
    wait for the service to finish it (large copies may complete asynchronously)."""
    from fsspec.asyn import sync

    fs.cp_file(src, dst)
    container, blob, _ = fs.split_path(dst)

    async def copy_status() -> tuple[str | None, str | None]:
        async with fs.service_client.get_blob_client(container, blob) as client:
            props = await client.get_blob_properties()
            return props.copy.status, props.copy.status_description

    deadline = time.monotonic() + SERVER_COPY_TIMEOUT_S
    while True:
        status, description = sync(fs.loop, copy_status)
        if status in (None, "success"):
            break
        if status != "pending" or time.monotonic() > deadline:
            raise TransferError(
                f"{what}: server-side copy to {dst!r} ended {status}: {description}"
            )
        time.sleep(1.0)
    verify_landed(expected, size, fs, dst, what=what)


# --- many files between this disk and a datastore ------------------------------------------------


def download_files(
    store: Any,
    remote: list[str],
    local: list[str],
    call: Callable[[str, str, Callable[[], Any]], Any] | None,
    operation: str,
    path: str,
) -> None:
    """Fetch ``remote`` objects to ``local`` paths in one batched call (fsspec's ``get`` runs
    the downloads concurrently on an object store), retried as a whole through ``call`` (a
    ``retry.Retrier``) when one is given. Parent folders are created first."""
    for target in local:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    if not remote:
        return

    def fetch() -> None:
        store.fs.get(remote, local)

    if call is None:
        fetch()
    else:
        call(operation, path, fetch)


def upload_files(
    store: Any,
    local: list[str],
    remote: list[str],
    call: Callable[[str, str, Callable[[], Any]], Any],
    operation: str,
    path: str,
) -> None:
    """Send ``local`` files to ``remote`` paths in one batched call, retried as a whole."""
    if local:
        call(operation, path, lambda: store.fs.put(local, remote))
