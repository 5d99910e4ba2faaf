"""Content digests of files and folders, with a stat cache so unchanged files are not read again.

A file's digest is BLAKE3 of its bytes (read through mmap: fast and page-aligned). A folder's
digest is BLAKE3 over its sorted (relative path, size, file digest) entries, so renaming, adding
or changing any file changes it, while timestamps never do. The stat cache remembers each file's
digest under (size, mtime_ns, inode, ctime_ns): if none of them changed, the bytes did not
either (the trade-off git and DVC make), so a no-change fingerprint costs one ``stat`` per file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import blake3

DIGEST_PREFIX = "blake3:"
RACY_WINDOW_NS = 2_000_000_000  # coarser than any filesystem's timestamp granularity
_MMAP_THRESHOLD = 1 << 20  # small files: one read() is cheaper than mapping
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
ALWAYS_IGNORED = frozenset({".git", "__pycache__", ".mlpipe", ".venv", ".ipynb_checkpoints"})
#: a source folder's top-level folders that hold what a run wrote, not source: v1 uploads a
#: script's ``./outputs`` and ``./logs`` as run artifacts, and since a step runs in its source
#: folder, counting them would make every run that writes there change its own fingerprint (its
#: result never recorded, the next run never reused)
RUN_ARTIFACT_FOLDERS = frozenset({"outputs", "logs"})


def hash_bytes(data: bytes) -> str:
    return DIGEST_PREFIX + blake3.blake3(data).hexdigest()


def hash_file_uncached(path: str | os.PathLike, size: int | None = None) -> str:
    size = os.stat(path).st_size if size is None else size
    if size >= _MMAP_THRESHOLD:
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(os.fspath(path))
        return DIGEST_PREFIX + hasher.hexdigest()
    # Small files: plain os.read into one buffer of the expected size (no buffered file object,
    # about 2.5 us less per file), then on to EOF in case the file grew since it was stat-ed.
    hasher = blake3.blake3()
    fd = os.open(path, _OPEN_FLAGS)
    try:
        want = size + 1
        while chunk := os.read(fd, want):
            hasher.update(chunk)
            want = _MMAP_THRESHOLD
    finally:
        os.close(fd)
    return DIGEST_PREFIX + hasher.hexdigest()


class StatKey(NamedTuple):
    """What must be unchanged for a cached digest to stand (a NamedTuple: cheap to build and compare)."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def stat_cache_path(workspace_dir: str | os.PathLike) -> Path:
    """Where a workspace keeps its stat cache (and, in its own table, the remote digest cache):
    one file per workspace, so every step, sensor and worker of it on this machine shares it."""
    return Path(workspace_dir) / "cache" / "stat-cache.sqlite"


def open_cache_db(db_path: str | os.PathLike, create_table: str) -> sqlite3.Connection:
    """The machine-wide cache DB (WAL: every process and thread shares it), with one table."""
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(os.fspath(db_path), timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(create_table)
    return db


class StatCache:
    """Path -> (stat key, digest), persisted in SQLite (WAL) so every process on a machine shares it."""

    def __init__(self, db_path: str | os.PathLike | None):
        self._memory: dict[str, tuple[StatKey, str]] = {}
        self._pending: dict[str, tuple[StatKey, str]] = {}
        self._lock = threading.Lock()
        self._preloaded: list[str] = []  # folders whose rows are all in _memory already
        self._db: sqlite3.Connection | None = None
        if db_path is not None:
            self._db = open_cache_db(
                db_path,
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                " inode INTEGER, ctime_ns INTEGER, digest TEXT)",
            )
        self.hits = 0
        self.misses = 0

    def preload(self, prefix: str) -> None:
        """Load every cached entry under a folder in one query (one round trip per tree)."""
        if self._db is None:
            return
        prefix = prefix.rstrip(os.sep) + os.sep
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, inode, ctime_ns, digest FROM files WHERE path >= ? AND path < ?",
            (prefix, prefix + "\U0010ffff"),
        )
        with self._lock:
            for path, size, mtime, inode, ctime, digest in rows:
                self._memory.setdefault(path, (StatKey(size, mtime, inode, ctime), digest))
            if prefix not in self._preloaded:
                self._preloaded.append(prefix)

    def _lookup(self, path: str) -> tuple[StatKey, str] | None:
        with self._lock:
            hit = self._memory.get(path)
        if hit is not None or self._db is None:
            return hit
        # A path under a preloaded folder that is not in memory has no row (or one written by
        # another process since, which only costs a re-hash): skip the per-file query.
        if any(path.startswith(prefix) for prefix in self._preloaded):
            return None
        row = self._db.execute(
            "SELECT size, mtime_ns, inode, ctime_ns, digest FROM files WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None
        entry = (StatKey(*row[:4]), row[4])
        with self._lock:
            self._memory[path] = entry
        return entry

    def digest(self, path: str, st: os.stat_result | None = None) -> str:
        st = st or os.stat(path)
        key = StatKey.of(st)
        cached = self._lookup(path)
        if cached is not None and cached[0] == key:
            self.hits += 1
            return cached[1]
        self.misses += 1
        digest = hash_file_uncached(path, key.size)
        if time.time_ns() - key.mtime_ns < RACY_WINDOW_NS:
            # "Racily clean" (git's term): a write within the same timestamp tick as this read
            # would leave size and mtime unchanged, so a digest this fresh is not remembered.
            return digest
        with self._lock:
            self._memory[path] = (key, digest)
            self._pending[path] = (key, digest)
        return digest

    def flush(self) -> None:
        if self._db is None:
            return
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (p, k.size, k.mtime_ns, k.inode, k.ctime_ns, d)
                        for p, (k, d) in pending.items()
                    ],
                )

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


class _Ignore:
    """``.amlignore`` if present, else ``.gitignore`` (v1's rule), plus folders never worth hashing."""

    def __init__(self, root: Path, use_ignore_files: bool):
        self.spec = None
        #: a step's source folder (the only caller that reads ignore files)
        self.source = use_ignore_files
        if use_ignore_files:
            import pathspec

            for name in (".amlignore", ".gitignore"):
                candidate = root / name
                if candidate.is_file():
                    lines = candidate.read_text(encoding="utf-8", errors="replace").splitlines()
                    self.spec = pathspec.GitIgnoreSpec.from_lines(lines)
                    break

    def skip(self, rel: str, is_dir: bool) -> bool:
        if self.source and is_dir and rel in RUN_ARTIFACT_FOLDERS:
            return True
        if self.spec is None:
            return False
        return self.spec.match_file(rel + "/" if is_dir else rel)


def iter_tree(root: Path, use_ignore_files: bool) -> Iterable[tuple[str, os.DirEntry]]:
    """Files under ``root`` as (posix relative path, DirEntry), skipping ignored ones.

    Symlinked folders are followed (what a step reads through them is part of its input), each
    real folder once, so a link cycle cannot loop.
    """
    ignore = _Ignore(root, use_ignore_files)
    stack = [(root, "")]
    seen = {os.path.realpath(root)}
    while stack:
        folder, rel_folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = f"{rel_folder}{entry.name}"
                if entry.is_dir():
                    if entry.name in ALWAYS_IGNORED or ignore.skip(rel, True):
                        continue
                    if entry.is_symlink():
                        real = os.path.realpath(entry.path)
                        if real in seen:
                            continue
                        seen.add(real)
                    stack.append((Path(entry.path), rel + "/"))
                elif entry.is_file() and not ignore.skip(rel, False):
                    yield rel, entry


@dataclass
class TreeDigest:
    digest: str
    files: dict[str, int]  # relative path -> size

    @property
    def total_size(self) -> int:
        return sum(self.files.values())


def digest_path(
    path: str | os.PathLike, cache: StatCache, *, use_ignore_files: bool = False
) -> TreeDigest:
    """Digest of a file or a folder tree (see the module docstring for the folder scheme)."""
    path = Path(path)
    st = os.stat(path)
    if not path.is_dir():
        return TreeDigest(cache.digest(os.fspath(path), st), {"": st.st_size})
    cache.preload(os.fspath(path))
    entries: list[tuple[str, int, str]] = []
    for rel, entry in iter_tree(path, use_ignore_files):
        fst = entry.stat()
        entries.append((rel, fst.st_size, cache.digest(entry.path, fst)))
    entries.sort()
    hasher = blake3.blake3()
    hasher.update(b"mlpipe-tree-1\0")
    for rel, size, digest in entries:
        hasher.update(f"{rel}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
    cache.flush()
    return TreeDigest(DIGEST_PREFIX + hasher.hexdigest(), {rel: size for rel, size, _ in entries})


def tree_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """The folder digest of ``digest_path`` over (relative path, size, file digest) entries, for
    callers whose files are not on this disk (``remote_digest``): same bytes, same digest."""
    hasher = blake3.blake3()
    hasher.update(b"mlpipe-tree-1\0")
    for rel, size, digest in sorted(entries):
        hasher.update(f"{rel}\0{size}\0{digest}\n".encode("utf-8", "surrogateescape"))
    return DIGEST_PREFIX + hasher.hexdigest()
