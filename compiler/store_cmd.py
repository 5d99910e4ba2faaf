"""``mlpipe store ls`` and ``mlpipe store gc``: look at and prune the reuse store.

Garbage collection never deletes what a run may still use: an entry whose fingerprint is leased
(being produced or waited on) is kept, the manifest goes before its data (so a concurrent reader
sees a miss, never a half-deleted hit), and folders with no manifest (failed attempts) are only
removed when nothing in the store is leased at all and nothing in them changed for the period.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from mlpipe_provider import layout
from mlpipe_provider.humanize import DAY
from mlpipe_provider.humanize import human_age as _age
from mlpipe_provider.humanize import human_size as _human
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.store import OutputStore


def _open(workspace_dir: str | None) -> tuple[StepWorkspace, OutputStore]:
    from mlpipe_provider.config import load_config
    from mlpipe_provider.sdk.workspace import Workspace

    directory = Path(workspace_dir).resolve() if workspace_dir else Workspace.from_config()._dir
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


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        newest = max(newest, path.lstat().st_mtime)
    return newest


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
            store.delete_entry(manifest["fingerprint"])  # first: from now on it is a miss
            for output in manifest.get("outputs", {}).values():
                path = ws.datastore(output["datastore"]).local_path(
                    output["path"], what="stored output"
                )
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(
                    missing_ok=True
                )
            meta = ws.datastore(ws.config.default_datastore).local_path(folder, what="run folder")
            shutil.rmtree(meta, ignore_errors=True)
        deleted += 1
        freed += size
    orphans = 0
    if not leased:
        recorded = {m.get("step_run_id") for m in store.entries()}
        for name in sorted(ws.config.datastores):
            access = ws.datastore(name)
            if not access.is_local:
                continue
            runs_root = access.local_path(layout.RUNS_PREFIX, what="runs folder")
            for folder in sorted(runs_root.iterdir()) if runs_root.is_dir() else []:
                if (
                    not folder.is_dir()
                    or folder.name in recorded
                    or _newest_mtime(folder) >= cutoff
                ):
                    continue
                rel = f"{name}:{layout.RUNS_PREFIX}/{folder.name}"
                print(f"{'would delete' if dry_run else 'deleting'} unrecorded attempt {rel}")
                if not dry_run:
                    shutil.rmtree(folder, ignore_errors=True)
                orphans += 1
    verb = "would free" if dry_run else "freed"
    print(
        f"{deleted} entr{'y' if deleted == 1 else 'ies'} and {orphans} unrecorded attempt(s) {verb} "
        f"({_human(freed)} in entries); {skipped} kept because leased"
    )
    return 0
