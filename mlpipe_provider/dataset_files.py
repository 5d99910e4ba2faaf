"""Which files a dataset path names, and where each appears in the folder a step sees.

A dataset path is a datastore-relative path, a file or a folder, or a glob over them: ``*`` and
``?`` match within one path segment, ``[abc]`` one character, ``**`` any number of segments.
``raw`` and ``raw/**`` name every file under ``raw``; ``raw/*.csv`` the CSV files directly in
it; ``raw/**/*.csv`` every CSV file below it. Globs match files, never folders.

The *base* of a path is its leading segments without glob characters (for a plain file, its
folder). A dataset of several paths is seen as one folder: each file under its path relative to
the longest common base of all the paths on its datastore (and below a folder named after the
datastore when the paths span several datastores). The runtime materialises that view for a step;
the reuse fingerprint hashes exactly the same (view path, bytes) pairs, so what is hashed is what
the step reads.

Standard library only: step scripts import this (through ``Run.input_datasets``) in images that
have none of mlpipe's other dependencies.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlpipe_provider.errors import UserErrorException

#: folders never part of a dataset (the same set ``hashing.iter_tree`` skips; a test checks)
IGNORED_FOLDERS = frozenset({".git", "__pycache__", ".mlpipe", ".venv", ".ipynb_checkpoints"})
#: top-level datastore folders a glob from the datastore root does not descend into: mlpipe's
#: step outputs and reuse store (name them explicitly to read them)
RESERVED_TOP_FOLDERS = frozenset({"azureml", "mlpipe-store"})
_GLOB_CHARS = re.compile(r"[*?\[]")


def has_glob(path: str) -> bool:
    return bool(_GLOB_CHARS.search(path))


def split_pattern(pattern: str) -> tuple[str, str | None]:
    """``(base, glob relative to base or None)`` for a normalised dataset path."""
    parts = [p for p in pattern.split("/") if p]
    for index, part in enumerate(parts):
        if has_glob(part):
            return "/".join(parts[:index]), "/".join(parts[index:])
    return "/".join(parts), None


def _segment_regex(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = segment[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def glob_regex(glob: str) -> re.Pattern[str]:
    """A regex matching file paths (relative to the base) that ``glob`` names."""
    segments = [s for s in glob.split("/") if s]
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".+" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def walk_files(root: Path, *, skip_reserved: bool = False) -> Iterable[tuple[str, str]]:
    """(posix path relative to ``root``, absolute path) of every file under ``root``.

    Symlinked folders are followed once each (like ``hashing.iter_tree``), so a cycle cannot loop.
    """
    stack = [(os.fspath(root), "")]
    seen = {os.path.realpath(root)}
    while stack:
        folder, rel_folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = f"{rel_folder}{entry.name}"
                if entry.is_dir():
                    if entry.name in IGNORED_FOLDERS:
                        continue
                    if skip_reserved and not rel_folder and entry.name in RESERVED_TOP_FOLDERS:
                        continue
                    if entry.is_symlink():
                        real = os.path.realpath(entry.path)
                        if real in seen:
                            continue
                        seen.add(real)
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file():
                    yield rel, entry.path


@dataclass(frozen=True)
class MatchedFile:
    datastore: str
    path: str  # relative to the datastore root
    local: str  # absolute path on this machine


def match_local(
    datastore: str, root: Path, pattern: str, *, what: str
) -> tuple[str, list[MatchedFile]]:
    """``(view base, files)``: the files of ``root`` (a local datastore root, or any folder) that
    ``pattern`` names, and the folder they are seen relative to (a plain file: its folder)."""
    base, glob = split_pattern(pattern)
    base_path = root / base if base else root
    if glob is None:
        if base_path.is_file():
            return posixpath.dirname(base), [MatchedFile(datastore, base, os.fspath(base_path))]
        if not base_path.is_dir():
            raise UserErrorException(f"{what}: {pattern!r} does not exist in {datastore!r}")
        glob = "**"
    if not base_path.is_dir():
        raise UserErrorException(
            f"{what}: {base or '/'!r} (the folder of {pattern!r}) does not exist in {datastore!r}"
        )
    regex = glob_regex(glob)
    found = []
    for rel, local in walk_files(base_path, skip_reserved=not base):
        if regex.match(rel):
            found.append(MatchedFile(datastore, f"{base}/{rel}" if base else rel, local))
    return base, found


def _common(paths: list[str]) -> str:
    split = [[p for p in path.split("/") if p] for path in paths]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    return "/".join(common)


def view(entries: list[tuple[str, str, list[MatchedFile]]]) -> dict[str, MatchedFile]:
    """``{view path: file}`` for ``[(datastore, base, files)]``, one entry per dataset path."""
    bases: dict[str, list[str]] = {}
    for datastore, base, _ in entries:
        bases.setdefault(datastore, []).append(base)
    common = {datastore: _common(found) for datastore, found in bases.items()}
    several = len(bases) > 1
    out: dict[str, MatchedFile] = {}
    for datastore, _, files in entries:
        prefix = common[datastore]
        for file in files:
            rel = file.path[len(prefix) :].lstrip("/") if prefix else file.path
            if several:
                rel = f"{datastore}/{rel}"
            out.setdefault(rel, file)
    return dict(sorted(out.items()))


def definition(dataset_type: str, paths: list[dict[str, str]], tabular: dict | None = None) -> dict:
    """What a dataset is, as plain JSON: the registry, DAG specs and step runtime share this form.

    ``paths`` are ``{"datastore": NAME, "path": PATH_OR_GLOB}`` (or, inside a running step only,
    ``{"local": FOLDER, "path": GLOB}``); ``tabular`` says how tabular files are read.
    """
    out: dict = {"type": dataset_type, "paths": [dict(p) for p in paths]}
    if tabular is not None:
        out["tabular"] = dict(tabular)
    return out
