"""Reuse decisions shared by the reuse sensor and the step operator.

The sensor decides (reuse a verified entry, wait for a concurrent producer, or run); the operator
runs and then records an entry. Both compute the fingerprint the same way, through ``StepReuse``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.fingerprint import fingerprint_of, step_material
from mlpipe_provider.hashing import StatCache, TreeDigest, digest_path, iter_tree
from mlpipe_provider.runtime.data_path import data_path_of_run
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.store import OutputStore

REUSE_SUFFIX = ".reuse"
REGENERATE_PARAM = "mlpipe_regenerate_outputs"


def reuse_task_id(step_task_id: str) -> str:
    return f"{step_task_id}{REUSE_SUFFIX}"


def upstream_record(ti: Any, producer_task_id: str) -> dict[str, Any] | None:
    """What a producing step published: its own record, or the reused record its sensor found."""
    # The decision first: a step whose sensor said "reuse" skips, so it never has a record of its
    # own in this run, and most upstream steps of a re-run are reused (one XCom read, not two).
    decision = ti.xcom_pull(task_ids=reuse_task_id(producer_task_id))
    if isinstance(decision, dict) and decision.get("decision") == "reuse":
        return decision.get("record")
    return ti.xcom_pull(task_ids=producer_task_id) or None


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
        self.cache = StatCache(self.ws.directory / "cache" / "stat-cache.sqlite")
        self.store = OutputStore(self.ws.datastore(self.ws.config.default_datastore))

    @property
    def source_dir(self) -> Path | None:
        folder = getattr(self.op, "source_directory", None)
        return (self.dag_dir / folder).resolve() if folder else None

    def input_digest(self, spec: dict[str, Any]) -> str:
        if spec.get("dataset_type"):  # a dataset (datasets.md): matched files + how it is read
            from mlpipe_provider.runtime.datasets import dataset_input_digest

            return dataset_input_digest(self, spec)
        if spec["kind"] == "data_path":  # content at this run's path, like a DataReference
            spec = {**spec, **data_path_of_run(spec, self.params, self.op.step_name)}
        if spec["kind"] in ("data_reference", "data_path"):
            path = self.ws.datastore(spec["datastore"]).local_path(
                spec["path_on_datastore"], what=f"input {spec['name']!r} path_on_datastore"
            )
            if not path.exists():
                raise UserErrorException(
                    f"step {self.op.step_name!r}, input {spec['name']!r}: {spec['path_on_datastore']!r} does not "
                    f"exist in datastore {spec['datastore']!r}"
                )
            return digest_path(path, self.cache).digest
        record = upstream_record(self.ti, spec["producer"])
        output = (record or {}).get("outputs", {}).get(spec["output"])
        if not output:
            raise UserErrorException(
                f"step {self.op.step_name!r}, input {spec['name']!r}: step {spec['producer']!r} published no "
                f"output {spec['output']!r}"
            )
        if output.get("digest"):
            return output["digest"]
        path = self.ws.datastore(output["datastore"]).local_path(
            output["path"], what=f"input {spec['name']!r}"
        )
        return digest_path(path, self.cache).digest

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
        """The entry if its outputs are all still there with the recorded sizes (and digests, if ``full``)."""
        manifest = self.store.read_entry(fingerprint)
        if manifest is None:
            return None, "no entry"
        for port, output in manifest.get("outputs", {}).items():
            try:
                path = self.ws.datastore(output["datastore"]).local_path(
                    output["path"], what=f"output {port!r}"
                )
            except Exception as exc:  # noqa: BLE001 - any doubt about an entry makes it a miss
                return None, f"output {port!r} unreadable: {exc}"
            if not path.exists():
                return None, f"output {port!r} is missing at {output['path']!r}"
            files = (
                {rel: entry.stat().st_size for rel, entry in iter_tree(path, False)}
                if path.is_dir()
                else {"": path.stat().st_size}
            )
            if files != output.get("files"):
                return None, f"output {port!r} at {output['path']!r} no longer matches its manifest"
            if full and digest_path(path, StatCache(None)).digest != output.get("digest"):
                return None, f"output {port!r} content digest changed"
        return manifest, "verified"

    def output_digest(self, location: dict[str, str]) -> TreeDigest:
        path = self.ws.datastore(location["datastore"]).local_path(location["path"], what="output")
        return digest_path(path, self.cache)

    def close(self) -> None:
        self.cache.close()
