"""Where one attempt of a step finds its data on this machine, whatever datastore holds it.

A step's script reads and writes local paths. For data on a local datastore those are the
datastore's own paths (nothing copied). For an object store (Azure Blob, S3, GCS):

* inputs are downloaded into the attempt's staging area before the script starts (v1's
  ``download`` mode; ``as_mount()`` is served the same way, a read-through copy, since there is
  no FUSE here), so the script sees exactly the bytes that were fingerprinted or newer ones, and
  newer ones make the post-run fingerprint check refuse to record the result;
* outputs are written to a staging folder and uploaded to ``azureml/<step run id>/<output>`` only
  after the script succeeded (``as_upload`` semantics), digested from the local copy, with the
  upload's listing checked against the local sizes; a failed or killed attempt uploads nothing.

``path_on_compute`` puts an input or output at that relative path of the attempt's working
folder (absolute paths and ``..`` are refused). When a step uses it on the local backend, the
script runs in that working folder, which also links every top-level entry of the source
directory, so hard-coded relative paths (v1's reason for ``path_on_compute``) resolve.

The staging area is ``$MLPIPE_STAGING_DIR/<step run id>`` (default: the workspace's
``cache/attempts``), removed when the attempt ends.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe_provider import remote_digest
from mlpipe_provider.datastores import DatastoreAccess, safe_relative_path
from mlpipe_provider.errors import DatastoreError, UserErrorException
from mlpipe_provider.hashing import StatCache, digest_path, iter_tree, stat_cache_path
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.runtime.transfer.copy import download_files, upload_files
from mlpipe_provider.runtime.transfer.retry import Retrier

STAGING_ENV = "MLPIPE_STAGING_DIR"


def staging_root(ws: StepWorkspace) -> Path:
    configured = os.environ.get(STAGING_ENV)
    return Path(configured) if configured else ws.directory / "cache" / "attempts"


@dataclass
class _PendingOutput:
    port: str
    staged: Path
    datastore: str
    rel: str


@dataclass
class StepData:
    """One attempt's local view of its data; ``close`` removes whatever it downloaded or staged."""

    ws: StepWorkspace
    step_name: str
    step_run_id: str
    log: Any = None
    area: Path = field(init=False)
    placed: dict[str, str] = field(default_factory=dict)  # path_on_compute -> what
    pending: list[_PendingOutput] = field(default_factory=list)
    _retriers: dict[str, Retrier] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.area = staging_root(self.ws) / self.step_run_id
        self.area.mkdir(parents=True, exist_ok=True)

    # --- datastores ------------------------------------------------------------------------
    def store(self, name: str) -> DatastoreAccess:
        return self.ws.datastore(name)

    def call(self, name: str) -> Retrier:
        if name not in self._retriers:
            self._retriers[name] = Retrier(self.step_name, self.store(name), self.log)
        return self._retriers[name]

    # --- path_on_compute -------------------------------------------------------------------
    def working_place(self, path_on_compute: str | None, what: str) -> Path | None:
        """``<working folder>/<path_on_compute>``, checked: relative, inside, not shared."""
        if not path_on_compute:
            return None
        label = f"step {self.step_name!r}, {what} path_on_compute"
        try:
            rel = safe_relative_path(path_on_compute, what=label)
        except DatastoreError as exc:
            raise UserErrorException(str(exc)) from None
        if not rel:
            raise UserErrorException(
                f"{label}: {path_on_compute!r} names the working folder itself"
            )
        for other, owner in self.placed.items():
            if rel == other or rel.startswith(other + "/") or other.startswith(rel + "/"):
                raise UserErrorException(
                    f"{label}: {rel!r} overlaps {owner}'s path_on_compute {other!r}"
                )
        self.placed[rel] = what
        return self.work_dir / rel

    @property
    def work_dir(self) -> Path:
        return self.area / "work"

    def link_source(self, source_dir: Path) -> Path:
        """The working folder, with a link to each top-level entry of the source directory that
        no path_on_compute took; the script runs here so its relative paths resolve."""
        work = self.work_dir
        work.mkdir(parents=True, exist_ok=True)
        taken = {rel.split("/")[0] for rel in self.placed}
        for entry in os.scandir(source_dir):
            if entry.name in taken:
                raise UserErrorException(
                    f"step {self.step_name!r}: path_on_compute {entry.name!r} would hide "
                    f"{entry.name!r} of the step's source directory"
                )
            os.symlink(entry.path, work / entry.name)
        return work

    # --- inputs ----------------------------------------------------------------------------
    def input_path(
        self,
        name: str,
        datastore: str,
        rel: str,
        path_on_compute: str | None,
        *,
        missing: str,
    ) -> str:
        """The local path a step reads input ``name`` (``rel`` on ``datastore``) from."""
        store = self.store(datastore)
        place = self.working_place(path_on_compute, f"input {name!r}")
        if store.is_local:
            path = store.local_path(rel, what=f"input {name!r}")
            if not path.exists():
                raise UserErrorException(missing)
            if place is None:
                return str(path)
            place.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, place)  # v1 would download; a link is the same bytes, no copy
            return str(place)
        files = remote_digest.list_tree(store, rel, call=self.call(datastore))
        if files is None:
            raise UserErrorException(missing)
        if files and files[0].rel == "":  # one object: the step gets one file
            target = place or self.area / "inputs" / name / posixpath.basename(files[0].path)
        else:
            target = place or self.area / "inputs" / name
            target.mkdir(parents=True, exist_ok=True)
        self._download(datastore, files, target, name)
        return str(target)

    def _download(
        self, datastore: str, files: list[remote_digest.RemoteFile], target: Path, name: str
    ) -> None:
        store = self.store(datastore)
        remote = [f.path for f in files]
        local = [os.fspath(target / f.rel) if f.rel else os.fspath(target) for f in files]
        download_files(
            store,
            remote,
            local,
            self.call(datastore),
            f"download of input {name!r}",
            (posixpath.commonpath(remote) if len(remote) > 1 else remote[0]) if remote else "",
        )
        total = sum(f.size for f in files)
        if self.log is not None:
            self.log.info(
                "mlpipe: step %r input %r: downloaded %d file(s), %d bytes from datastore %r",
                self.step_name,
                name,
                len(files),
                total,
                datastore,
            )

    # --- outputs ---------------------------------------------------------------------------
    def output_path(
        self,
        port: str,
        datastore: str,
        rel: str,
        path_on_compute: str | None,
        *,
        is_directory: bool = True,
    ) -> str:
        """The local path a step writes output ``port`` at (staged unless it is the local
        datastore's own path). ``is_directory``: an existing empty folder; otherwise (v1's
        ``PipelineData(is_directory=False)``, the default) a path that does not exist yet under a
        folder that does, so the script may create a file or a folder there."""
        store = self.store(datastore)
        place = self.working_place(path_on_compute, f"output {port!r}")
        if store.is_local and place is None:
            path = store.local_path(rel, what=f"output {port!r}")
        else:
            path = place or self.area / "outputs" / port
            self.pending.append(_PendingOutput(port, path, datastore, rel))
        if is_directory:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def staged_folders(self) -> dict[str, Path]:
        return {p.port: p.staged for p in self.pending}

    def publish_outputs(self) -> dict[str, dict[str, Any]]:
        """After the script succeeded: move staged outputs into local datastores, upload them to
        object stores. Returns ``{port: {"digest", "files", "size"}}`` for uploaded outputs
        (digested from the local copy, so nothing is downloaded again to record them)."""
        done: dict[str, dict[str, Any]] = {}
        for item in self.pending:
            store = self.store(item.datastore)
            if store.is_local:
                final = store.local_path(item.rel, what=f"output {item.port!r}")
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(os.fspath(item.staged), os.fspath(final))
                continue
            done[item.port] = self._upload(item, store)
        return done

    def _upload(self, item: _PendingOutput, store: DatastoreAccess) -> dict[str, Any]:
        call = self.call(item.datastore)
        cache = StatCache(None)
        if item.staged.is_dir():
            local_files = {rel: entry.path for rel, entry in iter_tree(item.staged, False)}
        else:  # the script left one file at the output path: the output is that one object
            local_files = {"": os.fspath(item.staged)}
        tree = digest_path(item.staged, cache)
        per_file = {rel: cache.digest(path) for rel, path in local_files.items()}
        full = store.full_path(item.rel, what=f"output {item.port!r}")
        remote = [posixpath.join(full, rel) if rel else full for rel in sorted(local_files)]
        for parent in sorted({posixpath.dirname(p) for p in remote}):
            call("mkdir", parent, lambda p=parent: store.fs.makedirs(p, exist_ok=True))
        sources = [local_files[rel] for rel in sorted(local_files)]
        upload_files(store, sources, remote, call, f"upload of output {item.port!r}", item.rel)
        listed = remote_digest.list_tree(store, item.rel, call=call) or []
        sizes = {f.rel: f.size for f in listed}
        if sizes != tree.files:
            raise DatastoreError(
                f"step {self.step_name!r}, output {item.port!r}: the upload to datastore "
                f"{item.datastore!r} at {item.rel!r} does not hold what was written "
                f"({len(sizes)} object(s) listed, {len(tree.files)} file(s) written)"
            )
        rcache = remote_digest.RemoteDigestCache(stat_cache_path(self.ws.directory))
        try:
            remote_digest.remember_uploaded(store, listed, per_file, rcache)
        finally:
            rcache.close()
        if self.log is not None:
            self.log.info(
                "mlpipe: step %r output %r: uploaded %d file(s), %d bytes to datastore %r at %s",
                self.step_name,
                item.port,
                len(tree.files),
                tree.total_size,
                item.datastore,
                item.rel,
            )
        return {"digest": tree.digest, "files": tree.files, "size": tree.total_size}

    def upload_folder(self, local: Path, datastore: str, rel: str, what: str) -> int:
        """Copy a local folder (the attempt's run record, metrics, artifacts) into a datastore."""
        store = self.store(datastore)
        files = sorted(
            (p.relative_to(local).as_posix(), p) for p in local.rglob("*") if p.is_file()
        )
        if not files:
            return 0
        full = store.full_path(rel, what=what)
        remote = [posixpath.join(full, r) for r, _ in files]
        local_files = [os.fspath(p) for _, p in files]
        upload_files(store, local_files, remote, self.call(datastore), f"upload of {what}", rel)
        return len(files)

    def close(self) -> None:
        shutil.rmtree(self.area, ignore_errors=True)
