"""Benchmark: mlpipe at scale on a real Airflow (api-server, scheduler, dag-processor, triggerer).

Run from the repository root:

    uv run --frozen python bench/scale.py            # 1,000 steps, 20 concurrent runs
    uv run --frozen python bench/scale.py --quick    # 20 steps, 3 concurrent runs (CI smoke)

Three parts, each against a plain Airflow baseline measured in the same run on the same machine
(the machines are shared and noisy, so the ratio is the figure to compare across runs):

1. **Parse.** A ``--steps``-step pipeline of tiny ``PythonScriptStep``s passing ``PipelineData``
   (chains with fan-out, fan-in and a final join, see ``shape``) is compiled (timed) and its DAG
   file is loaded with ``DagBag`` in a fresh process per load (wall time and peak RSS), next to
   plain DAG files of ``EmptyOperator``s with the same tasks and edges (one task per step, and two
   per step, the task count of the earlier design with a reuse sensor per step; today a step is
   one task, plus one plan task per DAG). The DAG processor of the
   real server parses the same files; its own ``last_parse_duration`` is reported too.
2. **Run.** The pipeline runs to completion on the server (LocalExecutor, SQLite, ``--parallelism``
   worker slots), then runs again with the same parameters, when every step must be reused. Each
   step computes a number from its inputs and writes it to its output; every step's output file is
   read back and checked against the value computed here. The baseline is a plain DAG with the same
   tasks and edges made of no-op ``PythonOperator``s, run on the same server.
3. **Concurrency.** ``--runs`` runs of a ``--concurrent-steps``-step pipeline are triggered at once
   through the REST API, each with its own parameter value (so every run computes every step), and
   then ``--runs`` more with one shared new value (so concurrent runs single-flight each step: one
   computes, the others wait and reuse). Every run's outputs are checked. The baseline is the same
   number of runs of a plain DAG with the same tasks and edges.

Everything lives in a temporary folder (the project, its embedded workspace, ``AIRFLOW_HOME``,
the server's logs) that is removed at the end unless ``--keep`` is given. The server is stopped
on every exit path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests", REPO / "bench"):  # tests/airflow_server.py: the tests' server
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from airflow_server import AirflowServer  # noqa: E402
from dag_parse import ParseCase, child_env, load_in_child  # noqa: E402
from shapes import (  # noqa: E402
    STEP_SCRIPT,
    build_pipeline,
    expected_values,
    plain_dag_text,
    plain_edges,
    shape,
)

from compiler.compile import compile_pipeline  # noqa: E402
from mlpipe_provider.airflow_api import AirflowClient  # noqa: E402

# --- parts 2 and 3: runs on the server ----------------------------------------------------


@dataclass
class RunSet:
    """One or more DAG runs triggered together, and what came of them."""

    label: str
    dag_id: str
    tasks_per_run: int
    run_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0  # first trigger to the last run's end (server timestamps)
    checks: list[str] = field(default_factory=list)
    executed_steps: int | None = None
    reused_steps: int | None = None

    @property
    def task_instances(self) -> int:
        return self.tasks_per_run * len(self.run_ids)


def _ts(value: str | None) -> float:
    if not value:
        raise RuntimeError("a finished run has no timestamp")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Bench:
    """The server, the workspace and the REST client of one benchmark run."""

    def __init__(self, work: Path, parallelism: int, timeout_s: float):
        self.work = work
        self.project = work / "project"
        (self.project / "src").mkdir(parents=True)
        (self.project / "src" / "step.py").write_text(STEP_SCRIPT, encoding="utf-8")
        self.server = AirflowServer(work / "airflow", parallelism=parallelism)
        # Airflow's default re-parse interval, not the tests' 2 s: a deployment does not
        # re-parse a 1,000-step file every 2 s, and on 2 cores that would eat a core.
        self.server.env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] = "30"
        self.client = AirflowClient(self.server.url, timeout_s=120)
        self.timeout_s = timeout_s
        self.ws: Any = None
        self.datastore: Any = None

    def open_workspace(self) -> None:
        from mlpipe_provider.config import load_config
        from mlpipe_provider.datastores import open_datastore
        from mlpipe_provider.sdk import Workspace

        os.chdir(self.project)  # source_directory="src" is relative to the project
        self.ws = Workspace(_workspace_dir=self.project / ".mlpipe")
        config = load_config(self.ws._dir)
        self.datastore = open_datastore(self.ws._dir, config, config.default_datastore)

    def trigger_all(self, runs: RunSet, confs: list[dict[str, Any]]) -> None:
        """Trigger every run at once, wait for all, record the wall time from server timestamps."""
        started = time.time()
        for conf in confs:
            runs.run_ids.append(self.client.trigger(runs.dag_id, conf=conf)["dag_run_id"])
        deadline = time.monotonic() + self.timeout_s
        pending = set(runs.run_ids)
        finished: dict[str, dict[str, Any]] = {}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{runs.label}: {len(pending)} runs not done in {self.timeout_s} s"
                )
            time.sleep(2 if len(runs.run_ids) > 1 or runs.tasks_per_run < 200 else 5)
            for run_id in sorted(pending):
                info = self.client.dag_run(runs.dag_id, run_id)
                if info["state"] in ("success", "failed"):
                    finished[run_id] = info
                    pending.discard(run_id)
        failed = [r for r, info in finished.items() if info["state"] != "success"]
        if failed:
            raise RuntimeError(f"{runs.label}: runs {failed} failed (logs under {self.work})")
        first = min(
            min(_ts(i.get("queued_at") or i["start_date"]) for i in finished.values()), started
        )
        runs.wall_s = max(_ts(i["end_date"]) for i in finished.values()) - first

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {ti["task_id"]: ti["state"] for ti in self.client.task_instances(dag_id, run_id)}

    def step_records(
        self, dag_id: str, run_id: str, spec: list[tuple[str, list[str]]]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Each step's record in one run: its own XCom (when it ran, or found its result as it
        started), or the plan task's ``reused:<step>`` XCom (when the plan skipped it)."""
        from mlpipe_provider.contract.constants import PLAN_TASK_ID, planned_record

        states = self.states(dag_id, run_id)
        records: dict[str, dict[str, Any]] = {}
        for name, _ in spec:
            step = states.get(name)
            if states.get(PLAN_TASK_ID) != "success" or step not in ("success", "skipped"):
                raise RuntimeError(f"{dag_id}/{run_id}: step {name}: {step}, plan {states}")
            if step == "success":
                record = self.client.xcom(dag_id, run_id, name)
            else:
                plan = self.client.xcom(dag_id, run_id, PLAN_TASK_ID)
                record = planned_record(plan, name) or self.client.xcom(dag_id, run_id, name)
                if not (isinstance(record, dict) and record.get("reused")):
                    raise RuntimeError(f"{dag_id}/{run_id}: {name} skipped without reuse")
            if not isinstance(record, dict) or f"{name}_out" not in record.get("outputs", {}):
                raise RuntimeError(f"{dag_id}/{run_id}: {name} has no output record: {record}")
            records[name] = record
        return records, states

    def check_outputs(
        self, runs: RunSet, spec: list[tuple[str, list[str]]], seeds: list[int]
    ) -> list[dict[str, dict[str, Any]]]:
        """Read every step's output file of every run and compare it with the expected value."""
        all_records = []
        executed = reused = 0
        for run_id, seed in zip(runs.run_ids, seeds, strict=True):
            expected = expected_values(spec, seed)
            records, states = self.step_records(runs.dag_id, run_id, spec)
            if len(states) != runs.tasks_per_run:
                raise RuntimeError(
                    f"{run_id}: {len(states)} task instances, not {runs.tasks_per_run}"
                )
            for name, record in records.items():
                location = record["outputs"][f"{name}_out"]
                path = self.datastore.local_path(location["path"]) / "value.txt"
                got = int(path.read_text())
                if got != expected[name]:
                    raise RuntimeError(
                        f"{run_id}: step {name} wrote {got}, expected {expected[name]} ({path})"
                    )
                if states[name] == "success":
                    executed += 1
                else:
                    reused += 1
            all_records.append(records)
        runs.executed_steps, runs.reused_steps = executed, reused
        runs.checks.append(f"{len(runs.run_ids) * len(spec)} step outputs correct")
        return all_records

    def check_plain(self, runs: RunSet) -> None:
        for run_id in runs.run_ids:
            states = self.states(runs.dag_id, run_id)
            if len(states) != runs.tasks_per_run or set(states.values()) != {"success"}:
                bad = {t: s for t, s in states.items() if s != "success"}
                raise RuntimeError(
                    f"{runs.dag_id}/{run_id}: {len(states)} tasks, not all ok: {bad}"
                )
        runs.checks.append(f"{runs.task_instances} task instances success")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def processor_parse_s(client: AirflowClient, dag_id: str) -> float | None:
    """The DAG processor's own parse time for the file holding ``dag_id``."""
    info = client.dag(dag_id) or {}
    return info.get("last_parse_duration")


# --- the run ------------------------------------------------------------------------------


@dataclass
class Results:
    steps: int
    tasks: int
    build_s: float = 0.0
    compile_s: float = 0.0
    file_kb: float = 0.0
    parse: list[ParseCase] = field(default_factory=list)
    server_start_s: float = 0.0
    dags_ready_s: float = 0.0
    runs: list[RunSet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def run(args: argparse.Namespace, work: Path, results: Results) -> None:
    bench = Bench(work, args.parallelism, args.timeout)
    bench.open_workspace()
    big_spec = shape(args.steps)
    small_spec = shape(args.concurrent_steps)
    dags = bench.server.dags

    # Part 1: compile, and parse in fresh processes (before the server takes the CPUs).
    build_s, pipeline = timed(lambda: build_pipeline(bench.ws, big_spec))
    big_id = f"scale_{args.steps}"
    compile_s, compiled = timed(lambda: compile_pipeline(pipeline, big_id, dags))
    results.build_s, results.compile_s = build_s, compile_s
    results.file_kb = len(compiled.text.encode()) / 1024
    compiled.write()
    small_id = f"scale_{args.concurrent_steps}"
    compile_pipeline(build_pipeline(bench.ws, small_spec), small_id, dags).write()

    files: dict[str, tuple[Path, int, int]] = {big_id: (compiled.path, 0, 0)}
    plain_files = [
        (f"plain_empty_{2 * args.steps}", big_spec, 2, "empty"),
        (f"plain_empty_{args.steps}", big_spec, 1, "empty"),
        (f"plain_python_{2 * args.steps}", big_spec, 2, "python"),
        (f"plain_python_{2 * args.concurrent_steps}", small_spec, 2, "python"),
    ]
    for dag_id, spec, per_step, operator in plain_files:
        path = dags / f"{dag_id}.py"
        path.write_text(plain_dag_text(dag_id, spec, per_step, operator), encoding="utf-8")
        tasks, edges = plain_edges(spec, per_step)
        files[dag_id] = (path, len(tasks), len(edges))
    big_tasks, big_edges = plain_edges(big_spec, 2)
    files[big_id] = (compiled.path, len(big_tasks), len(big_edges))
    labels = {
        big_id: f"mlpipe, {args.steps} steps",
        f"plain_empty_{2 * args.steps}": f"plain EmptyOperator, {2 * args.steps} tasks",
        f"plain_empty_{args.steps}": f"plain EmptyOperator, {args.steps} tasks",
        f"plain_python_{2 * args.steps}": f"plain PythonOperator, {2 * args.steps} tasks",
    }
    parse_cases = [ParseCase(labels[d], *files[d]) for d in labels]
    home = work / "parse_home"
    (home / "dags").mkdir(parents=True)
    env = child_env(home)
    for _ in range(args.parse_reps):  # interleaved, so drift on a noisy machine hits all alike
        for case in parse_cases:
            load_in_child(case, env)
    results.parse = parse_cases
    if args.parse_only:
        return
    print(f"[{time.strftime('%H:%M:%S')}] parse done; starting the server", flush=True)

    # Parts 2 and 3 on the real server.
    start = time.perf_counter()
    bench.server.start()
    results.server_start_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        for dag_id in files:
            bench.server.wait_for_dag(dag_id, timeout_s=300)
        results.dags_ready_s = time.perf_counter() - start
        for case in parse_cases:
            case.processor_s = processor_parse_s(bench.client, case.path.stem)
        run_on_server(args, bench, results, big_id, small_id, big_spec, small_spec)
    finally:
        bench.server.stop()


def run_on_server(
    args: argparse.Namespace,
    bench: Bench,
    results: Results,
    big_id: str,
    small_id: str,
    big_spec: list[tuple[str, list[str]]],
    small_spec: list[tuple[str, list[str]]],
) -> None:
    big_tasks = len(big_spec) + 1  # one task per step, and the plan task

    # Part 2: the big pipeline, computed, then fully reused; the plain DAG in between.
    first = RunSet(f"mlpipe {args.steps} steps, 1st run (all compute)", big_id, big_tasks)
    say(f"{first.label}: triggered")
    bench.trigger_all(first, [{"seed": 0}])
    (records_1,) = bench.check_outputs(first, big_spec, [0])
    if first.executed_steps != len(big_spec):
        raise RuntimeError(f"first run executed {first.executed_steps} of {len(big_spec)} steps")
    say(f"{first.label}: {first.wall_s:.1f} s, outputs checked")
    results.runs.append(first)
    if args.big_runs == "all":
        run_big_rest(args, bench, results, big_id, big_spec, records_1)
    if args.runs > 0:
        run_concurrent(args, bench, results, small_id, small_spec)


def run_big_rest(
    args: argparse.Namespace,
    bench: Bench,
    results: Results,
    big_id: str,
    big_spec: list[tuple[str, list[str]]],
    records_1: dict[str, dict[str, Any]],
) -> None:
    """The plain baseline of the big pipeline, then its second run, which must reuse every step."""
    big_tasks = 2 * len(big_spec)
    plain = RunSet(
        f"plain PythonOperator, {big_tasks} tasks", f"plain_python_{big_tasks}", big_tasks
    )
    bench.trigger_all(plain, [{}])
    bench.check_plain(plain)
    say(f"{plain.label}: {plain.wall_s:.1f} s")
    results.runs.append(plain)

    second = RunSet(f"mlpipe {args.steps} steps, 2nd run (all reused)", big_id, len(big_spec) + 1)
    bench.trigger_all(second, [{"seed": 0}])
    (records_2,) = bench.check_outputs(second, big_spec, [0])
    if second.reused_steps != len(big_spec):
        raise RuntimeError(f"second run reused {second.reused_steps} of {len(big_spec)} steps")
    wrong = [
        name
        for name, record in records_2.items()
        if record.get("reused_run_id") != records_1[name]["step_run_id"]
    ]
    if wrong:
        raise RuntimeError(f"steps reused something else than the first run's result: {wrong[:5]}")
    second.checks.append("each step reused the 1st run's step run")
    say(f"{second.label}: {second.wall_s:.1f} s, outputs checked")
    results.runs.append(second)


def run_concurrent(
    args: argparse.Namespace,
    bench: Bench,
    results: Results,
    small_id: str,
    small_spec: list[tuple[str, list[str]]],
) -> None:
    """Part 3: ``--runs`` runs of the small pipeline at once, distinct then identical params."""
    small_tasks = 2 * len(small_spec)
    n = args.runs
    sets = set(args.concurrent_sets.split(","))
    if "distinct" in sets:
        run_distinct(args, bench, results, small_id, small_spec)
    if "plain" in sets:
        plain_small = RunSet(
            f"{n} x plain PythonOperator, {small_tasks} tasks",
            f"plain_python_{small_tasks}",
            small_tasks,
        )
        bench.trigger_all(plain_small, [{} for _ in range(n)])
        bench.check_plain(plain_small)
        say(f"{plain_small.label}: {plain_small.wall_s:.1f} s")
        results.runs.append(plain_small)
    if "identical" in sets:
        run_identical(args, bench, results, small_id, small_spec)


def run_distinct(
    args: argparse.Namespace,
    bench: Bench,
    results: Results,
    small_id: str,
    small_spec: list[tuple[str, list[str]]],
) -> None:
    """``--runs`` runs at once, each with its own ``seed``: every run computes every step."""
    small_tasks, n = len(small_spec) + 1, args.runs
    distinct = RunSet(
        f"{n} x mlpipe {args.concurrent_steps} steps, distinct params", small_id, small_tasks
    )
    seeds = list(range(1, n + 1))
    bench.trigger_all(distinct, [{"seed": s} for s in seeds])
    bench.check_outputs(distinct, small_spec, seeds)
    if distinct.executed_steps != n * len(small_spec):
        raise RuntimeError(f"distinct runs executed {distinct.executed_steps} steps")
    say(f"{distinct.label}: {distinct.wall_s:.1f} s, outputs checked")
    results.runs.append(distinct)


def run_identical(
    args: argparse.Namespace,
    bench: Bench,
    results: Results,
    small_id: str,
    small_spec: list[tuple[str, list[str]]],
) -> None:
    """``--runs`` runs at once with one new ``seed``: each step is computed once (single flight)."""
    small_tasks, n = len(small_spec) + 1, args.runs
    same_seed = n + 1000  # never computed before
    same = RunSet(
        f"{n} x mlpipe {args.concurrent_steps} steps, identical params", small_id, small_tasks
    )
    bench.trigger_all(same, [{"seed": same_seed} for _ in range(n)])
    records = bench.check_outputs(same, small_spec, [same_seed] * n)
    if same.executed_steps != len(small_spec):
        raise RuntimeError(
            f"identical runs executed {same.executed_steps} steps, expected each of the "
            f"{len(small_spec)} steps exactly once (single flight)"
        )
    ids = {
        name: {r[name].get("reused_run_id") or r[name]["step_run_id"] for r in records}
        for name in records[0]
    }
    if any(len(v) != 1 for v in ids.values()):
        raise RuntimeError(f"identical runs did not share one result per step: {ids}")
    same.checks.append("each step computed once, shared by all runs")
    say(f"{same.label}: {same.wall_s:.1f} s, outputs checked")
    results.runs.append(same)


# --- reporting ----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def parse_table(results: Results) -> str:
    base = next(
        c
        for c in results.parse
        if c.label.startswith("plain EmptyOperator, " + str(2 * results.steps))
    )
    head = [
        "DAG file",
        "tasks",
        "DagBag load s (median)",
        "serialize s (median)",
        "peak RSS MB",
        "load ratio to plain Empty 2N",
        "load+serialize ratio",
        "dag-processor parse s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base_both = statistics.median(a + b for a, b in zip(base.load_s, base.serialize_s, strict=True))
    for case in results.parse:
        load = statistics.median(case.load_s)
        both = statistics.median(a + b for a, b in zip(case.load_s, case.serialize_s, strict=True))
        lines.append(
            "| "
            + " | ".join(
                [
                    case.label,
                    str(case.tasks),
                    fmt(load),
                    fmt(statistics.median(case.serialize_s)),
                    fmt(statistics.median(case.peak_mb), 0),
                    f"{load / statistics.median(base.load_s):.2f}x",
                    f"{both / base_both:.2f}x",
                    fmt(case.processor_s),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def runs_table(results: Results) -> str:
    head = [
        "runs",
        "DAG runs",
        "task instances",
        "wall s",
        "task instances / s",
        "steps executed / reused",
        "ratio to plain",
        "checks",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_label = {r.label: r for r in results.runs}
    plain_of: dict[str, RunSet] = {}
    for r in results.runs:
        if r.label.startswith("plain") or " x plain" in r.label:
            continue
        plain_of[r.label] = next(
            (
                p
                for p in results.runs
                if ("plain" in p.label)
                and p.tasks_per_run == r.tasks_per_run
                and len(p.run_ids) == len(r.run_ids)
            ),
            None,
        )
    for label, r in by_label.items():
        base = plain_of.get(label)
        steps = "" if r.executed_steps is None else f"{r.executed_steps} / {r.reused_steps}"
        lines.append(
            "| "
            + " | ".join(
                [
                    label,
                    str(len(r.run_ids)),
                    str(r.task_instances),
                    fmt(r.wall_s, 1),
                    fmt(r.task_instances / r.wall_s, 2),
                    steps,
                    (
                        f"{r.wall_s / base.wall_s:.2f}x"
                        if base is not None
                        else "baseline"
                        if label not in plain_of
                        else "n/a"
                    ),
                    "; ".join(r.checks),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def report(args: argparse.Namespace, results: Results, load_before: str) -> None:
    print()
    print(
        f"# mlpipe scale benchmark, {dt.date.today().isoformat()}, {os.cpu_count()} CPUs, "
        f"parallelism {args.parallelism}, load average before {load_before}, after {load_average()}"
    )
    print(
        f"\ncompile: {results.steps} steps ({results.tasks} tasks): build {results.build_s:.3f} s, "
        f"compile {results.compile_s:.3f} s, DAG file {results.file_kb:.0f} KB"
    )
    if results.parse:
        print(f"\n## Parse (fresh process per load, medians of {args.parse_reps})\n")
        print(parse_table(results))
    if results.server_start_s:
        print(
            f"\nserver healthy after {results.server_start_s:.1f} s; all DAG files parsed and "
            f"visible through the API {results.dags_ready_s:.1f} s later"
        )
    if results.runs:
        print("\n## Runs on the server (LocalExecutor, SQLite)\n")
        print(runs_table(results))
    for note in results.notes:
        print(f"- {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps of the big pipeline")
    parser.add_argument("--runs", type=int, default=20, help="concurrent runs in part 3")
    parser.add_argument(
        "--concurrent-steps", type=int, default=10, help="steps of the part-3 pipeline"
    )
    parser.add_argument(
        "--concurrent-sets",
        default="distinct,plain,identical",
        help="which part-3 sets to run (comma-separated; default all three)",
    )
    parser.add_argument("--quick", action="store_true", help="20 steps, 3 concurrent runs")
    parser.add_argument(
        "--big-runs",
        choices=("all", "first"),
        default="all",
        help="'first': only the big pipeline's first run (no plain baseline, no reuse run)",
    )
    parser.add_argument("--parallelism", type=int, default=4, help="LocalExecutor worker slots")
    parser.add_argument("--parse-reps", type=int, default=3, help="DagBag loads per file")
    parser.add_argument(
        "--timeout", type=float, default=3 * 3600, help="seconds to wait for one set of runs"
    )
    parser.add_argument(
        "--parse-only", action="store_true", help="compile and parse only; start no server"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (server logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.runs, args.parse_reps = 20, 3, 1

    # A SIGTERM (or a SIGINT to a backgrounded run, which the shell set to ignored) must still
    # reach the ``finally`` below, which stops the server's whole process group.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = load_average()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-scale-"))
    results = Results(steps=args.steps, tasks=2 * args.steps)
    cwd = os.getcwd()
    ok = False
    try:
        run(args, work, results)
        ok = True
    finally:
        os.chdir(cwd)
        report(args, results, load_before)
        if args.keep or not ok:
            print(f"\nkept {work} (server log: {work / 'airflow' / 'standalone.log'})")
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
