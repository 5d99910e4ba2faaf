"""The compile/run contract: one spelling of every shared name, and operators that check their arguments.

A DAG file is generated, but nothing stops a person from editing it. An edit that breaks a step's
arguments must fail when Airflow parses the file, naming the task and the field, not halfway
through a run; a file the compiler wrote must still parse exactly as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlpipe_provider.contract import (
    PLAN_TASK_ID,
    ContractError,
    InputKind,
    planned_record,
    validate_step_kwargs,
)

DAGS = Path(__file__).resolve().parents[1] / "dags"


def _bag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    """``dags/data_transfer.py`` copied next to its examples' relative paths, with one edit."""
    source = (DAGS / "data_transfer.py").read_text()
    assert source.count(old) >= 1, old
    path = tmp_path / "dags" / "data_transfer.py"
    path.parent.mkdir()
    path.write_text(source.replace(old, new, 1))
    return path


def test_the_generated_dag_files_parse_against_the_contract(tmp_path):
    folder = tmp_path / "dags"
    shutil.copytree(DAGS, folder)
    bag = _bag(folder)
    assert bag.import_errors == {}
    step = bag.dags["data_transfer"].get_task("summarize")
    assert step.spec.inputs[0].kind == InputKind.PIPELINE_DATA
    assert step.spec.inputs[0].producer == "archive_reports"
    assert step.spec.compute.backend == "local"


@pytest.mark.parametrize(
    "old, new, field",
    [
        # a missing field: the input no longer says where its data is
        (
            "                'path_on_datastore': 'reports/2024',\n",
            "",
            "inputs[0].path_on_datastore",
        ),
        # a wrong kind
        ("'kind': 'pipeline_data'", "'kind': 'pipline_data'", "inputs[0]"),
        # a wrong type
        ("'gpus': 0,", "'gpus': 'none',", "compute.gpus"),
        # an output without a datastore
        (
            "                'datastore': 'workspaceblobstore',\n                'mode': 'mount',\n                'path_on_compute': None,\n            },\n        ],\n        compute",
            "                'mode': 'mount',\n                'path_on_compute': None,\n            },\n        ],\n        compute",
            "outputs[0].datastore",
        ),
        # a transfer destination of an unknown kind
        (
            "destination={\n            'kind': 'data_reference'",
            "destination={\n            'kind': 'blob'",
            "destination.kind",
        ),
    ],
)
def test_a_hand_edited_dag_file_fails_at_parse_time_naming_task_and_field(
    tmp_path, old, new, field
):
    path = _edited(tmp_path, old, new)
    bag = _bag(path.parent)
    assert "data_transfer" not in bag.dags
    (error,) = bag.import_errors.values()
    assert "ContractError" in error
    assert field in error
    assert "task 'archive_reports'" in error or "task 'summarize'" in error


def test_the_error_names_the_task_and_the_field():
    with pytest.raises(ContractError) as info:
        validate_step_kwargs(
            "train",
            step_name="train",
            workspace="ws",
            inputs=[{"name": "raw", "kind": "data_reference", "datastore": "blob"}],
        )
    message = str(info.value)
    assert "task 'train'" in message
    assert "inputs[0].path_on_datastore: Field required" in message


def test_contract_names_are_the_strings_dag_files_and_records_use():
    assert InputKind.DATA_REFERENCE == "data_reference"
    # plain strings: a spec holding one is written into a DAG file with repr
    assert repr(InputKind.DATA_REFERENCE) == "'data_reference'"
    assert planned_record({"reused": {"prep": {"a": 1}}}, "prep") == {"a": 1}
    assert planned_record({"reused": {}}, "prep") is None and planned_record(None, "p") is None
    assert PLAN_TASK_ID == "mlpipe.plan"


def test_the_contract_imports_no_authoring_compiler_or_airflow_code():
    import subprocess
    import sys

    code = (
        "import sys, mlpipe_provider.contract; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'compiler') "
        "or m.startswith(('mlpipe_provider.sdk', 'mlpipe_provider.client', 'mlpipe_provider.cli'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_input_is_located_by_the_resolver_of_its_kind():
    from mlpipe_provider.errors import UserErrorException
    from mlpipe_provider.runtime.input_resolvers import RESOLVERS, locate_input

    assert set(RESOLVERS) == {
        InputKind.DATA_REFERENCE,
        InputKind.DATA_PATH,
        InputKind.PIPELINE_DATA,
    }
    fixed = {"name": "raw", "kind": InputKind.DATA_REFERENCE, "datastore": "blob"}
    where = locate_input("prep", {**fixed, "path_on_datastore": "raw/2024"}, ti=None)
    assert (where.datastore, where.path, where.digest) == ("blob", "raw/2024", None)
    assert "'raw/2024' does not exist in datastore 'blob'" in where.missing

    # a DataPath parameter: this run's value says where, on the default's datastore
    param = {"name": "raw", "kind": InputKind.DATA_PATH, "parameter": "p", "datastore": "blob"}
    where = locate_input("prep", param, ti=None, params={"p": "runs/7"})
    assert (where.datastore, where.path) == ("blob", "runs/7")
    assert "DataPath parameter 'p'" in where.missing

    with pytest.raises(UserErrorException, match="input 'q': an input of kind 'sql'"):
        locate_input("prep", {"name": "q", "kind": InputKind.SQL}, ti=None)
