"""Registered models: immutable, numbered versions whose files live on the default datastore.

``<workspace>/models/<name>/<version>.json`` is one version's record (``records.ModelRecord``):
its name, number, tags, properties, description, the content digest of its files (``hashing``)
and where they are. The files themselves are copied to the workspace's default datastore under
``models/<name>/<digest>/<file or folder name>``: the location is named by the content, so
registering the same bytes again (v1 makes that a new version, and so do we) stores nothing new,
and a version's files can never be changed under its record. A version record is created once
(``records.create_record`` refuses an existing file), so two processes registering at once get
versions N and N+1, never one torn record.

Steps read models with ``Model.get_model_path`` (or ``Model(ws, name)``); when a step does, the
resolution (name, version asked for, version got, digest) is appended to the file named by
``$MLPIPE_MODELS_FILE``, which the step's runtime puts into the step's record and so into its
reuse manifest. ``stale_model`` is the reuse rule that reads it back: a stored result computed
with "the latest version" of a model is not reused once a newer version exists (the compiler
cannot see a ``get_model_path`` call inside a script, so this is checked when a step decides,
not folded into its fingerprint).

A low, run-time layer: used by the SDK's ``Model`` and ``Run.register_model`` and by the reuse
decision on workers; it imports neither the SDK, the compiler nor the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mlpipe_provider.config import WorkspaceConfig, load_config
from mlpipe_provider.datastores import DatastoreAccess, open_datastore
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import DIGEST_PREFIX, StatCache, digest_path
from mlpipe_provider.records import ModelRecord, create_record, version_names, version_records
from mlpipe_provider.tracking import mirror_model

REGISTRY_DIR = "models"
#: the folder on the default datastore that holds every model's files
DATASTORE_PREFIX = "models"
#: a running step's file of model resolutions (JSON lines), read back into its record
MODELS_FILE_ENV = "MLPIPE_MODELS_FILE"
#: where models on a remote datastore are downloaded to on a worker (default: a user cache)
MODEL_CACHE_ENV = "MLPIPE_MODEL_CACHE"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def check_name(name: Any) -> str:
    """v1's model name rule (letters, digits, ``_ . -``; up to 255), which also keeps the name
    usable as a folder name on every datastore."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise UserErrorException(
            f"model name {name!r} must start with a letter or digit and contain only letters, "
            "digits, '_', '.' and '-' (at most 255 characters)"
        )
    return name


def _folder(workspace_dir: Path, name: str) -> Path:
    return Path(workspace_dir) / REGISTRY_DIR / check_name(name)


def versions(workspace_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every registered version of ``name``, oldest first."""
    return version_records(_folder(workspace_dir, name), ModelRecord)


def names(workspace_dir: Path) -> list[str]:
    return version_names(Path(workspace_dir) / REGISTRY_DIR)


def latest(workspace_dir: Path, name: str) -> dict[str, Any] | None:
    found = versions(workspace_dir, name)
    return found[-1] if found else None


def get(workspace_dir: Path, name: str, version: Any = None) -> dict[str, Any]:
    """A version's record (the latest when ``version`` is None); a clear error when absent."""
    found = versions(workspace_dir, name)
    if not found:
        known = ", ".join(names(workspace_dir)) or "none"
        raise UserErrorException(
            f"no model named {name!r} is registered in this workspace (registered: {known})"
        )
    if version is None:
        return found[-1]
    try:
        wanted = int(version)
    except (TypeError, ValueError):
        raise UserErrorException(
            f"model {name!r}: version must be a number, got {version!r}"
        ) from None
    for record in found:
        if int(record["version"]) == wanted:
            return record
    have = ", ".join(str(r["version"]) for r in found)
    raise UserErrorException(f"model {name!r} has no version {wanted} (registered: {have})")


def all_versions(workspace_dir: Path) -> list[dict[str, Any]]:
    return [record for name in names(workspace_dir) for record in versions(workspace_dir, name)]


def _default_store(workspace_dir: Path, config: WorkspaceConfig | None) -> DatastoreAccess:
    config = config or load_config(Path(workspace_dir))
    return open_datastore(Path(workspace_dir), config, config.default_datastore)


def _store_files(store: DatastoreAccess, source: Path, target: str, files: dict[str, int]) -> None:
    """Copy the digested files (exactly those: ``iter_tree``'s view of a folder) to ``target``."""
    if source.is_dir():
        for rel in files:
            store.upload_file(source / rel, posixpath.join(target, rel), overwrite=True)
    else:
        store.upload_file(source, target, overwrite=True)


def register(
    workspace_dir: Path,
    name: str,
    source: str | os.PathLike,
    *,
    config: WorkspaceConfig | None = None,
    tags: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    description: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Register the file or folder ``source`` as the next version of ``name``; its record.

    The files are copied before the record is created, so a record always points at complete
    files; a crash in between leaves unreferenced files, never a version without its bytes.
    """
    check_name(name)
    source = Path(source)
    if not source.exists():
        raise UserErrorException(f"Model.register: model_path {str(source)!r} does not exist")
    tree = digest_path(source.resolve(), StatCache(None))
    if not tree.files:
        raise UserErrorException(f"Model.register: model_path {str(source)!r} holds no files")
    config = config or load_config(Path(workspace_dir))
    store = _default_store(workspace_dir, config)
    leaf = source.resolve().name
    location = posixpath.join(DATASTORE_PREFIX, name, tree.digest.removeprefix(DIGEST_PREFIX), leaf)
    found = versions(workspace_dir, name)
    if not any(r["path"] == location and r["datastore"] == store.name for r in found):
        _store_files(store, source.resolve(), location, tree.files)
    folder = _folder(workspace_dir, name)
    while True:
        version = int(found[-1]["version"]) + 1 if found else 1
        record = {
            **(extra or {}),
            "name": name,
            "version": version,
            "id": f"{name}:{version}",
            "description": description,
            "tags": {str(k): str(v) for k, v in (tags or {}).items()},
            "properties": {str(k): str(v) for k, v in (properties or {}).items()},
            "digest": tree.digest,
            "files": tree.files,
            "datastore": store.name,
            "path": location,
            "is_directory": source.is_dir(),
            "created": time.time(),
        }
        if create_record(folder / f"{version}.json", ModelRecord, record):
            mirror_model(config, record, _source_uri(store, location))
            return record
        found = versions(workspace_dir, name)  # another process took this number: look again


def _source_uri(store: DatastoreAccess, location: str) -> str:
    """Where the stored files are, as a URI another tool (MLflow) can read."""
    if store.is_local:
        return store.local_path(location, what="model").resolve().as_uri()
    return posixpath.join(store.url.rstrip("/"), location)


def _cache_root() -> Path:
    configured = os.environ.get(MODEL_CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlpipe" / "models"


def local_path(
    workspace_dir: Path, record: dict[str, Any], config: WorkspaceConfig | None = None
) -> Path:
    """The model's file or folder on this machine: in place on a local datastore (no copy), else
    downloaded once into a cache keyed by the content digest (a finished download is renamed
    into place, so a half-downloaded model is never handed out)."""
    config = config or load_config(Path(workspace_dir))
    store = open_datastore(Path(workspace_dir), config, record["datastore"])
    if store.is_local:
        path = store.local_path(record["path"], what=f"model {record['id']!r}")
        if not path.exists():
            raise UserErrorException(
                f"model {record['id']!r}: its files are missing from datastore "
                f"{record['datastore']!r} at {record['path']!r}"
            )
        return path
    leaf = posixpath.basename(record["path"])
    cached = _cache_root() / record["digest"].removeprefix(DIGEST_PREFIX)
    if (cached / leaf).exists():
        return cached / leaf
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".download-"))
    try:
        store.download(staging, record["path"], overwrite=True)
        downloaded = staging / record["path"]
        if not downloaded.exists():
            raise UserErrorException(
                f"model {record['id']!r}: nothing found on datastore {record['datastore']!r} "
                f"at {record['path']!r}"
            )
        finished = staging / "done"
        finished.mkdir()
        downloaded.rename(finished / leaf)
        # another process may have finished first: its copy has the same bytes
        with contextlib.suppress(OSError):
            finished.rename(cached)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached / leaf


def copy_to(
    workspace_dir: Path,
    record: dict[str, Any],
    target_dir: str | os.PathLike,
    *,
    exist_ok: bool = False,
    config: WorkspaceConfig | None = None,
) -> Path:
    """v1's ``model.download``: the model's file or folder copied into ``target_dir``."""
    source = local_path(workspace_dir, record, config)
    target = Path(target_dir) / source.name
    if target.exists() and not exist_ok:
        raise UserErrorException(
            f"model {record['id']!r}: {str(target)!r} already exists; pass exist_ok=True to "
            "overwrite it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    return target


# --- what steps resolved, and the reuse rule -----------------------------------------------------
def note_resolved(record: dict[str, Any], requested: Any) -> None:
    """Inside a step, remember that it read ``record`` having asked for ``requested`` (None: the
    latest); outside a step there is nothing to remember."""
    path = os.environ.get(MODELS_FILE_ENV)
    if not path:
        return
    line = {
        "name": record["name"],
        "requested": None if requested is None else int(requested),
        "version": int(record["version"]),
        "digest": record["digest"],
    }
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
    except OSError as exc:
        # unrecorded, a later run could reuse a result computed with an older version: refuse
        raise UserErrorException(
            f"model {record['id']!r}: this step cannot record which model version it read "
            f"({exc}); pass the model to the step as an input instead (docs/models.md)"
        ) from exc


def read_resolved(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The distinct resolutions a step noted, in first-seen order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    seen: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item not in seen:
            seen.append(item)
    return seen


def stale_model(workspace_dir: Path, resolved: Any) -> str | None:
    """Why a stored result that read the models in ``resolved`` may not be reused now, or None.

    A model asked for without a version must still be at the version the result read; one asked
    for by version must still hold the bytes it held (versions are immutable, so this fails only
    for a registry that was edited or removed by hand). Anything unreadable is a reason to run.
    """
    if not resolved:
        return None
    if not isinstance(resolved, list):
        return "its record of the models it read is malformed"
    for item in resolved:
        try:
            name = item["name"]
            requested = item.get("requested")
            record = get(workspace_dir, name, requested)
        except (KeyError, TypeError, UserErrorException) as exc:
            return f"a model it read is no longer registered ({exc})"
        if requested is None and int(record["version"]) != int(item["version"]):
            return (
                f"model {name!r} has a newer version ({record['version']}) than the one the "
                f"stored result read ({item['version']})"
            )
        if record["digest"] != item.get("digest"):
            return f"model {record['id']!r} no longer holds the files the stored result read"
    return None
