"""Estimator and MPI steps, and the distribution shape shared with ``PythonScriptStep``.

A distributed step runs ``node_count`` x ``process_count_per_node`` processes. Counts may be
PipelineParameters (v1's ``runconfig_pipeline_params``); their defaults are checked here and their
run values by the operator. GPU steps ask one GPU per process (the usual data-parallel layout),
up to the GPUs of their nodes: more processes than that share the GPUs, as v1 let them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.kinds import StepKind, register
from compiler.kinds.script import lower_script, lower_timeout, script_kwargs
from mlpipe_provider.runtime.distributed import gpu_shape, gpus_held
from mlpipe_provider.sdk.data import PipelineParameter

# v1's runconfig_pipeline_params keys -> our distribution fields
RUNCONFIG_PARAM_KEYS = {
    "NodeCount": "node_count",
    "MpiProcessCountPerNode": "process_count_per_node",
    "TensorflowWorkerCount": "worker_count",
    "TensorflowParameterServerCount": "parameter_server_count",
}


def _count(lowering: Any, step: Any, field: str, value: Any) -> Any:
    """An int >= 1, or a PipelineParameter placeholder whose default is one."""
    if isinstance(value, PipelineParameter):
        lowering._register_parameter(step, field, value)
        default = value.default_value
        if not isinstance(default, int) or isinstance(default, bool) or default < 1:
            lowering.problem(
                step,
                field,
                f"PipelineParameter {value.name!r} default must be an integer >= 1, got {default!r}",
            )
        return {"param": value.name}
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        lowering.problem(step, field, f"must be an integer >= 1, got {value!r}")
        return 1
    return value


def lower_distribution(
    lowering: Any, step: Any, shape: dict[str, Any], overrides: dict[str, Any], field_prefix: str
) -> dict[str, Any]:
    """Validate a launch shape and apply ``runconfig_pipeline_params`` overrides."""
    shape = dict(shape)
    for key, value in overrides.items():
        target = RUNCONFIG_PARAM_KEYS.get(key)
        if target is None:
            known = ", ".join(sorted(RUNCONFIG_PARAM_KEYS))
            lowering.problem(
                step,
                f"runconfig_pipeline_params.{key}",
                f"unknown property (supported: {known})",
            )
            continue
        if not isinstance(value, PipelineParameter):
            lowering.problem(
                step,
                f"runconfig_pipeline_params.{key}",
                f"must be a PipelineParameter, got {type(value).__name__}",
            )
            continue
        shape[target] = value
    framework = shape.get("framework", "none")
    distribution: dict[str, Any] = {"framework": framework}
    for key in ("node_count", "process_count_per_node", "worker_count", "parameter_server_count"):
        if shape.get(key) is not None:
            distribution[key] = _count(lowering, step, f"{field_prefix}{key}", shape[key])
    if (
        framework == "none"
        and distribution.get("node_count", 1) == 1
        and distribution.get("process_count_per_node", 1) == 1
    ):
        return {}
    return distribution


def _default(lowering: Any, value: Any) -> int:
    if isinstance(value, dict):
        return lowering.out.parameters.get(value["param"], {}).get("default", 1)
    return value


def check_capacity(lowering: Any, step: Any, spec: dict[str, Any], use_gpu: bool) -> None:
    """Refuse what no node of the target can hold; record the GPUs the step holds (its pool slots).

    Only more nodes than the target has is refused. v1 ran the rest, so they run here with a
    warning: processes beyond a node's GPUs share them round-robin (a step never asks its pool
    for more slots than its nodes have GPUs), and ``use_gpu=True`` on a CPU-only target (v1
    only picked a GPU image for it) runs without a GPU.
    """
    compute = spec["compute"]
    distribution = spec.get("distribution") or {}
    counts = {
        key: _default(lowering, value) for key, value in distribution.items() if key != "framework"
    }
    counts["framework"] = distribution.get("framework", "none")
    nodes = counts.get("node_count", 1)
    max_nodes = compute.get("max_nodes", 1)
    if isinstance(nodes, int) and nodes > max_nodes:
        lowering.problem(
            step,
            "node_count",
            f"{nodes} nodes requested but compute target {compute['name']!r} has max_nodes={max_nodes}",
        )
    gpus = compute.get("gpus", 0)
    if use_gpu and gpus == 0:
        lowering.warning(
            step,
            "compute_target",
            f"use_gpu=True but compute target {compute['name']!r} ({compute.get('vm_size')}) has "
            "no GPUs; as on v1 (where use_gpu only chose a GPU image) the step runs, without a GPU",
        )
    if not all(isinstance(v, int) for k, v in counts.items() if k != "framework"):
        spec["gpus"] = 0
        return
    nodes, per_node = gpu_shape(counts)
    if gpus and per_node > gpus:
        field = "worker_count" if counts["framework"] == "tensorflow" else "process_count_per_node"
        lowering.warning(
            step,
            field,
            f"{per_node} GPU processes per node but a {compute.get('vm_size')} node of "
            f"{compute['name']!r} has {gpus} GPUs; as on v1 the step runs, its processes sharing "
            f"each node's {gpus} GPU(s) round-robin (CUDA_VISIBLE_DEVICES)",
        )
    spec["gpus"] = gpus_held(nodes, per_node, gpus)


def _lower_estimator(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    estimator = step.estimator
    lower_script(
        lowering,
        step,
        spec,
        source_directory=estimator.source_directory,
        script_name=estimator.entry_script,
        script_field="estimator.entry_script",
        source_field="estimator.source_directory",
    )
    spec["environment"] = lowering.lower_environment(step, _EnvHolder(estimator.environment))
    spec["timeout_seconds"] = lower_timeout(lowering, step, estimator)
    spec["distribution"] = lower_distribution(
        lowering, step, estimator.distribution(), step.runconfig_pipeline_params, "estimator."
    )
    check_capacity(lowering, step, spec, estimator.use_gpu)


class _EnvHolder:
    def __init__(self, environment: Any):
        self.environment = environment


def _estimator_kwargs(spec: dict[str, Any], dag_dir: Path) -> list[tuple[str, Any]]:
    return script_kwargs(spec, dag_dir)


register(
    StepKind(
        "estimator",
        "mlpipe_provider.operators.estimator",
        "EstimatorStepOperator",
        _lower_estimator,
        _estimator_kwargs,
    )
)
register(
    StepKind(
        "mpi",
        "mlpipe_provider.operators.estimator",
        "MpiStepOperator",
        _lower_estimator,
        _estimator_kwargs,
    )
)
