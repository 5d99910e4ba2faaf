"""The kubernetes backend: pod specs built from compiled pipelines (no cluster needed).

Pipelines are compiled and loaded with DagBag; the ``Launch`` comes from the real
``script_step.run_script`` (its ``run_launch`` captured), and the pods are rendered with
``build_pod_request_obj(context=None, dry_run=True)`` and ``PodGenerator.serialize_pod``. One
test runs a whole DAG with ``dag.test()`` and a fake kubelet that executes each pod's container
command locally with exactly the pod's variables and working directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.errors import StepFailedError, UserErrorException
from mlpipe_provider.runtime.backends.kubernetes import launch as k8s_backend
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
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    return [
        PodGenerator.serialize_pod(op.build_pod_request_obj(context=None, dry_run=True))
        for op in k8s_backend.pod_operators(launch)
    ]


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


def test_pods_run_with_the_step_task_s_context_but_push_no_xcoms():
    pushed, seen = [], {}

    class TI:
        task_id = "train"

        def xcom_push(self, *args, **kwargs):
            pushed.append(args)

    class FakePodOperator:
        def execute_sync(self, context):
            context["ti"].xcom_push(key="pod_name", value="p")
            seen.update(task_id=context["ti"].task_id, run_id=context["run_id"])

    k8s_backend._run_pod(FakePodOperator(), {"ti": TI(), "task_instance": TI(), "run_id": "r1"})
    assert pushed == []
    assert seen == {"task_id": "train", "run_id": "r1"}


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
        k8s_backend.pod_operators(launch)


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
        assert base["args"][0] == "-c" and base["args"][1] == k8s_backend.LAUNCHER
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
            [sys.executable, "-c", k8s_backend.LAUNCHER, json.dumps(ranks)],
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
        k8s_backend.pod_operators(launch)


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
        k8s_backend.pod_operators(launch)


# --------------------------------------------------------------------------- run()


def test_run_runs_every_pod_and_a_failed_pod_fails_the_step_by_name(ws, project, src, monkeypatch):
    k8s_target(ws, "k8s-run", "STANDARD_D2_V2", image="img:1", datastore_pvc="data")
    step = MpiStep(
        name="dist",
        source_directory="src",
        script_name="train.py",
        arguments=["--out", "x"],
        compute_target="k8s-run",
        node_count=3,
        process_count_per_node=1,
    )
    dag = load_dag(Pipeline(ws, [step]), "k8s_run", project / "dags")
    launch = launch_for(dag, "dist", monkeypatch)

    ran = []
    monkeypatch.setattr(k8s_backend, "_run_pod", lambda pod_op, context: ran.append(pod_op.task_id))
    result = k8s_backend.run(launch)
    assert result.returncode == 0
    assert sorted(ran) == ["dist__node0", "dist__node1", "dist__node2"]

    import threading

    release = threading.Event()
    stopped = []

    def flaky(pod_op, context):
        if pod_op.task_id.endswith("node1"):
            raise RuntimeError("Pod returned a failure: exit code 2")
        release.wait(timeout=30)  # the others run until they are stopped

    def stop(pod_op):
        stopped.append(pod_op.task_id)
        release.set()

    monkeypatch.setattr(k8s_backend, "_run_pod", flaky)
    monkeypatch.setattr(k8s_backend, "_stop_pod", stop)
    with pytest.raises(
        StepFailedError, match=r"step 'dist' failed: pod .*\(node 1 of 3\).*exit code 2"
    ):
        k8s_backend.run(launch)
    assert sorted(stopped) == ["dist__node0", "dist__node2"]


class FakeCoreV1:
    """The cluster at the ``CoreV1Api`` boundary: a leftover pod of task ``single`` from a dead
    attempt (any Airflow run id of this DAG: the selector must match the exact labels), and a pod
    of another DAG's task of the same name."""

    def __init__(self):
        from kubernetes.client import models as k8s

        self.deleted = []
        self.pods = []
        self.selectors = []
        self.k8s = k8s

    def list_namespaced_pod(self, namespace, label_selector):
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(","))
        self.selectors.append(wanted)
        if not self.pods and not self.deleted:
            # leftovers are seeded with the selector of the first task that looks: its own
            labels = dict(wanted)
            other = {**labels, "io.mlpipe/dag": "another_dag"}
            self.pods = [self.pod("leftover-single", labels), self.pod("other-task", other)]
        matches = [
            p for p in self.pods if all(p.metadata.labels.get(k) == v for k, v in wanted.items())
        ]
        return self.k8s.V1PodList(items=matches)

    def pod(self, name, labels):
        return self.k8s.V1Pod(metadata=self.k8s.V1ObjectMeta(name=name, labels=labels))

    def delete_namespaced_pod(self, name, namespace):
        self.deleted.append(name)
        self.pods = [p for p in self.pods if p.metadata.name != name]


def test_a_dag_runs_through_the_kubernetes_backend_with_a_fake_kubelet(
    airflow_db, ws, project, src, monkeypatch, run_dag
):
    """Every pod's container command runs locally with only the pod's variables, in its working
    directory: the script finds its data, logs metrics and the step records its outputs."""
    k8s_target(ws, "k8s-e2e", "STANDARD_D2_V2", image="img:1", datastore_pvc="data")
    venv_bin = str(Path(sys.executable).parent)
    pods = []

    def fake_kubelet(pod_op, context):
        pod = pod_op.build_pod_request_obj(context=None, dry_run=True)
        pods.append(pod)
        (c,) = pod.spec.containers
        env = {e.name: e.value for e in c.env}
        env["PATH"] = f"{venv_bin}:/usr/bin:/bin"  # the image's PATH, where python3 is
        done = subprocess.run(c.command + c.args, env=env, cwd=c.working_dir, capture_output=True)
        if done.returncode:
            raise RuntimeError(f"pod failed: {done.stderr.decode()[-2000:]}")

    monkeypatch.setattr(k8s_backend, "_run_pod", fake_kubelet)
    cluster = FakeCoreV1()
    monkeypatch.setattr(k8s_backend, "_core_v1", lambda pod_op: cluster)
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
    assert len(pods) == 2
    # every pod carries its task instance's labels; each step first deleted what a dead earlier
    # attempt of its own task left (found by those labels), and nothing of another task
    for pod in pods:
        assert pod.metadata.labels["io.mlpipe/dag"] == "k8s_e2e"
        assert pod.metadata.labels["io.mlpipe/task"] in ("single", "ranked")
        assert pod.metadata.labels["io.mlpipe/airflow-run"]
    assert cluster.deleted == ["leftover-single"]
    # the selector that found it is exactly what this task's own pod carries
    single_pod = next(p for p in pods if p.metadata.labels["io.mlpipe/task"] == "single")
    assert cluster.selectors[0].items() <= single_pod.metadata.labels.items()
    assert len(cluster.selectors) == 2  # each step's pods looked once, before starting
    assert [p.metadata.name for p in cluster.pods] == ["other-task"]
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
