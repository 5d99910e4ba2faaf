"""Workspace records: the JSON files a workspace keeps for what users register and publish.

Published pipelines, pipeline drafts, pipeline endpoints, schedules, modules, environments and datasets are each a
small JSON file in the workspace folder, read by the SDK classes (which are views on these records)
and, for endpoints and published pipelines, by the run-time side on Airflow workers. This package
is the one place that knows how such a file is written (atomically, formatted one way), read (a
damaged or missing file is a ``RecordError`` naming it), listed and updated (read-modify-write under
a lock, so two processes changing one record never lose an update), and what each kind holds
(``models``). It is a low layer: it imports neither the SDK, the compiler, the client nor the CLI.
"""

from mlpipe_provider.records.models import (
    DatasetRecord,
    EndpointRecord,
    EnvironmentRecord,
    ModelRecord,
    ModuleRecord,
    ModuleVersionRecord,
    PipelineDraftRecord,
    PublishedPipelineRecord,
    Record,
    ScheduleRecord,
)
from mlpipe_provider.records.status import ACTIVE, DEPRECATED, DISABLED, STATUSES
from mlpipe_provider.records.store import (
    DRAFTS,
    ENDPOINTS,
    PUBLISHED,
    SCHEDULES,
    Collection,
    RecordError,
    create_record,
    dump_json,
    find_record,
    list_records,
    read_json,
    read_record,
    update_record,
    version_names,
    version_records,
    write_json,
    write_record,
)

__all__ = [
    "ACTIVE",
    "DEPRECATED",
    "DRAFTS",
    "DISABLED",
    "ENDPOINTS",
    "PUBLISHED",
    "SCHEDULES",
    "STATUSES",
    "Collection",
    "DatasetRecord",
    "EndpointRecord",
    "EnvironmentRecord",
    "ModelRecord",
    "ModuleRecord",
    "ModuleVersionRecord",
    "PipelineDraftRecord",
    "PublishedPipelineRecord",
    "Record",
    "RecordError",
    "ScheduleRecord",
    "create_record",
    "dump_json",
    "find_record",
    "list_records",
    "read_json",
    "read_record",
    "update_record",
    "version_names",
    "version_records",
    "write_json",
    "write_record",
]
