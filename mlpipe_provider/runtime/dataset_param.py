"""Values of a dataset-valued ``PipelineParameter``: which dataset a step consumes, chosen per run.

v1 lets a step consume ``DatasetConsumptionConfig("name", PipelineParameter("p",
default_value=dataset))`` and a submit replace the dataset. Here the value travels as a DAG
param, so it must be plain JSON (never code): a serialized dataset,

    {"dataset_type": "file" | "tabular", "paths": [{"datastore": NAME, "path": PATH_OR_GLOB}],
     "tabular": {...read settings...}, "registered": {"name", "version", "id"}}

(``tabular``/``registered`` only when they apply). A registered dataset may also be named by
reference, ``{"name": NAME, "version": N}`` (version optional: the latest), which is resolved
against the workspace's registry when the run starts, so the trigger form, ``--conf`` and the
REST API take either form. The SDK (at submit) and the runtime normalise values with the same
function, so both agree on what a value means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider import dataset_registry
from mlpipe_provider.datastores import safe_relative_path
from mlpipe_provider.errors import MlpipeError, UserErrorException

DATASET_JSON_TYPE = "object"
_VALUE_KEYS = {"dataset_type", "paths", "tabular", "registered"}
_RUN_KEYS = ("dataset_type", "paths", "tabular", "registered")


def is_dataset_type(json_type: Any) -> bool:
    return json_type == DATASET_JSON_TYPE


def dataset_to_value(dataset: Any) -> dict[str, Any]:
    """The JSON value of an SDK dataset (``FileDataset``/``TabularDataset``)."""
    definition = dataset._definition
    value: dict[str, Any] = {
        "dataset_type": definition["type"],
        "paths": [{"datastore": p["datastore"], "path": p["path"]} for p in definition["paths"]],
    }
    if "tabular" in definition:
        value["tabular"] = dict(definition["tabular"])
    registration = getattr(dataset, "_registration", None)
    if registration:
        value["registered"] = {
            "name": registration["name"],
            "version": registration["version"],
            "id": registration["id"],
        }
    return value


def _from_registry(value: dict[str, Any], workspace_dir: Path | None, what: str) -> dict[str, Any]:
    if workspace_dir is None:
        raise UserErrorException(f"{what}: a registered dataset reference needs a workspace")
    try:
        record = dataset_registry.get(
            Path(workspace_dir), value["name"], value.get("version", "latest")
        )
    except MlpipeError as exc:
        raise UserErrorException(f"{what}: {exc}") from None
    definition = record["definition"]
    out: dict[str, Any] = {
        "dataset_type": definition["type"],
        "paths": [dict(p) for p in definition["paths"]],
        "registered": {"name": record["name"], "version": record["version"], "id": record["id"]},
    }
    if "tabular" in definition:
        out["tabular"] = dict(definition["tabular"])
    return out


def normalize_dataset_value(
    value: Any,
    expected_type: str,
    *,
    what: str,
    workspace_dir: Path | None = None,
    datastores: Any = None,
) -> dict[str, Any]:
    """The serialized dataset a parameter value names, checked (type, datastores, paths)."""
    if hasattr(value, "_definition"):  # a FileDataset / TabularDataset object
        if any("local" in p for p in value._definition["paths"]):
            raise UserErrorException(
                f"{what}: a dataset over a step's local files cannot be a pipeline parameter value"
            )
        value = dataset_to_value(value)
    elif isinstance(value, dict) and "paths" not in value and "name" in value:
        unknown = set(value) - {"name", "version"}
        if unknown:
            raise UserErrorException(
                f"{what}: unknown keys {sorted(unknown)} (a registered dataset is named by "
                "'name' and, optionally, 'version')"
            )
        value = _from_registry(value, workspace_dir, what)
    elif not isinstance(value, dict):
        raise UserErrorException(
            f"{what}: a dataset parameter value must be a FileDataset/TabularDataset, "
            f"{{'name': ..., 'version': ...}} of a registered dataset, or a serialized dataset; "
            f"got {type(value).__name__}"
        )
    unknown = set(value) - _VALUE_KEYS
    if unknown:
        raise UserErrorException(f"{what}: unknown keys {sorted(unknown)} in a dataset value")
    kind = value.get("dataset_type")
    if kind != expected_type:
        raise UserErrorException(
            f"{what}: expects a {expected_type} dataset (as its default), got {kind!r}"
        )
    paths = value.get("paths")
    if not isinstance(paths, list) or not paths:
        raise UserErrorException(f"{what}: 'paths' must be a non-empty list")
    clean = []
    for entry in paths:
        if not isinstance(entry, dict) or set(entry) != {"datastore", "path"}:
            raise UserErrorException(
                f"{what}: each path must be {{'datastore': NAME, 'path': PATH}}, got {entry!r}"
            )
        datastore, path = entry["datastore"], entry["path"]
        if not isinstance(datastore, str) or not datastore or not isinstance(path, str):
            raise UserErrorException(f"{what}: bad dataset path {entry!r}")
        if datastores is not None and datastore not in datastores:
            known = ", ".join(sorted(datastores)) or "none"
            raise UserErrorException(
                f"{what}: unknown datastore {datastore!r} (workspace has: {known})"
            )
        safe_relative_path(path, what=f"{what} path")
        clean.append({"datastore": datastore, "path": path})
    out: dict[str, Any] = {"dataset_type": kind, "paths": clean}
    for key in ("tabular", "registered"):
        if value.get(key) is not None:
            if not isinstance(value[key], dict):
                raise UserErrorException(f"{what}: {key!r} must be an object")
            out[key] = dict(value[key])
    return out


def dataset_of_run(spec: dict[str, Any], params: Any, step_name: str, ws: Any) -> dict[str, Any]:
    """A ``dataset`` input spec with this run's dataset in place of the parameter's default."""
    name = spec.get("parameter")
    if not name:
        return spec
    try:
        value = params[name]
    except KeyError:
        raise UserErrorException(
            f"step {step_name!r}: PipelineParameter {name!r} has no value in this run"
        ) from None
    resolved = normalize_dataset_value(
        value,
        spec["dataset_type"],
        what=f"step {step_name!r}, input {spec['name']!r} (PipelineParameter {name!r})",
        workspace_dir=ws.directory,
        datastores=ws.config.datastores,
    )
    out = {k: v for k, v in spec.items() if k not in _RUN_KEYS}
    out.update(resolved)
    return out
