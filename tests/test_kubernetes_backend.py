"""The kubernetes backend: pod specs built from compiled pipelines, and running them on a fake
cluster (there is none here).

Pipelines are compiled and loaded with DagBag; the ``Launch`` comes from the real
``script_step.run_script`` (its ``run_launch`` captured), and the pods (``V1Pod``) are rendered
as the API server receives them (``ApiClient().sanitize_for_serialization``). Running is tested
against ``fake_core_v1.FakeCoreV1``, an in-memory API at the ``CoreV1Api`` boundary put where
``launch._core_v1`` gets the hook's client; one test runs a whole DAG with ``dag.test()`` on it,
its kubelet executing each pod's container command locally with exactly the pod's variables and
working directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from conftest import write_script
from fake_core_v1 import FakeCoreV1

from mlpipe_provider.errors import StepFailedError, UserErrorException
from mlpipe_provider.runtime.backends.kubernetes import launch as k8s_launch
from mlpipe_provider.runtime.backends.kubernetes import step_pods
from mlpipe_provider.runtime.backends.kubernetes.pod_spec import LAUNCHER
from mlpipe_provider.runtime.process import ProcessResult
from mlpipe_provider.sdk import (
    AmlCompute,
    ComputeTarget,
    DataReference,
    Environment,
    MpiStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RunConfiguration,
)

DATASTORE = "workspaceblobstore"
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
TRAIN = """
    import json, os, sys
    from mlpipe_provider.sdk import Run
    out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    names = ["RANK", "WORLD_SIZE", "NODE_RANK", "MY_SETTING", "HOME", "AML_PARAMETER_mode"]
    report = {k: os.environ.get(k) for k in names}
    report["argv"] = sys.argv[1:]
    report["cwd"] = os.getcwd()
    open(os.path.join(out, "rank-%s.json" % os.environ.get("RANK", "solo")), "w").write(json.dumps(report))
    print("trained as rank", os.environ.get("RANK", "solo"))
    Run.get_context().log("ran", 1)
"""


# --------------------------------------------------------------------------- helpers


def k8s_target(ws, name: str, vm_size: str, **settings) -> ComputeTarget:
    """Register a kubernetes target; its settings land in .mlpipe/config.json as extra keys."""
    return ComputeTarget.create(
        ws,
        name,
        AmlCompute.provisioning_configuration(
            vm_size=vm_size, max_nodes=4, backend="kubernetes", **settings
        ),
    )


def edit_target(ws, name: str, **settings) -> None:
    """Change a target's settings in .mlpipe/config.json by hand, as a workspace operator would."""
    path = ws._dir / "config.json"
    data = json.loads(path.read_text())
    data["compute_targets"][name].update(settings)
    path.write_text(json.dumps(data, indent=2))


def datastore_root(ws) -> Path:
    return (ws._dir / "datastores" / DATASTORE).resolve()


def load_dag(pipeline, dag_id: str, dags_dir: Path):
    from airflow.dag_processing.dagbag import DagBag

    from compiler.compile import compile_pipeline

    compiled = compile_pipeline(pipeline, dag_id, dags_dir)
    compiled.write()
    bag = DagBag(dag_folder=str(compiled.path))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(compiled.dag_id)


def launch_for(dag, task_id: str, monkeypatch, conf: dict | None = None):
    """The Launch ``run_script`` hands to the backend, for this task of the compiled DAG."""
    from mlpipe_provider.runtime import script_step
    from mlpipe_provider.runtime.step_context import StepWorkspace

    op = dag.get_task(task_id)
    captured = []

    def capture(launch):
        captured.append(launch)
        return ProcessResult(0, 0.0, [])

    monkeypatch.setattr(script_step, "run_launch", capture)
    params = {**dag.params.dump(), **(conf or {})}
    context = {
        "params": params,
        "dag_run": types.SimpleNamespace(run_id="manual__test", dag_id=dag.dag_id),
        "ti": None,
    }
    script_step.run_script(op, context, StepWorkspace.for_operator(op.workspace, op.dag.fileloc))
    (launch,) = captured
    return launch


def pod_dicts(launch) -> list[dict]:
    """The step's pods as the API server receives them (unset fields left out)."""
    from kubernetes.client import ApiClient

    return [ApiClient().sanitize_for_serialization(pod) for pod in step_pods(launch)]


def container(pod: dict) -> dict:
    (only,) = pod["spec"]["containers"]
    return only


def env_of(pod: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(pod).get("env", [])}


@pytest.fixture
def src(project, airflow_db):
    write_script(project / "src", "train.py", TRAIN)
    return project / "src"


# --------------------------------------------------------------------------- (a) CPU step


def test_cpu_step_on_d4_v2_gets_the_size_s_cpu_and_memory_and_the_datastore_claim(
    ws, project, src, monkeypatch
):
    k8s_target(
        ws,
        "k8s-cpu",
        "STANDARD_D4_V2",
        image="registry.example/mlpipe-step:1",
        namespace="ml",
        service_account_name="mlpipe-steps",
        datastore_pvc="mlpipe-data",
    )
    store = ws.get_default_datastore()
    (datastore_root(ws) / "inputs" / "raw").mkdir(parents=True)
    raw = DataReference(store, data_reference_name="raw", path_on_datastore="inputs/raw")
    out = PipelineData("out", datastore=store)
    step = PythonScriptStep(
        "train.py",
        name="prep",
        source_directory="src",
        arguments=["--data", raw, "--out", out],
        inputs=[raw],
        outputs=[out],
        compute_target="k8s-cpu",
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_cpu", project / "dags")
    launch = launch_for(dag, "prep", monkeypatch)

    (pod,) = pod_dicts(launch)
    spec = pod["spec"]
    base = container(pod)
    assert pod["metadata"]["namespace"] == "ml"
    assert spec["serviceAccountName"] == "mlpipe-steps"
    assert spec["restartPolicy"] == "Never"
    assert base["image"] == "registry.example/mlpipe-step:1"
    # 8 vCPUs and 28 GiB: 90% requested, memory limit = request, CPU limit = the size
    assert base["resources"] == {
        "requests": {"cpu": "7200m", "memory": "25804Mi"},
        "limits": {"cpu": "8", "memory": "25804Mi"},
    }
    assert "nvidia.com/gpu" not in base["resources"]["limits"]
    assert not spec.get("nodeSelector") and not spec.get("tolerations")
    assert "hostname" not in spec and "subdomain" not in spec  # single node: no DNS needed

    # the claim is mounted at the datastore's root, so host paths hold in the pod
    root = str(datastore_root(ws))
    assert spec["volumes"] == [
        {"name": "datastore-0", "persistentVolumeClaim": {"claimName": "mlpipe-data"}}
    ]
    mounts = {m["mountPath"]: m for m in base["volumeMounts"]}
    assert mounts[root] == {"mountPath": root, "name": "datastore-0"}
    raw_path = launch.input_paths["raw"]
    assert raw_path == f"{root}/inputs/raw"
    assert mounts[raw_path] == {
        "mountPath": raw_path,
        "name": "datastore-0",
        "readOnly": True,
        "subPath": "inputs/raw",
    }
    assert launch.output_paths["out"].startswith(root + "/")  # under the read-write mount
    assert str(launch.run_folder).startswith(root + "/")

    assert base["workingDir"] == str(src.resolve())
    assert base["command"] == ["python3"]
    assert base["args"] == [
        "-u",
        "train.py",
        "--data",
        raw_path,
        "--out",
        launch.output_paths["out"],
    ]
    labels = pod["metadata"]["labels"]
    assert labels["mlpipe/node-rank"] == "0"
    assert labels["mlpipe/step-run"] == env_of(pod)["MLPIPE_RUN_ID"]
    assert pod["metadata"]["annotations"]["mlpipe/step"] == "prep"


def test_a_datastore_the_step_only_reads_is_mounted_read_only_from_its_own_claim(
    ws, project, src, monkeypatch
):
    from mlpipe_provider.sdk import Datastore

    archive = Datastore.register_local(ws, "archive", "datastores/archive")
    archive_root = (ws._dir / "datastores" / "archive").resolve()
    (archive_root / "2024").mkdir(parents=True)
    k8s_target(
        ws,
        "k8s-two",
        "STANDARD_D2_V2",
        image="img:1",
        datastore_pvc={DATASTORE: "data-main", "archive": {"claim": "data-archive"}},
    )
    old = DataReference(archive, data_reference_name="old", path_on_datastore="2024")
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = PythonScriptStep(
        "train.py",
        name="two",
        source_directory="src",
        arguments=["--in", old, "--out", out],
        inputs=[old],
        outputs=[out],
        compute_target="k8s-two",
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_two", project / "dags")
    launch = launch_for(dag, "two", monkeypatch)
    (pod,) = pod_dicts(launch)
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container(pod)["volumeMounts"]}
    main = mounts[str(datastore_root(ws))]
    assert claims[main["name"]] == "data-main" and "readOnly" not in main
    arch = mounts[str(archive_root)]
    assert claims[arch["name"]] == "data-archive" and arch["readOnly"] is True
    assert str(archive_root / "2024") not in mounts  # covered by the read-only root mount
    assert len(mounts) == 2


# --------------------------------------------------------------------------- (b) GPU step


def test_gpu_step_on_nc24_gets_four_gpus_node_selector_and_tolerations(
    ws, project, src, monkeypatch
):
    k8s_target(
        ws,
        "k8s-gpu",
        "STANDARD_NC24",
        image="registry.example/mlpipe-step:1",
        node_selector={"agentpool": "gpu"},
        tolerations=GPU_TOLERATIONS,
        datastore_pvc={DATASTORE: {"claim": "shared", "sub_path": "workspace/datastores"}},
        request_fraction=0.8,
    )
    env = Environment("cuda")
    env.docker.base_image = "registry.example/pytorch-cuda:12"
    runconfig = RunConfiguration()
    runconfig.environment = env
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = PythonScriptStep(
        "train.py",
        name="train",
        source_directory="src",
        arguments=["--out", out],
        outputs=[out],
        compute_target="k8s-gpu",
        runconfig=runconfig,
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_gpu", project / "dags")
    # the pod holds the node's 4 GPUs, so the task takes 4 of the target's pool slots
    assert (dag.get_task("train").pool, dag.get_task("train").pool_slots) == ("k8s-gpu", 4)
    launch = launch_for(dag, "train", monkeypatch)

    (pod,) = pod_dicts(launch)
    spec, base = pod["spec"], container(pod)
    assert base["image"] == "registry.example/pytorch-cuda:12"  # the step's own image wins
    # 24 vCPUs, 224 GiB, 4 K80s; request_fraction 0.8 from the target's config
    assert base["resources"]["limits"] == {"cpu": "24", "memory": "183500Mi", "nvidia.com/gpu": "4"}
    assert base["resources"]["requests"] == {"cpu": "19200m", "memory": "183500Mi"}
    assert spec["nodeSelector"] == {"agentpool": "gpu"}
    assert spec["tolerations"] == GPU_TOLERATIONS
    assert "CUDA_VISIBLE_DEVICES" not in env_of(pod)  # the device plugin chooses the GPUs
    # a claim's sub_path is prefixed to the mount
    root = str(datastore_root(ws))
    mounts = {m["mountPath"]: m for m in base["volumeMounts"]}
    assert mounts[root]["subPath"] == "workspace/datastores"
    assert spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "shared"}


def test_a_step_without_any_image_is_a_clear_error(ws, project, src, monkeypatch):
    k8s_target(ws, "k8s-noimg", "STANDARD_D2_V2", datastore_pvc="data")
    step = PythonScriptStep(
        "train.py",
        name="noimg",
        source_directory="src",
        compute_target="k8s-noimg",
        arguments=["--out", "x"],
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_noimg", project / "dags")
    launch = launch_for(dag, "noimg", monkeypatch)
    with pytest.raises(UserErrorException, match=r"step 'noimg'.*no container image.*'k8s-noimg'"):
        step_pods(launch)


# --------------------------------------------------------------------------- (c) MPI


def test_mpi_step_on_two_nodes_is_two_pods_with_rank_variables_and_the_first_pod_as_master(
    ws, project, src, monkeypatch
):
    k8s_target(
        ws,
        "k8s-mpi",
        "STANDARD_NC12",
        image="registry.example/mlpipe-step:1",
        datastore_pvc="mlpipe-data",
        headless_service="ranks",
    )
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = MpiStep(
        name="mpi",
        source_directory="src",
        script_name="train.py",
        arguments=["--out", out],
        outputs=[out],
        compute_target="k8s-mpi",
        node_count=2,
        process_count_per_node=1,
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_mpi", project / "dags")
    assert dag.get_task("mpi").pool_slots == 4  # two whole NC12 nodes: 2 x 2 GPUs
    launch = launch_for(dag, "mpi", monkeypatch)
    pods = pod_dicts(launch)

    assert len(pods) == 2
    envs = [env_of(p) for p in pods]
    assert [e["RANK"] for e in envs] == ["0", "1"]
    assert [e["NODE_RANK"] for e in envs] == ["0", "1"]
    assert [e["OMPI_COMM_WORLD_RANK"] for e in envs] == ["0", "1"]
    assert {e["WORLD_SIZE"] for e in envs} == {"2"}
    assert {e["LOCAL_RANK"] for e in envs} == {"0"}
    assert envs[0]["MLPIPE_RUN_ID"] == envs[1]["MLPIPE_RUN_ID"]  # one step run, two pods
    hostnames = [p["spec"]["hostname"] for p in pods]
    assert hostnames[0] != hostnames[1]
    assert all(len(h) <= 63 for h in hostnames)
    assert {p["spec"]["subdomain"] for p in pods} == {"ranks"}
    assert {e["MASTER_ADDR"] for e in envs} == {f"{hostnames[0]}.ranks"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1
    for node, pod in enumerate(pods):
        labels = pod["metadata"]["labels"]
        assert labels["mlpipe/node-rank"] == str(node)
        assert labels["mlpipe/service"] == "ranks"  # what the headless Service selects
        # each pod owns a whole node: 2 GPUs of an NC12
        assert container(pod)["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert container(pod)["command"] == ["python3"]
        assert container(pod)["args"][:2] == ["-u", "train.py"]
    assert len({p["metadata"]["name"] for p in pods}) == 2


def test_several_processes_per_node_run_under_the_launcher_which_fails_fast(
    ws, project, src, monkeypatch, tmp_path
):
    k8s_target(ws, "k8s-mpi4", "STANDARD_D4_V2", image="img:1", datastore_pvc="mlpipe-data")
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = MpiStep(
        name="mpi4",
        source_directory="src",
        script_name="train.py",
        arguments=["--out", out],
        outputs=[out],
        compute_target="k8s-mpi4",
        node_count=2,
        process_count_per_node=2,
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_mpi4", project / "dags")
    launch = launch_for(dag, "mpi4", monkeypatch)
    pods = pod_dicts(launch)
    assert len(pods) == 2
    for node, pod in enumerate(pods):
        base = container(pod)
        assert base["command"] == ["python3"]
        assert base["args"][0] == "-c" and base["args"][1] == LAUNCHER
        ranks = json.loads(base["args"][2])
        assert [r["env"]["RANK"] for r in ranks] == [str(2 * node), str(2 * node + 1)]
        assert [r["env"]["LOCAL_RANK"] for r in ranks] == ["0", "1"]
        assert [r["prefix"] for r in ranks] == [f"[rank {2 * node}] ", f"[rank {2 * node + 1}] "]
        assert all(r["argv"][:2] == ["python3", "-u"] for r in ranks)
        shared = env_of(pod)
        assert shared["NODE_RANK"] == str(node) and shared["WORLD_SIZE"] == "4"
        assert "RANK" not in shared  # per rank, in the launcher's argument

    # the launcher itself, run here: ranks' output prefixed, and the first failure stops the rest
    def launcher(ranks):
        return subprocess.run(
            [sys.executable, "-c", LAUNCHER, json.dumps(ranks)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = launcher(
        [
            {
                "argv": [sys.executable, "-c", "import os; print('r', os.environ['RANK'])"],
                "env": {"RANK": str(i)},
                "prefix": f"[rank {i}] ",
            }
            for i in range(2)
        ]
    )
    assert ok.returncode == 0, ok.stderr
    assert sorted(ok.stdout.splitlines()) == ["[rank 0] r 0", "[rank 1] r 1"]
    marker = tmp_path / "survived"
    bad = launcher(
        [
            {
                "argv": [
                    sys.executable,
                    "-c",
                    "import sys; print('boom', file=sys.stderr); sys.exit(3)",
                ],
                "env": {},
                "prefix": "[rank 0] ",
            },
            {
                "argv": [
                    sys.executable,
                    "-c",
                    f"import time; time.sleep(30); open({str(marker)!r}, 'w')",
                ],
                "env": {},
                "prefix": "[rank 1] ",
            },
        ]
    )
    assert bad.returncode == 3
    assert "[rank 0] boom" in bad.stderr
    assert "[rank 0] exited with code 3" in bad.stderr
    assert not marker.exists()


# --------------------------------------------------------------------------- (d) env and argv


def test_pod_gets_only_the_step_s_variables_and_arguments_as_a_list(ws, project, src, monkeypatch):
    k8s_target(ws, "k8s-env", "STANDARD_D2_V2", image="img:1", datastore_pvc="data")
    monkeypatch.setenv("HOME", "/home/worker")
    monkeypatch.setenv("PATH", "/worker/venv/bin:/usr/bin")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("MLPIPE_UV", "/worker/bin/uv")  # worker configuration, not the step's
    monkeypatch.setenv("AZUREML_HOST_ONLY", "worker")
    monkeypatch.setenv("PYTHONPATH", "/worker/lib")
    runconfig = RunConfiguration()
    runconfig.environment.environment_variables = {"MY_SETTING": "a b; $(c)", "PYTHONPATH": "/app"}
    hostile = "; rm -rf / && echo $HOME `id` 'q' \"dq\""
    step = PythonScriptStep(
        "train.py",
        name="env",
        source_directory="src",
        arguments=["--out", "o", hostile, "--mode", PipelineParameter("mode", "fast")],
        params={"mode": PipelineParameter("mode", "fast")},
        compute_target="k8s-env",
        runconfig=runconfig,
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_env", project / "dags")
    launch = launch_for(dag, "env", monkeypatch, conf={"mode": "slow"})
    (pod,) = pod_dicts(launch)
    env = env_of(pod)
    base = container(pod)

    for leaked in (
        "HOME",
        "PATH",
        "AWS_SECRET_ACCESS_KEY",
        "MLPIPE_UV",
        "AZUREML_HOST_ONLY",
        "VIRTUAL_ENV",
        "CUDA_VISIBLE_DEVICES",
    ):
        assert leaked not in env, leaked
    assert env["MY_SETTING"] == "a b; $(c)"
    assert env["PYTHONPATH"] == "/app"  # declared by the step: sent, with the step's value
    assert env["AML_PARAMETER_mode"] == "slow"
    assert env["MLPIPE_STEP_NAME"] == "env"
    assert env["MLPIPE_EXPERIMENT"] == "k8s_env"
    assert env["MLPIPE_METRICS_FILE"].startswith(str(datastore_root(ws)) + "/")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert list(env) == sorted(env)  # stable order
    assert base["command"] == ["python3"]  # the worker's interpreter path never reaches the pod
    assert base["args"] == ["-u", "train.py", "--out", "o", hostile, "--mode", "slow"]
    assert sys.executable not in json.dumps(pod)


# --------------------------------------------------------------------------- config errors


def test_a_missing_datastore_claim_fails_the_step_by_name_at_run_time(
    ws, project, src, monkeypatch
):
    k8s_target(ws, "k8s-nopvc", "STANDARD_D2_V2", image="img:1")
    step = PythonScriptStep(
        "train.py",
        name="nopvc",
        source_directory="src",
        compute_target="k8s-nopvc",
        arguments=["--out", "x"],
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_nopvc", project / "dags")
    launch = launch_for(dag, "nopvc", monkeypatch)
    with pytest.raises(
        UserErrorException,
        match=r"step 'nopvc'.*'k8s-nopvc'.*no PersistentVolumeClaim.*'workspaceblobstore'",
    ):
        step_pods(launch)


@pytest.mark.parametrize(
    ("key", "value", "pattern"),
    [
        ("tolerations", [{"key": "a", "colour": "red"}], r"'tolerations\[0\]'"),
        ("tolerations", {"key": "a"}, r"'tolerations': must be a list"),
        ("node_selector", {"pool": 1}, r"'node_selector': must map strings to strings"),
        ("request_fraction", 1.5, r"'request_fraction': must be in \(0, 1\]"),
        ("datastore_pvc", {"claim": "x", "sub_path": "../up"}, r"'datastore_pvc'.*'\.\.'"),
        ("source_pvc", {"claim": "x", "mount_path": "rel"}, r"'source_pvc'.*must be absolute"),
        ("headless_service", "Not_A_Label", r"'headless_service': must be a DNS label"),
        ("on_finish_action", "explode", r"'on_finish_action'"),
    ],
)
def test_bad_kubernetes_settings_are_compile_errors_naming_step_target_and_key(
    ws, project, src, key, value, pattern
):
    from compiler.compile import compile_pipeline
    from mlpipe_provider.errors import PipelineValidationError

    k8s_target(ws, "k8s-bad", "STANDARD_D2_V2", image="img:1", datastore_pvc="data")
    edit_target(ws, "k8s-bad", **{key: value})
    step = PythonScriptStep(
        "train.py", name="bad", source_directory="src", compute_target="k8s-bad"
    )
    with pytest.raises(PipelineValidationError) as caught:
        compile_pipeline(Pipeline(ws, [step]), "k8s_bad", project / "dags")
    (problem,) = caught.value.problems
    assert "'bad'" in problem and "compute_target" in problem, problem
    assert "compute target 'k8s-bad' (backend kubernetes)" in problem, problem
    assert re.search(pattern, problem), problem


def test_source_claim_is_mounted_read_only_and_must_contain_the_source_folder(
    ws, project, src, monkeypatch
):
    k8s_target(
        ws,
        "k8s-src",
        "STANDARD_D2_V2",
        image="img:1",
        datastore_pvc="data",
        source_pvc={"claim": "code", "mount_path": str(project.resolve())},
    )
    step = PythonScriptStep(
        "train.py",
        name="src",
        source_directory="src",
        compute_target="k8s-src",
        arguments=["--out", "x"],
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_src", project / "dags")
    launch = launch_for(dag, "src", monkeypatch)
    (pod,) = pod_dicts(launch)
    mounts = {m["mountPath"]: m for m in container(pod)["volumeMounts"]}
    assert mounts[str(project.resolve())] == {
        "mountPath": str(project.resolve()),
        "name": "source",
        "readOnly": True,
    }
    assert {"name": "source", "persistentVolumeClaim": {"claimName": "code", "readOnly": True}} in (
        pod["spec"]["volumes"]
    )

    edit_target(ws, "k8s-src", source_pvc={"claim": "code", "mount_path": "/elsewhere"})
    dag = load_dag(Pipeline(ws, [step]), "k8s_src_elsewhere", project / "dags")
    launch = launch_for(dag, "src", monkeypatch)
    with pytest.raises(UserErrorException, match=r"step 'src'.*outside '/elsewhere'"):
        step_pods(launch)


# --------------------------------------------------------------------------- run()


class LoggedOp:
    """The step's operator with its task log recorded (what ``op.log`` receives)."""

    def __init__(self, op):
        self._op = op
        self.lines: list[tuple[str, str]] = []
        self.log = self

    def info(self, message, *args):
        self.lines.append(("info", message % args))

    def warning(self, message, *args):
        self.lines.append(("warning", message % args))

    def __getattr__(self, name):
        return getattr(self._op, name)


@pytest.fixture
def on_cluster(monkeypatch):
    """Put a fake cluster where ``launch`` gets the hook's ``CoreV1Api``; polls every 20 ms."""
    monkeypatch.setattr(k8s_launch, "POLL_S", 0.02)

    def use(cluster: FakeCoreV1) -> FakeCoreV1:
        monkeypatch.setattr(k8s_launch, "_core_v1", lambda settings: cluster)
        return cluster

    return use


def three_node_launch(ws, project, monkeypatch, name="dist", **settings):
    k8s_target(ws, f"k8s-{name}", "STANDARD_D2_V2", image="img:1", datastore_pvc="data", **settings)
    step = MpiStep(
        name=name,
        source_directory="src",
        script_name="train.py",
        arguments=["--out", "x"],
        compute_target=f"k8s-{name}",
        node_count=3,
        process_count_per_node=1,
    )
    dag = load_dag(Pipeline(ws, [step]), f"k8s_{name}", project / "dags")
    launch = launch_for(dag, name, monkeypatch)
    launch.op = LoggedOp(launch.op)
    return launch


def rank_of(pod) -> str:
    return {e.name: e.value for e in pod.spec.containers[0].env}["RANK"]


def test_run_creates_a_pod_per_node_streams_their_logs_into_the_task_log_and_deletes_them(
    ws, project, src, monkeypatch, on_cluster
):
    def kubelet(pod, fake):
        rank = rank_of(pod)
        fake.write(f"hello from rank {rank}")
        fake.write("é" * 3 + " a line split across chunks")
        return 0

    cluster = on_cluster(FakeCoreV1(kubelet))
    launch = three_node_launch(ws, project, monkeypatch, namespace="ml")
    result = k8s_launch.run(launch)

    assert result.returncode == 0
    created = cluster.created
    assert len(created) == 3
    assert sorted(rank_of(p) for p in created) == ["0", "1", "2"]
    assert {p.metadata.namespace for p in created} == {"ml"}
    names = {p.metadata.name for p in created}
    assert len(names) == 3 and all(len(n) <= 63 for n in names)
    assert sorted(cluster.deleted) == sorted(names)  # on_finish_action delete_pod
    assert cluster.pods == {}
    logged = [text for level, text in launch.op.lines if level == "info"]
    for node in range(3):
        assert f"[node {node}] hello from rank {node}" in logged
        assert f"[node {node}] ééé a line split across chunks" in logged
    # followed with timestamps (to resume a closed stream), never a shell: the image's python
    assert all(read["follow"] and read["timestamps"] for read in cluster.log_reads)
    assert {tuple(p.spec.containers[0].command) for p in created} == {("python3",)}


def test_a_failed_pod_fails_the_step_by_name_and_deletes_the_others_at_once(
    ws, project, src, monkeypatch, on_cluster
):
    def kubelet(pod, fake):
        if rank_of(pod) == "1":
            fake.write("RuntimeError: NCCL timeout")
            return 2
        fake.write("waiting in the collective")
        fake.deleted.wait(30)  # the other ranks run until their pods are deleted
        return 137

    cluster = on_cluster(FakeCoreV1(kubelet))
    launch = three_node_launch(ws, project, monkeypatch)
    started = time.monotonic()
    with pytest.raises(StepFailedError) as caught:
        k8s_launch.run(launch)
    assert time.monotonic() - started < 10  # not the 30 s the others would have waited
    message = str(caught.value)
    failed_pod = next(p.metadata.name for p in cluster.created if rank_of(p) == "1")
    assert re.search(
        rf"step 'dist' failed: pod '{failed_pod}' \(node 1 of 3\) on compute target "
        r"'k8s-dist' \(backend kubernetes\): .*exited with code 2",
        message,
    ), message
    assert "RuntimeError: NCCL timeout" in message  # the tail of the pod's log
    assert sorted(cluster.deleted) == sorted(p.metadata.name for p in cluster.created)
    assert cluster.pods == {}


def test_killing_the_task_deletes_its_running_pods(ws, project, src, monkeypatch, on_cluster):
    from mlpipe_provider.runtime import cancel

    running = threading.Semaphore(0)

    def kubelet(pod, fake):
        running.release()
        fake.deleted.wait(30)
        return 137

    cluster = on_cluster(FakeCoreV1(kubelet))
    launch = three_node_launch(ws, project, monkeypatch)
    outcome = []

    def task():
        try:
            k8s_launch.run(launch)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome.append(exc)

    thread = threading.Thread(target=task)
    thread.start()
    for _ in range(3):
        assert running.acquire(timeout=10)
    assert cancel.stop_all() == 1  # what MlpipeStepOperator.on_kill calls
    thread.join(timeout=10)
    assert not thread.is_alive()
    (error,) = outcome
    assert isinstance(error, StepFailedError) and "was stopped" in str(error)
    assert len(cluster.deleted) == 3 and cluster.pods == {}


def test_a_pod_whose_image_cannot_be_pulled_fails_the_step_without_waiting_for_the_timeout(
    ws, project, src, monkeypatch, on_cluster
):
    cluster = on_cluster(FakeCoreV1(missing_images=frozenset({"registry.example/nope:1"})))
    k8s_target(
        ws, "k8s-pull", "STANDARD_D2_V2", image="registry.example/nope:1", datastore_pvc="data"
    )
    step = PythonScriptStep(
        "train.py", name="pull", source_directory="src", compute_target="k8s-pull"
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_pull", project / "dags")
    launch = launch_for(dag, "pull", monkeypatch)
    launch.op = LoggedOp(launch.op)
    monkeypatch.setattr(k8s_launch, "_namespace", lambda settings: "default")
    with pytest.raises(StepFailedError, match=r"step 'pull' failed: pod .*ErrImagePull"):
        k8s_launch.run(launch)
    assert cluster.pods == {} and len(cluster.deleted) == 1
    assert any(
        "manifest for registry.example/nope:1 not found" in text for _, text in (launch.op.lines)
    )  # the pod's events, in the task log


def test_a_log_stream_the_api_server_closes_is_followed_again_without_repeating_lines(
    ws, project, src, monkeypatch, on_cluster
):
    def kubelet(pod, fake):
        for i in range(6):
            fake.write(f"epoch {i}")
            time.sleep(0.05)
        return 0

    cluster = on_cluster(FakeCoreV1(kubelet, log_cut=2))
    launch = three_node_launch(ws, project, monkeypatch, name="cut")
    k8s_launch.run(launch)
    for node in range(3):
        lines = [t for _, t in launch.op.lines if t.startswith(f"[node {node}] epoch")]
        assert lines == [f"[node {node}] epoch {i}" for i in range(6)]
    again = [read for read in cluster.log_reads if "since_seconds" in read]
    assert len(again) >= 3  # each pod's log was opened again, from its last line on


def test_on_finish_action_keeps_a_failed_pod_for_debugging(
    ws, project, src, monkeypatch, on_cluster
):
    cluster = on_cluster(FakeCoreV1(lambda pod, fake: 1 if rank_of(pod) == "0" else 0))
    launch = three_node_launch(
        ws, project, monkeypatch, name="keep", on_finish_action="delete_succeeded_pod"
    )
    with pytest.raises(StepFailedError, match=r"\(node 0 of 3\)"):
        k8s_launch.run(launch)
    # fail fast deletes the pods it stopped; the failed one stays for kubectl logs/describe
    (kept,) = cluster.pods.values()
    assert rank_of(kept.body) == "0"


def test_the_namespace_is_the_target_s_else_the_connection_s_else_default(monkeypatch):
    from mlpipe_provider.runtime.backends.kubernetes.settings import target_settings

    monkeypatch.setenv(
        "AIRFLOW_CONN_K8S_NS", json.dumps({"conn_type": "kubernetes", "extra": {"namespace": "c"}})
    )
    monkeypatch.setattr(k8s_launch, "_INCLUSTER_NAMESPACE", Path("/nonexistent/namespace"))

    def namespace(**config):
        return k8s_launch._namespace(target_settings("t", config, "workspaceblobstore"))

    assert namespace(kubernetes_conn_id="k8s_ns", namespace="mine") == "mine"
    assert namespace(kubernetes_conn_id="k8s_ns") == "c"
    assert namespace() == "default"


def test_leftovers_of_a_dead_attempt_are_found_by_the_task_s_labels():
    from mlpipe_provider.runtime.cancel import TaskIdentity

    identity = TaskIdentity("k8s_e2e", "manual__2026-01-01T00:00:00+00:00", "single")
    mine = identity.labels()
    cluster = FakeCoreV1()
    cluster.seed("running-leftover", mine)
    cluster.seed("failed-leftover", mine, phase="Failed")
    cluster.seed("succeeded-leftover", mine, phase="Succeeded")
    cluster.seed("other-dag", {**mine, "io.mlpipe/dag": "another_dag"})
    cluster.seed("other-map-index", {**mine, "io.mlpipe/map-index": "3"})

    removed = k8s_launch.remove_leftovers(
        cluster, "default", identity, on_finish_action="delete_succeeded_pod"
    )
    # still holding a node, or finished where the target would have deleted it anyway
    assert sorted(removed) == ["running-leftover", "succeeded-leftover"]
    assert cluster.selectors == [identity.selector()]
    removed = k8s_launch.remove_leftovers(cluster, "default", identity)
    assert removed == ["failed-leftover"]
    assert sorted(cluster.pods) == ["other-dag", "other-map-index"]


def test_no_provider_operator_is_imported_or_run_inside_ours():
    """Issue 14: backends sit on the providers' hooks and clients, never on their operators
    (Airflow deprecates running an operator inside another). Checked on the code itself (names,
    attributes, imports), so docstrings may still say why."""
    import ast

    import mlpipe_provider

    root = Path(mlpipe_provider.__file__).parent
    operators = {"KubernetesPodOperator", "DockerOperator", "execute_sync"}
    modules = ("airflow.providers.cncf.kubernetes.operators", "airflow.providers.docker.operators")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Name):
                names = [node.id]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
                if (node.module or "").startswith(modules):
                    names.append(node.module)
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.startswith(modules)]
            for name in names:
                if name in operators or name.startswith(modules):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}: {name}")
    assert offenders == []


def test_a_dag_runs_through_the_kubernetes_backend_with_a_fake_kubelet(
    airflow_db, ws, project, src, monkeypatch, run_dag, capsys
):
    """Every pod's container command runs locally with only the pod's variables, in its working
    directory: the script finds its data, logs metrics and the step records its outputs; its
    output reaches the task log; no provider operator is instantiated."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    def no_operator(*args, **kwargs):
        raise AssertionError("KubernetesPodOperator instantiated inside an mlpipe step")

    monkeypatch.setattr(KubernetesPodOperator, "__init__", no_operator)
    k8s_target(ws, "k8s-e2e", "STANDARD_D2_V2", image="img:1", datastore_pvc="data")
    venv_bin = str(Path(sys.executable).parent)

    def local_kubelet(pod, fake):
        (c,) = pod.spec.containers
        env = {e.name: e.value for e in c.env}
        env["PATH"] = f"{venv_bin}:/usr/bin:/bin"  # the image's PATH, where python3 is
        proc = subprocess.Popen(
            c.command + c.args,
            env=env,
            cwd=c.working_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=lambda: fake.deleted.wait() and proc.kill(), daemon=True).start()
        for line in proc.stdout:
            fake.write(line.decode().rstrip("\n"))
        return proc.wait()

    cluster = FakeCoreV1(local_kubelet)
    # a pod of a dead earlier attempt of task ``single`` (any Airflow run id of this DAG would
    # do: it is seeded with the selector the task looks with), and another DAG's task's pod
    seeded = []
    list_pods = cluster.list_namespaced_pod

    def list_namespaced_pod(namespace, label_selector="", **kwargs):
        labels = dict(pair.split("=", 1) for pair in label_selector.split(","))
        if not seeded and labels.get("io.mlpipe/task") == "single":
            seeded.append(labels)
            cluster.seed("leftover-single", labels)
            cluster.seed("other-task", {**labels, "io.mlpipe/dag": "another_dag"})
        return list_pods(namespace, label_selector=label_selector, **kwargs)

    cluster.list_namespaced_pod = list_namespaced_pod
    monkeypatch.setattr(k8s_launch, "_core_v1", lambda settings: cluster)
    monkeypatch.setattr(k8s_launch, "POLL_S", 0.05)
    monkeypatch.setenv("HOME", "/home/worker")
    runconfig = RunConfiguration()
    runconfig.environment.environment_variables = {"MY_SETTING": "declared"}
    out = PipelineData("out", datastore=ws.get_default_datastore())
    single = PythonScriptStep(
        "train.py",
        name="single",
        source_directory="src",
        arguments=["--out", out],
        outputs=[out],
        compute_target="k8s-e2e",
        runconfig=runconfig,
        params={"mode": PipelineParameter("mode", "fast")},
    )
    out2 = PipelineData("out2", datastore=ws.get_default_datastore())
    ranked = MpiStep(
        name="ranked",
        source_directory="src",
        script_name="train.py",
        arguments=["--out", out2, "--after", out],
        inputs=[out],
        outputs=[out2],
        compute_target="k8s-e2e",
        node_count=1,
        process_count_per_node=2,
    )
    _, records = run_dag(Pipeline(ws, [single, ranked]), dag_id="k8s_e2e")
    assert records["single"][0] == "success", records
    assert records["ranked"][0] == "success", records
    pods = cluster.created
    assert len(pods) == 2
    assert {p.metadata.namespace for p in pods} == {"default"}  # no namespace anywhere
    # every pod carries its task instance's labels; each step first deleted what a dead earlier
    # attempt of its own task left (found by those labels), and nothing of another task
    for pod in pods:
        assert pod.metadata.labels["io.mlpipe/dag"] == "k8s_e2e"
        assert pod.metadata.labels["io.mlpipe/task"] in ("single", "ranked")
        assert pod.metadata.labels["io.mlpipe/airflow-run"]
    assert cluster.deleted[0] == "leftover-single"
    assert sorted(cluster.deleted[1:]) == sorted(p.metadata.name for p in pods)  # when done
    # the selector that found it is exactly what this task's own pod carries
    single_pod = next(p for p in pods if p.metadata.labels["io.mlpipe/task"] == "single")
    assert seeded[0].items() <= single_pod.metadata.labels.items()
    assert len(cluster.selectors) == 2  # each step's pods looked once, before starting
    assert sorted(cluster.pods) == ["other-task"]
    # the pods' output is in the task logs (the launcher's rank prefixes included)
    logs = capsys.readouterr().out
    assert "trained as rank solo" in logs
    assert "[rank 0] trained as rank 0" in logs and "[rank 1] trained as rank 1" in logs
    root = datastore_root(ws)
    solo = json.loads(
        (root / records["single"][1]["outputs"]["out"]["path"] / "rank-solo.json").read_text()
    )
    assert solo["MY_SETTING"] == "declared"
    assert solo["HOME"] is None  # the worker's HOME stayed on the worker
    assert solo["AML_PARAMETER_mode"] == "fast"
    assert solo["cwd"] == str(src.resolve())
    assert records["single"][1]["metrics"]["ran"] == 1
    folder = root / records["ranked"][1]["outputs"]["out2"]["path"]
    reports = [json.loads((folder / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["WORLD_SIZE"] for r in reports] == ["2", "2"]
    assert os.path.isdir(reports[0]["argv"][-1])  # the upstream output, as a real path
