"""Datastore access through fsspec, with every path kept inside its datastore.

A datastore is a root URL (a local folder by default; ``az://``, ``s3://``, ``gs://`` through
fsspec). Paths that come from a pipeline definition are checked here, once, for everyone: no
absolute paths, no ``..``, and on local disks no symlink that resolves outside the root.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec

from mlpipe_provider.config import DatastoreConfig, WorkspaceConfig
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.datastore import redact, storage_options


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
        """Copy a local folder into the datastore; existing files are kept unless ``overwrite``."""
        src = Path(src_dir)
        if not src.is_dir():
            raise DatastoreError(f"upload source {str(src)!r} is not a directory")
        count = 0
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = file.relative_to(src).as_posix()
            count += self.upload_file(file, posixpath.join(target_path or "", rel), overwrite)
        return count

    def upload_file(self, src: str | os.PathLike, target: str, overwrite: bool) -> int:
        dest = self.full_path(target, what="target_path")
        if not overwrite and self.fs.exists(dest):
            return 0
        parent = posixpath.dirname(dest)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        self.fs.put_file(os.fspath(src), dest)
        return 1

    def download(self, target_path: str | os.PathLike, prefix: str | None, overwrite: bool) -> int:
        """Copy every file whose path starts with ``prefix`` (a string prefix, as blob listings
        match in v1: ``data/v`` matches ``data/v1/...``) to ``target_path/<full path>``."""
        rel_prefix = safe_relative_path(prefix, what="prefix")
        target = Path(target_path)
        parent_rel = (
            rel_prefix
            if not rel_prefix or rel_prefix.endswith("/")
            else posixpath.dirname(rel_prefix)
        )
        parent = self.full_path(parent_rel, what="prefix")
        if not self.fs.exists(parent):
            return 0
        wanted = posixpath.join(self.root, rel_prefix) if rel_prefix else self.root
        candidates = [parent] if self.fs.isfile(parent) else self.fs.find(parent)
        files = sorted(f for f in candidates if f == wanted or f.startswith(wanted))
        count = 0
        for remote in files:
            rel = posixpath.relpath(remote, self.root)
            dest = target / rel
            if dest.exists() and not overwrite:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(remote, os.fspath(dest))
            count += 1
        return count


def open_datastore(workspace_dir: Path, config: WorkspaceConfig, name: str) -> DatastoreAccess:
    """Open a datastore by name; relative local URLs are relative to the workspace folder."""
    ds = config.datastores.get(name)
    if ds is None:
        known = ", ".join(sorted(config.datastores)) or "none"
        raise DatastoreError(f"unknown datastore {name!r} (this workspace has: {known})")
    return open_datastore_config(workspace_dir, name, ds)


def open_datastore_config(workspace_dir: Path, name: str, ds: DatastoreConfig) -> DatastoreAccess:
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
    return DatastoreAccess(name=name, url=url, fs=fs, root=rest.rstrip("/"), options=options)
