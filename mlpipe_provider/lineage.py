"""Asset identities for data lineage (docs/lineage.md), shared by the compiler and the operators.

The compiler writes these identities into DAG files as ``Asset(name=..., uri=..., group=...)``
literals; the step operator reads them back from its outlets to attach the run's location and
digest to each asset event. Keeping both directions here means they cannot drift apart.

Two kinds of asset:

* data at a datastore path (a ``DataReference``, a dataset path, a fixed destination):
  ``x-mlpipe://<workspace>/datastores/<datastore>/<path>``. It depends only on where the data
  is, so every pipeline of the workspace that reads or writes that path shares the asset.
* a step's output (``PipelineData``, ``OutputFileDatasetConfig``): its bytes move to a fresh
  folder each run, so the asset is the logical output,
  ``x-mlpipe://<workspace>/pipelines/<dag id>/<task id>/<output>``.

The ``x-`` scheme prefix is Airflow's private-use convention: Airflow stores such URIs exactly as
given (no normalisation, no provider lookup at parse time). Every segment is percent-encoded
(RFC 3986 unreserved characters only), so names with quotes, spaces or non-ASCII characters give
ASCII URIs that map back to exactly the names they came from. The asset name is the URI without
its scheme: as unique as the URI (Airflow requires both to be unique) and readable in the UI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from mlpipe_provider.contract.constants import InputKind

SCHEME = "x-mlpipe"
PREFIX = f"{SCHEME}://"
DATASTORE_GROUP = "mlpipe-datastore"
OUTPUT_GROUP = "mlpipe-output"
#: Airflow refuses asset names and URIs longer than this (``_validate_identifier``)
MAX_LENGTH = 1500


@dataclass(frozen=True)
class AssetId:
    """What the DAG file's ``Asset(name=..., uri=..., group=...)`` is built from."""

    name: str
    uri: str
    group: str


def _segment(value: str) -> str:
    return quote(value, safe="")


def _make(body: str, group: str) -> AssetId:
    uri = PREFIX + body
    if len(uri) > MAX_LENGTH:
        # Still one stable identity per input, within Airflow's limit; such an asset cannot be
        # parsed back (its events then carry no extra), which only pathological paths reach.
        digest = hashlib.sha256(uri.encode()).hexdigest()[:32]
        uri = f"{uri[: MAX_LENGTH - 64]}~{digest}"
    return AssetId(name=uri[len(PREFIX) :], uri=uri, group=group)


def normalise_path(path: str) -> str:
    """One spelling per datastore path (``a//b/``, ``./a/b`` and ``a/b`` are the same data)."""
    return "/".join(p for p in path.split("/") if p not in ("", "."))


def datastore_asset(workspace: str, datastore: str, path: str) -> AssetId:
    """The asset of the data at ``path`` (datastore-relative) in ``datastore``."""
    body = f"{_segment(workspace)}/datastores/{_segment(datastore)}"
    path = normalise_path(path)
    if path:
        body += "/" + "/".join(_segment(p) for p in path.split("/"))
    return _make(body, DATASTORE_GROUP)


def output_asset(workspace: str, dag_id: str, task_id: str, output: str) -> AssetId:
    """The asset of output ``output`` of the step run by task ``task_id`` of DAG ``dag_id``."""
    body = "/".join(_segment(s) for s in (workspace, "pipelines", dag_id, task_id, output))
    return _make(body, OUTPUT_GROUP)


def parse(uri: str) -> dict[str, Any] | None:
    """The identity an mlpipe asset URI stands for, or None (not mlpipe's, or a hashed long one)."""
    if not uri.startswith(PREFIX):
        return None
    parts = [unquote(p) for p in uri[len(PREFIX) :].split("/")]
    if len(parts) >= 3 and parts[1] == "datastores":
        found = {"kind": "datastore", "workspace": parts[0], "datastore": parts[2]}
        found["path"] = "/".join(parts[3:])
        expected = datastore_asset(found["workspace"], found["datastore"], found["path"]).uri
    elif len(parts) == 5 and parts[1] == "pipelines":
        found = {
            "kind": "output",
            "workspace": parts[0],
            "dag_id": parts[2],
            "task_id": parts[3],
            "output": parts[4],
        }
        expected = output_asset(parts[0], parts[2], parts[3], parts[4]).uri
    else:
        return None
    return found if expected == uri else None


def asset_for_uri(uri: str) -> AssetId:
    """The full identity of an mlpipe asset URI (for ``schedule=``: name and URI must both match)."""
    found = parse(uri)
    if found is None:
        raise ValueError(
            f"{uri!r} is not an mlpipe asset URI ({PREFIX}<workspace>/datastores/<datastore>/<path> "
            f"or {PREFIX}<workspace>/pipelines/<dag id>/<task id>/<output>)"
        )
    if found["kind"] == "datastore":
        return datastore_asset(found["workspace"], found["datastore"], found["path"])
    return output_asset(found["workspace"], found["dag_id"], found["task_id"], found["output"])


# --- at run time ------------------------------------------------------------------------------


def event_extras(op: Any, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Extra for the asset event of each of ``op``'s outlets (keyed by URI), from its step record.

    Only datastore-relative locations, digests and sizes: no host paths, no credentials.
    """
    outputs = record.get("outputs") or {}
    destinations: dict[tuple[str, str], str] = {}
    for spec in getattr(op, "outputs", []):
        dest = spec.get("destination")
        if dest and "{" not in dest["path"]:
            destinations[(dest["datastore"], normalise_path(dest["path"]))] = (
                spec.get("output_name") or spec["name"]
            )
    transfer_dest = getattr(op, "destination", None)
    if isinstance(transfer_dest, dict) and transfer_dest.get("kind") == InputKind.DATA_REFERENCE:
        key = (transfer_dest["datastore"], normalise_path(transfer_dest["path_on_datastore"]))
        destinations[key] = transfer_dest["output"]
    extras: dict[str, dict[str, Any]] = {}
    for asset in getattr(op, "outlets", []):
        uri = getattr(asset, "uri", None)
        found = parse(uri) if isinstance(uri, str) else None
        if found is None:
            continue
        if found["kind"] == "output":
            port, where = found["output"], None
        else:
            where = (found["datastore"], found["path"])
            port = destinations.get(where)
        location = outputs.get(port) if port is not None else None
        if not location:
            continue
        extra: dict[str, Any] = {
            "output": port,
            "datastore": location["datastore"],
            "path": location["path"],
            "digest": location.get("digest"),
            "files": len(location.get("files") or {}),
            "size": location.get("size"),
            "step_run_id": record.get("step_run_id"),
        }
        if where is not None:  # the fixed copy this asset names, of the run's output
            extra["datastore"], extra["path"] = where
            extra["copied_from"] = location["path"]
        extras[uri] = extra
    return extras
