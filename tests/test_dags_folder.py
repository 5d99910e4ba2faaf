"""The committed dags/ folder: current with examples/, and loadable by Airflow with no errors."""

import ast
from pathlib import Path

from mlpipe_provider.cli.demo import compile_examples

REPO = Path(__file__).resolve().parents[1]


def test_committed_dags_are_current(capsys):
    assert compile_examples(REPO, check=True) == 0, capsys.readouterr().err


def test_dagbag_loads_every_dag_without_import_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert {"seed", "prep_train_evaluate"} <= set(bag.dag_ids)
    dag = bag.dags["prep_train_evaluate"]
    assert {"mlpipe.plan", "prep", "train", "evaluate"} == set(dag.task_ids)
    assert (
        dag.get_task("train").pool == "gpu-cluster" and dag.get_task("train").queue == "gpu-cluster"
    )
    assert set(dag.params.keys()) == {
        "epochs",
        "learning_rate",
        "test_fraction",
        "mlpipe_regenerate_outputs",
        "mlpipe_continue_on_step_failure",
    }


def test_generated_files_import_only_airflow_sdk_and_the_provider_runtime():
    for path in Path(REPO / "dags").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert modules <= {
            "airflow.sdk",
            "mlpipe_provider.operators.command",
            "mlpipe_provider.operators.data_transfer",
            "mlpipe_provider.operators.script",
            "mlpipe_provider.operators.estimator",
            "mlpipe_provider.operators.hyperdrive",
            "mlpipe_provider.operators.module",
            "mlpipe_provider.operators.parallel_run",
            "mlpipe_provider.operators.reuse_plan",
        }, (path, modules)
        calls = [
            n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
        assert {c.func.id for c in calls} <= {
            "Asset",
            "CommandStepOperator",
            "DAG",
            "Param",
            "DataTransferStepOperator",
            "EstimatorStepOperator",
            "HyperDriveStepOperator",
            "ModuleStepOperator",
            "MpiStepOperator",
            "ParallelRunPartitionOperator",
            "ParallelRunStepOperator",
            "PythonScriptStepOperator",
            "ReusePlanOperator",
            "TaskGroup",
        }


def test_demo_outside_a_checkout_says_where_to_run_it(tmp_path, capsys):
    """Installed, the demo has no repository beside it: it names the folder it looked in."""
    from mlpipe_provider.cli.main import main

    assert main(["demo", "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "examples/seed/seed.py" in err and "--project" in err
