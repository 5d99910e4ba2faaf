"""The workspace records layer (``mlpipe_provider.records``): one way to read, write, list and
update the JSON records of published pipelines, endpoints, schedules, modules, environments and
datasets, and the SDK classes as views on it.

Old workspaces must keep loading: the ``OLD_*`` texts below are records exactly as the code before
this layer wrote them (field names, key order, formatting), loaded through the v1 classes.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import (
    ACTIVE,
    DEPRECATED,
    DISABLED,
    ENDPOINTS,
    PUBLISHED,
    SCHEDULES,
    EndpointRecord,
    ModuleRecord,
    RecordError,
    create_record,
    dump_json,
    find_record,
    list_records,
    read_record,
    update_record,
    write_record,
)

PIPELINE_ID = "0b9d4f0e-4a8e-4c1e-9f57-3a0c1d2e3f40"
ENDPOINT_ID = "1c9d4f0e-4a8e-4c1e-9f57-3a0c1d2e3f41"
SCHEDULE_ID = "2d9d4f0e-4a8e-4c1e-9f57-3a0c1d2e3f42"

OLD_PUBLISHED = f"""{{
  "continue_on_step_failure": null,
  "created": 1700000000.5,
  "dag_file": "dags/train__abc123.py",
  "dag_id": "train__abc123",
  "description": "trains",
  "graph_id": "abc123",
  "id": "{PIPELINE_ID}",
  "name": "train",
  "parameters": {{
    "rate": {{
      "default": 0.1,
      "type": "float"
    }}
  }},
  "pools_file": null,
  "published_by": "alice",
  "status": "Active",
  "step_names": [
    "prep",
    "fit"
  ],
  "version": "1.0"
}}
"""

OLD_ENDPOINT = f"""{{
  "created": 1700000001,
  "default_version": "0",
  "description": null,
  "id": "{ENDPOINT_ID}",
  "name": "train-endpoint",
  "status": "Active",
  "versions": [
    {{
      "pipeline_id": "{PIPELINE_ID}",
      "version": "0"
    }}
  ]
}}
"""

OLD_SCHEDULE = f"""{{
  "anchor_time": "2024-01-01T00:00:00+00:00",
  "continue_on_step_failure": null,
  "created": 1700000002.25,
  "dag_id": "schedule_nightly_2d9d4f0e",
  "data_path_parameter_name": null,
  "datastore_name": null,
  "description": null,
  "experiment_name": "nightly",
  "id": "{SCHEDULE_ID}",
  "name": "nightly",
  "path_on_datastore": null,
  "pipeline_endpoint_id": null,
  "pipeline_id": "{PIPELINE_ID}",
  "pipeline_parameters": {{}},
  "polling_interval": null,
  "recurrence": {{
    "frequency": "Day",
    "hours": null,
    "interval": 1,
    "minutes": null,
    "start_time": null,
    "time_zone": null,
    "week_days": null
  }},
  "status": "Disabled",
  "watcher_dag_id": null
}}
"""

# environments were written in insertion order, not sorted
OLD_ENVIRONMENT = """{
  "name": "trainenv",
  "conda": {
    "name": "project_environment",
    "channels": [],
    "dependencies": [
      "python=3.11",
      {
        "pip": [
          "numpy"
        ]
      }
    ]
  },
  "user_managed_dependencies": false,
  "docker": {
    "enabled": false,
    "base_image": "mcr.microsoft.com/azureml/base:latest"
  },
  "environment_variables": {
    "MODE": "fast"
  },
  "version": 1
}
"""

# datasets were written by json.dump with no final newline
OLD_DATASET = """{
  "created": 1700000003.0,
  "definition": {
    "paths": [
      {
        "datastore": "workspaceblobstore",
        "path": "raw"
      }
    ],
    "type": "file"
  },
  "description": "raw files",
  "id": "3e9d4f0e-4a8e-4c1e-9f57-3a0c1d2e3f43",
  "name": "raw_files",
  "tags": {
    "team": "ml"
  },
  "version": 1
}"""

OLD_MODULE = """{
  "default_version": null,
  "description": "upper-cases",
  "format": 1,
  "id": "4f9d4f0e-4a8e-4c1e-9f57-3a0c1d2e3f44",
  "name": "upper",
  "status": "Deprecated",
  "versions": []
}
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the store ----------------------------------------------------------------------------------
def test_statuses_are_spelled_as_v1():
    assert (ACTIVE, DISABLED, DEPRECATED) == ("Active", "Disabled", "Deprecated")


def test_round_trip_keeps_the_bytes_and_unknown_fields(tmp_path):
    path = _write(tmp_path / "published" / f"{PIPELINE_ID}.json", OLD_PUBLISHED)
    record = PUBLISHED.get(tmp_path, PIPELINE_ID)
    assert record["parameters"]["rate"]["default"] == 0.1
    assert isinstance(record["created"], float)
    PUBLISHED.save(tmp_path, record)
    assert path.read_text(encoding="utf-8") == OLD_PUBLISHED
    record["added_by_a_newer_mlpipe"] = {"x": 1}
    PUBLISHED.save(tmp_path, record)
    again = PUBLISHED.get(tmp_path, PIPELINE_ID)
    assert again["added_by_a_newer_mlpipe"] == {"x": 1}
    assert path.read_text(encoding="utf-8") == dump_json(again)
    assert [r["id"] for r in PUBLISHED.list(tmp_path)] == [PIPELINE_ID]


def test_an_int_stays_an_int(tmp_path):
    path = _write(tmp_path / "endpoints" / f"{ENDPOINT_ID}.json", OLD_ENDPOINT)
    update_record(path, EndpointRecord, lambda r: None)
    assert path.read_text(encoding="utf-8") == OLD_ENDPOINT  # "created": 1, not 1.0


def test_an_unchanged_record_is_not_rewritten(tmp_path):
    path = _write(tmp_path / "modules" / "upper" / "module.json", OLD_MODULE)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    write_record(path, ModuleRecord, read_record(path, ModuleRecord))
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"id": "x", "name": ', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"id": "x", "name": "e", "status": "Active", "versions": []}', "default_version"),
        (OLD_ENDPOINT.replace('"Active"', '"Running"'), "status"),
    ],
)
def test_a_damaged_record_is_an_error_naming_its_file(tmp_path, text, says):
    path = _write(tmp_path / "endpoints" / f"{ENDPOINT_ID}.json", text)
    for read in (
        lambda: ENDPOINTS.get(tmp_path, ENDPOINT_ID),
        lambda: ENDPOINTS.find(tmp_path, ENDPOINT_ID),
        lambda: ENDPOINTS.list(tmp_path),
        lambda: ENDPOINTS.update(tmp_path, ENDPOINT_ID, lambda r: None),
    ):
        with pytest.raises(RecordError, match=says) as caught:
            read()
        assert str(path) in str(caught.value) and caught.value.path == path
        assert isinstance(caught.value, UserErrorException)
    assert path.read_text(encoding="utf-8") == text  # a failed update leaves the file alone


def test_a_missing_record_is_an_error_naming_its_file(tmp_path):
    assert ENDPOINTS.find(tmp_path, ENDPOINT_ID) is None
    assert ENDPOINTS.list(tmp_path) == []
    with pytest.raises(RecordError, match="no endpoint 'e'.*no record file") as caught:
        ENDPOINTS.get(tmp_path, ENDPOINT_ID, "no endpoint 'e'")
    assert str(ENDPOINTS.path(tmp_path, ENDPOINT_ID)) in str(caught.value)


def test_a_record_of_the_wrong_shape_is_never_written(tmp_path):
    with pytest.raises(RecordError, match="dag_id"):
        SCHEDULES.save(tmp_path, {"id": SCHEDULE_ID, "name": "n", "status": ACTIVE})
    assert not SCHEDULES.path(tmp_path, SCHEDULE_ID).exists()


def test_create_record_never_replaces_a_version(tmp_path):
    path = tmp_path / "datasets" / "raw_files" / "1.json"
    record = {"name": "raw_files", "version": 1, "definition": {"type": "file", "paths": []}}
    from mlpipe_provider.records import DatasetRecord

    assert create_record(path, DatasetRecord, record)
    assert not create_record(path, DatasetRecord, {**record, "description": "other"})
    assert find_record(path, DatasetRecord) == record
    assert sorted(p.name for p in path.parent.iterdir()) == ["1.json"]  # no temporary left


def _append_many(path: str, tag: str, count: int) -> None:
    for i in range(count):
        update_record(
            Path(path),
            EndpointRecord,
            lambda r, i=i: {
                **r,
                "versions": [*r["versions"], {"version": f"{tag}{i}", "pipeline_id": tag}],
            },
        )


def test_concurrent_updates_from_processes_all_land(tmp_path):
    path = _write(tmp_path / "endpoints" / f"{ENDPOINT_ID}.json", OLD_ENDPOINT)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), tag, 25)) for tag in "abcd"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    versions = {v["version"] for v in read_record(path, EndpointRecord)["versions"]}
    assert versions == {"0"} | {f"{tag}{i}" for tag in "abcd" for i in range(25)}
    assert [p.name for p in path.parent.glob("*.json")] == [path.name]
    assert list_records(path.parent, EndpointRecord)[0]["id"] == ENDPOINT_ID


def test_records_is_a_low_layer():
    """The run-time side imports it, so it must not pull in the SDK, compiler, client or CLI."""
    code = (
        "import sys, mlpipe_provider.records, mlpipe_provider.runtime.endpoint_route\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('compiler',) or "
        "m.startswith(('mlpipe_provider.sdk', 'mlpipe_provider.client', 'mlpipe_provider.cli')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the SDK classes are views on it, and old workspaces load ------------------------------------
def test_old_workspace_files_load_through_the_v1_classes(ws):
    from mlpipe_provider.sdk import Dataset, Environment, Module, PipelineEndpoint
    from mlpipe_provider.sdk.published import PublishedPipeline
    from mlpipe_provider.sdk.schedule import Schedule

    root = ws._dir
    published = _write(root / "published" / f"{PIPELINE_ID}.json", OLD_PUBLISHED)
    _write(root / "endpoints" / f"{ENDPOINT_ID}.json", OLD_ENDPOINT)
    _write(root / "schedules" / f"{SCHEDULE_ID}.json", OLD_SCHEDULE)
    _write(root / "environments" / "trainenv" / "1.json", OLD_ENVIRONMENT)
    _write(root / "datasets" / "raw_files" / "1.json", OLD_DATASET)
    _write(root / "modules" / "upper" / "module.json", OLD_MODULE)

    pipeline = PublishedPipeline.get(ws, PIPELINE_ID)
    assert (pipeline.name, pipeline.version, pipeline.status) == ("train", "1.0", ACTIVE)
    assert pipeline.get_step_names() == ["prep", "fit"]
    assert PublishedPipeline.list(ws) == [pipeline]
    pipeline.disable()
    assert PublishedPipeline.list(ws) == []
    pipeline.enable()
    assert published.read_text(encoding="utf-8") == OLD_PUBLISHED  # same record, same bytes

    endpoint = PipelineEndpoint.get(ws, name="train-endpoint")
    assert endpoint.id == ENDPOINT_ID and endpoint.get_pipeline() == pipeline
    assert [e.id for e in PipelineEndpoint.list(ws)] == [ENDPOINT_ID]

    schedule = Schedule.get(ws, SCHEDULE_ID)
    assert (schedule.status, schedule.recurrence.frequency) == (DISABLED, "Day")
    assert Schedule.list(ws) == [] and [s.id for s in Schedule.list(ws, active_only=False)] == [
        SCHEDULE_ID
    ]

    env = Environment.get(ws, "trainenv")
    assert (env.version, env.environment_variables) == ("1", {"MODE": "fast"})
    assert env.register(ws).version == "1"  # unchanged definition: no new version

    dataset = Dataset.get_by_name(ws, "raw_files")
    assert (dataset.version, dataset.tags) == (1, {"team": "ml"})

    module = Module.get(ws, name="upper")
    assert (module.status, module.description) == (DEPRECATED, "upper-cases")
    module.enable()
    assert Module.get(ws, name="upper").status == ACTIVE


def test_a_damaged_record_is_reported_by_the_v1_classes(ws):
    from mlpipe_provider.sdk import Module
    from mlpipe_provider.sdk.published import PublishedPipeline

    published = _write(ws._dir / "published" / f"{PIPELINE_ID}.json", OLD_PUBLISHED[:40])
    with pytest.raises(RecordError, match="not valid JSON") as caught:
        PublishedPipeline.get(ws, PIPELINE_ID)
    assert str(published) in str(caught.value)
    with pytest.raises(RecordError, match=str(published)):
        PublishedPipeline.list(ws)  # a damaged registry is reported, not silently shortened

    module_file = _write(ws._dir / "modules" / "upper" / "module.json", '"just a string"')
    with pytest.raises(UserErrorException, match="not a JSON object"):
        Module.get(ws, name="upper")
    assert module_file.is_file()


def test_missing_records_keep_their_v1_messages(ws):
    from mlpipe_provider.sdk.published import PublishedPipeline
    from mlpipe_provider.sdk.schedule import Schedule

    with pytest.raises(UserErrorException, match="no published pipeline .* no record file"):
        PublishedPipeline.get(ws, PIPELINE_ID)
    with pytest.raises(UserErrorException, match="no schedule .* no record file"):
        Schedule.get(ws, SCHEDULE_ID)
