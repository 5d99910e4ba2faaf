"""Data lineage as Airflow assets (docs/lineage.md): inlets and outlets on the step tasks, one
asset event per produced output with the run's location and digest, none for a reused step, and
asset identities that survive any name or path."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import REPO, write_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.codegen import render_dag
from compiler.compile import compile_pipeline
from compiler.lower import lower
from mlpipe_provider import lineage
from mlpipe_provider.errors import MlpipeError
from mlpipe_provider.sdk import DataReference, Pipeline, PipelineData, PythonScriptStep


def _uris(assets) -> list[str]:
    return [a.uri for a in assets]


def _two_step_pipeline(ws, project, path_on_datastore="raw data/ünïcode 'q'.txt"):
    """prep reads a DataReference and writes PipelineData that total reads."""
    store = ws.get_default_datastore()
    source = project / "upload"
    target = source / path_on_datastore
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("1\n2\n3\n", encoding="utf-8")
    store.upload(str(source), target_path="")
    write_script(
        project / "src",
        "prep.py",
        """
        import os, sys
        os.makedirs(sys.argv[2], exist_ok=True)
        data = open(sys.argv[1], encoding="utf-8").read()
        open(os.path.join(sys.argv[2], "doubled.txt"), "w").write(data * 2)
        """,
    )
    write_script(
        project / "src",
        "total.py",
        """
        import os, sys
        print(len(open(os.path.join(sys.argv[1], "doubled.txt")).read()))
        """,
    )
    raw = DataReference(store, data_reference_name="raw", path_on_datastore=path_on_datastore)
    doubled = PipelineData("doubled", datastore=store)
    prep = PythonScriptStep(
        "prep.py",
        name="prep",
        arguments=[raw, doubled],
        inputs=[raw],
        outputs=[doubled],
        source_directory="src",
    )
    total = PythonScriptStep(
        "total.py", name="total", arguments=[doubled], inputs=[doubled], source_directory="src"
    )
    return Pipeline(ws, [prep, total]), store


def _asset_events(dag_id: str, run_id: str | None = None):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetEvent, AssetModel)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag_id)
        )
        if run_id is not None:
            query = query.where(AssetEvent.source_run_id == run_id)
        return [
            {
                "uri": asset.uri,
                "name": asset.name,
                "task": event.source_task_id,
                "extra": event.extra,
            }
            for event, asset in session.execute(query).all()
        ]


# --- identities ---------------------------------------------------------------------------------


def test_identities_are_percent_encoded_and_parse_back():
    data = lineage.datastore_asset("my ws", "store", "a b/'q\"/ü.csv/")
    assert data.uri == "x-mlpipe://my%20ws/datastores/store/a%20b/%27q%22/%C3%BC.csv"
    assert data.name == data.uri.removeprefix("x-mlpipe://")
    assert lineage.parse(data.uri) == {
        "kind": "datastore",
        "workspace": "my ws",
        "datastore": "store",
        "path": "a b/'q\"/ü.csv",
    }
    # spellings of one path are one asset
    assert lineage.datastore_asset("my ws", "store", "./a b//'q\"/ü.csv") == data
    out = lineage.output_asset("ws", "dag/x", "group.task", "out/put")
    assert out.uri == "x-mlpipe://ws/pipelines/dag%2Fx/group.task/out%2Fput"
    assert lineage.parse(out.uri)["output"] == "out/put"
    assert lineage.parse("x-mlpipe://ws/pipelines/a/b") is None
    assert lineage.parse("s3://bucket/key") is None


def test_a_path_too_long_for_airflow_gets_a_stable_hashed_identity():
    from airflow.sdk import Asset

    long = lineage.datastore_asset("ws", "store", "d/" * 1000 + "f")
    again = lineage.datastore_asset("ws", "store", "d/" * 1000 + "f")
    other = lineage.datastore_asset("ws", "store", "d/" * 1000 + "g")
    assert len(long.uri) <= lineage.MAX_LENGTH and long == again and long.uri != other.uri
    assert Asset(name=long.name, uri=long.uri, group=long.group).uri == long.uri


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    workspace=st.text(min_size=1, max_size=20),
    datastore=st.text(min_size=1, max_size=20),
    path=st.lists(
        st.text(min_size=1, max_size=12).filter(lambda p: "/" not in p and p not in (".", "..")),
        max_size=4,
    ),
    output=st.text(min_size=1, max_size=20),
)
def test_any_names_give_valid_airflow_assets_that_round_trip(workspace, datastore, path, output):
    """Quotes, spaces, unicode, slashes: Airflow keeps the URI as written, and it maps back."""
    from airflow.sdk import Asset

    rel = "/".join(path)
    for asset, expected in (
        (lineage.datastore_asset(workspace, datastore, rel), rel),
        (lineage.output_asset(workspace, "dag", "task", output), output),
    ):
        made = Asset(name=asset.name, uri=asset.uri, group=asset.group)
        assert (made.name, made.uri) == (asset.name, asset.uri)
        assert asset.uri.isascii() and asset.name.isascii()
        found = lineage.parse(asset.uri)
        assert found["workspace"] == workspace
        assert (found.get("path") if found["kind"] == "datastore" else found["output"]) == expected
        assert lineage.asset_for_uri(asset.uri) == asset


# --- the compiled DAG -----------------------------------------------------------------------------


def test_compiled_tasks_carry_inlets_and_outlets_as_literals(ws, project, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    path = "raw data/ünïcode 'q'.txt"
    pipeline, _ = _two_step_pipeline(ws, project, path)
    compiled = compile_pipeline(pipeline, "lineage_dag", tmp_path / "dags")
    compiled.write()
    again = compile_pipeline(pipeline, "lineage_dag", tmp_path / "dags")
    assert again.text == compiled.text  # byte-identical

    # literal-only: every Asset(...) takes keyword literals, nothing else
    tree = ast.parse(compiled.text)
    asset_calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Asset"
    ]
    assert asset_calls
    for call in asset_calls:
        assert not call.args and {k.arg for k in call.keywords} == {"name", "uri", "group"}
        for keyword in call.keywords:
            ast.literal_eval(keyword.value)

    bag = DagBag(dag_folder=str(compiled.path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["lineage_dag"]
    raw = lineage.datastore_asset(ws.name, "workspaceblobstore", path)
    doubled = lineage.output_asset(ws.name, "lineage_dag", "prep", "doubled")
    assert _uris(dag.get_task("prep").inlets) == [raw.uri]
    assert _uris(dag.get_task("prep").outlets) == [doubled.uri]
    assert _uris(dag.get_task("total").inlets) == [doubled.uri]
    assert dag.get_task("total").outlets == []
    assert dag.get_task("prep").inlets[0].name == raw.name
    assert lineage.parse(dag.get_task("prep").inlets[0].uri)["path"] == path
    # the plan task carries none: lineage belongs to the step, not the reuse check
    assert dag.get_task("mlpipe.plan").inlets == dag.get_task("mlpipe.plan").outlets == []


def test_two_pipelines_reading_the_same_data_share_its_asset(ws, project, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    first, store = _two_step_pipeline(ws, project, "shared/table.csv")
    write_script(project / "src", "other.py", "print('other')\n")
    other = PythonScriptStep(
        "other.py",
        name="other",
        # another spelling of the same path, through another DataReference object
        inputs=[
            DataReference(store, data_reference_name="t", path_on_datastore="./shared//table.csv")
        ],
        source_directory="src",
    )
    dags = tmp_path / "dags"
    for pipeline, dag_id in ((first, "reader_one"), (Pipeline(ws, [other]), "reader_two")):
        compile_pipeline(pipeline, dag_id, dags).write()
    bag = DagBag(dag_folder=str(dags))
    assert not bag.import_errors, bag.import_errors
    one = bag.dags["reader_one"].get_task("prep").inlets
    two = bag.dags["reader_two"].get_task("other").inlets
    assert one == two and len(one) == 1


def test_examples_link_producers_and_consumers_through_assets():
    """In dags/, every PipelineData inlet is the outlet of the producing task of the same DAG."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    checked = 0
    for dag in bag.dags.values():
        outlets = {a.uri: t.task_id for t in dag.tasks for a in t.outlets}
        for task in dag.tasks:
            for asset in task.inlets:
                found = lineage.parse(asset.uri)
                if found["kind"] == "output":
                    assert outlets[asset.uri] == found["task_id"], (dag.dag_id, asset.uri)
                    checked += 1
    assert checked >= 5
    transfer = bag.dags["data_transfer"].get_task("archive_reports")
    assert lineage.datastore_asset("examples", "archive", "reports/2024").uri in _uris(
        transfer.outlets
    )


# --- runs -----------------------------------------------------------------------------------------


def test_a_run_records_one_event_per_output_with_its_digest_and_a_reused_run_none(
    ws, project, run_dag
):
    pipeline, store = _two_step_pipeline(ws, project, "raw/numbers.txt")
    dag_id = "lineage_run"
    dag_run, records = run_dag(pipeline, dag_id=dag_id)
    assert str(dag_run.state) == "success"
    state, record = records["prep"]
    assert state == "success"
    events = _asset_events(dag_id, dag_run.run_id)
    doubled = lineage.output_asset(ws.name, dag_id, "prep", "doubled")
    assert [(e["uri"], e["task"]) for e in events] == [(doubled.uri, "prep")]
    extra = events[0]["extra"]
    location = record["outputs"]["doubled"]
    assert extra["digest"] == location["digest"] and extra["digest"]
    assert extra["path"] == location["path"] == f"azureml/{record['step_run_id']}/doubled"
    assert extra["datastore"] == "workspaceblobstore"
    assert extra["step_run_id"] == record["step_run_id"]
    assert extra["files"] == 1 and extra["size"] == len("1\n2\n3\n" * 2)
    assert str(project) not in repr(extra)  # datastore-relative: no host path in the event

    # nothing changed: both steps are reused (skipped), so no data changed and no event is recorded
    second, records = run_dag(pipeline, dag_id=dag_id)
    assert str(second.state) == "success"
    assert records["prep"][0] == "skipped" and records["total"][0] == "skipped"
    assert _asset_events(dag_id, second.run_id) == []

    # the input changed in place: prep runs again and records a new event with the new digest
    (project / "upload" / "raw" / "numbers.txt").write_text("4\n5\n", encoding="utf-8")
    store.upload(str(project / "upload"), target_path="", overwrite=True)
    third, records = run_dag(pipeline, dag_id=dag_id)
    assert records["prep"][0] == "success"
    events = _asset_events(dag_id, third.run_id)
    assert [e["uri"] for e in events] == [doubled.uri]
    assert events[0]["extra"]["digest"] == records["prep"][1]["outputs"]["doubled"]["digest"]
    assert events[0]["extra"]["digest"] != extra["digest"]


# --- asset-triggered schedule -----------------------------------------------------------------------


def test_schedule_on_another_pipelines_output_asset(ws, project, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    producer, _ = _two_step_pipeline(ws, project, "raw/numbers.txt")
    dags = tmp_path / "dags"
    compile_pipeline(producer, "producer", dags).write()
    doubled = lineage.output_asset(ws.name, "producer", "prep", "doubled")
    write_script(project / "src", "after.py", "print('after')\n")
    consumer = Pipeline(ws, [PythonScriptStep("after.py", name="after", source_directory="src")])
    compiled = compile_pipeline(consumer, "consumer", dags, schedule_on_assets=[doubled.uri])
    assert "schedule=[\n        Asset(name=" in compiled.text
    compiled.write()
    assert compile_pipeline(consumer, "consumer", dags, schedule_on_assets=[doubled.uri]).text == (
        compiled.text
    )
    bag = DagBag(dag_folder=str(dags))
    assert not bag.import_errors, bag.import_errors
    scheduled_on = list(bag.dags["consumer"].timetable.asset_condition.objects)
    produced = bag.dags["producer"].get_task("prep").outlets
    # the same asset, name and URI, as the producer declares: Airflow links the two DAGs
    assert scheduled_on == produced

    with pytest.raises(MlpipeError, match="not an mlpipe asset URI"):
        compile_pipeline(consumer, "consumer", dags, schedule_on_assets=["s3://bucket/key"])


def test_cli_schedule_on_asset_option(ws, project, tmp_path):
    write_script(project / "src", "after.py", "print('after')\n")
    (project / "consumer.py").write_text(
        "from mlpipe_provider.sdk import Pipeline, PythonScriptStep, Workspace\n"
        "pipeline = Pipeline(Workspace.from_config(), "
        "[PythonScriptStep('after.py', name='after', source_directory='src')])\n",
        encoding="utf-8",
    )
    uri = lineage.output_asset(ws.name, "producer", "prep", "doubled").uri
    cli = [sys.executable, "-m", "mlpipe_provider.cli.main", "compile", "consumer.py", "-o", "out"]
    done = subprocess.run(
        [*cli, "--schedule-on-asset", uri], cwd=project, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (written,) = (project / "out").glob("*.py")
    text = written.read_text(encoding="utf-8")
    assert f"uri={uri!r}" in text
    bad = subprocess.run(
        [*cli, "--schedule-on-asset", "file:///etc/passwd"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "not an mlpipe asset URI" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_codegen_without_data_has_no_asset_import(ws, script_dir):
    step = PythonScriptStep("s.py", name="plain", source_directory=str(script_dir))
    text = render_dag(lower(Pipeline(ws, [step])), "plain", script_dir.parent / "dags")
    assert "from airflow.sdk import DAG, Param\n" in text and "Asset" not in text


def test_a_transfer_destination_links_its_writer_to_the_pipelines_reading_it(ws, project, run_dag):
    from airflow.dag_processing.dagbag import DagBag

    from mlpipe_provider.sdk import Datastore, DataTransferStep

    archive = Datastore.register_local(ws, "archive", "datastores/archive")
    source = ws._dir / "datastores" / "workspaceblobstore" / "in" / "data.txt"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("payload", encoding="utf-8")
    transfer = DataTransferStep(
        name="copy",
        source_data_reference=DataReference(ws.get_default_datastore(), "raw", "in/data.txt"),
        destination_data_reference=DataReference(archive, "copied", "out/data.txt"),
        source_reference_type="file",
        destination_reference_type="file",
    )
    dag_run, records = run_dag(Pipeline(ws, [transfer]), dag_id="lineage_transfer")
    assert str(dag_run.state) == "success"
    destination = lineage.datastore_asset(ws.name, "archive", "out/data.txt")
    output = lineage.output_asset(ws.name, "lineage_transfer", "copy", "copied")
    events = {e["uri"]: e["extra"] for e in _asset_events("lineage_transfer", dag_run.run_id)}
    assert set(events) == {destination.uri, output.uri}
    record = records["copy"][1]
    assert events[destination.uri]["path"] == "out/data.txt"
    assert events[destination.uri]["datastore"] == "archive"
    assert events[destination.uri]["copied_from"] == record["outputs"]["copied"]["path"]
    assert events[destination.uri]["digest"] == events[output.uri]["digest"]

    # another pipeline reading the destination has the transfer's outlet as its inlet
    write_script(project / "src", "use.py", "print('use')\n")
    reader = PythonScriptStep(
        "use.py",
        name="use",
        inputs=[DataReference(archive, "copied", "out/data.txt")],
        source_directory="src",
    )
    dags = project / "reader_dags"
    compile_pipeline(Pipeline(ws, [reader]), "lineage_reader", dags).write()
    bag = DagBag(dag_folder=str(dags))
    assert _uris(bag.dags["lineage_reader"].get_task("use").inlets) == [destination.uri]
