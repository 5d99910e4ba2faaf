"""Benchmark: blob datastores on Azurite, mlpipe's data path against plain fsspec in the same run.

Run from the repository root:

    uv run python bench/blob.py [--blobs 1000] [--size 64KiB] [--large 4x64MiB] [--reps 3]

It starts its own Azurite (``tests/azurite.py``: installed with npm into ``tools/azurite`` the
first time), registers a fresh container as the workspace's default datastore the way a v1
program does (``Datastore.register_azure_blob_container``), writes ``--blobs`` files of
``--size`` pseudo-random bytes locally and measures, each against a plain fsspec call made with
the same credentials on a separate ``adlfs`` instance (``skip_instance_cache``), interleaved, in
the same run, so a noisy shared machine hits both alike:

1. upload: ``Datastore.upload`` (the SDK) and the step-output upload of the runtime
   (``StepData.publish_outputs``: local digest, ``fs.put`` of a file list, the listing check and
   the digest-cache seeding), against ``fs.put(local_dir, remote, recursive=True)``;
2. download: input staging (``StepData.input_path``: one listing, then ``fs.get`` of a file list)
   and ``Datastore.download``, against ``fs.get(remote, local_dir, recursive=True)``;
3. the no-change reuse decision: ``remote_digest.digest_remote`` with an empty cache (cold: every
   blob is read) and again with a new cache object on the same SQLite file (warm: one listing and
   cache hits), against one ``fs.find(prefix, detail=True)`` (the listing any no-change check on
   an object store needs) and against the plain ``fs.get`` copy; then a real two-step pipeline
   whose first step reads the blobs is compiled and run with ``dag.test()``: once cold, ``--reps``
   times with nothing changed (fully reused), and once after a change, timing the reuse
   decision's fingerprint of the step that reads the blobs (the first ``StepReuse.fingerprint()``
   of the step in a run: the plan task's, or the step's own as it starts);
4. one change: one blob rewritten in place with other bytes of the same size; the re-fingerprint
   must read that one blob only.

Every measurement is checked: uploads list the local sizes, downloads digest to the local digest,
the remote digest equals the local ``digest_path`` of the same bytes, the warm digest equals the
cold one and reads no blob, the change changes it and reads one blob, the pipeline's reused runs
execute no step. ``--large NxSIZE`` repeats parts 1 to 4 (not the pipeline) with a few big blobs;
``--large none`` skips it. Figures are medians of ``--reps``. Everything lives in a temporary
folder (Azurite's data included) that is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import blake3  # noqa: E402

WARM_SAMPLES = 3  # no-change fingerprints (each beside a listing) per repetition

STEP_A = """
    import os, sys
    open(os.environ["MLPIPE_BENCH_CALLS"], "a").write("a\\n")
    src, out = sys.argv[1], sys.argv[2]
    count = total = 0
    for folder, _, files in os.walk(src):
        for name in files:
            count += 1
            total += os.path.getsize(os.path.join(folder, name))
    os.makedirs(out, exist_ok=True)  # v1: a PipelineData path does not exist until written
    open(os.path.join(out, "summary.txt"), "w").write(f"{count} files, {total} bytes\\n")
"""
STEP_B = """
    import os, sys
    open(os.environ["MLPIPE_BENCH_CALLS"], "a").write("b\\n")
    src, out = sys.argv[1], sys.argv[2]
    text = open(os.path.join(src, "summary.txt")).read()
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "report.txt"), "w").write("report: " + text)
"""


# --- helpers ------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 10**6, "mb": 10**6}
_UNITS |= {"mib": 1 << 20, "g": 10**9, "gb": 10**9, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """``64KiB`` -> 65536; plain numbers are bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64KiB, 4MiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_large(text: str) -> tuple[int, int] | None:
    """``4x64MiB`` -> (4, 64 MiB); ``none`` -> None."""
    if text.lower() in ("none", "no", "0", ""):
        return None
    count, _, size = text.lower().partition("x")
    if not count.isdigit() or not size:
        raise argparse.ArgumentTypeError(f"not COUNTxSIZE: {text!r} (e.g. 4x64MiB)")
    return int(count), parse_size(size)


def human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def fill(path: Path, size: int, seed: bytes) -> None:
    """``size`` reproducible pseudo-random bytes (BLAKE3 XOF): incompressible, fast to make."""
    xof = blake3.blake3(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for offset in range(0, size, 64 << 20):
            handle.write(xof.digest(length=min(64 << 20, size - offset), seek=offset))


def make_local(folder: Path, count: int, size: int, tag: str) -> dict[str, int]:
    """``count`` files in folders of 100 (as a partitioned data set is): ``{rel: size}``."""
    files = {}
    for i in range(count):
        rel = f"part-{i // 100:03d}/blob-{i:05d}.bin"
        fill(folder / rel, size, f"mlpipe-bench-blob-{tag}-{i}".encode())
        files[rel] = size
    return files


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


def hush() -> None:
    """Airflow's logging setup lets the Azure SDK log every HTTP request at INFO: keep the table
    readable (called again after each ``dag.test()``, which may configure logging anew)."""
    for name in ("azure", "adlfs", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    os.sync()  # no writeback of earlier files competes with the timed call (Azurite is on disk)
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class CheckFailed(RuntimeError):
    """A benchmark result that is wrong, not just slow: the run stops and says what."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: an mlpipe path timed against a plain fsspec baseline."""

    data: str
    measure: str
    ours: str
    base: str
    nbytes: int | None = None  # for MB/s; None where throughput means nothing (a decision)
    ours_s: list[float] = field(default_factory=list)
    base_s: list[float] = field(default_factory=list)
    read: list[int] = field(default_factory=list)  # blobs read to digest (reuse rows)
    checks: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        if text not in self.checks:
            self.checks.append(text)


def mbps(nbytes: int | None, seconds: float | None) -> str:
    if nbytes is None or not seconds:
        return "-"
    return f"{nbytes / seconds / 1e6:.1f}"


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.3f}" if seconds < 10 else f"{seconds:.1f}"


def table(rows: list[Row]) -> str:
    head = (
        "| data | measurement | mlpipe path | mlpipe s | mlpipe MB/s | plain fsspec baseline "
        "| baseline s | baseline MB/s | ratio | blobs read | checks |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        ours, base = med(r.ours_s), med(r.base_s)
        ratio = f"{ours / base:.2f}x" if ours and base else "-"
        read = "-" if not r.read else "/".join(str(v) for v in sorted(set(r.read)))
        lines.append(
            f"| {r.data} | {r.measure} | {r.ours} | {fmt_s(ours)} | {mbps(r.nbytes, ours)} "
            f"| {r.base} | {fmt_s(base)} | {mbps(r.nbytes, base)} | {ratio} | {read} "
            f"| {'; '.join(r.checks) or '-'} |"
        )
    return "\n".join(lines)


# --- the benchmark ----------------------------------------------------------------------------


@dataclass
class Env:
    """What every part uses: the workspace, its blob datastore, and the plain baseline fs."""

    work: Path
    ws: Any
    sdk_store: Any  # mlpipe_provider.sdk.Datastore
    access: Any  # DatastoreAccess of the same datastore
    plain: Any  # a separate adlfs instance with the same options
    reps: int
    verbose: bool = True

    def full(self, rel: str) -> str:
        return self.access.full_path(rel)

    def say(self, text: str) -> None:
        if self.verbose:
            print(f"  {text}", flush=True)


def remote_sizes(env: Env, rel: str) -> dict[str, int]:
    from mlpipe_provider import remote_digest

    listed = remote_digest.list_tree(env.access, rel) or []
    return {f.rel: f.size for f in listed}


def local_digest(folder: Path) -> str:
    from mlpipe_provider.hashing import StatCache, digest_path

    return digest_path(folder, StatCache(None)).digest


def step_data(env: Env, run_id: str) -> Any:
    from mlpipe_provider.runtime.staging import StepData
    from mlpipe_provider.runtime.step_context import StepWorkspace

    return StepData(StepWorkspace.for_operator(str(env.ws._dir), None), "bench", run_id)


def measure_transfers(
    env: Env, label: str, local: Path, files: dict[str, int], rows: list[Row]
) -> tuple[str, Row]:
    """Parts 1 and 2: the uploads and downloads; returns the remote input prefix and the plain
    download row (the cold fingerprint is compared with that copy)."""
    total = sum(files.values())
    source_digest = local_digest(local)
    name = env.sdk_store.name
    up_sdk = Row(label, "upload", "`Datastore.upload`", "`fs.put(dir, recursive=True)`", total)
    up_step = Row(label, "upload", "step output (`publish_outputs`)", up_sdk.base, total)
    down_stage = Row(
        label, "download", "input staging (`input_path`)", "`fs.get(prefix, recursive=True)`", total
    )
    down_sdk = Row(label, "download", "`Datastore.download`", down_stage.base, total)
    for row in (up_sdk, up_step, down_stage, down_sdk):
        rows.append(row)

    def plain_put(rep: int) -> float:
        rel = f"bench/{label}/plain-up-{rep}"
        seconds, _ = timed(lambda: env.plain.put(str(local), env.full(rel), recursive=True))
        check(remote_sizes(env, rel) == files, f"plain fs.put to {rel} did not land as written")
        return seconds

    def sdk_upload(rep: int) -> float:
        rel = f"bench/{label}/sdk-up-{rep}"
        seconds, _ = timed(lambda: env.sdk_store.upload(str(local), rel, show_progress=False))
        check(remote_sizes(env, rel) == files, f"Datastore.upload to {rel} did not land")
        up_sdk.ok("listing = local sizes")
        return seconds

    def step_upload(rep: int) -> float:
        rel = f"bench/{label}/step-up-{rep}"
        data = step_data(env, f"bench-up-{label}-{rep}")
        try:
            staged = Path(data.output_path("out", name, rel, None))
            shutil.copytree(local, staged, dirs_exist_ok=True)  # what the script wrote: untimed
            seconds, done = timed(data.publish_outputs)
        finally:
            data.close()
        check(done["out"]["digest"] == source_digest, "step output digest != local digest")
        check(remote_sizes(env, rel) == files, f"step output upload to {rel} did not land")
        up_step.ok("digest = local; listing = local sizes")
        return seconds

    for rep in range(env.reps):
        order = [(up_sdk, sdk_upload), (up_step, step_upload), (None, plain_put)]
        if rep % 2:
            order.reverse()
        for row, fn in order:
            seconds = fn(rep)
            if row is None:
                up_sdk.base_s.append(seconds)
            else:
                row.ours_s.append(seconds)
        up_step.base_s = up_sdk.base_s
        env.say(f"{label} upload rep {rep + 1}/{env.reps} done")

    # In a folder of its own: ``Datastore.download`` lists the prefix's whole parent folder.
    prefix = f"inputs-{label}/blobs"
    env.plain.put(str(local), env.full(prefix), recursive=True)
    check(remote_sizes(env, prefix) == files, "input upload did not land")
    downloads = env.work / "downloads"

    def plain_get(rep: int) -> float:
        target = downloads / f"{label}-plain-{rep}"
        seconds, _ = timed(lambda: env.plain.get(env.full(prefix), str(target), recursive=True))
        check(local_digest(target) == source_digest, "plain fs.get: bytes differ")
        shutil.rmtree(target)
        return seconds

    def staging_get(rep: int) -> float:
        data = step_data(env, f"bench-down-{label}-{rep}")
        try:
            seconds, path = timed(
                lambda: data.input_path("blobs", name, prefix, None, missing="missing")
            )
            check(local_digest(Path(path)) == source_digest, "input staging: bytes differ")
        finally:
            data.close()
        down_stage.ok("downloaded digest = uploaded digest")
        return seconds

    def sdk_get(rep: int) -> float:
        target = downloads / f"{label}-sdk-{rep}"
        seconds, count = timed(
            lambda: env.sdk_store.download(str(target), prefix=prefix + "/", show_progress=False)
        )
        check(count == len(files), f"Datastore.download copied {count} of {len(files)} files")
        check(local_digest(target / prefix) == source_digest, "Datastore.download: bytes differ")
        shutil.rmtree(target)
        down_sdk.ok("downloaded digest = uploaded digest")
        return seconds

    for rep in range(env.reps):
        order = [(down_stage, staging_get), (down_sdk, sdk_get), (None, plain_get)]
        if rep % 2:
            order.reverse()
        for row, fn in order:
            seconds = fn(rep)
            if row is None:
                down_stage.base_s.append(seconds)
            else:
                row.ours_s.append(seconds)
        down_sdk.base_s = down_stage.base_s
        env.say(f"{label} download rep {rep + 1}/{env.reps} done")
    return prefix, down_stage


def rewrite_in_place(env: Env, rel: str, size: int, seed: bytes) -> bytes:
    """Overwrite one blob with other bytes of the same size; returns the old bytes."""
    old = env.plain.cat_file(env.full(rel))
    new = blake3.blake3(seed).digest(length=size)
    check(new != old and len(new) == len(old), "the changed blob must differ at the same size")
    env.plain.pipe_file(env.full(rel), new)
    return old


def measure_fingerprints(
    env: Env, label: str, local: Path, files: dict[str, int], prefix: str, copy_row: Row, rows
) -> None:
    """Parts 3 and 4 on the digest functions directly (``remote_digest.digest_remote``)."""
    from mlpipe_provider import remote_digest

    total = sum(files.values())
    expected = local_digest(local)
    listing = "`fs.find(prefix, detail=True)`"
    cold = Row(label, "fingerprint, cold", "`digest_remote`, empty cache", "plain `fs.get` copy")
    cold.nbytes = total
    warm = Row(label, "fingerprint, no change", "`digest_remote`, warm cache", listing)
    change = Row(label, "fingerprint, 1 blob changed", "`digest_remote`, warm cache", listing)
    rows += [cold, warm, change]
    changed_rel = sorted(files)[len(files) // 2]

    def digest(db: Path) -> tuple[float, str, int]:
        remote_digest.STATS.clear()
        os.sync()
        start = time.perf_counter()
        cache = remote_digest.RemoteDigestCache(db)  # a new object: what a new process sees
        tree = remote_digest.digest_remote(env.access, prefix, cache)
        cache.close()
        seconds = time.perf_counter() - start
        check(tree is not None, f"no digest for {prefix}")
        return seconds, tree.digest, remote_digest.STATS["files_read"]

    def plain_list() -> float:
        full = env.full(prefix)
        env.plain.invalidate_cache(full)
        seconds, found = timed(lambda: env.plain.find(full, detail=True))
        check(len(found) == len(files), f"fs.find listed {len(found)} of {len(files)}")
        return seconds

    for rep in range(env.reps):
        db = env.work / f"remote-cache-{label}-{rep}.sqlite"
        seconds, base, read = digest(db)
        check(base == expected, "remote digest != local digest_path of the same bytes")
        check(read == len(files), f"cold fingerprint read {read} of {len(files)} blobs")
        cold.ours_s.append(seconds)
        cold.read.append(read)
        cold.ok("= local `digest_path`")

        for _ in range(WARM_SAMPLES):  # cheap, and Azurite's own housekeeping makes it jumpy
            warm.base_s.append(plain_list())
            seconds, again, read = digest(db)
            same = again == base
            check(same and read == 0, f"no-change fingerprint: {read} read, same={same}")
            warm.ours_s.append(seconds)
            warm.read.append(read)
        warm.ok("= cold digest")

        old = rewrite_in_place(
            env, f"{prefix}/{changed_rel}", files[changed_rel], b"change%d" % rep
        )
        try:
            change.base_s.append(plain_list())
            seconds, after, read = digest(db)
            check(after != base, "a changed blob kept the digest")
            check(read == 1, f"the re-fingerprint after one change read {read} blobs, not 1")
            change.ours_s.append(seconds)
            change.read.append(read)
            change.ok("digest changed")
        finally:
            env.plain.pipe_file(env.full(f"{prefix}/{changed_rel}"), old)
        env.say(f"{label} fingerprint rep {rep + 1}/{env.reps} done")
    cold.base_s = copy_row.base_s
    warm.base_s = change.base_s = warm.base_s + change.base_s  # one baseline: the listing


# --- part 3b: a real pipeline -----------------------------------------------------------------


@dataclass
class Decisions:
    """The reuse decision of each step during one ``dag.test()``: the first fingerprint of the
    step in the run (the plan task's, or the step's own as it starts) and what became of it."""

    calls: dict[str, tuple[float, int]] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)

    def of(self, task_id: str) -> tuple[float, int, str]:
        check(task_id in self.calls, f"{task_id}: no fingerprint in this run")
        seconds, read = self.calls[task_id]
        decision = {"skipped": "reuse", "success": "run"}.get(self.states.get(task_id, ""), "?")
        return seconds, read, decision


def measure_pipeline(
    env: Env, label: str, files: dict[str, int], prefix: str, list_row: Row, copy_row: Row, rows
) -> None:
    """Compile a 2-step pipeline reading the blobs, run it cold, reused, and after a change."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from compiler.compile import compile_pipeline
    from mlpipe_provider import remote_digest
    from mlpipe_provider.runtime.reuse import StepReuse
    from mlpipe_provider.sdk import DataReference, Pipeline, PipelineData, PythonScriptStep

    project = Path.cwd()
    for name, body in (("a", STEP_A), ("b", STEP_B)):
        (project / "steps" / name).mkdir(parents=True, exist_ok=True)
        (project / "steps" / name / f"{name}.py").write_text(textwrap.dedent(body))
    calls = env.work / "calls.log"
    os.environ["MLPIPE_BENCH_CALLS"] = str(calls)
    ref = DataReference(env.sdk_store, data_reference_name="blobs", path_on_datastore=prefix)
    a_out = PipelineData("a_out", datastore=env.sdk_store)
    b_out = PipelineData("b_out", datastore=env.sdk_store)
    a = PythonScriptStep(
        "a.py",
        name="a",
        arguments=[ref, a_out],
        inputs=[ref],
        outputs=[a_out],
        source_directory=str(project / "steps" / "a"),
    )
    b = PythonScriptStep(
        "b.py",
        name="b",
        arguments=[a_out, b_out],
        inputs=[a_out],
        outputs=[b_out],
        source_directory=str(project / "steps" / "b"),
    )
    dags = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    compiled = compile_pipeline(Pipeline(env.ws, [a, b]), f"bench_blob_{label}", dags)
    compiled.write()
    with quiet(env.work / "airflow-output.log"):
        bag = DagBag(dag_folder=str(compiled.path))
    check(not bag.import_errors, f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(compiled.dag_id)

    original = StepReuse.fingerprint
    decisions = Decisions()

    def timed_fingerprint(self: Any) -> Any:
        before = remote_digest.STATS["files_read"]
        start = time.perf_counter()
        out = original(self)
        seconds = time.perf_counter() - start
        read = remote_digest.STATS["files_read"] - before
        decisions.calls.setdefault(self.op.task_id, (seconds, read))
        return out

    def states(dag_run: Any) -> dict[str, str]:
        with create_session() as session:
            tis = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
                )
            ).all()
            return {ti.task_id: str(ti.state) for ti in tis}

    def run_dag(expect_ran: list[str]) -> tuple[float, Decisions]:
        nonlocal decisions
        decisions = Decisions()
        calls.write_text("")
        with quiet(env.work / "airflow-output.log"):
            seconds, dag_run = timed(dag.test)
        hush()
        ran = calls.read_text().split()
        decisions.states = states(dag_run)
        check(str(dag_run.state) == "success", f"pipeline run: {dag_run.state} {states(dag_run)}")
        check(ran == expect_ran, f"pipeline run executed {ran}, expected {expect_ran}")
        return seconds, decisions

    StepReuse.fingerprint = timed_fingerprint  # type: ignore[method-assign]
    n = len(files)
    try:
        cold = Row(
            label,
            "pipeline decision, cold",
            "decision of step a, 1st run",
            "plain `fs.get` copy",
        )
        warm = Row(
            label,
            "pipeline decision, no change",
            "decision of step a, reused run",
            list_row.base,
        )
        change = Row(
            label, "pipeline decision, 1 blob changed", "decision of step a", list_row.base
        )
        whole = Row(label, "pipeline `dag.test()`, reused run", "2 steps, none ran", "-")
        seconds, d = run_dag(["a", "b"])
        s, read, decision = d.of("a")
        check(decision == "run" and read == n, f"cold decision: {decision}, {read} of {n} read")
        cold.ours_s.append(s)
        cold.read.append(read)
        cold.ok("both steps ran")
        cold.base_s = copy_row.base_s
        cold.nbytes = sum(files.values())
        whole_times = {"cold": seconds}
        env.say(f"{label} pipeline: cold run {seconds:.1f} s")

        reused = []
        for _ in range(env.reps):
            seconds, d = run_dag([])
            s, read, decision = d.of("a")
            check(decision == "reuse" and read == 0, f"reused decision: {decision}, {read} read")
            check(d.of("b")[2] == "reuse", "step b was not reused")
            warm.ours_s.append(s)
            warm.read.append(read)
            reused.append(seconds)
            warm.ok("no step ran")
        warm.base_s = list_row.base_s
        whole_times["reused"] = statistics.median(reused)
        env.say(f"{label} pipeline: reused runs {whole_times['reused']:.1f} s (median)")

        changed_rel = sorted(files)[len(files) // 3]
        old = rewrite_in_place(env, f"{prefix}/{changed_rel}", files[changed_rel], b"pipeline")
        try:
            seconds, d = run_dag(["a"])  # a's summary is the same: b is reused (early cutoff)
            s, read, decision = d.of("a")
            check(decision == "run" and read == 1, f"changed decision: {decision}, {read} read")
            change.ours_s.append(s)
            change.read.append(read)
            change.base_s = list_row.base_s
            change.ok("only a ran (b cut off)")
        finally:
            env.plain.pipe_file(env.full(f"{prefix}/{changed_rel}"), old)
        whole.ours_s = reused
        whole.ok(f"1st run {whole_times['cold']:.1f} s; after the change {seconds:.1f} s")
        rows += [cold, warm, change, whole]
    finally:
        StepReuse.fingerprint = original  # type: ignore[method-assign]


# --- main -------------------------------------------------------------------------------------


def setup(work: Path, reps: int, verbose: bool) -> tuple[Env, Any]:
    """Airflow's environment, Azurite, and a workspace whose default datastore is a container."""
    configure_airflow(work / "airflow_home")
    from azurite import Azurite, install, register_blob_datastore

    binary = install()
    if binary is None:
        raise SystemExit("Azurite needs node and npm (tools/azurite); neither was found")
    (work / "azurite").mkdir()
    server = Azurite(binary, location=work / "azurite")
    server.start()
    import fsspec

    from mlpipe_provider.sdk import Workspace

    project = work / "project"
    project.mkdir()
    os.chdir(project)
    ws = Workspace.from_config()
    store = register_blob_datastore(ws, server, default=True)
    access = store._access()
    plain = fsspec.filesystem(access.fs.protocol[0], skip_instance_cache=True, **access.options)
    return Env(work, ws, store, access, plain, reps, verbose), server


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    env, server = setup(work, args.reps, not args.quiet)
    rows: list[Row] = []
    try:
        from airflow.utils import db

        with quiet(work / "airflow-output.log"):
            db.initdb()
        hush()
        sets = [(f"{args.blobs} x {human(args.size)}", args.blobs, args.size, True)]
        if args.large:
            sets.append((f"{args.large[0]} x {human(args.large[1])}", *args.large, False))
        for index, (label, count, size, pipeline) in enumerate(sets):
            tag = f"set{index}"
            local = work / "local" / tag
            files = make_local(local, count, size, tag)
            env.say(f"{label}: {len(files)} local files written")
            before = len(rows)
            prefix, copy_row = measure_transfers(env, tag, local, files, rows)
            measure_fingerprints(env, tag, local, files, prefix, copy_row, rows)
            list_row = next(r for r in rows[before:] if r.measure == "fingerprint, no change")
            if pipeline and not args.no_pipeline:
                measure_pipeline(env, tag, files, prefix, list_row, copy_row, rows)
            for row in rows[before:]:
                row.data = label
            shutil.rmtree(local)
    finally:
        os.chdir(REPO)
        server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1000, help="blobs in the main set (1000)")
    parser.add_argument("--size", type=parse_size, default=parse_size("64KiB"), help="64KiB")
    parser.add_argument(
        "--large", type=parse_large, default=parse_large("4x64MiB"), help="4x64MiB, or none"
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians (3)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the dag.test() part")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    check(args.blobs > 0 and args.reps > 0, "--blobs and --reps must be positive")

    started = time.perf_counter()
    load = os.getloadavg()
    print(f"# mlpipe blob benchmark (Azurite), {date.today().isoformat()}, {os.cpu_count()} CPUs")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-blob-"))
    try:
        rows = run(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(
        f"\n## Results (medians of {args.reps} repetitions; no-change fingerprints and listings:"
        f" {WARM_SAMPLES} per repetition; ratio = mlpipe time / baseline time)\n"
    )
    print(table(rows))
    print(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"all checks passed; total benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
