"""The output store: reuse entries, kept in the workspace's default datastore.

An entry is one JSON manifest per fingerprint, written last and in one conditional write after a
step's outputs are complete, so readers see either no entry or a whole one. The outputs it names
live in the step run's own folder (``azureml/<step run id>/...``), never overwritten. A lease per
fingerprint (a small JSON object with a holder and a heartbeat) lets concurrent runs agree that
one of them computes a step while the others wait; a holder that dies stops heartbeating and its
lease expires.

Everything goes through ``hooks/object_store.py``: on local disk, Azure Blob, S3 and GCS every
write is conditional (create-if-absent, replace-if-unchanged), so of several runs racing for a
lease or to break an expired one exactly one wins; on other object stores (or a datastore with
``conditional_writes: false``) the same calls are best effort (docs/datastores.md).
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.hooks.object_store import ConditionalObjects, conditional_objects

STORE_PREFIX = "mlpipe-store/v1"
DEFAULT_LEASE_TTL_S = 60.0
_ATTEMPTS = 5


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


def _parse_lease(data: bytes) -> Lease | None:
    try:
        lease = Lease(**json.loads(data.decode("utf-8")))
        float(lease.heartbeat), float(lease.ttl)
        return lease
    except (ValueError, TypeError, UnicodeDecodeError, AttributeError):
        return None


class OutputStore:
    """Entries and leases in one datastore (a local folder, Azure Blob, or any fsspec store)."""

    def __init__(self, datastore: DatastoreAccess, objects: ConditionalObjects | None = None):
        self.datastore = datastore
        self.root = datastore.full_path(STORE_PREFIX)
        self.objects = objects or conditional_objects(datastore)
        # The etag of the last lease object this store wrote, per fingerprint and holder: a
        # heartbeat or release replaces/deletes exactly that object, or learns it was taken.
        self._lease_etags: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    # --- paths ---------------------------------------------------------------------------
    def _entry_path(self, fingerprint: str) -> str:
        return posixpath.join(self.root, "entries", fingerprint[:2], f"{fingerprint}.json")

    def _lease_path(self, fingerprint: str) -> str:
        return posixpath.join(self.root, "leases", f"{fingerprint}.json")

    # --- entries -------------------------------------------------------------------------
    @staticmethod
    def _parse_entry(fingerprint: str, data: bytes) -> dict[str, Any] | None:
        try:
            manifest = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(manifest, dict) or manifest.get("fingerprint") != fingerprint:
            return None
        return manifest

    def read_entry(self, fingerprint: str) -> dict[str, Any] | None:
        """The manifest for ``fingerprint`` as stored, unverified; None if absent or unreadable."""
        found = self.objects.read(self._entry_path(fingerprint))
        return None if found is None else self._parse_entry(fingerprint, found[0])

    def commit(self, manifest: dict[str, Any]) -> bool:
        """Make an entry visible in one conditional write of a complete manifest.

        An entry already there for the fingerprint (one that failed verification, so the step ran
        again) is replaced only if it is still the one read: if another run replaced it in the
        meantime, that run's entry (for the same fingerprint, so as good as this one) stays and
        this returns False.
        """
        fingerprint = manifest["fingerprint"]
        path = self._entry_path(fingerprint)
        data = json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8")
        for _ in range(_ATTEMPTS):
            if self.objects.put_if_absent(path, data) is not None:
                return True
            current = self.objects.read(path)
            if current is None:
                continue  # deleted since: try to create it again
            return self.objects.put_if_match(path, data, current[1]) is not None
        return False

    def delete_entry(self, fingerprint: str, expected: dict[str, Any] | None = None) -> bool:
        """Delete the entry; with ``expected``, only if it is still that manifest (so an entry a
        run committed after ``expected`` was read is kept)."""
        path = self._entry_path(fingerprint)
        for _ in range(_ATTEMPTS):
            current = self.objects.read(path)
            if current is None:
                return False
            if expected is not None and self._parse_entry(fingerprint, current[0]) != expected:
                return False
            if self.objects.delete_if_match(path, current[1]):
                return True
        return False

    def entries(self) -> list[dict[str, Any]]:
        found = []
        for path in self.objects.list(posixpath.join(self.root, "entries")):
            name = posixpath.basename(path)
            if not name.endswith(".json"):
                continue
            manifest = self.read_entry(name[: -len(".json")])
            if manifest is not None:
                found.append(manifest)
        return found

    # --- leases --------------------------------------------------------------------------
    def read_lease(self, fingerprint: str) -> Lease | None:
        found = self.objects.read(self._lease_path(fingerprint))
        return None if found is None else _parse_lease(found[0])

    def _remember(self, fingerprint: str, holder: str, etag: str | None) -> None:
        with self._lock:
            if etag is None:
                self._lease_etags.pop((fingerprint, holder), None)
            else:
                self._lease_etags[(fingerprint, holder)] = etag

    def _remembered(self, fingerprint: str, holder: str) -> str | None:
        with self._lock:
            return self._lease_etags.get((fingerprint, holder))

    @staticmethod
    def _new_lease(holder: str, ttl: float) -> tuple[Lease, bytes]:
        lease = Lease(holder, time.time(), ttl, socket.gethostname(), os.getpid())
        return lease, json.dumps(lease.__dict__).encode("utf-8")

    def acquire(self, fingerprint: str, holder: str, ttl: float) -> Lease | None:
        """Take the lease if it is free, expired, or already ours; None while someone else holds it.

        Free: create it if absent. Expired (or unreadable): replace the object read, if it is still
        that object, so of many runs breaking the same expired lease exactly one wins.
        """
        path = self._lease_path(fingerprint)
        for _ in range(_ATTEMPTS):
            lease, data = self._new_lease(holder, ttl)
            etag = self.objects.put_if_absent(path, data)
            if etag is not None:
                self._remember(fingerprint, holder, etag)
                return lease
            found = self.objects.read(path)
            if found is None:
                continue  # released since we looked
            current = _parse_lease(found[0])
            if current is not None and current.holder != holder and current.alive():
                return None
            etag = self.objects.put_if_match(path, data, found[1])
            if etag is not None:
                self._remember(fingerprint, holder, etag)
                return lease
            # Someone else renewed, released or broke it between our read and our write: look again.
        return None

    def heartbeat(self, fingerprint: str, holder: str, ttl: float) -> bool:
        """Renew our lease; False if it is no longer ours (it expired and another run took it)."""
        path = self._lease_path(fingerprint)
        etag = self._remembered(fingerprint, holder)
        if etag is None:
            found = self.objects.read(path)
            current = None if found is None else _parse_lease(found[0])
            if current is None or current.holder != holder:
                return False
            etag = found[1]
        _, data = self._new_lease(holder, ttl)
        new_etag = self.objects.put_if_match(path, data, etag)
        self._remember(fingerprint, holder, new_etag)
        return new_etag is not None

    def release(self, fingerprint: str, holder: str) -> None:
        """Delete our lease, never one another run took after ours expired."""
        path = self._lease_path(fingerprint)
        etag = self._remembered(fingerprint, holder)
        self._remember(fingerprint, holder, None)
        if etag is not None and self.objects.delete_if_match(path, etag):
            return
        found = self.objects.read(path)
        current = None if found is None else _parse_lease(found[0])
        if current is not None and current.holder == holder:
            self.objects.delete_if_match(path, found[1])

    def live_leases(self) -> dict[str, Lease]:
        leases = {}
        for path in self.objects.list(posixpath.join(self.root, "leases")):
            name = posixpath.basename(path)
            if not name.endswith(".json"):
                continue
            lease = self.read_lease(name[: -len(".json")])
            if lease is not None and lease.alive():
                leases[name[: -len(".json")]] = lease
        return leases
