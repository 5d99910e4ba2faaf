"""Datasets at run time: what a step sees, what reuse hashes, and what happens after it ran.

Inputs of kind ``"dataset"`` (see ``compiler/datasets.py``):

* the fingerprint hashes the matched files exactly as the step will see them (view path, size,
  BLAKE3 through the stat cache), so changing, adding or removing a file under a glob re-runs
  the step while a ``touch`` does not;
* the step gets one local folder: the dataset's own folder when it is exactly one folder
  (``raw`` or ``raw/**``), else a folder in the attempt's ``.mlpipe/inputs/`` holding copies of
  the matched files;
* on an object store the files are matched against one listing, digested through the remote
  digest cache (``remote_digest``: same digest as the same bytes on a disk) and downloaded for
  the step, whatever its mode (there is no FUSE mount here);
* ``Run.get_context().input_datasets`` reads ``$MLPIPE_INPUT_DATASETS`` (name -> path, mode,
  type, read settings), for these inputs and for output configs consumed with ``.as_input()``.

Outputs from ``OutputFileDatasetConfig`` (after the script succeeded and before the manifest is
committed): ``source_globs`` prune the fresh output while it is still local (``prune_outputs``,
before any upload), then ``finish_outputs``: a
``destination`` receives a verified copy of the finished output (``{run-id}``/``{output-name}``
substituted), and ``register_on_complete`` registers the attempt folder as a dataset version.
When the step is reused, ``finish_reused_outputs`` makes the destination and the registration
hold again for the reused result.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_provider import dataset_files, dataset_registry, remote_digest
from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.datastores import safe_relative_path
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import StatCache, hash_bytes, stat_cache_path, tree_digest
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.runtime.transfer.copy import download_files
from mlpipe_provider.runtime.transfer.place import place_on_destination
from mlpipe_provider.runtime.transfer.verify import current_digest

INPUT_DATASETS_ENV = "MLPIPE_INPUT_DATASETS"  # read by sdk/dataset.py
DATASET_KEYS = ("dataset_type", "tabular", "registered")
INPUT_SCHEME = "mlpipe-dataset-input-1"


def _label(spec: dict[str, Any], step_name: str) -> str:
    return f"step {step_name!r}, dataset input {spec['name']!r}"


@dataclass(frozen=True)
class ViewFile:
    """One file of a dataset's view: on this disk (``local``) or in an object store (``remote``)."""

    datastore: str
    path: str  # relative to the datastore root
    local: str = ""
    remote: remote_digest.RemoteFile | None = None


def match_remote(
    store: Any, datastore: str, pattern: str, *, what: str, call: Any = None
) -> tuple[str, list[ViewFile]]:
    """``dataset_files.match_local`` for an object store: one listing below the pattern's base."""
    base, glob = dataset_files.split_pattern(pattern)
    kwargs = {"call": call} if call is not None else {}
    listed = remote_digest.list_tree(store, base, **kwargs)
    if glob is None:
        if listed and listed[0].rel == "":
            return posixpath.dirname(base), [ViewFile(datastore, base, remote=listed[0])]
        if not listed:
            raise UserErrorException(f"{what}: {pattern!r} does not exist in {datastore!r}")
        glob = "**"
    if listed is None or (listed and listed[0].rel == ""):
        raise UserErrorException(
            f"{what}: {base or '/'!r} (the folder of {pattern!r}) does not exist in {datastore!r}"
        )
    regex = dataset_files.glob_regex(glob)
    found = []
    for file in listed:
        top = file.rel.split("/")[0]
        if not base and "/" in file.rel and top in dataset_files.RESERVED_TOP_FOLDERS:
            continue
        if regex.match(file.rel):
            path = f"{base}/{file.rel}" if base else file.rel
            found.append(ViewFile(datastore, path, remote=file))
    return base, found


def matched_view(
    ws: StepWorkspace, spec: dict[str, Any], step_name: str, data: Any = None
) -> dict[str, Any]:
    """``{view path: file}``: the files of a ``dataset`` input as the step sees them."""
    what = _label(spec, step_name)
    entries: list[tuple[str, str, list[Any]]] = []
    for entry in spec["paths"]:
        store = ws.datastore(entry["datastore"])
        pattern = safe_relative_path(entry["path"], what=f"{what} path")
        base, _ = dataset_files.split_pattern(pattern)
        if store.is_local:
            store.local_path(base, what=f"{what} path")  # no symlink escape
            root = store.local_path("", what=f"{what} datastore")
            view_base, files = dataset_files.match_local(
                entry["datastore"], root, pattern, what=what
            )
        else:
            call = data.call(entry["datastore"]) if data is not None else None
            view_base, files = match_remote(
                store, entry["datastore"], pattern, what=what, call=call
            )
        entries.append((entry["datastore"], view_base, files))
    view = dataset_files.view(entries)
    if not view:
        paths = ", ".join(f"{e['datastore']}:{e['path'] or '/'}" for e in spec["paths"])
        raise UserErrorException(f"{what}: {paths} matches no files")
    return view


def direct_folder(ws: StepWorkspace, spec: dict[str, Any]) -> Path | None:
    """The local folder that is exactly this dataset (one path: ``folder`` or ``folder/**``), if any."""
    if len(spec["paths"]) != 1:
        return None
    entry = spec["paths"][0]
    base, glob = dataset_files.split_pattern(entry["path"])
    if glob not in (None, "**") or not base:
        return None  # the datastore root: its view leaves out mlpipe's own folders
    store = ws.datastore(entry["datastore"])
    if not store.is_local:
        return None
    folder = store.local_path(base, what="dataset path")
    return folder if folder.is_dir() else None


def _remote_digests(
    ws: StepWorkspace, view: dict[str, Any], rcache: remote_digest.RemoteDigestCache
) -> dict[tuple[str, str], str]:
    """``{(datastore, object path): digest}`` for the view's remote files, one batch per store."""
    by_store: dict[str, list[remote_digest.RemoteFile]] = {}
    for file in view.values():
        if getattr(file, "remote", None) is not None:
            by_store.setdefault(file.datastore, []).append(file.remote)
    out = {}
    for name, files in by_store.items():
        store = ws.datastore(name)
        identity = remote_digest.store_identity(store)
        for prefix in {posixpath.dirname(f.path) for f in files}:
            rcache.preload(identity, prefix)
        for path, digest in remote_digest.file_digests(store, files, rcache).items():
            out[(name, path)] = digest
    return out


def single_file(spec: dict[str, Any], view: dict[str, Any]) -> Any:
    """The one file of a file dataset made from the path of a single file (no glob), else None.

    v1 gives such a dataset to the script as that file's path, mounted or downloaded ("the path
    of the single mounted/downloaded file"); any other dataset, even a glob or folder that
    matches one file, is the folder enclosing its files."""
    if spec.get("dataset_type") != "file" or len(spec["paths"]) != 1 or len(view) != 1:
        return None
    base, glob = dataset_files.split_pattern(spec["paths"][0]["path"])
    file = next(iter(view.values()))
    return file if glob is None and base and file.path == base else None


def dataset_digest(
    ws: StepWorkspace, spec: dict[str, Any], cache: StatCache, step_name: str
) -> str:
    """The content digest of a ``dataset`` input: ``hashing.digest_path``'s folder scheme over
    the view, so a one-folder dataset hashes like a DataReference to that folder, on any store."""
    view = matched_view(ws, spec, step_name)
    return _view_digest(ws, view, cache)


def view_file_digests(
    ws: StepWorkspace, view: dict[str, Any], cache: StatCache
) -> list[tuple[str, int, str]]:
    """``(view path, size, digest)`` of every file of a view, in the view's order (what a
    ``ParallelRunStep`` fingerprints each mini-batch with)."""
    rcache = remote_digest.RemoteDigestCache(stat_cache_path(ws.directory))
    try:
        remote = _remote_digests(ws, view, rcache)
    finally:
        rcache.close()
    entries = []
    for rel, file in view.items():
        if getattr(file, "remote", None) is not None:
            entries.append((rel, file.remote.size, remote[(file.datastore, file.remote.path)]))
        else:
            st = os.stat(file.local)
            entries.append((rel, st.st_size, cache.digest(file.local, st)))
    cache.flush()
    return entries


def _view_digest(ws: StepWorkspace, view: dict[str, Any], cache: StatCache) -> str:
    return tree_digest(view_file_digests(ws, view, cache))


def dataset_input_digest(reuse: Any, spec: dict[str, Any]) -> str:
    """What the fingerprint records for an input consumed as a dataset: the content, and how
    the step reads it (file or tabular, separator, header, ...)."""
    one_file = False
    if spec["kind"] == InputKind.DATASET:
        view = matched_view(reuse.ws, spec, reuse.op.step_name)
        content = _view_digest(reuse.ws, view, reuse.cache)
        one_file = single_file(spec, view) is not None
    else:  # an OutputFileDatasetConfig consumed with as_input(): the producer's output
        content = reuse.input_digest({k: v for k, v in spec.items() if k not in DATASET_KEYS})
    material = {
        "scheme": INPUT_SCHEME,
        "content": content,
        "type": spec.get("dataset_type"),
        "tabular": spec.get("tabular"),
    }
    if one_file:  # the step sees a file path, not a folder: a different input to it
        material["single_file"] = True
    return hash_bytes(json.dumps(material, sort_keys=True).encode("utf-8"))


def materialize(
    ws: StepWorkspace,
    spec: dict[str, Any],
    staging: Path,
    step_name: str,
    *,
    place: Path | None = None,
    data: Any = None,
) -> str:
    """The local path a step reads a ``dataset`` input from: the dataset's own folder when it
    is one local folder, its own file when it is a dataset of one file (``single_file``), else
    a copy of the matched files (downloaded from object stores) in ``staging`` or at ``place``
    (its path_on_compute); a remote single file is downloaded under its own name."""
    folder = direct_folder(ws, spec)
    if folder is not None:
        matched_view(ws, spec, step_name)  # the same "matches no files" check as the fingerprint
        if place is None:
            return str(folder)
        place.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(folder, place)
        return str(place)
    view = matched_view(ws, spec, step_name, data)
    one = single_file(spec, view)
    if one is not None and getattr(one, "remote", None) is None:
        if place is None:
            return one.local  # the datastore's own file, as a local mount would show it
        place.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(one.local, place)
        return str(place)
    target = place or staging / spec["name"]
    if target.exists():
        shutil.rmtree(target)
    if one is not None:  # one object: downloaded as that file, named as on the datastore
        if place is None:
            target.mkdir(parents=True, exist_ok=True)
            file_target = target / posixpath.basename(one.path)
        else:
            file_target = target
    remote: dict[str, list[tuple[str, str]]] = {}
    for rel, file in view.items():
        dest = file_target if one is not None else target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if getattr(file, "remote", None) is not None:
            remote.setdefault(file.datastore, []).append((file.remote.path, os.fspath(dest)))
        else:
            shutil.copyfile(file.local, dest)
    for name, pairs in remote.items():
        download_files(
            ws.datastore(name),
            [p for p, _ in pairs],
            [d for _, d in pairs],
            data.call(name) if data is not None else None,
            f"download of dataset input {spec['name']!r}",
            "",
        )
    if one is not None:
        return str(file_target)
    target.mkdir(parents=True, exist_ok=True)
    return str(target)


def dataset_environment(
    op: Any, input_paths: dict[str, str], params: Any = None, ws: Any = None
) -> dict[str, str]:
    """``$MLPIPE_INPUT_DATASETS`` for ``Run.input_datasets`` (empty when no input is a dataset)."""
    from mlpipe_provider.runtime.dataset_param import dataset_of_run

    described = {}
    for spec in op.inputs:
        if not spec.get("dataset_type"):
            continue
        if spec.get("parameter") and ws is not None:  # this run's dataset, not the default
            spec = dataset_of_run(spec, params or {}, op.step_name, ws)
        described[spec["name"]] = {
            "path": input_paths[spec["name"]],
            "mode": spec.get("mode") or "mount",
            "type": spec["dataset_type"],
            "tabular": spec.get("tabular"),
            "registered": spec.get("registered"),
        }
    return {INPUT_DATASETS_ENV: json.dumps(described, sort_keys=True)} if described else {}


# --- outputs ----------------------------------------------------------------------------------


def _prune(folder: Path, globs: list[str]) -> int:
    """Delete the files of a fresh output folder that no ``source_globs`` glob matches."""
    regexes = [dataset_files.glob_regex(g) for g in globs]
    removed = 0
    for rel, local in list(dataset_files.walk_files(folder)):
        if not any(r.match(rel) for r in regexes):
            os.remove(local)
            removed += 1
    for root, dirs, _ in os.walk(folder, topdown=False):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.listdir(path):
                os.rmdir(path)
    return removed


def destination_path(template: str, run_id: str, output_name: str) -> str:
    path = template.replace("{run-id}", run_id).replace("{output-name}", output_name)
    return safe_relative_path(path, what="destination path")


def _place(
    op: Any,
    ws: StepWorkspace,
    port: str,
    spec: dict[str, Any],
    location: dict[str, str],
    run_id: str,
    cache: StatCache,
) -> dict[str, Any]:
    """Copy a finished output onto its destination (verified; unchanged files are kept)."""
    destination = spec["destination"]
    dest_rel = destination_path(destination["path"], run_id, port)
    output_store = ws.datastore(location["datastore"])
    dest_store = ws.datastore(destination["datastore"])
    digests = _output_file_digests(ws, output_store, location["path"], port, cache)
    what = (
        f"step {op.step_name!r}, output {port!r}, destination {destination['datastore']}:{dest_rel}"
    )
    if not destination.get("overwrite"):
        for rel, digest in digests.items():
            target = dest_store.full_path(f"{dest_rel}/{rel}", what="destination")
            current = current_digest(dest_store, target, cache)
            if current is not None and current != digest:
                raise UserErrorException(
                    f"{what}: {rel!r} already exists there with other content; use "
                    ".as_upload(overwrite=True) to replace it, or a destination with {run-id}"
                )
    if not digests:
        dest_store.fs.makedirs(dest_store.full_path(dest_rel, what="destination"), exist_ok=True)
        counts = {"files_written": 0, "files_unchanged": 0}
    else:
        counts = place_on_destination(
            op.step_name, output_store, location["path"], digests, dest_store, dest_rel, cache
        )
    op.log.info(
        "mlpipe: step %r output %r copied to destination %s:%s (%d file(s) written, %d current)",
        op.step_name,
        port,
        destination["datastore"],
        dest_rel,
        counts["files_written"],
        counts["files_unchanged"],
    )
    return {"datastore": destination["datastore"], "path": dest_rel, **counts}


def _output_file_digests(
    ws: StepWorkspace, store: Any, rel: str, port: str, cache: StatCache
) -> dict[str, str]:
    """``{relative path: digest}`` of a finished output's files, on this disk or remote."""
    if store.is_local:
        folder = store.local_path(rel, what=f"output {port!r}")
        return {r: cache.digest(local) for r, local in sorted(dataset_files.walk_files(folder))}
    files = remote_digest.list_tree(store, rel) or []
    rcache = remote_digest.RemoteDigestCache(stat_cache_path(ws.directory))
    try:
        rcache.preload(remote_digest.store_identity(store), store.full_path(rel))
        digests = remote_digest.file_digests(store, files, rcache)
    finally:
        rcache.close()
    return {f.rel: digests[f.path] for f in files}


def _register(
    op: Any, ws: StepWorkspace, port: str, spec: dict[str, Any], location: dict[str, str]
) -> dict[str, Any]:
    registration = spec["register"]
    path = location["path"]
    tabular = registration.get("tabular")
    if tabular and tabular.get("path_glob"):
        path = f"{path}/{tabular['path_glob']}"
        tabular = {k: v for k, v in tabular.items() if k != "path_glob"}
    definition = dataset_files.definition(
        registration["dataset_type"], [{"datastore": location["datastore"], "path": path}], tabular
    )
    record = dataset_registry.register(
        ws.directory,
        registration["name"],
        definition,
        description=registration.get("description"),
        tags=registration.get("tags"),
        create_new_version=True,
    )
    op.log.info(
        "mlpipe: step %r output %r is dataset %r version %s",
        op.step_name,
        port,
        record["name"],
        record["version"],
    )
    return {"name": record["name"], "version": record["version"], "id": record["id"]}


def prune_outputs(op: Any, folders: dict[str, Path]) -> dict[str, int]:
    """Apply ``source_globs`` to fresh outputs while they are still local folders (before an
    upload), so what is uploaded and recorded is only what the globs keep."""
    pruned = {}
    for spec in op.outputs:
        port = spec.get("output_name") or spec["name"]
        if spec.get("source_globs") and port in folders:
            pruned[port] = _prune(folders[port], spec["source_globs"])
    return pruned


def finish_outputs(
    op: Any,
    ws: StepWorkspace,
    run_id: str,
    locations: dict[str, dict[str, str]],
    *,
    fresh: bool,
) -> dict[str, Any]:
    """Copy to destinations and register, in that order (``prune_outputs`` ran before)."""
    done: dict[str, Any] = {}
    specs = [s for s in op.outputs if s.get("destination") or s.get("register")]
    if not specs:
        return done
    cache = StatCache(stat_cache_path(ws.directory))
    try:
        for spec in specs:
            port = spec.get("output_name") or spec["name"]
            location = locations.get(port)
            if location is None:
                continue
            info: dict[str, Any] = {}
            if spec.get("destination"):
                info["destination"] = _place(op, ws, port, spec, location, run_id, cache)
            if spec.get("register"):
                info["registered"] = _register(op, ws, port, spec, location)
            done[port] = info
    finally:
        cache.close()
    return done


def finish_reused_outputs(op: Any, record: dict[str, Any]) -> None:
    """Before a reused step skips: its destinations and registrations hold for the reused result."""
    ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
    finish_outputs(op, ws, record["reused_run_id"], record.get("outputs", {}), fresh=False)
