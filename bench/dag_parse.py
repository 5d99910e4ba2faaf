"""Parse a DAG file as the DAG processor does, in a fresh interpreter: ``DagBag`` load, then
serialization, with wall times and peak RSS. Shared by ``bench/scale.py`` and ``bench/run.py``.

A fresh process per load, because a warm one would hide the imports and first compilation that
every parse on a real deployment pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOAD_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from airflow.dag_processing.dagbag import DagBag
    path, dag_id = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    bag = DagBag(dag_folder=path)
    load_s = time.perf_counter() - start
    dag = bag.dags.get(dag_id)
    serialize_s = None
    if dag is not None:  # what the DAG processor does next with a parsed DAG
        from airflow.serialization.serialized_objects import DagSerialization
        start = time.perf_counter()
        json.dumps(DagSerialization.to_dict(dag))
        serialize_s = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "load_s": load_s,
        "serialize_s": serialize_s,
        "peak_mb": rss / (1024 * 1024 if sys.platform == "darwin" else 1024),
        "errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
        "tasks": len(dag.tasks) if dag else None,
        "edges": sum(len(t.downstream_task_ids) for t in dag.tasks) if dag else None,
    }))
    """
)


@dataclass
class ParseCase:
    label: str
    path: Path
    tasks: int | None  # None: whatever the file defines (a DAG whose shape the benchmark
    edges: int | None  # must not assume, such as mlpipe's across versions); set by the load
    load_s: list[float] = field(default_factory=list)
    serialize_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    processor_s: float | None = None  # the server's dag-processor: last_parse_duration


def load_in_child(case: ParseCase, env: dict[str, str]) -> None:
    """``DagBag(dag_folder=path)`` in a new interpreter, as the DAG processor's parser does."""
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_CHILD, str(case.path), case.path.stem],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"DagBag child failed for {case.path}:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    wrong_shape = any(
        expected is not None and result[key] != expected
        for key, expected in (("tasks", case.tasks), ("edges", case.edges))
    )
    if result["errors"] or result["tasks"] is None or wrong_shape:
        raise RuntimeError(
            f"{case.path}: expected {case.tasks} tasks and {case.edges} edges, got "
            f"{result['tasks']} tasks, {result['edges']} edges, errors {result['errors']}"
        )
    case.tasks, case.edges = result["tasks"], result["edges"]
    case.load_s.append(result["load_s"])
    case.serialize_s.append(result["serialize_s"])
    case.peak_mb.append(result["peak_mb"])


def child_env(airflow_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.pop("MLPIPE_WORKSPACE", None)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "PYTHONDONTWRITEBYTECODE": "1",  # every load compiles the source, as a first parse does
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env
