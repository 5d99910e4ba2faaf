"""A run's parameter values, checked against the pipeline's parameters before anything starts.

Two entrances submit runs of a published pipeline: the SDK (``PublishedPipeline.submit``) and the
v1 REST routes served inside Airflow's API server (``mlpipe_provider/rest``), where the SDK is not
imported. Both must refuse the same values with the same message, so the check lives here, on the
run-time side, and the SDK's ``check_parameters`` is a thin wrapper over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.data_path import is_data_path_type, normalize_data_path
from mlpipe_provider.runtime.dataset_param import is_dataset_type, normalize_dataset_value

_JSON_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def check_conf(
    parameters: dict[str, Any],
    given: Any,
    *,
    workspace_dir: Path | None = None,
    datastores: Any = None,
    what: str = "pipeline_parameters",
) -> dict[str, Any]:
    """The DAG conf for ``given`` (``{name: value}``), or a ``UserErrorException`` naming the
    parameter: unknown names, values of the wrong JSON type, malformed DataPath or dataset values.

    ``parameters`` is the lowered pipeline's ``{name: {"type", "default", ...}}``.
    """
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise UserErrorException(f"{what} must be a dict of name -> value")
    conf: dict[str, Any] = {}
    for name, value in given.items():
        if name not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            raise UserErrorException(
                f"{what}: unknown parameter {name!r} (this pipeline has: {known})"
            )
        expected = parameters[name]["type"]
        label = f"{what}: parameter {name!r}"
        if is_data_path_type(expected):  # a DataPath parameter: a path on a datastore
            default_store = parameters[name]["default"]["datastore"]
            conf[name] = normalize_data_path(value, default_store, what=label)
            continue
        if is_dataset_type(expected):  # a dataset parameter: travels as a serialized dataset
            conf[name] = normalize_dataset_value(
                value,
                parameters[name]["default"]["dataset_type"],
                what=label,
                workspace_dir=workspace_dir,
                datastores=datastores,
            )
            continue
        if not _JSON_TYPE_CHECKS[expected](value):
            raise UserErrorException(
                f"{label} expects {expected}, got {type(value).__name__} {value!r}"
            )
        conf[name] = value
    return conf


def check_data_path_datastores(
    parameters: dict[str, Any], conf: dict[str, Any], known: Any, *, what: str
) -> None:
    """DataPath values must name a datastore of the workspace (caught before the run, not in it)."""
    for name, value in conf.items():
        if is_data_path_type(parameters[name]["type"]) and value["datastore"] not in known:
            raise UserErrorException(
                f"{what}: parameter {name!r}: unknown datastore "
                f"{value['datastore']!r} (workspace has: {', '.join(sorted(known)) or 'none'})"
            )
