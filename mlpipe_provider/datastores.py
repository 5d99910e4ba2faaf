"""Datastore access through fsspec, with every path kept inside its datastore.

A datastore is a root URL (a local folder by default; ``az://``, ``s3://``, ``gs://`` through
fsspec). Paths that come from a pipeline definition are checked here, once, for everyone: no
absolute paths, no ``..``, and on local disks no symlink that resolves outside the root.
"""

from __future__ import annotations

import logging
import os
import posixpath
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec

from mlpipe_provider.config import DatastoreConfig, WorkspaceConfig
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.datastore import redact, shorten_sdk_retries, storage_options


def safe_relative_path(path: str | None, *, what: str = "path") -> str:
    """Normalise a datastore-relative path, refusing anything that could escape the root."""
    if path is None or path in ("", "."):
        return ""
    if not isinstance(path, str):
        raise DatastoreError(f"{what} must be a string, got {type(path).__name__}")
    if "\x00" in path:
        raise DatastoreError(f"{what} {path!r} contains a NUL byte")
    candidate = path.replace("\\", "/")
    if (
        candidate.startswith("/")
        or PurePosixPath(candidate).is_absolute()
        or ":" in candidate.split("/")[0]
    ):
        raise DatastoreError(f"{what} {path!r} is absolute; it must be relative to its datastore")
    parts = [p for p in candidate.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise DatastoreError(f"{what} {path!r} contains '..'; it must stay inside its datastore")
    return "/".join(parts)


@dataclass
class DatastoreAccess:
    """An opened datastore: the fsspec filesystem and the root every path is joined to."""

    name: str
    url: str
    fs: Any
    root: str
    # Credentials may be in here: never printed, logged, or passed to anything but the fs.
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    # False where the service lacks conditional requests (an older S3-compatible server): the
    # output store then falls back to check-then-write (hooks/object_store.py).
    conditional_writes: bool = True

    @property
    def is_local(self) -> bool:
        protocol = self.fs.protocol
        protocols = protocol if isinstance(protocol, (tuple, list)) else (protocol,)
        return "file" in protocols or "local" in protocols

    def full_path(self, relative: str | None, *, what: str = "path") -> str:
        rel = safe_relative_path(relative, what=what)
        full = posixpath.join(self.root, rel) if rel else self.root
        if self.is_local:
            self._refuse_symlink_escape(full, relative or "", what)
        return full

    def local_path(self, relative: str | None, *, what: str = "path") -> Path:
        """A local filesystem path; only local datastores have one without a download."""
        if not self.is_local:
            raise DatastoreError(
                f"datastore {self.name!r} ({self.url}) is not on a local disk; "
                "its data must be downloaded first"
            )
        return Path(self.full_path(relative, what=what))

    def _refuse_symlink_escape(self, full: str, relative: str, what: str) -> None:
        root_real = os.path.realpath(self.root)
        real = os.path.realpath(full)
        if real != root_real and not real.startswith(root_real + os.sep):
            raise DatastoreError(
                f"{what} {relative!r} resolves outside datastore {self.name!r} through a symlink"
            )

    def upload_dir(
        self, src_dir: str | os.PathLike, target_path: str | None, overwrite: bool
    ) -> int:
        """Copy a local folder into the datastore; existing files are kept unless ``overwrite``.

        One listing and one batched ``put`` rather than three requests per file: on blob storage
        that is the difference between seconds and minutes for a thousand small files."""
        src = Path(src_dir)
        if not src.is_dir():
            raise DatastoreError(f"upload source {str(src)!r} is not a directory")
        pairs = {
            self.full_path(posixpath.join(target_path or "", rel), what="target_path"): file
            for file in sorted(p for p in src.rglob("*") if p.is_file())
            for rel in [file.relative_to(src).as_posix()]
        }
        return self._put_many(pairs, target_path, overwrite)

    def _put_many(self, pairs: dict[str, Path], target_path: str | None, overwrite: bool) -> int:
        if not overwrite and pairs:
            existing = set(self.find_with_detail(target_path, what="target_path"))
            pairs = {dest: src for dest, src in pairs.items() if dest not in existing}
        if not pairs:
            return 0
        if self.is_local:
            for dest, src in pairs.items():
                Path(dest).parent.mkdir(parents=True, exist_ok=True)
                self.fs.put_file(os.fspath(src), dest)
        else:
            dests = sorted(pairs)
            self._guard(
                "upload to",
                target_path,
                self.fs.put,
                [os.fspath(pairs[d]) for d in dests],
                dests,
            )
        return len(pairs)

    def upload_file(self, src: str | os.PathLike, target: str, overwrite: bool) -> int:
        dest = self.full_path(target, what="target_path")
        if not overwrite and self.fs.exists(dest):
            return 0
        parent = posixpath.dirname(dest)
        if parent and self.is_local:
            self.fs.makedirs(parent, exist_ok=True)
        self.fs.put_file(os.fspath(src), dest)
        return 1

    def download(self, target_path: str | os.PathLike, prefix: str | None, overwrite: bool) -> int:
        """Copy every file whose path starts with ``prefix`` (a string prefix, as blob listings
        match in v1: ``data/v`` matches ``data/v1/...``; ``data/`` matches only that folder)
        to ``target_path/<full path>``, with one listing and one batched ``get``."""
        rel_prefix = safe_relative_path(prefix, what="prefix")
        if rel_prefix and isinstance(prefix, str) and prefix.replace("\\", "/").endswith("/"):
            rel_prefix += "/"
        target = Path(target_path)
        parent_rel = (
            rel_prefix.rstrip("/")
            if not rel_prefix or rel_prefix.endswith("/")
            else posixpath.dirname(rel_prefix)
        )
        wanted = posixpath.join(self.root, rel_prefix) if rel_prefix else self.root
        try:
            candidates = self.find_with_detail(parent_rel, what="prefix")
        except FileNotFoundError:
            return 0
        pairs: dict[str, Path] = {}
        for remote in sorted(candidates):
            if not (remote == wanted or remote.startswith(wanted)):
                continue
            dest = target / posixpath.relpath(remote, self.root)
            if dest.exists() and not overwrite:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            pairs[remote] = dest
        if not pairs:
            return 0
        if self.is_local:
            for remote, dest in pairs.items():
                self.fs.get_file(remote, os.fspath(dest))
        else:
            remotes = sorted(pairs)
            self._guard(
                "download", prefix, self.fs.get, remotes, [os.fspath(pairs[r]) for r in remotes]
            )
        return len(pairs)

    # --- whole objects, listings and deletion (the output store, ``mlpipe store``) -----------
    def _guard(self, what: str, relative: str | None, function: Any, *args: Any, **kw: Any) -> Any:
        """Run a filesystem call; a service's error becomes a DatastoreError without secrets."""
        try:
            return function(*args, **kw)
        except FileNotFoundError:
            if what in ("upload to", "write"):  # a read's miss is the caller's to judge
                self._refuse_missing_bucket()
            raise
        except DatastoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - report what the service said, minus secrets
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise DatastoreError(
                f"datastore {self.name!r}: cannot {what} {relative or '/'!r}: "
                f"{redact(first, self.options)[:300]}"
            ) from None

    def _refuse_missing_bucket(self) -> None:
        """A "not found" from an object store whose bucket (container) is gone is about the
        datastore, not the path: say so, instead of the service's bare 404."""
        if self.is_local:
            return
        bucket = self.root.split("/", 1)[0]
        try:
            missing = bool(bucket) and not self.fs.exists(bucket)
        except Exception:  # noqa: BLE001 - the original error says more than this probe
            return
        if missing:
            raise DatastoreError(
                f"datastore {self.name!r}: bucket {bucket!r} does not exist (create it, or "
                "correct the datastore's url)"
            ) from None

    def exists(self, relative: str | None, *, what: str = "path") -> bool:
        full = self.full_path(relative, what=what)
        if not self.is_local:
            self.fs.invalidate_cache(full)
        return bool(self._guard("look at", relative, self.fs.exists, full))

    def read_bytes(self, relative: str, *, what: str = "path") -> bytes:
        full = self.full_path(relative, what=what)
        return self._guard("read", relative, self.fs.cat_file, full)

    def write_bytes(self, relative: str, data: bytes, *, what: str = "path") -> None:
        full = self.full_path(relative, what=what)
        parent = posixpath.dirname(full)
        if parent:
            self._guard("write", relative, self.fs.makedirs, parent, exist_ok=True)
        self._guard("write", relative, self.fs.pipe_file, full, data)

    def find_with_detail(self, relative: str | None, *, what: str = "path") -> dict[str, dict]:
        """Every file at or under ``relative``: full path -> fsspec info (size, modified time)."""
        full = self.full_path(relative, what=what)
        if not self.is_local:
            self.fs.invalidate_cache(full)
        try:
            found = self._guard("list", relative, self.fs.find, full, detail=True)
        except FileNotFoundError:
            return {}
        return {path: info for path, info in found.items() if info.get("type") != "directory"}

    def list_folders(self, relative: str | None, *, what: str = "path") -> list[str]:
        """Names of the folders directly under ``relative`` (none if it does not exist)."""
        full = self.full_path(relative, what=what)
        if not self.is_local:
            self.fs.invalidate_cache(full)
        try:
            listed = self._guard("list", relative, self.fs.ls, full, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            posixpath.basename(str(info["name"]).rstrip("/"))
            for info in listed
            if info.get("type") == "directory"
        )

    def newest_mtime(self, relative: str | None, *, what: str = "path") -> float | None:
        """The latest modification time (epoch seconds) of anything at or under ``relative``."""
        full = self.full_path(relative, what=what)
        if self.is_local:
            if not os.path.lexists(full):
                return None
            newest = os.lstat(full).st_mtime
            for folder, dirs, files in os.walk(full):
                for name in dirs + files:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
            return newest
        times = [modified_time(info) for info in self.find_with_detail(relative).values()]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    def remove(self, relative: str, *, what: str = "path") -> bool:
        """Delete a file or a folder with everything under it; False if there was nothing."""
        full = self.full_path(relative, what=what)
        if not self.exists(relative, what=what):
            return False
        try:
            self._guard("delete", relative, self.fs.rm, full, recursive=True)
        except FileNotFoundError:
            return False
        if not self.is_local:
            self.fs.invalidate_cache(full)
        return True

    def write_text(self, relative: str, text: str, *, what: str = "path") -> None:
        """Write a small text file so readers see all of it or nothing: an atomic rename on a
        local disk, one whole-object put on an object store (never a local path, so run records
        work when the default datastore is remote)."""
        from mlpipe_provider.config import atomic_write_text

        full = self.full_path(relative, what=what)
        if self.is_local:
            atomic_write_text(Path(full), text)
            return
        self.fs.pipe_file(full, text.encode("utf-8"))


def modified_time(info: dict[str, Any]) -> float | None:
    """Epoch seconds from an fsspec info dict, whichever backend wrote it."""
    for key in ("mtime", "last_modified", "LastModified", "updated", "modified"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def open_datastore(workspace_dir: Path, config: WorkspaceConfig, name: str) -> DatastoreAccess:
    """Open a datastore by name; relative local URLs are relative to the workspace folder."""
    ds = config.datastores.get(name)
    if ds is None:
        known = ", ".join(sorted(config.datastores)) or "none"
        raise DatastoreError(f"unknown datastore {name!r} (this workspace has: {known})")
    return open_datastore_config(workspace_dir, name, ds)


def open_datastore_config(workspace_dir: Path, name: str, ds: DatastoreConfig) -> DatastoreAccess:
    from mlpipe_provider.sql_datastores import is_sql_datastore, not_a_file_store

    if is_sql_datastore(ds):
        raise not_a_file_store(name, ds)
    url = ds.url
    protocol, _, rest = url.partition("://")
    if not rest:
        local = Path(url)
        if not local.is_absolute():
            local = Path(workspace_dir) / local
        local.mkdir(parents=True, exist_ok=True)
        fs = fsspec.filesystem("file")
        return DatastoreAccess(name=name, url=url, fs=fs, root=str(local.resolve()))
    if protocol == "file":
        fs = fsspec.filesystem("file")
        return DatastoreAccess(name=name, url=url, fs=fs, root="/" + rest.lstrip("/").rstrip("/"))
    options = storage_options(Path(workspace_dir), name, ds, protocol)
    # The Azure SDK logs every HTTP request at INFO: thousands of lines in a task log for one
    # step (headers redacted, but noise that buries the step's own output).
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    try:
        fs = fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        extra_name = {"az": "azure", "abfs": "azure", "s3": "s3", "gs": "gcs", "gcs": "gcs"}
        raise DatastoreError(
            f"datastore {name!r} ({url}) needs an fsspec backend that is not installed: {exc}; "
            f"install mlpipe[{extra_name.get(protocol, protocol)}]"
        ) from None
    except ValueError as exc:
        raise DatastoreError(f"datastore {name!r} ({url}): {redact(str(exc), options)}") from None
    access = DatastoreAccess(
        name=name,
        url=url,
        fs=fs,
        root=rest.rstrip("/"),
        options=options,
        conditional_writes=(ds.model_extra or {}).get("conditional_writes", True) is not False,
    )
    # The Azure SDK's own retries wait minutes on an unreachable service, longer than a lease
    # lives; bound them here, for every user of this filesystem (store, steps, transfers), and
    # let mlpipe's retries (runtime/transfer/retry.py) decide how long to keep trying.
    shorten_sdk_retries(access)
    return access
