"""What each kind of workspace record holds: one pydantic model per kind.

The fields and their JSON names are the ones the files have always had, so a workspace written by
an earlier mlpipe loads unchanged; fields a newer writer adds are kept (``extra="allow"``), never
dropped on a rewrite. Only what the readers index directly is required; everything else has the
default the readers already assumed. A model checks a record's shape when it is read and before it
is written; the stored dictionary itself is what callers get, so a rewrite is byte-for-byte what
the same writer wrote before.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["Active", "Disabled", "Deprecated"]
Number = int | float  # int first: an int stays an int (a float field would turn 1 into 1.0)


class Record(BaseModel):
    """Base of every record kind: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class PublishedPipelineRecord(Record):
    """``published/<id>.json``: a published pipeline and the DAG it runs as."""

    id: str
    name: str
    description: str | None = None
    version: str | None = None
    status: Status
    graph_id: str
    dag_id: str
    dag_file: str
    pools_file: str | None = None
    parameters: dict[str, Any]
    step_names: list[str] = []
    continue_on_step_failure: bool | None = None
    published_by: str = ""
    created: Number = 0


class PipelineDraftRecord(Record):
    """``drafts/<id>.json``: a mutable pipeline draft (v1 ``PipelineDraft``) and its graph (the
    lowered pipeline as JSON, the form a published pipeline keeps), replaced on every update."""

    id: str
    name: str
    description: str | None = None
    experiment_name: str
    pipeline_parameters: dict[str, Any] = {}
    continue_on_step_failure: bool | None = None
    tags: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    graph: dict[str, Any]
    step_names: list[str] = []
    last_submitted_pipeline_run_id: str | None = None
    created: Number = 0


class EndpointVersion(Record):
    version: str | int
    pipeline_id: str


class EndpointRecord(Record):
    """``endpoints/<id>.json``: a pipeline endpoint's versions and its default."""

    id: str
    name: str
    description: str | None = None
    status: Status
    default_version: str | int
    versions: list[EndpointVersion]
    created: Number = 0


class ScheduleRecord(Record):
    """``schedules/<id>.json``: a schedule of a published pipeline or of an endpoint."""

    id: str
    name: str
    description: str | None = None
    pipeline_id: str | None = None
    pipeline_endpoint_id: str | None = None
    experiment_name: str
    status: Status
    recurrence: dict[str, Any] | None = None
    anchor_time: str | None = None
    datastore_name: str | None = None
    polling_interval: Number | None = None
    data_path_parameter_name: str | None = None
    path_on_datastore: str | None = None
    continue_on_step_failure: bool | None = None
    pipeline_parameters: dict[str, Any] = {}
    dag_id: str
    watcher_dag_id: str | None = None
    created: Number = 0


class ModuleRecord(Record):
    """``modules/<name folder>/module.json``: a module and the list of its published versions."""

    format: int = 1
    id: str
    name: str
    description: str | None = None
    status: Status = "Active"
    default_version: str | None = None
    versions: list[dict[str, Any]] = []


class ModuleVersionRecord(Record):
    """``modules/<name folder>/versions/<version folder>/version.json``: one published version
    (its definition fields: script, ports, params, snapshot digest, ... ride along as extras)."""

    format: int = 1
    module_version_id: str
    version: str
    status: Status = "Active"


class EnvironmentRecord(Record):
    """``environments/<name>/<version>.json``: one registered environment version."""

    name: str
    conda: dict[str, Any]
    user_managed_dependencies: bool
    docker: dict[str, Any]
    environment_variables: dict[str, Any]
    version: int | None = None


class DatasetRecord(Record):
    """``datasets/<name>/<version>.json``: one registered dataset version (its definition: type,
    datastore paths or globs, how tabular files are read; never its content)."""

    name: str
    version: int
    id: str | None = None
    description: str | None = None
    tags: dict[str, Any] = {}
    definition: dict[str, Any]
    created: Number = 0


class ModelRecord(Record):
    """``models/<name>/<version>.json``: one registered model version (where its files are on
    the default datastore, their content digest and sizes; never the bytes themselves)."""

    name: str
    version: int
    id: str
    description: str | None = None
    tags: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    digest: str
    files: dict[str, int]
    datastore: str
    path: str
    created: Number = 0
