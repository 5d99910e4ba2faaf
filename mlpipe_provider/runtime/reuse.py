"""Fingerprints and store lookups for one step in one run, shared by everything that decides.

The plan task (``runtime/reuse_plan.py``) and the step itself as it starts
(``runtime/reuse_decision.py``) decide; the step then runs and records an entry
(``runtime/step_protocol.py``). All compute the fingerprint the same way, through ``StepReuse``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider import remote_digest
from mlpipe_provider.contract.constants import (  # noqa: F401 - importers of the old home
    REGENERATE_PARAM,
    InputKind,
)
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.fingerprint import fingerprint_of, step_material
from mlpipe_provider.hashing import StatCache, TreeDigest, digest_path, iter_tree, stat_cache_path
from mlpipe_provider.runtime.input_resolvers import (  # noqa: F401 - upstream_record: its old home
    locate_input,
    upstream_record,
)
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.runtime.transfer.retry import Retrier
from mlpipe_provider.store import OutputStore


def _well_formed(manifest: dict[str, Any], op: Any) -> bool:
    """A manifest a hit can be built from: a step run id and a location for every output port.

    An entry that parses but lacks these (written by hand, by an older version, or damaged) is a
    miss: reusing it would hand downstream steps no outputs, or crash the reuse sensor.
    """
    outputs = manifest.get("outputs")
    if not isinstance(manifest.get("step_run_id"), str) or not isinstance(outputs, dict):
        return False
    ports = {spec.get("output_name") or spec["name"] for spec in getattr(op, "outputs", [])}
    return ports <= outputs.keys() and all(
        isinstance(o, dict)
        and isinstance(o.get("datastore"), str)
        and isinstance(o.get("path"), str)
        for o in outputs.values()
    )


def holder_id(context: Any, step_task_id: str) -> str:
    dag_run = context["dag_run"]
    return f"{dag_run.dag_id}/{dag_run.run_id}/{step_task_id}"


class StepReuse:
    """Fingerprinting and store access for one step in one DAG run."""

    def __init__(self, op: Any, context: Any):
        self.op = op
        self.context = context
        self.ti = context["ti"]
        self.params = dict(context["params"])
        self.dag_dir = Path(op.dag.fileloc).resolve().parent
        self.ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
        self.cache = StatCache(stat_cache_path(self.ws.directory))
        self.store = OutputStore(self.ws.datastore(self.ws.config.default_datastore))
        self._remote_cache: remote_digest.RemoteDigestCache | None = None
        self._retriers: dict[str, Retrier] = {}
        self.sql_results: dict[str, Any] = {}  # SqlDataReference results staged as CSV

    @property
    def source_dir(self) -> Path | None:
        folder = getattr(self.op, "source_directory", None)
        return (self.dag_dir / folder).resolve() if folder else None

    def input_digest(self, spec: dict[str, Any]) -> str:
        if spec.get("dataset_type"):  # a dataset (datasets.md): matched files + how it is read
            from mlpipe_provider.runtime.dataset_param import dataset_of_run
            from mlpipe_provider.runtime.datasets import dataset_input_digest

            spec = dataset_of_run(spec, self.params, self.op.step_name, self.ws)
            return dataset_input_digest(self, spec)
        if (
            spec["kind"] == InputKind.SQL
        ):  # the result's CSV, run once per task (runtime/sql_source.py)
            from mlpipe_provider.runtime.sql_source import staged_result

            return staged_result(self, spec).digest
        where = locate_input(self.op.step_name, spec, self.ti, self.params)
        if where.digest:  # recorded by the producing step
            return where.digest
        tree = self.content_digest(where.datastore, where.path, what=where.what)
        if tree is None:
            raise UserErrorException(where.missing)
        return tree.digest

    def content_digest(
        self, datastore: str, rel: str, *, what: str, full: bool = False
    ) -> TreeDigest | None:
        """The digest of a file or folder on any datastore; None when nothing is there. Remote
        data costs one listing, and downloads only objects whose size or version changed
        (``full``: every object is read again)."""
        store = self.ws.datastore(datastore)
        if store.is_local:
            path = store.local_path(rel, what=what)
            if not path.exists():
                return None
            return digest_path(path, StatCache(None) if full else self.cache)
        cache = remote_digest.RemoteDigestCache(None, enabled=False) if full else self.remote_cache
        return remote_digest.digest_remote(store, rel, cache, call=self._retrier(datastore))

    def _retrier(self, datastore: str) -> Retrier:
        if datastore not in self._retriers:
            self._retriers[datastore] = Retrier(
                self.op.step_name, self.ws.datastore(datastore), getattr(self.op, "log", None)
            )
        return self._retriers[datastore]

    @property
    def remote_cache(self) -> remote_digest.RemoteDigestCache:
        if self._remote_cache is None:
            self._remote_cache = remote_digest.RemoteDigestCache(stat_cache_path(self.ws.directory))
        return self._remote_cache

    def fingerprint(self) -> tuple[str, dict[str, Any]]:
        folder = self.source_dir
        source = digest_path(folder, self.cache, use_ignore_files=True).digest if folder else None
        inputs = {spec["name"]: self.input_digest(spec) for spec in self.op.inputs}
        material = step_material(
            self.op, params=self.params, source_digest=source, input_digests=inputs
        )
        return fingerprint_of(material), material

    def verified_entry(
        self, fingerprint: str, *, full: bool = False
    ) -> tuple[dict[str, Any] | None, str]:
        """The entry if its outputs are all still there with the recorded sizes (and digests, if
        ``full``). Remote outputs: one listing per output; ``full`` downloads and re-digests."""
        manifest = self.store.read_entry(fingerprint)
        if manifest is None:
            return None, "no entry"
        if not _well_formed(manifest, self.op):
            return None, "entry is malformed (no step run id, or not every output of the step)"
        for port, output in manifest["outputs"].items():
            try:
                files = self._current_files(output, port)
            except Exception as exc:  # noqa: BLE001 - any doubt about an entry makes it a miss
                return None, f"output {port!r} unreadable: {exc}"
            if files is None:
                return None, f"output {port!r} is missing at {output['path']!r}"
            if files != output.get("files"):
                return None, f"output {port!r} at {output['path']!r} no longer matches its manifest"
            if full:
                try:
                    tree = self.content_digest(
                        output["datastore"], output["path"], what=f"output {port!r}", full=True
                    )
                except Exception as exc:  # noqa: BLE001
                    return None, f"output {port!r} unreadable: {exc}"
                if tree is None or tree.digest != output.get("digest"):
                    return None, f"output {port!r} content digest changed"
        return manifest, "verified"

    def _current_files(self, output: dict[str, Any], port: str) -> dict[str, int] | None:
        """``{relative path: size}`` of an output as it is now (``{"": size}`` for one file)."""
        store = self.ws.datastore(output["datastore"])
        if not store.is_local:
            listed = remote_digest.list_tree(
                store, output["path"], call=self._retrier(output["datastore"])
            )
            return None if listed is None else {f.rel: f.size for f in listed}
        path = store.local_path(output["path"], what=f"output {port!r}")
        if not path.exists():
            return None
        if path.is_dir():
            return {rel: entry.stat().st_size for rel, entry in iter_tree(path, False)}
        return {"": path.stat().st_size}

    def output_digest(self, location: dict[str, str]) -> TreeDigest:
        tree = self.content_digest(location["datastore"], location["path"], what="output")
        if tree is None:
            raise UserErrorException(
                f"step {self.op.step_name!r}: output {location['path']!r} is missing from "
                f"datastore {location['datastore']!r} right after the step wrote it"
            )
        return tree

    def close(self) -> None:
        for staged in self.sql_results.values():
            staged.discard()
        self.cache.close()
        if self._remote_cache is not None:
            self._remote_cache.close()
