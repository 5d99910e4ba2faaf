"""Modules (v1's ``azureml.pipeline.core.module``): versioned, published scripts kept in the workspace.

A ``Module`` is a named container of ``ModuleVersion``s. ``publish_python_script`` records a
version: the script, its interface (``InputPortDef``/``OutputPortDef``, parameters, default
arguments) and a *snapshot* of its source folder. The registry is plain files in the workspace::

    <workspace>/modules/<module>/module.json                      name, id, status, default, versions
    <workspace>/modules/<module>/versions/<version>/version.json  interface, snapshot digest, status
    <workspace>/modules/<module>/versions/<version>/snapshot/     copy of the source folder

The snapshot is a copy taken at publish time (honouring ``.amlignore``/``.gitignore``), so editing
the source folder later never changes a published version; a step runs from the snapshot.

Differences from v1, on purpose:

* ``Module.create`` with the name of an existing module returns that module (names are unique in
  a workspace, as in v1), so a pipeline file that creates and publishes can be run and compiled
  again and again.
* Publishing is idempotent: the same ``version`` with the same definition and snapshot content
  returns the existing version; the same ``version`` with anything different is an error naming
  what differs (publish a new version instead). With ``version=None`` an identical published
  version is returned, else the next free integer version is created.
* Ids are derived from names (uuid5), and nothing time-dependent is stored, so a registry is
  reproducible and can be committed next to the DAGs that refer to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import NotSupportedError, UserErrorException
from mlpipe_provider.records import (
    ACTIVE,
    DEPRECATED,
    DISABLED,
    ModuleRecord,
    ModuleVersionRecord,
    read_record,
    update_record,
    write_record,
)

REGISTRY_DIR = "modules"
MODULE_FILE = "module.json"
VERSION_FILE = "version.json"
SNAPSHOT_DIR = "snapshot"
FORMAT = 1
_NAMESPACE = uuid.UUID("6f1c55b2-6a36-4d0e-9a53-0c4b8f2f8a11")
_PORT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_FOLDER_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_FOLDER_BAD = re.compile(r"[^a-z0-9_.-]")
_DATASTORE_MODES = ("mount", "download", "upload", "direct", "hdfs", "link")


def _folder_for(text: str) -> str:
    """A stable folder name for a module name or a version string (hash suffix when changed)."""
    if _SAFE_FOLDER_RE.match(text) and len(text) <= 80 and ".." not in text:
        return text
    cleaned = _FOLDER_BAD.sub("_", text.lower()).strip("._")[:60] or "x"
    digest = hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{cleaned}-{digest}"


def _registry(workspace: Any) -> Path:
    from mlpipe_provider.sdk.workspace import Workspace

    if not isinstance(workspace, Workspace):
        raise UserErrorException(f"workspace must be a Workspace, got {type(workspace).__name__}")
    return workspace._dir / REGISTRY_DIR


def _model(path: Path) -> type[ModuleRecord] | type[ModuleVersionRecord]:
    return ModuleVersionRecord if path.name == VERSION_FILE else ModuleRecord


def _read_json(path: Path) -> dict[str, Any]:
    """A ``module.json`` or ``version.json`` record; missing or damaged is a ``RecordError``."""
    return read_record(path, _model(path))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written through the records layer, which leaves an unchanged file (and a committed
    registry) alone."""
    write_record(path, _model(path), data)


def _update_json(path: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` to the newest stored record under its lock (see ``records.store``)."""
    return update_record(path, _model(path), lambda data: {**data, **changes})


def _check_text(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UserErrorException(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_port_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _PORT_NAME_RE.match(name):
        raise UserErrorException(
            f"{what} name {name!r} must start with a letter or '_' and contain only letters, "
            "digits and '_' (it names the data inside the step)"
        )
    return name


def _check_mode(mode: Any, what: str) -> str | None:
    if mode is not None and mode not in _DATASTORE_MODES:
        raise UserErrorException(
            f"{what}: mode must be one of {', '.join(_DATASTORE_MODES)}, got {mode!r}"
        )
    return mode


# --- port definitions (v1's azureml.pipeline.core.graph) ------------------------------------


class InputPortDef:
    """An input of a module version: a name the step binds data to, with defaults for the binding."""

    def __init__(
        self,
        name: str,
        data_types: list | None = None,
        default_datastore_mode: str | None = None,
        default_path_on_compute: str | None = None,
        is_optional: bool = False,
        default_overwrite: bool | None = None,
        default_data_reference_name: str | None = None,
        is_resource: bool = False,
        label: str | None = None,
        additional_transformations: Any = None,
        **kwargs: Any,
    ):
        self._name = _check_port_name(name, "InputPortDef")
        self._data_types = list(data_types) if data_types else ["AnyFile", "AnyDirectory"]
        self._default_datastore_mode = _check_mode(default_datastore_mode, f"InputPortDef {name!r}")
        self._default_path_on_compute = default_path_on_compute
        if not isinstance(is_optional, bool):
            raise UserErrorException(f"InputPortDef {name!r}: is_optional must be True or False")
        self._is_optional = is_optional
        self._default_overwrite = default_overwrite
        self._default_data_reference_name = default_data_reference_name
        self._is_resource = bool(is_resource)
        self._label = label
        if additional_transformations is not None:
            raise NotSupportedError(
                f"InputPortDef {name!r}: additional_transformations (azureml.dataprep) is not supported"
            )

    name = property(lambda self: self._name)
    data_types = property(lambda self: list(self._data_types))
    default_datastore_mode = property(lambda self: self._default_datastore_mode)
    default_path_on_compute = property(lambda self: self._default_path_on_compute)
    is_optional = property(lambda self: self._is_optional)
    default_overwrite = property(lambda self: self._default_overwrite)
    default_data_reference_name = property(lambda self: self._default_data_reference_name)
    is_resource = property(lambda self: self._is_resource)
    label = property(lambda self: self._label)
    additional_transformations = property(lambda self: None)

    def _to_json(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "data_types": self._data_types,
            "default_datastore_mode": self._default_datastore_mode,
            "default_path_on_compute": self._default_path_on_compute,
            "is_optional": self._is_optional,
            "default_overwrite": self._default_overwrite,
            "default_data_reference_name": self._default_data_reference_name,
            "is_resource": self._is_resource,
            "label": self._label,
        }

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> InputPortDef:
        return cls(**data)

    def __repr__(self) -> str:
        return f"InputPortDef(name={self._name!r}, is_optional={self._is_optional!r})"


class OutputPortDef:
    """An output of a module version: a name the step binds a ``PipelineData`` to."""

    def __init__(
        self,
        name: str,
        default_datastore_name: str | None = None,
        default_datastore_mode: str | None = None,
        default_path_on_compute: str | None = None,
        is_directory: bool = False,
        data_type: str | None = None,
        default_overwrite: bool | None = None,
        training_output: Any = None,
        label: str | None = None,
    ):
        self._name = _check_port_name(name, "OutputPortDef")
        self._default_datastore_name = default_datastore_name
        self._default_datastore_mode = _check_mode(
            default_datastore_mode, f"OutputPortDef {name!r}"
        )
        self._default_path_on_compute = default_path_on_compute
        self._is_directory = bool(is_directory)
        self._data_type = data_type or ("AnyDirectory" if is_directory else "AnyFile")
        self._default_overwrite = default_overwrite
        self._label = label
        if training_output is not None:
            raise NotSupportedError(
                f"OutputPortDef {name!r}: training_output is for AutoML/HyperDrive steps, which mlpipe does not support"
            )

    name = property(lambda self: self._name)
    default_datastore_name = property(lambda self: self._default_datastore_name)
    default_datastore_mode = property(lambda self: self._default_datastore_mode)
    default_path_on_compute = property(lambda self: self._default_path_on_compute)
    is_directory = property(lambda self: self._is_directory)
    data_type = property(lambda self: self._data_type)
    default_overwrite = property(lambda self: self._default_overwrite)
    training_output = property(lambda self: None)
    label = property(lambda self: self._label)

    def _to_json(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "default_datastore_name": self._default_datastore_name,
            "default_datastore_mode": self._default_datastore_mode,
            "default_path_on_compute": self._default_path_on_compute,
            "is_directory": self._is_directory,
            "data_type": self._data_type,
            "default_overwrite": self._default_overwrite,
            "label": self._label,
        }

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> OutputPortDef:
        return cls(**data)

    def __repr__(self) -> str:
        return f"OutputPortDef(name={self._name!r})"


def _input_port(item: Any, index: int) -> InputPortDef:
    """v1 also accepts data bindings as port definitions; their name and mode become the port's."""
    from mlpipe_provider.sdk.data import DataReference, InputPortBinding, PipelineData

    if isinstance(item, InputPortDef):
        return item
    if isinstance(item, InputPortBinding):
        return InputPortDef(
            item.name,
            default_datastore_mode=item.bind_mode,
            default_path_on_compute=item.path_on_compute,
        )
    if isinstance(item, DataReference):
        return InputPortDef(
            item.data_reference_name,
            default_datastore_mode=item.mode,
            default_path_on_compute=item.path_on_compute,
        )
    if isinstance(item, PipelineData):
        return InputPortDef(item.name)
    raise UserErrorException(
        f"inputs[{index}] must be an InputPortDef (or a data binding), got {type(item).__name__}"
    )


def _output_port(item: Any, index: int) -> OutputPortDef:
    from mlpipe_provider.sdk.data import PipelineData

    if isinstance(item, OutputPortDef):
        return item
    if isinstance(item, PipelineData):
        return OutputPortDef(
            item.output_name,
            default_datastore_name=item.datastore_name,
            default_datastore_mode=item._output_mode,
            default_path_on_compute=item._output_path_on_compute,
            is_directory=bool(item.is_directory),
        )
    raise UserErrorException(
        f"outputs[{index}] must be an OutputPortDef (or a PipelineData), got {type(item).__name__}"
    )


def _published_argument(arg: Any, index: int, inputs: set[str], outputs: set[str]) -> Any:
    """Default arguments of a version as JSON: literals, port references, pipeline parameters."""
    from mlpipe_provider.sdk.data import PipelineParameter

    if isinstance(arg, InputPortDef):
        if arg.name not in inputs:
            raise UserErrorException(
                f"arguments[{index}]: input port {arg.name!r} is not among the version's inputs"
            )
        return {"input_port": arg.name}
    if isinstance(arg, OutputPortDef):
        if arg.name not in outputs:
            raise UserErrorException(
                f"arguments[{index}]: output port {arg.name!r} is not among the version's outputs"
            )
        return {"output_port": arg.name}
    if isinstance(arg, PipelineParameter):
        if not isinstance(arg.default_value, (str, int, float, bool)):
            raise UserErrorException(
                f"arguments[{index}]: PipelineParameter {arg.name!r} needs a str, int, float or bool default"
            )
        return {"pipeline_parameter": arg.name, "default": arg.default_value}
    if isinstance(arg, (str, int, float, bool)):
        return arg
    raise UserErrorException(
        f"arguments[{index}] must be a string, number, InputPortDef, OutputPortDef or "
        f"PipelineParameter, got {type(arg).__name__}"
    )


# --- versions --------------------------------------------------------------------------------


class ModuleVersionDescriptor:
    """The version string and id of one ``ModuleVersion`` (v1 name)."""

    def __init__(self, version: str, module_version_id: str):
        self._version = version
        self._module_version_id = module_version_id

    version = property(lambda self: self._version)
    module_version_id = property(lambda self: self._module_version_id)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ModuleVersionDescriptor)
            and other._version == self._version
            and other._module_version_id == self._module_version_id
        )

    def __hash__(self) -> int:
        return hash((self._version, self._module_version_id))

    def __repr__(self) -> str:
        return f"ModuleVersionDescriptor(Version: {self._version}, ModuleVersionId: {self._module_version_id})"


class ModuleVersion:
    """One published version of a module. Get it from ``Module.publish_python_script`` or ``resolve``."""

    def __init__(self, workspace: Any, folder: Path, data: dict[str, Any] | None = None):
        self._workspace = workspace
        self._folder = Path(folder)
        self._data = data if data is not None else _read_json(self._folder / VERSION_FILE)

    @staticmethod
    def get(workspace: Any, module_version_id: str | None = None, _workflow_provider: Any = None):
        _check_text(module_version_id, "ModuleVersion.get: module_version_id")
        root = _registry(workspace)
        for module_file in sorted(root.glob(f"*/{MODULE_FILE}")):
            for entry in _read_json(module_file).get("versions", []):
                if entry.get("module_version_id") == module_version_id:
                    return ModuleVersion(
                        workspace, module_file.parent / "versions" / entry["folder"]
                    )
        raise UserErrorException(
            f"no module version with id {module_version_id!r} in workspace {str(workspace._dir)!r}"
        )

    # --- v1 attributes ----------------------------------------------------------------------
    module_id = property(lambda self: self._data["module_id"])
    module_version_id = property(lambda self: self._data["module_version_id"])
    version = property(lambda self: self._data["version"])
    description = property(lambda self: self._data.get("description"))
    category = property(lambda self: self._data.get("category"))
    status = property(lambda self: self._data.get("status", ACTIVE))

    @property
    def runconfig(self) -> str | None:
        stored = self._data.get("runconfig")
        return json.dumps(stored, sort_keys=True) if stored is not None else None

    @property
    def interface(self) -> dict[str, Any]:
        """Inputs, outputs, parameters and default arguments (v1 returned a structured interface)."""
        return {
            "inputs": [dict(p) for p in self._data["inputs"]],
            "outputs": [dict(p) for p in self._data["outputs"]],
            "parameters": dict(self._data["params"]),
            "arguments": list(self._data["arguments"]),
        }

    @property
    def script_name(self) -> str:
        return self._data["script_name"]

    @property
    def module_name(self) -> str:
        return self._data["module_name"]

    @property
    def input_port_defs(self) -> list[InputPortDef]:
        return [InputPortDef._from_json(p) for p in self._data["inputs"]]

    @property
    def output_port_defs(self) -> list[OutputPortDef]:
        return [OutputPortDef._from_json(p) for p in self._data["outputs"]]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._data["params"])

    @property
    def _snapshot_dir(self) -> Path:
        return self._folder / SNAPSHOT_DIR

    @property
    def _snapshot_digest(self) -> str:
        return self._data["snapshot"]["digest"]

    @property
    def snapshot_directory(self) -> Path:
        """The folder holding the published snapshot (the step's source directory); not v1 API."""
        return self._snapshot_dir

    def snapshot_changed(self) -> bool:
        """True when the snapshot folder's content no longer matches its published digest."""
        snapshot = self._snapshot_dir
        return snapshot.is_dir() and tree_digest(snapshot) != self._snapshot_digest

    def module(self, _workflow_provider: Any = None) -> Module:
        return Module.get(self._workspace, module_id=self.module_id)

    def set_description(self, description: str) -> None:
        self._update(description=_check_text(description, "description"))

    def enable(self) -> None:
        self._update(status=ACTIVE)

    def disable(self) -> None:
        self._update(status=DISABLED)

    def deprecate(self) -> None:
        self._update(status=DEPRECATED)

    def _update(self, **changes: Any) -> None:
        self._data = _update_json(self._folder / VERSION_FILE, changes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModuleVersion) and other._folder == self._folder

    def __hash__(self) -> int:
        return hash(self._folder)

    def __repr__(self) -> str:
        return (
            f"ModuleVersion(status: {self.status}, version: {self.version}, module_id: "
            f"{self.module_id}, module_version_id: {self.module_version_id})"
        )


# --- modules ---------------------------------------------------------------------------------


class Module:
    """A named, versioned computation kept in the workspace (v1 ``Module``)."""

    def __init__(self, workspace: Any, folder: Path, data: dict[str, Any] | None = None):
        self._workspace = workspace
        self._folder = Path(folder)
        self._data = data if data is not None else _read_json(self._folder / MODULE_FILE)

    # --- construction, as in v1 -------------------------------------------------------------
    @staticmethod
    def create(
        workspace: Any, name: str, description: str, _workflow_provider: Any = None
    ) -> Module:
        """Create the module, or return the existing one of that name (names are unique)."""
        _check_text(name, "Module name")
        if description is not None and not isinstance(description, str):
            raise UserErrorException(f"Module {name!r}: description must be a string")
        folder = _registry(workspace) / _folder_for(name)
        module_file = folder / MODULE_FILE
        if module_file.is_file():
            module = Module(workspace, folder)
            if module.name != name:
                raise UserErrorException(
                    f"module folder {str(folder)!r} holds module {module.name!r}, not {name!r}"
                )
            if description is not None and module.description != description:
                module._update(description=description)
            return module
        data = {
            "format": FORMAT,
            "id": str(uuid.uuid5(_NAMESPACE, f"module:{name}")),
            "name": name,
            "description": description,
            "status": ACTIVE,
            "default_version": None,
            "versions": [],
        }
        _write_json(module_file, data)
        return Module(workspace, folder, data)

    @staticmethod
    def get(
        workspace: Any,
        module_id: str | None = None,
        name: str | None = None,
        _workflow_provider: Any = None,
    ) -> Module:
        """The module with this id or name; an error naming the workspace if there is none."""
        if module_id is None and name is None:
            raise UserErrorException("Module.get needs module_id or name")
        root = _registry(workspace)
        if name is not None:
            folder = root / _folder_for(_check_text(name, "Module name"))
            if (folder / MODULE_FILE).is_file():
                module = Module(workspace, folder)
                if module.name == name and module_id in (None, module.id):
                    return module
        else:
            for module_file in sorted(root.glob(f"*/{MODULE_FILE}")):
                data = _read_json(module_file)
                if data.get("id") == module_id:
                    return Module(workspace, module_file.parent, data)
        known = sorted(_read_json(f).get("name", "?") for f in root.glob(f"*/{MODULE_FILE}"))
        what = f"name {name!r}" if name is not None else f"id {module_id!r}"
        raise UserErrorException(
            f"no module with {what} in workspace {str(workspace._dir)!r} "
            f"(modules: {', '.join(repr(k) for k in known) or 'none'})"
        )

    @staticmethod
    def get_versions(workspace: Any, name: str, _workflow_provider: Any = None) -> list:
        return Module.get(workspace, name=name).module_version_list()

    @staticmethod
    def process_source_directory(name: str, source_directory: str, script_name: str) -> str:
        script_path = os.path.join(source_directory, script_name)
        if not os.path.isfile(script_path):
            raise UserErrorException(
                f"Module {name!r}: script not found at {os.path.abspath(script_path)!r}; make sure "
                "source_directory is right"
            )
        return source_directory

    # --- v1 attributes ----------------------------------------------------------------------
    id = property(lambda self: self._data["id"])
    name = property(lambda self: self._data["name"])
    description = property(lambda self: self._data.get("description"))
    status = property(lambda self: self._data.get("status", ACTIVE))
    default_version = property(lambda self: self._data.get("default_version"))

    def module_version_list(self) -> list[ModuleVersionDescriptor]:
        self._reload()
        return [
            ModuleVersionDescriptor(v["version"], v["module_version_id"])
            for v in self._data["versions"]
        ]

    def get_default_version(self) -> str | None:
        self._reload()
        return self.default_version

    def set_default_version(self, version_id: str) -> None:
        """Make ``version_id`` (a version string, as in v1) the default."""
        if version_id is None:
            raise UserErrorException(
                f"Module {self.name!r}: no version was given to set as default"
            )
        self._entry(version_id, "set_default_version")
        self._update(default_version=version_id)

    def get_default(self) -> ModuleVersion | None:
        self._reload()
        if self.default_version is None:
            return None
        return self._version(self._entry(self.default_version, "default_version"))

    def resolve(self, version: str | None = None) -> ModuleVersion:
        """The version a step uses: ``version`` if given, else the default, else (as in v1) the
        highest all-numeric version, else the last published one; disabled versions never."""
        self._reload()
        if self.status == DISABLED:
            raise UserErrorException(f"module {self.name!r} is disabled")
        if version is not None:
            found = self._version(self._entry(version, "version"))
            if found.status == DISABLED:
                raise UserErrorException(f"module {self.name!r}: version {version!r} is disabled")
            return found
        default = self.get_default()
        if default is not None and default.status != DISABLED:
            return default
        candidates = [self._version(e) for e in self._data["versions"]]
        candidates = [v for v in candidates if v.status != DISABLED]
        if not candidates:
            raise UserErrorException(
                f"module {self.name!r} has no published (enabled) version: call "
                "publish_python_script first"
            )
        if all(re.fullmatch(r"\d+(\.\d+)*", v.version) for v in candidates):
            return max(candidates, key=lambda v: tuple(int(p) for p in v.version.split(".")))
        return candidates[-1]

    # --- publishing ---------------------------------------------------------------------------
    def publish_python_script(
        self,
        script_name: str,
        description: str,
        inputs: list,
        outputs: list,
        params: dict | None = None,
        create_sequencing_ports: bool = True,
        version: str | None = None,
        is_default: bool = False,
        source_directory: str | None = None,
        hash_paths: list | None = None,
        category: str | None = None,
        arguments: list | None = None,
        runconfig: Any = None,
    ) -> ModuleVersion:
        """Publish ``script_name`` from ``source_directory`` as a version of this module."""
        from mlpipe_provider.hashing import StatCache, digest_path

        where = f"Module {self.name!r}"
        _check_text(script_name, f"{where}: script_name")
        if version is not None:
            if isinstance(version, (int, float)) and not isinstance(version, bool):
                version = str(version)
            _check_text(version, f"{where}: version")
        source = Path(source_directory or ".").resolve()
        if not source.is_dir():
            raise UserErrorException(f"{where}: source_directory {str(source)!r} does not exist")
        script = (source / script_name).resolve()
        if not script.is_relative_to(source):
            raise UserErrorException(f"{where}: script {script_name!r} is outside source_directory")
        self.process_source_directory(self.name, str(source), script_name)
        _check_no_links_out(source, where)
        in_ports = [_input_port(p, i) for i, p in enumerate(inputs or [])]
        out_ports = [_output_port(p, i) for i, p in enumerate(outputs or [])]
        names = [p.name for p in in_ports + out_ports]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UserErrorException(f"{where}: port names must be unique, repeated: {duplicates}")
        params = dict(params or {})
        for key, value in params.items():
            if not isinstance(key, str) or not key:
                raise UserErrorException(f"{where}: parameter names must be non-empty strings")
            if not isinstance(value, (str, int, float, bool)):
                raise UserErrorException(
                    f"{where}: params[{key!r}] must be a str, int, float or bool default, got "
                    f"{type(value).__name__}"
                )
        published_args = [
            _published_argument(a, i, {p.name for p in in_ports}, {p.name for p in out_ports})
            for i, a in enumerate(arguments or [])
        ]
        stored_runconfig = _stored_runconfig(runconfig, where)
        snapshot_digest = digest_path(source, StatCache(None), use_ignore_files=True)
        definition = {
            "module_id": self.id,
            "module_name": self.name,
            "description": description,
            "category": category,
            "script_name": script_name,
            "inputs": [p._to_json() for p in in_ports],
            "outputs": [p._to_json() for p in out_ports],
            "params": params,
            "arguments": published_args,
            "create_sequencing_ports": bool(create_sequencing_ports),
            "runconfig": stored_runconfig,
            "snapshot": {"digest": snapshot_digest.digest, "files": snapshot_digest.files},
        }
        self._reload()
        if version is None:
            for entry in self._data["versions"]:
                existing = self._version(entry)
                if _definition(existing._data) == definition:
                    version = existing.version
                    break
            else:
                taken = {e["version"] for e in self._data["versions"]}
                n = len(taken) + 1
                while str(n) in taken:
                    n += 1
                version = str(n)
        entry = next((e for e in self._data["versions"] if e["version"] == version), None)
        if entry is not None:
            existing = self._version(entry)
            differences = _differences(_definition(existing._data), definition)
            if differences:
                raise UserErrorException(
                    f"{where}: version {version!r} is already published with a different "
                    f"{', '.join(differences)}; a published version never changes, so publish "
                    "this as a new version"
                )
            if not existing._snapshot_dir.is_dir() or tree_digest(existing._snapshot_dir) != (
                existing._snapshot_digest
            ):
                raise UserErrorException(
                    f"{where}: the snapshot of published version {version!r} at "
                    f"{str(existing._snapshot_dir)!r} was changed or removed"
                )
        else:
            existing = self._create_version(version, definition, source)
        if is_default and self.default_version != version:
            self.set_default_version(version)
        return existing

    def _create_version(
        self, version: str, definition: dict[str, Any], source: Path
    ) -> ModuleVersion:
        from mlpipe_provider.hashing import iter_tree

        taken = {e["folder"] for e in self._data["versions"]}
        folder_name = _folder_for(version)
        if folder_name in taken:  # two version strings that fold to one folder name
            folder_name = f"{folder_name}-{len(taken)}"
        folder = self._folder / "versions" / folder_name
        staging = self._folder / "versions" / f".staging-{uuid.uuid4().hex}"
        try:
            snapshot = staging / SNAPSHOT_DIR
            snapshot.mkdir(parents=True)
            for rel, entry in iter_tree(source, True):
                target = snapshot / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry.path, target)
                shutil.copymode(entry.path, target)
            digest = tree_digest(snapshot)
            if digest != definition["snapshot"]["digest"]:
                raise UserErrorException(
                    f"Module {self.name!r}: source_directory {str(source)!r} changed while "
                    f"version {version!r} was being published; publish again"
                )
            data = {
                "format": FORMAT,
                "module_version_id": str(uuid.uuid5(_NAMESPACE, f"version:{self.id}:{version}")),
                "version": version,
                "status": ACTIVE,
                **definition,
            }
            _write_json(staging / VERSION_FILE, data)
            if folder.exists():
                shutil.rmtree(folder)  # left by an interrupted publish: not listed in module.json
            os.replace(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        entry = {
            "version": version,
            "module_version_id": data["module_version_id"],
            "folder": folder_name,
        }
        # listed last: a version exists once module.json says so; appended to the newest record
        # under its lock, so a version another process published meanwhile is kept
        self._data = update_record(
            self._folder / MODULE_FILE,
            ModuleRecord,
            lambda record: {**record, "versions": [*record["versions"], entry]},
        )
        return ModuleVersion(self._workspace, folder, data)

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(
            "Module.publish with an execution type is not supported; use publish_python_script"
        )

    def publish_adla_script(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(
            "Azure Data Lake Analytics modules are not supported (ADLA is retired)"
        )

    def publish_azure_batch(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(
            "Azure Batch modules are not supported (Azure Batch is an external service)"
        )

    # --- status and metadata ------------------------------------------------------------------
    def enable(self) -> None:
        self._update(status=ACTIVE)

    def disable(self) -> None:
        self._update(status=DISABLED)

    def deprecate(self) -> None:
        self._update(status=DEPRECATED)

    def set_description(self, description: str) -> None:
        self._update(description=_check_text(description, "description"))

    def set_name(self, name: str) -> None:
        raise NotSupportedError(
            "renaming a module is not supported: its name is its key in the workspace registry"
        )

    # --- internals ----------------------------------------------------------------------------
    def _reload(self) -> None:
        self._data = _read_json(self._folder / MODULE_FILE)

    def _update(self, **changes: Any) -> None:
        self._data = _update_json(self._folder / MODULE_FILE, changes)

    def _entry(self, version: Any, field: str) -> dict[str, Any]:
        for entry in self._data["versions"]:
            if entry["version"] == version:
                return entry
        known = ", ".join(repr(e["version"]) for e in self._data["versions"]) or "none"
        raise UserErrorException(
            f"module {self.name!r} has no version {version!r} (published versions: {known})"
        )

    def _version(self, entry: dict[str, Any]) -> ModuleVersion:
        return ModuleVersion(self._workspace, self._folder / "versions" / entry["folder"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Module) and other._folder == self._folder

    def __hash__(self) -> int:
        return hash(self._folder)

    def __repr__(self) -> str:
        versions = [(v["version"], v["module_version_id"]) for v in self._data["versions"]]
        return f"Module(Name: {self.name}, Id: {self.id}, Description: {self.description}, Versions: {versions})"


def _definition(data: dict[str, Any]) -> dict[str, Any]:
    """What a publish call determines (everything but ids, version and status)."""
    return {
        k: v
        for k, v in data.items()
        if k not in ("format", "module_version_id", "version", "status")
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    labels = {"snapshot": "source_directory content"}
    return [labels.get(k, k) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _check_no_links_out(source: Path, where: str) -> None:
    """The snapshot copies file contents, so a symlink must not pull in files from elsewhere."""
    from mlpipe_provider.hashing import iter_tree

    for rel, entry in iter_tree(source, True):
        if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(source):
            raise UserErrorException(
                f"{where}: {rel!r} in source_directory is a symlink to a file outside it; "
                "a published snapshot may only contain the folder's own files"
            )


def tree_digest(folder: Path) -> str:
    from mlpipe_provider.hashing import StatCache, digest_path

    return digest_path(folder, StatCache(None), use_ignore_files=True).digest


def _stored_runconfig(runconfig: Any, where: str) -> dict[str, Any] | None:
    if runconfig is None:
        return None
    env = getattr(runconfig, "environment", None)
    if env is None or not hasattr(env, "to_spec"):
        raise UserErrorException(f"{where}: runconfig must be a RunConfiguration")
    timeout = getattr(runconfig, "max_run_duration_seconds", None)
    return {"environment": env.to_spec(), "max_run_duration_seconds": timeout}


class StoredRunConfiguration:
    """A published version's run configuration, shaped like a ``RunConfiguration`` for lowering."""

    class _Environment:
        def __init__(self, spec: dict[str, Any]):
            self._spec = spec

        def to_spec(self) -> dict[str, Any]:
            return json.loads(json.dumps(self._spec))

    def __init__(self, stored: dict[str, Any]):
        self.environment = self._Environment(stored["environment"])
        self.max_run_duration_seconds = stored.get("max_run_duration_seconds")
