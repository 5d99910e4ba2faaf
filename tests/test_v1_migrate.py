"""``mlpipe migrate`` on v1 programs as Microsoft's pipeline notebooks write them.

Each test writes a real file, runs the ``mlpipe migrate`` command on it, and then *runs the
migrated file* in a fresh interpreter: a migration is only right if the program gets past its
imports (issue 11: "mlpipe migrate leaves programs that die at line 1").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlpipe_provider.sdk as sdk
from mlpipe_provider.cli.main import main
from mlpipe_provider.cli.migrate import migrate_source
from mlpipe_provider.errors import NotSupportedError


def test_azureml_is_not_importable_here():
    """The tests below prove migrated programs run *without* v1's SDK."""
    with pytest.raises(ImportError):
        __import__("azureml")


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def migrate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["migrate", str(path)])
    return code, capsys.readouterr().out


def run_python(path: Path) -> str:
    """Run a migrated program the way its user would. ``azureml`` is not installed here
    (asserted below), so any import of it that migrate left behind fails the run."""
    done = subprocess.run(
        [sys.executable, "-I", str(path)],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# Every import form v1 programs use, with a body that uses what it imported.
IMPORT_FORMS = {
    "import azureml.core": """\
        import azureml.core
        print("SDK version:", azureml.core.VERSION)
        """,
    "import azureml.core as aml": """\
        import azureml.core as aml
        print(aml.VERSION, aml.Workspace.__name__)
        """,
    "import azureml.pipeline.steps": """\
        import azureml.core
        import azureml.pipeline.steps
        import azureml.pipeline.core
        print(azureml.pipeline.steps.PythonScriptStep.__name__)
        print(type(azureml.pipeline.core.PipelineData("prepped")).__name__)
        print(azureml.core.Workspace.from_config.__name__)
        """,
    "from azureml.x.y import z": """\
        from azureml.pipeline.core.graph import PipelineParameter
        from azureml.core.compute_target import ComputeTargetException
        print(PipelineParameter.__name__, ComputeTargetException.__name__)
        """,
    "runconfig constants": """\
        from azureml.core.runconfig import DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE, RunConfiguration
        print(DEFAULT_CPU_IMAGE)
        print(DEFAULT_GPU_IMAGE)
        """,
    "widgets": """\
        from azureml.widgets import RunDetails
        print(RunDetails.__name__)
        """,
    "azureml.exceptions": """\
        from azureml.exceptions import ComputeTargetException, UserErrorException
        print(issubclass(ComputeTargetException, Exception))
        """,
    "from azureml import core": """\
        from azureml import core
        from azureml.core import runconfig as rc
        print(core.VERSION, rc.DEFAULT_CPU_IMAGE)
        """,
    "inside a function": """\
        def version():
            import azureml.core
            from azureml.core import Workspace
            return azureml.core.VERSION, Workspace.__name__

        print(*version())
        """,
    "try/except ImportError": """\
        try:
            import azureml.core
            from azureml.core import Workspace
        except ImportError:
            Workspace = None
        print(Workspace is not None, azureml.core.VERSION)
        """,
    "conditional import": """\
        import os
        if os.environ.get("USE_WORKSPACE_MODULE"):
            from azureml.core.workspace import Workspace
        else:
            from azureml.core import Workspace
        print(Workspace.__name__)
        """,
}


@pytest.mark.parametrize("form", sorted(IMPORT_FORMS))
def test_every_import_form_migrates_to_a_program_that_runs(form, tmp_path, capsys):
    program = write(tmp_path / "notebook.py", IMPORT_FORMS[form])
    code, out = migrate(program, capsys)
    assert code == 0, out
    after = program.read_text()
    assert "azureml" not in after.replace("azureml.core.VERSION", "")
    printed = run_python(program)
    assert printed.strip()
    if "VERSION" in IMPORT_FORMS[form]:
        assert sdk.VERSION in printed
    if "DEFAULT_GPU_IMAGE" in IMPORT_FORMS[form]:
        assert sdk.DEFAULT_GPU_IMAGE in printed
    assert "False" not in printed


def test_attribute_use_of_the_module_is_rewritten_where_it_stands():
    after, findings = migrate_source(
        "import azureml.core\n"
        "ws = azureml.core.Workspace.from_config()\n"
        "print(azureml.core.VERSION)\n"
    )
    assert after == (
        "import mlpipe_provider.sdk\n"
        "ws = mlpipe_provider.sdk.Workspace.from_config()\n"
        "print(mlpipe_provider.sdk.VERSION)\n"
    )
    assert findings == []


# The import lines of Microsoft's v1 pipeline notebooks (Azure/MachineLearningNotebooks,
# how-to-use-azureml/machine-learning-pipelines), grouped as a notebook's first cells are.
NOTEBOOK_IMPORTS = """\
import azureml.core
from azureml.core import Workspace, Experiment, Datastore, Dataset, Environment, Run
from azureml.core import RunConfiguration, ScriptRunConfig
from azureml.core.compute import AmlCompute, ComputeTarget, DataFactoryCompute
from azureml.core.compute import DatabricksCompute, AdlaCompute, BatchCompute, KustoCompute
from azureml.core.compute_target import ComputeTargetException
from azureml.exceptions import ComputeTargetException
from azureml.core.runconfig import RunConfiguration, DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE
from azureml.core.runconfig import CondaDependencies, DockerConfiguration, MpiConfiguration
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.datastore import Datastore
from azureml.core.dataset import Dataset
from azureml.core.environment import Environment
from azureml.core.authentication import InteractiveLoginAuthentication
from azureml.core.databricks import PyPiLibrary, JarLibrary, EggLibrary, MavenLibrary
from azureml.data.data_reference import DataReference
from azureml.data.datapath import DataPath, DataPathComputeBinding
from azureml.data.dataset_consumption_config import DatasetConsumptionConfig
from azureml.data import OutputFileDatasetConfig
from azureml.data.output_dataset_config import OutputFileDatasetConfig
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter, StepSequence
from azureml.pipeline.core import PublishedPipeline, PipelineEndpoint, PipelineRun, StepRun
from azureml.pipeline.core import InputPortDef, OutputPortDef, Module, ModuleVersion
from azureml.pipeline.core import PipelineDraft
from azureml.pipeline.core.graph import PipelineParameter
from azureml.pipeline.core.run import PipelineRun, StepRun
from azureml.pipeline.core.schedule import ScheduleRecurrence, Schedule, TimeZone
from azureml.pipeline.steps import PythonScriptStep, EstimatorStep, ModuleStep, MpiStep
from azureml.pipeline.steps import DataTransferStep, HyperDriveStep, HyperDriveStepRun
from azureml.pipeline.steps import AutoMLStep, ParallelRunStep, ParallelRunConfig
from azureml.pipeline.steps import CommandStep, AdlaStep, DatabricksStep, AzureBatchStep
from azureml.train.estimator import Estimator
from azureml.train.dnn import PyTorch, TensorFlow
from azureml.train.hyperdrive import RandomParameterSampling, BanditPolicy, HyperDriveConfig
from azureml.train.hyperdrive import PrimaryMetricGoal, choice, loguniform
from azureml.train.automl import AutoMLConfig
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)
"""


def test_the_notebooks_import_lines_all_import_after_migration(tmp_path, capsys):
    program = write(tmp_path / "notebook.py", NOTEBOOK_IMPORTS)
    code, out = migrate(program, capsys)
    assert "cannot map" not in out
    assert code == 0, out
    assert "maps, but not supported yet: AutoMLStep" in out
    assert f"SDK version: {sdk.VERSION}" in run_python(program)


def test_names_v1_had_but_mlpipe_cannot_run_import_and_say_so():
    for name in ("DatabricksCompute", "AdlaStep", "AutoMLConfig"):
        with pytest.raises(NotSupportedError, match=name):
            getattr(sdk, name)()


def test_default_images_are_v1s_and_leave_the_step_on_the_targets_image():
    from mlpipe_provider.runtime.backends.images import effective_image

    assert sdk.DEFAULT_CPU_IMAGE == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    assert sdk.DEFAULT_GPU_IMAGE.startswith("mcr.microsoft.com/azureml/openmpi4.1.0-cuda")
    env = sdk.Environment("gpu")
    env.docker.enabled = True
    env.docker.base_image = sdk.DEFAULT_GPU_IMAGE
    spec = env.to_spec()
    # A docker target with its own image runs that image, not Azure ML's stock one.
    assert effective_image({"image": "python:3.11-slim"}, spec) == "python:3.11-slim"
    # A local step ignores images: the environment spec is all it gets, and it runs anyway.
    assert spec["image"] == sdk.DEFAULT_GPU_IMAGE


MISSING_PROGRAM = """\
import azureml.core as aml
from azureml.core import Workspace, Experiment
from azureml.core.compute_target import ComputeTargetException
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.from_config()
print(ws.name, ws.location, ws.not_a_v1_property)
step = PythonScriptStep(script_name="train.py", name="train")
step.my_note = "set by the program"
print(step.name, step.my_note, step.not_an_attribute)
pipeline = Pipeline(workspace=ws, steps=[step])
run = Experiment(ws, "exp").submit(pipeline)
run.wait_for_completion(show_output=True)
for step_run in run.get_steps():
    print(step_run.get_status(), step_run.no_such_method())
rc = RunConfiguration()
rc.environment.docker.enabled = True
print(rc.environment.docker.not_a_docker_field)
try:
    aml.ComputeTarget(ws, "cpu")
except ComputeTargetException as error:
    print(error.not_an_exception_field)
print(aml.NoSuchV1Name)


def helper(any_run):
    return any_run.anything_goes_here  # a parameter: its type is unknown, so never reported
"""


def test_methods_and_attributes_mlpipe_lacks_are_reported(tmp_path, capsys):
    program = write(tmp_path / "pipeline.py", MISSING_PROGRAM)
    code, out = migrate(program, capsys)
    assert code == 1
    reported = sorted(line for line in out.splitlines() if line.startswith("missing in mlpipe"))
    assert reported == sorted(
        f"missing in mlpipe: {name} ({program}:{line})"
        for name, line in [
            ("Workspace.not_a_v1_property", 9),
            ("PythonScriptStep.not_an_attribute", 12),
            ("StepRun.no_such_method", 17),
            ("DockerSection.not_a_docker_field", 20),
            ("ComputeTargetException.not_an_exception_field", 24),
        ]
    )
    assert f"cannot map: NoSuchV1Name ({program}:25)" in out
    assert "5 method(s)/attribute(s)/keyword(s) missing" in out
    # The imports were still migrated: the report is the to-do list, not a refusal.
    assert "azureml" not in program.read_text()


def test_the_report_is_silent_on_what_mlpipe_has_and_on_what_it_cannot_know(tmp_path, capsys):
    program = write(
        tmp_path / "pipeline.py",
        """\
        from azureml.core import Workspace, Experiment, Dataset
        from azureml.pipeline.core import Pipeline, PipelineData
        from azureml.pipeline.steps import PythonScriptStep

        ws = Workspace.from_config()
        store = ws.get_default_datastore()
        print(ws.name, ws.resource_group, ws.subscription_id, store.anything)
        data = PipelineData("out", datastore=store)
        step = PythonScriptStep(script_name="a.py", outputs=[data])
        pipeline = Pipeline(workspace=ws, steps=[step])
        run = Experiment(ws, "e").submit(pipeline)
        run.wait_for_completion()
        ds = Dataset.get_by_name(ws, "prepped")
        print(ds.to_path())  # declared on FileDataset, a subclass of what get_by_name returns
        value = Workspace.from_config()
        value = 3  # rebound to something else: no longer known to be a Workspace
        print(value.real)
        for a, b in [(1, 2)]:
            print(a.whatever, b)
        """,
    )
    code, out = migrate(program, capsys)
    assert "missing in mlpipe" not in out
    assert code == 0, out


def test_a_module_imported_from_a_package_becomes_the_flat_namespace():
    after, findings = migrate_source(
        "from azureml.core import runconfig, Workspace, Keyvault  # setup\n"
        "image = runconfig.DEFAULT_CPU_IMAGE\n"
    )
    assert after == (
        "from mlpipe_provider.sdk import Workspace\n"
        "from mlpipe_provider import sdk as runconfig\n"
        "from azureml.core import Keyvault  # setup\n"
        "image = runconfig.DEFAULT_CPU_IMAGE\n"
    )
    assert [(f.name, f.line) for f in findings] == [("Keyvault", 1)]
    assert migrate_source(after)[0] == after


def test_an_already_migrated_program_is_still_checked(tmp_path, capsys):
    program = write(tmp_path / "pipeline.py", MISSING_PROGRAM)
    migrate(program, capsys)
    code, out = migrate(program, capsys)
    assert code == 1
    assert "0 file(s) changed" in out
    assert f"missing in mlpipe: StepRun.no_such_method ({program}:17)" in out


def test_keyword_arguments_mlpipe_lacks_are_reported(tmp_path, capsys):
    program = write(
        tmp_path / "pipeline.py",
        """\
        from azureml.core import Workspace, Experiment
        from azureml.pipeline.core import Pipeline
        from azureml.pipeline.steps import PythonScriptStep

        ws = Workspace.from_config()
        step = PythonScriptStep(
            script_name="a.py",
            allow_reuse=False,
            not_a_v1_option=1,
        )
        pipeline = Pipeline(workspace=ws, steps=[step], anything=1)  # Pipeline takes **kwargs
        run = Experiment(ws, "e").submit(pipeline, regenerate_outputs=True)
        run.wait_for_completion(show_output=True, made_up_flag=True)
        """,
    )
    code, out = migrate(program, capsys)
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("missing in mlpipe")] == [
        f"missing in mlpipe: PythonScriptStep(not_a_v1_option=...) ({program}:9)",
        f"missing in mlpipe: PipelineRun.wait_for_completion(made_up_flag=...) ({program}:13)",
    ]


COMMAND_PROGRAM = """\
from azureml.core import ScriptRunConfig, Environment
from azureml.core.runconfig import MpiConfiguration, PyTorchConfiguration
from azureml.core.runconfig import TensorflowConfiguration
from azureml.core.script_run_config import ScriptRunConfig as SRC
from azureml.pipeline.steps import CommandStep
from azureml.pipeline.steps.command_step import CommandStep as CS

configs = [MpiConfiguration(node_count=2), PyTorchConfiguration(process_count=4, node_count=2),
           TensorflowConfiguration(worker_count=2, parameter_server_count=1)]
for config in configs:
    src = ScriptRunConfig(source_directory=".", command=["python train.py --epochs 3"],
                          environment=Environment("train"), distributed_job_config=config)
    step = CommandStep(name="train", runconfig=src)
    print(type(step).__name__, type(src.distributed_job_config).__name__)
print(type(CS(command="python x.py", runconfig=SRC(".", script="x.py"))).__name__)
"""


def test_command_step_and_script_run_config_programs_migrate_and_run(tmp_path, capsys):
    """``ScriptRunConfig``, ``CommandStep`` and the three distributed job configs map to
    supported names (no "not supported" note) and the migrated program builds its steps."""
    program = write(tmp_path / "command.py", COMMAND_PROGRAM)
    code, out = migrate(program, capsys)
    assert code == 0, out
    assert "not supported" not in out and "cannot map" not in out, out
    assert "azureml" not in program.read_text()
    assert run_python(program).splitlines() == [
        "CommandStep MpiConfiguration",
        "CommandStep PyTorchConfiguration",
        "CommandStep TensorflowConfiguration",
        "CommandStep",
    ]


PARALLEL_PROGRAM = """\
from azureml.core import Dataset, Environment, Workspace
from azureml.pipeline.steps import ParallelRunConfig
from azureml.pipeline.steps.parallel_run_step import ParallelRunStep

config = ParallelRunConfig(environment=Environment("score"), entry_script="score.py",
                           error_threshold=10, output_action="append_row",
                           compute_target="cpu-cluster", node_count=2, mini_batch_size="5")
print(type(config).__name__, config.run_max_try, config.run_invocation_timeout)
"""

ENTRY_SCRIPT = """\
from azureml_user.parallel_run import EntryScript

def run(mini_batch):
    EntryScript().logger.info("scoring %d files", len(mini_batch))
    return mini_batch
"""


def test_parallel_run_programs_and_their_entry_scripts_migrate(tmp_path, capsys):
    """ParallelRunStep/ParallelRunConfig map to supported names, and an entry script's
    ``azureml_user.parallel_run`` import of ``EntryScript`` maps too."""
    program = write(tmp_path / "parallel.py", PARALLEL_PROGRAM)
    entry = write(tmp_path / "score.py", ENTRY_SCRIPT)
    code, out = migrate(program, capsys)
    assert code == 0, out
    assert "not supported" not in out and "cannot map" not in out, out
    assert run_python(program).splitlines() == ["ParallelRunConfig 3 60"]
    code, out = migrate(entry, capsys)
    assert code == 0, out
    assert entry.read_text().startswith("from mlpipe_provider.sdk import EntryScript\n")
