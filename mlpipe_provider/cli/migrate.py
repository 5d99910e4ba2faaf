"""``mlpipe migrate``: rewrite Azure ML v1 imports to ``mlpipe_provider.sdk``, and nothing else.

Migrating is meant to be a diff a reviewer can read line by line, so imports are found with
``ast`` (never a regex over the file, never by running the code) and the source text is edited
only inside the spans ast reports: comments, quoting, blank lines and line endings elsewhere
stay byte-identical. A name mlpipe does not provide is left on its ``azureml`` import and
reported, so the program fails loudly at that import instead of somewhere later. Methods and
attributes the program uses on SDK objects that mlpipe lacks are reported too
(``migrate_members``), so a program is not found wanting halfway through a run.
"""

from __future__ import annotations

import ast
import difflib
import io
import os
import sys
import tempfile
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from mlpipe_provider import sdk
from mlpipe_provider.cli.migrate_members import missing_members
from mlpipe_provider.sdk.unsupported import UNSUPPORTED_NAMES

TARGET = sdk.__name__
SKIP_DIRS = frozenset({".venv", ".git", "__pycache__", "node_modules", ".mlpipe"})
LINE_LIMIT = 100

# v1's modules that programs import *as modules* (``from azureml import core``, ``from
# azureml.core import runconfig``): each becomes the flat namespace under the same local name, so
# ``core.Workspace`` and ``runconfig.DEFAULT_CPU_IMAGE`` keep working. Only real v1 module paths
# are listed, so a v1 function or constant of the same spelling is never mistaken for one.
_V1_PACKAGES = {
    "azureml": ["core", "data", "exceptions", "pipeline", "train", "widgets"],
    "azureml.core": [
        "authentication",
        "compute",
        "compute_target",
        "conda_dependencies",
        "container_registry",
        "databricks",
        "dataset",
        "datastore",
        "environment",
        "experiment",
        "keyvault",
        "model",
        "run",
        "runconfig",
        "script_run_config",
        "workspace",
    ],
    "azureml.data": [
        "azure_data_lake_datastore",
        "azure_storage_datastore",
        "data_reference",
        "datapath",
        "dataset_consumption_config",
        "dataset_factory",
        "file_dataset",
        "output_dataset_config",
        "sql_data_reference",
        "tabular_dataset",
    ],
    "azureml.pipeline": ["core", "steps"],
    "azureml.pipeline.core": [
        "graph",
        "module",
        "pipeline",
        "pipeline_draft",
        "pipeline_endpoint",
        "run",
        "schedule",
    ],
    "azureml.train": ["dnn", "estimator", "hyperdrive", "sklearn"],
    "azureml.train.hyperdrive": ["parameter_expressions", "policy", "runconfig", "sampling"],
}
V1_MODULES = frozenset(
    f"{package}.{name}" for package, names in _V1_PACKAGES.items() for name in names
)


@dataclass(frozen=True)
class Finding:
    """One imported or referenced v1 name worth telling the user about."""

    name: str
    line: int
    mapped: bool  # False: "cannot map"; True: maps to a name that raises NotSupportedError
    member: bool = False  # True: ``Class.member`` that mlpipe's class lacks (``mapped`` unused)


@dataclass
class FileResult:
    path: Path
    before: str = ""
    after: str = ""
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    encoding: str = "utf-8"

    @property
    def changed(self) -> bool:
        return self.error is None and self.before != self.after


class _Source:
    """Source text plus the offset arithmetic ast positions need (they count UTF-8 bytes)."""

    def __init__(self, text: str) -> None:
        self.text = text
        # Same line breaks as Python's tokenizer (\n, \r\n, \r); str.splitlines would also split
        # on form feeds and other characters that Python does not treat as line ends.
        self.lines = io.StringIO(text, newline="").readlines()
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col_bytes: int) -> int:
        line = self.lines[lineno - 1] if lineno <= len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col_bytes].decode("utf-8"))

    def span(self, node: ast.stmt | ast.expr | ast.alias) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)
        end_line, end_col = node.end_lineno or node.lineno, node.end_col_offset or node.col_offset
        return start, self.offset(end_line, end_col)

    def indent_of(self, node: ast.stmt) -> str | None:
        """The statement's indentation, or None when something precedes it on its line."""
        line = self.lines[node.lineno - 1]
        prefix = line.encode("utf-8")[: node.col_offset].decode("utf-8")
        return prefix if not prefix.strip() else None


def _tokens(segment: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(segment).readline))


def _segment_offset(segment: str, row: int, col: int) -> int:
    lines = io.StringIO(segment, newline="").readlines()
    return sum(len(line) for line in lines[: row - 1]) + col


def _module_span(source: _Source, node: ast.ImportFrom) -> tuple[int, int]:
    """Where ``azureml.x.y`` sits between ``from`` and ``import``, tolerating odd spacing."""
    start, end = source.span(node)
    segment = source.text[start:end]
    names = []
    for tok in _tokens(segment)[1:]:
        if tok.type == tokenize.NAME and tok.string == "import":
            break
        if tok.type in (tokenize.NAME, tokenize.OP):
            names.append(tok)
    first = _segment_offset(segment, *names[0].start)
    last = _segment_offset(segment, *names[-1].end)
    return start + first, start + last


def _dotted_span(source: _Source, alias: ast.alias) -> tuple[int, int]:
    """Where the dotted module name of ``import a.b [as c]`` sits (without ``as c``)."""
    start, end = source.span(alias)
    segment = source.text[start:end]
    last = None
    for tok in _tokens(segment):
        if tok.type == tokenize.NAME and tok.string == "as":
            break
        if tok.type in (tokenize.NAME, tokenize.OP):
            last = tok
    assert last is not None
    return start, start + _segment_offset(segment, *last.end)


def _comments(source: _Source, node: ast.stmt) -> list[str]:
    start, end = source.span(node)
    return [tok.string for tok in _tokens(source.text[start:end]) if tok.type == tokenize.COMMENT]


#: v1 packages besides ``azureml``: ``azureml_user`` is what a ParallelRunStep's entry script
#: imports ``EntryScript`` from on Azure's compute
_V1_ROOTS = ("azureml", "azureml_user")


def _is_azureml(module: str | None) -> bool:
    return module is not None and any(
        module == root or module.startswith(f"{root}.") for root in _V1_ROOTS
    )


def _alias_text(alias: ast.alias) -> str:
    return f"{alias.name} as {alias.asname}" if alias.asname else alias.name


def _from_import(module: str, aliases: list[ast.alias], indent: str) -> str:
    """One ``from`` import, parenthesised one name a line when it would not fit on a line."""
    names = [_alias_text(a) for a in aliases]
    one_line = f"from {module} import {', '.join(names)}"
    if len(indent) + len(one_line) <= LINE_LIMIT:
        return one_line
    body = "".join(f"{indent}    {name},\n" for name in names)
    return f"from {module} import (\n{body}{indent})"


class _Dotted(NamedTuple):
    """A plain dotted name ``a.b.c`` in use: its parts, and the node spelling each prefix."""

    parts: list[str]
    nodes: list[ast.expr]  # [Name a, Attribute a.b, Attribute a.b.c]


def _dotted(node: ast.Attribute) -> _Dotted | None:
    parts: list[str] = []
    nodes: list[ast.expr] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        nodes.append(current)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    parts.append(current.id)
    nodes.append(current)
    return _Dotted(parts[::-1], nodes[::-1])


class _Migrator:
    """Collects text edits for one parsed file; ``apply`` returns the rewritten source."""

    def __init__(self, source: _Source, tree: ast.Module, provided: set[str]) -> None:
        self.source = source
        self.tree = tree
        self.provided = provided
        self.edits: list[tuple[int, int, str]] = []
        self.findings: list[Finding] = []

    def note(self, name: str, line: int) -> bool:
        """Record a name's fate; True when it maps."""
        if name not in self.provided:
            self.findings.append(Finding(name, line, mapped=False))
            return False
        if name in UNSUPPORTED_NAMES:
            self.findings.append(Finding(name, line, mapped=True))
        return True

    def run(self) -> str:
        maximal = self._maximal_attributes()
        bare: list[tuple[ast.Import, ast.alias]] = []
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_azureml(node.module):
                self._import_from(node, maximal)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if not _is_azureml(alias.name):
                        continue
                    if alias.asname:
                        self._import_as(alias, maximal)
                    else:
                        bare.append((node, alias))
        if bare:
            self._bare_imports(bare, maximal)
        return self.apply()

    def apply(self) -> str:
        text = self.source.text
        for start, end, replacement in sorted(self.edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text

    def _maximal_attributes(self) -> list[_Dotted]:
        """Every dotted name used in the file, longest form only (``a.b.c``, not also ``a.b``)."""
        inner = {id(n.value) for n in ast.walk(self.tree) if isinstance(n, ast.Attribute)}
        found = (
            _dotted(node)
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Attribute) and id(node) not in inner
        )
        return [dotted for dotted in found if dotted is not None]

    def _import_from(self, node: ast.ImportFrom, uses: list[_Dotted]) -> None:
        if any(alias.name == "*" for alias in node.names):
            self.edits.append((*_module_span(self.source, node), TARGET))
            return
        assert node.module is not None
        modules = [
            a
            for a in node.names
            if f"{node.module}.{a.name}" in V1_MODULES
            and self._alias_moves(a.asname or a.name, uses)
        ]
        mapped = [a for a in node.names if a.name in self.provided and a not in modules]
        kept = [a for a in node.names if a not in mapped and a not in modules]
        indent = self.source.indent_of(node)
        comments = _comments(self.source, node)
        if (mapped or modules) and kept and indent is None and comments:
            # Splitting would need a line break after a comment inside an import that shares
            # its line with other code; leaving it whole loses nothing, so report every name.
            self.findings.extend(Finding(a.name, a.lineno, mapped=False) for a in node.names)
            return
        for alias in node.names:
            if alias not in modules and f"{node.module}.{alias.name}" not in V1_MODULES:
                self.note(alias.name, alias.lineno)
        if not mapped and not modules:
            return
        if not kept and not modules:
            # Only the module name changes, so parentheses, comments and layout all survive.
            self.edits.append((*_module_span(self.source, node), TARGET))
            return
        statements = []
        if mapped:
            statements.append(_from_import(TARGET, mapped, indent or ""))
        if modules:
            # ``from azureml import core`` binds a module: the flat namespace stands in for it.
            package, _, leaf = TARGET.rpartition(".")
            as_sdk = [ast.alias(name=leaf, asname=a.asname or a.name) for a in modules]
            statements.append(_from_import(package, as_sdk, indent or ""))
        if kept:
            statements.append(_from_import(node.module, kept, indent or ""))
        joiner = f"\n{indent}" if indent is not None else "; "
        parts = [f"{c}\n{indent}" for c in comments]
        parts.append(joiner.join(statements))
        self.edits.append((*self.source.span(node), "".join(parts)))

    def _alias_moves(self, local: str, uses: list[_Dotted]) -> bool:
        """Whether a module bound to ``local`` should become the flat namespace: yes unless
        every ``local.X`` the file uses is unmappable (then the program should fail at the
        import, as it would anyway). Each use is reported either way."""
        mine = [use for use in uses if use.parts[0] == local]
        fates = [self.note(use.parts[1], use.nodes[1].lineno) for use in mine]
        return not mine or any(fates)

    def _import_as(self, alias: ast.alias, uses: list[_Dotted]) -> None:
        """``import azureml.core as aml``: rewritten unless every ``aml.X`` used is unmappable."""
        assert alias.asname is not None
        if self._alias_moves(alias.asname, uses):
            self.edits.append((*_dotted_span(self.source, alias), TARGET))

    def _bare_imports(
        self, imports: list[tuple[ast.Import, ast.alias]], uses: list[_Dotted]
    ) -> None:
        """``import azureml.core`` binds ``azureml``: the file's ``azureml.<path>.X`` uses move to
        ``mlpipe_provider.sdk.X``; the import stays too while any use cannot move."""
        any_mapped = any_kept = False
        for parts, nodes in uses:
            if parts[0] != "azureml":
                continue
            hit = next((i for i, part in enumerate(parts) if i and part in self.provided), None)
            start, end = self.source.span(nodes[hit or 0])
            spelled = "".join(self.source.text[start:end].split())
            if hit is None or spelled != ".".join(parts[: hit + 1]):
                # No provided name on the path, or the name is spelled across a comment.
                self.note(".".join(parts), nodes[-1].lineno)
                any_kept = True
                continue
            self.note(parts[hit], nodes[hit].lineno)
            any_mapped = True
            self.edits.append((start, end, f"{TARGET}.{parts[hit]}"))
        if any_kept and not any_mapped:
            return
        for index, (_node, alias) in enumerate(imports):
            start, end = _dotted_span(self.source, alias)
            if not any_kept:
                self.edits.append((start, end, TARGET))
            elif index == 0:
                self.edits.append((start, start, f"{TARGET}, "))


def migrate_source(text: str, provided: set[str] | None = None) -> tuple[str, list[Finding]]:
    """Rewrite one file's source; raises SyntaxError for a file Python cannot parse."""
    tree = ast.parse(text)
    migrator = _Migrator(
        _Source(text), tree, provided if provided is not None else set(sdk.__all__)
    )
    after = migrator.run()
    if after != text:
        ast.parse(after)  # never hand back something that no longer parses
    members = missing_members(tree, migrator.provided)
    migrator.findings.extend(Finding(m.name, m.line, mapped=False, member=True) for m in members)
    findings = sorted(migrator.findings, key=lambda f: (f.line, f.name))
    return after, findings


def _python_files(paths: list[Path]) -> Iterator[Path]:
    """Named files as given; folders walked for ``*.py``, skipping tool folders and any
    virtualenv (it may hold the real ``azureml`` package, which must not be rewritten)."""
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if d not in SKIP_DIRS and not (Path(root, d) / "pyvenv.cfg").exists()
                )
                found.extend(Path(root, f) for f in sorted(files) if f.endswith(".py"))
        else:
            found = [path]
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file


def _migrate_file(path: Path) -> FileResult:
    result = FileResult(path)
    try:
        raw = path.read_bytes()
        result.encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        result.before = raw.decode(result.encoding)
        result.after, result.findings = migrate_source(result.before)
    except SyntaxError as exc:
        result.error = f"syntax error on line {exc.lineno}: {exc.msg}"
    except (OSError, UnicodeDecodeError, LookupError) as exc:
        result.error = f"cannot read: {exc}"
    return result


def _write_atomic(path: Path, text: str, encoding: str) -> None:
    """Temp file in the same folder, then ``os.replace``: a crash never leaves half a file."""
    target = path.resolve()  # a symlinked file keeps its link; the file it points to changes
    mode = target.stat().st_mode
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode(encoding))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _print_diff(path: Path, result: FileResult) -> None:
    diff = difflib.unified_diff(
        io.StringIO(result.before, newline="").readlines(),
        io.StringIO(result.after, newline="").readlines(),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    for line in diff:
        sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")


def migrate_paths(paths: list[Path], dry_run: bool = False) -> int:
    """Migrate every Python file under ``paths``; 0 when everything mapped and no method or
    attribute is missing, else 1.

    Files are rewritten for the names that map even when others do not, so the report is the
    to-do list. Unreadable files and files with syntax errors are skipped and also give 1.
    """
    skipped = 0
    changed = 0
    cannot: list[str] = []
    unsupported: list[str] = []
    missing: list[str] = []
    for path in paths:
        if not path.exists():
            print(f"skipped {path}: no such file or folder", file=sys.stderr)
            skipped += 1
    for path in _python_files([p for p in paths if p.exists()]):
        result = _migrate_file(path)
        if result.error:
            print(f"skipped {path}: {result.error}", file=sys.stderr)
            skipped += 1
            continue
        for finding in result.findings:
            where = f"{finding.name} ({path}:{finding.line})"
            if finding.member:
                missing.append(where)
            else:
                (unsupported if finding.mapped else cannot).append(where)
        if not result.changed:
            continue
        changed += 1
        if dry_run:
            _print_diff(path, result)
            print(f"would migrate {path}")
        else:
            _write_atomic(path, result.after, result.encoding)
            print(f"migrated {path}")
    for where in unsupported:
        print(f"maps, but not supported yet: {where}")
    for where in cannot:
        print(f"cannot map: {where}")
    for where in missing:
        print(f"missing in mlpipe: {where}")
    verb = "would change" if dry_run else "changed"
    print(
        f"{changed} file(s) {verb}; {len(cannot)} name(s) cannot be mapped; "
        f"{len(missing)} method(s)/attribute(s)/keyword(s) missing; {skipped} skipped"
    )
    return 1 if cannot or missing or skipped else 0
