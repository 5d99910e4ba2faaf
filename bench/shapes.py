"""Pipeline shapes shared by the benchmarks: the mlpipe pipeline and the plain Airflow DAG with
the same tasks and edges.

A shape is plain data, ``[(step name, [names of the steps it reads]), ...]`` in definition order,
so the mlpipe pipeline (``build_pipeline``) and its plain baseline (``plain_dag_text``) are made
from one description and cannot drift apart. ``bench/scale.py`` and ``bench/run.py`` use it.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

Spec = list[tuple[str, list[str]]]

MODULUS = 1_000_003  # keeps the step values small whatever the depth
MAX_WIDTH = 10

STEP_SCRIPT = textwrap.dedent(
    """
    import argparse, os
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--input", action="append", default=[])
    p.add_argument("--output", required=True)
    a = p.parse_args()
    total = a.k * (a.seed + 1)
    for folder in a.input:
        with open(os.path.join(folder, "value.txt")) as fh:
            total += int(fh.read())
    os.makedirs(a.output, exist_ok=True)
    with open(os.path.join(a.output, "value.txt"), "w") as fh:
        fh.write(str(total % %(modulus)d))
    """
).replace("%(modulus)d", str(MODULUS))


# --- the shape, as plain data -------------------------------------------------------------


def shape(n: int) -> Spec:
    """``n`` steps in definition order, each with the steps whose output it reads.

    One ``source``; then ``n - 2`` steps in layers of up to ``MAX_WIDTH`` parallel chains (step
    ``j`` of a layer reads step ``j`` of the layer before, so each column is a chain, and every
    third layer also reads its neighbour column: fan-in 2 / fan-out 2); then one ``sink`` that
    reads every step nobody else reads (a wide fan-in). The first layer fans out from the source.
    """
    if n < 3:
        raise ValueError("the shape needs at least 3 steps")
    middle = n - 2
    width = max(1, min(MAX_WIDTH, round(math.sqrt(middle))))
    names = [f"s{m // width:03d}_{m % width:02d}" for m in range(middle)]
    spec: Spec = [("source", [])]
    for m, name in enumerate(names):
        layer, col = divmod(m, width)
        if layer == 0:
            reads = ["source"]
        else:
            reads = [names[(layer - 1) * width + col]]
            if layer % 3 == 0 and width > 1:
                reads.append(names[(layer - 1) * width + (col + 1) % width])
        spec.append((name, reads))
    read = {r for _, reads in spec for r in reads}
    spec.append(("sink", [name for name, _ in spec if name not in read]))
    return spec


def chain(n: int) -> Spec:
    """``n`` steps in a line, each reading the one before (``s00 -> s01 -> ...``)."""
    names = [f"s{k:02d}" for k in range(n)]
    return [(name, [names[k - 1]] if k else []) for k, name in enumerate(names)]


def expected_values(spec: Spec, seed: int) -> dict[str, int]:
    """What each step must write, computed the same way as ``STEP_SCRIPT`` (k is 1-based)."""
    values: dict[str, int] = {}
    for k, (name, reads) in enumerate(spec, start=1):
        values[name] = (k * (seed + 1) + sum(values[r] for r in reads)) % MODULUS
    return values


def build_pipeline(ws: Any, spec: Spec, tail_param: str | None = None) -> Any:
    """The shape as mlpipe steps; every step takes the ``seed`` pipeline parameter.

    With ``tail_param``, the last step's ``--k`` is a pipeline parameter of that name (default:
    its position, as without it) that no other step reads: submitting a new value of it is an
    edit of the last step only, the edit-rerun loop's common case.
    """
    from mlpipe_provider.sdk import Pipeline, PipelineData, PipelineParameter, PythonScriptStep

    seed = PipelineParameter("seed", 0)
    tail = PipelineParameter(tail_param, len(spec)) if tail_param else None
    outputs: dict[str, Any] = {}
    steps = []
    for k, (name, reads) in enumerate(spec, start=1):
        inputs = [outputs[r] for r in reads]
        out = PipelineData(f"{name}_out", datastore=ws.get_default_datastore())
        outputs[name] = out
        steps.append(
            PythonScriptStep(
                "step.py",
                name=name,
                arguments=[
                    "--k",
                    tail if tail is not None and k == len(spec) else str(k),
                    "--seed",
                    seed,
                    *[a for data in inputs for a in ("--input", data)],
                    "--output",
                    out,
                ],
                inputs=inputs,
                outputs=[out],
                source_directory="src",
            )
        )
    return Pipeline(ws, steps)


# --- plain Airflow baselines --------------------------------------------------------------


def plain_edges(spec: Spec, per_step: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Task ids and edges of a plain DAG mirroring the mlpipe DAG.

    With ``per_step=2`` each step is ``<name>.check >> <name>`` and an upstream step feeds the
    downstream's check, exactly the edges mlpipe generates (reuse sensor, then step task).
    """
    tasks: list[str] = []
    edges: list[tuple[str, str]] = []
    for name, reads in spec:
        head = f"{name}.check" if per_step == 2 else name
        if per_step == 2:
            tasks.append(head)
        tasks.append(name)
        edges += [(r, head) for r in reads]
        if per_step == 2:
            edges.append((head, name))
    return tasks, edges


def plain_dag_text(dag_id: str, spec: Spec, per_step: int, operator: str) -> str:
    """A hand-written DAG file, statement by statement, one operator per task.

    ``operator``: ``"empty"`` (``EmptyOperator``, which never reaches a worker), ``"python"``
    (a no-op ``PythonOperator``, which does) or ``"subprocess"`` (a ``PythonOperator`` that runs
    a trivial Python subprocess, as an mlpipe step runs its script: the fair baseline for a
    step's run, since both pay a worker and a child interpreter).
    """
    tasks, edges = plain_edges(spec, per_step)
    var = {t: "t_" + t.replace(".", "_") for t in tasks}
    python_head = ["from airflow.providers.standard.operators.python import PythonOperator"]
    if operator == "empty":
        head = ["from airflow.providers.standard.operators.empty import EmptyOperator"]
        make = "EmptyOperator(task_id={tid!r})"
    elif operator == "python":
        head = [*python_head, "", "", "def noop():", "    return None"]
        make = "PythonOperator(task_id={tid!r}, python_callable=noop)"
    elif operator == "subprocess":
        head = [
            "import subprocess",
            "import sys",
            "",
            *python_head,
            "",
            "",
            "def child():",
            "    subprocess.run([sys.executable, '-c', 'pass'], check=True)",
        ]
        make = "PythonOperator(task_id={tid!r}, python_callable=child)"
    else:
        raise ValueError(f"unknown operator {operator!r}")
    lines = [
        *head,
        "",
        "from airflow.sdk import DAG",
        "",
        f"with DAG(dag_id={dag_id!r}, schedule=None, tags=['bench']) as dag:",
    ]
    lines += [f"    {var[t]} = {make.format(tid=t)}" for t in tasks]
    lines.append("")
    lines += [f"    {var[a]} >> {var[b]}" for a, b in edges]
    return "\n".join(lines) + "\n"
