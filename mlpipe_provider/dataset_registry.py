"""Registered datasets: a JSON registry in the workspace folder, one file per version.

``<workspace>/datasets/<name>/<version>.json`` holds ``{"name", "version", "id", "description",
"tags", "definition", "created"}``; the definition is what the dataset is (its type, datastore
paths or globs, and how tabular files are read), never its content. A version file is created
once and never rewritten (``records.create_record`` refuses an existing file), so two processes
registering at once get two versions, never a torn or overwritten file. The record's shape is
``records.DatasetRecord``; a damaged version file is a ``RecordError`` naming it.

Used by the SDK (``dataset.register``, ``Dataset.get_by_name``), the compiler (is a dataset a
pipeline names still registered?) and the step runtime (``register_on_complete``).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import DatasetRecord, create_record, version_names, version_records

REGISTRY_DIR = "datasets"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise UserErrorException(
            f"dataset name {name!r} must start with a letter or digit and contain only letters, "
            "digits, '_', '.' and '-'"
        )
    return name


def _folder(workspace_dir: Path, name: str) -> Path:
    return Path(workspace_dir) / REGISTRY_DIR / check_name(name)


def versions(workspace_dir: Path, name: str) -> list[dict[str, Any]]:
    """Every registered version of ``name``, oldest first."""
    return version_records(_folder(workspace_dir, name), DatasetRecord)


def names(workspace_dir: Path) -> list[str]:
    return version_names(Path(workspace_dir) / REGISTRY_DIR)


def get(workspace_dir: Path, name: str, version: Any = "latest") -> dict[str, Any]:
    found = versions(workspace_dir, name)
    if not found:
        known = ", ".join(names(workspace_dir)) or "none"
        raise UserErrorException(
            f"no dataset named {name!r} is registered in this workspace (registered: {known})"
        )
    if version in (None, "latest"):
        return found[-1]
    try:
        wanted = int(version)
    except (TypeError, ValueError):
        raise UserErrorException(
            f"dataset {name!r}: version must be a number or 'latest', got {version!r}"
        ) from None
    for record in found:
        if int(record["version"]) == wanted:
            return record
    have = ", ".join(str(r["version"]) for r in found)
    raise UserErrorException(
        f"dataset {name!r} has no version {wanted} (registered versions: {have})"
    )


def get_by_id(workspace_dir: Path, dataset_id: str) -> dict[str, Any] | None:
    for name in names(workspace_dir):
        for record in versions(workspace_dir, name):
            if record.get("id") == dataset_id:
                return record
    return None


def register(
    workspace_dir: Path,
    name: str,
    definition: dict[str, Any],
    *,
    description: str | None = None,
    tags: dict[str, Any] | None = None,
    create_new_version: bool = False,
) -> dict[str, Any]:
    """Register ``definition`` under ``name``; the record of the version that holds it.

    As in v1: the same definition as the latest version returns that version; a different one
    needs ``create_new_version=True`` and becomes the next version.
    """
    folder = _folder(workspace_dir, name)
    while True:
        found = versions(workspace_dir, name)
        if found and found[-1].get("definition") == definition:
            return found[-1]
        if found and not create_new_version:
            raise UserErrorException(
                f"there is already a dataset registered under name {name!r} (version "
                f"{found[-1]['version']}) with another definition; pass create_new_version=True "
                "to register this one as a new version"
            )
        version = int(found[-1]["version"]) + 1 if found else 1
        record = {
            "name": name,
            "version": version,
            "id": str(uuid.uuid4()),
            "description": description,
            "tags": {str(k): str(v) for k, v in (tags or {}).items()},
            "definition": definition,
            "created": time.time(),
        }
        if create_record(folder / f"{version}.json", DatasetRecord, record):
            return record
        # another process registered this version first: look again


def unregister_all_versions(workspace_dir: Path, name: str) -> int:
    folder = _folder(workspace_dir, name)
    count = len(versions(workspace_dir, name))
    shutil.rmtree(folder, ignore_errors=True)
    return count
