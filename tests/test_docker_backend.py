"""The docker backend, against a real Docker engine: steps run in containers of the target's image.

The engine tests need a reachable engine and build ``local/mlpipe-bookworm-python:1`` once
(``examples/docker/build_image.sh``: debootstrap, no registry). Without an engine they skip,
unless ``MLPIPE_REQUIRE_DOCKER=1`` (set by ``.ci/run``, which starts one) makes that a failure.
The unit tests at the end build the DockerOperator arguments without any engine or GPU.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, write_script
from services import unavailable

from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.images import (
    DEFAULT_DOCKER_URL,
    effective_image,
    engine_reachable,
    inspect_image,
)
from mlpipe_provider.runtime.process import Command
from mlpipe_provider.sdk import (
    AmlCompute,
    ComputeTarget,
    DataReference,
    MpiStep,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    RunConfiguration,
)

IMAGE = "local/mlpipe-bookworm-python:1"
LABEL = "io.mlpipe.step"


def _engine_url() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The test image on a reachable engine, built once (about a minute) if it is not there."""
    url = _engine_url()
    if not engine_reachable(url):
        unavailable(
            "docker", f"no Docker engine reachable at {url}; .ci/run installs and starts one"
        )
    if inspect_image(IMAGE, url)[1] is None:
        result = subprocess.run(  # noqa: S603 - our own script, argument list
            [str(REPO / "examples" / "docker" / "build_image.sh"), IMAGE],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0 or inspect_image(IMAGE, url)[1] is None:
            unavailable("docker", f"could not build {IMAGE}: {result.stderr[-2000:]}")
    return IMAGE


def _step_containers() -> list[dict]:
    import docker

    client = docker.APIClient(base_url=_engine_url(), version="auto")
    try:
        return client.containers(all=True, filters={"label": LABEL})
    finally:
        client.close()


@pytest.fixture
def engine(docker_image):
    """A test that runs containers; afterwards none of mlpipe's containers may be left."""
    yield docker_image
    left = _step_containers()
    assert left == [], f"containers left behind: {[c['Names'] for c in left]}"


def docker_target(ws, name: str = "docker-cpu", **settings):
    settings.setdefault("image", IMAGE)
    return ComputeTarget.create(
        ws,
        name,
        AmlCompute.provisioning_configuration(
            vm_size=settings.pop("vm_size", "STANDARD_D2_V2"),
            max_nodes=1,
            backend="docker",
            **settings,
        ),
    )


def run_capturing(run_dag, pipeline, dag_id):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        dag_run, records = run_dag(pipeline, dag_id=dag_id)
    return dag_run, records, buffer.getvalue()


def output_dir(ws, record: dict, port: str) -> Path:
    location = record["outputs"][port]
    return ws._dir / "datastores" / location["datastore"] / location["path"]


IN_CONTAINER = """
    import json, os, socket, sys, time
    from mlpipe_provider.sdk import Run

    corpus, out = sys.argv[1], sys.argv[2]
    words = open(os.path.join(corpus, "words.txt")).read().split()
    try:
        open(os.path.join(corpus, "scribble.txt"), "w").write("x")
        input_write = "allowed"
    except OSError as exc:
        input_write = exc.strerror
    started = time.monotonic()
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=5).close()
        network = "connected"
    except OSError as exc:
        network = exc.strerror or type(exc).__name__
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "count.txt"), "w").write(str(len(words)))
    report = {
        "argv": sys.argv[1:],
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "in_container": os.path.exists("/.dockerenv"),
        "interfaces": sorted(os.listdir("/sys/class/net")),
        "input_write": input_write,
        "network": network,
        "network_s": time.monotonic() - started,
        "env": dict(os.environ),
    }
    open(os.path.join(out, "report.json"), "w").write(json.dumps(report))
    Run.get_context().log("words", len(words))
    for i in range(3):
        print("counted", len(words), "words")
        print("a line on stderr", file=sys.stderr)
"""

ON_WORKER = """
    import os, sys
    from mlpipe_provider.sdk import Run
    count = int(open(os.path.join(sys.argv[1], "count.txt")).read())
    Run.get_context().log("doubled", count * 2)
    Run.get_context().log("python", sys.executable)
"""


def test_a_container_step_reads_its_input_writes_an_output_logs_metrics_and_is_reused(
    ws, project, run_dag, engine, monkeypatch
):
    monkeypatch.setenv("MLPIPE_TEST_HOST_ONLY", "from the worker")
    store = ws.get_default_datastore()
    (project / "corpus").mkdir()
    (project / "corpus" / "words.txt").write_text("one two three four five\n")
    store.upload("corpus", target_path="corpus")
    write_script(project / "src", "count.py", IN_CONTAINER)
    write_script(project / "src", "double.py", ON_WORKER)
    target = docker_target(ws)

    corpus = DataReference(store, data_reference_name="corpus", path_on_datastore="corpus")
    counted = PipelineData("counted", datastore=store)
    config = RunConfiguration()
    config.environment.environment_variables = {"MY_SETTING": "declared $HOME"}
    count = PythonScriptStep(
        "count.py",
        name="count",
        arguments=[corpus, counted],
        inputs=[corpus],
        outputs=[counted],
        compute_target=target,
        runconfig=config,
        source_directory="src",
    )
    double = PythonScriptStep(
        "double.py", name="double", arguments=[counted], inputs=[counted], source_directory="src"
    )
    pipeline = Pipeline(ws, [double])
    assert count in pipeline.steps
    dag_run, records, log = run_capturing(run_dag, pipeline, "docker_main")
    assert str(dag_run.state) == "success", log[-5000:]

    state, record = records["count"]
    assert state == "success"
    assert record["metrics"] == {"words": 5}
    # the container's output is in the task log, stdout and stderr lines each whole
    assert len(re.findall(r"\] counted 5 words\s+\[", log)) == 3
    assert len(re.findall(r"\] a line on stderr\s+\[", log)) == 3
    report = json.loads((output_dir(ws, record, "counted") / "report.json").read_text())
    corpus_path = str(ws._dir / "datastores" / "workspaceblobstore" / "corpus")
    # the image's python, at the worker's own paths, as the worker's user
    assert report["in_container"] is True
    assert report["executable"] == "/usr/bin/python3"
    assert report["argv"][0] == corpus_path
    assert report["cwd"] == str(project / "src")
    assert report["uid"] == os.getuid()
    # the input is read-only, and there is no network
    assert report["input_write"] == "Read-only file system"
    assert not (project / "corpus" / "scribble.txt").exists()
    assert report["interfaces"] == ["lo"]
    assert report["network"] != "connected" and report["network_s"] < 2
    # the step's environment without the worker's own variables
    env = report["env"]
    assert env["MY_SETTING"] == "declared $HOME"
    assert env["AZUREML_DATAREFERENCE_corpus"] == corpus_path
    assert env["MLPIPE_STEP_NAME"] == "count"
    for host_only in ("VIRTUAL_ENV", "MLPIPE_TEST_HOST_ONLY", "AIRFLOW_HOME"):
        assert host_only not in env, host_only
    assert env["PATH"] != os.environ["PATH"]
    assert env["PYTHONPATH"] == "/opt/mlpipe/lib"  # mlpipe's package only (SDK imports lazily)
    assert "MLPIPE_WORKER_SITE" not in env

    state, record = records["double"]
    assert state == "success"
    assert record["metrics"]["doubled"] == 10  # a local step read what the container wrote

    _, again = run_dag(pipeline, dag_id="docker_main")
    assert again["count"][0] == "skipped" and again["double"][0] == "skipped"
    assert again["count"][1]["reused"]


def test_a_failing_container_fails_the_step_with_the_tail_of_its_output(
    ws, project, run_dag, engine
):
    write_script(
        project / "src",
        "fail.py",
        """
        import sys
        for i in range(50):
            print(f"noise line {i}", file=sys.stderr)
        print("ValueError: the real reason", file=sys.stderr)
        sys.exit(3)
        """,
    )
    write_script(project / "src", "ok.py", "print('fine')\n")
    out = PipelineData("fail_out", datastore=ws.get_default_datastore())
    fail = PythonScriptStep(
        "fail.py",
        name="fail",
        outputs=[out],
        compute_target=docker_target(ws),
        source_directory="src",
    )
    after = PythonScriptStep(
        "ok.py", name="after", arguments=[out], inputs=[out], source_directory="src"
    )
    pipeline = Pipeline(ws, [after])
    assert fail in pipeline.steps
    dag_run, records, log = run_capturing(run_dag, pipeline, "docker_fail")
    assert str(dag_run.state) == "failed"
    assert records["fail"][0] == "failed"
    assert records["after"][0] == "upstream_failed"
    assert f"step 'fail' failed: fail.py exited with code 3 in image '{IMAGE}'" in log
    message = log[log.index("step 'fail' failed") :]
    assert "ValueError: the real reason" in message
    assert "noise line 49" in message and "noise line 0\n" not in message  # only the tail


def test_the_timeout_stops_the_container(ws, project, run_dag, engine):
    write_script(project / "src", "sleepy.py", "import time\ntime.sleep(120)\n")
    runconfig = RunConfiguration()
    runconfig.max_run_duration_seconds = 2
    step = PythonScriptStep(
        "sleepy.py",
        name="sleepy",
        runconfig=runconfig,
        compute_target=docker_target(ws),
        source_directory="src",
    )
    started = time.monotonic()
    _, records, log = run_capturing(run_dag, Pipeline(ws, [step]), "docker_timeout")
    assert time.monotonic() - started < 40
    assert records["sleepy"][0] == "failed"
    assert "step 'sleepy' timed out after 2 s" in log


def test_killing_the_task_stops_and_removes_its_containers(ws, project, run_dag, engine):
    import threading

    from mlpipe_provider.runtime import cancel

    write_script(project / "src", "sleepy.py", "import time\ntime.sleep(120)\n")
    step = PythonScriptStep(
        "sleepy.py", name="sleepy", compute_target=docker_target(ws), source_directory="src"
    )
    stopped = []

    def kill_when_running():  # what MlpipeStepOperator.on_kill does
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(c["State"] == "running" for c in _step_containers()):
                stopped.append(cancel.stop_all())
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    started = time.monotonic()
    _, records, log = run_capturing(run_dag, Pipeline(ws, [step]), "docker_killed")
    killer.join(timeout=5)
    assert stopped == [1]
    assert time.monotonic() - started < 40
    assert records["sleepy"][0] == "failed"
    assert "step 'sleepy' was killed; its container(s) were stopped and removed" in log


def test_ranks_of_a_distributed_step_share_one_network_namespace(ws, project, run_dag, engine):
    write_script(
        project / "src",
        "ring.py",
        """
        import os, socket, sys, time
        from mlpipe_provider.sdk import Run
        port = int(os.environ["MASTER_PORT"])
        if os.environ["RANK"] == "0":
            server = socket.socket()
            server.bind(("127.0.0.1", port))
            server.listen(1)
            conn, _ = server.accept()
            Run.get_context().log("heard", conn.recv(100).decode())
        else:
            for _ in range(100):
                try:
                    socket.create_connection((os.environ["MASTER_ADDR"], port), timeout=1).sendall(
                        f"hello from rank {os.environ['RANK']}".encode())
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                sys.exit("rank 1 could not reach rank 0")
        """,
    )
    step = MpiStep(
        name="ring",
        source_directory="src",
        script_name="ring.py",
        compute_target=docker_target(ws),
        node_count=1,
        process_count_per_node=2,
    )
    dag_run, records, log = run_capturing(run_dag, Pipeline(ws, [step]), "docker_ranks")
    assert str(dag_run.state) == "success", log[-5000:]
    assert records["ring"][1]["metrics"] == {"heard": "hello from rank 1"}


def test_a_missing_image_is_a_compile_time_error_when_the_engine_is_reachable(
    ws, project, docker_image
):
    from compiler.compile import compile_pipeline

    write_script(project / "src", "ok.py", "print('fine')\n")
    target = docker_target(ws, image="local/mlpipe-no-such-image:0")
    step = PythonScriptStep("ok.py", name="ok", compute_target=target, source_directory="src")
    with pytest.raises(PipelineValidationError) as err:
        compile_pipeline(Pipeline(ws, [step]), "missing_image", project / "dags")
    message = str(err.value)
    assert "step 'ok', field 'compute_target'" in message
    assert "'local/mlpipe-no-such-image:0'" in message and "not on the Docker engine" in message


def test_a_missing_image_named_by_the_environment_fails_at_run_time(ws, project, run_dag, engine):
    write_script(project / "src", "ok.py", "print('fine')\n")
    config = RunConfiguration()
    config.environment.docker.enabled = True
    config.environment.docker.base_image = "local/mlpipe-no-such-image:0"
    step = PythonScriptStep(
        "ok.py",
        name="ok",
        compute_target=docker_target(ws),
        runconfig=config,
        source_directory="src",
    )
    _, records, log = run_capturing(run_dag, Pipeline(ws, [step]), "docker_missing_image")
    assert records["ok"][0] == "failed"
    assert "step 'ok': image 'local/mlpipe-no-such-image:0' is not on the Docker engine" in log


def test_the_image_is_part_of_the_fingerprint(docker_image):
    from mlpipe_provider.fingerprint import script_settings

    def settings(compute, environment=None):
        op = SimpleNamespace(
            script_name="s.py",
            arguments=[],
            step_params={},
            environment=environment or {},
            distribution={},
            compute=compute,
        )
        return script_settings(op, {})

    local = settings({"backend": "local", "image": IMAGE})
    assert "image" not in local  # local steps keep their fingerprints
    ours = settings({"backend": "docker", "image": IMAGE})
    assert ours["image"] == {"name": IMAGE, "id": inspect_image(IMAGE, _engine_url())[1]}
    assert ours["image"]["id"].startswith("sha256:")
    other = settings({"backend": "docker", "image": IMAGE}, {"image": "local/other:1"})
    assert other["image"]["name"] == "local/other:1" and other != ours


# --------------------------------------------------------------------------- no engine needed


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, msg, *args):
        self.lines.append(msg % args if args else msg)

    warning = debug = error = info


def fake_launch(tmp_path: Path, compute: dict, *, ranks: int = 1, environment=None) -> Launch:
    source = tmp_path / "src"
    inp = tmp_path / "store" / "in"
    run_folder = tmp_path / "store" / "azureml" / "run-1"
    out = run_folder / "out"
    other_out = tmp_path / "other-store" / "azureml" / "run-1" / "out2"
    for folder in (source, inp, out, other_out):
        folder.mkdir(parents=True, exist_ok=True)
    op = SimpleNamespace(
        step_name="train",
        task_id="train",
        script_name="train.py",
        compute={"name": "t", **compute},
        environment=environment or {"environment_variables": {"MY_VAR": "mine"}},
        log=_Log(),
    )
    host_env = dict(os.environ)
    host_env.update(
        {
            "PATH": "/worker/venv/bin:/usr/bin",
            "HOME": "/home/worker",
            "VIRTUAL_ENV": "/worker/venv",
            "PYTHONPATH": "/worker/src",
            "SOME_WORKER_THING": os.environ.get("SOME_WORKER_THING", "x"),
            "MY_VAR": "mine",
            "MLPIPE_RUN_ID": "run-1",
            "AML_PARAMETER_lr": "0.1",
            "AZUREML_DATAREFERENCE_in": str(inp),
        }
    )
    commands = []
    for rank in range(ranks):
        env = dict(host_env)
        if ranks > 1:
            env.update({"RANK": str(rank), "WORLD_SIZE": str(ranks), "NODE_COUNT": "1"})
        commands.append(
            Command(["/worker/venv/bin/python", "-u", "train.py", "--in", str(inp), "$(x)"], env)
        )
    return Launch(
        op=op,
        context={},
        commands=commands,
        source_dir=source,
        input_paths={"in": str(inp)},
        output_paths={"out": str(out), "out2": str(other_out)},
        run_folder=run_folder,
        timeout_s=None,
    )


def test_container_arguments_are_a_list_at_the_workers_paths_with_a_filtered_environment(
    tmp_path, monkeypatch
):
    from mlpipe_provider.runtime.backends.docker import DockerSettings, container_kwargs

    monkeypatch.setenv("SOME_WORKER_THING", "x")
    monkeypatch.setenv("MLPIPE_WORKSPACE", "/worker/workspace")  # a worker path: stays there
    launch = fake_launch(tmp_path, {"backend": "docker", "image": IMAGE})
    settings = DockerSettings.of(launch.op)
    [kwargs] = container_kwargs(launch, settings)
    assert kwargs["image"] == IMAGE
    assert kwargs["entrypoint"] == [
        "python3"
    ]  # exec form: no shell, whatever the image's ENTRYPOINT
    assert kwargs["command"] == ["-u", "train.py", "--in", str(tmp_path / "store" / "in"), "$(x)"]
    assert kwargs["working_dir"] == str(tmp_path / "src")
    assert kwargs["network_mode"] == "none"
    assert kwargs["device_requests"] is None
    assert set(kwargs["labels"]) == {"io.mlpipe.step", "io.mlpipe.run", "io.mlpipe.rank"}
    assert kwargs["user"] == f"{os.getuid()}:{os.getgid()}"
    mounts = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in kwargs["mounts"]}
    run_folder = str(tmp_path / "store" / "azureml" / "run-1")
    assert mounts[run_folder] == (run_folder, False)
    assert (
        str(tmp_path / "store" / "azureml" / "run-1" / "out") not in mounts
    )  # inside the run folder
    other = str(tmp_path / "other-store" / "azureml" / "run-1" / "out2")
    assert mounts[other] == (other, False)
    assert mounts[str(tmp_path / "src")] == (str(tmp_path / "src"), True)
    assert mounts[str(tmp_path / "store" / "in")] == (str(tmp_path / "store" / "in"), True)
    package = mounts["/opt/mlpipe/lib/mlpipe_provider"]
    assert package[1] is True and Path(package[0], "sdk", "run.py").is_file()
    env = kwargs["environment"]
    for host_only in ("PATH", "HOME", "VIRTUAL_ENV", "SOME_WORKER_THING", "MLPIPE_WORKSPACE"):
        assert host_only not in env, host_only
    assert env["MY_VAR"] == "mine" and env["MLPIPE_RUN_ID"] == "run-1"
    assert env["AML_PARAMETER_lr"] == "0.1"
    assert env["AZUREML_DATAREFERENCE_in"] == str(tmp_path / "store" / "in")
    assert env["PYTHONPATH"] == "/opt/mlpipe/lib"  # the worker's PYTHONPATH stays there
    assert not any(t.startswith("/opt/mlpipe/worker-site") for t in mounts)


def test_worker_packages_are_opt_in_and_come_after_the_images_own(ws, project, run_dag, engine):
    write_script(
        project / "src",
        "imports.py",
        """
        import json, sys
        import pydantic  # not in the image: from the worker's mounted site-packages
        from mlpipe_provider.sdk import Run
        image_dirs = [p for p in sys.path if p.startswith("/usr/lib/python3")]
        worker_dirs = [p for p in sys.path if p.startswith("/opt/mlpipe/worker-site")]
        Run.get_context().log("pydantic_from_worker", pydantic.__file__.startswith("/opt/mlpipe/worker-site/"))
        Run.get_context().log("image_first", sys.path.index(image_dirs[-1]) < sys.path.index(worker_dirs[0]))
        """,
    )
    step = PythonScriptStep(
        "imports.py",
        name="imports",
        compute_target=docker_target(ws, worker_packages=True),
        source_directory="src",
    )
    dag_run, records, log = run_capturing(run_dag, Pipeline(ws, [step]), "docker_worker_pkgs")
    assert str(dag_run.state) == "success", log[-5000:]
    assert records["imports"][1]["metrics"] == {"pydantic_from_worker": True, "image_first": True}


def test_a_target_may_allow_the_network_and_other_container_settings(tmp_path):
    from mlpipe_provider.runtime.backends.docker import DockerSettings, container_kwargs

    compute = {
        "backend": "docker",
        "image": IMAGE,
        "network": "bridge",
        "shm_size": "1g",
        "user": "1000:1000",
        "python": "/opt/conda/bin/python",
        "worker_packages": True,
    }
    launch = fake_launch(tmp_path, compute)
    [kwargs] = container_kwargs(launch, DockerSettings.of(launch.op))
    assert kwargs["network_mode"] == "bridge"
    assert kwargs["shm_size"] == 1024**3
    assert kwargs["user"] == "1000:1000"
    assert kwargs["entrypoint"] == ["/opt/conda/bin/python"]
    sites = [m for m in kwargs["mounts"] if m["Target"].startswith("/opt/mlpipe/worker-site/")]
    assert sites and all(m["ReadOnly"] for m in sites)
    env = kwargs["environment"]
    assert env["MLPIPE_WORKER_SITE"] == ":".join(m["Target"] for m in sites)
    assert env["PYTHONPATH"].split(":") == [
        "/opt/mlpipe/lib",
        "/opt/mlpipe/lib/mlpipe_provider/runtime/backends/container_boot",
    ]


def test_a_gpu_target_requests_one_leased_gpu_per_container(tmp_path):
    from mlpipe_provider.runtime.backends.docker import DockerSettings, container_kwargs

    launch = fake_launch(
        tmp_path,
        {"backend": "docker", "image": IMAGE, "gpus": 4, "vm_size": "STANDARD_NC24"},
        ranks=2,
    )
    settings = DockerSettings.of(launch.op)
    assert settings.gpus == 4
    ranks = container_kwargs(launch, settings, gpu_devices=["2", "3"])
    requests = [kwargs["device_requests"] for kwargs in ranks]
    assert [[r["DeviceIDs"] for r in req] for req in requests] == [[["2"]], [["3"]]]
    assert all(req[0]["Capabilities"] == [["gpu"]] for req in requests)
    assert [kwargs["labels"]["io.mlpipe.rank"] for kwargs in ranks] == ["0", "1"]
    assert ranks[0]["command"][:2] == ["-u", "train.py"]


def test_the_environment_image_wins_unless_it_is_azure_mls_default():
    default = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    target = {"backend": "docker", "image": IMAGE}
    assert effective_image(target, {}) == IMAGE
    assert effective_image(target, {"image": "local/mine:2"}) == "local/mine:2"
    assert effective_image(target, {"image": default}) == IMAGE
    assert effective_image({"backend": "docker"}, {"image": default}) == default
    assert effective_image({"backend": "docker"}, {}) is None


def test_a_docker_target_without_any_image_is_a_clear_error(tmp_path):
    from mlpipe_provider.runtime.backends.docker import DockerSettings

    launch = fake_launch(tmp_path, {"backend": "docker"})
    with pytest.raises(UserErrorException, match="no image is named"):
        DockerSettings.of(launch.op)


def test_provisioning_configuration_keeps_backend_settings_in_the_config(ws):
    target = docker_target(ws, "docker-net", network="bridge", shm_size="2g", pull="missing")
    config = ws._config.compute_targets["docker-net"]
    assert config.backend == "docker"
    assert config.model_extra == {
        "image": IMAGE,
        "network": "bridge",
        "pull": "missing",
        "shm_size": "2g",
    }
    assert target.backend == "docker"
    saved = json.loads((ws._dir / "config.json").read_text())["compute_targets"]["docker-net"]
    assert saved["image"] == IMAGE and saved["network"] == "bridge"
    plain = ComputeTarget.create(ws, "plain", AmlCompute.provisioning_configuration())
    assert ws._config.compute_targets[plain.name].model_extra == {}


def test_compiled_compute_carries_the_targets_backend_settings(ws, project):
    from compiler.lower import lower

    write_script(project / "src", "ok.py", "print('fine')\n")
    # "pull": "missing" defers the image check to run time, so no engine is asked here
    target = docker_target(ws, "docker-net", network="bridge", pull="missing")
    step = PythonScriptStep("ok.py", name="ok", compute_target=target, source_directory="src")
    lowered = lower(Pipeline(ws, [step]))
    assert lowered.problems == []
    compute = lowered.steps["ok"]["compute"]
    assert compute["backend"] == "docker" and compute["image"] == IMAGE
    assert compute["network"] == "bridge" and compute["pull"] == "missing"


def test_the_example_workspace_has_the_docker_target():
    config = json.loads((REPO / "examples" / ".mlpipe" / "config.json").read_text())
    assert config["compute_targets"]["docker-cpu"]["backend"] == "docker"
    assert config["compute_targets"]["docker-cpu"]["image"] == IMAGE


def test_the_docker_example_runs_end_to_end(tmp_path, engine):
    import shutil
    import sys

    examples = tmp_path / "examples"
    shutil.copytree(
        REPO / "examples",
        examples,
        ignore=shutil.ignore_patterns(
            "__pycache__", "data", "datastores", "runs", "airflow", "cache", "envs", "dags"
        ),
    )
    result = subprocess.run(  # noqa: S603 - the example as a user runs it
        [sys.executable, "pipeline.py"],
        cwd=examples / "docker",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "PipelineRun Status: Finished" in result.stdout
    assert "{'distinct_words': 16, 'network_interfaces': 1}" in result.stdout


_ABANDONED_ATTEMPT = """
import sys, time
from pathlib import Path
from types import SimpleNamespace
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.docker import run
from mlpipe_provider.runtime.process import Command

source, image = Path(sys.argv[1]), sys.argv[2]
log = SimpleNamespace(info=print, warning=print, debug=print, error=print)
op = SimpleNamespace(step_name="sleepy", task_id="sleepy", dag_id="docker_abandoned",
                     script_name="sleepy.py", compute={"name": "t", "backend": "docker",
                     "image": image}, environment={}, log=log)
run(Launch(op=op, context={"run_id": "manual__2026-01-01T00:00:00+00:00"},
           commands=[Command(["python", "-u", "sleepy.py"], {"MLPIPE_RUN_ID": "r1"})],
           source_dir=source))
"""


def test_a_killed_workers_containers_are_removed_by_the_next_attempt(tmp_path, engine):
    """SIGKILL leaves no Python to stop anything: the next attempt finds them by their labels."""
    import signal
    import sys

    from mlpipe_provider.runtime.backends.docker import run

    source = tmp_path / "src"
    source.mkdir()
    (source / "sleepy.py").write_text("import time\ntime.sleep(300)\n")
    (source / "quick.py").write_text("print('second attempt')\n")
    child = subprocess.Popen(  # noqa: S603 - our own program, argument list
        [sys.executable, "-c", _ABANDONED_ATTEMPT, str(source), engine],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(c["State"] == "running" for c in _step_containers()):
            assert time.monotonic() < deadline, "the first attempt's container never ran"
            assert child.poll() is None, "the first attempt ended by itself"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    [orphan] = _step_containers()
    assert orphan["State"] == "running"  # nothing stopped it: the worker died with no cleanup
    assert orphan["Labels"]["io.mlpipe/task"] == "sleepy"
    assert orphan["Labels"]["io.mlpipe/dag"] == "docker_abandoned"
    assert orphan["Labels"]["io.mlpipe/airflow-run"].startswith("manual__2026-01-01T00-00-00")

    # another task's attempt leaves it alone ...
    log = _Log()

    def launch(task_id):
        op = SimpleNamespace(
            step_name=task_id,
            task_id=task_id,
            dag_id="docker_abandoned",
            script_name="quick.py",
            compute={"name": "t", "backend": "docker", "image": engine},
            environment={},
            log=log,
        )
        return Launch(
            op=op,
            context={"run_id": "manual__2026-01-01T00:00:00+00:00"},
            commands=[Command(["python", "-u", "quick.py"], {"MLPIPE_RUN_ID": "r1"})],
            source_dir=source,
        )

    assert run(launch("other")).returncode == 0
    assert [c["Id"] for c in _step_containers()] == [orphan["Id"]]
    # ... the same task's next attempt removes it before it starts its own
    result = run(launch("sleepy"))
    assert result.returncode == 0 and "second attempt" in log.lines
    assert any("removed 1 container(s) an earlier attempt" in line for line in log.lines)
    assert _step_containers() == []
