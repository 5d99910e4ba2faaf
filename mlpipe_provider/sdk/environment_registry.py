"""Registered environments: ``env.register(ws)`` and ``Environment.get(ws, name, version)``.

v1 kept them in the workspace service; here they are records (``records.EnvironmentRecord``) in
the workspace folder, ``<workspace>/environments/<name>/<version>.json``, each version created
once (``records.create_record``: two registrations racing for one number get two versions) and
never changed, so a pipeline that names a version always gets the same definition.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import EnvironmentRecord, create_record, read_record

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def _folder(workspace: Any) -> Path:
    return Path(workspace._dir) / "environments"


def _versions(workspace: Any, name: str) -> list[int]:
    folder = _folder(workspace) / name
    if not _NAME_RE.match(name) or not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def list_names(workspace: Any) -> list[str]:
    root = _folder(workspace)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _versions(workspace, p.name))


def record_of(env: Any) -> dict[str, Any]:
    """An environment as plain JSON (what ``register`` stores)."""
    return {
        "name": env.name,
        "conda": env.python.conda_dependencies._conda_dependencies,
        "user_managed_dependencies": bool(env.python.user_managed_dependencies),
        "docker": {"enabled": bool(env.docker.enabled), "base_image": env.docker.base_image},
        "environment_variables": dict(env.environment_variables),
    }


def from_record(record: dict[str, Any]) -> Any:
    from mlpipe_provider.sdk.environment import CondaDependencies, Environment

    env = Environment(record["name"])
    env.python.conda_dependencies = CondaDependencies(_underlying_structure=record["conda"])
    env.python.user_managed_dependencies = record["user_managed_dependencies"]
    env.docker.enabled = record["docker"]["enabled"]
    env.docker.base_image = record["docker"]["base_image"]
    env.environment_variables = dict(record["environment_variables"])
    return env


def save(workspace: Any, env: Any) -> Any:
    if not _NAME_RE.match(env.name):
        raise UserErrorException(
            f"environment name {env.name!r}: use letters, digits, '.', '_' and '-' only"
        )
    record = record_of(env)
    while True:
        existing = _versions(workspace, env.name)
        if existing:
            latest = _read(workspace, env.name, existing[-1])
            if {k: v for k, v in latest.items() if k != "version"} == record:
                env.version = str(existing[-1])  # v1: an unchanged definition keeps its version
                return env
        version = (existing[-1] + 1) if existing else 1
        path = _folder(workspace) / env.name / f"{version}.json"
        if create_record(path, EnvironmentRecord, {**record, "version": version}):
            env.version = str(version)
            return env
        # another process registered this version first: look again


def _read(workspace: Any, name: str, version: int) -> dict[str, Any]:
    return read_record(_folder(workspace) / name / f"{version}.json", EnvironmentRecord)


def load(workspace: Any, name: str, version: str | None = None) -> Any:
    versions = _versions(workspace, name)
    if not versions:
        return None
    wanted = int(version) if version and str(version).isdigit() else versions[-1]
    if wanted not in versions:
        raise UserErrorException(
            f"environment {name!r} has no version {version!r} (versions: {versions})"
        )
    record = _read(workspace, name, wanted)
    env = from_record(record)
    env.version = str(wanted)
    return env
