"""Publish the built-in module library into a workspace as ordinary Modules/ModuleVersions.

Once installed, the built-ins are found wherever registered modules are (``Module.get``, the
designer's palette) and a ``ModuleStep`` runs one like any module: from its snapshot,
fingerprinted and reused. Installing is idempotent: the version is the mlpipe release plus a
digest of the scripts folder, so installing again publishes nothing, and a release whose scripts
changed adds a new version (made the default) without touching what earlier pipelines compiled
against.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from mlpipe_provider import builtin_modules
from mlpipe_provider.sdk.module import InputPortDef, Module, ModuleVersion, OutputPortDef


def builtin_modules_version() -> str:
    """``<mlpipe version>+<first 8 hex of the scripts' content digest>``."""
    from mlpipe_provider.hashing import StatCache, digest_path

    try:
        release = metadata.version("mlpipe")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        release = "0"
    digest = digest_path(builtin_modules.SCRIPTS_DIR, StatCache(None), use_ignore_files=True)
    return f"{release}+{digest.digest.split(':', 1)[-1][:8]}"


def install_builtin_modules(workspace: Any, names: list[str] | None = None) -> list[ModuleVersion]:
    """Publish every built-in module (or those in ``names``) into ``workspace``'s registry.

    Returns the installed versions in catalogue order; each becomes its module's default version.
    """
    known = builtin_modules.names()
    wanted = known if names is None else list(names)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        from mlpipe_provider.errors import UserErrorException

        raise UserErrorException(
            f"no built-in module {', '.join(repr(n) for n in unknown)} "
            f"(built-ins: {', '.join(repr(n) for n in known)})"
        )
    version = builtin_modules_version()
    datastore = workspace.get_default_datastore().name
    category = builtin_modules.catalogue().CATEGORY
    installed = []
    for name in wanted:
        definition = builtin_modules.definition(name)
        inputs = [
            InputPortDef(
                name=port["name"],
                data_types=port["data_types"],
                default_datastore_mode="mount",
                is_optional=port["is_optional"],
                label=port["label"],
            )
            for port in definition["inputs"]
        ]
        outputs = [
            OutputPortDef(
                name=port["name"],
                default_datastore_name=datastore,
                is_directory=True,
                data_type=port["data_type"],
                label=port["label"],
            )
            for port in definition["outputs"]
        ]
        arguments: list[Any] = []
        for port in [*inputs, *outputs]:
            arguments += [f"--{port.name}", port]
        module = Module.create(workspace, name=name, description=definition["description"])
        with tempfile.TemporaryDirectory(prefix="mlpipe-builtin-") as source:
            _stage([definition["script"], *definition.get("helpers", [])], Path(source))
            installed.append(
                module.publish_python_script(
                    definition["script"],
                    definition["description"],
                    inputs=inputs,
                    outputs=outputs,
                    params={key: spec["default"] for key, spec in definition["params"].items()},
                    version=version,
                    is_default=True,
                    source_directory=source,
                    category=category,
                    arguments=arguments,
                )
            )
    return installed


def _stage(files: list[str], folder: Path) -> None:
    """The module's own source folder: its script, the helpers it names and the shared ones,
    nothing else, so its snapshot (and every step's fingerprint) changes only when code it runs
    changes: a release that edits one script leaves the other built-ins' steps reusable."""
    for name in (*files, *builtin_modules.SHARED_FILES):
        shutil.copyfile(builtin_modules.SCRIPTS_DIR / name, folder / name)
