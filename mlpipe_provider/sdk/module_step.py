"""``ModuleStep`` (v1's ``azureml.pipeline.steps.ModuleStep``): run a published module version.

The version is resolved here, when the pipeline is built: ``module_version`` if given, else
``module.resolve(version)`` (the named version, else the module's default, else v1's fallback).
``inputs_map``/``outputs_map`` bind the version's ports to data; the step's arguments default to
the version's published arguments, with each port replaced by the data bound to it. Port and
parameter names are checked when the pipeline is compiled, so every mistake is reported at once.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.data import (
    DataReference,
    InputPortBinding,
    PipelineData,
    PipelineParameter,
)
from mlpipe_provider.sdk.module import (
    InputPortDef,
    Module,
    ModuleVersion,
    OutputPortDef,
    StoredRunConfiguration,
)
from mlpipe_provider.sdk.steps import PipelineStep


def _resolve_version(
    step_name: str, module: Any, version: Any, module_version: Any
) -> ModuleVersion:
    where = f"step {step_name!r}"
    if module is not None and module_version is not None:
        raise UserErrorException(
            f"{where}, field 'module_version': give either module (with an optional version) or "
            "module_version, not both"
        )
    if module_version is not None:
        if not isinstance(module_version, ModuleVersion):
            raise UserErrorException(
                f"{where}, field 'module_version': must be a ModuleVersion, got "
                f"{type(module_version).__name__}"
            )
        if version is not None and str(version) != module_version.version:
            raise UserErrorException(
                f"{where}, field 'version': {version!r} does not match module_version "
                f"{module_version.version!r}"
            )
        if module_version.status == "Disabled":
            raise UserErrorException(
                f"{where}, field 'module_version': version {module_version.version!r} of module "
                f"{module_version.module_name!r} is disabled"
            )
        return module_version
    if module is None:
        raise UserErrorException(f"{where}, field 'module': give a Module or a ModuleVersion")
    if not isinstance(module, Module):
        raise UserErrorException(
            f"{where}, field 'module': must be a Module, got {type(module).__name__}"
        )
    if version is not None and not isinstance(version, str):
        version = str(version)
    try:
        return module.resolve(version)
    except UserErrorException as exc:
        field = "version" if version is not None else "module"
        raise UserErrorException(f"{where}, field {field!r}: {exc}") from exc


class ModuleStep(PipelineStep):
    """Run one version of a published ``Module`` as a pipeline step."""

    _step_kind = "module"

    def __init__(
        self,
        module: Module | None = None,
        version: str | None = None,
        module_version: ModuleVersion | None = None,
        inputs_map: dict | None = None,
        outputs_map: dict | None = None,
        compute_target: Any = None,
        runconfig: Any = None,
        runconfig_pipeline_params: dict | None = None,
        arguments: list | None = None,
        params: dict | None = None,
        name: str | None = None,
        _workflow_provider: Any = None,
    ):
        fallback = getattr(module, "name", None) or getattr(module_version, "module_name", None)
        step_name = name or fallback or "ModuleStep"
        resolved = _resolve_version(step_name, module, version, module_version)
        step_name = name or resolved.module_name
        inputs_map = _as_map(inputs_map, step_name, "inputs_map")
        outputs_map = _as_map(outputs_map, step_name, "outputs_map")
        in_ports = {p.name: p for p in resolved.input_port_defs}

        bindings: dict[str, InputPortBinding] = {}
        for port, data in inputs_map.items():
            bindings[port] = _bind_input(step_name, port, data, in_ports.get(port))
        out_ports = {p.name: p for p in resolved.output_port_defs}
        for port, data in outputs_map.items():
            if not isinstance(data, PipelineData):
                field = f"outputs_map[{port!r}]"
                raise UserErrorException(
                    f"step {step_name!r}, field {field!r}: must be PipelineData, got "
                    f"{type(data).__name__}"
                )
            if data.is_directory is None and getattr(out_ports.get(port), "is_directory", False):
                data._is_directory = True  # the port says a folder; the data did not say
        if arguments is not None and not isinstance(arguments, (list, tuple)):
            raise UserErrorException(
                f"step {step_name!r}: arguments must be a list, got {type(arguments).__name__}"
            )
        self._unbound_ports: list[tuple[int, str, str]] = []
        resolved_args = _drop_unbound_optional(
            [
                self._argument(index, arg, inputs_map, bindings, outputs_map, in_ports)
                for index, arg in enumerate(
                    list(arguments) if arguments is not None else resolved.interface["arguments"]
                )
            ]
        )
        super().__init__(
            step_name, list(bindings.values()), list(outputs_map.values()), resolved_args
        )
        if params is not None and not isinstance(params, dict):
            raise UserErrorException(
                f"step {step_name!r}: params must be a dict, got {type(params).__name__}"
            )
        declared = resolved.params
        self._unknown_params = [key for key in (params or {}) if key not in declared]
        self.params = {**declared, **(params or {})}
        self.module = module
        self.version = version
        self.compute_target = compute_target
        stored = resolved._data.get("runconfig")
        if runconfig is None and stored is not None:
            runconfig = StoredRunConfiguration(stored)
        self.runconfig = runconfig
        self.runconfig_pipeline_params = dict(runconfig_pipeline_params or {})
        self._module_version = resolved
        self._inputs_map = bindings
        self._outputs_map = dict(outputs_map)
        self._source_directory = str(resolved._snapshot_dir)

    @property
    def module_version(self) -> ModuleVersion:
        """The version this step runs (resolved when the step was built)."""
        return self._module_version

    @property
    def source_directory(self) -> str:
        return self._source_directory

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    @property
    def inputs_map(self) -> dict[str, Any]:
        """Input port name -> the data bound to it."""
        return dict(self._inputs_map)

    @property
    def outputs_map(self) -> dict[str, Any]:
        """Output port name -> the data it produces."""
        return dict(self._outputs_map)

    @property
    def unbound_ports(self) -> tuple[tuple[int, str, str], ...]:
        """``(argument index, "input"/"output", port)`` for each argument naming an unbound port."""
        return tuple(self._unbound_ports)

    @property
    def unknown_params(self) -> tuple[str, ...]:
        """``params`` keys the module version does not declare."""
        return tuple(self._unknown_params)

    def _argument(
        self,
        index: int,
        arg: Any,
        inputs_map: dict[str, Any],
        bindings: dict[str, InputPortBinding],
        outputs_map: dict[str, Any],
        in_ports: dict[str, Any],
    ) -> Any:
        if isinstance(arg, dict) and "pipeline_parameter" in arg:
            return PipelineParameter(arg["pipeline_parameter"], arg.get("default"))
        port_kind, port = None, None
        if isinstance(arg, InputPortDef) or (isinstance(arg, dict) and "input_port" in arg):
            port_kind, port = (
                "input",
                arg.name if isinstance(arg, InputPortDef) else arg["input_port"],
            )
        elif isinstance(arg, OutputPortDef) or (isinstance(arg, dict) and "output_port" in arg):
            port_kind = "output"
            port = arg.name if isinstance(arg, OutputPortDef) else arg["output_port"]
        if port_kind == "input":
            if port in bindings:
                return bindings[port]
            if getattr(in_ports.get(port), "is_optional", False):
                return _UNBOUND_OPTIONAL
            self._unbound_ports.append((index, "input", port))
            return f"<unbound input port {port}>"
        if port_kind == "output":
            if port in outputs_map:
                return outputs_map[port]
            self._unbound_ports.append((index, "output", port))
            return f"<unbound output port {port}>"
        # data that is bound to an input port reaches the script under the port's name
        for bound_port, data in inputs_map.items():
            target = data.bind_object if isinstance(data, InputPortBinding) else data
            if arg is data or arg is target:
                return bindings[bound_port]
        return arg


_UNBOUND_OPTIONAL = object()


def _drop_unbound_optional(arguments: list[Any]) -> list[Any]:
    """An optional input port left unbound leaves the command line, with the option that names
    it (``--port``) when that comes just before it, so a script sees the option as not given
    (argparse's default) instead of a placeholder path."""
    kept: list[Any] = []
    for arg in arguments:
        if arg is _UNBOUND_OPTIONAL:
            if kept and isinstance(kept[-1], str) and kept[-1].startswith("-"):
                kept.pop()
            continue
        kept.append(arg)
    return kept


def _as_map(value: Any, step_name: str, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserErrorException(
            f"step {step_name!r}, field {field!r}: must be a dict of port name to data, got "
            f"{type(value).__name__} (v1's ModuleStep takes {field}={{'port': data}})"
        )
    for key in value:
        if not isinstance(key, str) or not key:
            raise UserErrorException(
                f"step {step_name!r}, field {field!r}: port names must be non-empty strings, got {key!r}"
            )
    return dict(value)


def _bind_input(
    step_name: str, port: str, data: Any, port_def: InputPortDef | None
) -> InputPortBinding:
    """Bind ``data`` under the port's name; the port's defaults fill what the data leaves open."""
    default_mode = port_def.default_datastore_mode if port_def is not None else None
    default_path = port_def.default_path_on_compute if port_def is not None else None
    field = f"inputs_map[{port!r}]"
    try:
        if isinstance(data, InputPortBinding):
            return InputPortBinding(
                port,
                data.bind_object,
                bind_mode=data.bind_mode,
                path_on_compute=data.path_on_compute or default_path,
                overwrite=data.overwrite,
            )
        if isinstance(data, DataReference):
            return InputPortBinding(
                port,
                data,
                bind_mode=data.mode,
                path_on_compute=data.path_on_compute or default_path,
                overwrite=data.overwrite,
            )
        if isinstance(data, PipelineData):
            return InputPortBinding(
                port, data, bind_mode=default_mode or "mount", path_on_compute=default_path
            )
    except UserErrorException as exc:
        raise UserErrorException(f"step {step_name!r}, field {field!r}: {exc}") from exc
    raise UserErrorException(
        f"step {step_name!r}, field {field!r}: must be a DataReference, PipelineData or a binding "
        f"(as_mount/as_download), got {type(data).__name__}"
    )
