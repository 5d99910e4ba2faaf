"""What a ``ParallelRunStep``'s tasks do: partition, run one mini-batch, gather.

Reuse works at two levels. The step as a whole has a fingerprint like any step (entry script,
settings, arguments, source folder, the content of every input), so an unchanged rerun skips the
whole group. Each mini-batch also has its own: the step's settings that shape one ``run()`` call,
the source folder, the side inputs, and the digests of the mini-batch's own files. A mini-batch
whose fingerprint has a verified entry in the store is not run again, so when 10 of 1,000 files
changed only their mini-batches run. A mini-batch's entry is written last, after its result is
complete (invariant 3); a step whose mini-batches did not all succeed records no whole-step
entry, so its next run retries the failed ones and takes the rest from the store.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlpipe_provider import layout, remote_digest
from mlpipe_provider.contract.constants import REGENERATE_PARAM, InputKind
from mlpipe_provider.contract.parallel_run import APPEND_ROW, parse_mini_batch_size
from mlpipe_provider.errors import StepFailedError, UserErrorException
from mlpipe_provider.fingerprint import PARALLEL_MINI_BATCH_KEYS, fingerprint_of, resolved_arguments
from mlpipe_provider.hashing import digest_path, iter_tree
from mlpipe_provider.runtime.input_resolvers import locate_input
from mlpipe_provider.runtime.reuse import StepReuse
from mlpipe_provider.runtime.reuse_decision import reuse_message, stored_result
from mlpipe_provider.runtime.step_context import resolve_parameter

MINI_BATCH_SCHEME = "mlpipe-parallel-mini-batch-1"
RESULT_PORT = "mini_batch"
RESULT_FILE = "result.json"
OUTPUT_FOLDER = "output"


def setting(op: Any, key: str, params: dict[str, Any]) -> Any:
    """A ``ParallelRunConfig`` setting with this run's value of a PipelineParameter."""
    value = op.parallel.get(key)
    if isinstance(value, dict) and set(value) == {"param"}:
        return resolve_parameter(value["param"], params, op.step_name)
    return value


def _group_task(step: Any, child: str) -> str:
    """The task id of another task of the step's group (``<group>.<child>``)."""
    group = step.task_id.rpartition(".")[0]
    return f"{group}.{child}" if group else child


def _light_step(step: Any, log: Any, inputs: list[dict[str, Any]] | None = None) -> Any:
    """The step as store lookups of one mini-batch see it: no outputs of the step's own (a
    mini-batch entry records its one result folder), and only ``inputs``."""
    return SimpleNamespace(
        workspace=step.workspace,
        dag=step.dag,
        step_name=step.step_name,
        task_id=step.task_id,
        inputs=list(step.inputs if inputs is None else inputs),
        outputs=[],
        source_directory=step.source_directory,
        log=log,
    )


def _side_inputs(step: Any) -> list[dict[str, Any]]:
    partitioned = set(step.parallel.get("partitioned_inputs") or [])
    return [spec for spec in step.inputs if spec["name"] not in partitioned]


# --- partition ---------------------------------------------------------------------------------


def _input_files(step: Any, reuse: StepReuse, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file of one partitioned input, sorted by path, with its size and content digest."""
    from mlpipe_provider.runtime.dataset_param import dataset_of_run
    from mlpipe_provider.runtime.datasets import matched_view, view_file_digests

    if spec["kind"] == InputKind.DATASET:
        spec = dataset_of_run(spec, reuse.params, step.step_name, reuse.ws)
        view = matched_view(reuse.ws, spec, step.step_name)
        digests = view_file_digests(reuse.ws, view, reuse.cache)
        return [
            {
                "input": spec["name"],
                "rel": rel,
                "datastore": view[rel].datastore,
                "path": view[rel].path,
                "size": size,
                "digest": digest,
            }
            for rel, size, digest in digests
        ]
    where = locate_input(step.step_name, spec, reuse.ti, reuse.params)
    store = reuse.ws.datastore(where.datastore)
    if not store.is_local:
        raise UserErrorException(
            f"step {step.step_name!r}, input {spec['name']!r}: a ParallelRunStep partitions data "
            "on an object store only as a dataset (Dataset.File.from_files); this input is at "
            f"{where.datastore}:{where.path}"
        )
    root = store.local_path(where.path, what=f"input {spec['name']!r}")
    if not root.exists():
        raise UserErrorException(where.missing)
    found = []
    entries = (
        [("", root)] if root.is_file() else [(r, Path(e.path)) for r, e in iter_tree(root, False)]
    )
    for rel, path in sorted(entries):
        st = path.stat()
        found.append(
            {
                "input": spec["name"],
                "rel": rel or path.name,
                "datastore": where.datastore,
                "path": f"{where.path}/{rel}".strip("/") if rel else where.path,
                "size": st.st_size,
                "digest": reuse.cache.digest(str(path), st),
            }
        )
    reuse.cache.flush()
    return found


def _cut(files: list[dict[str, Any]], unit: str, size: int) -> list[list[dict[str, Any]]]:
    """Consecutive mini-batches of ``size`` files, or of files up to ``size`` bytes together
    (a file larger than that is a mini-batch of its own)."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    total = 0
    for file in files:
        full = len(current) >= size if unit == "files" else total + file["size"] > size
        if current and full:
            batches.append(current)
            current, total = [], 0
        current.append(file)
        total += file["size"]
    if current:
        batches.append(current)
    return batches


def common_fingerprint(step: Any, reuse: StepReuse) -> str:
    """What every mini-batch's result depends on besides its own files."""
    settings = step.fingerprint_settings(reuse.params)
    parallel = settings["parallel"]
    shared = {key: parallel.get(key) for key in PARALLEL_MINI_BATCH_KEYS}
    folder = reuse.source_dir
    return fingerprint_of(
        {
            "scheme": MINI_BATCH_SCHEME,
            "kind": "ParallelRunMiniBatch",
            "settings": {
                **{k: v for k, v in settings.items() if k != "parallel"},
                "parallel": shared,
                "arguments": resolved_arguments(step.arguments, reuse.params),
            },
            "source": digest_path(folder, reuse.cache, use_ignore_files=True).digest
            if folder
            else None,
            "side_inputs": {spec["name"]: reuse.input_digest(spec) for spec in _side_inputs(step)},
        }
    )


def mini_batch_fingerprint(mini_batch: dict[str, Any]) -> str:
    return fingerprint_of(
        {
            "scheme": MINI_BATCH_SCHEME,
            "common": mini_batch["common"],
            "files": [[f["input"], f["rel"], f["digest"]] for f in mini_batch["files"]],
        }
    )


#: the partition task's XCom (beside its return value) saying what the step gathers
PLAN_XCOM = "mini_batches"


def partition(op: Any, context: Any) -> list[dict[str, Any]]:
    """The mini-batches that must run (``mini_batch`` is mapped over them).

    None when the whole step has a verified stored result (its own task then reuses it). Else
    the mini-batches whose own stored result is verified are taken here and never become a
    task: the ``PLAN_XCOM`` XCom lists every mini-batch's size and those reused records, so a
    rerun where 10 of 100 mini-batches changed maps 10 task instances, not 100.
    """
    from mlpipe_provider.runtime.step_protocol import refuse_if_stopped

    step = op.step
    refuse_if_stopped(step, context)  # no mini-batch starts once another step failed
    reuse = StepReuse(step, context)
    reusing = step.allow_reuse and not reuse.params.get(REGENERATE_PARAM)
    try:
        if reusing:
            fingerprint, _ = reuse.fingerprint()
            record, why = stored_result(step, reuse, fingerprint, reuse.params, op.log)
            if record is not None:
                op.log.info("mlpipe: nothing to partition: %s", reuse_message(step, record))
                return []
        size = setting(step, "mini_batch_size", reuse.params)
        try:
            unit, amount = parse_mini_batch_size(size)
        except ValueError as exc:
            raise UserErrorException(
                f"step {step.step_name!r}, field 'parallel_run_config.mini_batch_size': {exc}"
            ) from None
        common = common_fingerprint(step, reuse)
        batches: list[list[dict[str, Any]]] = []
        by_name = {spec["name"]: spec for spec in step.inputs}
        for name in step.parallel.get("partitioned_inputs") or []:
            # v1: each input dataset is cut into mini-batches separately
            batches += _cut(_input_files(step, reuse, by_name[name]), unit, amount)
        everything = [
            {"index": i, "common": common, "files": batch} for i, batch in enumerate(batches)
        ]
        reused: list[dict[str, Any]] = []
        to_run: list[dict[str, Any]] = []
        light = StepReuse(_light_step(step, op.log, []), context) if reusing else None
        try:
            for mini_batch in everything:
                fingerprint = mini_batch_fingerprint(mini_batch)
                manifest = _reused_mini_batch(light, fingerprint) if light else None
                if manifest is None:
                    to_run.append(mini_batch)
                else:
                    reused.append(
                        _mini_batch_record(mini_batch, fingerprint, manifest, reused=True)
                    )
        finally:
            if light is not None:
                light.close()
    finally:
        reuse.close()
    context["ti"].xcom_push(
        key=PLAN_XCOM,
        value={"items": [len(b) for b in batches], "reused": reused},
    )
    op.log.info(
        "mlpipe: step %r: %d file(s) in %d mini-batch(es) of %s %s; %d reused from the store, "
        "%d to run",
        step.step_name,
        sum(len(b) for b in batches),
        len(batches),
        amount,
        unit,
        len(reused),
        len(to_run),
    )
    return to_run


# --- one mini-batch ----------------------------------------------------------------------------


def _reused_mini_batch(reuse: StepReuse, fingerprint: str) -> dict[str, Any] | None:
    manifest, _ = reuse.verified_entry(fingerprint)
    if manifest is None or not isinstance(manifest.get("outputs", {}).get(RESULT_PORT), dict):
        return None
    return manifest


def _local_files(op: Any, step: Any, reuse: StepReuse, data: Any, files: list[dict]) -> list[str]:
    """The mini-batch's files as local paths: the datastore's own files, or downloaded."""
    from mlpipe_provider.runtime.transfer.copy import download_files

    paths: list[str] = []
    remote: dict[str, list[tuple[str, str]]] = {}
    for file in files:
        store = reuse.ws.datastore(file["datastore"])
        if store.is_local:
            paths.append(str(store.local_path(file["path"], what=f"input {file['input']!r}")))
        else:
            local = data.area / "inputs" / file["input"] / file["rel"]
            remote.setdefault(file["datastore"], []).append((file["path"], str(local)))
            paths.append(str(local))
    for name, pairs in remote.items():
        download_files(
            reuse.ws.datastore(name),
            [p for p, _ in pairs],
            [d for _, d in pairs],
            data.call(name),
            f"download of mini-batch files of step {step.step_name!r}",
            "",
        )
    return paths


def _worker_environment(
    op: Any, step: Any, context: Any, reuse: StepReuse, run_id: str, folders: dict[str, Path]
) -> dict[str, str]:
    from mlpipe_provider.config import STEP_WORKSPACE_ENV
    from mlpipe_provider.runtime import parallel_worker as worker

    env = dict(os.environ)
    for key, value in (step.environment.get("environment_variables") or {}).items():
        env[str(key)] = str(value)
    for key, value in (step.parallel.get("environment_variables") or {}).items():
        env[str(key)] = str(value)
    dag_run = context["dag_run"]
    env.update(
        {
            "MLPIPE_RUN_ID": run_id,
            "MLPIPE_PARENT_RUN_ID": str(dag_run.run_id),
            "MLPIPE_STEP_NAME": step.step_name,
            "MLPIPE_EXPERIMENT": str(dag_run.dag_id),
            STEP_WORKSPACE_ENV: str(reuse.ws.directory),
            worker.OUTPUT_DIR_ENV: str(folders["output"]),
            worker.WORKING_DIR_ENV: str(folders["working"]),
            worker.LOG_DIR_ENV: str(folders["logs"]),
            worker.LOGGING_LEVEL_ENV: str(setting(step, "logging_level", reuse.params)).upper(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _last_try(op: Any, context: Any) -> bool:
    return int(getattr(context["ti"], "try_number", 1) or 1) > int(op.retries or 0)


def run_mini_batch(op: Any, context: Any, mini_batch: dict[str, Any]) -> dict[str, Any]:
    """Reuse the mini-batch's stored result, or run it; after its last failed try, record the
    failure and end skipped (the step applies the thresholds)."""
    step = op.step
    fingerprint = mini_batch_fingerprint(mini_batch)
    index = mini_batch["index"]
    reuse = StepReuse(_light_step(step, op.log, _side_inputs(step)), context)
    try:
        if step.allow_reuse and not reuse.params.get(REGENERATE_PARAM):
            manifest = _reused_mini_batch(reuse, fingerprint)
            if manifest is not None:
                op.log.info(
                    "mlpipe: mini-batch %d of step %r reused run %s (fingerprint %s)",
                    index,
                    step.step_name,
                    manifest["step_run_id"],
                    fingerprint,
                )
                return _mini_batch_record(mini_batch, fingerprint, manifest, reused=True)
        try:
            manifest = _run(op, step, context, reuse, mini_batch, fingerprint)
        except Exception as exc:
            if not _last_try(op, context):
                raise  # Airflow tries it again (run_max_try)
            return _record_failure(op, context, mini_batch, fingerprint, exc)
        return _mini_batch_record(mini_batch, fingerprint, manifest, reused=False)
    finally:
        reuse.close()


def _mini_batch_record(
    mini_batch: dict[str, Any], fingerprint: str, manifest: dict[str, Any], *, reused: bool
) -> dict[str, Any]:
    return {
        "index": mini_batch["index"],
        "fingerprint": fingerprint,
        "reused": reused,
        "step_run_id": manifest["step_run_id"],
        "result": manifest["outputs"][RESULT_PORT],
        "items": len(mini_batch["files"]),
        "succeeded": int(manifest.get("succeeded", 0)),
    }


def _record_failure(
    op: Any, context: Any, mini_batch: dict[str, Any], fingerprint: str, exc: Exception
) -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowSkipException

    error = f"{type(exc).__name__}: {exc}"[-4000:]
    record = {
        "index": mini_batch["index"],
        "fingerprint": fingerprint,
        "failed": True,
        "error": error,
        "items": len(mini_batch["files"]),
        "succeeded": 0,
    }
    context["ti"].xcom_push(key="return_value", value=record)
    message = (
        f"mlpipe: mini-batch {mini_batch['index']} of step {op.step.step_name!r} failed on its "
        f"last try ({error.splitlines()[0][:300] if error else ''}); recorded as failed, the step "
        "decides with error_threshold / allowed_failed_count / allowed_failed_percent"
    )
    op.log.error("%s", message)
    raise AirflowSkipException(message)


def _run(
    op: Any,
    step: Any,
    context: Any,
    reuse: StepReuse,
    mini_batch: dict[str, Any],
    fingerprint: str,
) -> dict[str, Any]:
    from mlpipe_provider.runtime.environments import python_for
    from mlpipe_provider.runtime.process import run_process
    from mlpipe_provider.runtime.script_step import _resolve_inputs
    from mlpipe_provider.runtime.staging import StepData
    from mlpipe_provider.runtime.step_context import render_arguments

    run_id = str(uuid.uuid4())
    ws = reuse.ws
    data = StepData(ws, step.step_name, run_id, op.log)
    try:
        default = ws.config.default_datastore
        rel = layout.output_path(run_id, RESULT_PORT)
        folder = Path(data.output_path(RESULT_PORT, default, rel, None, is_directory=True))
        folders = {
            "output": folder / OUTPUT_FOLDER,
            "working": data.area / "working",
            "logs": data.area / "logs",
        }
        for path in folders.values():
            path.mkdir(parents=True, exist_ok=True)
        files = _local_files(op, step, reuse, data, mini_batch["files"])
        side = _resolve_inputs(
            SimpleNamespace(inputs=_side_inputs(step), step_name=step.step_name),
            data,
            context["ti"],
            reuse.params,
        )
        arguments = render_arguments(
            step.arguments, inputs=side, outputs={}, params=reuse.params, step_name=step.step_name
        )
        source_dir = reuse.source_dir
        assert source_dir is not None
        request = {
            "entry_script": str(source_dir / step.parallel["entry_script"]),
            "arguments": arguments,
            "files": files,
            "timeout_s": int(setting(step, "run_invocation_timeout", reuse.params)),
            "result": str(folder / RESULT_FILE),
        }
        request_file = data.area / "request.json"
        request_file.write_text(json.dumps(request), encoding="utf-8")
        env = _worker_environment(op, step, context, reuse, run_id, folders)
        for name, path in side.items():
            env[f"AZUREML_DATAREFERENCE_{name}"] = path
        python = python_for(
            step.environment, ws, step_name=step.step_name, log=op.log, compute=step.compute
        )
        op.log.info(
            "mlpipe: mini-batch %d of step %r (%d file(s)), run %s",
            mini_batch["index"],
            step.step_name,
            len(files),
            run_id,
        )
        run_process(
            [python, "-u", "-m", "mlpipe_provider.runtime.parallel_worker", str(request_file)],
            cwd=source_dir,
            env=env,
            log_out=lambda line: op.log.info("%s", line),
            log_err=lambda line: op.log.info("%s", line),
            timeout_s=None,
            step_name=step.step_name,
            label=f"mini-batch {mini_batch['index']}",
        )
        succeeded = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))["count"]
        uploaded = data.publish_outputs()
        location: dict[str, Any] = {
            "datastore": default,
            "path": rel,
            **uploaded.get(RESULT_PORT, {}),
        }
        if "digest" not in location:
            tree = reuse.output_digest(location)
            location.update(digest=tree.digest, files=tree.files, size=tree.total_size)
        manifest = {
            "fingerprint": fingerprint,
            "step_run_id": run_id,
            "outputs": {RESULT_PORT: location},
            "succeeded": succeeded,
            "items": len(files),
            "created": time.time(),
        }
        if step.allow_reuse:
            reuse.store.commit(manifest)
        return manifest
    finally:
        data.close()


# --- gather ------------------------------------------------------------------------------------


def _fetch_result(reuse: StepReuse, location: dict[str, Any], scratch: Path) -> Path:
    """A mini-batch's result folder as a local folder (downloaded from an object store)."""
    from mlpipe_provider.runtime.transfer.copy import download_files

    store = reuse.ws.datastore(location["datastore"])
    if store.is_local:
        return store.local_path(location["path"], what="mini-batch result")
    listed = remote_digest.list_tree(store, location["path"]) or []
    target = scratch / uuid.uuid4().hex
    download_files(
        store,
        [f.path for f in listed],
        [str(target / f.rel) for f in listed],
        None,
        "download of a mini-batch result",
        location["path"],
    )
    return target


def _check_thresholds(step: Any, params: dict[str, Any], summary: dict[str, int]) -> str | None:
    """Why the step fails (v1's three thresholds), or None."""
    threshold = setting(step, "error_threshold", params)
    if threshold != -1 and summary["items_failed"] > threshold:
        return (
            f"field 'parallel_run_config.error_threshold': {summary['items_failed']} of "
            f"{summary['items']} item(s) failed, more than error_threshold={threshold}"
        )
    count = setting(step, "allowed_failed_count", params)
    if count is not None and count != -1 and summary["mini_batches_failed"] > count:
        return (
            f"field 'parallel_run_config.allowed_failed_count': {summary['mini_batches_failed']} "
            f"mini-batch(es) failed, more than allowed_failed_count={count}"
        )
    percent = setting(step, "allowed_failed_percent", params)
    total = summary["mini_batches"]
    if percent is not None and total and 100.0 * summary["mini_batches_failed"] / total > percent:
        return (
            f"field 'parallel_run_config.allowed_failed_percent': "
            f"{summary['mini_batches_failed']} of {total} mini-batch(es) failed, more than "
            f"allowed_failed_percent={percent}"
        )
    return None


def gather(step: Any, context: Any, reuse: StepReuse) -> dict[str, Any]:
    """The step's own run: collect every mini-batch's result in mini-batch order, apply the
    thresholds, write the step's output (``parallel_run_step.txt`` for ``append_row``, and the
    files entry scripts wrote to ``EntryScript().output_dir``)."""
    from mlpipe_provider.runtime.staging import StepData

    started = time.monotonic()
    ti = context["ti"]
    plan = ti.xcom_pull(task_ids=_group_task(step, "partition"), key=PLAN_XCOM)
    if not isinstance(plan, dict):
        raise StepFailedError(
            f"step {step.step_name!r}: its partition task found a stored result to reuse, but "
            "that result is no longer usable; run the pipeline again"
        )
    pulled = (
        ti.xcom_pull(task_ids=[_group_task(step, "mini_batch")])
        if len(plan["reused"]) < len(plan["items"])
        else []
    )
    by_index = {r["index"]: r for r in plan["reused"]}
    by_index.update({r["index"]: r for r in pulled or [] if isinstance(r, dict) and "index" in r})
    results = []
    for index, items in enumerate(plan["items"]):
        found = by_index.get(index)
        if found is None:
            found = {
                "index": index,
                "failed": True,
                "error": "no result recorded",
                "items": items,
                "succeeded": 0,
            }
        results.append(found)
    failed = [r for r in results if r.get("failed")]
    summary = {
        "mini_batches": len(results),
        "mini_batches_failed": len(failed),
        "mini_batches_reused": sum(1 for r in results if r.get("reused")),
        "items": sum(r["items"] for r in results),
        "items_failed": sum(r["items"] - min(r["succeeded"], r["items"]) for r in results),
    }
    step.log.info("mlpipe: step %r: %s", step.step_name, json.dumps(summary))
    for result in failed:
        step.log.warning(
            "mlpipe: step %r: mini-batch %d failed: %s",
            step.step_name,
            result["index"],
            result.get("error"),
        )
    why = _check_thresholds(step, reuse.params, summary)
    if why is not None:
        raise StepFailedError(f"step {step.step_name!r}, {why}")
    run_id = str(uuid.uuid4())
    data = StepData(reuse.ws, step.step_name, run_id, step.log)
    try:
        out = step.outputs[0]
        port = out.get("output_name") or out["name"]
        rel = layout.output_path(run_id, port)
        target = Path(
            data.output_path(
                port, out["datastore"], rel, out.get("path_on_compute"), is_directory=True
            )
        )
        rows: list[str] = []
        for result in results:
            if result.get("failed"):
                continue
            folder = _fetch_result(reuse, result["result"], data.area / "results")
            rows += json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))["rows"]
            written = folder / OUTPUT_FOLDER
            if written.is_dir():
                shutil.copytree(written, target, dirs_exist_ok=True)
        if setting(step, "output_action", reuse.params) == APPEND_ROW:
            text = "".join(f"{row}\n" for row in rows)
            (target / step.parallel["append_row_file_name"]).write_text(text, encoding="utf-8")
        uploaded = data.publish_outputs()
    finally:
        data.close()
    location = {"datastore": out["datastore"], "path": rel, **uploaded.get(port, {})}
    record = {
        "step_run_id": run_id,
        "step_name": step.step_name,
        "status": "Finished",
        "reused": False,
        "outputs": {port: location},
        "metrics": summary,
        "run_folder": {
            "datastore": reuse.ws.config.default_datastore,
            "path": layout.attempt_root(run_id),
        },
        "duration_s": round(time.monotonic() - started, 3),
        "dag_id": context["dag_run"].dag_id,
        "dag_run_id": context["dag_run"].run_id,
    }
    if failed:  # tolerated, but not a result to reuse: the next run retries those mini-batches
        record["reusable"] = False
    return record
