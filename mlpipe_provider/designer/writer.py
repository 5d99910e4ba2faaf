"""The designer's graph -> a pipeline file: the v1 program a coder would write by hand.

Deterministic (the same graph gives the same bytes) and safe: every value a user typed (names,
paths, arguments, descriptions, parameter defaults) goes through the compiler's literal renderer,
and Python identifiers are derived from names by keeping only ``[A-Za-z0-9_]``, so nothing a user
types can become code. A graph the writer cannot express faithfully is refused with problems that
name the step and field, before anything is written.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from compiler.literals import render
from mlpipe_provider.designer.graph import EDITABLE_KINDS, DataRef, Graph, Step

HEADER = "# Written by the mlpipe designer."
_IDENT_BAD = re.compile(r"[^A-Za-z0-9_]")
_VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INPUT_NAME_RE = _VARIABLE_RE  # v1: a dataset input name is an identifier
_RESERVED = {
    "ws",
    "DataReference",
    "Dataset",
    "Datastore",
    "Module",
    "ModuleStep",
    "Pipeline",
    "PipelineData",
    "PipelineParameter",
    "PythonScriptStep",
    "RunConfiguration",
    "Workspace",
    "main",
}
WIDTH = 96


class GraphProblems(ValueError):
    """The graph cannot be written; ``problems`` name the step and field of each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class _Names:
    """Unique Python identifiers for user-chosen names (never the names themselves as code)."""

    def __init__(self) -> None:
        self.taken = set(_RESERVED) | set(dir(__builtins__))

    def new(self, hint: str, suffix: str = "") -> str:
        base = _IDENT_BAD.sub("_", hint).strip("_") or "item"
        if base[0].isdigit():
            base = f"_{base}"
        base += suffix
        name, n = base, 2
        while name in self.taken or keyword.iskeyword(name):
            name, n = f"{base}_{n}", n + 1
        self.taken.add(name)
        return name


def check_graph(graph: Graph, datastores: set[str] | None = None) -> list[str]:
    """Problems the writer would refuse, each naming the step (or pipeline) and the field."""
    problems: list[str] = []
    if not _VARIABLE_RE.match(graph.variable) or keyword.iskeyword(graph.variable):
        problems.append(
            f"pipeline, field 'variable': {graph.variable!r} is not a Python identifier"
        )
    if graph.variable in _RESERVED:
        problems.append(f"pipeline, field 'variable': {graph.variable!r} is a reserved name")
    params = {p.name for p in graph.parameters}
    refs = {d.name for d in graph.data_references} | {d.name for d in graph.datasets}
    outs = {d.name for d in graph.pipeline_data}
    data_names = [
        *(d.name for d in graph.data_references),
        *(d.name for d in graph.datasets),
        *(d.name for d in graph.pipeline_data),
    ]
    for name in _dupes(data_names):
        problems.append(f"pipeline, field 'data': the name {name!r} is used twice")
    for name in _dupes([p.name for p in graph.parameters]):
        problems.append(f"pipeline, field 'parameters': the name {name!r} is used twice")
    if datastores is not None:
        for d in [*graph.data_references, *graph.pipeline_data]:
            if d.datastore is not None and d.datastore not in datastores:
                problems.append(
                    f"data {d.name!r}, field 'datastore': unknown datastore {d.datastore!r}"
                )
    for d in graph.datasets:
        if not _INPUT_NAME_RE.match(d.name):
            problems.append(
                f"dataset {d.name!r}, field 'name': an input name starts with a letter or '_' "
                "and holds only letters, digits and '_'"
            )
        if not d.dataset:
            problems.append(
                f"dataset {d.name!r}, field 'dataset': a registered dataset is required"
            )
        if d.version is not None and d.version < 1:
            problems.append(f"dataset {d.name!r}, field 'version': versions start at 1")
        if d.mode == "direct" and d.path_on_compute is not None:
            problems.append(
                f"dataset {d.name!r}, field 'path_on_compute': only a mounted or downloaded "
                "dataset has a path on the compute"
            )
    dataset_names = {d.name for d in graph.datasets}
    producers: dict[str, str] = {}
    for step in graph.steps:
        where = f"step {step.name!r}"
        if not step.editable or step.kind not in EDITABLE_KINDS:
            problems.append(
                f"{where}, field 'kind': {step.reason or step.kind + ' cannot be written'}"
            )
            continue
        for name in graph.output_names(step):
            if name not in outs:
                problems.append(f"{where}, field 'outputs': {name!r} is not a PipelineData")
            elif name in producers:
                problems.append(
                    f"{where}, field 'outputs': {name!r} is already produced by step "
                    f"{producers[name]!r}"
                )
            producers.setdefault(name, step.name)
        for name in graph.input_names(step):
            if name not in outs and name not in refs:
                problems.append(f"{where}, field 'inputs': unknown data {name!r}")
            elif step.kind == "ModuleStep" and name in dataset_names:
                problems.append(
                    f"{where}, field 'inputs_map': a module port takes a DataReference or "
                    f"PipelineData, not the dataset {name!r}"
                )
        values = list(enumerate(step.arguments)) if step.kind == "PythonScriptStep" else []
        for index, arg in values:
            if isinstance(arg, DataRef):
                if arg.parameter is not None and arg.parameter not in params:
                    problems.append(
                        f"{where}, field 'arguments[{index}]': unknown parameter {arg.parameter!r}"
                    )
                if arg.data is not None and arg.data not in outs | refs:
                    problems.append(
                        f"{where}, field 'arguments[{index}]': unknown data {arg.data!r}"
                    )
                if (arg.data is None) == (arg.parameter is None):
                    problems.append(
                        f"{where}, field 'arguments[{index}]': name exactly one of data, parameter"
                    )
        for key, value in step.params.items():
            if isinstance(value, DataRef) and value.parameter not in params:
                problems.append(f"{where}, field 'params[{key!r}]': unknown parameter")
        if step.kind == "PythonScriptStep" and not step.script_name:
            problems.append(f"{where}, field 'script_name': a script is required")
        if step.kind == "ModuleStep" and not step.module:
            problems.append(f"{where}, field 'module': a module is required")
    return problems


def _dupes(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({n for n in names if n in seen or seen.add(n)})


class _Writer:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.names = _Names()
        self.lines: list[str] = []
        self.var: dict[tuple[str, str], str] = {}
        self.names.taken.add(graph.variable)

    def ref(self, kind: str, name: str) -> str:
        return self.var[(kind, name)]

    def value(self, value: Any) -> str:
        if isinstance(value, DataRef):
            if value.parameter is not None:
                return self.ref("parameter", value.parameter)
            return self.ref("data", value.data or "")
        return render(value)

    def call(self, target: str, func: str, kwargs: list[tuple[str, str]]) -> None:
        """``target = func(k=v, ...)``: one line when it fits, else one argument per line."""
        flat = f"{target} = {func}({', '.join(f'{k}={v}' for k, v in kwargs)})"
        if len(flat) <= WIDTH and "\n" not in flat:
            self.lines.append(flat)
            return
        self.lines.append(f"{target} = {func}(")
        self.lines.extend(f"    {k}={v}," for k, v in kwargs)
        self.lines.append(")")

    def seq(self, items: list[str], indent: int) -> str:
        flat = "[" + ", ".join(items) + "]"
        if len(flat) + indent <= WIDTH and "\n" not in flat:
            return flat
        pad = " " * (indent + 4)
        return "[\n" + "".join(f"{pad}{i},\n" for i in items) + " " * indent + "]"

    def mapping(self, items: list[tuple[str, str]], indent: int) -> str:
        flat = "{" + ", ".join(f"{render(k)}: {v}" for k, v in items) + "}"
        if len(flat) + indent <= WIDTH and "\n" not in flat:
            return flat
        pad = " " * (indent + 4)
        body = "".join(f"{pad}{render(k)}: {v},\n" for k, v in items)
        return "{\n" + body + " " * indent + "}"

    def write(self) -> str:
        g = self.graph
        kinds = {s.kind for s in g.steps}
        imports = {"Pipeline", "Workspace"}
        if g.data_references or g.pipeline_data:
            imports.add("Datastore")
        if g.data_references:
            imports.add("DataReference")
        if g.datasets:
            imports.add("Dataset")
        if g.pipeline_data:
            imports.add("PipelineData")
        if g.parameters:
            imports.add("PipelineParameter")
        if "PythonScriptStep" in kinds:
            imports.add("PythonScriptStep")
        if "ModuleStep" in kinds:
            imports.update({"Module", "ModuleStep"})
        if any(s.environment_variables for s in g.steps):
            imports.add("RunConfiguration")
        out = self.lines
        out.append(HEADER)
        out.append("# Edit it by hand or in the designer; the canvas layout is kept next to it.")
        out.append("")
        out.append("from mlpipe_provider.sdk import (")
        out.extend(f"    {name}," for name in sorted(imports))
        out.append(")")
        out.append("")
        out.append("ws = Workspace.from_config()")
        self._datastores()
        self._parameters()
        self._data()
        self._modules()
        for step in g.steps:
            out.append("")
            self._step(step)
        out.append("")
        steps = self.seq([self.ref("step", s.id) for s in g.steps], 4)
        kwargs = [("workspace", "ws"), ("steps", steps)]
        if g.description is not None:
            kwargs.append(("description", render(g.description)))
        self.call(g.variable, "Pipeline", kwargs)
        return "\n".join(out) + "\n"

    def _datastores(self) -> None:
        g = self.graph
        names: list[str] = []
        for d in [*g.data_references, *g.pipeline_data]:
            if d.datastore is not None and d.datastore not in names:
                names.append(d.datastore)
        if names:
            self.lines.append("")
        for name in names:
            var = self.names.new(name, "_datastore")
            self.var[("datastore", name)] = var
            self.lines.append(f"{var} = Datastore.get(ws, {render(name)})")

    def _parameters(self) -> None:
        if self.graph.parameters:
            self.lines.append("")
        for p in self.graph.parameters:
            var = self.names.new(p.name)
            self.var[("parameter", p.name)] = var
            self.call(
                var,
                "PipelineParameter",
                [("name", render(p.name)), ("default_value", render(p.default))],
            )

    def _data(self) -> None:
        g = self.graph
        if g.data_references or g.datasets or g.pipeline_data:
            self.lines.append("")
        for d in g.data_references:
            var = self.names.new(d.name)
            self.var[("data", d.name)] = var
            kwargs = [
                ("datastore", self.ref("datastore", d.datastore)),
                ("data_reference_name", render(d.name)),
            ]
            if d.path_on_datastore is not None:
                kwargs.append(("path_on_datastore", render(d.path_on_datastore)))
            if d.mode != "mount":
                kwargs.append(("mode", render(d.mode)))
            self.call(var, "DataReference", kwargs)
        for d in g.datasets:
            var = self.names.new(d.name)
            self.var[("data", d.name)] = var
            kwargs = [("name", render(d.dataset))]
            if d.version is not None:
                kwargs.append(("version", render(d.version)))
            chain = [
                f"Dataset.get_by_name(ws, {', '.join(f'{k}={v}' for k, v in kwargs)})",
                f".as_named_input({render(d.name)})",
            ]
            if d.mode != "direct":
                where = "" if d.path_on_compute is None else render(d.path_on_compute)
                chain.append(f".as_{d.mode}({where})")
            flat = f"{var} = {''.join(chain)}"
            if len(flat) <= WIDTH and "\n" not in flat:
                self.lines.append(flat)
            else:
                self.lines.append(f"{var} = (")
                self.lines.extend(f"    {link}" for link in chain)
                self.lines.append(")")
        for d in g.pipeline_data:
            var = self.names.new(d.name)
            self.var[("data", d.name)] = var
            kwargs = [("name", render(d.name))]
            if d.datastore is not None:
                kwargs.append(("datastore", self.ref("datastore", d.datastore)))
            self.call(var, "PipelineData", kwargs)

    def _modules(self) -> None:
        modules: list[str] = []
        for s in self.graph.steps:
            if s.kind == "ModuleStep" and s.module not in modules:
                modules.append(s.module or "")
        if modules:
            self.lines.append("")
        for name in modules:
            var = self.names.new(name, "_module")
            self.var[("module", name)] = var
            self.lines.append(f"{var} = Module.get(ws, name={render(name)})")

    def _step(self, step: Step) -> None:
        var = self.names.new(step.name)
        self.var[("step", step.id)] = var
        kwargs: list[tuple[str, str]] = [("name", render(step.name))]
        if step.kind == "ModuleStep":
            kwargs.insert(0, ("module", self.ref("module", step.module or "")))
            if step.version is not None:
                kwargs.append(("version", render(step.version)))
            ins = [(k, self.ref("data", v)) for k, v in step.inputs_map.items()]
            outs = [(k, self.ref("data", v)) for k, v in step.outputs_map.items()]
            kwargs.append(("inputs_map", self.mapping(ins, 4)))
            kwargs.append(("outputs_map", self.mapping(outs, 4)))
            if step.params:
                params = [(k, self.value(v)) for k, v in step.params.items()]
                kwargs.append(("params", self.mapping(params, 4)))
            if step.compute_target is not None:
                kwargs.append(("compute_target", render(step.compute_target)))
            self.call(var, "ModuleStep", kwargs)
            return
        runconfig = None
        if step.environment_variables:
            runconfig = self.names.new(step.name, "_config")
            self.lines.append(f"{runconfig} = RunConfiguration()")
            env = render(dict(sorted(step.environment_variables.items())), 0, WIDTH - 50)
            self.lines.append(f"{runconfig}.environment.environment_variables = {env}")
        kwargs.append(("script_name", render(step.script_name)))
        if step.arguments:
            kwargs.append(("arguments", self.seq([self.value(a) for a in step.arguments], 4)))
        if step.inputs:
            kwargs.append(("inputs", self.seq([self.ref("data", n) for n in step.inputs], 4)))
        if step.outputs:
            kwargs.append(("outputs", self.seq([self.ref("data", n) for n in step.outputs], 4)))
        if step.compute_target is not None:
            kwargs.append(("compute_target", render(step.compute_target)))
        if runconfig is not None:
            kwargs.append(("runconfig", runconfig))
        if step.source_directory is not None:
            kwargs.append(("source_directory", render(step.source_directory)))
        if not step.allow_reuse:
            kwargs.append(("allow_reuse", "False"))
        self.call(var, "PythonScriptStep", kwargs)


def write_pipeline(graph: Graph, datastores: set[str] | None = None) -> str:
    """The pipeline file for ``graph``; raises ``GraphProblems`` when it cannot be written."""
    problems = check_graph(graph, datastores)
    if problems:
        raise GraphProblems(problems)
    return _Writer(graph).write()
