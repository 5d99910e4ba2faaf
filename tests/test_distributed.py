"""Estimator and MPI steps, distributed launch on the local backend, GPU capacity and device leases."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time

import pytest
from conftest import write_script

from mlpipe_provider.sdk import (
    AmlCompute,
    ComputeTarget,
    EstimatorStep,
    MpiStep,
    ParameterServer,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    PyTorch,
    RunConfiguration,
    TensorFlow,
)

RANK_REPORT = """
    import json, os, sys
    out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    keys = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
            "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "TF_CONFIG", "CUDA_VISIBLE_DEVICES", "EXTRA", "SEED"]
    report = {k: os.environ.get(k) for k in keys}
    report["argv"] = sys.argv[1:]
    open(os.path.join(out, f"rank-{os.environ.get('RANK', 'solo')}.json"), "w").write(json.dumps(report))
"""


def _reports(ws, record, port="out"):
    folder = ws._dir / "datastores" / "workspaceblobstore" / record["outputs"][port]["path"]
    return sorted(
        (json.loads(p.read_text()) for p in folder.glob("rank-*.json")),
        key=lambda r: r["RANK"] or "",
    )


@pytest.fixture
def cluster(ws):
    return ComputeTarget.create(
        ws, "cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    )


def test_mpi_step_starts_node_count_times_process_count_ranked_processes(
    ws, project, run_dag, cluster
):
    write_script(project / "src", "rank.py", RANK_REPORT)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = MpiStep(
        name="mpi",
        source_directory="src",
        script_name="rank.py",
        arguments=["--out", out],
        outputs=[out],
        compute_target=cluster,
        node_count=2,
        process_count_per_node=2,
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="mpi_ranks")
    state, record = records["mpi"]
    assert state == "success"
    reports = _reports(ws, record)
    assert [r["RANK"] for r in reports] == ["0", "1", "2", "3"]
    assert {r["WORLD_SIZE"] for r in reports} == {"4"}
    assert [r["LOCAL_RANK"] for r in reports] == ["0", "1", "0", "1"]
    assert [r["NODE_RANK"] for r in reports] == ["0", "0", "1", "1"]
    assert (
        len({r["MASTER_PORT"] for r in reports}) == 1 and reports[0]["MASTER_ADDR"] == "127.0.0.1"
    )
    assert [r["OMPI_COMM_WORLD_RANK"] for r in reports] == ["0", "1", "2", "3"]


def test_node_count_from_runconfig_pipeline_params_on_a_python_script_step(
    ws, project, run_dag, cluster
):
    write_script(project / "src", "rank.py", RANK_REPORT)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    config = RunConfiguration(communicator="IntelMpi")
    config.mpi.process_count_per_node = 1
    nodes = PipelineParameter("nodes", 2)
    step = PythonScriptStep(
        "rank.py",
        name="py_mpi",
        arguments=["--out", out],
        outputs=[out],
        compute_target=cluster,
        runconfig=config,
        runconfig_pipeline_params={"NodeCount": nodes},
        source_directory="src",
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="py_mpi", conf={"nodes": 3})
    assert [r["RANK"] for r in _reports(ws, records["py_mpi"][1])] == ["0", "1", "2"]
    _, records = run_dag(Pipeline(ws, [step]), dag_id="py_mpi")
    assert records["py_mpi"][0] == "success"  # default 2 nodes: a different fingerprint, so it ran


def test_estimator_step_passes_script_params_arguments_environment_and_logs_v1_deprecation(
    ws, project, run_dag, cluster
):
    write_script(project / "src", "rank.py", RANK_REPORT)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    records_seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records_seen.append
    logging.getLogger("azureml.train.estimator").addHandler(handler)
    try:
        estimator = PyTorch(
            source_directory="src",
            entry_script="rank.py",
            script_params={"--lr": 0.5},
            compute_target=cluster,
            node_count=2,
            environment_variables={"EXTRA": "yes"},
        )
    finally:
        logging.getLogger("azureml.train.estimator").removeHandler(handler)
    assert any("'PyTorch' estimator is deprecated" in r.getMessage() for r in records_seen)
    step = EstimatorStep(
        name="est",
        estimator=estimator,
        estimator_entry_script_arguments=["--out", out],
        outputs=[out],
        compute_target=cluster,
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="estimator")
    reports = _reports(ws, records["est"][1])
    assert [r["RANK"] for r in reports] == ["0", "1"]
    assert reports[0]["EXTRA"] == "yes"
    assert reports[0]["argv"][:2] == ["--lr", "0.5"] and reports[0]["argv"][2] == "--out"


def test_tensorflow_parameter_server_jobs_get_tf_config(ws, project, run_dag, cluster):
    write_script(project / "src", "rank.py", RANK_REPORT)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    estimator = TensorFlow(
        source_directory="src",
        entry_script="rank.py",
        compute_target=cluster,
        distributed_training=ParameterServer(worker_count=2, parameter_server_count=1),
    )
    step = EstimatorStep(
        name="tf",
        estimator=estimator,
        estimator_entry_script_arguments=["--out", out],
        outputs=[out],
        compute_target=cluster,
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="tf_ps")
    roles = [json.loads(r["TF_CONFIG"])["task"] for r in _reports(ws, records["tf"][1])]
    assert roles == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
        {"type": "ps", "index": 0},
    ]


def test_a_failing_rank_fails_the_step_and_stops_the_others(ws, project, run_dag, cluster, capsys):
    write_script(
        project / "src",
        "flaky.py",
        """
        import os, sys, time
        if os.environ["RANK"] == "1":
            sys.stderr.write("rank one gives up\\n")
            sys.exit(3)
        time.sleep(60)
    """,
    )
    step = MpiStep(
        name="flaky",
        source_directory="src",
        script_name="flaky.py",
        compute_target=cluster,
        node_count=1,
        process_count_per_node=3,
    )
    started = time.monotonic()
    _, records = run_dag(Pipeline(ws, [step]), dag_id="flaky")
    assert records["flaky"][0] == "failed"
    assert time.monotonic() - started < 40  # the sleeping ranks were stopped, not waited for
    out = capsys.readouterr().out
    assert "process 1 of 3" in out and "rank one gives up" in out


@pytest.mark.parametrize(
    ("make", "field", "message"),
    [
        (
            lambda ws, c: MpiStep(
                name="s",
                source_directory="src",
                script_name="rank.py",
                compute_target=c,
                node_count=0,
            ),
            "estimator.node_count",
            "must be an integer >= 1",
        ),
        (
            lambda ws, c: MpiStep(
                name="s",
                source_directory="src",
                script_name="rank.py",
                compute_target=c,
                node_count=9,
            ),
            "node_count",
            "max_nodes=4",
        ),
        (
            lambda ws, c: PythonScriptStep(
                "rank.py",
                name="s",
                source_directory="src",
                compute_target=c,
                runconfig_pipeline_params={"Nodes": PipelineParameter("n", 1)},
            ),
            "runconfig_pipeline_params.Nodes",
            "unknown property",
        ),
        (
            lambda ws, c: MpiStep(
                name="s",
                source_directory="src",
                script_name="rank.py",
                compute_target=c,
                node_count=PipelineParameter("n", 0),
            ),
            "estimator.node_count",
            "default must be",
        ),
    ],
)
def test_bad_distribution_is_a_compile_error(ws, project, cluster, make, field, message):
    write_script(project / "src", "rank.py", "print(1)\n")
    problems = Pipeline(ws, [make(ws, cluster)]).validate()
    assert any(f"step 's', field '{field}'" in p and message in p for p in problems), problems


def test_gpu_step_gets_its_leased_device(ws, project, run_dag, monkeypatch, tmp_path):
    monkeypatch.setenv("MLPIPE_DEVICE_LOCK_DIR", str(tmp_path / "locks"))
    write_script(project / "src", "rank.py", RANK_REPORT)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = PythonScriptStep(
        "rank.py",
        name="gpu",
        arguments=["--out", out],
        outputs=[out],
        compute_target=ws.compute_targets["STANDARD_NC12"],
        source_directory="src",
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="gpu_dev")
    (report,) = _reports(ws, records["gpu"][1])
    assert report["CUDA_VISIBLE_DEVICES"] == "0"


def _hold(count: int, configured: int, lock_dir: str, queue, hold_s: float) -> None:
    os.environ["MLPIPE_DEVICE_LOCK_DIR"] = lock_dir
    from mlpipe_provider.runtime.devices import DeviceLease

    lease = DeviceLease.acquire(count, configured, step_name="t", timeout_s=30, poll_s=0.05)
    queue.put((os.getpid(), lease.devices, time.monotonic()))
    time.sleep(hold_s)
    lease.release()


def test_device_leases_are_distinct_wait_when_busy_and_die_with_their_holder(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    locks = str(tmp_path / "locks")
    holders = [ctx.Process(target=_hold, args=(1, 2, locks, queue, 3.0)) for _ in range(2)]
    for p in holders:
        p.start()
    first = [queue.get(timeout=30) for _ in holders]
    assert sorted(d for _, (d,), _ in first) == ["0", "1"]  # two 1-GPU steps, two devices, at once
    waiter = ctx.Process(target=_hold, args=(1, 2, locks, queue, 0.0))
    waiter.start()
    holders[0].kill()  # a crashed step: the kernel drops its lock
    _, devices, _ = queue.get(timeout=30)
    killed_device = {pid: d for pid, (d,), _ in first}[holders[0].pid]
    assert devices == [killed_device]  # the waiter got exactly the device the dead holder had
    for p in [*holders, waiter]:
        p.join(timeout=30)
