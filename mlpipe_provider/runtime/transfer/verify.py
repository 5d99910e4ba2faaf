"""Digests of what is at a path, and the checks that what landed is what was read.

A local file is re-hashed (a local read, not a download); a remote object must have the size
that was streamed and, on a blob store, the digest mlpipe wrote in its metadata
(``mlpipe_blake3``), which any rewrite by someone else clears.
"""

from __future__ import annotations

import os
from typing import Any

import blake3

from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.hashing import DIGEST_PREFIX, StatCache, hash_file_uncached
from mlpipe_provider.runtime.transfer.errors import TransferVerificationError
from mlpipe_provider.runtime.transfer.filesystems import is_azure_blob, is_local, metadata_digest

CHUNK_SIZE = 8 << 20  # 8 MiB: large enough for object stores, small enough for any worker


def stream_digest(fs: Any, path: str, chunk_size: int = CHUNK_SIZE) -> str:
    """BLAKE3 of a file's bytes (same value as ``hashing.hash_file_uncached``), read in chunks."""
    if is_local(fs):
        return hash_file_uncached(path)  # mmap and threads for large files; same digest
    hasher = blake3.blake3()
    with fs.open(path, "rb", block_size=chunk_size) as reader:
        while chunk := reader.read(chunk_size):
            hasher.update(chunk)
    return DIGEST_PREFIX + hasher.hexdigest()


def verify_copy(expected: str, fs: Any, path: str, *, what: str) -> str:
    """Re-read what landed at local ``path``; raise unless its digest is ``expected``."""
    landed = stream_digest(fs, path)
    if landed != expected:
        raise TransferVerificationError(
            f"{what}: the copy at {path!r} does not match what was read "
            f"(read {expected}, landed {landed}); nothing was recorded"
        )
    return landed


def verify_landed(expected: str, size: int, fs: Any, path: str, *, what: str) -> None:
    """Check what landed without downloading it: a local file is re-hashed (a local read); a
    remote object must exist with the streamed size (and, on a blob store, our digest)."""
    if is_local(fs):
        verify_copy(expected, fs, path, what=what)
        return
    fs.invalidate_cache(path)
    info = fs.info(path)
    recorded = metadata_digest(info)
    if info.get("size") != size or (is_azure_blob(fs) and recorded != expected):
        raise TransferVerificationError(
            f"{what}: the copy at {path!r} does not match what was written "
            f"({size} bytes, {expected}; landed {info.get('size')} bytes, {recorded})"
        )


def current_digest(
    store: DatastoreAccess, path: str, cache: StatCache | None, size: int | None = None
) -> str | None:
    """The digest of what is at ``path`` now, or None if there is no file (or, remotely, no
    digest mlpipe can vouch for without a download: such a file is simply rewritten)."""
    fs = store.fs
    if store.is_local:
        if not os.path.isfile(path):
            return None
        return cache.digest(path) if cache is not None else hash_file_uncached(path)
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") != "file" or (size is not None and info.get("size") != size):
        return None
    return metadata_digest(info)
