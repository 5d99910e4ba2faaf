"""What a datastore schedule watches: the files directly in one folder, and what it saw last.

The state (path -> a change token: the store's etag or content hash where it has one, else size
and modification time) is a small JSON file in the watched datastore itself, so every worker of
a distributed Airflow sees the same state. The SDK writes the first state when the schedule is
created, so files already there do not trigger runs; each poll then reports the files added or
changed since the last one.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from typing import Any

from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.datastores import DatastoreAccess, safe_relative_path
from mlpipe_provider.store import STORE_PREFIX

WATCH_PREFIX = f"{STORE_PREFIX}/watch"
_TOKEN_KEYS = ("etag", "ETag", "md5", "content_md5")
_TIME_KEYS = ("mtime", "last_modified", "LastModified", "updated", "created")


def _token(info: dict[str, Any]) -> str:
    for key in _TOKEN_KEYS:
        if info.get(key):
            return f"{key}:{info[key]}"
    mtime = next((info[k] for k in _TIME_KEYS if info.get(k) is not None), None)
    return f"size:{info.get('size')}:time:{mtime}"


def list_files(store: DatastoreAccess, folder: str | None) -> dict[str, str]:
    """``{path on datastore: change token}`` for the files directly in ``folder``.

    Subfolders are not watched (as in v1); names starting with '.' are skipped, so a file being
    written under a temporary dot-name and then renamed triggers once, when it is complete.
    """
    rel = safe_relative_path(folder, what="path_on_datastore")
    full = store.full_path(rel, what="path_on_datastore")
    if not store.fs.exists(full) or not store.fs.isdir(full):
        return {}
    files: dict[str, str] = {}
    for info in store.fs.ls(full, detail=True):
        if info.get("type") != "file":
            continue
        base = posixpath.basename(info["name"].rstrip("/"))
        if base.startswith("."):
            continue
        files[posixpath.join(rel, base) if rel else base] = _token(info)
    return dict(sorted(files.items()))


def _state_path(store: DatastoreAccess, state_name: str) -> str:
    return store.full_path(f"{WATCH_PREFIX}/{state_name}.json", what="watch state")


def read_state(store: DatastoreAccess, state_name: str) -> dict[str, str]:
    path = _state_path(store, state_name)
    if not store.fs.exists(path):
        return {}
    data = json.loads(store.fs.cat_file(path))
    return dict(data.get("files", {}))


def write_state(store: DatastoreAccess, state_name: str, files: dict[str, str]) -> None:
    text = json.dumps({"files": files, "updated": time.time()}, indent=1, sort_keys=True) + "\n"
    path = _state_path(store, state_name)
    if store.is_local:
        atomic_write_text(path, text)  # a reader sees the old state or the new one, never half
    else:
        store.fs.pipe_file(path, text.encode("utf-8"))


def changed_files(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    return [path for path, token in current.items() if previous.get(path) != token]


def trigger_run_id(state_name: str, path: str, token: str) -> str:
    """The same file version always gets the same run id, so a retried poll triggers it once."""
    digest = hashlib.blake2s(f"{state_name}\n{path}\n{token}".encode(), digest_size=10)
    return f"datastore__{digest.hexdigest()}"
