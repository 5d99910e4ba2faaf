"""``ParallelRunStep``: mini-batches as Airflow mapped tasks, on the embedded Airflow for real.

Every run test compiles the pipeline and runs the DAG with ``dag.test()``; reuse is checked on
later runs of the same DAG: the whole step, then only the mini-batches whose files changed.
"""

from __future__ import annotations

import json

import pytest
from conftest import task_xcoms, write_script

from mlpipe_provider.sdk import (
    Dataset,
    Environment,
    ParallelRunConfig,
    ParallelRunStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
)

ENTRY = """
    import argparse, os
    from pathlib import Path
    from mlpipe_provider.sdk import EntryScript

    def init():
        global tag
        parser = argparse.ArgumentParser()
        parser.add_argument("--tag", default="none")
        tag = parser.parse_known_args()[0].tag
        with open(os.environ["CALLS_LOG"], "a") as log:
            log.write("init\\n")

    def run(mini_batch):
        rows = []
        with open(os.environ["CALLS_LOG"], "a") as log:
            log.write("run " + " ".join(Path(p).name for p in mini_batch) + "\\n")
        for path in mini_batch:
            text = Path(path).read_text()
            if "fail" in text:
                raise RuntimeError("cannot score " + Path(path).name)
            if "skip" in text:
                continue  # fewer rows than files: the rest count as failed items (v1)
            rows.append(f"{Path(path).name}:{text.strip()}:{tag}")
            Path(EntryScript().output_dir, Path(path).name + ".done").write_text("1")
        return rows
"""


def _files(ws, folder: str, count: int, text=lambda i: f"value-{i}") -> None:
    root = ws._dir / "datastores" / "workspaceblobstore" / folder
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"f{i:02d}.txt").write_text(text(i))


def _step(ws, *, mini_batch_size=2, output_action="append_row", tag="t1", **config):
    dataset = Dataset.File.from_files(path=(ws.get_default_datastore(), "in/"), validate=False)
    out = PipelineData("scored", datastore=ws.get_default_datastore())
    env = Environment("prs-test")
    env.environment_variables = {"CALLS_LOG": str(ws._dir / "calls.log")}
    cfg = ParallelRunConfig(
        environment=env,
        entry_script="entry.py",
        error_threshold=config.pop("error_threshold", 0),
        output_action=output_action,
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size=mini_batch_size,
        source_directory="src",
        run_max_try=config.pop("run_max_try", 1),
        **config,
    )
    return ParallelRunStep(
        name="score",
        parallel_run_config=cfg,
        inputs=[dataset.as_named_input("docs").as_mount()],
        output=out,
        arguments=["--tag", tag],
    )


def _calls(ws) -> list[str]:
    path = ws._dir / "calls.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def _output(ws, record, port="scored"):
    return ws._dir / "datastores" / "workspaceblobstore" / record["outputs"][port]["path"]


def _mini_batches(dag_run) -> list[dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == "score.mini_batch",
                XComModel.key == "return_value",
            )
        )
        found = [XComModel.deserialize_value(x) for x in rows]
    return sorted(found, key=lambda r: r["index"])


@pytest.fixture
def src(project):
    write_script(project / "src", "entry.py", ENTRY)
    return project / "src"


def test_mini_batches_run_as_mapped_tasks_then_reuse_whole_then_only_changed_files(
    ws, src, run_dag
):
    """First run: 4 mini-batches of 2 files, rows in file order. Second run: the plan reuses
    the whole step (no mini-batch runs). After changing one file: one mini-batch runs, three
    come from the store, and the rows are the new ones in the same order."""
    _files(ws, "in", 8)
    pipeline = Pipeline(ws, [_step(ws)])
    dag_run, records = run_dag(pipeline, dag_id="prs_reuse")
    state, record = records["score.parallel_run"]
    assert state == "success", records
    rows = (_output(ws, record) / "parallel_run_step.txt").read_text().splitlines()
    assert rows == [f"f{i:02d}.txt:value-{i}:t1" for i in range(8)]
    assert record["metrics"]["mini_batches"] == 4
    assert record["metrics"]["mini_batches_reused"] == 0
    assert sorted((_output(ws, record)).glob("*.done")) != []  # EntryScript().output_dir merged
    calls = _calls(ws)
    assert calls.count("init") == 4 and sorted(c for c in calls if c != "init") == [
        "run f00.txt f01.txt",
        "run f02.txt f03.txt",
        "run f04.txt f05.txt",
        "run f06.txt f07.txt",
    ]

    again, records = run_dag(pipeline, dag_id="prs_reuse")
    assert records["score.parallel_run"][0] == "skipped"
    assert records["score.parallel_run"][1]["reused_run_id"] == record["step_run_id"]
    assert records["score.partition"][0] == "skipped"  # the plan skipped the whole group
    assert _calls(ws) == []

    (ws._dir / "datastores" / "workspaceblobstore" / "in" / "f05.txt").write_text("changed")
    third, records = run_dag(pipeline, dag_id="prs_reuse")
    state, record3 = records["score.parallel_run"]
    assert state == "success"
    assert _calls(ws) == ["init", "run f04.txt f05.txt"]
    # only the changed mini-batch became a task: the partition took the others from the store
    assert [(m["index"], m["reused"]) for m in _mini_batches(third)] == [(2, False)]
    assert record3["metrics"]["mini_batches_reused"] == 3
    rows = (_output(ws, record3) / "parallel_run_step.txt").read_text().splitlines()
    assert rows[5] == "f05.txt:changed:t1" and len(rows) == 8


def test_error_threshold_fails_the_step_and_a_tolerated_failure_is_not_reused(ws, src, run_dag):
    """A mini-batch that raises fails after run_max_try tries (Airflow retries it) and is
    recorded failed; two failed files pass error_threshold=1 and fail the step, naming the field.
    With error_threshold=-1 the step finishes without those rows, and its next run tries the
    failed mini-batch again (no whole-step entry) while the others are reused."""
    _files(ws, "in", 6, text=lambda i: "fail" if i == 2 else f"value-{i}")
    failing = Pipeline(ws, [_step(ws, error_threshold=1, run_max_try=2)])
    dag_run, records = run_dag(failing, dag_id="prs_threshold")
    assert records["score.parallel_run"][0] == "failed"
    error = task_xcoms(dag_run)["score.parallel_run"]["mlpipe_error"]["error"]
    assert "error_threshold" in error and "2 of 6 item(s) failed" in error
    calls = _calls(ws)
    assert calls.count("run f02.txt f03.txt") == 2  # the first try and Airflow's retry
    failed = [m for m in _mini_batches(dag_run) if m.get("failed")]
    assert [m["index"] for m in failed] == [1] and "cannot score f02.txt" in failed[0]["error"]

    tolerant = Pipeline(ws, [_step(ws, error_threshold=-1)])
    _, records = run_dag(tolerant, dag_id="prs_threshold")
    state, record = records["score.parallel_run"]
    assert state == "success"
    assert record["metrics"]["items_failed"] == 2
    rows = (_output(ws, record) / "parallel_run_step.txt").read_text().splitlines()
    assert [r.split(":")[0] for r in rows] == ["f00.txt", "f01.txt", "f04.txt", "f05.txt"]
    _calls(ws)
    _, records = run_dag(tolerant, dag_id="prs_threshold")
    assert records["score.parallel_run"][0] == "success"  # not reused: it had failures
    assert _calls(ws) == ["init", "run f02.txt f03.txt"]  # only the failed mini-batch again


def test_allowed_failed_count_and_missing_rows_count_as_failed_items(ws, src, run_dag):
    """run() returning fewer rows than files counts the rest as failed items (v1), and
    allowed_failed_count limits whole failed mini-batches."""
    _files(ws, "in", 4, text=lambda i: "skip" if i == 0 else ("fail" if i == 3 else "ok"))
    pipeline = Pipeline(ws, [_step(ws, error_threshold=-1, allowed_failed_count=0)])
    dag_run, records = run_dag(pipeline, dag_id="prs_count")
    assert records["score.parallel_run"][0] == "failed"
    error = task_xcoms(dag_run)["score.parallel_run"]["mlpipe_error"]["error"]
    assert "allowed_failed_count" in error and "1 mini-batch(es) failed" in error


def test_summary_only_writes_no_row_file_and_a_parameter_sets_the_mini_batch_size(ws, src, run_dag):
    _files(ws, "in", 5)
    size = PipelineParameter("batch_files", default_value=5)
    pipeline = Pipeline(ws, [_step(ws, mini_batch_size=size, output_action="summary_only")])
    _, records = run_dag(pipeline, dag_id="prs_summary", conf={"batch_files": 2})
    state, record = records["score.parallel_run"]
    assert state == "success"
    assert record["metrics"]["mini_batches"] == 3  # 2 + 2 + 1 files
    folder = _output(ws, record)
    assert not (folder / "parallel_run_step.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == [f"f{i:02d}.txt.done" for i in range(5)]


def test_bad_settings_are_compile_errors_naming_the_step_and_field(ws, src):
    tabular = Dataset.Tabular.from_delimited_files(
        path=(ws.get_default_datastore(), "t.csv"), validate=False
    )
    env = Environment("e")
    cfg = ParallelRunConfig(
        environment=env,
        entry_script="missing.py",
        error_threshold=-2,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        partition_keys=["region"],
        source_directory="src",
    )
    step = ParallelRunStep(
        name="score", parallel_run_config=cfg, inputs=[tabular.as_named_input("rows")]
    )
    message = "\n".join(Pipeline(ws, [step]).validate())
    assert "step 'score', field 'parallel_run_config.entry_script'" in message
    assert "step 'score', field 'parallel_run_config.error_threshold'" in message
    assert "step 'score', field 'parallel_run_config.partition_keys'" in message
    assert "step 'score', field 'inputs[0]'" in message and "TabularDataset" in message


def test_the_generated_dag_maps_mini_batches_and_bounds_them(ws, src, tmp_path):
    from compiler.compile import compile_pipeline

    first = compile_pipeline(Pipeline(ws, [_step(ws)]), "prs_dag", tmp_path)
    second = compile_pipeline(Pipeline(ws, [_step(ws)]), "prs_dag", tmp_path)
    assert first.text == second.text
    assert ".expand(mini_batch=score_partition.output)" in first.text
    assert "max_active_tis_per_dagrun=2," in first.text and "retries=0," in first.text
    assert json.dumps("score.parallel_run") in first.text.replace("'", '"')


SIDE_ENTRY = """
    import argparse, os
    from pathlib import Path

    def init():
        global factor
        parser = argparse.ArgumentParser()
        parser.add_argument("--model", required=True)
        model = parser.parse_args().model
        factor = Path(model, "factor.txt").read_text().strip()
        assert os.environ["AZUREML_DATAREFERENCE_model"] == model
        with open(os.environ["CALLS_LOG"], "a") as log:
            log.write("init\\n")

    def run(mini_batch):
        return [Path(p).name + "*" + factor for p in mini_batch]
"""


def test_a_side_input_reaches_every_mini_batch_and_is_part_of_their_fingerprint(
    ws, project, run_dag
):
    """A side input (a DataReference in side_inputs and arguments) is a path every mini-batch's
    init() reads; changing it runs the mini-batches again, though no partitioned file changed."""
    from mlpipe_provider.sdk import DataReference

    write_script(project / "src", "entry.py", SIDE_ENTRY)
    _files(ws, "in", 3)
    model_dir = ws._dir / "datastores" / "workspaceblobstore" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "factor.txt").write_text("2")
    model = DataReference(
        ws.get_default_datastore(), data_reference_name="model", path_on_datastore="model"
    )
    step = _step(ws, mini_batch_size=3)
    step = ParallelRunStep(
        name="score",
        parallel_run_config=step.parallel_run_config,
        inputs=step.inputs[:1],
        output=step.output,
        side_inputs=[model],
        arguments=["--model", model],
    )
    pipeline = Pipeline(ws, [step])
    _, records = run_dag(pipeline, dag_id="prs_side")
    state, record = records["score.parallel_run"]
    assert state == "success"
    rows = (_output(ws, record) / "parallel_run_step.txt").read_text().splitlines()
    assert rows == ["f00.txt*2", "f01.txt*2", "f02.txt*2"]
    assert _calls(ws) == ["init"]
    (model_dir / "factor.txt").write_text("3")
    _, records = run_dag(pipeline, dag_id="prs_side")
    record = records["score.parallel_run"][1]
    assert record["metrics"]["mini_batches_reused"] == 0 and _calls(ws) == ["init"]
    rows = (_output(ws, record) / "parallel_run_step.txt").read_text().splitlines()
    assert rows[0] == "f00.txt*3"


def test_experiment_submit_runs_it_then_a_second_submit_is_recorded_without_airflow(ws, src):
    """The user's path: ``Experiment.submit`` runs the step on the embedded Airflow; the second
    submit of the unchanged pipeline is decided from the DAG file alone (nothing to run), and
    the run lists the step, reused, not its partition and mini-batch tasks."""
    from mlpipe_provider.sdk import Experiment

    _files(ws, "in", 4)
    experiment = Experiment(ws, "prs")
    first = experiment.submit(Pipeline(ws, [_step(ws)]))
    first.wait_for_completion(show_output=False)
    assert first.get_status() == "Finished"
    assert [s.name for s in first.get_steps()] == ["score"]
    second = experiment.submit(Pipeline(ws, [_step(ws)]))
    assert second.get_status() == "Finished"
    assert second._status.get("decided_before_airflow") is True
    (step,) = second.get_steps()
    (before,) = first.find_step_run("score")
    assert step.reused and step.get_properties()["azureml.reusedrunid"] == before.id


# --- the real scheduler -------------------------------------------------------------------------

SLOW_ENTRY = """
    import json, os, time
    from pathlib import Path

    def init():
        pass

    def run(mini_batch):
        start = time.time()
        time.sleep(1.5)
        name = Path(mini_batch[0]).name
        Path(os.environ["SPANS"], name + ".json").write_text(json.dumps([start, time.time()]))
        return [name]
"""


@pytest.fixture(scope="module")
def server():
    import shutil
    import tempfile
    from pathlib import Path

    from airflow_server import AirflowServer

    home = Path(tempfile.mkdtemp(prefix="mlpipe-prs-server-"))
    srv = AirflowServer(home)
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_the_scheduler_maps_one_task_per_mini_batch_and_bounds_how_many_run_at_once(
    server, ws, project
):
    """On a real scheduler (LocalExecutor, parallelism 4): six mini-batches become six mapped
    task instances, never more than node_count * process_count_per_node = 2 run at once, and
    the step writes the six rows in mini-batch order."""
    from compiler.compile import compile_pipeline

    write_script(project / "src", "entry.py", SLOW_ENTRY)
    spans = project / "spans"
    spans.mkdir()
    _files(ws, "in", 6)
    step = _step(ws, mini_batch_size=1)
    step.parallel_run_config.environment.environment_variables["SPANS"] = str(spans)
    compiled = compile_pipeline(Pipeline(ws, [step]), "prs_server", server.dags)
    compiled.write()
    server.wait_for_dag("prs_server")
    run_id = server.trigger("prs_server")
    assert server.wait_for_run("prs_server", run_id, timeout_s=240) == "success"
    tis = server.get(f"/api/v2/dags/prs_server/dagRuns/{run_id}/taskInstances")["task_instances"]
    mapped = sorted(
        (ti["map_index"], ti["state"]) for ti in tis if ti["task_id"] == "score.mini_batch"
    )
    assert mapped == [(i, "success") for i in range(6)]
    windows = [json.loads(p.read_text()) for p in spans.glob("*.json")]
    assert len(windows) == 6
    most = max(sum(1 for s, e in windows if s <= start < e) for start, _ in windows)
    assert most <= 2
    step_ti = next(ti for ti in tis if ti["task_id"] == "score.parallel_run")
    assert step_ti["state"] == "success"
    out = sorted((ws._dir / "datastores" / "workspaceblobstore" / "azureml").glob("*/scored"))
    rows = (out[0] / "parallel_run_step.txt").read_text().splitlines()
    assert rows == [f"f{i:02d}.txt" for i in range(6)]


def test_a_gpu_target_takes_a_pool_slot_per_mini_batch_and_defaults_to_a_process_per_gpu(
    ws, src, tmp_path
):
    """process_count_per_node=None means one process per GPU (v1); each mini-batch holds one
    slot of the target's pool, whose slots are its GPUs."""
    from compiler.compile import compile_pipeline
    from mlpipe_provider.sdk import AmlCompute, ComputeTarget

    gpu = ComputeTarget.create(
        ws, "gpu-pair", AmlCompute.provisioning_configuration(vm_size="STANDARD_NC12", max_nodes=2)
    )
    step = _step(ws)
    config = step.parallel_run_config
    config.compute_target, config.process_count_per_node, config.node_count = gpu, None, 2
    compiled = compile_pipeline(Pipeline(ws, [step]), "prs_gpu", tmp_path)
    text = compiled.text
    mapped = text[text.index("ParallelRunMiniBatchOperator.partial(") :]
    mapped = mapped[: mapped.index(".expand(")]
    assert "max_active_tis_per_dagrun=4," in mapped  # 2 nodes x 2 GPUs
    assert "pool='gpu-pair'," in mapped and "pool_slots=1," in mapped
    assert json.loads(compiled.pools_text)["gpu-pair"]["slots"] == 4


def test_a_partition_failure_is_the_steps_error_in_the_runs_status(ws, src, run_dag):
    """The input folder is missing: the partition task fails; the run's status (as the embedded
    runner writes it) lists the step alone, failed with the partition's error."""
    from mlpipe_provider.embedded.runner import snapshot

    dag_run, records = run_dag(Pipeline(ws, [_step(ws)]), dag_id="prs_missing")
    assert records["score.partition"][0] == "failed"
    steps = snapshot(dag_run.dag_id, dag_run.logical_date)["steps"]
    assert set(steps) == {"score.parallel_run"}
    entry = steps["score.parallel_run"]
    assert entry["status"] == "Failed"
    assert "dataset input 'docs'" in entry["error"] and "does not exist" in entry["error"]
