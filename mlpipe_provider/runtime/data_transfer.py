"""Execute one ``DataTransferStep`` inside an Airflow task: a streamed, digest-verified copy.

Every file is read in chunks through the source datastore's fsspec filesystem and written in
chunks through the destination's, hashing (BLAKE3) what was read on the way; then what landed is
read back and hashed, and the two digests must be equal. No file is ever held in memory whole.

Where the copy goes:

* always into a fresh attempt folder, ``azureml/<step run id>/<output name>`` of the output's
  datastore, like a script step's output: that is the step's output, digested and recorded by
  the base protocol (``step_protocol.run_step``) and read by later steps (``get_output()``);
* for a ``DataReference`` destination, also onto that path of its datastore (per file: a
  temporary sibling, verified, then renamed over the target, so no reader sees half a file).
  Files already there with the right digest are left alone.

When the reuse sensor found a stored result, the task skips as every step does, but first
``restore_reused_destination`` checks that a ``DataReference`` destination still holds the
recorded bytes (one ``stat`` per file through the stat cache) and copies back, from the stored
output, any file that was changed or removed since.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
import uuid
from pathlib import Path
from typing import Any

import blake3

from mlpipe_provider import layout
from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.errors import MlpipeError, UserErrorException
from mlpipe_provider.hashing import (
    ALWAYS_IGNORED,
    DIGEST_PREFIX,
    StatCache,
    hash_file_uncached,
    iter_tree,
)
from mlpipe_provider.runtime.reuse import reuse_task_id, upstream_record
from mlpipe_provider.runtime.step_context import StepWorkspace

CHUNK_SIZE = 8 << 20  # 8 MiB: large enough for object stores, small enough for any worker
PARTIAL_PREFIX = ".mlpipe-partial-"


class TransferVerificationError(MlpipeError):
    """What landed at the destination is not what was read from the source."""


# --- streaming copy and verification ---------------------------------------------------------


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol
    protocols = protocol if isinstance(protocol, (tuple, list)) else (protocol,)
    return "file" in protocols or "local" in protocols


def stream_digest(fs: Any, path: str, chunk_size: int = CHUNK_SIZE) -> str:
    """BLAKE3 of a file's bytes (same value as ``hashing.hash_file_uncached``), read in chunks."""
    if _is_local(fs):
        return hash_file_uncached(path)  # mmap and threads for large files; same digest
    hasher = blake3.blake3()
    with fs.open(path, "rb") as reader:
        while chunk := reader.read(chunk_size):
            hasher.update(chunk)
    return DIGEST_PREFIX + hasher.hexdigest()


def stream_copy(
    src_fs: Any, src: str, dst_fs: Any, dst: str, chunk_size: int = CHUNK_SIZE
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` chunk by chunk; returns (BLAKE3 of what was read, bytes)."""
    hasher = blake3.blake3()
    size = 0
    with src_fs.open(src, "rb") as reader, dst_fs.open(dst, "wb") as writer:
        while chunk := reader.read(chunk_size):
            hasher.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return DIGEST_PREFIX + hasher.hexdigest(), size


def verify_copy(expected: str, fs: Any, path: str, *, what: str) -> str:
    """Re-read what landed at ``path``; raise unless its digest is ``expected`` (what was read)."""
    landed = stream_digest(fs, path)
    if landed != expected:
        raise TransferVerificationError(
            f"{what}: the copy at {path!r} does not match what was read "
            f"(read {expected}, landed {landed}); nothing was recorded"
        )
    return landed


def copy_verified(
    src_fs: Any, src: str, dst_fs: Any, dst: str, *, what: str, replace: bool
) -> tuple[str, int]:
    """Copy one file and verify it. With ``replace``, write a temporary sibling first and rename
    it over ``dst`` only once verified (for destinations other readers may look at)."""
    parent = posixpath.dirname(dst)
    if parent:
        dst_fs.makedirs(parent, exist_ok=True)
    if not replace:
        digest, size = stream_copy(src_fs, src, dst_fs, dst)
        verify_copy(digest, dst_fs, dst, what=what)
        return digest, size
    if dst_fs.isdir(dst):
        raise UserErrorException(f"{what}: {dst!r} is a directory; a file cannot replace it")
    tmp = posixpath.join(parent, f"{PARTIAL_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(dst)}")
    try:
        digest, size = stream_copy(src_fs, src, dst_fs, tmp)
        verify_copy(digest, dst_fs, tmp, what=what)
        if _is_local(dst_fs):
            os.replace(tmp, dst)  # atomic on one filesystem
        else:
            dst_fs.mv(tmp, dst)
            verify_copy(digest, dst_fs, dst, what=what)  # a remote move is a copy: check again
    finally:
        if dst_fs.exists(tmp):
            dst_fs.rm(tmp)
    return digest, size


# --- what to copy ----------------------------------------------------------------------------


def _resolve_source(op: Any, ws: StepWorkspace, ti: Any) -> tuple[DatastoreAccess, str]:
    spec = op.inputs[0]
    name = spec["name"]
    if spec["kind"] == "data_reference":
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
    found = []
    for path in store.fs.find(full):
        relative = posixpath.relpath(path, full)
        if not ALWAYS_IGNORED.intersection(relative.split("/")[:-1]):
            found.append(relative)
    return sorted(found)


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


# --- the DataReference destination ------------------------------------------------------------


def _current_digest(store: DatastoreAccess, path: str, cache: StatCache | None) -> str | None:
    """The digest of what is at ``path`` now, or None if there is no file."""
    fs = store.fs
    if not fs.exists(path) or fs.isdir(path):
        return None
    if store.is_local and cache is not None:
        return cache.digest(path)
    return stream_digest(fs, path)


def place_on_destination(
    op: Any,
    output_store: DatastoreAccess,
    output_path: str,
    digests: dict[str, str],
    destination_store: DatastoreAccess,
    cache: StatCache | None,
) -> dict[str, int]:
    """Make the destination path hold the output's files (``digests``: relative path -> digest;
    ``""`` for an output that is one file). Returns how many files were written and kept."""
    dest_rel = op.destination["path_on_datastore"]
    what = f"step {op.step_name!r}, destination {op.destination['datastore']}:{dest_rel}"
    output_full = output_store.full_path(output_path, what="stored output")
    dest_full = destination_store.full_path(dest_rel, what="destination_data_reference")
    single_file = list(digests) == [""]
    if not single_file:
        if destination_store.fs.isfile(dest_full):
            raise UserErrorException(
                f"{what}: is a file, but the transfer writes a directory there"
            )
        destination_store.fs.makedirs(dest_full, exist_ok=True)
    written = kept = 0
    for rel, digest in sorted(digests.items()):
        target_rel = posixpath.join(dest_rel, rel) if rel else dest_rel
        target = destination_store.full_path(target_rel, what="destination_data_reference")
        if _current_digest(destination_store, target, cache) == digest:
            kept += 1
            continue
        source = posixpath.join(output_full, rel) if rel else output_full
        copy_verified(
            output_store.fs, source, destination_store.fs, target, what=what, replace=True
        )
        written += 1
    return {"files_written": written, "files_unchanged": kept}


def restore_reused_destination(op: Any, context: Any) -> None:
    """Before a reused transfer skips: put back any destination file changed since it was written."""
    decision = context["ti"].xcom_pull(task_ids=reuse_task_id(op.task_id))
    if not (isinstance(decision, dict) and decision.get("decision") == "reuse"):
        return
    output = decision["record"]["outputs"][op.destination["output"]]
    ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
    cache = StatCache(ws.directory / "cache" / "stat-cache.sqlite")
    try:
        output_store = ws.datastore(output["datastore"])
        output_full = output_store.full_path(output["path"], what="stored output")
        digests = {}
        for rel in output.get("files", {}):
            path = posixpath.join(output_full, rel) if rel else output_full
            digests[rel] = _current_digest(output_store, path, cache) or ""
        counts = place_on_destination(
            op,
            output_store,
            output["path"],
            digests,
            ws.datastore(op.destination["datastore"]),
            cache,
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
            decision["record"].get("reused_run_id"),
        )


# --- the step --------------------------------------------------------------------------------


def run_transfer(op: Any, context: Any, reuse: Any) -> dict[str, Any]:
    """Copy the source into a fresh output folder (and onto a DataReference destination)."""
    started = time.monotonic()
    ws: StepWorkspace = reuse.ws
    step_run_id = str(uuid.uuid4())
    default_store = ws.datastore(ws.config.default_datastore)
    meta_dir = default_store.local_path(layout.meta_path(step_run_id, ""), what="run folder")
    meta_dir.mkdir(parents=True, exist_ok=True)

    source_store, source_rel = _resolve_source(op, ws, context["ti"])
    source_full = source_store.full_path(source_rel, what="source_data_reference")
    label = f"{source_store.name}:{source_rel or '/'}"
    if not source_store.fs.exists(source_full):
        raise UserErrorException(
            f"step {op.step_name!r}, field 'source_data_reference': {label} does not exist"
        )
    source_is_dir = source_store.fs.isdir(source_full)
    destination_type = _check_types(op, source_is_dir, label)

    spec = op.outputs[0]
    port = spec.get("output_name") or spec["name"]
    output_store = ws.datastore(spec["datastore"])
    output_rel = layout.output_path(step_run_id, port)
    output_full = output_store.full_path(output_rel, what=f"output {port!r}")
    if destination_type == "file":
        plan = [(source_full, "")]
    elif not source_is_dir:
        plan = [(source_full, posixpath.basename(source_full.rstrip("/")))]
    else:
        plan = [
            (
                source_store.full_path(posixpath.join(source_rel, rel), what="source file"),
                rel,
            )
            for rel in _tree_files(source_store, source_rel)
        ]
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
    digests: dict[str, str] = {}
    total = 0
    what = f"step {op.step_name!r}, transfer from {label}"
    for source_file, rel in plan:
        target = posixpath.join(output_full, rel) if rel else output_full
        digest, size = copy_verified(
            source_store.fs, source_file, output_store.fs, target, what=what, replace=False
        )
        digests[rel] = digest
        total += size

    transfer: dict[str, Any] = {
        "source": {"datastore": source_store.name, "path": source_rel},
        "source_type": "directory" if source_is_dir else "file",
        "destination_type": destination_type,
        "files": len(plan),
        "bytes": total,
    }
    if op.destination.get("kind") == "data_reference":
        counts = place_on_destination(
            op,
            output_store,
            output_rel,
            digests,
            ws.datastore(op.destination["datastore"]),
            reuse.cache,
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
    record = {
        "step_run_id": step_run_id,
        "step_name": op.step_name,
        "status": "Finished",
        "reused": False,
        "outputs": {port: {"datastore": spec["datastore"], "path": output_rel}},
        "metrics": {},
        "transfer": transfer,
        "run_folder": {
            "datastore": ws.config.default_datastore,
            "path": layout.attempt_root(step_run_id),
        },
        "duration_s": round(duration, 3),
        "dag_id": context["dag_run"].dag_id,
        "dag_run_id": context["dag_run"].run_id,
    }
    atomic_write_text(
        meta_dir / "run.json", json.dumps(record, indent=2, sort_keys=True, default=str)
    )
    return record
