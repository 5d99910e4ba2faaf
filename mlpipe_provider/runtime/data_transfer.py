"""Execute one ``DataTransferStep`` inside an Airflow task: a streamed, digest-verified copy.

Every file is read in chunks through the source datastore's fsspec filesystem and written in
chunks through the destination's, hashing (BLAKE3) what was read on the way. No file is ever held
in memory whole, and nothing is downloaded twice: the digests computed while streaming are the
output's recorded digests. What landed is checked where checking is cheap: a local file is read
back (a local read, not a download) and must hash the same; a remote object must have the size
that was streamed, and is committed by the service only when the stream completed (a failed
write is abandoned, never committed half-way). Remote objects mlpipe writes carry their digest
in metadata (``mlpipe_blake3``), which any rewrite by someone else clears; that lets a reused
transfer check a blob destination with one listing instead of a download.

Where the copy goes:

* always into a fresh attempt folder, ``azureml/<step run id>/<output name>`` of the output's
  datastore, like a script step's output: that is the step's output, recorded by the base
  protocol (``step_protocol.run_step``) and read by later steps (``get_output()``); a failed
  transfer removes it (best effort) and never records it;
* for a ``DataReference`` destination, also onto that path of its datastore, once the whole
  attempt copy is complete. Per file: locally a temporary sibling, verified, then renamed over
  the target; on a blob store a server-side copy of the attempt object (one atomic write). So a
  reader never sees half a file, and a failure while reading the source leaves the destination
  as it was. Files already there with the right digest are left alone.

Service errors (connection resets, timeouts, throttling, 5xx) are retried per file with the one
retry policy (``runtime/transfer/retry``: ``MLPIPE_DATASTORE_RETRIES``, default 5 attempts;
``MLPIPE_DATASTORE_RETRY_BACKOFF_S``, default 1 s, doubled each time), a whole file again from
its first byte; then the step fails with a message naming the step, the datastore and
the path, with every credential of either datastore masked.

When the reuse sensor found a stored result, the task skips as every step does, but first
``restore_reused_destination`` checks that a ``DataReference`` destination still holds the
recorded bytes (one ``stat`` per local file through the stat cache, one listing on a blob store)
and copies back, from the stored output, any file that was changed or removed since.

This module is the step: what to copy, where, and the record. The copying, checking and
retrying are the data-movement engine's (``runtime/transfer/``), shared with staging and
datasets.
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider import layout
from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import StatCache, iter_tree, stat_cache_path, tree_digest
from mlpipe_provider.runtime.reuse import upstream_record
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.runtime.transfer.copy import copy_verified
from mlpipe_provider.runtime.transfer.place import place_on_destination, stored_digests
from mlpipe_provider.runtime.transfer.remember import remember_written
from mlpipe_provider.runtime.transfer.retry import bound_sdk_retries, describe, with_retries

# --- what to copy ----------------------------------------------------------------------------


def _staged_sql_source(reuse: Any, spec: dict[str, Any]) -> tuple[DatastoreAccess, str]:
    """The CSV the fingerprint was computed from, as a file in a one-file local "datastore"
    named after the SQL datastore (so messages and the record name it)."""
    import fsspec

    from mlpipe_provider.runtime.sql_source import staged_result

    staged = staged_result(reuse, spec)
    store = DatastoreAccess(
        name=spec["datastore"],
        url=str(staged.folder),
        fs=fsspec.filesystem("file"),
        root=str(staged.folder),
    )
    return store, staged.path.name


def _resolve_source(
    op: Any, ws: StepWorkspace, ti: Any, reuse: Any = None
) -> tuple[DatastoreAccess, str]:
    spec = op.inputs[0]
    name = spec["name"]
    if spec["kind"] == InputKind.SQL:
        return _staged_sql_source(reuse, spec)
    if spec["kind"] == InputKind.DATA_REFERENCE:
        return ws.datastore(spec["datastore"]), spec["path_on_datastore"]
    record = upstream_record(ti, spec["producer"])
    if not record or spec["output"] not in record.get("outputs", {}):
        raise UserErrorException(
            f"step {op.step_name!r}, source {name!r}: step {spec['producer']!r} published no "
            f"output {spec['output']!r}"
        )
    location = record["outputs"][spec["output"]]
    return ws.datastore(location["datastore"]), location["path"]


def _tree_files(store: DatastoreAccess, rel: str) -> list[str]:
    """Relative paths of the files in a source folder: exactly the files its input digest covers
    (``hashing.iter_tree``: folders such as ``.git`` or ``__pycache__`` are skipped)."""
    full = store.full_path(rel, what="source")
    if store.is_local:
        return sorted(path for path, _ in iter_tree(Path(full), False))
    from mlpipe_provider.remote_digest import list_tree

    store.fs.invalidate_cache(full)  # fsspec shares one instance per process: list afresh
    return [file.rel for file in list_tree(store, rel) or [] if file.rel]


def _check_types(op: Any, source_is_dir: bool, source: str) -> str:
    """The destination type: as given, else the source's (never guessed from the destination)."""
    source_type = "directory" if source_is_dir else "file"
    if op.source_reference_type and op.source_reference_type != source_type:
        raise UserErrorException(
            f"step {op.step_name!r}, field 'source_reference_type': {op.source_reference_type!r}, "
            f"but the source {source!r} is a {source_type}"
        )
    destination_type = op.destination_reference_type or source_type
    if source_is_dir and destination_type == "file":
        raise UserErrorException(
            f"step {op.step_name!r}, field 'destination_reference_type': the source {source!r} is a "
            "directory and cannot be copied to a file"
        )
    return destination_type


# --- a reused transfer ------------------------------------------------------------------------


def restore_reused_destination(op: Any, record: dict[str, Any]) -> None:
    """Before a reused transfer skips: put back any destination file changed since it was written."""
    output = record["outputs"][op.destination["output"]]
    ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
    cache = StatCache(stat_cache_path(ws.directory))
    try:
        output_store = ws.datastore(output["datastore"])
        destination_store = ws.datastore(op.destination["datastore"])
        bound_sdk_retries(output_store, destination_store)
        what = f"step {op.step_name!r}, stored output {output['datastore']}:{output['path']}"
        digests = with_retries(
            lambda: stored_digests(output_store, output, cache),
            what=what,
            stores=(output_store,),
        )
        counts = place_on_destination(
            op.step_name,
            output_store,
            output["path"],
            digests,
            destination_store,
            op.destination["path_on_datastore"],
            cache,
            sizes=dict(output.get("files", {})),
            log=getattr(op, "log", None),
        )
    finally:
        cache.close()
    if counts["files_written"]:
        op.log.warning(
            "mlpipe: step %r: %d file(s) at destination %s:%s had changed since step run %s wrote "
            "them; restored them from its stored output",
            op.step_name,
            counts["files_written"],
            op.destination["datastore"],
            op.destination["path_on_datastore"],
            record.get("reused_run_id"),
        )


# --- the step -----------------------------------------------------------------------------


def _remember_quietly(
    op: Any, store: DatastoreAccess, rel: str, digests: dict[str, str], reuse: Any
) -> None:
    """An optimisation only: a failure here must not fail a transfer that succeeded."""
    try:
        remember_written(store, rel, digests, getattr(reuse, "remote_cache", None))
    except Exception as exc:  # noqa: BLE001
        op.log.info(
            "mlpipe: step %r: digests of %s:%s not cached (%s)",
            op.step_name,
            store.name,
            rel,
            describe(exc, (store,)),
        )


def _remove_attempt(store: DatastoreAccess, full: str) -> None:
    """Best effort: an unpublished attempt folder is never reused, but need not linger either."""
    try:
        if store.fs.exists(full):
            store.fs.rm(full, recursive=True)
    except Exception:  # noqa: BLE001 - the transfer's own error is what the user must see
        pass


def run_transfer(op: Any, context: Any, reuse: Any) -> dict[str, Any]:
    """Copy the source into a fresh output folder (and onto a DataReference destination)."""
    started = time.monotonic()
    ws: StepWorkspace = reuse.ws
    step_run_id = str(uuid.uuid4())
    default_store = ws.datastore(ws.config.default_datastore)

    source_store, source_rel = _resolve_source(op, ws, context["ti"], reuse)
    spec = op.outputs[0]
    output_store = ws.datastore(spec["datastore"])
    bound_sdk_retries(default_store, source_store, output_store)
    source_full = source_store.full_path(source_rel, what="source_data_reference")
    label = f"{source_store.name}:{source_rel or '/'}"
    field_what = f"step {op.step_name!r}, field 'source_data_reference' ({label})"
    if not source_store.is_local:
        source_store.fs.invalidate_cache(source_full)
    if not with_retries(
        lambda: source_store.fs.exists(source_full), what=field_what, stores=(source_store,)
    ):
        raise UserErrorException(
            f"step {op.step_name!r}, field 'source_data_reference': {label} does not exist"
        )
    source_is_dir = with_retries(
        lambda: source_store.fs.isdir(source_full), what=field_what, stores=(source_store,)
    )
    destination_type = _check_types(op, source_is_dir, label)
    sql_source = op.inputs[0]["kind"] == InputKind.SQL
    if sql_source and not op.destination_reference_type:
        destination_type = "directory"  # v1: no source type to follow, so a folder of one CSV

    port = spec.get("output_name") or spec["name"]
    output_rel = layout.output_path(step_run_id, port)
    output_full = output_store.full_path(output_rel, what=f"output {port!r}")
    if destination_type == "file":
        plan = [(source_full, "")]
    elif not source_is_dir:
        plan = [(source_full, posixpath.basename(source_full.rstrip("/")))]
    else:
        files = with_retries(
            lambda: _tree_files(source_store, source_rel), what=field_what, stores=(source_store,)
        )
        plan = [
            (source_store.full_path(posixpath.join(source_rel, rel), what="source file"), rel)
            for rel in files
        ]
        if output_store.is_local:
            output_store.fs.makedirs(output_full, exist_ok=True)

    op.log.info(
        "mlpipe: step %r, run %s: copying %s (%s, %d file(s)) to %s:%s",
        op.step_name,
        step_run_id,
        label,
        "directory" if source_is_dir else "file",
        len(plan),
        output_store.name,
        output_rel,
    )
    entries: dict[str, tuple[int, str]] = {}
    total = 0
    stores = (source_store, output_store)
    try:
        for source_file, rel in plan:
            target = posixpath.join(output_full, rel) if rel else output_full
            source_rel_file = posixpath.join(source_rel, rel) if source_is_dir else source_rel
            what = (
                f"step {op.step_name!r}, copying {source_store.name}:{source_rel_file} to "
                f"{output_store.name}:{posixpath.join(output_rel, rel) if rel else output_rel}"
            )
            digest, size = with_retries(
                lambda source_file=source_file, target=target, what=what: copy_verified(
                    source_store.fs, source_file, output_store.fs, target, what=what, replace=False
                ),
                what=what,
                stores=stores,
                log=op.log,
            )
            entries[rel] = (size, digest)
            total += size
    except BaseException:
        _remove_attempt(output_store, output_full)
        raise

    digests = {rel: digest for rel, (_, digest) in entries.items()}
    sizes = {rel: size for rel, (size, _) in entries.items()}
    transfer: dict[str, Any] = {
        "source": {"datastore": source_store.name, "path": source_rel},
        "source_type": "directory" if source_is_dir else "file",
        "destination_type": destination_type,
        "files": len(plan),
        "bytes": total,
    }
    if sql_source:
        transfer["source"]["sql"] = op.inputs[0]["sql"]
    _remember_quietly(op, output_store, output_rel, digests, reuse)
    if op.destination.get("kind") == InputKind.DATA_REFERENCE:
        destination_store = ws.datastore(op.destination["datastore"])
        try:
            counts = place_on_destination(
                op.step_name,
                output_store,
                output_rel,
                digests,
                destination_store,
                op.destination["path_on_datastore"],
                reuse.cache,
                sizes=sizes,
                log=op.log,
            )
        except BaseException:
            _remove_attempt(output_store, output_full)  # never recorded: not worth keeping
            raise
        _remember_quietly(
            op, destination_store, op.destination["path_on_datastore"], digests, reuse
        )
        transfer["destination"] = {
            "datastore": op.destination["datastore"],
            "path": op.destination["path_on_datastore"],
            **counts,
        }
        op.log.info(
            "mlpipe: step %r: destination %s:%s: %d file(s) written, %d already current",
            op.step_name,
            op.destination["datastore"],
            op.destination["path_on_datastore"],
            counts["files_written"],
            counts["files_unchanged"],
        )
    duration = time.monotonic() - started
    op.log.info(
        "mlpipe: step %r: %d file(s), %d bytes copied and verified in %.2f s",
        op.step_name,
        len(plan),
        total,
        duration,
    )
    # Digested while streaming: the protocol records these instead of reading the output again.
    output_digest = (
        entries[""][1]
        if list(entries) == [""]
        else tree_digest((rel, size, digest) for rel, (size, digest) in entries.items())
    )
    record = {
        "step_run_id": step_run_id,
        "step_name": op.step_name,
        "status": "Finished",
        "reused": False,
        "outputs": {
            port: {
                "datastore": spec["datastore"],
                "path": output_rel,
                "digest": output_digest,
                "files": sizes,
                "size": total,
            }
        },
        "metrics": {},
        "transfer": transfer,
        "run_folder": {
            "datastore": ws.config.default_datastore,
            "path": layout.attempt_root(step_run_id),
        },
        "duration_s": round(duration, 3),
        "dag_id": context["dag_run"].dag_id,
        "dag_run_id": context["dag_run"].run_id,
        "task_id": op.task_id,
    }
    meta = layout.meta_path(step_run_id, "run.json")
    with_retries(
        lambda: default_store.write_text(
            meta, json.dumps(record, indent=2, sort_keys=True, default=str), what="run folder"
        ),
        what=f"step {op.step_name!r}, run record {default_store.name}:{meta}",
        stores=(default_store,),
        log=op.log,
    )
    return record
