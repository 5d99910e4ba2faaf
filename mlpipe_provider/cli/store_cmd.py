"""``mlpipe store ls`` and ``mlpipe store gc``: look at and prune the reuse store.

Garbage collection never deletes what a run may still use: an entry whose fingerprint is leased
(being produced or waited on) is kept, the manifest goes before its data (so a concurrent reader
sees a miss, never a half-deleted hit), and folders with no manifest (failed attempts) are only
removed when nothing in the store is leased at all and nothing in them changed for the period.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlpipe_provider import layout
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.humanize import DAY
from mlpipe_provider.humanize import human_age as _age
from mlpipe_provider.humanize import human_size as _human
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.store import OutputStore


def _open(workspace_dir: str | None) -> tuple[StepWorkspace, OutputStore]:
    from mlpipe_provider.config import load_config
    from mlpipe_provider.sdk.workspace import Workspace

    directory = (
        Path(workspace_dir).resolve() if workspace_dir else Workspace.from_config().directory
    )
    ws = StepWorkspace(directory, load_config(directory))
    return ws, OutputStore(ws.datastore(ws.config.default_datastore))


def entry_size(manifest: dict[str, Any]) -> int:
    return sum(int(o.get("size") or 0) for o in manifest.get("outputs", {}).values())


def list_entries(workspace_dir: str | None) -> int:
    _, store = _open(workspace_dir)
    now = time.time()
    entries = sorted(store.entries(), key=lambda m: m.get("created", 0), reverse=True)
    print("| step | fingerprint | size | age | producing run |")
    print("|---|---|---|---|---|")
    for manifest in entries:
        run = f"{manifest.get('dag_id')} / {manifest.get('dag_run_id')} / {manifest.get('step_run_id')}"
        print(
            f"| {manifest.get('step_name')} | {manifest['fingerprint'][:16]} | {_human(entry_size(manifest))} "
            f"| {_age(now - manifest.get('created', now))} | {run} |"
        )
    print(
        f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_human(sum(map(entry_size, entries)))}"
    )
    return 0


def _registered_run_ids(workspace_dir: Path) -> set[str]:
    """Step runs whose folders registered datasets (``register_on_complete``) point into."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts = value.split("/")
            if len(parts) >= 2 and parts[0] == layout.RUNS_PREFIX:
                found.add(parts[1])
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for record in (Path(workspace_dir) / "datasets").glob("*/*.json"):
        try:
            walk(json.loads(record.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found


def _delete(access: Any, relative: str, what: str) -> None:
    try:
        access.remove(relative, what=what)
    except DatastoreError as exc:
        print(f"could not delete {access.name}:{relative}: {exc}")


def collect_garbage(
    workspace_dir: str | None, older_than_days: float, dry_run: bool = False
) -> int:
    ws, store = _open(workspace_dir)
    cutoff = time.time() - older_than_days * DAY
    leased = store.live_leases()
    registered = _registered_run_ids(ws.directory)
    deleted = freed = skipped = 0
    for manifest in store.entries():
        folder = (manifest.get("run_folder") or {}).get("path") or layout.attempt_root(
            manifest["step_run_id"]
        )
        if manifest["step_run_id"] in registered:
            continue  # a registered dataset version points into this attempt folder
        if manifest["fingerprint"] in leased or manifest.get("created", 0) >= cutoff:
            skipped += manifest["fingerprint"] in leased
            continue
        size = entry_size(manifest)
        print(
            f"{'would delete' if dry_run else 'deleting'} {manifest.get('step_name')} {manifest['fingerprint'][:16]} ({_human(size)})"
        )
        if not dry_run:
            # First, and only if it is still this manifest: from now on it is a miss. An entry
            # that a run committed since we listed it is its own, and stays with its data.
            if not store.delete_entry(manifest["fingerprint"], expected=manifest):
                print(f"kept {manifest['fingerprint'][:16]}: its entry changed meanwhile")
                continue
            for output in manifest.get("outputs", {}).values():
                _delete(ws.datastore(output["datastore"]), output["path"], "stored output")
            _delete(ws.datastore(ws.config.default_datastore), folder, "run folder")
        deleted += 1
        freed += size
    orphans = 0
    if not leased:
        recorded = {m.get("step_run_id") for m in store.entries()}
        for name in sorted(ws.config.datastores):
            try:
                access = ws.datastore(name)
                run_ids = access.list_folders(layout.RUNS_PREFIX, what="runs folder")
            except DatastoreError as exc:
                print(f"skipping datastore {name!r}: {exc}")
                continue
            for run_id in run_ids:
                relative = f"{layout.RUNS_PREFIX}/{run_id}"
                if run_id in recorded or run_id in registered:
                    continue
                newest = access.newest_mtime(relative, what="run folder")
                if newest is None or newest >= cutoff:
                    continue
                print(
                    f"{'would delete' if dry_run else 'deleting'} unrecorded attempt {name}:{relative}"
                )
                if not dry_run:
                    _delete(access, relative, "run folder")
                orphans += 1
    verb = "would free" if dry_run else "freed"
    print(
        f"{deleted} entr{'y' if deleted == 1 else 'ies'} and {orphans} unrecorded attempt(s) {verb} "
        f"({_human(freed)} in entries); {skipped} kept because leased"
    )
    return 0
