"""``PythonScriptStep``: a script run from its source folder, optionally as several processes.

The other script-like kinds (estimator, MPI, module) reuse ``lower_script`` with the fields their
v1 classes keep in other places.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.kinds import StepKind, register


def lower_script(
    lowering: Any,
    step: Any,
    spec: dict[str, Any],
    *,
    source_directory: str | None,
    script_name: str,
    script_field: str = "script_name",
    source_field: str = "source_directory",
) -> None:
    """Check the script exists inside its folder; record both (the folder as an absolute path)."""
    source = source_directory or lowering.pipeline.script_folder
    source_path = Path(source)
    if not source_path.is_dir():
        lowering.problem(step, source_field, f"folder {str(source_path)!r} does not exist")
    else:
        script = (source_path / script_name).resolve()
        if not script.is_relative_to(source_path.resolve()):
            lowering.problem(step, script_field, f"{script_name!r} is outside source_directory")
        elif not script.is_file():
            lowering.problem(
                step,
                script_field,
                f"script {script_name!r} not found in source_directory {str(source_path)!r}",
            )
    spec["script_name"] = script_name
    spec["source_directory"] = str(source_path)


def lower_timeout(lowering: Any, step: Any, runconfig: Any) -> int | None:
    timeout = (
        getattr(runconfig, "max_run_duration_seconds", None) if runconfig is not None else None
    )
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0
    ):
        lowering.problem(
            step,
            "runconfig.max_run_duration_seconds",
            f"must be a positive integer, got {timeout!r}",
        )
        return None
    return timeout


def runconfig_shape(runconfig: Any) -> dict[str, Any]:
    """The launch shape a v1 RunConfiguration describes (communicator + mpi/tensorflow/pytorch)."""
    if runconfig is None:
        return {"framework": "none"}
    job = getattr(runconfig, "distributed_job_config", None)
    if job is not None:  # ScriptRunConfig(distributed_job_config=...) sets it
        return distributed_job_shape(job)
    communicator = str(getattr(runconfig, "communicator", "None") or "None")
    node_count = getattr(runconfig, "node_count", 1)
    pytorch = getattr(runconfig, "pytorch", None)
    if communicator in ("IntelMpi", "OpenMpi", "Mpi"):
        return {
            "framework": "mpi",
            "node_count": node_count,
            "process_count_per_node": runconfig.mpi.process_count_per_node,
        }
    if communicator == "ParameterServer":
        tf = runconfig.tensorflow
        return {
            "framework": "tensorflow",
            "node_count": node_count,
            "worker_count": tf.worker_count,
            "parameter_server_count": tf.parameter_server_count,
        }
    if communicator in ("Nccl", "Gloo") or pytorch is not None:
        nodes = pytorch.node_count if pytorch is not None else node_count
        total = pytorch.process_count if pytorch is not None and pytorch.process_count else nodes
        per_node = (
            total // nodes if isinstance(total, int) and isinstance(nodes, int) and nodes else 1
        )
        return {"framework": "pytorch", "node_count": nodes, "process_count_per_node": per_node}
    return {"framework": "none", "node_count": node_count}


def distributed_job_shape(job: Any) -> dict[str, Any]:
    """The launch shape of v1's ``MpiConfiguration``, ``PyTorchConfiguration`` or
    ``TensorflowConfiguration`` (the estimators' MPI/PyTorch/TensorFlow shapes, named anew)."""
    from mlpipe_provider.sdk.environment import MpiConfiguration, PyTorchConfiguration

    if isinstance(job, MpiConfiguration):
        return {
            "framework": "mpi",
            "node_count": job.node_count,
            "process_count_per_node": job.process_count_per_node,
        }
    if isinstance(job, PyTorchConfiguration):
        nodes = job.node_count
        total = job.process_count or nodes
        per_node = (
            total // nodes if isinstance(total, int) and isinstance(nodes, int) and nodes else 1
        )
        return {"framework": "pytorch", "node_count": nodes, "process_count_per_node": per_node}
    return {  # TensorflowConfiguration (ScriptRunConfig accepts no other kind)
        "framework": "tensorflow",
        "node_count": 1,
        "worker_count": job.worker_count,
        "parameter_server_count": job.parameter_server_count,
    }


def _lower(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    from compiler.kinds.distributed import check_capacity, lower_distribution

    lower_script(
        lowering, step, spec, source_directory=step.source_directory, script_name=step.script_name
    )
    spec["environment"] = lowering.lower_environment(step, step.runconfig)
    spec["timeout_seconds"] = lower_timeout(lowering, step, step.runconfig)
    spec["distribution"] = lower_distribution(
        lowering,
        step,
        runconfig_shape(step.runconfig),
        step.runconfig_pipeline_params,
        "runconfig.",
    )
    check_capacity(lowering, step, spec, use_gpu=False)


def script_kwargs(spec: dict[str, Any], dag_dir: Path) -> list[tuple[str, Any]]:
    what = [("script_name", spec["script_name"]), ("arguments", spec["arguments"])]
    return process_kwargs(spec, dag_dir, what)


def process_kwargs(
    spec: dict[str, Any], dag_dir: Path, what: list[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """The operator arguments of a step that runs processes; ``what`` says what they run (a
    script and its arguments, or a command)."""
    from compiler.codegen import relative_path

    kwargs: list[tuple[str, Any]] = [
        ("source_directory", relative_path(spec["source_directory"], dag_dir)),
        *what,
        ("inputs", spec["inputs"]),
        ("outputs", spec["outputs"]),
    ]
    if spec["params"]:
        kwargs.append(("step_params", spec["params"]))
    kwargs.append(("compute", spec["compute"]))
    if spec.get("environment"):
        kwargs.append(("environment", spec["environment"]))
    if spec.get("distribution"):
        kwargs.append(("distribution", spec["distribution"]))
    kwargs.append(("allow_reuse", spec["allow_reuse"]))
    if spec.get("timeout_seconds"):
        kwargs.append(("timeout_seconds", spec["timeout_seconds"]))
    return kwargs


register(
    StepKind(
        "python_script",
        "mlpipe_provider.operators.script",
        "PythonScriptStepOperator",
        _lower,
        script_kwargs,
    )
)
