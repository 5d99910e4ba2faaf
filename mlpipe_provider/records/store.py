"""Reading, writing, listing and updating workspace record files: one way for every kind.

Every record is a JSON object in a file of its own, written whole to a temporary file and renamed
into place (``config.atomic_write_text``), so a reader sees the old record or the new one, never a
torn one. Changing a record is ``update_record``: read, change, write while holding an exclusive
lock (``flock`` on a hidden ``.<file>.lock`` beside it), so two processes that change one record
at once (an endpoint's ``add`` in two notebooks) both land; plain rename-based writes alone would
let the second overwrite the first. Records that are written once and never changed (dataset and
environment versions) use ``create_record``, which refuses to replace an existing file, so two
registrations racing for one version number get two versions.

A record that cannot be read (missing, not JSON, not an object, or not the shape its model says)
is a ``RecordError`` naming the file: a damaged registry is reported, never silently skipped or
taken for an absent record.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records.models import (
    EndpointRecord,
    PipelineDraftRecord,
    PublishedPipelineRecord,
    Record,
    ScheduleRecord,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: updates are atomic but not serialized
    fcntl = None  # type: ignore[assignment]


class RecordError(UserErrorException):
    """A workspace record that is missing or damaged; the message names its file."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = Path(path)


# --- the JSON form ------------------------------------------------------------------------------
def dump_json(data: dict[str, Any]) -> str:
    """The one text form of a record: sorted keys, two-space indent, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (run files, which are rewritten as a run goes on)."""
    atomic_write_text(Path(path), dump_json(data))


def read_json(path: Path) -> dict[str, Any] | None:
    """A run file, or ``None`` when it is not there (yet) or not readable JSON.

    For files that are polled while another process may not have written them yet (a run's
    ``status.json``); registry records go through ``read_record``, which reports damage.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


# --- records ------------------------------------------------------------------------------------
def _check(path: Path, model: type[Record], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RecordError(f"workspace record {str(path)!r} is damaged: not a JSON object", path)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'record'}: {error['msg']}"
            for error in exc.errors()
        )
        raise RecordError(
            f"workspace record {str(path)!r} is damaged ({model.__name__}): {problems}", path
        ) from None
    return data


def find_record(path: Path, model: type[Record]) -> dict[str, Any] | None:
    """The record in ``path``, ``None`` when there is no such file; damage is a ``RecordError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"workspace record {str(path)!r} is unreadable: {exc}", path) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(
            f"workspace record {str(path)!r} is damaged: not valid JSON ({exc})", path
        ) from None
    return _check(path, model, data)


def read_record(path: Path, model: type[Record], missing: str | None = None) -> dict[str, Any]:
    """The record in ``path``; a ``RecordError`` naming the file when it is missing or damaged.

    ``missing`` says what was looked for ("no published pipeline 'x' in workspace 'w'"); the
    message then adds which file was not there.
    """
    record = find_record(path, model)
    if record is None:
        what = missing or "workspace record is missing"
        raise RecordError(f"{what}: no record file {str(path)!r}", Path(path))
    return record


def write_record(path: Path, model: type[Record], data: dict[str, Any]) -> None:
    """Write a checked record atomically; an unchanged record leaves its file alone (so a
    registry committed to git shows no change)."""
    path = Path(path)
    text = dump_json(_check(path, model, data))
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return
    atomic_write_text(path, text)


def create_record(path: Path, model: type[Record], data: dict[str, Any]) -> bool:
    """Write a new record only if ``path`` does not exist; ``False`` when another writer got there
    first. The file appears whole (``os.link`` of a finished temporary file), never half-written."""
    path = Path(path)
    text = dump_json(_check(path, model, data))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock for changing ``path``, across processes on this machine (and on
    shared file systems whose ``flock`` works)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def update_record(
    path: Path,
    model: type[Record],
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    missing: str | None = None,
) -> dict[str, Any]:
    """Read the record, apply ``change`` (it edits the dictionary in place or returns a new one)
    and write it back, all under the record's lock; returns the record as written.

    ``change`` sees the newest record, so it decides from what is stored now, not from a copy
    read earlier; an exception from it leaves the file as it was.
    """
    path = Path(path)
    with _locked(path):
        record = read_record(path, model, missing)
        changed = change(record)
        record = record if changed is None else changed
        write_record(path, model, record)
        return record


def list_records(
    folder: Path, model: type[Record], pattern: str = "*.json"
) -> list[dict[str, Any]]:
    """Every record in ``folder`` matching ``pattern`` (temporary and lock files never match),
    in file name order; a damaged one is a ``RecordError``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(pattern)):
        record = find_record(path, model)
        if record is not None:  # removed between the listing and the read
            found.append(record)
    return found


def version_records(folder: Path, model: type[Record]) -> list[dict[str, Any]]:
    """The numbered, write-once versions ``<n>.json`` in ``folder``, oldest first (the
    registries of datasets and models keep one such folder per name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        record
        for path in folder.glob("*.json")
        if path.stem.isdigit() and (record := find_record(path, model)) is not None
    ]
    return sorted(found, key=lambda r: int(r["version"]))


def version_names(root: Path) -> list[str]:
    """The names under ``root`` that have at least one version file."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.json")))


class Collection:
    """A kind of record kept as ``<workspace>/<folder>/<id>.json``."""

    def __init__(self, folder: str, model: type[Record]):
        self.folder = folder
        self.model = model

    def dir(self, workspace_dir: Path) -> Path:
        return Path(workspace_dir) / self.folder

    def path(self, workspace_dir: Path, record_id: str) -> Path:
        return self.dir(workspace_dir) / f"{record_id}.json"

    def find(self, workspace_dir: Path, record_id: str) -> dict[str, Any] | None:
        return find_record(self.path(workspace_dir, record_id), self.model)

    def get(
        self, workspace_dir: Path, record_id: str, missing: str | None = None
    ) -> dict[str, Any]:
        return read_record(self.path(workspace_dir, record_id), self.model, missing)

    def list(self, workspace_dir: Path) -> list[dict[str, Any]]:
        return list_records(self.dir(workspace_dir), self.model)

    def save(self, workspace_dir: Path, record: dict[str, Any]) -> None:
        write_record(self.path(workspace_dir, record["id"]), self.model, record)

    def update(
        self,
        workspace_dir: Path,
        record_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        missing: str | None = None,
    ) -> dict[str, Any]:
        return update_record(self.path(workspace_dir, record_id), self.model, change, missing)

    def delete(self, workspace_dir: Path, record_id: str) -> bool:
        """Remove the record (under its lock, so no update is in flight); False if absent."""
        path = self.path(workspace_dir, record_id)
        with _locked(path):
            if not path.is_file():
                return False
            path.unlink()
            return True


PUBLISHED = Collection("published", PublishedPipelineRecord)
ENDPOINTS = Collection("endpoints", EndpointRecord)
SCHEDULES = Collection("schedules", ScheduleRecord)
DRAFTS = Collection("drafts", PipelineDraftRecord)
