"""Pipeline runs as MLflow runs: one run per Airflow DAG run, one nested run per step.

Imported only when a tracking URI is configured (``tracking.track_step``), so DAG files and
workers without tracking never import MLflow. Layout (docs/tracking.md):

- experiment: the mlpipe experiment's name (the DAG's ``experiment:NAME`` tag, else its dag id);
- pipeline run: tags ``airflow.dag_id``, ``airflow.run_id``, ``mlpipe.role=pipeline``, the run's
  pipeline parameters as params; FINISHED once every step of the DAG has a nested run;
- step run: nested (``mlflow.parentRunId``), the step's params, metrics, images and the exact
  v1 ``get_metrics()`` shape as ``mlpipe/metrics.json``; a reused step is tagged
  ``mlpipe.reused=true`` and ``azureml.reusedrunid`` and carries the reused run's metrics.

Steps run in parallel worker processes and each may be the first to need the pipeline run, so it
is found by a deterministic tag and created under a lock file in the workspace. The lock covers
workers sharing the workspace folder's host (embedded, LocalExecutor); across hosts, a worker that
finds it created a duplicate adopts the oldest pipeline run and deletes its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import numbers
import os
import posixpath
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlpipe_provider import layout
from mlpipe_provider.metrics import aggregate, read_records

ROLE_TAG = "mlpipe.role"
KEY_TAG = "mlpipe.pipeline_key"
PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT_TAG_PREFIX = "experiment:"
METRICS_ARTIFACT = "mlpipe/metrics.json"

#: bounded retries while tracking, unless the worker's environment sets its own: MLflow's
#: defaults retry for minutes, which would hold a finished step (and its slot) that long
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_MAX_BATCH_METRICS = 1000
_MAX_BATCH_PARAMS_TAGS = 100
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_SEARCH_MAX = 10000
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")


def log_step_run(
    uri: str, op: Any, context: Any, record: dict[str, Any], ws: Any
) -> dict[str, str]:
    """Log one step (fresh or reused) under its pipeline run; errors propagate to the caller.
    Returns what the step's record keeps of it: the MLflow run id, and the run's page in the
    MLflow UI where the tracking URI is a server (the task's "MLflow run" link)."""
    if ws is None:
        from mlpipe_provider.runtime.step_context import StepWorkspace

        ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
    with _bounded_http():
        _check_reachable(uri)
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, experiment_name(op.dag))
        parent_id = _pipeline_run(client, experiment_id, op, context, ws)
        step_id = _step_run(client, experiment_id, parent_id, op, context, record, ws)
        finished = _finish_if_complete(client, experiment_id, parent_id, op.dag)
    op.log.info(
        "mlpipe: step %r tracked as MLflow run %s under pipeline run %s%s",
        op.step_name,
        step_id,
        parent_id,
        " (pipeline run finished)" if finished else "",
    )
    found = {"mlflow_run_id": step_id, "mlflow_experiment_id": str(experiment_id)}
    url = run_page_url(uri, str(experiment_id), step_id)
    if url:
        found["mlflow_run_url"] = url
    return found


def run_page_url(uri: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI (served by the tracking server itself); "" for a file or
    database store, which has no UI of its own at that address."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("http", "https"):
        return ""
    netloc = parsed.hostname or ""
    if parsed.port:
        netloc = f"{netloc}:{parsed.port}"  # never the credentials a URI may carry
    base = urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def experiment_name(dag: Any) -> str:
    """The mlpipe experiment a DAG belongs to: ``Experiment.submit`` tags it ``experiment:NAME``."""
    for tag in sorted(getattr(dag, "tags", None) or ()):
        if isinstance(tag, str) and tag.startswith(EXPERIMENT_TAG_PREFIX):
            name = tag[len(EXPERIMENT_TAG_PREFIX) :]
            if name:
                return name
    return str(dag.dag_id)


def pipeline_key(dag_id: str, run_id: str) -> str:
    """A tag value naming one DAG run that is safe to quote in a search filter (run ids are not)."""
    return hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:40]


# --- connection ----------------------------------------------------------------------------
@contextlib.contextmanager
def _bounded_http() -> Iterator[None]:
    added = [key for key in _HTTP_DEFAULTS if key not in os.environ]
    for key in added:
        os.environ[key] = _HTTP_DEFAULTS[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _check_reachable(uri: str) -> None:
    """Fail fast (one request, no retries) when an HTTP tracking server is down."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never send or print credentials from the URI
    probe = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )
    try:
        with urllib.request.urlopen(probe, timeout=5):  # noqa: S310 - http(s) only, checked above
            pass
    except urllib.error.HTTPError:
        return  # it answered (maybe 401 or 404 behind a proxy): the server is there
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(
            f"MLflow tracking server {parts.scheme}://{netloc} is unreachable ({reason})"
        ) from None


@contextlib.contextmanager
def _workspace_lock(ws: Any) -> Iterator[None]:
    folder = Path(ws.directory) / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "mlflow-runs.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- experiment and pipeline run -------------------------------------------------------------
def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={"mlpipe.experiment": name})
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)  # another step created it just now
    if experiment is None or experiment.lifecycle_stage != "active":
        raise RuntimeError(f"MLflow experiment {name!r} is deleted; restore it to track runs there")
    return experiment.experiment_id


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Any]:
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=_SEARCH_MAX,
            order_by=["attributes.start_time ASC"],
        )
    )


def _oldest(runs: list[Any]) -> Any:
    return min(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def _pipeline_run(client: MlflowClient, experiment_id: str, op: Any, context: Any, ws: Any) -> str:
    dag_run = context["dag_run"]
    key = pipeline_key(str(dag_run.dag_id), str(dag_run.run_id))
    query = f"tags.`{KEY_TAG}` = '{key}'"
    found = _search(client, experiment_id, query)
    if found:
        return _oldest(found).info.run_id
    with _workspace_lock(ws):
        found = _search(client, experiment_id, query)
        if found:
            return _oldest(found).info.run_id
        tags = {
            "airflow.dag_id": str(dag_run.dag_id),
            "airflow.run_id": str(dag_run.run_id),
            ROLE_TAG: "pipeline",
            KEY_TAG: key,
            "mlpipe.experiment": experiment_name(op.dag),
            "mlflow.source.type": "JOB",
            "mlflow.source.name": str(op.dag.dag_id),
        }
        logical = getattr(dag_run, "logical_date", None)
        if logical is not None:
            tags["airflow.logical_date"] = str(logical)
        run = client.create_run(
            experiment_id,
            start_time=_now_ms(),  # creation order decides between duplicates (module docstring)
            tags=tags,
            run_name=f"{dag_run.dag_id} {dag_run.run_id}",
        )
        created = run.info.run_id
        _log_params(client, created, _pipeline_params(context))
    found = _search(client, experiment_id, query)
    winner = _oldest(found).info.run_id if found else created
    if winner != created:  # another host created one too: keep one pipeline run per DAG run
        client.delete_run(created)
    return winner


def _pipeline_params(context: Any) -> dict[str, str]:
    from mlpipe_provider.contract.constants import CONTINUE_PARAM, REGENERATE_PARAM

    params = dict(context.get("params") or {})
    return {
        str(name): _param_text(value)
        for name, value in sorted(params.items())
        if name not in (REGENERATE_PARAM, CONTINUE_PARAM)
    }


# --- step run ----------------------------------------------------------------------------------
def _step_run(
    client: MlflowClient,
    experiment_id: str,
    parent_id: str,
    op: Any,
    context: Any,
    record: dict[str, Any],
    ws: Any,
) -> str:
    dag_run = context["dag_run"]
    step_run_id = str(record.get("step_run_id") or "")
    query = (
        f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`airflow.task_id` = '{op.task_id}' "
        f"and tags.`mlpipe.step_run_id` = '{step_run_id}'"
    )
    existing = _search(client, experiment_id, query)
    if existing:  # a retry of a task that already logged this very result
        return existing[0].info.run_id
    reused = bool(record.get("reused"))
    tags = {
        PARENT_TAG: parent_id,
        ROLE_TAG: "step",
        "airflow.dag_id": str(dag_run.dag_id),
        "airflow.run_id": str(dag_run.run_id),
        "airflow.task_id": str(op.task_id),
        "mlpipe.step_name": str(op.step_name),
        "mlpipe.step_run_id": step_run_id,
        "mlpipe.operator": type(op).__name__,
        "mlpipe.reused": "true" if reused else "false",
    }
    try_number = getattr(context.get("ti"), "try_number", None)
    if try_number is not None:
        tags["airflow.try_number"] = str(try_number)
    if record.get("fingerprint"):
        tags["mlpipe.fingerprint"] = str(record["fingerprint"])
    if reused:
        tags["azureml.reusedrunid"] = str(record.get("reused_run_id") or step_run_id)
        tags["mlpipe.reused_dag_id"] = str(record.get("reused_dag_id") or "")
        tags["mlpipe.reused_airflow_run_id"] = str(record.get("reused_pipeline_run_id") or "")
    now = _now_ms()
    duration_ms = 0 if reused else int(float(record.get("duration_s") or 0) * 1000)
    run = client.create_run(
        experiment_id,
        start_time=now - duration_ms,
        tags={k: v[:_MAX_TAG_VALUE] for k, v in tags.items()},
        run_name=str(op.step_name),
    )
    run_id = run.info.run_id
    params = _pipeline_params(context)
    for key, value in _step_params(op, context).items():
        params.setdefault(key, value)
    _log_params(client, run_id, params)
    with _meta_folder(ws, record) as meta:
        records = read_records(meta / "metrics.jsonl") if meta is not None else []
        metrics = record.get("metrics") or (aggregate(records) if records else {})
        series = _metric_series(metrics, records, now)
        for start in range(0, len(series), _MAX_BATCH_METRICS):
            client.log_batch(run_id, metrics=series[start : start + _MAX_BATCH_METRICS])
        if metrics:
            client.log_dict(run_id, metrics, METRICS_ARTIFACT)
        if meta is not None:
            _log_files(client, run_id, meta / "artifacts", _image_names(metrics, records))
    client.set_terminated(run_id, "FINISHED", end_time=_now_ms())
    return run_id


def _step_params(op: Any, context: Any) -> dict[str, str]:
    """The step's own settings: its arguments (placeholders named, parameters resolved)."""
    params = dict(context.get("params") or {})
    out: dict[str, str] = {}
    arguments = getattr(op, "arguments", None)
    if arguments:
        out["arguments"] = _param_text([_argument_text(item, params) for item in arguments])
    for key, value in sorted((getattr(op, "step_params", None) or {}).items()):
        if isinstance(value, dict) and "param" in value:
            value = params.get(value["param"])
        out[f"AML_PARAMETER_{key}"] = _param_text(value)
    return out


def _argument_text(item: Any, params: dict[str, Any]) -> Any:
    if isinstance(item, dict):
        if "param" in item:
            return params.get(item["param"])
        for kind in ("input", "output"):
            if kind in item:
                return f"<{kind}:{item[kind]}>"
    return item


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:_MAX_PARAM_VALUE]


def _log_params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    items = [Param(_key(name), value) for name, value in params.items()]
    unique = list({param.key: param for param in items}.values())
    for start in range(0, len(unique), _MAX_BATCH_PARAMS_TAGS):
        client.log_batch(run_id, params=unique[start : start + _MAX_BATCH_PARAMS_TAGS])


@contextlib.contextmanager
def _meta_folder(ws: Any, record: dict[str, Any]) -> Iterator[Path | None]:
    """The step run's ``.mlpipe`` folder (metrics file, images) as a local path, or None.

    For a reused step this is the folder of the run it reused, so its images go with it.
    """
    folder = record.get("run_folder") or {}
    if not folder.get("datastore") or not folder.get("path"):
        yield None
        return
    rel = posixpath.join(folder["path"], layout.META_DIR)
    store = ws.datastore(folder["datastore"])
    if store.is_local:
        yield store.local_path(rel, what="run folder")
        return
    with tempfile.TemporaryDirectory(prefix="mlpipe-mlflow-") as tmp:
        store.download(tmp, prefix=rel + "/", overwrite=True)
        yield Path(tmp) / rel


def _image_names(metrics: dict[str, Any], records: list[dict[str, Any]]) -> set[str]:
    if records:
        kinds = {r.get("name"): r.get("kind") for r in records}
        return {str(metrics[n]) for n, k in kinds.items() if k == "image" and n in metrics}
    return {v for v in metrics.values() if isinstance(v, str)}  # only names that exist count


def _log_files(client: MlflowClient, run_id: str, folder: Path, images: set[str]) -> None:
    """Images under ``images/``; other files the script uploaded (``run.upload_file``) under
    ``files/``."""
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel in images:
            client.log_artifact(run_id, str(path), "images")
        else:
            parent = posixpath.dirname(rel)
            client.log_artifact(run_id, str(path), posixpath.join("files", parent).rstrip("/"))


# --- metrics -----------------------------------------------------------------------------------
def _metric_series(
    metrics: dict[str, Any], records: list[dict[str, Any]], now_ms: int
) -> list[Metric]:
    """v1 metrics as MLflow series: a repeated scalar keeps its steps (and times, when the
    step's metrics file is there); a list is a series; a row or table column is ``name/column``.
    Values that are not numbers stay in ``mlpipe/metrics.json`` only."""
    kinds = {r.get("name"): r.get("kind") for r in records}
    out: list[Metric] = []
    for name, value in metrics.items():
        key = _key(name)
        if kinds.get(name) == "image":
            continue
        if kinds.get(name) == "scalar":
            index = 0
            for r in records:
                if r.get("name") != name or r.get("kind") != "scalar":
                    continue
                if _is_number(r.get("value")):
                    step = r.get("step") if isinstance(r.get("step"), int) else index
                    stamp = int(float(r.get("time") or now_ms / 1000) * 1000)
                    out.append(Metric(key, float(r["value"]), stamp, step))
                index += 1
        elif isinstance(value, dict):
            for column, cells in value.items():
                cells = cells if isinstance(cells, list) else [cells]
                column_key = _key(f"{name}/{column}")
                out.extend(
                    Metric(column_key, float(c), now_ms, i)
                    for i, c in enumerate(cells)
                    if _is_number(c)
                )
        elif isinstance(value, list):
            out.extend(
                Metric(key, float(v), now_ms, i) for i, v in enumerate(value) if _is_number(v)
            )
        elif _is_number(value):
            out.append(Metric(key, float(value), now_ms, 0))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _key(name: Any) -> str:
    """A valid MLflow metric or param key: unsafe characters and path tricks replaced."""
    cleaned = _BAD_KEY_CHARS.sub("_", str(name))
    parts = ["_" if part in (".", "..") else part for part in cleaned.split("/") if part]
    return ("/".join(parts) or "_")[:_MAX_KEY]


def _finish_if_complete(client: MlflowClient, experiment_id: str, parent_id: str, dag: Any) -> bool:
    """End the pipeline run once every step of the DAG has a nested run.

    Each step checks after writing its own nested run, so whichever finishes last sees all of
    them. A DAG run with a failed step never gets there and stays RUNNING (docs/tracking.md).
    """
    from mlpipe_provider.operators.base import MlpipeStepOperator

    steps = {task.task_id for task in dag.tasks if isinstance(task, MlpipeStepOperator)}
    children = _search(client, experiment_id, f"tags.`{PARENT_TAG}` = '{parent_id}'")
    logged = {run.data.tags.get("airflow.task_id") for run in children}
    if not steps or not steps <= logged:
        return False
    client.set_terminated(parent_id, "FINISHED", end_time=_now_ms())
    return True


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the model registry ----------------------------------------------------------------------
def register_model_version(uri: str, record: dict[str, Any], source: str) -> str:
    """Mirror one mlpipe model version into MLflow's model registry; MLflow's version number.

    The mlpipe registry stays the one steps read (docs/models.md); MLflow's copy points at the
    same stored files (``source``) and carries mlpipe's version and digest as tags, so the two can
    be matched even where MLflow's numbering differs.
    """
    with _bounded_http():
        _check_reachable(uri)
        client = MlflowClient(tracking_uri=uri)
        try:
            client.create_registered_model(record["name"])
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        tags = {
            **{_key(k): str(v)[:_MAX_TAG_VALUE] for k, v in (record.get("tags") or {}).items()},
            "mlpipe.version": str(record["version"]),
            "mlpipe.digest": str(record["digest"]),
        }
        version = client.create_model_version(
            record["name"],
            source=source,
            tags=tags,
            description=record.get("description"),
        )
    return str(version.version)
