"""Execute one ``PythonScriptStep`` inside an Airflow task.

Order matters for the reuse store: outputs are written under a fresh step run folder, and the
step's record (outputs, metrics) is only returned after the script succeeded, so a failed or
killed attempt never leaves anything that later runs could mistake for a result. Data on object
stores is downloaded before and uploaded after the script (``runtime/staging.py``): uploads
happen only once the script succeeded, and the attempt's run record follows them.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpipe_provider import layout
from mlpipe_provider.config import STEP_WORKSPACE_ENV, atomic_write_text
from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.metrics import METRICS_FILE_ENV, aggregate, read_records
from mlpipe_provider.model_registry import MODELS_FILE_ENV, read_resolved
from mlpipe_provider.runtime.backends import Launch, run_launch
from mlpipe_provider.runtime.dataset_param import dataset_of_run
from mlpipe_provider.runtime.datasets import (
    dataset_environment,
    finish_outputs,
    materialize,
    prune_outputs,
)
from mlpipe_provider.runtime.devices import DeviceLease
from mlpipe_provider.runtime.distributed import (
    build_commands,
    gpu_shape,
    gpus_held,
    resolve_counts,
)
from mlpipe_provider.runtime.environments import python_for
from mlpipe_provider.runtime.input_resolvers import locate_input
from mlpipe_provider.runtime.staging import StepData
from mlpipe_provider.runtime.step_context import (
    StepWorkspace,
    argument_to_str,
    render_arguments,
    resolve_parameter,
)


def _stage_dataset(op: Any, spec: dict[str, Any], data: StepData, ti: Any, params: Any) -> str:
    """A dataset: its folder, its one file, or a copy (docs/datasets.md)."""
    spec = dataset_of_run(spec, params, op.step_name, data.ws)
    place = data.working_place(spec.get("path_on_compute"), f"input {spec['name']!r}")
    return materialize(data.ws, spec, data.area / "inputs", op.step_name, place=place, data=data)


def _stage_located(op: Any, spec: dict[str, Any], data: StepData, ti: Any, params: Any) -> str:
    """Data at one datastore path (a DataReference, a DataPath, an upstream output)."""
    where = locate_input(op.step_name, spec, ti, params)
    return data.input_path(
        spec["name"],
        where.datastore,
        where.path,
        spec.get("path_on_compute"),
        missing=where.missing,
    )


#: input kind -> how the script gets it at a path; every other kind is found by ``locate_input``
_STAGE_INPUT = {InputKind.DATASET: _stage_dataset}


def _resolve_inputs(op: Any, data: StepData, ti: Any, params: Any = None) -> dict[str, str]:
    return {
        spec["name"]: _STAGE_INPUT.get(spec["kind"], _stage_located)(
            op, spec, data, ti, params or {}
        )
        for spec in op.inputs
    }


def _prepare_outputs(
    op: Any, data: StepData, step_run_id: str
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    paths: dict[str, str] = {}
    locations: dict[str, dict[str, str]] = {}
    for spec in op.outputs:
        port = spec.get("output_name") or spec["name"]
        rel = layout.output_path(step_run_id, port)
        paths[spec["name"]] = data.output_path(
            port,
            spec["datastore"],
            rel,
            spec.get("path_on_compute"),
            is_directory=bool(spec.get("is_directory")),
        )
        locations[port] = {"datastore": spec["datastore"], "path": rel}
    return paths, locations


def _environment(
    op: Any,
    context: Any,
    ws: StepWorkspace,
    step_run_id: str,
    paths: dict[str, str],
    metrics_file: Path,
    artifacts_dir: Path,
) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (op.environment.get("environment_variables") or {}).items():
        env[str(key)] = str(value)
    params = context["params"]
    for key, value in op.step_params.items():
        resolved = (
            resolve_parameter(value["param"], params, op.step_name)
            if isinstance(value, dict)
            else value
        )
        env[f"AML_PARAMETER_{key}"] = argument_to_str(resolved)
    for name, path in paths.items():
        env[f"AZUREML_DATAREFERENCE_{name}"] = path
    dag_run = context["dag_run"]
    env.update(
        {
            "MLPIPE_RUN_ID": step_run_id,
            "MLPIPE_PARENT_RUN_ID": str(dag_run.run_id),
            "MLPIPE_STEP_NAME": op.step_name,
            "MLPIPE_EXPERIMENT": str(dag_run.dag_id),
            STEP_WORKSPACE_ENV: str(ws.directory),
            METRICS_FILE_ENV: str(metrics_file),
            MODELS_FILE_ENV: str(metrics_file.with_name(MODELS_FILE)),
            "MLPIPE_ARTIFACTS_DIR": str(artifacts_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


#: builds the argument list from (the step's Python, the rendered template, the environment, the
#: folder it runs in); says whether its first item is that Python (a container swaps in its own)
#: the step's model resolutions (``Model.get_model_path`` inside the script), beside its metrics
MODELS_FILE = "models.jsonl"

MakeArgv = Callable[[str, list[str], dict[str, str], Path], tuple[list[str], bool]]
#: something to run beside the launch, given the run's metrics file and run id (a HyperDrive
#: trial's monitor, which reads what the script logs while it runs and may stop it)
Watch = Callable[[Path, str], contextlib.AbstractContextManager[Any]]


def run_script(
    op: Any, context: Any, ws: StepWorkspace, watch: Watch | None = None
) -> dict[str, Any]:
    """Run the script once the protocol (``step_protocol.run_step``) decided it must run."""
    dag_dir = Path(op.dag.fileloc).resolve().parent
    source_dir = (dag_dir / op.source_directory).resolve()
    script = source_dir / op.script_name
    if not script.is_file():
        raise UserErrorException(
            f"step {op.step_name!r}, field 'script_name': {str(script)!r} not found"
        )

    def make_argv(
        python: str, rendered: list[str], env: dict[str, str], run_dir: Path
    ) -> tuple[list[str], bool]:
        return [python, "-u", op.script_name, *rendered], True

    return _run_in_fresh_area(op, context, ws, source_dir, op.arguments, make_argv, watch)


def run_command(op: Any, context: Any, ws: StepWorkspace) -> dict[str, Any]:
    """Run a ``CommandStep``'s command (an argument list; ``python`` is the step's Python)."""
    from mlpipe_provider.runtime.command import command_argv

    dag_dir = Path(op.dag.fileloc).resolve().parent
    source_dir = (dag_dir / op.source_directory).resolve()

    def make_argv(
        python: str, rendered: list[str], env: dict[str, str], run_dir: Path
    ) -> tuple[list[str], bool]:
        return command_argv(
            rendered,
            python=python,
            env=env,
            run_dir=run_dir,
            local=op.compute.get("backend", "local") == "local",
            step_name=op.step_name,
        )

    return _run_in_fresh_area(op, context, ws, source_dir, op.command, make_argv)


def _run_in_fresh_area(
    op: Any,
    context: Any,
    ws: StepWorkspace,
    source_dir: Path,
    template: list[Any],
    make_argv: MakeArgv,
    watch: Watch | None = None,
) -> dict[str, Any]:
    step_run_id = str(uuid.uuid4())
    data = StepData(ws, op.step_name, step_run_id, op.log)
    try:
        return _run_staged(op, context, ws, data, source_dir, template, make_argv, watch)
    finally:
        data.close()


def _meta_folder(ws: StepWorkspace, data: StepData) -> tuple[Path, bool]:
    """The attempt's own files (metrics, artifacts, run record): in the default datastore when it
    is a local disk, else staged and uploaded there at the end (``remote`` is then True)."""
    default_store = ws.datastore(ws.config.default_datastore)
    if default_store.is_local:
        rel = layout.meta_path(data.step_run_id, "")
        return default_store.local_path(rel, what="run folder"), False
    return data.area / "run" / layout.META_DIR, True


def _upload_meta(ws: StepWorkspace, data: StepData, meta_dir: Path) -> None:
    data.upload_folder(
        meta_dir,
        ws.config.default_datastore,
        layout.meta_path(data.step_run_id, ""),
        "the run record",
    )


def _run_staged(
    op: Any,
    context: Any,
    ws: StepWorkspace,
    data: StepData,
    source_dir: Path,
    template: list[Any],
    make_argv: MakeArgv,
    watch: Watch | None = None,
) -> dict[str, Any]:
    step_run_id = data.step_run_id
    meta_dir, remote_meta = _meta_folder(ws, data)
    meta_dir.mkdir(parents=True, exist_ok=True)
    metrics_file = meta_dir / "metrics.jsonl"
    artifacts_dir = meta_dir / "artifacts"

    input_paths = _resolve_inputs(op, data, context["ti"], context["params"])
    output_paths, output_locations = _prepare_outputs(op, data, step_run_id)
    rendered = render_arguments(
        template,
        inputs=input_paths,
        outputs=output_paths,
        params=context["params"],
        step_name=op.step_name,
    )
    env = _environment(
        op, context, ws, step_run_id, {**input_paths, **output_paths}, metrics_file, artifacts_dir
    )
    env.update(dataset_environment(op, input_paths, context["params"], ws))
    run_dir = source_dir
    if data.placed:
        env["MLPIPE_WORKING_DIR"] = str(data.work_dir)
        if op.compute.get("backend", "local") == "local":
            run_dir = data.link_source(source_dir)
        else:
            op.log.warning(
                "mlpipe: step %r: path_on_compute places data under %s; on the %r backend the "
                "script still starts in its source directory",
                op.step_name,
                data.work_dir,
                op.compute.get("backend"),
            )
    env_properties: dict[str, str] = {}
    python = python_for(
        op.environment,
        ws,
        step_name=op.step_name,
        log=op.log,
        compute=op.compute,
        properties=env_properties,
    )
    argv, runs_python = make_argv(python, rendered, env, run_dir)

    op.log.info(
        "mlpipe: step %r, run %s: %s (in %s)",
        op.step_name,
        step_run_id,
        argv[2:] if runs_python and argv[1:2] == ["-u"] else argv,
        run_dir,
    )
    counts = resolve_counts(op.distribution, context["params"], op.step_name)
    gpus_per_node = int(op.compute.get("gpus") or 0)
    lease = None
    if gpus_per_node and op.compute.get("backend", "local") == "local":
        nodes, per_node = gpu_shape(counts)
        lease = DeviceLease.acquire(
            gpus_held(nodes, per_node, gpus_per_node),
            gpus_per_node * nodes,
            step_name=op.step_name,
        )
        op.log.info("mlpipe: step %r holds GPU device(s) %s", op.step_name, ",".join(lease.devices))
        if per_node > gpus_per_node:
            op.log.warning(
                "mlpipe: step %r runs %d processes per node on %d GPU(s) per node: they share "
                "the GPUs round-robin (CUDA_VISIBLE_DEVICES)",
                op.step_name,
                per_node,
                gpus_per_node,
            )
    watching = watch(metrics_file, step_run_id) if watch else contextlib.nullcontext()
    try:
        devices = lease.devices if lease else None
        with watching:
            result = run_launch(
                Launch(
                    op=op,
                    context=context,
                    commands=build_commands(argv, env, counts, devices),
                    source_dir=run_dir,
                    input_paths=input_paths,
                    output_paths=output_paths,
                    run_folder=data.area if remote_meta else meta_dir.parent,
                    timeout_s=op.timeout_seconds,
                    devices=devices,
                    runs_python=runs_python,
                )
            )
    finally:
        if lease is not None:
            lease.release()
    _settle_outputs(output_paths)
    prune_outputs(op, {**_local_output_folders(ws, output_locations), **data.staged_folders()})
    uploaded = data.publish_outputs()  # only now does anything reach an object store
    for port, digested in uploaded.items():
        output_locations[port].update(digested)
    datasets = finish_outputs(op, ws, step_run_id, output_locations, fresh=True)
    metrics = aggregate(read_records(metrics_file))
    record = {
        "step_run_id": step_run_id,
        "step_name": op.step_name,
        "status": "Finished",
        "reused": False,
        "outputs": output_locations,
        "metrics": metrics,
        "run_folder": {
            "datastore": ws.config.default_datastore,
            "path": layout.attempt_root(step_run_id),
        },
        "duration_s": round(result.duration_s, 3),
        "dag_id": context["dag_run"].dag_id,
        "dag_run_id": context["dag_run"].run_id,
        "task_id": op.task_id,
    }
    if datasets:
        record["datasets"] = datasets
    models = read_resolved(meta_dir / MODELS_FILE)
    if models:  # the reuse decision checks them against the registry (model_registry.stale_model)
        record["models"] = models
    if env_properties:
        record["properties"] = env_properties
    atomic_write_text(
        meta_dir / "run.json", json.dumps(record, indent=2, sort_keys=True, default=str)
    )
    if remote_meta:
        _upload_meta(ws, data, meta_dir)
    if metrics:
        op.log.info(
            "mlpipe: step %r metrics: %s", op.step_name, json.dumps(metrics, default=str)[:2000]
        )
    return record


def _local_output_folders(
    ws: StepWorkspace, locations: dict[str, dict[str, str]]
) -> dict[str, Path]:
    folders = {}
    for port, location in locations.items():
        store = ws.datastore(location["datastore"])
        if store.is_local:
            folders[port] = store.local_path(location["path"], what=f"output {port!r}")
    return folders


def _settle_outputs(output_paths: dict[str, str]) -> None:
    """An output the script left nothing at is an empty folder, as an unwritten v1 output was; a
    file or folder the script created there is the output as it stands."""
    for path in output_paths.values():
        if not os.path.lexists(path):
            os.makedirs(path, exist_ok=True)
