"""Lower a ``Pipeline`` to plain data: one spec dict per step plus the step graph.

Everything the generated DAG needs is resolved here (datastore names, compute capacity, argument
placeholders, relative paths), and every problem found on the way is collected with the step and
field it concerns, so a user sees all mistakes at once instead of one per compile.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from compiler import datasets
from compiler.naming import task_id_for
from mlpipe_provider.contract.constants import InputKind, StepKind
from mlpipe_provider.errors import ComputeTargetException, DatastoreError
from mlpipe_provider.runtime.data_path import DATA_PATH_JSON_TYPE
from mlpipe_provider.runtime.dataset_param import DATASET_JSON_TYPE, dataset_to_value
from mlpipe_provider.runtime.step_context import TOKEN_RE
from mlpipe_provider.sdk.compute import LOCAL_TARGET, ComputeTarget
from mlpipe_provider.sdk.data import (
    DataReference,
    InputPortBinding,
    PipelineData,
    PipelineParameter,
)
from mlpipe_provider.sdk.datapath import DataPath, DataPathComputeBinding
from mlpipe_provider.sdk.steps import PipelineStep, PythonScriptStep

SCALAR_TYPES = (str, int, float, bool)
RESERVED_PARAM_PREFIX = "mlpipe_"
RESERVED_ENV_PREFIXES = ("MLPIPE_", "AZUREML_", "AML_PARAMETER_")


class V1LenientWarning(UserWarning):
    """Something v1 accepted and ran, which runs here too but not as literally asked.

    Invariant 8: a v1 program that ran on Azure is not refused; where mlpipe has to bend the ask
    (GPU processes beyond a node's GPUs, ``use_gpu=True`` on a CPU-only target) it says so once
    per compile, naming the step and field like a problem does, and compiles anyway.
    """


@dataclass
class LoweredPipeline:
    """The compiler's view of a pipeline: specs keyed by task id, the graph, and problems."""

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # V1LenientWarning messages
    description: str | None = None
    workspace_dir: Path | None = None
    workspace_name: str = "local"  # namespaces the lineage assets (docs/lineage.md)


class _Lowering:
    def __init__(self, pipeline: Any):
        self.pipeline = pipeline
        self.ws = pipeline.workspace
        self.config = self.ws.settings
        self.out = LoweredPipeline(
            description=pipeline.description,
            workspace_dir=self.ws.directory,
            workspace_name=self.config.workspace_name,
        )
        self.task_ids: dict[int, str] = {}
        self.step_of: dict[str, PipelineStep] = {}
        self.producer_of: dict[int, tuple[PipelineStep, str]] = {}
        self._compute_cache: dict[Any, tuple[dict[str, Any], str | None]] = {}
        self._name_counts: dict[str, int] = {}

    def _where(self, step: PipelineStep | None, field_name: str) -> str:
        if step is None:
            return f"pipeline, field {field_name!r}"
        task_id = self.task_ids.get(id(step))
        if task_id is not None and self._name_counts.get(step.name, 0) > 1:
            # v1 lets steps share a name; the task id says which of them is meant
            return f"step {step.name!r} (task {task_id!r}), field {field_name!r}"
        return f"step {step.name!r}, field {field_name!r}"

    def problem(self, step: PipelineStep | None, field_name: str, message: str) -> None:
        self.out.problems.append(f"{self._where(step, field_name)}: {message}")

    def warning(self, step: PipelineStep | None, field_name: str, message: str) -> None:
        """A v1 ask that compiles and runs, bent as ``message`` says (``V1LenientWarning``)."""
        self.out.warnings.append(f"{self._where(step, field_name)}: {message}")

    # --- entry --------------------------------------------------------------------------
    def run(self) -> LoweredPipeline:
        steps = self.pipeline.steps
        if not steps:
            self.problem(None, "steps", "the pipeline has no steps")
            return self.out
        self._assign_task_ids(steps)
        self.default_datastore = self._default_datastore_name()
        in_pipeline = {id(s) for s in steps}
        for step in steps:
            for index, out in enumerate(step.outputs):
                if isinstance(out, PipelineData):
                    producers: list[PipelineStep] = []
                    for s in out.producers:
                        if id(s) in in_pipeline and not any(s is p for p in producers):
                            producers.append(s)
                    first_listing = not any(o is out for o in step.outputs[:index])
                    if len(producers) > 1 and producers[0] is step and first_listing:
                        names = ", ".join(repr(s.name) for s in producers)
                        self.problem(
                            step,
                            f"outputs[{index}]",
                            f"PipelineData {out.name!r} is produced by more than one step ({names}); each output must have exactly one producer",
                        )
                    self.producer_of.setdefault(id(out), (step, out.output_name))
        datasets.collect_producers(self, steps)  # OutputFileDatasetConfig: one producer each
        for step in steps:
            self.out.graph.add_node(self.task_ids[id(step)], step_name=step.name)
        for step in steps:
            spec = self._lower_step(step)
            if spec is not None:
                self.out.steps[spec["task_id"]] = spec
        self._check_cycles()
        return self.out

    def _assign_task_ids(self, steps: list[PipelineStep]) -> None:
        """One distinct task id per step, in the pipeline's step order.

        v1 accepts several steps of one name (a ModuleStep takes its module's name, a
        PythonScriptStep its script's), so a repeated name is no error: the first step keeps
        ``task_id_for(name)`` and later ones get ``_2``, ``_3``, ... The order is the pipeline's
        (listed steps, then the steps they pull in), so compiling again gives the same ids; the
        v1 name stays the task's display name and the run's ``StepRun.name``.
        """
        used: dict[str, str] = {}
        for step in steps:
            self._name_counts[step.name] = self._name_counts.get(step.name, 0) + 1
        for step in steps:
            task_id = task_id_for(step.name)
            base, n = task_id, 2
            while task_id in used:
                task_id = f"{base}_{n}"
                n += 1
            used[task_id] = step.name
            self.task_ids[id(step)] = task_id
            self.step_of[task_id] = step

    def _default_datastore_name(self) -> str:
        default = self.pipeline.default_datastore
        if default is None:
            return self.config.default_datastore
        name = default if isinstance(default, str) else getattr(default, "name", None)
        if not isinstance(name, str):
            self.problem(
                None,
                "default_datastore",
                f"must be a Datastore or its name, got {type(default).__name__}",
            )
            return self.config.default_datastore
        if name not in self.config.datastores:
            known = ", ".join(sorted(self.config.datastores)) or "none"
            self.problem(
                None, "default_datastore", f"unknown datastore {name!r} (workspace has: {known})"
            )
            return self.config.default_datastore
        return name

    def _check_cycles(self) -> None:
        graph = self.out.graph
        if nx.is_directed_acyclic_graph(graph):
            return
        cycle = nx.find_cycle(graph)
        names = [graph.nodes[u]["step_name"] for u, _ in cycle]
        path = " -> ".join(repr(n) for n in [*names, names[0]])
        # Blame the step whose run_after (or StepSequence order) closes the cycle, else its inputs.
        closing = [(u, v) for u, v in cycle if "data" not in graph.edges[u, v]]
        u, v = closing[-1] if closing else cycle[-1]
        field_name = "inputs" if "data" in graph.edges[u, v] else "run_after"
        self.problem(self.step_of[v], field_name, f"the steps form a cycle: {path}")

    # --- one step -------------------------------------------------------------------------
    def _lower_step(self, step: PipelineStep) -> dict[str, Any] | None:
        from compiler.kinds import KINDS

        task_id = self.task_ids[id(step)]
        kind = KINDS.get(step.step_kind)
        if kind is None:
            self.problem(step, "type", f"{type(step).__name__} is not supported yet")
            return None
        spec: dict[str, Any] = {
            "step_name": step.name,
            "task_id": task_id,
            "kind": step.step_kind,
            "allow_reuse": step.reuse_allowed,
        }
        inputs: dict[str, dict[str, Any]] = {}
        outputs: dict[str, dict[str, Any]] = {}
        for index, out in enumerate(step.outputs):
            self._add_output(step, f"outputs[{index}]", out, outputs)
        datasets.add_outputs(self, step, outputs)
        for index, item in enumerate(step.inputs):
            self._add_input(step, f"inputs[{index}]", item, inputs, explicit=True)
        spec["arguments"] = [
            self._lower_argument(step, f"{step.arguments_field}[{i}]", arg, inputs, outputs)
            for i, arg in enumerate(step.arguments)
        ]
        self._check_tokens(step, spec["arguments"], inputs, outputs)
        # a script sees inputs and outputs alike, as $AZUREML_DATAREFERENCE_<name>
        if step.step_kind != StepKind.DATA_TRANSFER:
            for name in sorted(set(inputs) & set(outputs)):
                self.problem(
                    step,
                    "outputs",
                    f"{name!r} names both an input and an output of this step; the script could "
                    f"not tell them apart ($AZUREML_DATAREFERENCE_{name}): rename one",
                )
        spec["inputs"] = list(inputs.values())
        spec["outputs"] = list(outputs.values())
        spec["params"] = self._lower_params(step)
        spec["compute"] = self._lower_compute(step)
        kind.lower(self, step, spec)
        if spec.get("environment") and (spec["compute"] or {}).get("backend", "local") == "local":
            # docker/kubernetes steps take their software from the image, conda or not
            self._check_conda_packages(step, spec["environment"])
        for dep in step.runs_after:
            dep_id = self.task_ids.get(id(dep))
            if dep_id is None:
                self.problem(step, "run_after", f"step {dep.name!r} is not part of this pipeline")
            else:
                self.out.graph.add_edge(dep_id, task_id)
        return spec

    def _datastore_for(self, step: PipelineStep, field_name: str, name: str | None) -> str:
        if name is None:
            return self.default_datastore
        if name not in self.config.datastores:
            known = ", ".join(sorted(self.config.datastores)) or "none"
            self.problem(step, field_name, f"unknown datastore {name!r} (workspace has: {known})")
        return name

    def _add_output(self, step: PipelineStep, field_name: str, out: Any, outputs: dict) -> None:
        if datasets.is_output_config(out):
            return  # datasets.add_outputs lowers it (a config may also be in arguments only)
        if not isinstance(out, PipelineData):
            self.problem(
                step, field_name, f"outputs must be PipelineData, got {type(out).__name__}"
            )
            return
        if out.name in outputs or any(
            o["output_name"] == out.output_name for o in outputs.values()
        ):
            self.problem(step, field_name, f"duplicate output name {out.output_name!r}")
            return
        outputs[out.name] = {
            "name": out.name,
            "output_name": out.output_name,
            "datastore": self._datastore_for(step, field_name, out.datastore_name),
            "mode": out.output_mode,
            "path_on_compute": out.output_path_on_compute,
        }
        if out.is_directory:  # an existing empty folder; else a path the script creates
            outputs[out.name]["is_directory"] = True
        self.check_compute_path(step, field_name, outputs[out.name])

    def _add_input(
        self, step: PipelineStep, field_name: str, item: Any, inputs: dict, explicit: bool
    ) -> str | None:
        if datasets.is_dataset_item(item):
            return datasets.add_input(self, step, field_name, item, inputs)
        mode = None
        path_on_compute = None
        name = None
        data = item
        if isinstance(item, InputPortBinding):
            data, mode, path_on_compute, name = (
                item.bind_object,
                item.bind_mode,
                item.path_on_compute,
                item.name,
            )
        if _is_data_path_binding(item):
            data, mode, path_on_compute = item[0], item[1].mode, item[1].path_on_compute
        if isinstance(data, DataPath):  # a fixed DataPath is a DataReference
            data = data.create_data_reference()
        if isinstance(data, PipelineParameter) and isinstance(data.default_value, DataPath):
            if not self._register_parameter(step, field_name, data):
                return None
            name = name or _DATA_NAME_BAD.sub("_", data.name)
            entry = {
                "name": name,
                "kind": InputKind.DATA_PATH,
                "parameter": data.name,
                "datastore": self.out.parameters[data.name]["default"]["datastore"],
                "mode": mode or "mount",
                "path_on_compute": path_on_compute,
            }
        elif isinstance(data, DataReference):
            name = name or data.data_reference_name
            entry = {
                "name": name,
                "kind": InputKind.DATA_REFERENCE,
                "datastore": self._datastore_for(step, field_name, data.datastore_name),
                "path_on_datastore": data.path_on_datastore or "",
                "mode": mode or data.mode,
                "path_on_compute": path_on_compute or data.path_on_compute,
            }
            self._check_path(step, field_name, data.path_on_datastore)
        elif isinstance(data, PipelineData):
            name = name or data.name
            produced = self.producer_of.get(id(data))
            if produced is None:
                self.problem(
                    step,
                    field_name,
                    f"input {data.name!r} is not produced by any step of this pipeline (add the producing step, or list the PipelineData in its outputs)",
                )
                return None
            producer, output_name = produced
            if producer is step:
                self.problem(
                    step, field_name, f"input {data.name!r} is also an output of the same step"
                )
                return None
            producer_id = self.task_ids[id(producer)]
            self.out.graph.add_edge(producer_id, self.task_ids[id(step)], data=data.name)
            entry = {
                "name": name,
                "kind": InputKind.PIPELINE_DATA,
                "producer": producer_id,
                "output": output_name,
                "datastore": self._datastore_for(step, field_name, data.datastore_name),
                "mode": mode or "mount",
                "path_on_compute": path_on_compute,
            }
        else:
            self.problem(
                step,
                field_name,
                f"inputs must be DataReference, PipelineData, a binding (as_mount/as_download) or (DataPath parameter, DataPathComputeBinding), got {type(data).__name__}",
            )
            return None
        self.check_compute_path(step, field_name, entry)
        existing = inputs.get(name)
        if existing is not None:
            if existing != entry:
                self.problem(step, field_name, f"two different inputs are named {name!r}")
            return name
        inputs[name] = entry
        return name

    def _check_path(
        self, step: PipelineStep, field_name: str, path: str | None, what: str = "path_on_datastore"
    ) -> None:
        from mlpipe_provider.datastores import safe_relative_path

        try:
            safe_relative_path(path, what=what)
        except DatastoreError as exc:
            self.problem(step, field_name, str(exc))

    def check_compute_path(self, step: PipelineStep, field_name: str, entry: dict) -> None:
        """``path_on_compute`` is relative to the step's working folder: no ``..``, no absolute."""
        if entry.get("path_on_compute") is not None:
            self._check_path(step, field_name, entry["path_on_compute"], "path_on_compute")

    def _check_tokens(
        self, step: PipelineStep, arguments: list[Any], inputs: dict, outputs: dict
    ) -> None:
        """``$AZUREML_DATAREFERENCE_<name>`` inside a string must name an input or output of the step."""
        for index, arg in enumerate(arguments):
            if not isinstance(arg, str):
                continue
            for name in TOKEN_RE.findall(arg):
                if name not in inputs and name not in outputs:
                    self.problem(
                        step,
                        f"{step.arguments_field}[{index}]",
                        f"{arg!r} refers to $AZUREML_DATAREFERENCE_{name}, which is not an input or output "
                        "of this step (add the data to the step's inputs or outputs)",
                    )

    def _lower_argument(
        self, step: PipelineStep, field_name: str, arg: Any, inputs: dict, outputs: dict
    ) -> Any:
        if isinstance(arg, (bool, str, int)):
            return arg
        if isinstance(arg, float):
            if not math.isfinite(arg):
                self.problem(step, field_name, f"{arg!r} is not a finite number")
            return arg
        if datasets.is_dataset_parameter(arg):
            return datasets.lower_argument(self, step, field_name, arg, inputs, outputs)
        if _is_data_path_binding(arg) or isinstance(arg, DataPath) or _is_data_path_param(arg):
            name = self._add_input(step, field_name, arg, inputs, explicit=False)
            return {"input": name} if name else None
        if isinstance(arg, PipelineParameter):
            self._register_parameter(step, field_name, arg)
            return {"param": arg.name}
        if (
            isinstance(arg, PipelineData)
            and arg.name in outputs
            and self.producer_of.get(id(arg), (None,))[0] is step
        ):
            return {"output": arg.name}
        if isinstance(arg, (DataReference, PipelineData, InputPortBinding)):
            name = self._add_input(step, field_name, arg, inputs, explicit=False)
            return {"input": name} if name else None
        if datasets.is_dataset_item(arg):
            return datasets.lower_argument(self, step, field_name, arg, inputs, outputs)
        self.problem(
            step,
            field_name,
            f"arguments must be strings, numbers, PipelineParameter or data; got {type(arg).__name__} ({arg!r:.60})",
        )
        return None

    def _register_parameter(
        self, step: PipelineStep, field_name: str, param: PipelineParameter
    ) -> bool:
        default = param.default_value
        if param.name.startswith(RESERVED_PARAM_PREFIX):
            self.problem(
                step,
                field_name,
                f"PipelineParameter name {param.name!r} is reserved: names starting with "
                f"{RESERVED_PARAM_PREFIX!r} belong to mlpipe's own DAG params",
            )
            return False
        if datasets.is_dataset_parameter(param):  # a serialized dataset, never code
            json_type = DATASET_JSON_TYPE
            default = dataset_to_value(default)
        elif isinstance(default, DataPath):
            json_type = DATA_PATH_JSON_TYPE
            default = default.to_value(self.default_datastore)
            self._datastore_for(step, field_name, default["datastore"])
            self._check_path(step, field_name, default["path_on_datastore"])
        elif isinstance(default, bool):
            json_type = "boolean"
        elif isinstance(default, int):
            json_type = "integer"
        elif isinstance(default, float):
            json_type = "number"
            if not math.isfinite(default):
                self.problem(
                    step,
                    field_name,
                    f"PipelineParameter {param.name!r}: default {default!r} is not a finite number",
                )
                return False
        elif isinstance(default, str):
            json_type = "string"
        else:
            self.problem(
                step,
                field_name,
                f"PipelineParameter {param.name!r}: default_value must be str, int, float, bool, DataPath or a dataset, got {type(default).__name__}",
            )
            return False
        existing = self.out.parameters.get(param.name)
        entry = {"default": default, "type": json_type}
        if existing is not None and existing != entry:
            self.problem(
                step,
                field_name,
                f"PipelineParameter {param.name!r} is declared twice with different defaults ({existing['default']!r} and {default!r})",
            )
            return False
        self.out.parameters[param.name] = entry
        return True

    def _lower_params(self, step: PipelineStep) -> dict[str, Any]:
        lowered: dict[str, Any] = {}
        for key, value in getattr(step, "params", {}).items():
            field_name = f"params[{key!r}]"
            if not isinstance(key, str) or not key:
                self.problem(
                    step, "params", f"parameter names must be non-empty strings, got {key!r}"
                )
                continue
            if isinstance(value, PipelineParameter):
                self._register_parameter(step, field_name, value)
                lowered[key] = {"param": value.name}
            elif isinstance(value, SCALAR_TYPES):
                lowered[key] = value
            else:
                self.problem(
                    step,
                    field_name,
                    f"must be a string, number, bool or PipelineParameter, got {type(value).__name__}",
                )
        return lowered

    def _lower_compute(self, step: PythonScriptStep) -> dict[str, Any]:
        target = step.compute_target
        if target is None:
            target = LOCAL_TARGET
        key = target if isinstance(target, str) else id(target)
        if key not in self._compute_cache:
            self._compute_cache[key] = self._resolve_compute(step, target)
        spec, problem = self._compute_cache[key]
        if problem:
            self.problem(step, "compute_target", problem)
        return dict(spec)

    def _resolve_compute(
        self, step: PythonScriptStep, target: Any
    ) -> tuple[dict[str, Any], str | None]:
        """Resolve a target once per pipeline (reading the workspace config is not free)."""
        if isinstance(target, str):
            try:
                target = ComputeTarget(self.ws, target)
            except ComputeTargetException as exc:
                return {"name": str(target), "backend": "local", "gpus": 0}, str(exc)
        elif not isinstance(target, ComputeTarget):
            problem = f"must be a ComputeTarget or its name, got {type(target).__name__}"
            return {"name": "local", "backend": "local", "gpus": 0}, problem
        spec = {
            # backend settings from the target's config (image, network, ...), under the fixed keys
            **dict(sorted(target.backend_settings.items())),
            "name": target.name,
            "vm_size": target.vm_size,
            "backend": target.backend,
            "gpus": target.gpu_count,
            "cpus": target.cpu_count,
            "memory_gb": target.memory_gb,
            "max_nodes": target.scale_settings["maximum_node_count"],
        }
        from mlpipe_provider.runtime.backends import kubernetes
        from mlpipe_provider.runtime.backends.images import compile_problem

        return spec, compile_problem(spec) or kubernetes.compile_problem(spec)

    def lower_environment(self, step: PipelineStep, runconfig: Any) -> dict[str, Any]:
        if runconfig is None:
            return {}
        env = getattr(runconfig, "environment", None)
        if env is None or not hasattr(env, "to_spec"):
            self.problem(step, "runconfig.environment", "must be an Environment")
            return {}
        spec = env.to_spec()
        if getattr(getattr(env, "spark", None), "packages", None):
            self.problem(
                step,
                "runconfig.environment.spark.packages",
                "Spark packages are not supported by mlpipe (no step runs on Spark); add the "
                "Python packages the script needs to environment.python.conda_dependencies",
            )
        for key, value in spec.get("environment_variables", {}).items():
            if not isinstance(key, str) or not key or "=" in key or "\x00" in key + value:
                self.problem(
                    step, "runconfig.environment.environment_variables", f"invalid variable {key!r}"
                )
            elif key.upper().startswith(RESERVED_ENV_PREFIXES):
                self.problem(
                    step,
                    "runconfig.environment.environment_variables",
                    f"{key!r} is reserved: variables starting with {' or '.join(RESERVED_ENV_PREFIXES)} "
                    "are set by mlpipe for each step run",
                )
        return spec

    def _check_conda_packages(self, step: PipelineStep, spec: dict[str, Any]) -> None:
        """Conda packages with no PyPI form fail here, unless conda can build them: a local
        worker without conda installs conda packages from PyPI (docs/environments.md)."""
        from mlpipe_provider.runtime.conda_pypi import check_conda_packages
        from mlpipe_provider.runtime.environments import find_conda

        deps = spec.get("dependencies") or {}
        if spec.get("user_managed_dependencies") or not deps.get("conda_packages"):
            return
        if find_conda():
            return
        for package, why in check_conda_packages([str(p) for p in deps["conda_packages"]]):
            self.problem(
                step,
                "runconfig.environment.python.conda_dependencies",
                f"environment {spec.get('name')!r}: conda package {package!r} cannot be "
                f"installed without conda: {why}. Install conda (or mamba/micromamba) on the "
                "workers and set $MLPIPE_CONDA, or use a pip package",
            )


_DATA_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


def _is_data_path_binding(item: Any) -> bool:
    """v1's ``(datapath_param, DataPathComputeBinding(...))`` step input."""
    return (
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], DataPathComputeBinding)
    )


def _is_data_path_param(item: Any) -> bool:
    return isinstance(item, PipelineParameter) and isinstance(item.default_value, DataPath)


def lower(pipeline: Any) -> LoweredPipeline:
    lowered = _Lowering(pipeline).run()
    for message in lowered.warnings:
        # attributed to this line, so Python's default filter shows each message once per process:
        # validating and then submitting one pipeline does not repeat it
        warnings.warn(message, V1LenientWarning, stacklevel=1)
    return lowered
