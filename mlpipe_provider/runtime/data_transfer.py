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

Service errors (connection resets, timeouts, throttling, 5xx) are retried per file with bounded
exponential backoff (``runtime/datastore_retry``'s budget: ``MLPIPE_DATASTORE_RETRIES``, default
5 attempts; ``MLPIPE_DATASTORE_RETRY_BACKOFF_S``, default 1 s, doubled each time), a whole file
again from its first byte; then the step fails with a message naming the step, the datastore and
the path, with every credential of either datastore masked.

When the reuse sensor found a stored result, the task skips as every step does, but first
``restore_reused_destination`` checks that a ``DataReference`` destination still holds the
recorded bytes (one ``stat`` per local file through the stat cache, one listing on a blob store)
and copies back, from the stored output, any file that was changed or removed since.
"""

from __future__ import annotations

import json
import os
import posixpath
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import blake3

from mlpipe_provider import layout
from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.errors import MlpipeError, UserErrorException
from mlpipe_provider.hashing import (
    DIGEST_PREFIX,
    StatCache,
    hash_file_uncached,
    iter_tree,
    tree_digest,
)
from mlpipe_provider.hooks.datastore import redact
from mlpipe_provider.runtime import datastore_retry
from mlpipe_provider.runtime.reuse import reuse_task_id, upstream_record
from mlpipe_provider.runtime.step_context import StepWorkspace

CHUNK_SIZE = 8 << 20  # 8 MiB: large enough for object stores, small enough for any worker
PARTIAL_PREFIX = ".mlpipe-partial-"
DIGEST_METADATA_KEY = "mlpipe_blake3"  # Azure metadata names must be C# identifiers
MAX_BACKOFF_S = 30.0
SERVER_COPY_TIMEOUT_S = 600.0

T = TypeVar("T")


class TransferVerificationError(MlpipeError):
    """What landed at the destination is not what was read from the source."""


class TransferError(MlpipeError):
    """A copy failed for good (after retries, or at once for an error retrying cannot fix)."""


# --- filesystems -----------------------------------------------------------------------------


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


def _is_local(fs: Any) -> bool:
    return bool({"file", "local"} & set(_protocols(fs)))


def _is_object_store(fs: Any) -> bool:
    """Folders there are only name prefixes: nothing to create (adlfs would even create a
    container that was deleted), and an object is committed whole when its write completes."""
    return bool({"az", "abfs", "abfss", "s3", "s3a", "gs", "gcs"} & set(_protocols(fs)))


def _is_azure_blob(fs: Any) -> bool:
    return bool({"az", "abfs"} & set(_protocols(fs))) and hasattr(fs, "service_client")


def _metadata_digest(info: dict[str, Any]) -> str | None:
    value = (info.get("metadata") or {}).get(DIGEST_METADATA_KEY)
    return value if isinstance(value, str) and value.startswith(DIGEST_PREFIX) else None


# --- retries ---------------------------------------------------------------------------------


def _is_transient(exc: BaseException) -> bool:
    """A service or network hiccup that trying again can fix (``datastore_retry``'s rule, which
    walks the cause chain: adlfs wraps upload failures in ``RuntimeError``), or a copy that
    landed wrong, which copying again can fix too."""
    if isinstance(exc, TransferVerificationError):
        return True
    if isinstance(exc, MlpipeError):
        return False
    return datastore_retry.is_transient(exc)


def _settings() -> tuple[int, float]:
    return datastore_retry.attempts(), datastore_retry.backoff_s()


def bound_sdk_retries(*stores: DatastoreAccess) -> None:
    """Let mlpipe's bounded retries, not the Azure SDK's minutes-long defaults, pace an outage."""
    for store in stores:
        if not store.is_local:
            datastore_retry.shorten_sdk_retries(store)


def _describe(exc: BaseException, stores: tuple[DatastoreAccess, ...]) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for store in stores:
        text = redact(text, store.options)
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= 800 else text[:800] + " ..."


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    stores: tuple[DatastoreAccess, ...],
    log: Any = None,
) -> T:
    """``call()``, retried with exponential backoff and jitter while it fails transiently.

    ``what`` names the step, the datastore and the path; the final error carries it and the
    cause's message with every credential of ``stores`` masked, and is raised ``from None`` so
    no unmasked traceback of the service client follows it into the task log.
    """
    attempts, backoff = _settings()
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MlpipeError as exc:
            if isinstance(exc, TransferVerificationError) and attempt < attempts:
                pass
            else:
                raise
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised with context
            if not _is_transient(exc):
                raise TransferError(f"{what}: {_describe(exc, stores)}") from None
            if attempt == attempts:
                raise TransferError(
                    f"{what}: still failing after {attempts} attempt(s): {_describe(exc, stores)}"
                ) from None
            if log is not None:
                log.warning(
                    "mlpipe: %s: attempt %d of %d failed (%s); retrying",
                    what,
                    attempt,
                    attempts,
                    _describe(exc, stores),
                )
        delay = min(MAX_BACKOFF_S, backoff * (2 ** (attempt - 1)))
        time.sleep(delay * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")  # pragma: no cover


# --- streaming copy and verification ---------------------------------------------------------


def stream_digest(fs: Any, path: str, chunk_size: int = CHUNK_SIZE) -> str:
    """BLAKE3 of a file's bytes (same value as ``hashing.hash_file_uncached``), read in chunks."""
    if _is_local(fs):
        return hash_file_uncached(path)  # mmap and threads for large files; same digest
    hasher = blake3.blake3()
    with fs.open(path, "rb", block_size=chunk_size) as reader:
        while chunk := reader.read(chunk_size):
            hasher.update(chunk)
    return DIGEST_PREFIX + hasher.hexdigest()


def _abandon(writer: Any, fs: Any, path: str) -> None:
    """Close a write that failed without committing it. A buffered object-store file (adlfs,
    s3fs, gcsfs) commits on ``close()`` unless told its last block was already sent, so the
    staged blocks are dropped instead; other files are closed and removed."""
    try:
        if hasattr(writer, "forced") and hasattr(writer, "buffer"):
            writer.forced = True
            writer.close()
            return
        writer.close()
    except Exception:  # noqa: BLE001 - already failing; the original error matters
        pass
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001
        pass


def stream_copy(
    src_fs: Any, src: str, dst_fs: Any, dst: str, chunk_size: int = CHUNK_SIZE
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` chunk by chunk; returns (BLAKE3 of what was read, bytes).

    On a blob store the digest is set as the object's metadata before it is committed."""
    hasher = blake3.blake3()
    size = 0
    with src_fs.open(src, "rb", block_size=chunk_size) as reader:
        writer = dst_fs.open(dst, "wb", block_size=chunk_size)
        try:
            while chunk := reader.read(chunk_size):
                hasher.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            digest = DIGEST_PREFIX + hasher.hexdigest()
            if _is_azure_blob(dst_fs):
                writer.metadata = {"is_directory": "false", DIGEST_METADATA_KEY: digest}
        except BaseException:
            _abandon(writer, dst_fs, dst)
            raise
        writer.close()
    return digest, size


def verify_copy(expected: str, fs: Any, path: str, *, what: str) -> str:
    """Re-read what landed at local ``path``; raise unless its digest is ``expected``."""
    landed = stream_digest(fs, path)
    if landed != expected:
        raise TransferVerificationError(
            f"{what}: the copy at {path!r} does not match what was read "
            f"(read {expected}, landed {landed}); nothing was recorded"
        )
    return landed


def verify_landed(expected: str, size: int, fs: Any, path: str, *, what: str) -> None:
    """Check what landed without downloading it: a local file is re-hashed (a local read); a
    remote object must exist with the streamed size (and, on a blob store, our digest)."""
    if _is_local(fs):
        verify_copy(expected, fs, path, what=what)
        return
    fs.invalidate_cache(path)
    info = fs.info(path)
    recorded = _metadata_digest(info)
    if info.get("size") != size or (_is_azure_blob(fs) and recorded != expected):
        raise TransferVerificationError(
            f"{what}: the copy at {path!r} does not match what was written "
            f"({size} bytes, {expected}; landed {info.get('size')} bytes, {recorded})"
        )


def copy_verified(
    src_fs: Any, src: str, dst_fs: Any, dst: str, *, what: str, replace: bool
) -> tuple[str, int]:
    """Copy one file and verify it. With ``replace`` (a destination others may read), a local
    file is written to a temporary sibling and renamed over ``dst`` once verified; an object
    store commits the object only when the stream completed, so it is written in place."""
    parent = posixpath.dirname(dst)
    if parent and not _is_object_store(dst_fs):
        dst_fs.makedirs(parent, exist_ok=True)
    if replace and dst_fs.isdir(dst):
        raise UserErrorException(f"{what}: {dst!r} is a directory; a file cannot replace it")
    if not replace or not _is_local(dst_fs):
        digest, size = stream_copy(src_fs, src, dst_fs, dst)
        verify_landed(digest, size, dst_fs, dst, what=what)
        return digest, size
    tmp = posixpath.join(parent, f"{PARTIAL_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(dst)}")
    try:
        digest, size = stream_copy(src_fs, src, dst_fs, tmp)
        verify_copy(digest, dst_fs, tmp, what=what)
        os.replace(tmp, dst)  # atomic on one filesystem
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return digest, size


def _server_copy(fs: Any, src: str, dst: str, *, expected: str, size: int, what: str) -> None:
    """Copy an object inside one blob account without moving its bytes through the worker, then
    wait for the service to finish it (large copies may complete asynchronously)."""
    from fsspec.asyn import sync

    fs.cp_file(src, dst)
    container, blob, _ = fs.split_path(dst)

    async def copy_status() -> tuple[str | None, str | None]:
        async with fs.service_client.get_blob_client(container, blob) as client:
            props = await client.get_blob_properties()
            return props.copy.status, props.copy.status_description

    deadline = time.monotonic() + SERVER_COPY_TIMEOUT_S
    while True:
        status, description = sync(fs.loop, copy_status)
        if status in (None, "success"):
            break
        if status != "pending" or time.monotonic() > deadline:
            raise TransferError(
                f"{what}: server-side copy to {dst!r} ended {status}: {description}"
            )
        time.sleep(1.0)
    verify_landed(expected, size, fs, dst, what=what)


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


# --- the DataReference destination ------------------------------------------------------------


def _current_digest(
    store: DatastoreAccess, path: str, cache: StatCache | None, size: int | None = None
) -> str | None:
    """The digest of what is at ``path`` now, or None if there is no file (or, remotely, no
    digest mlpipe can vouch for without a download: such a file is simply rewritten)."""
    fs = store.fs
    if store.is_local:
        if not os.path.isfile(path):
            return None
        return cache.digest(path) if cache is not None else hash_file_uncached(path)
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") != "file" or (size is not None and info.get("size") != size):
        return None
    return _metadata_digest(info)


def place_on_destination(
    op: Any,
    output_store: DatastoreAccess,
    output_path: str,
    digests: dict[str, str],
    destination_store: DatastoreAccess,
    cache: StatCache | None,
    sizes: dict[str, int] | None = None,
) -> dict[str, int]:
    """Make the destination path hold the output's files (``digests``: relative path -> digest;
    ``""`` for an output that is one file). Returns how many files were written and kept."""
    dest_rel = op.destination["path_on_datastore"]
    what = f"step {op.step_name!r}, destination {op.destination['datastore']}:{dest_rel}"
    output_full = output_store.full_path(output_path, what="stored output")
    dest_full = destination_store.full_path(dest_rel, what="destination_data_reference")
    single_file = list(digests) == [""]
    stores = (output_store, destination_store)
    same_blob_store = (
        _is_azure_blob(destination_store.fs)
        and output_store.fs is destination_store.fs
        and sizes is not None
    )
    if not single_file:
        if with_retries(lambda: destination_store.fs.isfile(dest_full), what=what, stores=stores):
            raise UserErrorException(
                f"{what}: is a file, but the transfer writes a directory there"
            )
        if destination_store.is_local:
            destination_store.fs.makedirs(dest_full, exist_ok=True)
    elif not destination_store.is_local and with_retries(
        lambda: destination_store.fs.isdir(dest_full), what=what, stores=stores
    ):
        raise UserErrorException(f"{what}: {dest_full!r} is a directory; a file cannot replace it")
    written = kept = 0
    for rel, digest in sorted(digests.items()):
        target_rel = posixpath.join(dest_rel, rel) if rel else dest_rel
        target = destination_store.full_path(target_rel, what="destination_data_reference")
        size = sizes.get(rel) if sizes else None
        file_what = f"{what}, file {target_rel!r}"
        current = with_retries(
            lambda target=target, size=size: _current_digest(
                destination_store, target, cache, size
            ),
            what=file_what,
            stores=stores,
        )
        if current == digest:
            kept += 1
            continue
        source = posixpath.join(output_full, rel) if rel else output_full
        if same_blob_store and size is not None:
            with_retries(
                lambda source=source, target=target, digest=digest, size=size: _server_copy(
                    destination_store.fs, source, target, expected=digest, size=size, what=what
                ),
                what=file_what,
                stores=stores,
                log=getattr(op, "log", None),
            )
        else:
            with_retries(
                lambda source=source, target=target: copy_verified(
                    output_store.fs, source, destination_store.fs, target, what=what, replace=True
                ),
                what=file_what,
                stores=stores,
                log=getattr(op, "log", None),
            )
        written += 1
    return {"files_written": written, "files_unchanged": kept}


def _stored_digests(
    store: DatastoreAccess, output: dict[str, Any], cache: StatCache
) -> dict[str, str]:
    """Per-file digests of a stored output: the stat cache locally, object metadata (written by
    ``stream_copy``) on a blob store, a streamed read only where neither knows."""
    full = store.full_path(output["path"], what="stored output")
    digests = {}
    for rel in output.get("files", {}):
        path = posixpath.join(full, rel) if rel else full
        known = _current_digest(store, path, cache)
        digests[rel] = known or stream_digest(store.fs, path)
    return digests


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
        destination_store = ws.datastore(op.destination["datastore"])
        bound_sdk_retries(output_store, destination_store)
        what = f"step {op.step_name!r}, stored output {output['datastore']}:{output['path']}"
        digests = with_retries(
            lambda: _stored_digests(output_store, output, cache),
            what=what,
            stores=(output_store,),
        )
        counts = place_on_destination(
            op,
            output_store,
            output["path"],
            digests,
            destination_store,
            cache,
            sizes=dict(output.get("files", {})),
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


def remember_written(store: DatastoreAccess, rel: str, digests: dict[str, str], cache: Any) -> int:
    """Seed the remote digest cache (``remote_digest``) with what this transfer wrote, so a later
    digest of those blobs (a step reading the destination as a ``DataReference``) lists them
    instead of downloading them. Only objects whose metadata still carries the digest written
    with them are remembered: the listed version is then the one this transfer committed."""
    if store.is_local or cache is None:
        return 0
    from mlpipe_provider.remote_digest import RemoteFile, object_version, store_identity

    full = store.full_path(rel, what="path").rstrip("/")
    store.fs.invalidate_cache(full)
    found = store.fs.find(full, detail=True)
    identity = store_identity(store)
    remembered = 0
    for path, info in found.items():
        relative = "" if path.rstrip("/") == full else posixpath.relpath(path, full)
        digest = digests.get(relative)
        if digest is None or info.get("type", "file") != "file":
            continue
        if _metadata_digest(info) != digest or object_version(info) is None:
            continue
        cache.remember(
            identity, RemoteFile(path, relative, int(info["size"]), object_version(info)), digest
        )
        remembered += 1
    cache.flush()
    return remembered


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
            _describe(exc, (store,)),
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
                op,
                output_store,
                output_rel,
                digests,
                destination_store,
                reuse.cache,
                sizes=sizes,
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
