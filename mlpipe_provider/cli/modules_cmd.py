"""``mlpipe modules``: the workspace's module registry from the command line.

``install-builtins`` publishes the built-in module library (idempotent), so the designer's
palette and ``Module.get`` find the built-ins; ``ls`` shows what is registered.
"""

from __future__ import annotations

from mlpipe_provider.sdk import Workspace
from mlpipe_provider.sdk.builtin_modules import install_builtin_modules
from mlpipe_provider.sdk.module import REGISTRY_DIR, Module


def install_builtins(path: str | None, names: list[str] | None) -> int:
    ws = Workspace.from_config(path=path)
    for version in install_builtin_modules(ws, names=names or None):
        print(f"{version.module_name}: version {version.version} ({version.module_version_id})")
    return 0


def list_modules(path: str | None) -> int:
    ws = Workspace.from_config(path=path)
    print("| module | default version | versions | category |")
    print("|---|---|---|---|")
    for module_file in sorted((ws._dir / REGISTRY_DIR).glob("*/module.json")):
        module = Module(ws, module_file.parent)
        default = module.get_default()
        versions = ", ".join(v.version for v in module.module_version_list())
        category = (default.category if default is not None else None) or "-"
        print(f"| {module.name} | {module.default_version or '-'} | {versions} | {category} |")
    return 0
