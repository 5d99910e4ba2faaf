"""Make a destination path hold a set of digested files, copying only those that differ.

Used by ``DataTransferStep`` for a ``DataReference`` destination (and to put back what changed
there before a reused transfer skips), and by ``OutputFileDatasetConfig`` destinations. Per
file: the digest there now (a ``stat`` through the stat cache locally, the object's metadata on
a blob store); a file that already holds the right bytes is left alone; any other is copied from
the stored output, verified, with the one retry policy.
"""

from __future__ import annotations

import posixpath
from typing import Any

from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import StatCache
from mlpipe_provider.runtime.transfer.copy import copy_verified, server_copy
from mlpipe_provider.runtime.transfer.filesystems import is_azure_blob
from mlpipe_provider.runtime.transfer.retry import with_retries
from mlpipe_provider.runtime.transfer.verify import current_digest, stream_digest


def place_on_destination(
    step_name: str,
    output_store: DatastoreAccess,
    output_path: str,
    digests: dict[str, str],
    destination_store: DatastoreAccess,
    dest_rel: str,
    cache: StatCache | None,
    sizes: dict[str, int] | None = None,
    log: Any = None,
) -> dict[str, int]:
    """Make ``dest_rel`` on ``destination_store`` hold the output's files (``digests``: relative
    path -> digest; ``""`` for an output that is one file). Returns how many files were written
    and kept. ``sizes`` (relative path -> bytes) lets a blob destination be checked by listing
    and filled by server-side copies inside one account."""
    what = f"step {step_name!r}, destination {destination_store.name}:{dest_rel}"
    output_full = output_store.full_path(output_path, what="stored output")
    dest_full = destination_store.full_path(dest_rel, what="destination_data_reference")
    single_file = list(digests) == [""]
    stores = (output_store, destination_store)
    same_blob_store = (
        is_azure_blob(destination_store.fs)
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
            lambda target=target, size=size: current_digest(destination_store, target, cache, size),
            what=file_what,
            stores=stores,
        )
        if current == digest:
            kept += 1
            continue
        source = posixpath.join(output_full, rel) if rel else output_full
        if same_blob_store and size is not None:
            with_retries(
                lambda source=source, target=target, digest=digest, size=size: server_copy(
                    destination_store.fs, source, target, expected=digest, size=size, what=what
                ),
                what=file_what,
                stores=stores,
                log=log,
            )
        else:
            with_retries(
                lambda source=source, target=target: copy_verified(
                    output_store.fs, source, destination_store.fs, target, what=what, replace=True
                ),
                what=file_what,
                stores=stores,
                log=log,
            )
        written += 1
    return {"files_written": written, "files_unchanged": kept}


def stored_digests(
    store: DatastoreAccess, output: dict[str, Any], cache: StatCache
) -> dict[str, str]:
    """Per-file digests of a stored output: the stat cache locally, object metadata (written by
    ``stream_copy``) on a blob store, a streamed read only where neither knows."""
    full = store.full_path(output["path"], what="stored output")
    digests = {}
    for rel in output.get("files", {}):
        path = posixpath.join(full, rel) if rel else full
        known = current_digest(store, path, cache)
        digests[rel] = known or stream_digest(store.fs, path)
    return digests
