"""``DataTransferStep``: copy a file or folder from one datastore to another.

The common lowering already made the source the step's one input and the destination its one
output (checking datastores, producers and modes); this kind checks what is particular to a
transfer and names v1's own fields in every problem: ``source_data_reference``,
``destination_data_reference``, the two reference types and ``compute_target``.

Compute: the copy runs inside the Airflow worker, so the target must run there too: a
``DataFactoryCompute`` (a local target of type ``DataFactory``), another local CPU target, or
none. Docker, Kubernetes and GPU targets are refused rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from compiler.kinds import StepKind, register
from mlpipe_provider import layout
from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.store import STORE_PREFIX

REFERENCE_TYPES = ("file", "directory")
RESERVED_TOP_FOLDERS = (layout.RUNS_PREFIX, STORE_PREFIX.split("/")[0])
_FIELD_NAMES = {"inputs[0]": "source_data_reference", "outputs[0]": "destination_data_reference"}


def _name_v1_fields(lowering: Any, step: Any) -> None:
    """Problems the common lowering filed under ``inputs[0]``/``outputs[0]`` concern the source
    and the destination: say so with v1's parameter names."""
    problems = lowering.out.problems
    for index, problem in enumerate(problems):
        for generic, v1_name in _FIELD_NAMES.items():
            prefix = f"step {step.name!r}, field {generic!r}:"
            if problem.startswith(prefix):
                problems[index] = f"step {step.name!r}, field {v1_name!r}:" + problem[len(prefix) :]


def _reference_type(lowering: Any, step: Any, field_name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in REFERENCE_TYPES:
        return value.lower()
    lowering.problem(step, field_name, f"must be 'file' or 'directory', got {value!r}")
    return None


def _overlaps(a: str, b: str) -> bool:
    a, b = a.strip("/"), b.strip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _lower_destination(
    lowering: Any, step: Any, spec: dict[str, Any], data: Any
) -> dict[str, Any] | None:
    from mlpipe_provider.datastores import safe_relative_path
    from mlpipe_provider.sdk.data import DataReference, PipelineData

    field_name = "destination_data_reference"
    if data is None:
        lowering.problem(
            step,
            field_name,
            "is required: the DataReference or PipelineData the data is copied to",
        )
        return None
    if not isinstance(data, (DataReference, PipelineData)):
        lowering.problem(
            step,
            field_name,
            f"must be a DataReference or PipelineData, got {type(data).__name__}",
        )
        return None
    if not spec["outputs"]:
        return None  # the common lowering filed the problem (now under this field's name)
    output = spec["outputs"][0]
    if isinstance(data, PipelineData):
        return {"kind": InputKind.PIPELINE_DATA, "output": output["output_name"]}
    try:
        path = safe_relative_path(data.path_on_datastore, what="path_on_datastore")
    except DatastoreError as exc:
        lowering.problem(step, field_name, str(exc))
        return None
    if not path:
        lowering.problem(
            step,
            field_name,
            f"DataReference {data.data_reference_name!r} names the root of datastore "
            f"{output['datastore']!r}; set path_on_datastore to the file or folder to write",
        )
        return None
    if path.split("/")[0] in RESERVED_TOP_FOLDERS:
        lowering.problem(
            step,
            field_name,
            f"path_on_datastore {path!r} is inside {path.split('/')[0]!r}/, where mlpipe keeps "
            "step outputs and the reuse store; choose another folder",
        )
        return None
    source = spec["inputs"][0] if spec["inputs"] else None
    if (
        source is not None
        and source["kind"] == InputKind.DATA_REFERENCE
        and source["datastore"] == output["datastore"]
        and _overlaps(source["path_on_datastore"], path)
    ):
        lowering.problem(
            step,
            field_name,
            f"{output['datastore']}:{path} overlaps the source "
            f"{source['datastore']}:{source['path_on_datastore']}; a transfer cannot write into "
            "what it reads",
        )
        return None
    return {
        "kind": InputKind.DATA_REFERENCE,
        "output": output["output_name"],
        "datastore": output["datastore"],
        "path_on_datastore": path,
    }


def _sql_datastore_type(lowering: Any, name: str | None) -> str | None:
    from mlpipe_provider.sql_datastores import SQL_KINDS

    entry = lowering.config.datastores.get(name or lowering.default_datastore)
    if entry is not None and entry.datastore_type in SQL_KINDS:
        return entry.datastore_type
    return None


def _lower_sql_source(lowering: Any, step: Any, spec: dict[str, Any], source: Any) -> None:
    """A ``SqlDataReference`` becomes the step's one input, of kind ``sql``: the runtime runs its
    statement and the CSV it writes is what the step copies (runtime/sql_source.py)."""
    field_name = "source_data_reference"
    name = source.datastore_name
    if name is None or name not in lowering.config.datastores:
        known = ", ".join(sorted(lowering.config.datastores)) or "none"
        lowering.problem(step, field_name, f"unknown datastore {name!r} (workspace has: {known})")
        return
    if _sql_datastore_type(lowering, name) is None:
        lowering.problem(
            step,
            field_name,
            f"SqlDataReference {source.data_reference_name!r} names datastore {name!r}, which is "
            "not a SQL database (register it with register_azure_sql_database, "
            "register_azure_postgre_sql or register_azure_my_sql)",
        )
        return
    try:
        statement = source.statement()
    except Exception as exc:  # noqa: BLE001 - a parameter value that cannot be a literal
        lowering.problem(step, field_name, str(exc))
        return
    spec["inputs"].append(
        {
            "name": source.data_reference_name,
            "kind": InputKind.SQL,
            "datastore": name,
            "sql": statement,
            "mode": None,
            "path_on_compute": None,
        }
    )
    if isinstance(step.source_reference_type, str) and step.source_reference_type.lower() == (
        "directory"
    ):
        lowering.problem(
            step,
            "source_reference_type",
            "a SqlDataReference is read as one CSV file; leave source_reference_type unset or 'file'",
        )


def _lower(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    from mlpipe_provider.sdk.data import DataReference, InputPortBinding, PipelineData
    from mlpipe_provider.sdk.sql_data import SqlDataReference

    _name_v1_fields(lowering, step)
    source = step.source_data_reference
    destination = step.destination_data_reference
    if isinstance(destination, SqlDataReference) or (
        isinstance(destination, DataReference)
        and _sql_datastore_type(lowering, destination.datastore_name)
    ):
        lowering.problem(
            step,
            "destination_data_reference",
            "writing into a SQL database is not supported by mlpipe; transfer to a file "
            "datastore and load the CSV into the database from a PythonScriptStep",
        )
        spec["destination"] = None
        return
    if isinstance(source, SqlDataReference):
        _lower_sql_source(lowering, step, spec, source)
    elif isinstance(source, DataReference) and _sql_datastore_type(lowering, source.datastore_name):
        lowering.problem(
            step,
            "source_data_reference",
            f"datastore {source.datastore_name!r} is a SQL database: read it with a "
            "SqlDataReference(datastore, sql_table=... / sql_query=...)",
        )
    if source is None:
        lowering.problem(
            step,
            "source_data_reference",
            "is required: the DataReference or PipelineData to copy",
        )
    elif not isinstance(source, (DataReference, PipelineData, InputPortBinding, SqlDataReference)):
        lowering.problem(
            step,
            "source_data_reference",
            f"must be a DataReference, PipelineData or a binding (as_mount/as_download), got "
            f"{type(source).__name__}",
        )
    elif (
        spec["inputs"]
        and spec["inputs"][0]["kind"] == InputKind.DATA_REFERENCE
        and not spec["inputs"][0]["path_on_datastore"]
    ):
        lowering.problem(
            step,
            "source_data_reference",
            f"names the root of datastore {spec['inputs'][0]['datastore']!r}, which also holds "
            "mlpipe's step outputs and reuse store; set path_on_datastore to a file or folder",
        )
    spec["destination"] = _lower_destination(lowering, step, spec, step.destination_data_reference)
    source_type = _reference_type(
        lowering, step, "source_reference_type", step.source_reference_type
    )
    destination_type = _reference_type(
        lowering, step, "destination_reference_type", step.destination_reference_type
    )
    if source_type == "directory" and destination_type == "file":
        lowering.problem(
            step,
            "destination_reference_type",
            "'file' cannot receive a source of type 'directory'",
        )
    spec["source_reference_type"] = source_type
    spec["destination_reference_type"] = destination_type

    compute = spec["compute"]
    if compute.get("backend") != "local" or compute.get("gpus", 0) > 0:
        lowering.problem(
            step,
            "compute_target",
            f"a data transfer runs inside the Airflow worker; use a DataFactoryCompute, a local "
            f"CPU target or none (compute target {compute['name']!r} uses backend "
            f"{compute.get('backend')!r} with {compute.get('gpus', 0)} GPU(s))",
        )


def _kwargs(spec: dict[str, Any], dag_dir: Any) -> list[tuple[str, Any]]:
    kwargs: list[tuple[str, Any]] = [
        ("inputs", spec["inputs"]),
        ("outputs", spec["outputs"]),
        ("destination", spec["destination"]),
    ]
    for key in ("source_reference_type", "destination_reference_type"):
        if spec.get(key):
            kwargs.append((key, spec[key]))
    kwargs.append(("compute", spec["compute"]))
    kwargs.append(("allow_reuse", spec["allow_reuse"]))
    return kwargs


register(
    StepKind(
        "data_transfer",
        "mlpipe_provider.operators.data_transfer",
        "DataTransferStepOperator",
        _lower,
        _kwargs,
    )
)
