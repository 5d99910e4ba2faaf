"""Benchmark of issue 13: what Airflow costs an mlpipe pipeline, against plain DAGs, in one run.

Run from the repository root:

    uv run --frozen python bench/run.py              # rows 1-5 (20-30 min on 2 busy cores)
    uv run --frozen python bench/run.py --quick      # small sizes, a smoke check (5-7 min)
    uv run --frozen python bench/run.py --only 1,2   # some rows
    uv run --frozen python bench/run.py --big        # also the 1,000-step run (about 1 hour)

It prints one markdown table: each mlpipe figure next to a plain-Airflow baseline measured in the
same run, on the same machine, the same way (the machines are shared and noisy, so the ratio is
the figure to compare). A plain DAG is one ``PythonOperator`` per step running a trivial Python
subprocess, with the same edges (``shapes.plain_dag_text``).

1. **Embedded** (no server; ``Experiment.submit`` + ``wait_for_completion`` in a fresh process
   per measurement, on a warm workspace whose template DB is already migrated): a cold
   ``--chain``-step chain against a plain chain of as many tasks, run with ``dag.test()`` in a
   fresh process on a copy of a migrated DB (what the embedded runner does, minus mlpipe); the
   same chain fully reused, and with only its last step edited (a parameter only it reads),
   each against a plain 1-task DAG. Medians of ``--reps``, interleaved.
2. **Server** (``mlpipe server up``, or with ``--server tests`` tests/airflow_server.py as
   bench/scale.py uses: api-server, scheduler, dag-processor, triggerer; LocalExecutor with
   ``--parallelism`` slots): a cold ``--steps``-step pipeline (bench/scale.py's
   shape: layers of parallel chains with fan-in, fan-out and a final join) against the plain DAG
   with the same edges; the same pipeline fully reused against a plain 1-task DAG, with the task
   instances it executed. Runs are triggered over REST; wall time is server timestamps.
3. **Server, the user's view**: a ``--server-chain``-step chain through ``Experiment.submit`` ->
   ``Finished`` in a fresh process, fully reused against its own cold run.
4. **A waiting run**: two runs of a 1-step pipeline (the step sleeps ``--sleep`` s) with
   identical parameters, triggered together: how long after the producer's step ended the
   waiting run's step ended, and what state the waiter's tasks were in meanwhile (``running``
   holds a worker slot; ``up_for_reschedule`` and ``deferred`` do not).
5. **Parse**: the ``--parse-steps``-step pipeline's DAG file against plain ``PythonOperator``s,
   ``DagBag`` load + serialization in a fresh process (bench/dag_parse.py), medians of ``--reps``.

``--big`` adds the ``--big-steps`` (1,000) step pipeline end to end on the server against its
plain DAG. Task instances are counted by state, never by id (bench/report.py), so this runs
unchanged on DAGs with a reuse sensor per step and on DAGs with one task per step.
Everything lives in a temporary folder, removed at the end unless ``--keep`` (or on failure); the
server is stopped on every exit path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
for _path in (REPO, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from dag_parse import ParseCase, child_env, load_in_child  # noqa: E402
from report import (  # noqa: E402
    Figure,
    TaskCounts,
    count_task_instances,
    format_table,
    median,
    waiting_slot,
)
from shapes import STEP_SCRIPT, Spec, build_pipeline, chain, plain_dag_text, shape  # noqa: E402

TAIL_PARAM = "tail_k"  # read by the last step of the embedded chain only
SLEEP_SCRIPT = textwrap.dedent(
    """
    import argparse, os, time
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--output", required=True)
    a = p.parse_args()
    time.sleep(a.seconds)
    os.makedirs(a.output, exist_ok=True)
    with open(os.path.join(a.output, "value.txt"), "w") as fh:
        fh.write(str(a.seed))
    """
)

# A fresh interpreter per measurement: what a user's script pays (imports, building the
# pipeline, compile, submit, follow). It prints one JSON line for the parent.
SUBMIT_CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from mlpipe_provider.sdk import Experiment, Workspace
    from shapes import build_pipeline
    ws_dir, experiment, spec, params, tail = sys.argv[1:6]
    ws = Workspace(_workspace_dir=Path(ws_dir))
    pipeline = build_pipeline(ws, json.loads(spec), tail_param=tail or None)
    run = Experiment(ws, experiment).submit(pipeline, pipeline_parameters=json.loads(params))
    try:
        status = run.wait_for_completion(show_output=False)
    except Exception as exc:
        status = f"raised {type(exc).__name__}: {exc}"
    details = run.get_details()
    print(json.dumps({"run_id": run.id, "status": status,
                      "airflow_run_id": details.get("airflowRunId")}))
    """
)

# The embedded baseline: what the embedded runner does, minus mlpipe (a copy of a migrated
# template DB, DagBag on the file, dag.test()).
PLAIN_CHILD = textwrap.dedent(
    """
    import json, shutil, sys
    template, db, dag_file, dag_id = sys.argv[1:5]
    shutil.copyfile(template, db)
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(dag_folder=dag_file).get_dag(dag_id)
    run = dag.test()
    print(json.dumps({"state": str(run.state)}))
    """
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Airflow's or mlpipe's settings, so a child configures its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and k != "MLPIPE_WORKSPACE"
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(BENCH), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ts(value: str | None) -> float:
    if not value:
        raise RuntimeError("a finished run or task has no timestamp")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Context:
    """The work folder, the project its pipelines come from, and the options."""

    args: argparse.Namespace
    work: Path
    project: Path = field(init=False)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seed: int = 100  # every measurement that must compute takes a value never used before

    def __post_init__(self) -> None:
        self.project = self.work / "project"
        (self.project / "src").mkdir(parents=True)
        (self.project / "src" / "step.py").write_text(STEP_SCRIPT, encoding="utf-8")
        (self.project / "src" / "sleep.py").write_text(SLEEP_SCRIPT, encoding="utf-8")
        os.chdir(self.project)  # source_directory="src" is relative to the project

    def new_seed(self) -> int:
        self.seed += 1
        return self.seed

    def workspace(self, name: str) -> Any:
        from mlpipe_provider.sdk import Workspace

        return Workspace(_workspace_dir=self.project / name / ".mlpipe")


def submit_in_child(
    ctx: Context, ws: Any, experiment: str, spec: Spec, params: dict[str, Any], tail: str = ""
) -> tuple[float, dict[str, Any]]:
    """``Experiment.submit`` + ``wait_for_completion`` in a fresh process; its wall time."""
    argv = [str(ws.directory), experiment, json.dumps(spec), json.dumps(params), tail]
    start = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - our interpreter, a fixed snippet
        [sys.executable, "-c", SUBMIT_CHILD, *argv],
        cwd=ctx.project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=ctx.args.timeout,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"submit child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] != "Finished":
        raise RuntimeError(f"{experiment} run {result['run_id']}: {result['status']}")
    return wall, result


def embedded_task_instances(ws: Any, run_id: str) -> list[dict[str, Any]]:
    """An embedded run's task instances: from its own Airflow DB, or, for a run that never
    reached Airflow (a pipeline decided before any start-up), from its ``status.json``."""
    run_dir = ws.runs_dir / run_id
    db = json.loads((run_dir / "request.json").read_text()).get("airflow_db")
    if db and Path(db).is_file():
        return db_task_instances(Path(db))
    steps = (json.loads((run_dir / "status.json").read_text()).get("steps")) or {}
    return [
        {
            "task_id": task_id,
            "state": entry.get("state"),
            "start_date": entry.get("start"),
            "try_number": entry.get("try_number"),
        }
        for task_id, entry in steps.items()
    ]


def db_task_instances(db: Path) -> list[dict[str, Any]]:
    """The task instances in an embedded run's own SQLite metadata DB (one run per DB)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT task_id, state, start_date, try_number FROM task_instance")
        return [dict(row) for row in rows]


# --- row 1: embedded --------------------------------------------------------------------------


def row_embedded(ctx: Context) -> None:
    args = ctx.args
    n = args.chain
    spec = chain(n)
    steps = [name for name, _ in spec]
    ws = ctx.workspace("embedded")
    experiment = f"chain{n}"
    plain_home = ctx.work / "plain_home"
    plain_dags = plain_home / "dags"
    plain_dags.mkdir(parents=True)
    plain_files = {}
    for dag_id, plain_spec in ((f"plain_chain_{n}", spec), ("plain_one", [("only", [])])):
        path = plain_dags / f"{dag_id}.py"
        path.write_text(plain_dag_text(dag_id, plain_spec, 1, "subprocess"), encoding="utf-8")
        plain_files[dag_id] = path
    template = ws.directory / "airflow" / "template.db"

    def mlpipe(params: dict[str, Any]) -> tuple[float, TaskCounts]:
        wall, result = submit_in_child(ctx, ws, experiment, spec, params, TAIL_PARAM)
        return wall, count_task_instances(embedded_task_instances(ws, result["run_id"]), steps)

    counter = iter(range(10**6))

    def plain(dag_id: str) -> tuple[float, TaskCounts]:
        db = plain_home / f"run-{next(counter)}.db"
        env = clean_env(
            AIRFLOW_HOME=str(plain_home),
            AIRFLOW__CORE__DAGS_FOLDER=str(plain_dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{db}",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(plain_home / "logs"),
        )
        argv = [str(template), str(db), str(plain_files[dag_id]), dag_id]
        start = time.perf_counter()
        proc = subprocess.run(  # noqa: S603 - our interpreter, a fixed snippet
            [sys.executable, "-c", PLAIN_CHILD, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0 or '"success"' not in proc.stdout:
            raise RuntimeError(
                f"plain {dag_id} failed:\n{proc.stdout[-1500:]}{proc.stderr[-3000:]}"
            )
        return wall, count_task_instances(db_task_instances(db), [])

    say(f"row 1: warm-up (migrates the workspace's template DB), {n}-step chain")
    warm_seed = ctx.new_seed()
    mlpipe({"seed": warm_seed})
    plain(f"plain_chain_{n}")
    plain("plain_one")
    samples: dict[str, list[float]] = {
        k: [] for k in ("cold", "plainN", "reused", "plain1", "edit")
    }
    counts: dict[str, TaskCounts] = {}
    for rep in range(args.reps):
        seed = ctx.new_seed()
        for key, measure in (
            ("cold", lambda s=seed: mlpipe({"seed": s})),
            ("plainN", lambda: plain(f"plain_chain_{n}")),
            ("reused", lambda s=seed: mlpipe({"seed": s})),
            ("plain1", lambda: plain("plain_one")),
            ("edit", lambda s=seed, r=rep: mlpipe({"seed": s, TAIL_PARAM: 10_000 + r})),
            ("plain1", lambda: plain("plain_one")),
        ):
            wall, ti = measure()
            samples[key].append(wall)
            counts[key] = ti
            say(f"row 1, rep {rep + 1}: {key} {wall:.1f} s; {ti.describe()}")
    expect = {"cold": n, "reused": 0, "edit": 1}
    for key, want in expect.items():
        if counts[key].steps_executed != want:
            ctx.notes.append(
                f"row 1 {key}: {counts[key].steps_executed} steps executed, expected {want}"
            )
    plain_n, plain_1 = median(samples["plainN"]), median(samples["plain1"])
    runs = f"median of {args.reps}"
    ctx.figures += [
        _ratio_figure(
            "1", f"cold {n}-step chain, embedded submit -> Finished", samples["cold"],
            f"plain {n}-task DAG, dag.test", plain_n, 1.1, counts["cold"], runs,
        ),
        _ratio_figure(
            "1", f"fully reused {n}-step chain, embedded", samples["reused"],
            "plain 1-task DAG, dag.test", plain_1, 0.3, counts["reused"], runs,
        ),
        _ratio_figure(
            "1", f"last step edited, {n}-step chain, embedded", samples["edit"],
            "plain 1-task DAG, dag.test", plain_1, 1.0, counts["edit"], runs,
        ),
    ]  # fmt: skip


def _ratio_figure(
    row: str,
    name: str,
    values: list[float],
    baseline_name: str,
    baseline: float | None,
    max_ratio: float,
    counts: TaskCounts | None,
    note: str,
    max_executed: int | None = None,
) -> Figure:
    value = median(values)
    target = f"<= {max_ratio:g}x"
    met = None if value is None or not baseline else value / baseline <= max_ratio
    if max_executed is not None and counts is not None:
        target += f", <= {max_executed} TIs executed"
        met = bool(met) and counts.executed <= max_executed
    detail = "; ".join(x for x in (counts.describe() if counts else "", note) if x)
    return Figure(row, name, value, baseline_name, baseline, target, met, detail)


# --- the server (rows 2-4) -----------------------------------------------------------------------


class Server:
    """The Airflow server of rows 2-4, on a workspace of its own that submits to it.

    ``--server mlpipe`` (the default): ``mlpipe server up``, the product's local server, stopped
    with ``mlpipe server down``. ``--server tests``: tests/airflow_server.py's ``airflow
    standalone`` (what bench/scale.py measured, with Airflow's default worker heartbeat and
    serialization intervals), its URL written into the workspace config so ``Experiment.submit``
    goes through its REST API the same way.
    """

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.ws = ctx.workspace("server")
        self.client: Any = None
        self.standalone: Any = None

    def cli(self, *argv: str) -> None:
        proc = subprocess.run(  # noqa: S603 - our interpreter, argument list
            [sys.executable, "-m", "mlpipe_provider.cli.main", *argv],
            cwd=self.ctx.project,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mlpipe {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")

    def up(self) -> None:
        from mlpipe_provider.airflow_api import AirflowClient

        start = time.perf_counter()
        if self.ctx.args.server == "tests":
            self._up_standalone()
        else:
            self.cli(
                "server", "up", "--workspace", str(self.ws.directory), "--port", str(free_port()),
                "--parallelism", str(self.ctx.args.parallelism),
            )  # fmt: skip
        self.client = AirflowClient.from_workspace(self.ws.directory)
        say(f"server ({self.ctx.args.server}) up in {time.perf_counter() - start:.0f} s")

    def _up_standalone(self) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from airflow_server import AirflowServer

        from mlpipe_provider.config import AirflowServerConfig, load_config, save_config

        server = AirflowServer(self.ctx.work / "standalone", parallelism=self.ctx.args.parallelism)
        server.dags = self.ws.dags_dir
        server.dags.mkdir(parents=True, exist_ok=True)
        server.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(server.dags)
        self.standalone = server
        server.start()
        config = load_config(self.ws.directory)
        config.airflow = AirflowServerConfig(url=server.url)  # all admins: no login
        save_config(self.ws.directory, config)

    def down(self) -> None:
        """Stop the server; a failure here is printed, not raised over the run's own error."""
        if self.standalone is not None:
            self.standalone.stop()
            return
        try:
            self.cli("server", "down", "--workspace", str(self.ws.directory))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            say(f"server down: {exc}")

    def install(self, dag_id: str, text: str | None = None, spec: Spec | None = None) -> None:
        """Write a plain DAG file (``text``) or compile the mlpipe pipeline of ``spec``."""
        from compiler.compile import compile_pipeline

        if text is not None:
            path = self.ws.dags_dir / f"{dag_id}.py"
            path.write_text(text, encoding="utf-8")
        else:
            compiled = compile_pipeline(build_pipeline(self.ws, spec), dag_id, self.ws.dags_dir)
            compiled.write()
            path = compiled.path
        self.client.wait_for_dag(dag_id, path, timeout_s=600)

    def trigger_and_wait(
        self, dag_id: str, conf: dict[str, Any], steps: list[str]
    ) -> tuple[float, TaskCounts]:
        """One run; wall time from its queueing to its end (server timestamps)."""
        run_id = self.client.trigger(dag_id, conf)["dag_run_id"]
        info = self.wait(dag_id, run_id, poll_s=1 if len(steps) < 200 else 5)
        wall = _ts(info["end_date"]) - _ts(info.get("queued_at") or info["start_date"])
        tis = self.client.task_instances(dag_id, run_id)
        return wall, count_task_instances(tis, steps)

    def wait(self, dag_id: str, run_id: str, poll_s: float = 1) -> dict[str, Any]:
        deadline = time.monotonic() + self.ctx.args.timeout
        while time.monotonic() < deadline:
            info = self.client.dag_run(dag_id, run_id)
            if info["state"] in ("success", "failed"):
                if info["state"] != "success":
                    raise RuntimeError(
                        f"{dag_id} run {run_id} failed (server log: keep the folder)"
                    )
                return info
            time.sleep(poll_s)
        raise TimeoutError(f"{dag_id} run {run_id} not done in {self.ctx.args.timeout} s")


def row_server_pipeline(ctx: Context, server: Server, n: int, row: str, reused: bool) -> None:
    """A cold ``n``-step pipeline vs the plain ``n``-task DAG; then, if ``reused``, the same run
    again (nothing to do) vs a plain 1-task DAG."""
    spec = shape(n)
    steps = [name for name, _ in spec]
    dag_id, plain_id = f"pipeline_{n}", f"plain_{n}"
    server.install(dag_id, spec=spec)
    server.install(plain_id, text=plain_dag_text(plain_id, spec, 1, "subprocess"))
    if reused:
        server.install(
            "plain_one", text=plain_dag_text("plain_one", [("only", [])], 1, "subprocess")
        )
    seed = ctx.new_seed()
    cold, cold_ti = server.trigger_and_wait(dag_id, {"seed": seed}, steps)
    say(f"row {row}: cold {n} steps {cold:.1f} s; {cold_ti.describe()}")
    plain, _ = server.trigger_and_wait(plain_id, {}, [])
    say(f"row {row}: plain {n} tasks {plain:.1f} s")
    target = 1.15 if row == "2" else 1.2
    ctx.figures.append(
        _ratio_figure(
            row, f"cold {n}-step pipeline, server (LocalExecutor)", [cold],
            f"plain {n}-task DAG, triggered", plain, target, cold_ti, "",
        )
    )  # fmt: skip
    if not reused:
        return
    again, again_ti = server.trigger_and_wait(dag_id, {"seed": seed}, steps)
    say(f"row {row}: fully reused {n} steps {again:.1f} s; {again_ti.describe()}")
    one, _ = server.trigger_and_wait("plain_one", {}, [])
    say(f"row {row}: plain 1 task {one:.1f} s")
    if again_ti.steps_executed:
        ctx.notes.append(f"row {row}: the reused run executed {again_ti.steps_executed} steps")
    ctx.figures.append(
        _ratio_figure(
            row, f"fully reused {n}-step pipeline, server (LocalExecutor)", [again],
            "plain 1-task DAG, triggered", one, 1.5, again_ti, "", max_executed=2,
        )
    )  # fmt: skip


def row_server_submit(ctx: Context, server: Server) -> None:
    n = ctx.args.server_chain
    where = "`mlpipe server up`" if ctx.args.server == "mlpipe" else "tests' standalone"
    spec = chain(n)
    steps = [name for name, _ in spec]
    seed = ctx.new_seed()
    walls, counts = {}, {}
    for key in ("cold", "reused"):
        wall, result = submit_in_child(ctx, server.ws, f"server_chain{n}", spec, {"seed": seed})
        airflow_run = result.get("airflow_run_id")  # none if a run never reached Airflow
        tis = server.client.task_instances(f"server_chain{n}", airflow_run) if airflow_run else []
        walls[key], counts[key] = wall, count_task_instances(tis, steps)
        say(f"row 3: {key} {wall:.1f} s; {counts[key].describe()}")
    ctx.figures.append(
        _ratio_figure(
            "3", f"fully reused {n}-step chain, Experiment.submit -> Finished, server {where}",
            [walls["reused"]], f"its cold run ({n} steps computed)", walls["cold"], 0.25,
            counts["reused"], f"cold run: {counts['cold'].describe()}",
        )
    )  # fmt: skip


def row_waiting(ctx: Context, server: Server) -> None:
    """Two identical runs together: the waiter's delay after the producer's commit, and whether
    it held a worker slot (a task ``running``) while it waited."""
    from mlpipe_provider.sdk import Pipeline, PipelineData, PipelineParameter, PythonScriptStep

    out = PipelineData("slept", datastore=server.ws.get_default_datastore())
    step = PythonScriptStep(
        "sleep.py",
        name="nap",
        arguments=[
            "--seconds", str(ctx.args.sleep), "--seed", PipelineParameter("seed", 0),
            "--output", out,
        ],
        outputs=[out],
        source_directory="src",
    )  # fmt: skip
    from compiler.compile import compile_pipeline

    compiled = compile_pipeline(Pipeline(server.ws, [step]), "waiting", server.ws.dags_dir)
    compiled.write()
    server.client.wait_for_dag("waiting", compiled.path, timeout_s=300)
    conf = {"seed": ctx.new_seed()}
    runs = [server.client.trigger("waiting", conf)["dag_run_id"] for _ in range(2)]
    samples: list[tuple[float, dict[str, dict[str, str | None]]]] = []
    deadline = time.monotonic() + ctx.args.timeout
    while time.monotonic() < deadline:
        now = time.time()
        states = {
            r: {ti["task_id"]: ti["state"] for ti in server.client.task_instances("waiting", r)}
            for r in runs
        }
        samples.append((now, states))
        infos = [server.client.dag_run("waiting", r) for r in runs]
        if all(i["state"] in ("success", "failed") for i in infos):
            break
        time.sleep(0.5)
    tis = {
        r: {ti["task_id"]: ti for ti in server.client.task_instances("waiting", r)} for r in runs
    }
    ended = {r: (tis[r].get("nap") or {}).get("end_date") for r in runs}
    if not all(ended.values()):
        states = {r: {t: ti["state"] for t, ti in tis[r].items()} for r in runs}
        raise RuntimeError(f"row 4: a run's step never ended: {states}")
    # The producer's step ends first whatever the mechanism: the waiter can only end after the
    # commit it waits for. Its final state is reported, not assumed (skipped today).
    producer, waiter = sorted(runs, key=lambda r: _ts(ended[r]))
    produced_end, waited_end = _ts(ended[producer]), _ts(ended[waiter])
    delay = waited_end - produced_end
    wait = waiting_slot([s for _, s in samples], producer, waiter, "nap")
    held = wait.held
    detail = (
        f"{wait.describe()}, sampled every 0.5 s while the producer's step ran"
        + f"; step sleeps {ctx.args.sleep:g} s; the producer's step ended "
        + f"{tis[producer]['nap']['state']}, the waiter's {tis[waiter]['nap']['state']}"
    )
    say(f"row 4: delay {delay:.1f} s; {detail}")
    ctx.figures.append(
        Figure(
            "4", "a waiting run notices the producer's commit (delay after it)", delay,
            target="<= 2 s, no worker slot held", met=delay <= 2 and held is False,
            detail=detail,
        )
    )  # fmt: skip


# --- row 5: parse --------------------------------------------------------------------------------


def row_parse(ctx: Context) -> None:
    from compiler.compile import compile_pipeline

    n = ctx.args.parse_steps
    spec = shape(n)
    ws = ctx.workspace("embedded")
    home = ctx.work / "parse_home"
    folder = home / "files"
    (home / "dags").mkdir(parents=True)
    folder.mkdir()
    compiled = compile_pipeline(build_pipeline(ws, spec), f"parse_{n}", folder)
    compiled.write()
    plain_path = folder / f"plain_parse_{n}.py"
    plain_path.write_text(plain_dag_text(plain_path.stem, spec, 1, "subprocess"), encoding="utf-8")
    mine = ParseCase(f"mlpipe {n} steps", compiled.path, None, None)
    plain = ParseCase(f"plain {n} PythonOperators", plain_path, n, None)
    env = child_env(home)
    for rep in range(ctx.args.reps):  # interleaved: drift on a noisy machine hits both alike
        for case in (mine, plain):
            load_in_child(case, env)
        say(
            f"row 5, rep {rep + 1}: load+serialize {_parse_s(mine):.2f} s vs {_parse_s(plain):.2f} s"
        )

    def detail(case: ParseCase) -> str:
        return (
            f"{case.tasks} tasks, DagBag load {median(case.load_s):.2f} s + serialize "
            f"{median(case.serialize_s):.2f} s, peak {median(case.peak_mb):.0f} MB"
        )

    ctx.figures.append(
        Figure(
            "5", f"DAG file parse, {n} steps (DagBag load + serialize, fresh process)",
            _parse_s(mine), f"plain {n} PythonOperators", _parse_s(plain), "<= 2x",
            _parse_s(mine) <= 2 * _parse_s(plain),
            f"mlpipe: {detail(mine)}; plain: {detail(plain)}; median of {ctx.args.reps}",
        )
    )  # fmt: skip


def _parse_s(case: ParseCase) -> float:
    return median(a + b for a, b in zip(case.load_s, case.serialize_s, strict=True)) or 0.0


# --- the run -------------------------------------------------------------------------------------


def run(ctx: Context, rows: set[str]) -> None:
    # Parsing and the embedded runs first, before a server takes the CPUs.
    steps: list[tuple[str, Callable[[], None]]] = [
        ("5", lambda: row_parse(ctx)),
        ("1", lambda: row_embedded(ctx)),
    ]
    for row, fn in steps:
        if row in rows:
            fn()
    if not rows & {"2", "3", "4", "big"}:
        return
    server = Server(ctx)
    try:
        server.up()
        if "2" in rows:
            row_server_pipeline(ctx, server, ctx.args.steps, "2", reused=True)
        if "3" in rows:
            row_server_submit(ctx, server)
        if "4" in rows:
            row_waiting(ctx, server)
        if "big" in rows:
            row_server_pipeline(ctx, server, ctx.args.big_steps, "big", reused=False)
    finally:
        server.down()


def revision() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],  # noqa: S607
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="rows to run, comma-separated: 1,2,3,4,5 (default all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--big", action="store_true", help="also the --big-steps run (~1 hour)")
    parser.add_argument("--chain", type=int, default=10, help="row 1: steps of the chain")
    parser.add_argument("--steps", type=int, default=100, help="row 2: steps of the pipeline")
    parser.add_argument("--server-chain", type=int, default=30, help="row 3: steps of the chain")
    parser.add_argument("--parse-steps", type=int, default=1000, help="row 5: steps parsed")
    parser.add_argument("--big-steps", type=int, default=1000, help="--big: steps of the run")
    parser.add_argument("--sleep", type=float, default=10, help="row 4: seconds the step sleeps")
    parser.add_argument("--reps", type=int, default=3, help="rows 1 and 5: repetitions")
    parser.add_argument("--parallelism", type=int, default=4, help="server: LocalExecutor slots")
    parser.add_argument(
        "--server",
        choices=("mlpipe", "tests"),
        default="mlpipe",
        help="rows 2-4: `mlpipe server up` or tests/airflow_server.py (as bench/scale.py)",
    )
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.chain, args.steps, args.server_chain, args.parse_steps, args.reps = 5, 5, 5, 50, 1
    rows = set(args.only.split(",")) if args.only else {"1", "2", "3", "4", "5"}
    if args.big:
        rows.add("big")
    unknown = rows - {"1", "2", "3", "4", "5", "big"}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}")

    # A SIGTERM (or a SIGINT to a backgrounded run) must still reach the ``finally`` blocks,
    # which stop the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = load_average()
    started = time.perf_counter()
    cwd = os.getcwd()
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-run-"))
    ctx = Context(args, work)
    ok = False
    try:
        run(ctx, rows)
        ok = True
    finally:
        os.chdir(cwd)
        print(
            f"\n# mlpipe vs plain Airflow (bench/run.py), {dt.date.today().isoformat()}, "
            f"revision {revision()}, {os.cpu_count()} CPUs, server {args.server}, "
            f"parallelism {args.parallelism}, "
            f"load average before {load_before}, after {load_average()}\n"
        )
        print(format_table(ctx.figures))
        for note in ctx.notes:
            print(f"- {note}")
        if args.keep or not ok:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
