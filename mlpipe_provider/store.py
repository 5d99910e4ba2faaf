"""The output store: reuse entries, kept in the workspace's default datastore.

An entry is one JSON manifest per fingerprint, written last and in one atomic operation after a
step's outputs are complete, so readers see either no entry or a whole one. The outputs it names
live in the step run's own folder (``azureml/<step run id>/...``), never overwritten. A lease per
fingerprint (a small file with a heartbeat) lets concurrent runs agree that one of them computes
a step while the others wait; a holder that dies stops heartbeating and its lease expires.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.datastores import DatastoreAccess

STORE_PREFIX = "mlpipe-store/v1"
DEFAULT_LEASE_TTL_S = 60.0
CLAIM_TTL_S = 600.0  # a sensor's claim covers the wait until the step's task starts


def lease_ttl() -> float:
    return float(os.environ.get("MLPIPE_LEASE_TTL_S", DEFAULT_LEASE_TTL_S))


@dataclass
class Lease:
    holder: str
    heartbeat: float
    ttl: float
    host: str = ""
    pid: int = 0

    def alive(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.heartbeat < self.ttl


class OutputStore:
    """Entries and leases in one datastore (local folders here; object stores via fsspec later)."""

    def __init__(self, datastore: DatastoreAccess):
        self.datastore = datastore
        self.root = datastore.full_path(STORE_PREFIX)

    # --- paths ---------------------------------------------------------------------------
    def _entry_path(self, fingerprint: str) -> str:
        return posixpath.join(self.root, "entries", fingerprint[:2], f"{fingerprint}.json")

    def _lease_path(self, fingerprint: str) -> str:
        return posixpath.join(self.root, "leases", f"{fingerprint}.json")

    # --- entries -------------------------------------------------------------------------
    def read_entry(self, fingerprint: str) -> dict[str, Any] | None:
        """The manifest for ``fingerprint`` as stored, unverified; None if absent or unreadable."""
        try:
            with open(self._entry_path(fingerprint), encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(manifest, dict) or manifest.get("fingerprint") != fingerprint:
            return None
        return manifest

    def commit(self, manifest: dict[str, Any]) -> None:
        """Make an entry visible: one atomic rename of a complete file."""
        atomic_write_text(
            Path(self._entry_path(manifest["fingerprint"])),
            json.dumps(manifest, sort_keys=True, indent=1),
        )

    def delete_entry(self, fingerprint: str) -> None:
        Path(self._entry_path(fingerprint)).unlink(missing_ok=True)

    def entries(self) -> list[dict[str, Any]]:
        folder = Path(self.root) / "entries"
        found = []
        for path in sorted(folder.glob("*/*.json")) if folder.is_dir() else []:
            manifest = self.read_entry(path.stem)
            if manifest is not None:
                found.append(manifest)
        return found

    # --- leases --------------------------------------------------------------------------
    def read_lease(self, fingerprint: str) -> Lease | None:
        try:
            data = json.loads(Path(self._lease_path(fingerprint)).read_text(encoding="utf-8"))
            return Lease(**data)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def acquire(self, fingerprint: str, holder: str, ttl: float) -> Lease | None:
        """Take the lease if it is free, expired, or already ours; None while someone else holds it."""
        path = Path(self._lease_path(fingerprint))
        path.parent.mkdir(parents=True, exist_ok=True)
        lease = Lease(holder, time.time(), ttl, socket.gethostname(), os.getpid())
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                current = self.read_lease(fingerprint)
                if current is not None and current.holder == holder:
                    self._write_lease(path, lease)
                    return lease
                if current is not None and current.alive():
                    return None
                self._break(path)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(lease.__dict__, handle)
            return lease
        return None

    def _break(self, path: Path) -> None:
        """Remove an expired (or unreadable) lease; only one breaker's rename can succeed."""
        tombstone = path.with_name(f"{path.name}.expired-{uuid.uuid4().hex}")
        try:
            os.rename(path, tombstone)
            tombstone.unlink(missing_ok=True)
        except FileNotFoundError:
            pass

    def _write_lease(self, path: Path, lease: Lease) -> None:
        atomic_write_text(path, json.dumps(lease.__dict__))

    def heartbeat(self, fingerprint: str, holder: str, ttl: float) -> bool:
        current = self.read_lease(fingerprint)
        if current is None or current.holder != holder:
            return False
        self._write_lease(
            Path(self._lease_path(fingerprint)),
            Lease(holder, time.time(), ttl, socket.gethostname(), os.getpid()),
        )
        return True

    def release(self, fingerprint: str, holder: str) -> None:
        current = self.read_lease(fingerprint)
        if current is not None and current.holder == holder:
            Path(self._lease_path(fingerprint)).unlink(missing_ok=True)

    def live_leases(self) -> dict[str, Lease]:
        folder = Path(self.root) / "leases"
        leases = {}
        for path in folder.glob("*.json") if folder.is_dir() else []:
            lease = self.read_lease(path.stem)
            if lease is not None and lease.alive():
                leases[path.stem] = lease
        return leases
