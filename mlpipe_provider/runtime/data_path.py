"""Values of a ``DataPath`` pipeline parameter: a path on a datastore chosen per run.

A DataPath parameter's value is either a string (a path on the datastore of the parameter's
default) or an object ``{"datastore": NAME, "path_on_datastore": PATH}``; that is its JSON schema
in the DAG's params, so the trigger form, ``--conf`` and the REST API all take it. The SDK and
the runtime normalise values with the same function, so both agree on what a value means.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.datastores import safe_relative_path
from mlpipe_provider.errors import UserErrorException

DATA_PATH_JSON_TYPE = ["object", "string"]


def is_data_path_type(json_type: Any) -> bool:
    return json_type == DATA_PATH_JSON_TYPE


def normalize_data_path(value: Any, default_datastore: str, *, what: str) -> dict[str, str]:
    """``{"datastore": ..., "path_on_datastore": ...}`` for a DataPath parameter value."""
    if isinstance(value, str):
        datastore, path = default_datastore, value
    elif isinstance(value, dict):
        unknown = set(value) - {"datastore", "path_on_datastore", "path"}
        if unknown:
            raise UserErrorException(
                f"{what}: unknown keys {sorted(unknown)} (a DataPath value has 'datastore' and "
                "'path_on_datastore')"
            )
        datastore = value.get("datastore") or default_datastore
        path = value.get("path_on_datastore", value.get("path"))
    else:
        datastore = getattr(value, "datastore_name", None)
        path = getattr(value, "path_on_datastore", None)
        if not hasattr(value, "path_on_datastore"):
            raise UserErrorException(
                f"{what}: a DataPath value must be a DataPath, a path string or "
                f"{{'datastore': ..., 'path_on_datastore': ...}}, got {type(value).__name__}"
            )
        datastore = datastore or default_datastore
    if not isinstance(datastore, str) or not datastore:
        raise UserErrorException(f"{what}: datastore must be a datastore name, got {datastore!r}")
    if not isinstance(path, str):
        raise UserErrorException(f"{what}: path_on_datastore must be a string, got {path!r}")
    path = safe_relative_path(path, what=f"{what} path_on_datastore")
    return {"datastore": datastore, "path_on_datastore": path}


def data_path_of_run(spec: dict[str, Any], params: Any, step_name: str) -> dict[str, str]:
    """Where a ``data_path`` input points in this run (the parameter's value, else its default)."""
    name = spec["parameter"]
    try:
        value = params[name]
    except KeyError:
        raise UserErrorException(
            f"step {step_name!r}: PipelineParameter {name!r} has no value in this run"
        ) from None
    return normalize_data_path(
        value, spec["datastore"], what=f"step {step_name!r}, input {spec['name']!r} ({name})"
    )


def missing_data_message(step_name: str, spec: dict[str, Any]) -> str:
    """The error for a DataReference/DataPath input with nothing at its path: the step, the
    input, the datastore and the path, and where the path came from (the user fixes one of them)."""
    where = (
        f"the value of DataPath parameter {spec['parameter']!r} in this run"
        if spec["kind"] == InputKind.DATA_PATH
        else "its DataReference path_on_datastore"
    )
    return (
        f"step {step_name!r}, input {spec['name']!r}: {spec['path_on_datastore']!r} does not "
        f"exist in datastore {spec['datastore']!r} (the path is {where}; upload the data there "
        "first, e.g. with Datastore.upload, or point the input at data that exists)"
    )
