"""Seed the remote digest cache with what a copy wrote, so nothing it wrote is downloaded again
just to digest it."""

from __future__ import annotations

import posixpath
from typing import Any

from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.runtime.transfer.filesystems import metadata_digest


def remember_written(store: DatastoreAccess, rel: str, digests: dict[str, str], cache: Any) -> int:
    """Seed the remote digest cache (``remote_digest``) with what this transfer wrote, so a later
    digest of those blobs (a step reading the destination as a ``DataReference``) lists them
    instead of downloading them. Only objects whose metadata still carries the digest written
    with them are remembered: the listed version is then the one this transfer committed."""
    if store.is_local or cache is None:
        return 0
    from mlpipe_provider.remote_digest import RemoteFile, object_version, store_identity

    full = store.full_path(rel, what="path").rstrip("/")
    store.fs.invalidate_cache(full)
    found = store.fs.find(full, detail=True)
    identity = store_identity(store)
    remembered = 0
    for path, info in found.items():
        relative = "" if path.rstrip("/") == full else posixpath.relpath(path, full)
        digest = digests.get(relative)
        if digest is None or info.get("type", "file") != "file":
            continue
        if metadata_digest(info) != digest or object_version(info) is None:
            continue
        cache.remember(
            identity, RemoteFile(path, relative, int(info["size"]), object_version(info)), digest
        )
        remembered += 1
    cache.flush()
    return remembered
