"""Conditional writes on a datastore: the few operations the output store builds its guarantees on.

Every backend gives the same five calls on full paths of its filesystem (as
``DatastoreAccess.full_path`` returns them):

- ``read(path)``: ``(bytes, etag)``, or None when there is no such object;
- ``put_if_absent(path, data)``: create the object whole, or return None if it exists;
- ``put_if_match(path, data, etag)``: replace it whole, only while it still has ``etag``;
- ``delete_if_match(path, etag)``: delete it, only while it still has ``etag``;
- ``list(prefix)``: the objects under folder ``prefix``, recursively.

An etag changes on every write. Two callers that read the same etag and both try to replace or
delete the object cannot both succeed: exactly one wins, the other is told (None / False).

- Local disk (``LocalObjects``): objects appear whole (written to a temporary file, then
  ``link``-ed into place, which fails if the name exists; replaced with ``rename``); replace and
  delete check the etag under an exclusive record lock (``lockf``) on a lock file in the
  object's folder. The etag is the inode, the modification time in nanoseconds and a digest of
  the content.
- Azure Blob (``AzureBlobObjects``): the service's own preconditions, through the client adlfs
  holds: ``If-None-Match: *`` for put_if_absent, ``If-Match: <etag>`` for replace and delete.
- S3 (``S3Objects``, hooks/s3_objects.py): ``If-None-Match: *`` and ``If-Match: <etag>`` on
  PutObject and DeleteObject.
- Google Cloud Storage (``GcsObjects``, hooks/gcs_objects.py): ``ifGenerationMatch`` on uploads
  and deletes; the generation is the etag.
- Anything else fsspec opens (``FsspecObjects``): best effort, see ``strict``: check, write, read
  back. Two writers racing within the same moment can both believe they won. It is also what a
  datastore with ``"conditional_writes": false`` in its config gets, for an S3-compatible
  service without conditional requests (bench/conditional_writes.py measures the difference).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import posixpath
import tempfile
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from mlpipe_provider.config import _UMASK
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.cloud_objects import CloudObjects
from mlpipe_provider.hooks.datastore import redact

LOCK_NAME = ".mlpipe-objects.lock"
_TMP_PREFIX = ".mlpipe-tmp-"
AZURE_PROTOCOLS = frozenset({"az", "abfs", "abfss"})
S3_PROTOCOLS = frozenset({"s3", "s3a"})
GCS_PROTOCOLS = frozenset({"gs", "gcs"})


class ConditionalObjects(Protocol):
    """The interface; see the module docstring."""

    strict: bool  # True where the conditional operations are atomic on the backend itself

    def read(self, path: str) -> tuple[bytes, str] | None: ...
    def put_if_absent(self, path: str, data: bytes) -> str | None: ...
    def put_if_match(self, path: str, data: bytes, etag: str) -> str | None: ...
    def delete_if_match(self, path: str, etag: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...


def conditional_objects(access: Any) -> ConditionalObjects:
    """The conditional-operations backend for an opened datastore (a ``DatastoreAccess``)."""
    if access.is_local:
        return LocalObjects()
    protocol = access.fs.protocol
    protocols = set(protocol if isinstance(protocol, (tuple, list)) else (protocol,))
    if not getattr(access, "conditional_writes", True):
        return FsspecObjects(access.fs, access.name, access.options)
    if protocols & AZURE_PROTOCOLS and hasattr(access.fs, "service_client"):
        return AzureBlobObjects(access.fs, access.name, access.options)
    if protocols & S3_PROTOCOLS and hasattr(access.fs, "get_s3"):
        from mlpipe_provider.hooks.s3_objects import S3Objects

        return S3Objects(access.fs, access.name, access.options)
    if protocols & GCS_PROTOCOLS and hasattr(access.fs, "_location"):
        from mlpipe_provider.hooks.gcs_objects import GcsObjects

        return GcsObjects(access.fs, access.name, access.options)
    return FsspecObjects(access.fs, access.name, access.options)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


# --- local disk --------------------------------------------------------------------------------

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _fresh_locks_after_fork() -> None:
    """A forked child has only the forking thread: locks other threads held stay locked in it
    forever, so it starts with new ones (POSIX record locks are not inherited by a fork)."""
    global _THREAD_LOCKS, _THREAD_LOCKS_GUARD
    _THREAD_LOCKS = {}
    _THREAD_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


class LocalObjects:
    """Objects as files; see the module docstring for how each operation stays atomic."""

    strict = True

    @staticmethod
    def _etag(st: os.stat_result, data: bytes) -> str:
        return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{_digest(data)}"'

    def read(self, path: str) -> tuple[bytes, str] | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        except IsADirectoryError:
            return None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        return data, self._etag(st, data)

    def _temp(self, path: str, data: bytes) -> tuple[str, str]:
        """A complete temporary file beside ``path``: (its name, the etag it will have there)."""
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX, suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        return tmp, self._etag(st, data)

    def put_if_absent(self, path: str, data: bytes) -> str | None:
        tmp, etag = self._temp(path, data)
        try:
            os.link(tmp, path)  # fails if the name exists; the file appears whole
        except FileExistsError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            return self._put_if_absent_without_links(path, data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return etag

    def _put_if_absent_without_links(self, path: str, data: bytes) -> str | None:
        """For filesystems without hard links: exclusive create, under the folder's lock, so a
        replace or delete (which re-reads under that lock) never acts on a half-written file. A
        plain read may see it partial there, which the store reads as a miss."""
        with self._locked(path):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return None
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                st = os.fstat(handle.fileno())
            return self._etag(st, data)

    @contextlib.contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        """Exclusive across processes, also on NFS (a POSIX record lock on the folder's lock
        file, which a forked child does not inherit, unlike ``flock``), and across the threads of
        one process (which record locks do not separate: a lock per lock file in this process)."""
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        lock_path = os.path.join(folder, LOCK_NAME)
        with _THREAD_LOCKS_GUARD:
            thread_lock = _THREAD_LOCKS.setdefault(lock_path, threading.Lock())
        with thread_lock:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the record lock

    def put_if_match(self, path: str, data: bytes, etag: str) -> str | None:
        with self._locked(path):
            current = self.read(path)
            if current is None or current[1] != etag:
                return None
            tmp, new_etag = self._temp(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            return new_etag

    def delete_if_match(self, path: str, etag: str) -> bool:
        with self._locked(path):
            current = self.read(path)
            if current is None or current[1] != etag:
                return False
            os.unlink(path)
            return True

    def list(self, prefix: str) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(prefix):
            dirs.sort()
            found.extend(
                os.path.join(folder, name)
                for name in sorted(files)
                if name != LOCK_NAME and not name.startswith(_TMP_PREFIX)
            )
        return found


# --- Azure Blob --------------------------------------------------------------------------------


def _container_missing(exc: Any) -> bool:
    """A 404 about the container, not the blob: a wrong datastore, never "someone else won"."""
    return getattr(exc, "error_code", None) == "ContainerNotFound" or "ContainerNotFound" in str(
        exc
    )


class AzureBlobObjects(CloudObjects):
    """Blob preconditions through the async client of an adlfs filesystem, on fsspec's loop."""

    bucket_word = "container"

    def _missing_container(self, container: str) -> DatastoreError:
        return DatastoreError(
            f"datastore {self.datastore!r}: container {container!r} does not exist "
            "(create it, or register the datastore with create_if_not_exists=True)"
        )

    def _run(self, what: str, path: str, coroutine_function: Any, *args: Any) -> Any:
        from fsspec.asyn import sync

        try:
            return sync(self.fs.loop, coroutine_function, *args)
        except DatastoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - what the service said, minus any secret
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatastoreError(
                f"datastore {self.datastore!r}: cannot {what} {path!r}: "
                f"{redact(first, self.options)[:300]}"
            ) from None

    def read(self, path: str) -> tuple[bytes, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        container, key = self._split(path)

        async def go() -> tuple[bytes, str] | None:
            async with self.fs.service_client.get_blob_client(container, key) as blob:
                try:
                    stream = await blob.download_blob()
                    data = await stream.readall()
                except ResourceNotFoundError:
                    return None
                return data, stream.properties.etag

        return self._run("read", path, go)

    def _upload(self, path: str, data: bytes, **conditions: Any) -> str | None:
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        container, key = self._split(path)

        async def go() -> str | None:
            async with self.fs.service_client.get_blob_client(container, key) as blob:
                try:
                    # One Put Blob request (far below the single-put size): atomic on the service.
                    result = await blob.upload_blob(
                        data, metadata={"is_directory": "false"}, **conditions
                    )
                except ResourceNotFoundError as exc:
                    if _container_missing(exc):
                        raise self._missing_container(container) from None
                    return None
                except (ResourceExistsError, ResourceModifiedError):
                    return None
                return result["etag"]

        return self._run("write", path, go)

    def put_if_absent(self, path: str, data: bytes) -> str | None:
        return self._upload(path, data, overwrite=False)

    def put_if_match(self, path: str, data: bytes, etag: str) -> str | None:
        from azure.core import MatchConditions

        return self._upload(
            path, data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
        )

    def delete_if_match(self, path: str, etag: str) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        container, key = self._split(path)

        async def go() -> bool:
            async with self.fs.service_client.get_blob_client(container, key) as blob:
                try:
                    await blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
                except (ResourceModifiedError, ResourceNotFoundError):
                    return False
                return True

        return self._run("delete", path, go)

    def list(self, prefix: str) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        container, key = self.fs.split_path(prefix)[:2]
        start = key.rstrip("/") + "/" if key else ""

        async def go() -> list[str]:
            names: list[str] = []
            async with self.fs.service_client.get_container_client(container) as client:
                try:
                    async for blob in client.list_blobs(name_starts_with=start or None):
                        names.append(f"{container}/{blob.name}")
                except ResourceNotFoundError:
                    return []
            return sorted(names)

        return self._run("list", prefix, go)


# --- any other fsspec filesystem ---------------------------------------------------------------


class FsspecObjects:
    """Best effort for backends without preconditions here: look, write, read back.

    A write that lost a race to a write at the same moment is usually seen on the read-back, but
    not always (both can read their own bytes before the other's write lands). The output store
    stays safe for reuse (a manifest is only written after its outputs are complete, so any entry
    read is whole); what can fail is the lease, letting two runs compute the same step at once.
    """

    strict = False

    def __init__(self, fs: Any, datastore: str, options: dict[str, Any]):
        self.fs = fs
        self.datastore = datastore
        self.options = options

    def _guard(self, what: str, path: str, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except (FileNotFoundError, DatastoreError):
            raise
        except Exception as exc:  # noqa: BLE001 - what the service said, minus any secret
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatastoreError(
                f"datastore {self.datastore!r}: cannot {what} {path!r}: "
                f"{redact(first, self.options)[:300]}"
            ) from None

    def read(self, path: str) -> tuple[bytes, str] | None:
        try:
            data = self._guard("read", path, self.fs.cat_file, path)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data, f'"{_digest(data)}"'

    def _write_and_check(self, path: str, data: bytes) -> str | None:
        parent = posixpath.dirname(path)
        if parent:
            self._guard("write", path, lambda: self.fs.makedirs(parent, exist_ok=True))
        self._guard("write", path, self.fs.pipe_file, path, data)
        back = self.read(path)
        return back[1] if back is not None and back[0] == data else None

    def _exists(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return self.read(path) is not None

    def put_if_absent(self, path: str, data: bytes) -> str | None:
        if self._exists(path):
            return None
        return self._write_and_check(path, data)

    def put_if_match(self, path: str, data: bytes, etag: str) -> str | None:
        current = self.read(path)
        if current is None or current[1] != etag:
            return None
        return self._write_and_check(path, data)

    def delete_if_match(self, path: str, etag: str) -> bool:
        current = self.read(path)
        if current is None or current[1] != etag:
            return False
        try:
            self._guard("delete", path, self.fs.rm_file, path)
        except FileNotFoundError:
            return False
        self.fs.invalidate_cache(path)
        return True

    def list(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache(prefix)
        try:
            return sorted(self._guard("list", prefix, self.fs.find, prefix))
        except FileNotFoundError:
            return []
