"""Benchmark: a ParallelRunStep over many small files, against one PythonScriptStep looping over them.

Run from the repository root:

    .venv/bin/python bench/parallel_run.py

It writes ``--files`` small files (default 1,000) into an embedded workspace's datastore and
builds two one-step pipelines that do the same work and write the same rows:

* **ParallelRunStep**, ``mini_batch_size`` = ``--batch`` (default 10): a partition task, one
  Airflow mapped task per mini-batch, and the step that gathers ``parallel_run_step.txt``;
* **PythonScriptStep**, the baseline: one script that loops over every file (``init()`` once,
  then the same ``run()`` per file).

Every run is ``dag.test()`` in this process (one SQLite ``AIRFLOW_HOME``), after one untimed
warm-up run of each DAG. ``dag.test()`` runs task instances one after another, so the mapped
mini-batches do not run concurrently here: the ratio is what mapping and per-mini-batch
processes cost, not what a scheduler with several workers gains. Timed cases, in this order:

1. both pipelines, everything runs (``regenerate_outputs=True``): the cost of the mapping;
2. ``--changed`` files (default 10, spread over as many mini-batches) get new bytes: the
   baseline runs everything again; the ParallelRunStep runs only the mini-batches holding those
   files and takes the rest from the store. Compared with its own full rerun (case 1);
3. nothing changed: both are reused whole by the plan task.

It checks that both pipelines wrote the same rows. ``--check`` exits 1 when the partial rerun
is not faster than the full rerun. Everything is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCORE = """
    def score(path):
        values = [int(v) for v in open(path).read().split()]
        return f"{os.path.basename(path)} {sum(values)} {max(values)}"
"""

ENTRY = (
    """
    import os

    def init():
        pass
"""
    + SCORE
    + """
    def run(mini_batch):
        return [score(path) for path in mini_batch]
"""
)

LOOP = (
    """
    import os, sys
"""
    + SCORE
    + """
    folder, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rows = [score(os.path.join(folder, name)) for name in sorted(os.listdir(folder))]
    with open(os.path.join(out, "parallel_run_step.txt"), "w") as f:
        f.writelines(row + "\\n" for row in rows)
"""
)


def configure_airflow(home: Path) -> None:
    """Airflow reads these at import: this runs before anything imports airflow."""
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
def quiet(log_path: Path):
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


def write_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"item-{i:05d}.txt").write_text(
            " ".join(str((i * 7 + k) % 97) for k in range(20))
        )


def build(ws, batch: int):
    from mlpipe_provider.sdk import (
        DataReference,
        Dataset,
        Environment,
        ParallelRunConfig,
        ParallelRunStep,
        Pipeline,
        PipelineData,
        PythonScriptStep,
    )

    store = ws.get_default_datastore()
    files = Dataset.File.from_files(path=(store, "bench/in"), validate=False)
    config = ParallelRunConfig(
        environment=Environment("bench"),
        entry_script="entry.py",
        error_threshold=0,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size=batch,
        source_directory="src",
    )
    parallel = ParallelRunStep(
        name="score",
        parallel_run_config=config,
        inputs=[files.as_named_input("items")],
        output=PipelineData("scored", datastore=store),
    )
    raw = DataReference(store, data_reference_name="items", path_on_datastore="bench/in")
    out = PipelineData("scored", datastore=store)
    loop = PythonScriptStep(
        "loop.py",
        name="score",
        arguments=[raw, out],
        inputs=[raw],
        outputs=[out],
        source_directory="src",
    )
    return Pipeline(ws, [parallel]), Pipeline(ws, [loop])


def _rows(ws, dag_run, task_id: str) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from mlpipe_provider.contract.constants import PLAN_TASK_ID, planned_record

    with create_session() as session:
        xcoms = {
            (x.task_id, x.key): XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_run.dag_id,
                    XComModel.run_id == dag_run.run_id,
                    XComModel.map_index == -1,
                )
            )
        }
    record = xcoms.get((task_id, "return_value")) or planned_record(
        xcoms.get((PLAN_TASK_ID, "return_value")), task_id
    )
    folder = ws._dir / "datastores" / "workspaceblobstore" / record["outputs"]["scored"]["path"]
    return (folder / "parallel_run_step.txt").read_text().splitlines()


LOG: Path | None = None


def _timed(dag, conf: dict | None = None) -> tuple[float, object]:
    assert LOG is not None
    with quiet(LOG):
        start = time.perf_counter()
        dag_run = dag.test(run_conf=conf)
        elapsed = time.perf_counter() - start
    if str(dag_run.state) != "success":
        raise RuntimeError(f"{dag.dag_id}: run ended {dag_run.state}")
    return elapsed, dag_run


def run(args: argparse.Namespace, work: Path) -> dict[str, list[float]]:
    global LOG
    LOG = work / "airflow-and-steps.log"
    project = work / "project"
    home = work / "airflow"
    project.mkdir(parents=True)
    configure_airflow(home)
    os.chdir(project)
    sys.path.insert(0, str(REPO))
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from compiler.compile import compile_pipeline
    from mlpipe_provider.sdk import Workspace

    db.initdb()
    ws = Workspace.from_config()
    src = project / "src"
    src.mkdir()
    (src / "entry.py").write_text(textwrap.dedent(ENTRY))
    (src / "loop.py").write_text(textwrap.dedent(LOOP))
    data = ws._dir / "datastores" / "workspaceblobstore" / "bench" / "in"
    write_files(data, args.files)
    parallel_pipeline, loop_pipeline = build(ws, args.batch)
    dags = {}
    for name, pipeline in (("bench_parallel", parallel_pipeline), ("bench_loop", loop_pipeline)):
        compiled = compile_pipeline(pipeline, name, home / "dags")
        compiled.write()
        dags[name] = DagBag(dag_folder=str(compiled.path)).get_dag(name)
    regenerate = {"mlpipe_regenerate_outputs": True}
    # given every time: dag.test(run_conf=...) leaves its values on the DAG's params for later runs
    normal = {"mlpipe_regenerate_outputs": False}
    times: dict[str, list[float]] = {}

    def note(case: str, seconds: float) -> None:
        times.setdefault(case, []).append(seconds)
        print(f"  {case}: {seconds:.2f} s", flush=True)

    _timed(dags["bench_loop"], normal)  # warm-up: the first dag.test() pays the imports
    _timed(dags["bench_parallel"], normal)
    stride = max(args.files // max(args.changed, 1), 1)
    for rep in range(args.reps):
        seconds, loop_run = _timed(dags["bench_loop"], regenerate)
        note("loop full", seconds)
        seconds, parallel_run = _timed(dags["bench_parallel"], regenerate)
        note("parallel full", seconds)
        if _rows(ws, loop_run, "score") != _rows(ws, parallel_run, "score.parallel_run"):
            raise RuntimeError("the two pipelines wrote different rows")
        for i in range(0, stride * args.changed, stride):
            (data / f"item-{i:05d}.txt").write_text(f"{rep} {i} 1000")
        seconds, _ = _timed(dags["bench_parallel"], normal)
        note("parallel changed", seconds)
        seconds, _ = _timed(dags["bench_loop"], normal)
        note("loop changed", seconds)
        seconds, _ = _timed(dags["bench_parallel"], normal)
        note("parallel unchanged", seconds)
        seconds, _ = _timed(dags["bench_loop"], normal)
        note("loop unchanged", seconds)
    return times


def table(args: argparse.Namespace, times: dict[str, list[float]]) -> str:
    med = {case: statistics.median(values) for case, values in times.items()}
    batches = -(-args.files // args.batch)
    rows = [
        (
            "everything runs",
            f"ParallelRunStep, {batches} mapped mini-batches",
            med["parallel full"],
            f"{med['parallel full'] / med['loop full']:.2f}x the loop",
        ),
        ("everything runs", "PythonScriptStep loop (baseline)", med["loop full"], "1.00x"),
        (
            f"{args.changed} files changed",
            f"ParallelRunStep, {args.changed} of {batches} mini-batches run",
            med["parallel changed"],
            f"{med['parallel changed'] / med['parallel full']:.2f}x its full rerun, "
            f"{med['parallel changed'] / med['loop changed']:.2f}x the loop",
        ),
        (
            f"{args.changed} files changed",
            "PythonScriptStep loop (runs everything)",
            med["loop changed"],
            "1.00x",
        ),
        (
            "nothing changed",
            "ParallelRunStep, reused whole",
            med["parallel unchanged"],
            f"{med['parallel unchanged'] / med['loop unchanged']:.2f}x the loop",
        ),
        ("nothing changed", "PythonScriptStep loop, reused", med["loop unchanged"], "1.00x"),
    ]
    lines = [
        f"\n## ParallelRunStep vs one looping PythonScriptStep: {args.files} files, "
        f"mini_batch_size {args.batch} (dag.test(), medians of {args.reps})\n",
        "| case | pipeline | s | ratio |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {case} | {what} | {seconds:.2f} | {ratio} |" for case, what, seconds, ratio in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-prs-"))
    started = time.perf_counter()
    try:
        times = run(args, work)
    except Exception:
        log = work / "airflow-and-steps.log"
        if log.exists():
            print(log.read_text(errors="replace")[-6000:])
        raise
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(args, times))
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s")
    if args.check:
        partial = statistics.median(times["parallel changed"])
        full = statistics.median(times["parallel full"])
        if partial >= full:
            print(f"CHECK FAILED: partial rerun {partial:.2f} s >= full rerun {full:.2f} s")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
