"""A v1 pipeline-submit body, read and checked before anything starts.

v1's body (what the v1 docs, Data Factory and Logic Apps send)::

    {"ExperimentName": "nightly",
     "ParameterAssignments": {"learning_rate": 0.1},
     "DataPathAssignments": {"input_datapath": {"DataStoreName": "workspaceblobstore",
                                                "RelativePath": "raw/2024"}},
     "DataSetDefinitionValueAssignments": {"ds": {"SavedDataSetReference": {"Id": "<name>"}}},
     "RunSource": "SDK", "Description": "...", "PipelineVersion": "2"}

Every problem is a ``BadRequest`` naming the field (and parameter), raised before the run is
created: an unknown field or parameter, a value of the wrong JSON type, a DataPath on a datastore
the workspace does not have, malformed JSON, a body over ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.data_path import is_data_path_type
from mlpipe_provider.runtime.dataset_param import is_dataset_type
from mlpipe_provider.runtime.pipeline_parameters import check_conf, check_data_path_datastores

#: a v1 body is a few parameters; anything this large is a mistake or an attack (413)
MAX_BODY_BYTES = 256 * 1024
#: v1's experiment names: letters, digits, '_' and '-', starting with a letter or digit
_EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")

FIELDS = (
    "ExperimentName",
    "ParameterAssignments",
    "DataPathAssignments",
    "DataSetDefinitionValueAssignments",
    "RunSource",
    "Description",
    "PipelineVersion",
    "ContinueRunOnStepFailure",
    "Tags",
)


class BadRequest(Exception):
    """A request the routes refuse: ``status`` is the HTTP code, the message says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Submission:
    """The checked body of one submit request."""

    experiment_name: str
    parameter_assignments: dict[str, Any]
    data_path_assignments: dict[str, Any]
    dataset_assignments: dict[str, Any]
    run_source: str
    description: str | None
    pipeline_version: str | None
    continue_on_step_failure: bool | None
    tags: dict[str, str]


def _object(body: dict[str, Any], field: str) -> dict[str, Any]:
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be a JSON object of name -> value, got {_kind(value)}")
    return value


def _string(body: dict[str, Any], field: str, default: str | None = None) -> str | None:
    value = body.get(field, default)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{field} must be a string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )


def parse_body(raw: bytes) -> Submission:
    """The body's fields, shape-checked (parameter values are checked by ``conf_for``)."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", status=413)
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r} in the request body (fields: {', '.join(FIELDS)})"
        )
    experiment = body.get("ExperimentName")
    if not isinstance(experiment, str) or not _EXPERIMENT_RE.match(experiment):
        raise BadRequest(
            f"ExperimentName must be 1-255 letters, digits, '_' or '-' starting with a letter or "
            f"digit, got {experiment!r}"
        )
    version = body.get("PipelineVersion")
    if version is not None and not isinstance(version, (str, int)) or isinstance(version, bool):
        raise BadRequest(f"PipelineVersion must be a string, got {_kind(version)}")
    continue_on = body.get("ContinueRunOnStepFailure")
    if continue_on is not None and not isinstance(continue_on, bool):
        raise BadRequest(f"ContinueRunOnStepFailure must be a boolean, got {_kind(continue_on)}")
    tags = _object(body, "Tags")
    if not all(isinstance(v, str) for v in tags.values()):
        raise BadRequest("Tags must map names to strings")
    return Submission(
        experiment_name=experiment,
        parameter_assignments=_object(body, "ParameterAssignments"),
        data_path_assignments=_object(body, "DataPathAssignments"),
        dataset_assignments=_object(body, "DataSetDefinitionValueAssignments"),
        run_source=_string(body, "RunSource", "SDK") or "SDK",
        description=_string(body, "Description"),
        pipeline_version=None if version is None else str(version),
        continue_on_step_failure=continue_on,
        tags=dict(tags),
    )


def _data_path_value(name: str, value: Any) -> dict[str, str]:
    """v1's ``{"DataStoreName", "RelativePath"}`` as mlpipe's DataPath value."""
    where = f"DataPathAssignments: {name!r}"
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be {{'DataStoreName': ..., 'RelativePath': ...}}")
    unknown = sorted(set(value) - {"DataStoreName", "RelativePath"})
    if unknown:
        raise BadRequest(f"{where}: unknown key {unknown[0]!r} (keys: DataStoreName, RelativePath)")
    store, path = value.get("DataStoreName"), value.get("RelativePath")
    if not isinstance(store, str) or not store or not isinstance(path, str):
        raise BadRequest(f"{where}: DataStoreName and RelativePath must be strings")
    return {"datastore": store, "path_on_datastore": path}


def _dataset_value(name: str, value: Any) -> Any:
    """v1's ``{"SavedDataSetReference": {"Id": ...}}`` names a registered dataset (mlpipe's
    registry is keyed by name, so the Id is the dataset's name); other values pass as they are."""
    if isinstance(value, dict) and "SavedDataSetReference" in value:
        ref = value["SavedDataSetReference"]
        if not isinstance(ref, dict) or not isinstance(ref.get("Id"), str):
            raise BadRequest(
                f"DataSetDefinitionValueAssignments: {name!r}: SavedDataSetReference needs an 'Id'"
            )
        return {"name": ref["Id"]}
    return value


def conf_for(
    submission: Submission,
    parameters: dict[str, Any],
    workspace_dir: Path,
    datastores: dict[str, Any],
) -> dict[str, Any]:
    """The DAG run's conf: the three assignment maps merged, each value checked as the SDK's
    ``PublishedPipeline.submit`` checks it (the same code, ``runtime/pipeline_parameters.py``)."""
    given: dict[str, Any] = dict(submission.parameter_assignments)
    for field, values, convert, is_kind in (
        (
            "DataPathAssignments",
            submission.data_path_assignments,
            _data_path_value,
            is_data_path_type,
        ),
        (
            "DataSetDefinitionValueAssignments",
            submission.dataset_assignments,
            _dataset_value,
            is_dataset_type,
        ),
    ):
        for name, value in values.items():
            if name not in parameters:
                known = ", ".join(sorted(parameters)) or "none"
                raise BadRequest(
                    f"{field}: unknown parameter {name!r} (this pipeline has: {known})"
                )
            if name in given:
                raise BadRequest(f"{field}: {name!r} is assigned twice")
            if not is_kind(parameters[name]["type"]):
                raise BadRequest(
                    f"{field}: {name!r} is a {parameters[name]['type']} parameter; assign it in "
                    "ParameterAssignments"
                )
            given[name] = convert(name, value)
    try:
        conf = check_conf(
            parameters,
            given,
            workspace_dir=workspace_dir,
            datastores=datastores,
            what="ParameterAssignments",
        )
        check_data_path_datastores(parameters, conf, datastores, what="DataPathAssignments")
    except UserErrorException as exc:
        raise BadRequest(str(exc)) from None
    return conf
