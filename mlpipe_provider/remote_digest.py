"""Content digests of data in an object store (Azure Blob, S3, GCS through fsspec).

The digest is the one ``hashing.digest_path`` gives for the same bytes laid out on a local disk
(BLAKE3 per file; a folder is ``hashing.tree_digest`` of its sorted (path, size, digest)
entries), so data copied between a local datastore and a bucket keeps its digest and early
cutoff works across stores.

Cheap when nothing changed (invariant 2): one listing with details per tree, and a cache that
remembers each object's digest under (store, path, size, version), the version being what the
service changes on every write (an Azure/S3 ETag, a GCS generation). An object whose size and
version are unchanged is not downloaded again; a changed one is streamed through BLAKE3 without
a temporary file. The cache is a table beside the stat cache's, in the same SQLite file.
"""

from __future__ import annotations

import os
import posixpath
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import blake3

from mlpipe_provider.hashing import (
    ALWAYS_IGNORED,
    DIGEST_PREFIX,
    TreeDigest,
    open_cache_db,
    tree_digest,
)

CHUNK_SIZE = 8 << 20
_BATCH_BYTES = 64 << 20  # small objects are fetched concurrently, this many bytes at a time
_SMALL = 4 << 20
_VERSION_KEYS = ("etag", "ETag", "generation", "version_id", "VersionId", "last_modified",
                 "LastModified", "updated", "mtime")  # fmt: skip

#: what this process read from object stores to digest them (tests and benchmarks look here)
STATS: Counter = Counter()

#: runs one datastore call; the runtime passes one that retries transient failures
Caller = Callable[[str, str, Callable[[], Any]], Any]


def _direct(operation: str, path: str, fn: Callable[[], Any]) -> Any:
    return fn()


@dataclass(frozen=True)
class RemoteFile:
    """One object of a listing: ``rel`` is its path below the listed root ("" for the root
    itself when the root is one object)."""

    path: str
    rel: str
    size: int
    version: str | None


def object_version(info: dict[str, Any]) -> str | None:
    """What changes whenever the object is written (None: unknown, so never cached)."""
    for key in _VERSION_KEYS:
        value = info.get(key)
        if value not in (None, ""):
            return f"{key}={value}"
    return None


def store_identity(store: Any) -> str:
    """Which bucket of which account: the cache key's prefix. Never a secret: only the URL and
    the account/endpoint fields of the options are used."""
    parts = [store.url]
    options = store.options or {}
    conn = options.get("connection_string")
    if isinstance(conn, str):
        for item in conn.split(";"):
            key, _, value = item.partition("=")
            if key.strip().lower() in ("accountname", "blobendpoint"):
                parts.append(f"{key.strip()}={value.strip()}")
    for key in ("account_name", "account_host", "endpoint_url", "project"):
        if options.get(key):
            parts.append(f"{key}={options[key]}")
    endpoint = (options.get("client_kwargs") or {}).get("endpoint_url")
    if endpoint:
        parts.append(f"endpoint_url={endpoint}")
    return "|".join(parts)


def _skipped(rel: str) -> bool:
    """Folders ``hashing.iter_tree`` never descends into are not part of a remote tree either."""
    return bool(ALWAYS_IGNORED.intersection(rel.split("/")[:-1]))


def list_tree(store: Any, rel: str, *, call: Caller = _direct) -> list[RemoteFile] | None:
    """The objects at ``rel`` (one object, or every object below the folder ``rel``) with their
    sizes and versions, from one listing; None when nothing is there."""
    full = store.full_path(rel, what="path")
    fs = store.fs
    found = call("list", rel, lambda: fs.find(full, detail=True))
    if not isinstance(found, dict):  # some backends ignore detail= when the path is an object
        found = {p: None for p in found}
    full_norm = full.rstrip("/")
    if not found or set(found) == {full_norm}:
        info = found.get(full_norm) if found else None
        if not info or info.get("size") is None:
            try:
                info = call("stat", rel, lambda: fs.info(full))
            except FileNotFoundError:
                return None
        if info.get("type") == "directory":
            return [] if found == {} else None
        return [RemoteFile(full_norm, "", int(info["size"]), object_version(info))]
    files = []
    for path, info in found.items():
        if info is not None and info.get("type", "file") != "file":
            continue
        relative = posixpath.relpath(path, full_norm)
        if relative.startswith("../") or _skipped(relative):
            continue
        if info is None:
            info = call("stat", rel, lambda p=path: fs.info(p))
        files.append(RemoteFile(path, relative, int(info["size"]), object_version(info)))
    return sorted(files, key=lambda f: f.rel)


class RemoteDigestCache:
    """(store, path) -> (size, version, digest), in the stat cache's SQLite file (its own table).

    ``db_path=None`` keeps it in memory only (a full verification that must read everything)."""

    def __init__(self, db_path: str | os.PathLike | None, *, enabled: bool = True):
        self.enabled = enabled
        self._memory: dict[str, tuple[int, str, str]] = {}
        self._pending: dict[str, tuple[int, str, str]] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if db_path is not None and enabled:
            self._db = open_cache_db(
                db_path,
                "CREATE TABLE IF NOT EXISTS remote_files (key TEXT PRIMARY KEY, size INTEGER,"
                " version TEXT, digest TEXT)",
            )
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(identity: str, path: str) -> str:
        return f"{identity}\0{path}"

    def preload(self, identity: str, prefix: str) -> None:
        """Every cached object below ``prefix`` in one query, so a tree costs one round trip."""
        if self._db is None:
            return
        low = self.key(identity, prefix)
        rows = self._db.execute(
            "SELECT key, size, version, digest FROM remote_files WHERE key >= ? AND key < ?",
            (low, low + "\U0010ffff"),
        )
        with self._lock:
            for key, size, version, digest in rows:
                self._memory[key] = (size, version, digest)

    def lookup(self, identity: str, file: RemoteFile) -> str | None:
        if not self.enabled or file.version is None:
            return None
        with self._lock:
            hit = self._memory.get(self.key(identity, file.path))
        if hit is not None and hit[0] == file.size and hit[1] == file.version:
            self.hits += 1
            return hit[2]
        return None

    def remember(self, identity: str, file: RemoteFile, digest: str) -> None:
        if not self.enabled or file.version is None:
            return
        entry = (file.size, file.version, digest)
        key = self.key(identity, file.path)
        with self._lock:
            self._memory[key] = entry
            self._pending[key] = entry

    def flush(self) -> None:
        if self._db is None:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO remote_files VALUES (?, ?, ?, ?)",
                    [(k, s, v, d) for k, (s, v, d) in pending.items()],
                )

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


def stream_digest(fs: Any, path: str) -> tuple[str, int]:
    """BLAKE3 of an object's bytes, read in chunks (never whole in memory, no temporary file)."""
    hasher = blake3.blake3()
    size = 0
    with fs.open(path, "rb", block_size=CHUNK_SIZE) as reader:
        while chunk := reader.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return DIGEST_PREFIX + hasher.hexdigest(), size


def _batches(files: list[RemoteFile]) -> Iterable[list[RemoteFile]]:
    batch: list[RemoteFile] = []
    total = 0
    for file in files:
        if batch and total + file.size > _BATCH_BYTES:
            yield batch
            batch, total = [], 0
        batch.append(file)
        total += file.size
    if batch:
        yield batch


def file_digests(
    store: Any, files: list[RemoteFile], cache: RemoteDigestCache, *, call: Caller = _direct
) -> dict[str, str]:
    """``{object path: digest}``, reading only the objects the cache cannot vouch for."""
    identity = store_identity(store)
    out: dict[str, str] = {}
    missing: list[RemoteFile] = []
    for file in files:
        cached = cache.lookup(identity, file)
        if cached is not None:
            out[file.path] = cached
        else:
            missing.append(file)
    cache.misses += len(missing)
    small = [f for f in missing if f.size < _SMALL]
    for batch in _batches(small):  # one concurrent request per object (adlfs/s3fs/gcsfs)
        paths = [f.path for f in batch]
        data = call("read", batch[0].path, lambda p=paths: store.fs.cat(p, on_error="raise"))
        if not isinstance(data, dict):  # a one-path cat may give bytes
            data = {paths[0]: data}
        for file in batch:
            blob = data[file.path]
            out[file.path] = DIGEST_PREFIX + blake3.blake3(blob).hexdigest()
            STATS["files_read"] += 1
            STATS["bytes_read"] += len(blob)
            cache.remember(identity, file, out[file.path])
    for file in missing:
        if file.size < _SMALL:
            continue
        digest, size = call("read", file.path, lambda f=file: stream_digest(store.fs, f.path))
        out[file.path] = digest
        STATS["files_read"] += 1
        STATS["bytes_read"] += size
        cache.remember(identity, file, digest)
    cache.flush()
    return out


def digest_listing(
    store: Any, files: list[RemoteFile], cache: RemoteDigestCache, *, call: Caller = _direct
) -> TreeDigest:
    """The digest of a listed tree (or of one object: ``files == [RemoteFile(rel="")]``)."""
    digests = file_digests(store, files, cache, call=call)
    if len(files) == 1 and files[0].rel == "":
        return TreeDigest(digests[files[0].path], {"": files[0].size})
    entries = [(f.rel, f.size, digests[f.path]) for f in files]
    return TreeDigest(tree_digest(entries), {f.rel: f.size for f in files})


def digest_remote(
    store: Any, rel: str, cache: RemoteDigestCache, *, call: Caller = _direct
) -> TreeDigest | None:
    """The digest of the object or folder ``rel`` of ``store``; None when nothing is there."""
    files = list_tree(store, rel, call=call)
    if files is None:
        return None
    cache.preload(store_identity(store), store.full_path(rel, what="path"))
    return digest_listing(store, files, cache, call=call)


def remember_uploaded(
    store: Any, files: list[RemoteFile], digests: dict[str, str], cache: RemoteDigestCache
) -> None:
    """Seed the cache with digests computed from the local copy just uploaded (``digests`` by
    relative path), so digesting the upload later does not download it again."""
    identity = store_identity(store)
    for file in files:
        if file.rel in digests:
            cache.remember(identity, file, digests[file.rel])
    cache.flush()
