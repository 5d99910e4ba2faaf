"""Issue 11, items 5 and 7: what v1 accepted about step names and GPU asks runs here too.

Repeated step names (v1's defaults make them common: a PythonScriptStep is named after its
script, a ModuleStep after its module) get distinct, stable task ids while the v1 name stays the
display name and ``StepRun.name``. GPU asks v1 ran (more processes per node than the node has
GPUs, ``use_gpu=True`` on a CPU-only target) compile with a ``V1LenientWarning``; only an ask no
node of the target can hold (more nodes than ``max_nodes``) is still refused.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from conftest import write_script

from compiler.compile import compile_pipeline
from compiler.lower import V1LenientWarning, lower
from mlpipe_provider.runtime.distributed import build_commands, device_for_rank, gpus_held
from mlpipe_provider.sdk import (
    AmlCompute,
    ComputeTarget,
    Estimator,
    EstimatorStep,
    Experiment,
    Module,
    ModuleStep,
    MpiStep,
    OutputPortDef,
    Pipeline,
    PipelineData,
    PythonScriptStep,
)

TRAIN = """
    import json, os, sys
    out = sys.argv[sys.argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    report = {"seed": sys.argv[sys.argv.index("--seed") + 1],
              "rank": os.environ.get("RANK"),
              "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    name = f"rank-{report['rank']}.json" if report["rank"] is not None else "model.json"
    open(os.path.join(out, name), "w").write(json.dumps(report))
"""


def _two_trains(ws, project):
    """Two steps that v1 names alike: both default to their script's name."""
    write_script(project / "src", "train.py", TRAIN)
    steps = []
    for seed in (1, 2):
        model = PipelineData("model", datastore=ws.get_default_datastore())
        steps.append(
            PythonScriptStep(
                "train.py",
                arguments=["--seed", seed, "--out", model],
                outputs=[model],
                source_directory="src",
            )
        )
    return steps


def _quiet_lower(pipeline):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V1LenientWarning)
        return lower(pipeline)


# --- names ----------------------------------------------------------------------------------


def test_default_names_are_v1s_script_and_module_names(ws, project):
    write_script(project / "src", "train.py", "print(1)\n")
    assert PythonScriptStep("train.py", source_directory="src").name == "train.py"
    module = Module.create(ws, name="tokenize", description="d")
    module.publish_python_script(
        "train.py",
        "v1",
        inputs=[],
        outputs=[OutputPortDef(name="out")],
        version="1",
        source_directory=str(project / "src"),
        is_default=True,
    )
    out = PipelineData("tokens", datastore=ws.get_default_datastore())
    assert ModuleStep(module=module, outputs_map={"out": out}).name == "tokenize"
    by_version = ModuleStep(module_version=module.resolve("1"), outputs_map={"out": out})
    assert by_version.name == "tokenize"


def test_same_named_steps_compile_to_distinct_stable_task_ids(ws, project, tmp_path):
    pipeline = Pipeline(ws, _two_trains(ws, project))
    assert pipeline.validate() == []
    lowered = _quiet_lower(pipeline)
    assert list(lowered.steps) == ["train.py", "train.py_2"]  # the pipeline's step order
    assert {spec["step_name"] for spec in lowered.steps.values()} == {"train.py"}
    first = compile_pipeline(pipeline, "names", tmp_path / "a")
    again = compile_pipeline(Pipeline(ws, _two_trains(ws, project)), "names", tmp_path / "a")
    assert first.text == again.text  # byte-identical: same ids on every compile
    text = first.text
    assert text.count("task_display_name='train.py',") == 2
    assert "task_id='train.py'," in text and "task_id='train.py_2'," in text
    # each step's output "model" is its own lineage asset
    assert "x-mlpipe://local/pipelines/names/train.py/model'" in text
    assert "x-mlpipe://local/pipelines/names/train.py_2/model'" in text


def test_a_step_named_like_a_suffixed_id_keeps_ids_distinct(ws, project):
    write_script(project / "src", "s.py", "print(1)\n")
    names = ["prep", "prep", "prep_2", "prep"]
    steps = [
        PythonScriptStep("s.py", name=n, arguments=[i], source_directory="src")
        for i, n in enumerate(names)
    ]
    lowered = _quiet_lower(Pipeline(ws, steps))
    assert lowered.problems == []
    assert list(lowered.steps) == ["prep", "prep_2", "prep_2_2", "prep_3"]
    assert [s["step_name"] for s in lowered.steps.values()] == names


def test_a_problem_in_one_of_two_same_named_steps_names_its_task(ws, project):
    a, b = _two_trains(ws, project)
    b.compute_target = "no-such-target"
    problems = Pipeline(ws, [a, b]).validate()
    assert len(problems) == 1, problems
    assert problems[0].startswith("step 'train.py' (task 'train.py_2'), field 'compute_target'")


# --- GPU asks -------------------------------------------------------------------------------


@pytest.fixture
def gpu_pair(ws):
    """Two nodes of 2 GPUs each."""
    return ComputeTarget.create(
        ws, "gpu-pair", AmlCompute.provisioning_configuration(vm_size="STANDARD_NC12", max_nodes=2)
    )


def test_more_processes_than_gpus_compile_with_a_warning_and_slots_capped(
    ws, project, gpu_pair, tmp_path
):
    write_script(project / "src", "train.py", "print(1)\n")
    step = MpiStep(
        name="train",
        source_directory="src",
        script_name="train.py",
        compute_target=gpu_pair,
        node_count=2,
        process_count_per_node=3,
    )
    with pytest.warns(V1LenientWarning) as caught:
        compiled = compile_pipeline(Pipeline(ws, [step]), "oversubscribed", tmp_path)
    (message,) = {str(w.message) for w in caught}
    assert message.startswith("step 'train', field 'process_count_per_node': 3 GPU processes")
    assert "round-robin" in message
    assert json.loads(compiled.pools_text)["gpu-pair"]["slots"] == 4
    assert "pool_slots=4," in compiled.text  # 2 nodes x 2 GPUs, not 2 x 3 processes


def test_use_gpu_on_a_cpu_target_compiles_with_a_warning_and_no_pool(ws, project, tmp_path):
    write_script(project / "src", "train.py", "print(1)\n")
    estimator = Estimator(
        "src", entry_script="train.py", compute_target="STANDARD_D2_V2", use_gpu=True
    )
    step = EstimatorStep(name="train", estimator=estimator, compute_target="STANDARD_D2_V2")
    with pytest.warns(
        V1LenientWarning, match=r"step 'train', field 'compute_target': use_gpu=True"
    ):
        compiled = compile_pipeline(Pipeline(ws, [step]), "cpu_gpu", tmp_path)
    assert compiled.pools_text is None
    assert "pool=" not in compiled.text and "pool_slots" not in compiled.text


def test_more_nodes_than_the_target_has_is_still_refused(ws, project, gpu_pair):
    write_script(project / "src", "train.py", "print(1)\n")
    step = MpiStep(
        name="train", source_directory="src", script_name="train.py",
        compute_target=gpu_pair, node_count=3,
    )  # fmt: skip
    problems = Pipeline(ws, [step]).validate()
    assert any("field 'node_count'" in p and "max_nodes=2" in p for p in problems), problems


def test_ranks_share_their_own_nodes_gpus_round_robin():
    assert gpus_held(2, 3, 2) == 4 and gpus_held(1, 1, 4) == 1 and gpus_held(3, 2, 0) == 0
    counts = {"framework": "mpi", "node_count": 2, "process_count_per_node": 3}
    commands = build_commands(["python", "x.py"], {}, counts, ["4", "5", "6", "7"])
    seen = [(c.env["NODE_RANK"], c.env["CUDA_VISIBLE_DEVICES"]) for c in commands]
    # node 0 holds devices 4,5 and node 1 holds 6,7: a node's third process shares its first GPU
    assert seen == [("0", "4"), ("0", "5"), ("0", "4"), ("1", "6"), ("1", "7"), ("1", "6")]
    assert device_for_rank([], 1, 0, 0) == ""


# --- one embedded run -----------------------------------------------------------------------


def test_same_named_steps_run_and_find_step_run_returns_each(ws, project, monkeypatch, tmp_path):
    """Three steps named "train.py": two plain ones and an MPI job of 3 processes on 2 GPUs."""
    monkeypatch.setenv("MLPIPE_DEVICE_LOCK_DIR", str(tmp_path / "locks"))
    plain = _two_trains(ws, project)
    ranks = PipelineData("model", datastore=ws.get_default_datastore())
    mpi = MpiStep(
        name="train.py",
        source_directory="src",
        script_name="train.py",
        arguments=["--seed", 3, "--out", ranks],
        outputs=[ranks],
        compute_target="STANDARD_NC12",
        process_count_per_node=3,
    )
    with pytest.warns(V1LenientWarning):
        run = Experiment(ws, "same_names").submit(Pipeline(ws, [*plain, mpi]))
    assert run.wait_for_completion(show_output=False) == "Finished"

    found = run.find_step_run("train.py")
    assert len(found) == 3
    assert {s.name for s in found} == {"train.py"}
    assert sorted(s.get_properties()["mlpipe.airflow.task_id"] for s in found) == [
        "train.py",
        "train.py_2",
        "train.py_3",
    ]
    assert not any(s.reused for s in found)  # different arguments: different fingerprints
    reports = {}
    for step_run in found:
        folder = step_run.get_output_data("model").download(str(tmp_path / step_run.id))
        for path in sorted(Path(folder).glob("*.json")):
            report = json.loads(path.read_text())
            reports.setdefault(report["seed"], []).append(report)
    assert [r["devices"] for r in reports["1"]] == [None]  # CPU target: mlpipe leases none
    assert [r["devices"] for r in reports["2"]] == [None]
    assert [(r["rank"], r["devices"]) for r in reports["3"]] == [("0", "0"), ("1", "1"), ("2", "0")]


def test_docker_ranks_beyond_the_gpus_share_them(tmp_path):
    from test_docker_backend import IMAGE, fake_launch

    from mlpipe_provider.runtime.backends.docker import DockerSettings, container_kwargs

    launch = fake_launch(
        tmp_path,
        {"backend": "docker", "image": IMAGE, "gpus": 2, "vm_size": "STANDARD_NC12"},
        ranks=3,
    )
    ranks = container_kwargs(launch, DockerSettings.of(launch.op), gpu_devices=["2", "3"])
    assert [k["device_requests"][0]["DeviceIDs"] for k in ranks] == [["2"], ["3"], ["2"]]


CPU_GPU_PROGRAM = """
from mlpipe_provider.sdk import Estimator, EstimatorStep, Pipeline, PythonScriptStep, Workspace

ws = Workspace.from_config()
estimator = Estimator("src", entry_script="train.py", compute_target="STANDARD_D2_V2", use_gpu=True)
pipeline = Pipeline(ws, [
    EstimatorStep(name="train", estimator=estimator, compute_target="STANDARD_D2_V2"),
    PythonScriptStep("train.py", source_directory="src"),
    PythonScriptStep("train.py", arguments=["again"], source_directory="src"),
])
"""


def test_mlpipe_compile_prints_the_warning_as_one_line_and_succeeds(ws, project, capsys):
    from mlpipe_provider.cli.main import main

    write_script(project / "src", "train.py", "print(1)\n")
    write_script(project, "pipeline.py", CPU_GPU_PROGRAM)
    assert main(["compile", "pipeline.py:pipeline", "-o", "out"]) == 0
    err = capsys.readouterr().err
    assert (
        "mlpipe compile: warning: step 'train', field 'compute_target': use_gpu=True but compute "
        "target 'STANDARD_D2_V2'" in err
    ), err
    assert "warnings.warn" not in err  # no source line
    text = (project / "out" / "pipeline.py").read_text()
    assert "task_id='train.py'," in text and "task_id='train.py_2'," in text
