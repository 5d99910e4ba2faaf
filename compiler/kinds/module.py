"""``ModuleStep``: a published module version, run like a script from its registry snapshot.

The step's version was resolved when the pipeline was built; lowering checks the binding against
the version's interface (unknown ports, unbound required inputs, arguments that use unbound ports,
undeclared parameters) and that the snapshot is still what was published, then lowers it as a
script whose source folder is the snapshot. The kind compiles into a TaskGroup named after the
step (``group=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.kinds import StepKind, register
from compiler.kinds.script import lower_script, lower_timeout, script_kwargs


def _names(items: Any) -> str:
    return ", ".join(repr(n) for n in items) or "none"


def _check_builtin_params(lowering: Any, step: Any, version: Any) -> None:
    """A built-in module's parameters are typed: a bad literal (or a PipelineParameter's bad
    default) is a compile error naming step and field, not a failed run. Values a run passes
    for a PipelineParameter are checked by the module's script when it starts."""
    from mlpipe_provider import builtin_modules
    from mlpipe_provider.sdk import PipelineParameter

    if not builtin_modules.is_builtin(version.module_name, version.category):
        return
    values = {
        key: value.default_value if isinstance(value, PipelineParameter) else value
        for key, value in step.params.items()
        if key not in step.unknown_params
    }
    bound = set(step.inputs_map)
    for field, message in builtin_modules.check_params(version.module_name, values, bound):
        lowering.problem(step, field, message)


def _lower(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    version = step.module_version
    where = f"module {version.module_name!r} version {version.version!r}"
    in_ports = {p.name: p for p in version.input_port_defs}
    out_ports = {p.name: p for p in version.output_port_defs}
    for port in step.inputs_map:
        if port not in in_ports:
            lowering.problem(
                step,
                f"inputs_map[{port!r}]",
                f"{where} has no input port {port!r} (input ports: {_names(in_ports)})",
            )
    for port, port_def in in_ports.items():
        if not port_def.is_optional and port not in step.inputs_map:
            lowering.problem(
                step,
                "inputs_map",
                f"required input port {port!r} of {where} is not bound to any data",
            )
    for port in step.outputs_map:
        if port not in out_ports:
            lowering.problem(
                step,
                f"outputs_map[{port!r}]",
                f"{where} has no output port {port!r} (output ports: {_names(out_ports)})",
            )
    for index, kind, port in step.unbound_ports:
        lowering.problem(
            step,
            f"arguments[{index}]",
            f"the arguments use {kind} port {port!r} of {where}, which {kind}s_map does not bind",
        )
    declared = version.params
    for key in step.unknown_params:
        lowering.problem(
            step,
            f"params[{key!r}]",
            f"{where} declares no parameter {key!r} (parameters: {_names(declared)})",
        )
    _check_builtin_params(lowering, step, version)
    snapshot = version.snapshot_directory
    if version.snapshot_changed():
        lowering.problem(
            step,
            "module_version",
            f"the snapshot of {where} at {str(snapshot)!r} was changed after it was published "
            "(a published version never changes: publish a new version)",
        )
    lower_script(
        lowering,
        step,
        spec,
        source_directory=str(snapshot),
        script_name=version.script_name,
        script_field="module_version",
        source_field="module_version",
    )
    spec["environment"] = lowering.lower_environment(step, step.runconfig)
    spec["timeout_seconds"] = lower_timeout(lowering, step, step.runconfig)
    spec["module_version"] = {
        "module": version.module_name,
        "module_id": version.module_id,
        "version": version.version,
        "module_version_id": version.module_version_id,
    }
    spec["tooltip"] = (
        f"ModuleStep {step.name}: module {version.module_name}, version {version.version}"
    )


def _kwargs(spec: dict[str, Any], dag_dir: Path) -> list[tuple[str, Any]]:
    kwargs = script_kwargs(spec, dag_dir)
    return [*kwargs[:2], ("module_version", spec["module_version"]), *kwargs[2:]]


register(
    StepKind(
        "module",
        "mlpipe_provider.operators.module",
        "ModuleStepOperator",
        _lower,
        _kwargs,
        group=True,
    )
)
