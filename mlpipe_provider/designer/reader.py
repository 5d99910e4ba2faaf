"""SDK objects -> the designer's graph, for a pipeline the compiler's loader found in a file.

The graph is canonical: steps in a stable topological order (ties in the file's order), data and
parameters in order of first use, so reading a file and reading what the writer made of it give
equal graphs. Anything this reader cannot express (a step kind or an argument it does not know)
makes that step read-only instead of silently dropping it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import networkx as nx

from compiler.kinds.script import runconfig_shape
from compiler.naming import task_id_for
from mlpipe_provider.designer.graph import (
    DataRef,
    DataReferenceNode,
    DatasetNode,
    Graph,
    Parameter,
    PipelineDataNode,
    Step,
)
from mlpipe_provider.sdk.data import (
    DataReference,
    InputPortBinding,
    PipelineData,
    PipelineParameter,
)
from mlpipe_provider.sdk.dataset import AbstractDataset, DatasetConsumptionConfig
from mlpipe_provider.sdk.environment import RunConfiguration
from mlpipe_provider.sdk.module_step import ModuleStep
from mlpipe_provider.sdk.steps import PythonScriptStep


class _Unreadable(Exception):
    """A value the designer cannot show as data; its step becomes read-only."""


class _Reader:
    def __init__(self, folder: Path):
        self.folder = folder
        self.params: dict[str, Parameter] = {}
        self.refs: dict[str, DataReferenceNode] = {}
        self.datasets: dict[str, DatasetNode] = {}
        self.data: dict[str, PipelineDataNode] = {}
        self.relative: dict[str, str] = {}  # source_directory -> as written (steps share a few)

    def _unwrap(self, value: Any) -> Any:
        return value.bind_object if isinstance(value, InputPortBinding) else value

    def _data_name(self, value: Any) -> str:
        value = self._unwrap(value)
        # (a node is made on first use only: a 200-step pipeline names its data ~1,000 times)
        if isinstance(value, DataReference):
            if value.data_reference_name not in self.refs:
                self.refs[value.data_reference_name] = DataReferenceNode(
                    name=value.data_reference_name,
                    datastore=value.datastore_name,
                    path_on_datastore=value.path_on_datastore,
                    mode=value.mode,
                )
            return value.data_reference_name
        if isinstance(value, AbstractDataset):
            value = DatasetConsumptionConfig(value.default_input_name(), value)
        if isinstance(value, DatasetConsumptionConfig):
            return self._dataset(value)
        if isinstance(value, PipelineData):
            if value.name not in self.data:
                self.data[value.name] = PipelineDataNode(
                    name=value.name, datastore=value.datastore_name
                )
            return value.name
        raise _Unreadable(f"{type(value).__name__} inputs and outputs")

    def _dataset(self, item: DatasetConsumptionConfig) -> str:
        """A registered dataset consumed under a name; anything else (a dataset defined in the
        file, a dataset-valued PipelineParameter, a step's output dataset) is read-only."""
        dataset = item.dataset
        if not isinstance(dataset, AbstractDataset) or dataset.name is None:
            raise _Unreadable("datasets that are not registered (Dataset.get_by_name)")
        asked = getattr(dataset, "_asked_version", "latest")
        node = DatasetNode(
            name=item.name,
            dataset=dataset.name,
            version=None if asked in (None, "latest") else dataset.version,
            mode=item.mode,
            path_on_compute=item.path_on_compute,
        )
        known = self.datasets.setdefault(item.name, node)
        if known != node:
            raise _Unreadable(f"two datasets consumed under one name {item.name!r}")
        return item.name

    def _value(self, value: Any) -> Any:
        if isinstance(value, PipelineParameter):
            default = value.default_value
            if not isinstance(default, (str, int, float, bool)):
                raise _Unreadable(f"a {type(default).__name__} PipelineParameter")
            if value.name not in self.params:
                self.params[value.name] = Parameter(name=value.name, default=default)
            return DataRef(parameter=value.name)
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return DataRef(data=self._data_name(value))

    @staticmethod
    def _compute(step: Any) -> str | None:
        target = getattr(step, "compute_target", None)
        if target is None or isinstance(target, str):
            return target
        return getattr(target, "name", None)

    def _env(self, step: Any) -> dict[str, str]:
        runconfig = getattr(step, "runconfig", None)
        if runconfig is None:
            return {}
        return {str(k): str(v) for k, v in sorted(runconfig.environment_variables.items())}

    def step(self, sdk_step: Any, step_id: str) -> Step:
        base = {
            "id": step_id,
            "name": sdk_step.name,
            "compute_target": self._compute(sdk_step),
            "allow_reuse": bool(sdk_step.reuse_allowed),
        }
        try:
            if type(sdk_step) is PythonScriptStep:
                return self._script(sdk_step, base)
            if type(sdk_step) is ModuleStep:
                return self._module(sdk_step, base)
            reason = f"{type(sdk_step).__name__} steps cannot be edited in the designer yet"
        except _Unreadable as exc:
            reason = f"{exc} cannot be edited in the designer yet"
        inputs, outputs = [], []
        for item in sdk_step._inputs:
            with contextlib.suppress(_Unreadable):
                inputs.append(self._data_name(item))
        for item in sdk_step._outputs:
            with contextlib.suppress(_Unreadable):
                outputs.append(self._data_name(item))
        return Step(
            **base,
            kind=type(sdk_step).__name__,
            editable=False,
            reason=reason,
            inputs=inputs,
            outputs=outputs,
        )

    def _script(self, step: PythonScriptStep, base: dict[str, Any]) -> Step:
        source = step.source_directory
        if source is not None:
            key = str(source)
            if key not in self.relative:
                self.relative[key] = Path(os.path.relpath(key, self.folder)).as_posix()
            source = self.relative[key]
        runconfig = step.runconfig
        if runconfig is not None and _runconfig_beyond_env(runconfig):
            raise _Unreadable("a RunConfiguration beyond environment variables")
        if step.params or step.runconfig_pipeline_params or step.hash_paths:
            raise _Unreadable("params, runconfig_pipeline_params or hash_paths")
        return Step(
            **base,
            kind="PythonScriptStep",
            script_name=step.script_name,
            source_directory=source,
            arguments=[self._value(a) for a in step._arguments],
            inputs=[self._data_name(i) for i in step._inputs],
            outputs=[self._data_name(o) for o in step._outputs],
            environment_variables=self._env(step),
        )

    def _module(self, step: ModuleStep, base: dict[str, Any]) -> Step:
        if step.runconfig is not None or step.runconfig_pipeline_params:
            raise _Unreadable("a ModuleStep runconfig")
        version = step.version
        return Step(
            **base,
            kind="ModuleStep",
            module=step._module_version.module_name,
            version=None if version is None else str(version),
            inputs_map={p: self._data_name(b) for p, b in step._inputs_map.items()},
            outputs_map={p: self._data_name(d) for p, d in step._outputs_map.items()},
            params={k: self._value(v) for k, v in sorted(step.params.items())},
        )


def _runconfig_beyond_env(runconfig: Any) -> bool:
    """True when a RunConfiguration says more than its environment variables (the designer's
    only runconfig field): writing just those would change what runs. Compared the way the
    compiler sees a runconfig (its environment spec, shape and time limit)."""
    if not isinstance(runconfig, RunConfiguration):
        return True
    plain = RunConfiguration()
    plain.environment.environment_variables = dict(runconfig.environment_variables)
    return _compiler_view(plain) != _compiler_view(runconfig)


def _compiler_view(runconfig: Any) -> Any:
    return (
        runconfig.environment.to_spec(),
        runconfig_shape(runconfig),
        runconfig.max_run_duration_seconds,
        runconfig.script,
        runconfig.command,
        list(runconfig.arguments),
    )


def _ordered_steps(pipeline: Any) -> list[Any]:
    """The pipeline's steps, producers first, ties kept in the file's order."""
    steps = list(pipeline.steps)
    index = {id(s): i for i, s in enumerate(steps)}
    producer: dict[int, int] = {}
    for s in steps:
        for out in s._outputs:
            producer.setdefault(id(out), index[id(s)])
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(steps)))
    for s in steps:
        for item in s._inputs:
            item = item.bind_object if isinstance(item, InputPortBinding) else item
            src = producer.get(id(item))
            if src is not None and src != index[id(s)]:
                graph.add_edge(src, index[id(s)])
        for before in getattr(s, "_run_after", []) or []:
            if id(before) in index:
                graph.add_edge(index[id(before)], index[id(s)])
    if not nx.is_directed_acyclic_graph(graph):
        return steps
    return [steps[i] for i in nx.lexicographical_topological_sort(graph)]


def read_graph(pipeline: Any, variable: str, folder: Path) -> Graph:
    """The graph of ``pipeline`` (module variable ``variable`` of a file in ``folder``)."""
    reader = _Reader(folder.resolve())
    steps: list[Step] = []
    used: set[str] = set()
    for sdk_step in _ordered_steps(pipeline):
        step_id, n = task_id_for(sdk_step.name), 2
        base = step_id
        while step_id in used:
            step_id, n = f"{base}_{n}", n + 1
        used.add(step_id)
        steps.append(reader.step(sdk_step, step_id))
    return Graph(
        variable=variable,
        description=pipeline.description,
        parameters=list(reader.params.values()),
        data_references=list(reader.refs.values()),
        datasets=list(reader.datasets.values()),
        pipeline_data=list(reader.data.values()),
        steps=steps,
    )
