"""``CommandStep`` and ``ScriptRunConfig``: commands as argument lists on the embedded Airflow.

Every test that runs something runs the compiled DAG for real (``dag.test()``), or submits
through ``Experiment.submit`` as a user would; reuse is checked on a second run.
"""

from __future__ import annotations

import json

import pytest
from conftest import step_fingerprint, write_script

from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import (
    AmlCompute,
    CommandStep,
    ComputeTarget,
    DataReference,
    Environment,
    Experiment,
    MpiConfiguration,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    PyTorchConfiguration,
    ScriptRun,
    ScriptRunConfig,
    TensorflowConfiguration,
)

ECHO_ARGS = """
    import json, os, sys
    from mlpipe_provider.sdk import Run
    out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    report = {"argv": sys.argv[1:], "python": sys.executable, "rank": os.environ.get("RANK"),
              "world": os.environ.get("WORLD_SIZE"), "tf": os.environ.get("TF_CONFIG"),
              "color": os.environ.get("COLOR"), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}
    open(os.path.join(out, f"report-{os.environ.get('RANK', 'solo')}.json"), "w").write(json.dumps(report))
    Run.get_context().log("args", len(sys.argv) - 1)
"""


def _output(ws, record, port="out"):
    return ws._dir / "datastores" / "workspaceblobstore" / record["outputs"][port]["path"]


def _reports(ws, record, port="out"):
    folder = _output(ws, record, port)
    return sorted(
        (json.loads(p.read_text()) for p in folder.glob("report-*.json")),
        key=lambda r: r["rank"] or "",
    )


@pytest.fixture
def cluster(ws):
    return ComputeTarget.create(
        ws, "cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    )


def _echo_step(ws, command, **kwargs):
    out = PipelineData("out", datastore=ws.get_default_datastore())
    if callable(command):
        command = command(out)
    return CommandStep(
        name="echo", command=command, outputs=[out], source_directory="src", **kwargs
    )


# --- running ------------------------------------------------------------------------------------


def test_a_command_runs_as_words_with_data_and_parameters_as_whole_arguments(ws, project, run_dag):
    """Text is split like a shell would split it (quotes kept together), a parameter and an
    output are one argument each even when their values hold spaces, and the second run of the
    unchanged step is reused."""
    write_script(project / "src", "echo.py", ECHO_ARGS)
    label = PipelineParameter("label", "two words")
    step = _echo_step(
        ws,
        lambda out: ["python echo.py --title 'a quoted title' --label", label, "--out", out],
    )
    pipeline = Pipeline(ws, [step])
    dag_run, records = run_dag(pipeline, dag_id="command_words")
    state, record = records["echo"]
    assert state == "success"
    (report,) = _reports(ws, record)
    out_path = str(_output(ws, record))
    assert report["argv"] == [
        "--title",
        "a quoted title",
        "--label",
        "two words",
        "--out",
        out_path,
    ]
    assert record["metrics"] == {"args": 6}

    again, records = run_dag(pipeline, dag_id="command_words")
    assert records["echo"][0] == "skipped"
    assert records["echo"][1]["reused_run_id"] == record["step_run_id"]
    assert step_fingerprint(again, "echo") == step_fingerprint(dag_run, "echo")


def test_the_command_is_part_of_the_fingerprint(ws, project, run_dag):
    write_script(project / "src", "echo.py", ECHO_ARGS)
    first, _ = run_dag(
        Pipeline(ws, [_echo_step(ws, lambda out: ["python echo.py --n 1 --out", out])]),
        dag_id="command_fp",
    )
    second, records = run_dag(
        Pipeline(ws, [_echo_step(ws, lambda out: ["python echo.py --n 2 --out", out])]),
        dag_id="command_fp",
    )
    assert records["echo"][0] == "success"  # a changed command runs again
    assert step_fingerprint(first, "echo") != step_fingerprint(second, "echo")
    (report,) = _reports(ws, records["echo"][1])
    assert report["argv"][:2] == ["--n", "2"]


def test_a_program_other_than_python_runs_without_a_shell(ws, project, run_dag):
    """``cp`` is found on PATH; the input's and output's paths are whole arguments, and a
    ``$AZUREML_DATAREFERENCE_`` token in the text is the output's path."""
    data = project / ".mlpipe" / "datastores" / "workspaceblobstore" / "notes"
    data.mkdir(parents=True)
    (data / "a.txt").write_text("hello\n")
    (project / "src").mkdir()
    notes = DataReference(
        ws.get_default_datastore(), data_reference_name="notes", path_on_datastore="notes"
    )
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = CommandStep(
        name="copy",
        command=["cp -r", notes, "$AZUREML_DATAREFERENCE_out"],
        inputs=[notes],
        outputs=[out],
        source_directory="src",
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_cp")
    state, record = records["copy"]
    assert state == "success"
    assert (_output(ws, record) / "a.txt").read_text() == "hello\n"


def test_a_file_dataset_in_the_command_is_one_mounted_argument(ws, project, run_dag):
    """v1's CommandStep notebook: ``command=['python train.py --data-dir', dataset.as_mount()]``."""
    from mlpipe_provider.sdk import Dataset

    data = project / ".mlpipe" / "datastores" / "workspaceblobstore" / "raw"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("x\n1\n")
    write_script(
        project / "src",
        "list.py",
        """
        import os, sys
        from mlpipe_provider.sdk import Run
        folder = sys.argv[sys.argv.index("--data-dir") + 1]
        Run.get_context().log("files", len(os.listdir(folder)))
        """,
    )
    dataset = Dataset.File.from_files((ws.get_default_datastore(), "raw/**"))
    step = CommandStep(
        name="list",
        command=["python list.py --data-dir", dataset.as_mount()],
        source_directory="src",
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_dataset")
    state, record = records["list"]
    assert state == "success" and record["metrics"] == {"files": 1}


def test_a_script_run_config_gives_a_command_step_its_script_folder_and_environment(
    ws, project, run_dag
):
    """``runconfig=ScriptRunConfig(script=..., arguments=...)``: v1's ``python SCRIPT ARGS``,
    each argument whole (one with a space stays one), in the config's environment."""
    write_script(project / "train", "echo.py", ECHO_ARGS)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    env = Environment("colors")
    env.environment_variables = {"COLOR": "green"}
    src = ScriptRunConfig(
        source_directory="train",
        script="echo.py",
        arguments=["--name", "my run", "--out", out],
        environment=env,
    )
    step = CommandStep(name="train", runconfig=src, outputs=[out])
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_src_script")
    state, record = records["train"]
    assert state == "success"
    (report,) = _reports(ws, record)
    assert report["argv"][:2] == ["--name", "my run"]
    assert report["color"] == "green"


@pytest.mark.parametrize(
    ("config", "ranks", "world"),
    [
        (MpiConfiguration(process_count_per_node=2, node_count=2), ["0", "1", "2", "3"], "4"),
        (PyTorchConfiguration(process_count=2), ["0", "1"], "2"),
        (TensorflowConfiguration(worker_count=2, parameter_server_count=1), ["0", "1", "2"], "3"),
    ],
    ids=["mpi", "pytorch", "tensorflow"],
)
def test_distributed_job_configs_launch_ranked_processes(
    ws, project, run_dag, cluster, config, ranks, world
):
    write_script(project / "src", "echo.py", ECHO_ARGS)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    src = ScriptRunConfig(
        source_directory="src",
        command=["python echo.py --out", out],
        compute_target=cluster,
        distributed_job_config=config,
    )
    step = CommandStep(name="dist", runconfig=src, outputs=[out])
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_dist")
    state, record = records["dist"]
    assert state == "success"
    reports = _reports(ws, record)
    assert [r["rank"] for r in reports] == ranks
    assert {r["world"] for r in reports} == {world}
    if isinstance(config, TensorflowConfiguration):
        roles = sorted(json.loads(r["tf"])["task"]["type"] for r in reports)
        assert roles == ["ps", "worker", "worker"]


def test_a_gpu_command_step_takes_pool_slots_and_gets_one_device_per_rank(
    ws, project, run_dag, monkeypatch, tmp_path
):
    """Like a PythonScriptStep, each rank sees its own leased device (the pool and its slots:
    the next test)."""
    monkeypatch.setenv("MLPIPE_DEVICE_LOCK_DIR", str(tmp_path / "locks"))
    write_script(project / "src", "echo.py", ECHO_ARGS)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    gpu = ws.compute_targets["STANDARD_NC12"]
    src = ScriptRunConfig(
        source_directory="src",
        command=["python echo.py --out", out],
        compute_target=gpu,
        distributed_job_config=PyTorchConfiguration(process_count=2),
    )
    step = CommandStep(name="gpu", runconfig=src, outputs=[out])
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_gpu")
    reports = _reports(ws, records["gpu"][1])
    assert [(r["rank"], r["cuda"]) for r in reports] == [("0", "0"), ("1", "1")]


def test_a_gpu_command_step_is_compiled_into_its_targets_pool(ws, project):
    from compiler.compile import compile_pipeline

    write_script(project / "src", "echo.py", ECHO_ARGS)
    gpu = ws.compute_targets["STANDARD_NC12"]
    src = ScriptRunConfig(
        source_directory="src",
        command="python echo.py",
        compute_target=gpu,
        distributed_job_config=MpiConfiguration(process_count_per_node=2),
    )
    compiled = compile_pipeline(
        Pipeline(ws, [CommandStep(name="gpu", runconfig=src)]), "command_pool", project / "dags"
    )
    assert f"pool={gpu.name!r}," in compiled.text and f"queue={gpu.name!r}," in compiled.text
    assert "pool_slots=2," in compiled.text


def test_node_count_of_a_command_step_can_be_a_pipeline_parameter(ws, project, run_dag, cluster):
    write_script(project / "src", "echo.py", ECHO_ARGS)
    nodes = PipelineParameter("nodes", 1)
    src = ScriptRunConfig(
        source_directory="src",
        command=["python echo.py --out $AZUREML_DATAREFERENCE_out"],
        compute_target=cluster,
        distributed_job_config=MpiConfiguration(),
    )
    out = PipelineData("out", datastore=ws.get_default_datastore())
    step = CommandStep(
        name="dist", runconfig=src, outputs=[out], runconfig_pipeline_params={"NodeCount": nodes}
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_nodes", conf={"nodes": 3})
    assert [r["rank"] for r in _reports(ws, records["dist"][1])] == ["0", "1", "2"]


def test_a_python_script_step_takes_a_script_run_configs_run_config(ws, project, run_dag, cluster):
    """v1 programs pass ``src.run_config`` to a PythonScriptStep: its distributed job config,
    target and environment hold there too."""
    write_script(project / "src", "echo.py", ECHO_ARGS)
    out = PipelineData("out", datastore=ws.get_default_datastore())
    src = ScriptRunConfig(
        source_directory="src",
        script="echo.py",
        compute_target=cluster,
        distributed_job_config=PyTorchConfiguration(process_count=2),
    )
    step = PythonScriptStep(
        name="py",
        script_name="echo.py",
        arguments=["--out", out],
        outputs=[out],
        source_directory="src",
        compute_target=cluster,
        runconfig=src.run_config,
    )
    _, records = run_dag(Pipeline(ws, [step]), dag_id="command_py_runconfig")
    assert [r["rank"] for r in _reports(ws, records["py"][1])] == ["0", "1"]


def test_experiment_submit_script_run_config_runs_once_then_reuses(ws, project):
    """v1's most common call outside pipelines: a ``ScriptRun`` to wait on and read metrics
    from; the second identical submit reuses the first run's result."""
    write_script(
        project / "src",
        "train.py",
        """
        import sys
        from mlpipe_provider.sdk import Run
        Run.get_context().log("accuracy", float(sys.argv[sys.argv.index("--rate") + 1]))
        print("trained")
        """,
    )
    experiment = Experiment(ws, "script-run")
    src = ScriptRunConfig(source_directory="src", script="train.py", arguments=["--rate", 0.75])
    run = experiment.submit(src)
    assert isinstance(run, ScriptRun)
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert run.get_metrics() == {"accuracy": 0.75}
    (first,) = run.get_steps()
    assert not first.reused

    again = experiment.submit(
        ScriptRunConfig(source_directory="src", script="train.py", arguments=["--rate", 0.75])
    )
    assert again.wait_for_completion(show_output=False) == "Finished"
    (step,) = again.get_steps()
    assert step.reused
    assert step.get_properties()["azureml.reusedrunid"] == first.id
    assert again.get_metrics() == {"accuracy": 0.75}


def test_a_script_writing_outputs_into_its_folder_is_reused_when_amlignore_lists_them(
    ws, project, run_dag
):
    """The documented way around v1's ``./outputs`` habit (docs/steps/command.md): the folder
    is not part of the fingerprint when ``.amlignore`` lists it."""
    write_script(
        project / "src",
        "save.py",
        """
        import os, uuid
        os.makedirs("outputs", exist_ok=True)
        open(os.path.join("outputs", f"{uuid.uuid4()}.txt"), "w").write("model")
        """,
    )
    (project / "src" / ".amlignore").write_text("outputs/\n")
    src = ScriptRunConfig(source_directory="src", script="save.py")
    pipeline = Pipeline(ws, [CommandStep(name="save", runconfig=src)])
    _, records = run_dag(pipeline, dag_id="command_outputs")
    assert records["save"][0] == "success"
    _, records = run_dag(pipeline, dag_id="command_outputs")
    assert records["save"][0] == "skipped"


# --- compile-time errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("python s.py | tee log.txt", "a pipe"),
        ("python s.py && echo done", "a control operator"),
        ("python s.py; echo done", "a command separator"),
        ("python s.py > log.txt", "a redirect"),
        ("python s.py < in.txt", "a redirect"),
        ("python s.py --when `date`", "a command substitution"),
        ("python s.py --when $(date)", "a command substitution"),
        ('python s.py --home "$HOME"', "a variable expansion ($HOME)"),
        ("python s.py --home ${HOME}", "a variable expansion"),
        ("python s.py &", "a control operator"),
        ("python s.py\npython t.py", "a line break"),
        ("cd src && python s.py", "a control operator"),
        ("python s.py # comment", "a comment"),
        ("SEED=1 python s.py", "a variable assignment"),
        ("python s.py --name 'unclosed", "no closing quotation"),
        ("python s.py --sep $'\\t'", "a quoting form of its own"),
    ],
)
def test_a_command_that_needs_a_shell_is_a_compile_error(ws, script_dir, command, why):
    """Refused when the pipeline compiles (validate, submit, ``mlpipe compile``), naming the
    step, the field and the shell construct; a submit raises ``PipelineValidationError``."""
    step = CommandStep(name="shelly", command=command, source_directory=str(script_dir))
    (message,) = Pipeline(ws, [step]).validate()
    assert "step 'shelly', field 'command'" in message
    assert "needs a shell" in message and why in message
    assert "never through a shell" in message or "environment_variables" in message
    with pytest.raises(PipelineValidationError, match="needs a shell"):
        Pipeline(ws, [step])._check()


def test_shell_syntax_in_a_script_run_config_command_names_that_field(ws, script_dir):
    src = ScriptRunConfig(source_directory=str(script_dir), command=["python s.py", "| wc -l"])
    (message,) = Pipeline(ws, [CommandStep(name="c", runconfig=src)]).validate()
    assert "step 'c', field 'runconfig.command[1]'" in message and "a pipe" in message


def test_shell_characters_that_are_quoted_or_data_are_plain_arguments(ws, script_dir):
    """Quoted, the characters mean themselves to a shell too; a token naming the step's data
    is substituted by mlpipe; a script's arguments (not command text) are never parsed."""
    out = PipelineData("out", datastore=ws.get_default_datastore())
    ok = [
        CommandStep(
            name="quoted",
            command="python s.py --sep '|' --expr \"a && b; c > d\" --cost '$5' --x a\\;b",
            source_directory=str(script_dir),
        ),
        CommandStep(
            name="token",
            command="python s.py --out $AZUREML_DATAREFERENCE_out",
            outputs=[out],
            source_directory=str(script_dir),
        ),
        CommandStep(
            name="script",
            runconfig=ScriptRunConfig(
                source_directory=str(script_dir), script="s.py", arguments=["a | b", "$(x)"]
            ),
        ),
    ]
    assert Pipeline(ws, ok).validate() == []


def test_a_missing_script_or_program_in_the_source_folder_is_a_compile_error(ws, script_dir):
    steps = [
        CommandStep(name="a", command="python missing.py", source_directory=str(script_dir)),
        CommandStep(name="b", command="./run.sh --fast", source_directory=str(script_dir)),
        CommandStep(name="c", command="python ../s.py", source_directory=str(script_dir)),
    ]
    message = "\n".join(Pipeline(ws, steps).validate())
    assert "step 'a', field 'command': 'missing.py' not found in source_directory" in message
    assert "step 'b', field 'command': './run.sh' not found in source_directory" in message
    assert "step 'c', field 'command': '../s.py' is outside source_directory" in message


def test_v1_constructor_rules():
    with pytest.raises(UserErrorException, match="command, or script"):
        ScriptRunConfig(source_directory=".", script="train.py", command="python train.py")
    with pytest.raises(UserErrorException, match="distributed_job_config"):
        ScriptRunConfig(source_directory=".", script="t.py", distributed_job_config=object())
    with pytest.raises(UserErrorException, match="command is required"):
        CommandStep(name="nothing")
    src = ScriptRunConfig(".", script="t.py", arguments="--a 1 --b 'x y'")
    assert src.arguments == ["--a", "1", "--b", "x y"]
    assert src.run_config.max_run_duration_seconds == 2592000  # v1's 30-day default
    assert CommandStep(command="python train.py --epochs 3").name == "python"  # v1: first word
    assert CommandStep(runconfig=src, name="x").source_directory == src.source_directory


# --- container backends -------------------------------------------------------------------------


def _captured_launch(dag, task_id, monkeypatch):
    """The Launch ``run_command`` hands to the backend for this task of the compiled DAG."""
    import types

    from mlpipe_provider.runtime import script_step
    from mlpipe_provider.runtime.process import ProcessResult
    from mlpipe_provider.runtime.step_context import StepWorkspace

    op = dag.get_task(task_id)
    captured = []
    monkeypatch.setattr(
        script_step,
        "run_launch",
        lambda launch: captured.append(launch) or ProcessResult(0, 0.0, []),
    )
    context = {
        "params": dag.params.dump(),
        "dag_run": types.SimpleNamespace(run_id="manual__test", dag_id=dag.dag_id),
        "ti": None,
    }
    script_step.run_command(op, context, StepWorkspace.for_operator(op.workspace, op.dag.fileloc))
    (launch,) = captured
    return launch


def test_in_a_container_python_is_the_images_and_another_program_is_the_images_own(
    ws, project, airflow_db, monkeypatch
):
    """On docker and kubernetes the worker's interpreter never reaches the container: ``python``
    becomes the image's Python, and any other program (``Rscript``) is the entrypoint as named,
    with its arguments as a list."""
    from test_kubernetes_backend import container, k8s_target, load_dag, pod_dicts

    from mlpipe_provider.runtime.backends.docker import DockerSettings, container_kwargs

    write_script(project / "src", "fit.R", "cat('fit')\n")
    write_script(project / "src", "train.py", "print('train')\n")
    ComputeTarget.create(
        ws,
        "docker-cpu",
        AmlCompute.provisioning_configuration(
            vm_size="STANDARD_D2_V2",
            max_nodes=1,
            backend="docker",
            image="img:1",
            pull="missing",  # the image check waits for run time: no engine is asked here
        ),
    )
    k8s_target(ws, "k8s-cpu", "STANDARD_D2_V2", image="img:1", datastore_pvc="data")
    steps = [
        CommandStep(
            name=f"{kind}-{target}", command=command, source_directory="src", compute_target=target
        )
        for target in ("docker-cpu", "k8s-cpu")
        for kind, command in (("r", "Rscript fit.R --n 'a b'"), ("py", "python train.py --n 1"))
    ]
    dag = load_dag(Pipeline(ws, steps), "command_containers", project / "dags")

    r_docker = _captured_launch(dag, "r-docker-cpu", monkeypatch)
    assert not r_docker.runs_python
    [kwargs] = container_kwargs(r_docker, DockerSettings.of(r_docker.op))
    assert kwargs["entrypoint"] == ["Rscript"]
    assert kwargs["command"] == ["fit.R", "--n", "a b"]
    py_docker = _captured_launch(dag, "py-docker-cpu", monkeypatch)
    [kwargs] = container_kwargs(py_docker, DockerSettings.of(py_docker.op))
    assert kwargs["entrypoint"] == ["python3"] and kwargs["command"] == ["train.py", "--n", "1"]

    (pod,) = pod_dicts(_captured_launch(dag, "r-k8s-cpu", monkeypatch))
    assert container(pod)["command"] == ["Rscript"]
    assert container(pod)["args"] == ["fit.R", "--n", "a b"]
    (pod,) = pod_dicts(_captured_launch(dag, "py-k8s-cpu", monkeypatch))
    assert container(pod)["command"] == ["python3"]
    assert container(pod)["args"] == ["train.py", "--n", "1"]


def test_bad_data_in_a_command_names_the_command_field(ws, script_dir):
    """Errors about the command's items name ``command[i]`` (or ``runconfig.command[i]``), not
    the ``arguments`` a CommandStep does not have."""
    steps = [
        CommandStep(
            name="token",
            command=["python s.py --out $AZUREML_DATAREFERENCE_nowhere"],
            source_directory=str(script_dir),
        ),
        CommandStep(
            name="object",
            runconfig=ScriptRunConfig(str(script_dir), command=["python s.py", object()]),
        ),
    ]
    message = "\n".join(Pipeline(ws, steps).validate())
    assert "step 'token', field 'command[0]'" in message and "nowhere" in message
    assert "step 'object', field 'runconfig.command[1]'" in message
