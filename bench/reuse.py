"""Benchmark: what reuse costs, for content hashing and for a fully reused pipeline run.

Run from the repository root:

    .venv/bin/python bench/reuse.py

Part 1, hashing (``mlpipe_provider.hashing``). The data is generated in a temporary folder: one
1 GiB file and a tree of 10,000 files of 10 KiB (100 folders of 100). For each of the two it
times, in the same run and interleaved, so a noisy machine hits everything alike:

* a raw read of all the bytes with no hashing, the baseline. It uses the same I/O path as the
  hashing (``mmap`` of files of 1 MiB or more, copied out in 1 MiB pieces; ``read`` of smaller
  ones) into a page-aligned buffer, and separately a plain ``readinto`` of a page-aligned buffer
  (the page-cache ``memcpy`` ceiling),
* the first fingerprint: ``digest_path`` with a fresh, empty ``StatCache`` database (cold),
* the no-change fingerprint: a new ``StatCache`` object on the same database (as a new process
  would see it), nothing changed,
* the fingerprint after ``touch`` of one file (new mtime and ctime, same bytes: the digest must
  not change; the touched file is read again),
* the fingerprint after a one-byte change of one file (same size: the digest must change).

Every timing includes opening and closing the ``StatCache`` (its SQLite database). The data is
in the page cache: it was just written, and each repetition starts with an untimed read of it,
because this kind of VM gives idle page-cache pages back to the host within minutes. Residency is
measured with ``mincore`` before and after that read and printed; dropping the page cache needs
root, so there is no cold-disk figure. If ``dvc`` is available (``--dvc PATH``,
``$MLPIPE_BENCH_DVC``, or ``dvc`` on PATH), the same data is put in a throwaway git+dvc repository,
``dvc add``-ed, and ``dvc status`` with no change is timed per target, both as the CLI and as
``Repo.status()`` in a warm process, for comparison with our no-change figure.

Part 2, pipeline. A 10-step chain pipeline (``PythonScriptStep`` + ``PipelineData`` handoffs) is
compiled, loaded with ``DagBag`` and run once with ``dag.test()`` to fill the output store; then
fully reused runs are timed against plain DAGs of trivial ``PythonOperator`` tasks (10 chained,
and 20 chained, the task count of the earlier two-task-per-step design; today the pipeline is 11
tasks: the plan task, which skips all 10 steps, and the steps), all
with ``dag.test()`` in this process on one SQLite ``AIRFLOW_HOME``. Each DAG is run once to warm
up, then the runs are interleaved. Afterwards as many more reused runs are made with timers
around the mlpipe code inside the tasks, to show where the time goes.

Figures are medians of the repetitions. Everything is removed at the end unless ``--keep``;
``--dir DIR`` works in DIR instead (kept, and the data in it is reused by the next run).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import importlib
import json
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import blake3  # noqa: E402

from mlpipe_provider.contract.constants import PLAN_TASK_ID  # noqa: E402
from mlpipe_provider.hashing import _MMAP_THRESHOLD, StatCache, digest_path  # noqa: E402

GIB = 1 << 30
BIG_SIZE = GIB
TREE_DIRS, TREE_FILES_PER_DIR, TREE_FILE_SIZE = 100, 100, 10 * 1024
CHUNK = 1 << 20
PIPELINE_STEPS = 10

TARGET_NO_CHANGE_S = 0.2
TARGET_HASH_GBPS = 2.0
TARGET_REUSED_RATIO = 1.2


# --- data ---------------------------------------------------------------------------------


def _fill(path: Path, size: int, seed: bytes) -> None:
    """Write ``size`` pseudo-random bytes (BLAKE3 XOF of ``seed``, fast and reproducible)."""
    xof = blake3.blake3(seed)
    with open(path, "wb") as handle:
        for offset in range(0, size, 64 << 20):
            handle.write(xof.digest(length=min(64 << 20, size - offset), seek=offset))


def make_data(data: Path) -> tuple[Path, Path, bool]:
    """The 1 GiB file and the 10,000-file tree under ``data``; reuses them if already complete."""
    big, tree = data / "big.bin", data / "tree"
    reused = big.is_file() and big.stat().st_size == BIG_SIZE and tree_complete(tree)
    if not reused:
        data.mkdir(parents=True, exist_ok=True)
        _fill(big, BIG_SIZE, b"mlpipe-bench-big")
        shutil.rmtree(tree, ignore_errors=True)
        for d in range(TREE_DIRS):
            folder = tree / f"d{d:03d}"
            folder.mkdir(parents=True)
            for f in range(TREE_FILES_PER_DIR):
                _fill(folder / f"f{f:03d}.bin", TREE_FILE_SIZE, f"mlpipe-bench-{d}-{f}".encode())
        # a minute old, like a user's data: a file written within the stat cache's racy window
        # (2 s) is re-hashed on every look, so fresh data would make "no change" cost a cold hash
        past = time.time_ns() - 60 * 1_000_000_000
        for path in [str(big), *list_files(tree)]:
            os.utime(path, ns=(past, past))
    return big, tree, reused


def tree_complete(tree: Path) -> bool:
    if not tree.is_dir():
        return False
    files = list_files(tree)
    return len(files) == TREE_DIRS * TREE_FILES_PER_DIR and all(
        os.path.getsize(p) == TREE_FILE_SIZE for p in files
    )


def list_files(path: Path) -> list[str]:
    if path.is_file():
        return [str(path)]
    out = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        out += [os.path.join(folder, name) for name in sorted(files)]
    return out


# --- page cache residency (mincore) -------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_fraction(files: list[str]) -> float | None:
    """Share of the files' pages that are in the page cache right now (None if unknown)."""
    page = mmap.PAGESIZE
    total = resident = 0
    try:
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    continue
                addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
                if addr in (None, ctypes.c_void_p(-1).value):
                    return None
                try:
                    pages = (size + page - 1) // page
                    vec = (ctypes.c_ubyte * pages)()
                    if _libc.mincore(addr, size, vec) != 0:
                        return None
                    total += pages
                    resident += pages - bytes(vec).count(0)
                finally:
                    _libc.munmap(addr, size)
            finally:
                os.close(fd)
    except (OSError, AttributeError):
        return None
    return resident / total if total else None


# --- part 1: hashing ----------------------------------------------------------------------


def raw_read_same_path(files: list[str], buf: mmap.mmap) -> int:
    """All bytes, the way ``hash_file_uncached`` gets them (mmap if >= 1 MiB, else read), unhashed."""
    out = memoryview(buf)
    total = 0
    try:
        for path in files:
            with open(path, "rb", buffering=0) as handle:
                size = os.fstat(handle.fileno()).st_size
                if size >= _MMAP_THRESHOLD:
                    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                        view = memoryview(mapped)
                        for offset in range(0, size, CHUNK):
                            piece = view[offset : offset + CHUNK]
                            out[: len(piece)] = piece
                            piece.release()
                        view.release()
                    total += size
                else:
                    while n := handle.readinto(buf):
                        total += n
    finally:
        out.release()
    return total


def raw_readinto(files: list[str], buf: mmap.mmap) -> int:
    """All bytes with ``readinto`` of a page-aligned buffer: the page-cache copy ceiling."""
    total = 0
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while n := handle.readinto(buf):
                total += n
    return total


def fresh_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{db}{suffix}")


def fingerprint(path: Path, db: Path) -> tuple[float, str, int]:
    """Seconds for a new StatCache on ``db`` + ``digest_path`` + close; the digest; files hashed."""
    start = time.perf_counter()
    cache = StatCache(db)
    digest = digest_path(path, cache).digest
    cache.close()
    return time.perf_counter() - start, digest, cache.misses


def flip_byte(path: str) -> None:
    """Change one byte in the middle of the file in place (same size, new mtime)."""
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        value = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([value[0] ^ 0xFF]))


@dataclass
class HashRow:
    name: str
    path: Path
    files: list[str]
    size: int = 0
    raw: list[float] = field(default_factory=list)
    readinto: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    no_change: list[float] = field(default_factory=list)
    touch: list[float] = field(default_factory=list)
    byte: list[float] = field(default_factory=list)
    rehashed: dict[str, int] = field(default_factory=dict)
    resident: list[float] = field(default_factory=list)
    resident_warm: list[float] = field(default_factory=list)
    dvc_add_s: float | None = None
    dvc_cli: list[float] = field(default_factory=list)
    dvc_api: list[float] = field(default_factory=list)


def span(fractions: list[float]) -> str:
    if not fractions:
        return "unknown"
    low, high = 100 * min(fractions), 100 * max(fractions)
    return f"{low:.0f}%" if round(low) == round(high) else f"{low:.0f}-{high:.0f}%"


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure_hashing(row: HashRow, work: Path, buf: mmap.mmap) -> None:
    """One repetition of every hashing measurement for one data set."""
    files = row.files
    frac = resident_fraction(files)
    if frac is not None:
        row.resident.append(frac)
    raw_readinto(files, buf)  # untimed: this VM drops idle page-cache pages; bring them back
    frac = resident_fraction(files)
    if frac is not None:
        row.resident_warm.append(frac)
    for store, fn in ((row.raw, raw_read_same_path), (row.readinto, raw_readinto)):
        start = time.perf_counter()
        got = fn(files, buf)
        store.append(time.perf_counter() - start)
        if got != row.size:
            raise RuntimeError(f"{row.name}: read {got} bytes, expected {row.size}")

    db = work / f"stat-cache-{row.path.name}.sqlite"
    fresh_db(db)
    seconds, base, misses = fingerprint(row.path, db)
    row.cold.append(seconds)
    row.rehashed["cold"] = misses

    seconds, digest, misses = fingerprint(row.path, db)
    row.no_change.append(seconds)
    row.rehashed["no change"] = misses
    if digest != base:
        raise RuntimeError(f"{row.name}: digest changed with no change")

    target = files[len(files) // 2]
    before = os.stat(target)
    os.utime(target)  # like touch: mtime and ctime move, bytes do not
    seconds, digest, misses = fingerprint(row.path, db)
    row.touch.append(seconds)
    row.rehashed["touch"] = misses
    if digest != base:
        raise RuntimeError(f"{row.name}: touch changed the digest")

    flip_byte(target)
    try:
        seconds, digest, misses = fingerprint(row.path, db)
        row.byte.append(seconds)
        row.rehashed["1 byte"] = misses
        if digest == base:
            raise RuntimeError(f"{row.name}: a one-byte change kept the digest")
    finally:
        flip_byte(target)  # back to the generated bytes
        # ... and back to its old mtime: the next repetition's "no change" must measure data
        # older than the stat cache's racy window (hashing.RACY_WINDOW_NS), as a user's data
        # is; a file written within the last 2 s is re-hashed on purpose, which made the 1 GiB
        # no-change figure equal the cold one in earlier runs
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))


# --- part 1b: dvc (optional) --------------------------------------------------------------


def find_dvc(explicit: str | None) -> str | None:
    candidate = explicit or shutil.which("dvc")
    if not candidate or not shutil.which("git"):
        return None
    try:
        subprocess.run([candidate, "version"], capture_output=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return candidate


def dvc_python(dvc: str) -> str | None:
    """The interpreter of the dvc script (its shebang), for timing ``Repo.status()`` in-process."""
    try:
        first = Path(dvc).read_bytes()[:200].split(b"\n", 1)[0].decode()
    except OSError:
        return None
    return first[2:].strip() if first.startswith("#!") and "python" in first else None


DVC_API_CHILD = textwrap.dedent(
    """
    import json, statistics, sys, time
    from dvc.repo import Repo
    root, reps, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    out = {}
    with Repo(root) as repo:
        for target in targets:
            assert repo.status(targets=[target]) == {}, repo.status(targets=[target])
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                changed = repo.status(targets=[target])
                times.append(time.perf_counter() - start)
                assert changed == {}, changed
            out[target] = times
    print(json.dumps(out))
    """
)


def measure_dvc(dvc: str, data: Path, rows: list[HashRow], reps: int) -> str:
    """git+dvc repo around ``data``, ``dvc add`` each target, then time ``dvc status``."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}

    def sh(*cmd: str, timeout: int = 1800) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            cmd, cwd=data, env=env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
            )
        return proc

    if not (data / ".git").exists():
        sh("git", "init", "-q")
    if not (data / ".dvc").exists():
        sh(dvc, "init", "-q")
    sh(dvc, "config", "core.analytics", "false")
    sh(dvc, "config", "--local", "core.site_cache_dir", str(data / ".dvc-site-cache"))
    sh(dvc, "config", "cache.type", "copy")
    for row in rows:
        start = time.perf_counter()
        sh(dvc, "add", "-q", row.path.name)
        row.dvc_add_s = time.perf_counter() - start
    for row in rows:
        target = f"{row.path.name}.dvc"
        sh(dvc, "status", target)  # warm up its state and index
        for _ in range(reps):
            start = time.perf_counter()
            proc = sh(dvc, "status", target)
            row.dvc_cli.append(time.perf_counter() - start)
            if "up to date" not in proc.stdout:
                raise RuntimeError(f"dvc status {target} reported a change:\n{proc.stdout}")
    python = dvc_python(dvc)
    if python:
        targets = [f"{row.path.name}.dvc" for row in rows]
        proc = sh(python, "-c", DVC_API_CHILD, str(data), str(reps), *targets)
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        for row in rows:
            row.dvc_api = times[f"{row.path.name}.dvc"]
    return sh(dvc, "version").stdout.split("\n", 1)[0].strip()


# --- part 2: pipeline ---------------------------------------------------------------------

STEP_SCRIPT = textwrap.dedent(
    """
    import os, sys
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    with open(os.environ["MLPIPE_BENCH_CALLS"], "a") as calls:
        calls.write(os.environ["MLPIPE_STEP_NAME"] + "\\n")
    text = "start"
    if "--input" in args:
        with open(os.path.join(args["--input"], "out.txt")) as handle:
            text = handle.read()
    os.makedirs(args["--output"], exist_ok=True)
    with open(os.path.join(args["--output"], "out.txt"), "w") as handle:
        handle.write(text + " " + os.environ["MLPIPE_STEP_NAME"])
    """
)


def plain_dag_text(dag_id: str, n: int) -> str:
    lines = [
        "from airflow.providers.standard.operators.python import PythonOperator",
        "from airflow.sdk import DAG",
        "",
        "",
        "def _noop():",
        "    return None",
        "",
        "",
        f"with DAG(dag_id={dag_id!r}, schedule=None, tags=['bench']) as dag:",
    ]
    lines += [f"    t{i} = PythonOperator(task_id='t{i}', python_callable=_noop)" for i in range(n)]
    lines.append("    " + " >> ".join(f"t{i}" for i in range(n)))
    return "\n".join(lines) + "\n"


def configure_airflow(home: Path) -> None:
    """Airflow reads these at import: this must run before anything imports airflow."""
    if "airflow" in sys.modules:
        raise RuntimeError("airflow was imported before its environment was set")
    (home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
    )
    os.environ.pop("MLPIPE_WORKSPACE", None)


@contextlib.contextmanager
def quiet(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (fd level: Airflow's task logs) to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def build_chain(ws, n: int):
    from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep

    steps, previous = [], None
    for i in range(n):
        out = PipelineData(f"step_{i}_out")
        inputs = [previous] if previous is not None else []
        steps.append(
            PythonScriptStep(
                "step.py",
                name=f"step_{i}",
                arguments=[*[a for d in inputs for a in ("--input", d)], "--output", out],
                inputs=inputs,
                outputs=[out],
                source_directory="src",
            )
        )
        previous = out
    return Pipeline(ws, steps)


def task_states(dag_run) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def task_durations(dag_run) -> dict[str, float]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        return {
            ti.task_id: (ti.end_date - ti.start_date).total_seconds()
            for ti in tis
            if ti.start_date and ti.end_date
        }


@dataclass
class DagCase:
    label: str
    dag: object
    tasks: int
    check: Callable[[object], None]
    times: list[float] = field(default_factory=list)
    in_tasks: list[float] = field(default_factory=list)  # sum of task instance start-to-end
    by_kind: dict[str, list[float]] = field(
        default_factory=dict
    )  # per run: "plan" (the plan task) / "task" (the steps)


class Counters:
    """Wall time and calls of selected functions, patched in for one profiling run."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.per_run: list[tuple[dict[str, float], dict[str, int]]] = []
        self.missing: list[str] = []
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        self.order.append(label)
        self.seconds[label], self.calls[label] = 0.0, 0

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start
                self.calls[label] += 1

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def end_run(self) -> None:
        """Keep this run's totals and start from zero."""
        self.per_run.append((dict(self.seconds), dict(self.calls)))
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)

    def median(self, label: str) -> tuple[float, float]:
        """Median seconds and calls per run for one label."""
        return (
            statistics.median(seconds[label] for seconds, _ in self.per_run),
            statistics.median(calls[label] for _, calls in self.per_run),
        )

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


def reused_counters(case: DagCase, runs: int) -> Counters:
    """Extra fully reused runs with timers around the mlpipe code inside the tasks."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    # The runtime is being refactored while this benchmark exists: find each function where it
    # lives now and leave out (with a note) any that has gone, rather than fail the run.
    points = [
        ("mlpipe_provider.runtime.reuse_plan", "make_plan", "plan task: make_plan()"),
        (
            "mlpipe_provider.runtime.reuse:StepReuse",
            "__init__",
            "- StepReuse() (config, stat-cache open)",
        ),
        ("mlpipe_provider.runtime.reuse:StepReuse", "fingerprint", "- fingerprint()"),
        ("mlpipe_provider.runtime.reuse", "digest_path", "-- digest_path() of the source folder"),
        (
            "mlpipe_provider.runtime.input_resolvers",
            "upstream_record",
            "-- upstream_record() (XCom pulls)",
        ),
        (
            "mlpipe_provider.runtime.reuse:StepReuse",
            "verified_entry",
            "- verified_entry() (manifest, sizes)",
        ),
        ("mlpipe_provider.runtime.reuse:StepReuse", "close", "- StepReuse.close()"),
        (
            "mlpipe_provider.runtime.step_protocol mlpipe_provider.runtime.script_step",
            "_skip_if_reused",
            "step task: _skip_if_reused() (XCom pull, skip)",
        ),
    ]
    counters = Counters()
    for where, attr, label in points:
        for candidate in where.split():
            module_name, _, cls = candidate.partition(":")
            try:
                owner = importlib.import_module(module_name)
                owner = getattr(owner, cls) if cls else owner
            except (ImportError, AttributeError):
                continue
            if hasattr(owner, attr):
                counters.wrap(owner, attr, label)
                break
        else:
            counters.missing.append(f"{where.split()[0]}.{attr}")
    counters.wrap(RuntimeTaskInstance, "xcom_pull", "all ti.xcom_pull() calls (both task kinds)")
    try:
        for _ in range(runs):
            case.check(case.dag.test())
            counters.end_run()
    finally:
        counters.undo()
    return counters


@dataclass
class PipelineResult:
    cases: list[DagCase]
    first_run_s: float
    warmup_s: dict[str, float]
    counters: Counters
    log: Path


def run_pipeline_part(work: Path, reps: int) -> PipelineResult:
    home = work / "airflow_home"
    configure_airflow(home)
    project = work / "project"
    (project / "src").mkdir(parents=True, exist_ok=True)
    (project / "src" / "step.py").write_text(STEP_SCRIPT, encoding="utf-8")
    calls = work / "calls.log"
    os.environ["MLPIPE_BENCH_CALLS"] = str(calls)
    log_path = work / "airflow-output.log"
    cwd = os.getcwd()
    os.chdir(project)
    try:
        with quiet(log_path):
            return _run_pipeline_part(home, project, calls, reps, log_path)
    finally:
        os.chdir(cwd)


def _run_pipeline_part(
    home: Path, project: Path, calls: Path, reps: int, log_path: Path
) -> PipelineResult:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from compiler.compile import compile_pipeline
    from mlpipe_provider.sdk import Workspace

    db.initdb()
    ws = Workspace.from_config()
    dags = home / "dags"
    compiled = compile_pipeline(build_chain(ws, PIPELINE_STEPS), "bench_reuse_chain", dags)
    compiled.write()
    plain_paths = {}
    for n in (PIPELINE_STEPS, 2 * PIPELINE_STEPS):
        path = dags / f"bench_plain_{n}.py"
        path.write_text(plain_dag_text(path.stem, n), encoding="utf-8")
        plain_paths[n] = path

    def load(path: Path):
        bag = DagBag(dag_folder=str(path))
        if bag.import_errors:
            raise RuntimeError(f"{path}: {bag.import_errors}")
        return bag.get_dag(path.stem)

    def executed() -> list[str]:
        return calls.read_text().split() if calls.exists() else []

    def check_reused(dag_run) -> None:
        states = task_states(dag_run)
        ran = executed()
        steps = [s for t, s in states.items() if t != PLAN_TASK_ID]
        if (
            str(dag_run.state) != "success"
            or ran
            or states.get(PLAN_TASK_ID) != "success"
            or len(steps) != PIPELINE_STEPS
            or set(steps) != {"skipped"}
        ):
            raise RuntimeError(f"reused run was not fully reused: {dag_run.state} {states} {ran}")

    def check_plain(n: int) -> Callable[[object], None]:
        def check(dag_run) -> None:
            states = task_states(dag_run)
            if str(dag_run.state) != "success" or len(states) != n:
                raise RuntimeError(f"plain run failed: {dag_run.state} {states}")

        return check

    ours = load(compiled.path)
    calls.write_text("")
    start = time.perf_counter()
    first = ours.test()  # fills the store: every step runs
    first_run_s = time.perf_counter() - start
    if str(first.state) != "success" or len(executed()) != PIPELINE_STEPS:
        raise RuntimeError(f"first run: {first.state} {task_states(first)} ran {executed()}")
    calls.write_text("")

    cases = [
        DagCase(
            f"mlpipe, {PIPELINE_STEPS} steps fully reused", ours, PIPELINE_STEPS + 1, check_reused
        )
    ]
    for n, path in plain_paths.items():
        cases.append(DagCase(f"plain, {n} PythonOperator tasks", load(path), n, check_plain(n)))

    warmup = {}
    for case in cases:  # the first dag.test of a DAG pays one-off imports and DB setup
        start = time.perf_counter()
        case.check(case.dag.test())
        warmup[case.label] = time.perf_counter() - start
    for _ in range(reps):
        for case in cases:
            start = time.perf_counter()
            dag_run = case.dag.test()
            case.times.append(time.perf_counter() - start)
            case.check(dag_run)
            durations = task_durations(dag_run)
            case.in_tasks.append(sum(durations.values()))
            for kind in ("plan", "task"):
                case.by_kind.setdefault(kind, []).append(
                    sum(d for t, d in durations.items() if (t == PLAN_TASK_ID) == (kind == "plan"))
                )

    counters = reused_counters(cases[0], reps)
    return PipelineResult(cases, first_run_s, warmup, counters, log_path)


# --- reporting ----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def gbps(size: int, seconds: float | None) -> float | None:
    return None if not seconds else size / seconds / 1e9


def hash_table(rows: list[HashRow]) -> str:
    head = [
        "data",
        "cold s",
        "cold GB/s",
        "no-change s",
        "touch 1 file s",
        "1-byte change s",
        "raw read s (same I/O path)",
        "raw GB/s",
        "cold / raw",
        "readinto GB/s",
        "cold / readinto",
        "dvc status s (CLI / in-process)",
        "dvc / ours, no-change (CLI / in-process)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cold, raw, readinto = med(r.cold), med(r.raw), med(r.readinto)
        no_change = med(r.no_change)
        cli, api = med(r.dvc_cli), med(r.dvc_api)
        dvc = "n/a" if cli is None else f"{fmt(cli)} / {fmt(api)}"
        ratio = (
            "n/a"
            if cli is None
            else f"{cli / no_change:.0f}x / "
            + ("n/a" if api is None else f"{api / no_change:.1f}x")
        )
        cells = [
            f"{r.name} ({r.size / GIB:.2f} GiB, {len(r.files):,} files)",
            fmt(cold),
            fmt(gbps(r.size, cold), 2),
            fmt(no_change),
            fmt(med(r.touch)),
            fmt(med(r.byte)),
            fmt(raw),
            fmt(gbps(r.size, raw), 2),
            f"{cold / raw:.2f}x",
            fmt(gbps(r.size, readinto), 2),
            f"{cold / readinto:.2f}x",
            dvc,
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pipeline_table(result: PipelineResult) -> str:
    base = result.cases[1]
    head = [
        "DAG",
        "tasks",
        "dag.test() median s",
        "min s",
        "max s",
        "ms / task",
        "ratio to plain 10",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in result.cases:
        m = statistics.median(case.times)
        cells = [
            case.label,
            str(case.tasks),
            fmt(m),
            fmt(min(case.times)),
            fmt(max(case.times)),
            fmt(1000 * m / case.tasks, 0),
            f"{m / statistics.median(base.times):.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_report(result: PipelineResult) -> list[str]:
    """Where the time of the timed runs goes, and the mlpipe code inside the reused run's tasks."""
    lines = [
        "Where the time goes (medians over the timed runs; task time is each task instance's "
        "start to end):",
        "",
        "| DAG | run s | task instances | in tasks s | ms / task instance | "
        "dag.test() loop outside tasks s | loop ms / task instance |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in result.cases:
        wall, inside = statistics.median(case.times), statistics.median(case.in_tasks)
        lines.append(
            f"| {case.label} | {wall:.3f} | {case.tasks} | {inside:.3f} | "
            f"{1000 * inside / case.tasks:.1f} | {wall - inside:.3f} | "
            f"{1000 * (wall - inside) / case.tasks:.1f} |"
        )
    reused, counters = result.cases[0], result.counters
    lines += [
        "",
        f"Inside the fully reused run (task instances: medians; mlpipe code: totals per run, "
        f"median of {len(counters.per_run)} more runs with timers patched in):",
        "",
        "| part | ms per run | calls per run | ms / call |",
        "|---|---|---|---|",
    ]
    for kind, label, count in (
        ("plan", "plan task instance", 1),
        ("task", "skipped step task instances", PIPELINE_STEPS),
    ):
        total = statistics.median(reused.by_kind[kind])
        lines.append(
            f"| {label} (start to end) | {1000 * total:.0f} | {count} | "
            f"{1000 * total / count:.1f} |"
        )
    for label in counters.order:
        seconds, calls = counters.median(label)
        per = f"{1000 * seconds / calls:.2f}" if calls else "n/a"
        lines.append(f"| {label} | {1000 * seconds:.1f} | {calls:g} | {per} |")
    if counters.missing:
        lines.append(f"| (not found, so not timed: {', '.join(counters.missing)}) | | | |")
    plain = result.cases[1]
    lines += [
        "",
        f"A plain PythonOperator task instance takes "
        f"{1000 * statistics.median(plain.by_kind['task']) / plain.tasks:.1f} ms start to end.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="hashing repetitions (default 5)")
    parser.add_argument("--dag-reps", type=int, default=5, help="timed dag.test() runs per DAG")
    parser.add_argument("--dir", help="work in DIR (kept; its generated data is reused)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--dvc",
        default=os.environ.get("MLPIPE_BENCH_DVC"),
        help="the dvc executable (default: $MLPIPE_BENCH_DVC, else dvc on PATH)",
    )
    parser.add_argument("--no-dvc", action="store_true", help="skip the dvc comparison")
    parser.add_argument("--no-pipeline", action="store_true", help="only the hashing part")
    parser.add_argument("--no-hashing", action="store_true", help="only the pipeline part")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.dir:
        work = Path(args.dir).resolve()
        work.mkdir(parents=True, exist_ok=True)
        remove = False
    else:
        work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-reuse-"))
        remove = not args.keep
    try:
        ok = run(args, work, kept=not remove)
    finally:
        if remove:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"\nkept {work}")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0 if ok or not args.check else 1


def run(args: argparse.Namespace, work: Path, kept: bool) -> bool:
    ok = True
    print(f"# mlpipe reuse benchmark, {date.today().isoformat()}, {os.cpu_count()} CPUs")
    print(f"python {sys.version.split()[0]}, blake3 {blake3.__version__}, work folder {work}")
    if not args.no_hashing:
        ok &= run_hashing_part(args, work)
    if not args.no_pipeline:
        ok &= report_pipeline(run_pipeline_part(work, args.dag_reps), kept)
    return ok


def run_hashing_part(args: argparse.Namespace, work: Path) -> bool:
    data = work / "data"
    start = time.perf_counter()
    big, tree, reused = make_data(data)
    made = (
        "reused from an earlier run"
        if reused
        else f"generated in {time.perf_counter() - start:.1f} s"
    )
    rows = [
        HashRow("1 GiB file", big, list_files(big)),
        HashRow("10,000-file tree", tree, list_files(tree)),
    ]
    for row in rows:
        row.size = sum(os.path.getsize(p) for p in row.files)
    buf = mmap.mmap(-1, CHUNK)  # page-aligned (a bytearray is 16 bytes off and reads 3x slower)
    for _ in range(args.reps):
        for row in rows:
            measure_hashing(row, work, buf)
    buf.close()

    dvc = None if args.no_dvc else find_dvc(args.dvc)
    dvc_version = "not available"
    if dvc is not None:
        try:
            dvc_version = measure_dvc(dvc, data, rows, args.reps)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            dvc_version = f"failed ({str(exc)[:300]})"
            for row in rows:
                row.dvc_cli, row.dvc_api = [], []

    print(f"\n## Hashing (data {made}; medians of {args.reps})\n")
    print(hash_table(rows))
    print()
    for row in rows:
        extra = "" if row.dvc_add_s is None else f"; `dvc add` took {row.dvc_add_s:.1f} s"
        print(
            f"- {row.name}: in the page cache before each repetition {span(row.resident)}, after an "
            f"untimed warm-up read {span(row.resident_warm)}; files hashed per case "
            f"{row.rehashed}{extra}"
        )
    print(f"- dvc: {dvc_version}")
    lines, ok = [], True
    big_row, tree_row = rows
    checks = [
        (f"{r.name}: no-change fingerprint", med(r.no_change), TARGET_NO_CHANGE_S, "s", True)
        for r in rows
    ] + [
        (
            "1 GiB file: hashing (cold)",
            gbps(big_row.size, med(big_row.cold)),
            TARGET_HASH_GBPS,
            "GB/s",
            False,
        ),
        (
            "10,000-file tree: hashing (cold; a raw read alone gives "
            f"{fmt(gbps(tree_row.size, med(tree_row.raw)), 2)} GB/s)",
            gbps(tree_row.size, med(tree_row.cold)),
            TARGET_HASH_GBPS,
            "GB/s",
            False,
        ),
    ]
    for what, value, limit, unit, upper in checks:
        passed = value <= limit if upper else value >= limit
        ok &= passed
        sign = "<=" if upper else ">="
        lines.append(
            f"- {what} {value:.3f} {unit} (target {sign} {limit:g} {unit}) {'ok' if passed else 'MISSED'}"
        )
    print("\nTargets:\n" + "\n".join(lines))
    return ok


def report_pipeline(result: PipelineResult, kept: bool) -> bool:
    print(
        f"\n## Fully reused pipeline vs plain DAG (dag.test(), medians of {len(result.cases[0].times)})\n"
    )
    print(pipeline_table(result))
    print()
    print(
        f"- first run of the pipeline (every step executes, fills the store): {result.first_run_s:.2f} s"
    )
    print(
        "- warm-up runs (not in the medians): "
        + ", ".join(f"{label} {s:.2f} s" for label, s in result.warmup_s.items())
    )
    print(
        f"- the pipeline is {PIPELINE_STEPS + 1} task instances: the plan task, which skips every "
        f"step in one call (they never start), and the {PIPELINE_STEPS} steps; the plain "
        f"{2 * PIPELINE_STEPS}-task DAG is the task count of the earlier two-task design"
    )
    if kept:
        print(f"- Airflow output of the runs: {result.log}")
    print()
    print("\n".join(profile_report(result)))
    ours = statistics.median(result.cases[0].times)
    plain = statistics.median(result.cases[1].times)
    ratio = ours / plain
    passed = ratio <= TARGET_REUSED_RATIO
    print(
        f"\nTarget: reused / plain {PIPELINE_STEPS} = {ratio:.2f}x (target <= {TARGET_REUSED_RATIO}x) "
        f"{'ok' if passed else 'MISSED'}; reused / plain {2 * PIPELINE_STEPS} = "
        f"{ours / statistics.median(result.cases[2].times):.2f}x"
    )
    return passed


if __name__ == "__main__":
    sys.exit(main())
