"""GPU targets on a real scheduler (LocalExecutor honours pools): a 1-GPU pool never runs two
1-GPU steps at once; a 2-GPU target runs two 1-GPU steps at the same time on different devices."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from airflow_server import AirflowServer
from conftest import write_script

from compiler.compile import compile_pipeline
from mlpipe_provider.sdk import Pipeline, PipelineData, PythonScriptStep, Workspace

SLEEPER = """
    import json, os, sys, time
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    start = time.time()
    time.sleep(4)
    json.dump({"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time(),
               "tag": sys.argv[2]}, open(os.path.join(out, "span.json"), "w"))
"""


@pytest.fixture(scope="module")
def server():
    home = Path(tempfile.mkdtemp(prefix="mlpipe-server-"))
    srv = AirflowServer(home)
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(home, ignore_errors=True)


def _two_gpu_steps(ws, project, target: str, tag: str) -> Pipeline:
    write_script(project / "src", "sleeper.py", SLEEPER)
    steps = []
    for name in ("left", "right"):
        out = PipelineData(f"{name}_out", datastore=ws.get_default_datastore())
        steps.append(
            PythonScriptStep(
                "sleeper.py",
                name=name,
                arguments=[out, tag],
                outputs=[out],
                compute_target=ws.compute_targets[target],
                source_directory="src",
            )
        )
    return Pipeline(ws, steps)


def _spans(server, dag_id: str, run_id: str) -> list[tuple[dt.datetime, dt.datetime]]:
    tis = server.task_instances(dag_id, run_id)
    spans = []
    for name in ("left", "right"):
        ti = tis[name]
        assert ti["state"] == "success", ti
        spans.append(
            (dt.datetime.fromisoformat(ti["start_date"]), dt.datetime.fromisoformat(ti["end_date"]))
        )
    return spans


def _run(server, ws, project, target: str, slots: int, tmp_path) -> tuple[list, Path]:
    dag_id = f"gpu_{target.lower()}"
    compiled = compile_pipeline(
        _two_gpu_steps(ws, project, target, tag=str(tmp_path)), dag_id, server.dags
    )
    compiled.write()
    pools = json.loads(compiled.pools_text)
    assert pools[target]["slots"] == slots
    server.set_pool(target, slots)
    server.wait_for_dag(dag_id)
    run_id = server.trigger(dag_id)
    assert server.wait_for_run(dag_id, run_id) == "success"
    return _spans(server, dag_id, run_id), ws._dir


def test_one_gpu_pool_never_runs_two_one_gpu_steps_at_once(server, project, tmp_path, monkeypatch):
    monkeypatch.setenv("MLPIPE_DEVICE_LOCK_DIR", str(tmp_path / "locks"))
    ws = Workspace.from_config()
    (a_start, a_end), (b_start, b_end) = _run(server, ws, project, "STANDARD_NC6", 1, tmp_path)[0]
    assert a_end <= b_start or b_end <= a_start  # one after the other


def test_two_gpu_target_runs_two_one_gpu_steps_at_once_on_different_devices(
    server, project, tmp_path
):
    ws = Workspace.from_config()
    spans, ws_dir = _run(server, ws, project, "STANDARD_NC12", 2, tmp_path)
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end  # they overlapped
    outputs = list(
        (ws_dir / "datastores" / "workspaceblobstore" / "azureml").glob("*/*_out/span.json")
    )
    devices = sorted(json.loads(p.read_text())["devices"] for p in outputs)
    assert devices == ["0", "1"]
