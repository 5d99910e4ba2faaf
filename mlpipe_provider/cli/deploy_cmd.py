"""``mlpipe deploy``, ``mlpipe submit`` and ``mlpipe runs``: pipelines on an Airflow server.

The server is the one the workspace config names (``mlpipe server up`` records its local one).
``deploy`` compiles into the workspace's DAG folder, which the server reads, applies the pools
and waits until the server has parsed that exact file. ``submit`` triggers a run through the REST
API, with ``--param`` values parsed against the DAG's params schema before anything is
triggered, and follows it step by step. ``runs`` lists a DAG's runs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from typing import Any

from mlpipe_provider.contract.constants import REGENERATE_PARAM
from mlpipe_provider.errors import MlpipeError, UserErrorException


def _load_one_or_more(targets: list[str], dag_id: str | None) -> list[Any]:
    from compiler.loader import load_pipelines

    if dag_id and len(targets) > 1:
        raise UserErrorException("--dag-id needs exactly one pipeline file")
    found = []
    for target in targets:
        found.extend(load_pipelines(target, dag_id=dag_id))
    return found


def _deploy_found(found: Any, timeout_s: float) -> tuple[Any, Any, Any]:
    """Compile one loaded pipeline into its workspace's DAG folder and install it on the server."""
    from compiler.compile import compile_pipeline
    from mlpipe_provider.client.server_runs import client_for, install_dag

    ws = found.pipeline.workspace
    client = client_for(ws)
    compiled = compile_pipeline(found.pipeline, found.dag_id, ws.dags_dir, origin=found.origin)
    changed = compiled.write()
    started = time.monotonic()
    dag = install_dag(
        client, ws, compiled.dag_id, compiled.path, compiled.pools_path, timeout_s=timeout_s
    )
    print(
        f"{'deployed' if changed else 'unchanged'} DAG {compiled.dag_id!r} (from {found.origin}) "
        f"to {client.url}: parsed in {time.monotonic() - started:.1f} s"
        f"{', paused' if dag.get('is_paused') else ''}"
    )
    return ws, client, compiled


def deploy(targets: list[str], dag_id: str | None = None, timeout_s: float = 120) -> int:
    found = _load_one_or_more(targets, dag_id)
    for item in found:
        _deploy_found(item, timeout_s)
    return 0


# --- parameters --------------------------------------------------------------------------------
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse_as(json_type: str, text: str) -> Any:
    """``text`` as a value of one JSON schema type; ValueError when it is not one."""
    if json_type == "string":
        return text
    if json_type == "integer":
        return int(text.strip(), 10)
    if json_type == "number":
        stripped = text.strip()
        try:
            return int(stripped, 10)
        except ValueError:
            value = float(stripped)
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if json_type == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("not a boolean")
    if json_type in ("object", "array"):
        value = json.loads(text)
        if not isinstance(value, dict if json_type == "object" else list):
            raise ValueError(f"not a JSON {json_type}")
        return value
    if json_type == "null":
        if text.strip().lower() in ("null", "none", ""):
            return None
        raise ValueError("not null")
    raise ValueError(f"unknown type {json_type!r}")


def parse_params(raw: list[str], params: dict[str, dict[str, Any]], dag_id: str) -> dict[str, Any]:
    """``NAME=VALUE`` strings as a conf, each value converted to its param's schema type.

    An unknown name or a value that is not of the param's type is refused, naming the parameter.
    """
    known = ", ".join(sorted(params)) or "none"
    conf: dict[str, Any] = {}
    for item in raw:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserErrorException(f"--param {item!r}: expected NAME=VALUE")
        if name not in params:
            raise UserErrorException(
                f"--param {name}: DAG {dag_id!r} has no parameter {name!r} (its parameters: {known})"
            )
        schema = params[name].get("schema") or {}
        types = schema.get("type")
        if types is None:
            try:
                conf[name] = json.loads(text)
            except ValueError:
                conf[name] = text
            continue
        types = [types] if isinstance(types, str) else list(types)
        # a JSON object or array is only ever tried for text that looks like one, strings last
        order = sorted(types, key=lambda t: {"object": 0, "array": 0, "string": 2}.get(t, 1))
        for json_type in order:
            if json_type in ("object", "array") and not text.lstrip().startswith(("{", "[")):
                continue
            try:
                conf[name] = _parse_as(json_type, text)
                break
            except ValueError:
                continue
        else:
            raise UserErrorException(
                f"--param {name}: parameter {name!r} expects {' or '.join(types)}, got {text!r}"
            )
    return conf


# --- submit ------------------------------------------------------------------------------------
def _is_pipeline_file(target: str) -> bool:
    file_part = target.partition(":")[0] if ".py:" in target else target
    return file_part.endswith(".py")


def submit(
    target: str,
    raw_params: list[str],
    *,
    workspace: str | None = None,
    regenerate_outputs: bool = False,
    wait: bool = True,
    timeout_s: float = 3600,
) -> int:
    from mlpipe_provider.cli.server_cmd import resolve_workspace
    from mlpipe_provider.client.server_runs import client_for, dag_params, trigger_run
    from mlpipe_provider.sdk.experiment import Experiment
    from mlpipe_provider.sdk.workspace import Workspace

    dag_file = pools_file = None
    if _is_pipeline_file(target):
        found = _load_one_or_more([target], None)
        if len(found) > 1:
            names = ", ".join(f.dag_id for f in found)
            raise UserErrorException(
                f"{target} defines {len(found)} pipelines ({names}); name one as FILE.py:NAME"
            )
        ws, client, compiled = _deploy_found(found[0], timeout_s=120)
        dag_id, dag_file, pools_file = compiled.dag_id, compiled.path, compiled.pools_path
    else:
        ws = Workspace(_workspace_dir=resolve_workspace(workspace))
        client = client_for(ws)
        dag_id = target
    conf = parse_params(raw_params, dag_params(client, dag_id), dag_id)
    if regenerate_outputs:
        conf[REGENERATE_PARAM] = True
    experiment = Experiment(ws, dag_id, _skip_name_validation=True)
    run = trigger_run(
        experiment,
        client,
        dag_id,
        conf,
        dag_file=dag_file,
        pools_file=pools_file,
        regenerate_outputs=regenerate_outputs,
    )
    print(f"  Airflow run {run._request['airflow_run_id']}: {run._source.where()}")
    if not wait:
        return 0
    try:
        final = follow(run, timeout_s)
    except KeyboardInterrupt:
        print(f"\nstopped following; the run goes on: {run._source.where()}", file=sys.stderr)
        return 130
    return 0 if final == "Finished" else 1


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        a = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        b = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (b - a).total_seconds()


def step_line(name: str, info: dict[str, Any], width: int) -> tuple[str, str]:
    """(a key that changes when the display should, the line) for one step."""
    record = info.get("record") or {}
    status = info.get("status", "NotStarted")
    how = ""
    if record.get("reused"):
        how = f"reused run {record.get('reused_run_id')}"
    elif status == "Finished":
        how = "executed"
    elif status == "Skipped":
        how = "skipped"
    duration = _seconds(info.get("start"), info.get("end"))
    if record.get("reused"):
        duration = None
    line = f"  {name:<{width}}  {status:<10}"
    if how:
        line += f"  {how}"
    if duration is not None and status in ("Finished", "Failed"):
        line += f"  {duration:.1f} s"
    if status == "Finished" and record.get("metrics") and not record.get("reused"):
        line += f"  metrics: {record['metrics']}"
    return f"{status}|{how}", line


def follow(run: Any, timeout_s: float = 3600, out: Any = None) -> str:
    """Print one line per step whenever its state changes; return the run's final status."""
    from mlpipe_provider.embedded.status import TERMINAL

    out = out or sys.stdout
    started = time.monotonic()
    seen: dict[str, str] = {}
    while True:
        status = run._status
        steps = sorted(
            status.get("steps", {}).items(), key=lambda kv: (kv[1].get("start") or "~", kv[0])
        )
        width = max((len(_name(t, i)) for t, i in steps), default=4)
        for task_id, info in steps:
            if info.get("status", "NotStarted") == "NotStarted":
                continue
            key, line = step_line(_name(task_id, info), info, width)
            if seen.get(task_id) != key:
                seen[task_id] = key
                print(line, file=out, flush=True)
        final = status.get("status")
        if final in TERMINAL:
            elapsed = time.monotonic() - started
            print(f"PipelineRun Status: {final} ({elapsed:.1f} s)", file=out, flush=True)
            if final != "Finished" and status.get("error"):
                print(status["error"], file=out, flush=True)
            return final
        if time.monotonic() - started > timeout_s:
            raise MlpipeError(f"PipelineRun {run.id} did not finish within {timeout_s:.0f} s")
        time.sleep(run._source.poll_interval)


def _name(task_id: str, info: dict[str, Any]) -> str:
    record = info.get("record") or {}
    return str(record.get("step_name") or info.get("display_name") or task_id)


# --- runs --------------------------------------------------------------------------------------
def list_runs(dag_id: str, workspace: str | None = None, limit: int = 25) -> int:
    from mlpipe_provider.airflow_api import AirflowClient
    from mlpipe_provider.cli.server_cmd import resolve_workspace

    ws_dir = resolve_workspace(workspace)
    client = AirflowClient.from_workspace(ws_dir)
    if client.dag(dag_id) is None:
        raise UserErrorException(f"Airflow at {client.url} has no DAG {dag_id!r}")
    runs = client.dag_runs(dag_id, limit=limit)
    if not runs:
        print(f"DAG {dag_id!r} has no runs on {client.url}")
        return 0
    rows = [("RUN ID", "STATE", "START", "END")]
    for run in runs:
        rows.append(
            (
                run["dag_run_id"],
                str(run.get("state")),
                _short_time(run.get("start_date")),
                _short_time(run.get("end_date")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _short_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
