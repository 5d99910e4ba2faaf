"""``mlpipe demo``: what the README's first command shows a newcomer.

It compiles the example pipelines into ``dags/`` (a no-op when they are current), then runs the
seed program (the v1 example with only its imports changed) twice in a fresh workspace on the
embedded Airflow: the first run executes every step, the second reuses them.

The example project is the repository's ``examples/`` and ``dags/``, found from an explicit
project folder (the current directory by default, as the README runs it from the checkout), never
from this file's location: once installed, this file lives in site-packages, where no examples are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE_TARGETS = [
    "examples/seed/seed.py:build",
    "examples/prep_train_evaluate/pipeline.py",
    "examples/distributed/pipeline.py",
    "examples/data_transfer/pipeline.py",
    "examples/module/pipeline.py",
    "examples/docker/pipeline.py",
    "examples/command/pipeline.py",
    "examples/hyperdrive/pipeline.py",
    "examples/parallel_run/pipeline.py",
    "examples/builtins/pipeline.py",
]


class NotAProjectError(Exception):
    """The folder given to the demo holds no mlpipe example project."""


def find_project(project: Path | None = None) -> Path:
    """The folder holding ``examples/seed/seed.py``, or a clear error saying where to run from."""
    root = (project or Path.cwd()).resolve()
    if not (root / "examples" / "seed" / "seed.py").is_file():
        raise NotAProjectError(
            f"{root} holds no examples/seed/seed.py: `mlpipe demo` runs the example project of an "
            "mlpipe checkout; run it from the repository root or pass --project PATH"
        )
    return root


def compile_examples(project: Path, check: bool = False) -> int:
    from mlpipe_provider.cli.main import main as cli_main

    args = ["compile", *[str(project / t) for t in EXAMPLE_TARGETS], "-o", str(project / "dags")]
    return cli_main([*args, "--check"] if check else args)


def _fresh_seed_copy(project: Path, workdir: Path) -> Path:
    from mlpipe_provider.sdk.workspace import Workspace

    if workdir.exists():
        shutil.rmtree(workdir)
    seed = workdir / "seed"
    shutil.copytree(
        project / "examples" / "seed",
        seed,
        ignore=shutil.ignore_patterns("__pycache__", "data", ".mlpipe"),
    )
    Workspace(_workspace_dir=workdir / ".mlpipe")  # an embedded workspace just for the demo
    return seed


def run_demo(workdir: Path | None = None, project: Path | None = None) -> int:
    try:
        root = find_project(project)
    except NotAProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("== compiling the example pipelines into dags/")
    if compile_examples(root) != 0:
        return 1
    workdir = (workdir or root / "build" / "demo").resolve()
    seed = _fresh_seed_copy(root, workdir)
    for attempt in (1, 2):
        print(f"\n== seed pipeline, run {attempt} of 2 (workspace {workdir / '.mlpipe'})")
        result = subprocess.run([sys.executable, "seed.py"], cwd=seed, check=False)  # noqa: S603
        if result.returncode != 0:
            print(f"seed run {attempt} failed (exit {result.returncode})", file=sys.stderr)
            return result.returncode
    print(_summary(workdir))
    return 0


def _summary(workdir: Path) -> str:
    from mlpipe_provider.sdk import Experiment, Workspace

    ws = Workspace(_workspace_dir=workdir / ".mlpipe")
    runs = list(Experiment(ws, "MyExperiment").get_runs())[::-1]
    lines = [
        "",
        "== summary",
        "| run | step | status | reused | metrics |",
        "|---|---|---|---|---|",
    ]
    for index, run in enumerate(runs, 1):
        for step in run.get_steps():
            reused = step.get_properties().get("azureml.reusedrunid", "no")
            lines.append(
                f"| {index} | {step.name} | {step.get_status()} | {reused} | {step.get_metrics()} |"
            )
    return "\n".join(lines)
