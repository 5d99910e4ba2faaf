"""Microsoft's pipeline samples, as programs (issue 11): each folder under ``tests/v1_programs``
is a v1 program written the way the ``Azure/MachineLearningNotebooks`` pipeline notebooks are
(cells flattened into ``pipeline.py``, step scripts in their own source folders, only internet
data replaced by files the program writes). Each one is run as a user would: ``mlpipe migrate``
on a copy, which must change imports and nothing else, then ``python pipeline.py`` twice on the
embedded Airflow. The first run must produce the right outputs (read back from the datastore
the steps wrote to); the second must reuse every step it runs again."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from services import require

PROGRAMS = Path(__file__).parent / "v1_programs"
RUN_TIMEOUT = 600


# --- the migrate contract: imports change, nothing else ----------------------------------------


def _import_roots(tree: ast.AST) -> set[str]:
    """Names any import binds (``import a.b`` binds ``a``; ``from a import b as c`` binds ``c``):
    the roots of the attribute chains that migrate may legitimately spell differently."""
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                roots.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            roots.update(alias.asname or alias.name for alias in node.names)
    return roots


class _Normalise(ast.NodeTransformer):
    """Drop import statements and collapse a dotted chain that starts at an imported module
    (``azureml.core.VERSION``, or whatever migrate made of it) to ``MODULE.<last attribute>``:
    migrate may rename modules, it may not touch the program's own code. Both sides are
    collapsed the same way, so ``Workspace.from_config`` still has to stay ``from_config``."""

    def __init__(self, roots: set[str]):
        self.roots = roots

    def visit_Import(self, node):
        return ast.Pass()

    def visit_ImportFrom(self, node):
        return ast.Pass()

    def visit_Attribute(self, node):
        chain, inner = [node.attr], node.value
        while isinstance(inner, ast.Attribute):
            chain.append(inner.attr)
            inner = inner.value
        if isinstance(inner, ast.Name) and inner.id in self.roots:
            return ast.Attribute(value=ast.Name(id="MODULE", ctx=ast.Load()), attr=node.attr)
        return self.generic_visit(node)


def _code_without_imports(source: str) -> str:
    tree = ast.parse(source)
    return ast.dump(_Normalise(_import_roots(tree)).visit(tree))


def assert_only_imports_changed(original: Path, migrated: Path) -> None:
    for before in sorted(original.rglob("*.py")):
        after = migrated / before.relative_to(original)
        assert after.is_file(), f"migrate removed {after}"
        old, new = before.read_text(encoding="utf-8"), after.read_text(encoding="utf-8")
        assert _code_without_imports(old) == _code_without_imports(new), (
            f"migrate changed more than imports in {before.relative_to(original)}"
        )


def _mlpipe() -> list[str]:
    script = Path(sys.executable).parent / "mlpipe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlpipe_provider.cli.main"]


def migrate_copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(PROGRAMS / name, folder, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [*_mlpipe(), "migrate", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"mlpipe migrate exited {result.returncode}:\n" + (
        result.stdout + result.stderr
    )
    assert_only_imports_changed(PROGRAMS / name, folder)
    return folder


STDERR_MARK = "\n--- stderr ---\n"


def run_program(folder: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "pipeline.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, **env},
    )
    output = result.stdout + STDERR_MARK + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def finished_step_lines(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if line.startswith("StepRun(") and "Status: Finished" in line
    ]


def assert_second_run_reused(output: str) -> None:
    lines = finished_step_lines(output)
    assert lines, output[-4000:]
    assert all("reused run" in line for line in lines), "\n".join(lines)


# --- what the steps wrote -------------------------------------------------------------------


def store(folder: Path) -> Path:
    """The embedded workspace's default datastore (a local folder)."""
    return folder / ".mlpipe" / "datastores" / "workspaceblobstore"


def output_paths(folder: Path, output_name: str) -> list[Path]:
    """Every attempt's copy of a step output, across runs (``azureml/<step run id>/<name>``)."""
    return sorted((store(folder) / "azureml").glob(f"*/{output_name}"))


def the_output(folder: Path, output_name: str) -> Path:
    paths = output_paths(folder, output_name)
    assert paths, f"no step wrote output {output_name!r}"
    return paths[0]


def check_getting_started(folder: Path, out: str) -> None:
    squares = the_output(folder, "squares") / "squares.txt"
    assert squares.read_text().split() == [str(n * n) for n in range(1, 11)]
    assert "metrics: {'total': 385}" in out
    assert "cpu-cluster Finished True" in out


def check_data_dependency(folder: Path, out: str) -> None:
    extracted = the_output(folder, "extracted")
    assert extracted.is_file(), "a single-file PipelineData must stay the file the script wrote"
    assert len(extracted.read_text().splitlines()) == 20
    model = json.loads((the_output(folder, "model") / "model.json").read_text())
    assert model == {"slope": 3.0, "intercept": 1.0}
    assert "compare runs: 2" in out
    assert (folder / "downloaded").exists()


def check_modulestep(folder: Path, out: str) -> None:
    # start_value=6 at submit, num2=5: (11, 30) -> (41, 330) -> (371, 13530)
    assert the_output(folder, "first_sum").read_text() == "11"
    assert the_output(folder, "second_prod").read_text() == "330"
    assert the_output(folder, "third_sum").read_text() == "371"
    assert the_output(folder, "third_prod").read_text() == "13530"
    assert "steps named SumAndProduct: 3" in out


def check_publish_and_submit(folder: Path, out: str) -> None:
    counts = json.loads((the_output(folder, "counts") / "counts.json").read_text())
    assert counts == {"alpha": 1, "beta": 2, "gamma": 3}
    assert "'top': 'gamma beta'" in out
    assert "listed: Published_Word_Counts 1.0" in out


def check_schedule(folder: Path, out: str) -> None:
    for name in ("Every_other_night", "Twice_a_week", "Every_three_hours"):
        assert f"schedule: {name} Active" in out
    assert "New status is: Disabled" in out
    assert "metrics: {'hello': 1}" in out


def check_pipeline_endpoint(folder: Path, out: str) -> None:
    assert "default version: 1" in out
    assert re.search(r"version 0 -> .+\nversion 1 -> ", out), out
    assert "version 0 is" in out and "True" in out.split("version 0 is", 1)[1].splitlines()[0]
    assert "'message': 'hi hi hi'" in out  # the default version
    assert "'message': 'hi'}" in out  # version 0


def check_datapath_parameter(folder: Path, out: str) -> None:
    assert "metrics: {'sum': 6}" in out
    assert "metrics: {'sum': 5050}" in out
    assert "missing path failed: True True" in out


def check_dataset_parameter(folder: Path, out: str) -> None:
    assert "metrics: {'rows': 3}" in out
    assert "metrics: {'rows': 2}" in out
    assert "registered: iris_a" in out


def check_estimator_step(folder: Path, out: str) -> None:
    assert (the_output(folder, "output") / "slope.txt").read_text().strip() == "2.000"
    # v1 logs a deprecation notice for the Estimator and another for the EstimatorStep
    assert out.count("deprecated") >= 2, out[-4000:]
    # the program's last print (stderr, where the notices go, follows STDERR_MARK)
    assert out.split(STDERR_MARK)[0].splitlines()[-1].strip() == "cpu-cluster"


def check_command_step(folder: Path, out: str) -> None:
    model = json.loads((the_output(folder, "model_dir") / "model.json").read_text())
    assert model == {"epochs": 3, "ranks": 2, "loss": 0.5**12}
    assert "single metrics: {'loss': 0.00390625, 'ranks': 1}" in out
    assert "single status: Finished commandstep_train" in out


def check_data_transfer(folder: Path, out: str) -> None:
    assert the_output(folder, "summary").read_text().strip() == "files=3 total=600"


def check_sql_transfer(folder: Path, out: str) -> None:
    rows = the_output(folder, "sales_csv").read_text().splitlines()
    assert rows[0].replace('"', "") == "region,amount"
    assert [row.split(",")[0] for row in rows[1:]] == ["east", "south"]
    assert "metrics: {'total': 450" in out


CHECKS: dict[str, Callable[[Path, str], None]] = {
    "getting_started": check_getting_started,
    "data_dependency": check_data_dependency,
    "modulestep": check_modulestep,
    "publish_and_submit": check_publish_and_submit,
    "schedule": check_schedule,
    "pipeline_endpoint": check_pipeline_endpoint,
    "datapath_parameter": check_datapath_parameter,
    "dataset_parameter": check_dataset_parameter,
    "estimator_step": check_estimator_step,
    "command_step": check_command_step,
}


def migrate_and_run_twice(name: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    folder = migrate_copy(name, tmp_path)
    first = run_program(folder, env or {})
    CHECKS_ALL[name](folder, first)
    second = run_program(folder, env or {})
    assert_second_run_reused(second)


CHECKS_ALL = {
    **CHECKS,
    "data_transfer": check_data_transfer,
    "sql_transfer": check_sql_transfer,
}


def test_every_program_folder_has_a_test():
    folders = {p.name for p in PROGRAMS.iterdir() if (p / "pipeline.py").is_file()}
    assert folders == set(CHECKS_ALL)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_v1_program_runs_unmodified_after_migrate(name, tmp_path, airflow_db):
    migrate_and_run_twice(name, tmp_path)


def test_data_transfer_program(tmp_path, airflow_db, azurite):
    from azurite import ACCOUNT_KEY, ACCOUNT_NAME

    env = {
        "BLOB_ACCOUNTNAME_62": ACCOUNT_NAME,
        "BLOB_ACCOUNT_KEY_62": ACCOUNT_KEY,
        "BLOB_CONTAINER_62": azurite.new_container(),
        "BLOB_ENDPOINT_62": f"127.0.0.1:{azurite.port}",
        "BLOB_PROTOCOL_62": "http",
    }
    migrate_and_run_twice("data_transfer", tmp_path, env)


# --- PostgreSQL for the SQL transfer (skipped where it cannot start unless CI requires it) -----


def _postgres_missing() -> str | None:
    from postgres_server import INITDB, PG_CTL, _postgres_user

    if INITDB and PG_CTL and (os.geteuid() != 0 or _postgres_user()):
        return None
    return "needs PostgreSQL (initdb, pg_ctl; as root also a postgres OS user)"


@pytest.fixture
def sales_database():
    """A private PostgreSQL cluster with a ``sales`` table; CI sets MLPIPE_REQUIRE_POSTGRES=1 so a
    missing PostgreSQL fails instead of skipping."""
    missing = _postgres_missing()
    require("postgres", missing)
    import psycopg2
    from postgres_server import PostgresCluster

    cluster = PostgresCluster()
    try:
        cluster.start()
        conn = psycopg2.connect(
            host="127.0.0.1", port=cluster.port, user="postgres", dbname="airflow"
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE sales (region text, amount numeric)")
            cur.execute("INSERT INTO sales VALUES ('north', 50), ('south', 150), ('east', 300)")
        conn.close()
        yield cluster
    finally:
        cluster.stop()


def test_sql_transfer_program(tmp_path, airflow_db, sales_database):
    env = {
        "PSQL_SERVER_NAME": "127.0.0.1",
        "PSQL_ENDPOINT": "",
        "PSQL_PORT": str(sales_database.port),
        "PSQL_DATABASE_NAME": "airflow",
        "PSQL_USER_ID": "postgres",
        "PSQL_USER_PASSWORD": "unused",
    }
    migrate_and_run_twice("sql_transfer", tmp_path, env)
