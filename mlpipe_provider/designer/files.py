"""Where the designer may read and write: pipeline files under one folder, nothing else.

The folder is the workspace's pipelines folder (``$MLPIPE_DESIGNER_ROOT``, else Airflow's
``[mlpipe] designer_root``). A path from a request is checked name by name (no ``..``, no hidden
or odd names, ``.py`` files only) and must still be inside the folder once symlinks are resolved,
so a request cannot read or write anywhere else. Writes are atomic (temp file + rename), and
a save names the hash of the file it started from, so a change made on disk meanwhile is a
conflict instead of being overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from mlpipe_provider.config import atomic_write_text

ROOT_ENV = "MLPIPE_DESIGNER_ROOT"
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_SKIP_DIRS = {"__pycache__", "node_modules", "datastores", "data", "outputs", "logs"}
LAYOUT_SUFFIX = ".layout.json"


class PathRefused(ValueError):
    """A request named a path outside the pipelines folder, or an unacceptable name."""


class Conflict(RuntimeError):
    """The file changed on disk since the client opened it (or exists when it should not)."""


def designer_root() -> Path:
    configured = os.environ.get(ROOT_ENV)
    if not configured:
        try:
            from airflow.configuration import conf

            configured = conf.get("mlpipe", "designer_root", fallback=None)
        except Exception:  # outside Airflow: only the environment variable counts
            configured = None
    if not configured:
        raise PathRefused(
            f"no pipelines folder configured: set {ROOT_ENV} or [mlpipe] designer_root"
        )
    return Path(configured).resolve()


def pipeline_path(root: Path, relative: str) -> Path:
    """``relative`` (``a/b.py``) as a path inside ``root``; refuses anything else."""
    if not isinstance(relative, str) or not relative or "\\" in relative or "\x00" in relative:
        raise PathRefused(f"path {relative!r}: expected a relative path like 'folder/name.py'")
    parts = relative.split("/")
    for part in parts:
        if not _SEGMENT_RE.match(part) or part.startswith("."):
            raise PathRefused(
                f"path {relative!r}: {part!r} is not an allowed name (letters, digits, _ . -, "
                "not starting with a dot)"
            )
    if not parts[-1].endswith(".py") or parts[-1] == ".py":
        raise PathRefused(f"path {relative!r}: a pipeline file must end in .py")
    path = root.joinpath(*parts)
    resolved = path.resolve()
    if not resolved.is_relative_to(root) or resolved != path:
        raise PathRefused(f"path {relative!r}: leads outside the pipelines folder")
    return path


def layout_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(".py")] + LAYOUT_SUFFIX)


def file_hash(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def check_base(path: Path, base_hash: str | None) -> str | None:
    """The file's current text, after checking it is the version the client started from."""
    current = read_text(path)
    if current is None and base_hash is not None:
        raise Conflict(f"{path.name} was deleted since it was opened")
    if current is not None and file_hash(current) != base_hash:
        if base_hash is None:
            raise Conflict(f"{path.name} already exists; open it, or save under another name")
        raise Conflict(f"{path.name} changed on disk since it was opened; open it again")
    return current


def write_file(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def read_layout(path: Path) -> dict[str, Any]:
    text = read_text(layout_path(path))
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write_layout(path: Path, layout: dict[str, Any]) -> None:
    """Node positions by step id (``{"nodes": {"prep": {"x": 0, "y": 0}}}``), sorted keys."""
    text = json.dumps(layout, indent=2, sort_keys=True) + "\n"
    if read_text(layout_path(path)) != text:
        atomic_write_text(layout_path(path), text)


def pipeline_files(root: Path) -> list[str]:
    """Candidate pipeline files (``*.py`` that mention ``Pipeline(``), relative to ``root``."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS and d != "src"
        )
        for name in sorted(files):
            if not name.endswith(".py") or name.startswith("."):
                continue
            path = Path(folder) / name
            try:
                if "Pipeline(" not in path.read_text(encoding="utf-8", errors="replace"):
                    continue
            except OSError:
                continue
            found.append(path.relative_to(root).as_posix())
    return found
