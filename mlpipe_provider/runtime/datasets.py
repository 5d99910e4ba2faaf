"""Datasets at run time: what a step sees, what reuse hashes, and what happens after it ran.

Inputs of kind ``"dataset"`` (see ``compiler/datasets.py``):

* the fingerprint hashes the matched files exactly as the step will see them (view path, size,
  BLAKE3 through the stat cache), so changing, adding or removing a file under a glob re-runs
  the step while a ``touch`` does not;
* the step gets one local folder: the dataset's own folder when it is exactly one folder
  (``raw`` or ``raw/**``), else a folder in the attempt's ``.mlpipe/inputs/`` holding copies of
  the matched files;
* ``Run.get_context().input_datasets`` reads ``$MLPIPE_INPUT_DATASETS`` (name -> path, mode,
  type, read settings), for these inputs and for output configs consumed with ``.as_input()``.

Outputs from ``OutputFileDatasetConfig`` (``finish_outputs``, after the script succeeded and
before the manifest is committed): ``source_globs`` prune the fresh attempt folder, a
``destination`` receives a verified copy of the finished output (``{run-id}``/``{output-name}``
substituted), and ``register_on_complete`` registers the attempt folder as a dataset version.
When the step is reused, ``finish_reused_outputs`` makes the destination and the registration
hold again for the reused result.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlpipe_provider import dataset_files, dataset_registry
from mlpipe_provider.datastores import safe_relative_path
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import DIGEST_PREFIX, StatCache, hash_bytes
from mlpipe_provider.runtime.step_context import StepWorkspace

INPUT_DATASETS_ENV = "MLPIPE_INPUT_DATASETS"  # read by sdk/dataset.py
DATASET_KEYS = ("dataset_type", "tabular", "registered")
INPUT_SCHEME = "mlpipe-dataset-input-1"


def _label(spec: dict[str, Any], step_name: str) -> str:
    return f"step {step_name!r}, dataset input {spec['name']!r}"


def matched_view(
    ws: StepWorkspace, spec: dict[str, Any], step_name: str
) -> dict[str, dataset_files.MatchedFile]:
    """``{view path: file}``: the files of a ``dataset`` input as the step sees them."""
    what = _label(spec, step_name)
    entries = []
    for entry in spec["paths"]:
        store = ws.datastore(entry["datastore"])
        pattern = safe_relative_path(entry["path"], what=f"{what} path")
        base, _ = dataset_files.split_pattern(pattern)
        store.local_path(base, what=f"{what} path")  # a local store, and no symlink escape
        root = store.local_path("", what=f"{what} datastore")
        view_base, files = dataset_files.match_local(entry["datastore"], root, pattern, what=what)
        entries.append((entry["datastore"], view_base, files))
    view = dataset_files.view(entries)
    if not view:
        paths = ", ".join(f"{e['datastore']}:{e['path'] or '/'}" for e in spec["paths"])
        raise UserErrorException(f"{what}: {paths} matches no files")
    return view


def direct_folder(ws: StepWorkspace, spec: dict[str, Any]) -> Path | None:
    """The folder that is exactly this dataset (one path: ``folder`` or ``folder/**``), if any."""
    if len(spec["paths"]) != 1:
        return None
    entry = spec["paths"][0]
    base, glob = dataset_files.split_pattern(entry["path"])
    if glob not in (None, "**") or not base:
        return None  # the datastore root: its view leaves out mlpipe's own folders
    folder = ws.datastore(entry["datastore"]).local_path(base, what="dataset path")
    return folder if folder.is_dir() else None


def dataset_digest(
    ws: StepWorkspace, spec: dict[str, Any], cache: StatCache, step_name: str
) -> str:
    """The content digest of a ``dataset`` input: ``hashing.digest_path``'s folder scheme over
    the view, so a one-folder dataset hashes like a DataReference to that folder."""
    import blake3

    view = matched_view(ws, spec, step_name)
    hasher = blake3.blake3()
    hasher.update(b"mlpipe-tree-1\0")
    for rel, file in view.items():
        st = os.stat(file.local)
        digest = cache.digest(file.local, st)
        hasher.update(f"{rel}\0{st.st_size}\0{digest}\n".encode("utf-8", "surrogateescape"))
    cache.flush()
    return DIGEST_PREFIX + hasher.hexdigest()


def dataset_input_digest(reuse: Any, spec: dict[str, Any]) -> str:
    """What the fingerprint records for an input consumed as a dataset: the content, and how
    the step reads it (file or tabular, separator, header, ...)."""
    if spec["kind"] == "dataset":
        content = dataset_digest(reuse.ws, spec, reuse.cache, reuse.op.step_name)
    else:  # an OutputFileDatasetConfig consumed with as_input(): the producer's output
        content = reuse.input_digest({k: v for k, v in spec.items() if k not in DATASET_KEYS})
    material = {
        "scheme": INPUT_SCHEME,
        "content": content,
        "type": spec.get("dataset_type"),
        "tabular": spec.get("tabular"),
    }
    return hash_bytes(json.dumps(material, sort_keys=True).encode("utf-8"))


def materialize(ws: StepWorkspace, spec: dict[str, Any], staging: Path, step_name: str) -> str:
    """The local folder a step reads a ``dataset`` input from."""
    folder = direct_folder(ws, spec)
    if folder is not None:
        matched_view(ws, spec, step_name)  # the same "matches no files" check as the fingerprint
        return str(folder)
    target = staging / spec["name"]
    if target.exists():
        shutil.rmtree(target)
    for rel, file in matched_view(ws, spec, step_name).items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file.local, dest)
    target.mkdir(parents=True, exist_ok=True)
    return str(target)


def dataset_environment(op: Any, input_paths: dict[str, str]) -> dict[str, str]:
    """``$MLPIPE_INPUT_DATASETS`` for ``Run.input_datasets`` (empty when no input is a dataset)."""
    described = {}
    for spec in op.inputs:
        if not spec.get("dataset_type"):
            continue
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
    from mlpipe_provider.runtime.data_transfer import _current_digest, place_on_destination

    destination = spec["destination"]
    dest_rel = destination_path(destination["path"], run_id, port)
    output_store = ws.datastore(location["datastore"])
    dest_store = ws.datastore(destination["datastore"])
    folder = output_store.local_path(location["path"], what=f"output {port!r}")
    digests = {rel: cache.digest(local) for rel, local in sorted(dataset_files.walk_files(folder))}
    what = (
        f"step {op.step_name!r}, output {port!r}, destination {destination['datastore']}:{dest_rel}"
    )
    if not destination.get("overwrite"):
        for rel, digest in digests.items():
            target = dest_store.full_path(f"{dest_rel}/{rel}", what="destination")
            current = _current_digest(dest_store, target, cache)
            if current is not None and current != digest:
                raise UserErrorException(
                    f"{what}: {rel!r} already exists there with other content; use "
                    ".as_upload(overwrite=True) to replace it, or a destination with {run-id}"
                )
    if not digests:
        dest_store.fs.makedirs(dest_store.full_path(dest_rel, what="destination"), exist_ok=True)
        counts = {"files_written": 0, "files_unchanged": 0}
    else:
        shim = SimpleNamespace(
            step_name=op.step_name,
            destination={"datastore": destination["datastore"], "path_on_datastore": dest_rel},
        )
        counts = place_on_destination(
            shim, output_store, location["path"], digests, dest_store, cache
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


def finish_outputs(
    op: Any,
    ws: StepWorkspace,
    run_id: str,
    locations: dict[str, dict[str, str]],
    *,
    fresh: bool,
) -> dict[str, Any]:
    """Prune (fresh outputs only), copy to destinations and register, in that order."""
    done: dict[str, Any] = {}
    specs = [
        s for s in op.outputs if s.get("source_globs") or s.get("destination") or s.get("register")
    ]
    if not specs:
        return done
    cache = StatCache(ws.directory / "cache" / "stat-cache.sqlite")
    try:
        for spec in specs:
            port = spec.get("output_name") or spec["name"]
            location = locations.get(port)
            if location is None:
                continue
            info: dict[str, Any] = {}
            if fresh and spec.get("source_globs"):
                folder = ws.datastore(location["datastore"]).local_path(
                    location["path"], what=f"output {port!r}"
                )
                info["files_pruned"] = _prune(folder, spec["source_globs"])
            if spec.get("destination"):
                info["destination"] = _place(op, ws, port, spec, location, run_id, cache)
            if spec.get("register"):
                info["registered"] = _register(op, ws, port, spec, location)
            done[port] = info
    finally:
        cache.close()
    return done


def finish_reused_outputs(op: Any, context: Any) -> None:
    """Before a reused step skips: its destinations and registrations hold for the reused result."""
    from mlpipe_provider.runtime.reuse import reuse_task_id

    decision = context["ti"].xcom_pull(task_ids=reuse_task_id(op.task_id))
    if not (isinstance(decision, dict) and decision.get("decision") == "reuse"):
        return
    record = decision["record"]
    ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
    finish_outputs(op, ws, record["reused_run_id"], record.get("outputs", {}), fresh=False)
