"""One step of a followed run: its metrics as charts, and the images it logged.

The step record (the task's XCom, or the reuse plan's record for a step it reused) names the
step run's folder in the workspace's default datastore; the metrics file there holds every
``run.log_*`` call with its kind, and ``artifacts/`` the images ``run.log_image`` kept. A reused
step's record names the folder of the run it reused, so it shows that run's metrics and images.

The workspace is the one of the pipeline file the page has open, and it must have recorded this
very DAG run (``runs/<id>/request.json``, written when the run was started): a request cannot
point the designer at another workspace's files. An image is served only when the step logged it
with ``run.log_image``, under a plain file name, inside that step run's ``artifacts/`` (symlinks
resolved), with a content type from ``IMAGE_TYPES``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mlpipe_provider import layout
from mlpipe_provider.config import load_config
from mlpipe_provider.contract.constants import PLAN_TASK_ID, planned_record
from mlpipe_provider.designer import files, service
from mlpipe_provider.designer.charts import charts
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.metrics import read_records
from mlpipe_provider.rest import runs as recorded_runs
from mlpipe_provider.runtime.step_context import StepWorkspace

METRICS_FILE = "metrics.jsonl"
ARTIFACTS_DIR = "artifacts"
#: image types served (never SVG: it can carry script)
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")


def run_workspace(root: Path, relative: str, dag_id: str, run_id: str) -> StepWorkspace:
    """The workspace of the pipeline file ``relative``, once it is known to hold this DAG run."""
    from mlpipe_provider.designer.palette import workspace_for

    path = files.pipeline_path(root, relative)
    ws = workspace_for(path.parent, root)
    if ws is None:
        raise service.NotFound(f"{relative} belongs to no workspace (no .mlpipe/config.json)")
    directory = Path(ws.directory)
    own_id = run_id.removeprefix(recorded_runs.RUN_ID_PREFIX)
    request = None
    if run_id.startswith(recorded_runs.RUN_ID_PREFIX) and _FILE_RE.match(own_id):
        request = recorded_runs.read_run(directory, own_id)
    if (
        request is None
        or request.get("dag_id") != dag_id
        or request.get("airflow_run_id", run_id) != run_id
    ):
        raise service.NotFound(
            f"run {run_id!r} of DAG {dag_id!r} was not started from {relative}'s workspace"
        )
    return StepWorkspace(directory, load_config(directory))


def step_record(dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """The step's record as the run state reads it; 404 for a task the run does not have."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if task_id == PLAN_TASK_ID:
        raise service.NotFound("the reuse check is not a step")
    with create_session() as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index.in_((-1, 0)),
            )
        )
        if ti is None:
            raise service.NotFound(f"run {run_id!r} of DAG {dag_id!r} has no step {task_id!r}")
        values = {}
        for xcom in session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id.in_((task_id, PLAN_TASK_ID)),
                XComModel.key == "return_value",
                XComModel.map_index == -1,
            )
        ):
            values[xcom.task_id] = XComModel.deserialize_value(xcom)
    record = planned_record(values.get(PLAN_TASK_ID), task_id) or values.get(task_id)
    return record if isinstance(record, dict) else {}


def _meta(ws: StepWorkspace, record: dict[str, Any]) -> tuple[Any, str] | None:
    """The step run's datastore and its ``.mlpipe`` folder there, if the record names one."""
    folder = record.get("run_folder")
    if not isinstance(folder, dict) or not folder.get("datastore") or not folder.get("path"):
        return None
    store = ws.datastore(str(folder["datastore"]))
    return store, posixpath.join(str(folder["path"]), layout.META_DIR)


def read_step_records(ws: StepWorkspace, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every ``run.log_*`` record of the step run; None where its metrics file is not there."""
    found = _meta(ws, record)
    if found is None:
        return None
    store, meta = found
    rel = posixpath.join(meta, METRICS_FILE)
    if store.is_local:
        return read_records(store.local_path(rel, what="metrics file"))
    if not store.exists(rel, what="metrics file"):
        return None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlpipe-metrics-") as tmp:
        local = Path(tmp) / METRICS_FILE
        local.write_bytes(store.read_bytes(rel, what="metrics file"))
        return read_records(local)


def metrics_of(ws: StepWorkspace, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The step's chart entries, from its metrics file, else from the record's aggregate."""
    return charts(read_step_records(ws, record), record.get("metrics"))


def step_metrics(root: Path, relative: str, dag_id: str, run_id: str, task_id: str) -> dict:
    """What the Metrics panel shows for one step of a followed run (``GET /api/run/metrics``)."""
    ws = run_workspace(root, relative, dag_id, run_id)
    record = step_record(dag_id, run_id, task_id)
    entries = metrics_of(ws, record)
    query = {"path": relative, "dag_id": dag_id, "run_id": run_id, "task_id": task_id}
    for entry in entries:
        if entry["kind"] == "image":
            entry["url"] = "api/run/image?" + urlencode({**query, "name": entry["name"]})
    return {
        "task_id": task_id,
        "step_run_id": record.get("reused_run_id") or record.get("step_run_id"),
        "reused": bool(record.get("reused")),
        "metrics": entries,
    }


def step_image(
    root: Path, relative: str, dag_id: str, run_id: str, task_id: str, name: str
) -> tuple[bytes, str]:
    """The bytes and content type of the image the step logged as ``name``
    (``GET /api/run/image``)."""
    ws = run_workspace(root, relative, dag_id, run_id)
    return image_of(ws, step_record(dag_id, run_id, task_id), task_id, name)


def image_of(
    ws: StepWorkspace, record: dict[str, Any], task_id: str, name: str
) -> tuple[bytes, str]:
    """The image a step run logged as ``name``: only a plain file name with an image suffix,
    inside the step run's ``artifacts/`` once symlinks are resolved; anything else is a 404."""
    records = read_step_records(ws, record) or []
    logged = [r for r in records if r.get("name") == name and r.get("kind") == "image"]
    if not logged:
        raise service.NotFound(f"step {task_id!r} logged no image named {name!r}")
    file_name = str(logged[-1].get("value") or "")
    suffix = posixpath.splitext(file_name)[1].lower()
    if not _FILE_RE.match(file_name) or suffix not in IMAGE_TYPES:
        raise service.NotFound(
            f"step {task_id!r}, image {name!r}: {file_name!r} is not an image file among the "
            f"step's artifacts (served: {', '.join(sorted(IMAGE_TYPES))})"
        )
    found = _meta(ws, record)
    if found is None:
        raise service.NotFound(f"step {task_id!r} has no run folder")
    store, meta = found
    artifacts = posixpath.join(meta, ARTIFACTS_DIR)
    rel = posixpath.join(artifacts, file_name)
    missing = service.NotFound(f"step {task_id!r}: image {name!r} is not among its artifacts")
    if store.is_local:
        try:
            base = store.local_path(artifacts, what="artifacts").resolve()
            path = store.local_path(rel, what="image").resolve()
        except DatastoreError as exc:  # a symlink out of the datastore
            raise missing from exc
        if not path.is_relative_to(base) or not path.is_file():
            raise missing
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise service.NotFound(f"step {task_id!r}: image {name!r} is over 20 MiB")
        return path.read_bytes(), IMAGE_TYPES[suffix]
    if not store.exists(rel, what="image"):
        raise missing
    data = store.read_bytes(rel, what="image")
    if len(data) > MAX_IMAGE_BYTES:
        raise service.NotFound(f"step {task_id!r}: image {name!r} is over 20 MiB")
    return data, IMAGE_TYPES[suffix]
