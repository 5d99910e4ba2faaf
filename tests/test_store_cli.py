"""``mlpipe store ls`` and ``mlpipe store gc`` on a store filled by real DAG runs."""

from __future__ import annotations

from conftest import write_script

from mlpipe_provider.cli.main import main
from mlpipe_provider.runtime.step_context import StepWorkspace
from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep
from mlpipe_provider.store import OutputStore


def _pipeline(ws, project):
    write_script(
        project / "s",
        "make.py",
        """
        import os, sys
        os.makedirs(sys.argv[1], exist_ok=True)
        open(os.path.join(sys.argv[1], "data.bin"), "wb").write(b"x" * 2048)
    """,
    )
    out = PipelineData("made", datastore=ws.get_default_datastore())
    return Pipeline(
        ws,
        [
            PythonScriptStep(
                "make.py", name="make", arguments=[out], outputs=[out], source_directory="s"
            )
        ],
    )


def test_ls_lists_entries_and_gc_deletes_old_ones_but_never_leased(ws, project, run_dag, capsys):
    _, records = run_dag(_pipeline(ws, project), dag_id="store_cli")
    fingerprint = records["make"][1]["fingerprint"]
    assert main(["store", "ls", "--workspace", str(ws._dir)]) == 0
    listing = capsys.readouterr().out
    assert (
        "make" in listing
        and fingerprint[:16] in listing
        and "2.0 KiB" in listing
        and "1 entry" in listing
    )

    store = OutputStore(StepWorkspace(ws._dir, ws._config).datastore("workspaceblobstore"))
    assert store.acquire(fingerprint, "someone/else/make", ttl=60) is not None
    assert main(["store", "gc", "--older-than", "0", "--workspace", str(ws._dir)]) == 0
    assert "1 kept because leased" in capsys.readouterr().out
    assert store.read_entry(fingerprint) is not None
    store.release(fingerprint, "someone/else/make")

    assert main(["store", "gc", "--older-than", "1", "--workspace", str(ws._dir)]) == 0
    assert store.read_entry(fingerprint) is not None  # younger than a day: kept
    assert main(["store", "gc", "--older-than", "0", "--workspace", str(ws._dir)]) == 0
    assert store.read_entry(fingerprint) is None
    output_dir = (
        ws._dir
        / "datastores"
        / "workspaceblobstore"
        / records["make"][1]["outputs"]["made"]["path"]
    )
    assert not output_dir.exists()

    _, again = run_dag(_pipeline(ws, project), dag_id="store_cli")
    assert again["make"][0] == "success"  # deleted entry: the step runs again, nothing breaks


def test_gc_keeps_outputs_that_a_registered_dataset_points_into(ws, project, run_dag):
    import json

    _, records = run_dag(_pipeline(ws, project), dag_id="store_cli_registered")
    record = records["make"][1]
    path = record["outputs"]["made"]["path"]
    registry = ws._dir / "datasets" / "made"
    registry.mkdir(parents=True)
    (registry / "1.json").write_text(
        json.dumps(
            {
                "name": "made",
                "version": 1,
                "definition": {"paths": [{"datastore": "workspaceblobstore", "path": path}]},
            }
        )
    )
    assert main(["store", "gc", "--older-than", "0", "--workspace", str(ws._dir)]) == 0
    store = OutputStore(StepWorkspace(ws._dir, ws._config).datastore("workspaceblobstore"))
    assert store.read_entry(record["fingerprint"]) is not None
    assert (ws._dir / "datastores" / "workspaceblobstore" / path / "data.bin").is_file()
