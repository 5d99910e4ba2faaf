"""What can be dragged onto the canvas for a pipeline file: scripts, modules, data, compute.

Read from the workspace the file belongs to (the nearest ``.mlpipe/config.json`` walking up, but
never above the pipelines folder, and never creating one as ``Workspace.from_config`` would).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlpipe_provider.compute_sizes import lookup_vm_size
from mlpipe_provider.config import CONFIG_DIR_NAME, CONFIG_FILE_NAME
from mlpipe_provider.designer.files import _SKIP_DIRS
from mlpipe_provider.sdk.workspace import Workspace

_MAX_SCRIPTS = 500


def workspace_for(folder: Path, root: Path) -> Workspace | None:
    for candidate in [folder, *folder.parents]:
        if (candidate / CONFIG_DIR_NAME / CONFIG_FILE_NAME).is_file():
            return Workspace(_workspace_dir=candidate / CONFIG_DIR_NAME)
        if candidate == root:
            break
    return None


def scripts(folder: Path) -> list[dict[str, str]]:
    """``*.py`` in the source folders next to a pipeline file (``src/prep.py`` ->
    ``source_directory='src'``, ``script_name='prep.py'``), as v1 programs lay them out."""
    found: list[dict[str, str]] = []
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name in _SKIP_DIRS:
            continue
        for base, dirs, files in os.walk(child):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
            for name in sorted(files):
                if name.endswith(".py") and not name.startswith((".", "_")):
                    script = (Path(base) / name).relative_to(child).as_posix()
                    found.append({"source_directory": child.name, "script_name": script})
                    if len(found) >= _MAX_SCRIPTS:
                        return found
    return found


def modules(ws: Workspace) -> list[dict[str, Any]]:
    """Registered modules with the ports and parameters of their default (else latest) version."""
    from mlpipe_provider.sdk.module import REGISTRY_DIR, Module

    result: list[dict[str, Any]] = []
    for module_file in sorted((ws.directory / REGISTRY_DIR).glob("*/module.json")):
        try:
            module = Module(ws, module_file.parent)
            version = module.resolve(None)
        except Exception:  # a broken registry entry is left out of the palette, not fatal
            continue
        result.append(
            {
                "module": module.name,
                "description": module.description,
                "version": version.version,
                "versions": [v.version for v in module.module_version_list()],
                "inputs": [
                    {"name": p.name, "data_types": list(p._data_types), "label": p._label}
                    for p in version.input_port_defs
                ],
                "outputs": [
                    {"name": p.name, "data_type": p._data_type, "label": p._label}
                    for p in version.output_port_defs
                ],
                "params": dict(version.params),
                "param_specs": param_specs(module.name, version),
            }
        )
    return result


def datasets(ws: Workspace) -> list[dict[str, Any]]:
    """Registered datasets (latest version): what a script step can consume by name."""
    from mlpipe_provider import dataset_registry

    found: list[dict[str, Any]] = []
    for name in dataset_registry.names(ws.directory):
        try:
            versions = dataset_registry.versions(ws.directory, name)
        except Exception:  # a broken registry entry is left out of the palette, not fatal
            continue
        if not versions:
            continue
        latest = versions[-1]
        found.append(
            {
                "name": name,
                "type": latest["definition"]["type"],
                "version": latest["version"],
                "versions": [v["version"] for v in versions],
                "description": latest.get("description"),
            }
        )
    return found


_TYPE_OF = {bool: "bool", int: "int", float: "float", str: "str"}


def param_specs(module_name: str, version: Any) -> dict[str, dict[str, Any]]:
    """Each parameter's form: ``{type, default}`` and, for a built-in module, its catalogue's
    label, allowed values, range and whether it is required, so the form offers only what the
    compiler will accept. A registered module's types come from its defaults (v1's interface
    had no more)."""
    from mlpipe_provider.builtin_modules import definition, is_builtin

    defaults = dict(version.params)
    category = getattr(version, "category", None)
    if is_builtin(module_name, category):
        catalogued = definition(module_name)["params"]
        return {
            name: {k: v for k, v in catalogued[name].items() if k != "check"}
            if name in catalogued
            else {"type": _TYPE_OF.get(type(default), "str"), "default": default}
            for name, default in defaults.items()
        }
    return {
        name: {"type": _TYPE_OF.get(type(default), "str"), "default": default}
        for name, default in defaults.items()
    }


def palette(folder: Path, root: Path) -> dict[str, Any]:
    ws = workspace_for(folder, root)
    data: dict[str, Any] = {
        "scripts": scripts(folder),
        "modules": [],
        "datastores": [],
        "datasets": [],
        "compute_targets": [],
        "workspace": None,
    }
    if ws is None:
        return data
    settings = ws.settings
    data["workspace"] = settings.workspace_name
    data["modules"] = modules(ws)
    data["datasets"] = datasets(ws)
    data["datastores"] = [
        {"name": name, "type": ds.datastore_type, "default": name == settings.default_datastore}
        for name, ds in sorted(settings.datastores.items())
    ]
    targets = []
    for name, target in sorted(settings.compute_targets.items()):
        size = lookup_vm_size(target.vm_size)
        gpus = size.gpus if size else 0
        targets.append(
            {
                "name": name,
                "vm_size": target.vm_size,
                "backend": target.backend,
                "gpus": gpus,
                # a GPU target is an Airflow pool of its GPUs (docs/gpu.md)
                "pool": name if gpus else None,
                "pool_slots": gpus * max(target.max_nodes, 1) if gpus else None,
            }
        )
    data["compute_targets"] = targets
    return data
