"""Benchmark: build, compile and Airflow-load synthetic pipelines of 10, 100 and 1,000 steps.

Run from the repository root:

    .venv/bin/python bench/compile.py

Two shapes are measured: ``chain`` (each step reads the previous step's PipelineData) and
``fan`` (one source step, N-2 parallel steps each reading the source's output, one sink reading
all of them). For each (shape, steps) it times

* building the ``Pipeline`` objects (PipelineData, PythonScriptStep, Pipeline),
* compiling them (``compile_pipeline``, which lowers, validates and renders the DAG text),
* loading the written DAG file with Airflow's ``DagBag`` in a fresh subprocess per load (wall
  time of the ``DagBag(...)`` call and the child's peak RSS), next to a plain hand-written DAG
  file with the same tasks (``EmptyOperator``) and the same edges, loaded the same way,
* optionally the same shapes compiled with KFP v2 (lightweight components) when ``kfp`` can be
  imported, by this interpreter or by the one named with ``--kfp-python`` /
  ``$MLPIPE_BENCH_KFP_PYTHON`` (kfp pins older protobuf/kubernetes than Airflow, so a separate
  virtualenv is the safe way to have it).

Everything runs inside a temporary directory (the embedded workspace ``.mlpipe/``, DAG files,
``AIRFLOW_HOME``) that is removed at the end. Figures are medians of the repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from compiler.compile import compile_pipeline  # noqa: E402
from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep, Workspace  # noqa: E402

SHAPES = ("chain", "fan")
TARGET_BUILD_COMPILE_S = 0.5
TARGET_LOAD_S = 3.0
TARGET_PEAK_MB = 300.0

# --- the shapes, as plain data: (task name, [names of the tasks it reads from]) -------------


def shape_edges(shape: str, n: int) -> list[tuple[str, list[str]]]:
    """The tasks of a shape in definition order, each with the tasks whose output it reads."""
    if n < 3:
        raise ValueError("shapes need at least 3 steps")
    if shape == "chain":
        names = [f"step_{i}" for i in range(n)]
        return [(names[0], [])] + [(names[i], [names[i - 1]]) for i in range(1, n)]
    if shape == "fan":
        branches = [f"branch_{i}" for i in range(n - 2)]
        return [("source", []), *[(b, ["source"]) for b in branches], ("sink", branches)]
    raise ValueError(f"unknown shape {shape!r}")


# --- mlpipe -------------------------------------------------------------------------------


def build_pipeline(ws: Workspace, shape: str, n: int) -> Pipeline:
    """The shape as mlpipe steps: every step writes one PipelineData and reads its upstreams'."""
    outputs: dict[str, PipelineData] = {}
    steps = []
    for name, reads in shape_edges(shape, n):
        inputs = [outputs[r] for r in reads]
        out = PipelineData(f"{name}_out")
        outputs[name] = out
        steps.append(
            PythonScriptStep(
                "step.py",
                name=name,
                arguments=[*[a for data in inputs for a in ("--input", data)], "--output", out],
                inputs=inputs,
                outputs=[out],
                source_directory="src",
            )
        )
    return Pipeline(ws, steps)


# --- the plain Airflow baseline -----------------------------------------------------------


def plain_dag_text(dag_id: str, shape: str, n: int) -> str:
    """A hand-written DAG file: one EmptyOperator per task, one ``a >> b`` line per edge."""
    spec = shape_edges(shape, n)
    lines = [
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "from airflow.sdk import DAG",
        "",
        f"with DAG(dag_id={dag_id!r}, schedule=None, tags=['bench']) as dag:",
    ]
    lines += [f"    {name} = EmptyOperator(task_id={name!r})" for name, _ in spec]
    lines.append("")
    lines += [f"    {up} >> {name}" for name, reads in spec for up in reads]
    return "\n".join(lines) + "\n"


# --- loading in a fresh process -----------------------------------------------------------

LOAD_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from airflow.dag_processing.dagbag import DagBag
    path, dag_id = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    bag = DagBag(dag_folder=path)
    load_s = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dag = bag.dags.get(dag_id)
    print(json.dumps({
        "load_s": load_s,
        "peak_mb": rss / (1024 * 1024 if sys.platform == "darwin" else 1024),
        "errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
        "tasks": len(dag.tasks) if dag else None,
        "edges": sum(len(t.downstream_task_ids) for t in dag.tasks) if dag else None,
    }))
    """
)


@dataclass
class Load:
    load_s: float
    peak_mb: float
    wall_s: float


def load_in_child(path: Path, dag_id: str, env: dict[str, str], tasks: int, edges: int) -> Load:
    """``DagBag(dag_folder=path)`` in a new interpreter; checks the DAG came out whole."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_CHILD, str(path), dag_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"DagBag child failed for {path}:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["errors"] or result["tasks"] != tasks or result["edges"] != edges:
        raise RuntimeError(
            f"{path}: expected {tasks} tasks and {edges} edges, got {result['tasks']} tasks, "
            f"{result['edges']} edges, import errors {result['errors']}"
        )
    return Load(load_s=result["load_s"], peak_mb=result["peak_mb"], wall_s=wall)


def child_env(airflow_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLPIPE_WORKSPACE", None)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            # No .pyc next to the DAG file: every load compiles the source, as a first parse does.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


# --- KFP (optional) -----------------------------------------------------------------------

KFP_CHILD = textwrap.dedent(
    """
    import importlib.util, json, os, statistics, sys, time
    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Input, Output

    @dsl.component(base_image="python:3.11")
    def source(out: Output[Dataset]):
        open(out.path, "w").write("x")

    @dsl.component(base_image="python:3.11")
    def branch(inp: Input[Dataset], out: Output[Dataset]):
        open(out.path, "w").write(open(inp.path).read())

    def sink_component(n, tmp):
        # KFP has no variadic artifact inputs: the sink is a component with N-2 parameters,
        # written to a module so that KFP can read its source like any user component.
        k = n - 2
        params = ", ".join(f"in{i}: Input[Dataset]" for i in range(k))
        path = os.path.join(tmp, f"kfp_sink_{n}.py")
        with open(path, "w") as fh:
            fh.write("from kfp import dsl\\nfrom kfp.dsl import Dataset, Input\\n")
            fh.write(f"@dsl.component(base_image='python:3.11')\\ndef sink({params}):\\n    pass\\n")
        spec = importlib.util.spec_from_file_location(f"kfp_sink_{n}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.sink

    def chain(n, sink):
        @dsl.pipeline(name=f"chain-{n}")
        def pipeline():
            task = source()
            for _ in range(n - 1):
                task = branch(inp=task.outputs["out"])
        return pipeline

    def fan(n, sink):
        @dsl.pipeline(name=f"fan-{n}")
        def pipeline():
            first = source()
            mids = [branch(inp=first.outputs["out"]) for _ in range(n - 2)]
            sink(**{f"in{i}": m.outputs["out"] for i, m in enumerate(mids)})
        return pipeline

    cfg = json.loads(sys.argv[1])
    tmp = cfg["tmp"]
    out = {}
    for n in cfg["sizes"]:
        sink = sink_component(n, tmp)
        for shape, make in (("chain", chain), ("fan", fan)):
            times = []
            for rep in range(cfg["reps"]):
                yaml_path = os.path.join(tmp, f"kfp_{shape}_{n}_{rep}.yaml")
                start = time.perf_counter()
                compiler.Compiler().compile(make(n, sink), yaml_path)
                times.append(time.perf_counter() - start)
            out[f"{shape}/{n}"] = statistics.median(times)
    print(json.dumps(out))
    """
)


def find_kfp_python(explicit: str | None) -> str | None:
    """An interpreter that can import kfp: the one given, else this one, else None."""
    if explicit:
        probe = subprocess.run([explicit, "-c", "import kfp"], capture_output=True)
        if probe.returncode != 0:
            print(f"note: {explicit} cannot import kfp; skipping KFP", file=sys.stderr)
            return None
        return explicit
    return sys.executable if importlib.util.find_spec("kfp") is not None else None


def run_kfp(python: str, sizes: list[int], reps: int, tmp: Path) -> dict[str, float]:
    cfg = json.dumps({"sizes": sizes, "reps": reps, "tmp": str(tmp)})
    script = tmp / "kfp_child.py"  # a file, not ``-c``: KFP reads its components' source
    script.write_text(KFP_CHILD, encoding="utf-8")
    proc = subprocess.run([python, str(script), cfg], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"note: KFP run failed, reporting n/a:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Row:
    shape: str
    steps: int
    build_s: float = 0.0
    compile_s: float = 0.0
    build_compile_s: float = 0.0
    file_kb: float = 0.0
    ours: list[Load] = field(default_factory=list)
    plain: list[Load] = field(default_factory=list)
    kfp_s: float | None = None

    def median(self, loads: list[Load], attr: str) -> float:
        return statistics.median(getattr(load, attr) for load in loads)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def measure_compile(ws: Workspace, row: Row, reps: int, dags: Path) -> Path:
    """Median build / compile / build+compile over ``reps`` fresh builds; returns the DAG path."""
    builds, compiles, totals, texts = [], [], [], set()
    dag_id = f"bench_{row.shape}_{row.steps}"
    compiled = None
    for _ in range(reps):
        build_s, pipeline = timed(lambda: build_pipeline(ws, row.shape, row.steps))
        compile_s, compiled = timed(lambda p=pipeline: compile_pipeline(p, dag_id, dags))
        builds.append(build_s)
        compiles.append(compile_s)
        totals.append(build_s + compile_s)
        texts.add(compiled.text)
    if len(texts) != 1:
        raise RuntimeError(f"{dag_id}: compiling the same pipeline gave different bytes")
    compiled.write()
    row.build_s = statistics.median(builds)
    row.compile_s = statistics.median(compiles)
    row.build_compile_s = statistics.median(totals)
    row.file_kb = len(compiled.text.encode("utf-8")) / 1024
    return compiled.path


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    head = [
        "shape",
        "steps",
        "build s",
        "compile s",
        "build+compile s",
        "ms/step",
        "DAG file KB",
        "DagBag load s",
        "DagBag peak MB",
        "child wall s ours / plain",
        "plain-DAG load s",
        "plain peak MB",
        "load ratio",
        "kfp s / ratio",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        load = r.median(r.ours, "load_s")
        plain = r.median(r.plain, "load_s")
        kfp = "n/a" if r.kfp_s is None else f"{r.kfp_s:.3f} / {r.kfp_s / r.build_compile_s:.1f}x"
        cells = [
            r.shape,
            str(r.steps),
            fmt(r.build_s, 4),
            fmt(r.compile_s, 4),
            fmt(r.build_compile_s, 4),
            fmt(1000 * r.build_compile_s / r.steps, 3),
            fmt(r.file_kb, 0),
            fmt(load),
            fmt(r.median(r.ours, "peak_mb"), 0),
            f"{r.median(r.ours, 'wall_s'):.2f} / {r.median(r.plain, 'wall_s'):.2f}",
            fmt(plain),
            fmt(r.median(r.plain, "peak_mb"), 0),
            f"{load / plain:.2f}x",
            kfp,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_report(rows: list[Row]) -> tuple[list[str], bool]:
    """Check the 1,000-step targets (or the largest size measured)."""
    largest = max(r.steps for r in rows)
    lines, ok = [], True
    for r in (r for r in rows if r.steps == largest):
        checks = [
            ("build+compile", r.build_compile_s, TARGET_BUILD_COMPILE_S, "s"),
            ("DagBag load", r.median(r.ours, "load_s"), TARGET_LOAD_S, "s"),
            ("DagBag peak", r.median(r.ours, "peak_mb"), TARGET_PEAK_MB, "MB"),
        ]
        for what, value, limit, unit in checks:
            passed = value <= limit
            ok &= passed
            lines.append(
                f"- {r.shape} {r.steps}: {what} {value:.3f} {unit} "
                f"(target <= {limit:g} {unit}) {'ok' if passed else 'MISSED'}"
            )
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated step counts")
    parser.add_argument("--reps", type=int, default=3, help="build/compile repetitions")
    parser.add_argument(
        "--load-reps",
        type=int,
        default=None,
        help="DagBag loads per file (default: 3 for the largest size, 1 for the others)",
    )
    parser.add_argument(
        "--kfp-python",
        default=os.environ.get("MLPIPE_BENCH_KFP_PYTHON"),
        help="an interpreter with kfp installed (default: $MLPIPE_BENCH_KFP_PYTHON, else this one)",
    )
    parser.add_argument("--no-kfp", action="store_true", help="skip the KFP comparison")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target for the largest size is missed"
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    started = time.perf_counter()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.chdir(tmp)
        try:
            rows = run(args, sizes, tmp)
        finally:
            os.chdir(cwd)
    print(table(rows))
    print()
    lines, ok = target_report(rows)
    print("\n".join(lines))
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0 if ok or not args.check else 1


def run(args: argparse.Namespace, sizes: list[int], tmp: Path) -> list[Row]:
    (tmp / "src").mkdir()
    (tmp / "src" / "step.py").write_text("print('step')\n", encoding="utf-8")
    with contextlib.redirect_stderr(io.StringIO()):  # the "using the embedded workspace" notice
        ws = Workspace.from_config()
    dags = tmp / "dags"
    airflow_home = tmp / "airflow_home"
    (airflow_home / "dags").mkdir(parents=True)
    env = child_env(airflow_home)

    rows = [Row(shape, n) for n in sizes for shape in SHAPES]
    paths: dict[tuple[str, int], tuple[Path, Path]] = {}
    for row in rows:
        ours = measure_compile(ws, row, args.reps, dags)
        plain = dags / f"plain_{row.shape}_{row.steps}.py"
        plain.write_text(plain_dag_text(plain.stem, row.shape, row.steps), encoding="utf-8")
        paths[row.shape, row.steps] = (ours, plain)

    for row in rows:
        ours, plain = paths[row.shape, row.steps]
        edges = sum(len(reads) for _, reads in shape_edges(row.shape, row.steps))
        reps = args.load_reps or (3 if row.steps == max(sizes) else 1)
        for _ in range(reps):  # interleaved, so drift on a noisy machine hits both alike
            row.ours.append(load_in_child(ours, ours.stem, env, row.steps, edges))
            row.plain.append(load_in_child(plain, plain.stem, env, row.steps, edges))

    kfp_python = None if args.no_kfp else find_kfp_python(args.kfp_python)
    if kfp_python is not None:
        kfp = run_kfp(kfp_python, sizes, args.reps, tmp)
        for row in rows:
            row.kfp_s = kfp.get(f"{row.shape}/{row.steps}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
