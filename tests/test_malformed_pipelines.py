"""The catalogue of malformed pipelines (invariant 8), each written as a user would write it.

Every case is a small v1-style pipeline file in a fresh project. It goes through the real
``mlpipe compile FILE.py:pipeline`` and ``mlpipe validate`` commands, and must end the same way:
exit status 1, one message that names the step (where there is one) and the field, no Python
traceback anywhere, and nothing written to the DAG folder, not even a temporary file. A few cases
also run through the installed ``mlpipe`` console script in a subprocess, to prove that what
reaches a real terminal is the message and not a traceback.

tests/test_validation.py checks the same refusals in depth on ``Pipeline`` objects (the exact
problem lists, ``validate()`` == the compile error); this file is the counted catalogue, one entry
per kind of mistake, driven through the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.cli.main import main

HEADER = """\
from mlpipe_provider.sdk import (
    AmlCompute, AutoMLStep, ComputeTarget, DataReference, Estimator, EstimatorStep,
    HyperDriveStep, Module, ModuleStep, MpiConfiguration, ParallelRunConfig, ParallelRunStep,
    Pipeline, PipelineData, PipelineParameter, PythonScriptStep, RunConfiguration,
    StepSequence, Workspace,
)

ws = Workspace.from_config()
store = ws.get_default_datastore()
"""


@dataclass(frozen=True)
class Case:
    """One malformed pipeline: its program (after HEADER) and what the message must name."""

    id: str
    category: str
    program: str
    names: tuple[str, ...]  # the step, the field and the offending value, as the message shows them


CASES: list[Case] = [
    # --- graph shape --------------------------------------------------------------------------
    Case(
        "cycle-run-after",
        "cycle",
        """
        a = PythonScriptStep("prep.py", name="prep", source_directory="src")
        b = PythonScriptStep("train.py", name="train", source_directory="src")
        a.run_after(b)
        b.run_after(a)
        pipeline = Pipeline(ws, [a, b])
        """,
        ("field 'run_after'", "cycle", "'prep'", "'train'"),
    ),
    Case(
        "cycle-step-sequence",
        "cycle",
        """
        a = PythonScriptStep("prep.py", name="prep", source_directory="src")
        b = PythonScriptStep("train.py", name="train", source_directory="src")
        c = PythonScriptStep("score.py", name="score", source_directory="src")
        sequence = StepSequence(steps=[a, b, c])
        a.run_after(c)  # the sequence already says score runs after prep
        pipeline = Pipeline(ws, sequence)
        """,
        ("field 'run_after'", "cycle", "'prep'", "'train'", "'score'"),
    ),
    Case(
        "cycle-data",
        "cycle",
        """
        features, model = PipelineData("features", datastore=store), PipelineData("model", datastore=store)
        prep = PythonScriptStep("prep.py", name="prep", inputs=[model], outputs=[features],
                                arguments=["--model", model, "--out", features], source_directory="src")
        train = PythonScriptStep("train.py", name="train", inputs=[features], outputs=[model],
                                 arguments=["--in", features, "--out", model], source_directory="src")
        pipeline = Pipeline(ws, [prep, train])
        """,
        ("field 'inputs'", "cycle", "'prep'", "'train'"),
    ),
    Case(
        "self-dependency",
        "cycle",
        """
        train = PythonScriptStep("train.py", name="train", source_directory="src")
        train.run_after(train)
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'run_after'", "cycle", "'train' -> 'train'"),
    ),
    Case(
        "input-is-own-output",
        "cycle",
        """
        data = PipelineData("data", datastore=store)
        train = PythonScriptStep("train.py", name="train", inputs=[data], outputs=[data],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "'data'", "output of the same step"),
    ),
    Case(
        "blank-step-name",
        "names",
        """
        train = PythonScriptStep("train.py", name="   ", source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("pipeline.py:", "PythonScriptStep: step name", "non-empty", "'   '"),
    ),
    Case(
        "step-name-not-a-string",
        "names",
        """
        train = PythonScriptStep("train.py", name=42, source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("pipeline.py:", "PythonScriptStep: step name", "42"),
    ),
    Case(
        "run-after-step-outside-pipeline",
        "graph",
        """
        prep = PythonScriptStep("prep.py", name="prep", source_directory="src")
        train = PythonScriptStep("train.py", name="train", source_directory="src")
        train.run_after(prep)
        pipeline = Pipeline(ws, [train], resolve_closure=False)
        """,
        ("step 'train', field 'run_after'", "'prep'", "not part of this pipeline"),
    ),
    # --- data between steps --------------------------------------------------------------------
    Case(
        "dangling-input",
        "data",
        """
        features = PipelineData("features", datastore=store)
        train = PythonScriptStep("train.py", name="train", inputs=[features],
                                 arguments=["--in", features], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "'features'", "not produced by any step"),
    ),
    Case(
        "output-written-by-two-steps",
        "data",
        """
        model = PipelineData("model", datastore=store)
        a = PythonScriptStep("train.py", name="train_a", outputs=[model], source_directory="src")
        b = PythonScriptStep("train.py", name="train_b", outputs=[model], source_directory="src")
        pipeline = Pipeline(ws, [a, b])
        """,
        ("field 'outputs[0]'", "'model'", "more than one step", "'train_a'", "'train_b'"),
    ),
    Case(
        "two-outputs-with-one-name",
        "data",
        """
        first = PipelineData("model", datastore=store)
        second = PipelineData("model", datastore=store)
        train = PythonScriptStep("train.py", name="train", outputs=[first, second],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'outputs[1]'", "duplicate output name 'model'"),
    ),
    Case(
        "input-and-output-share-a-name",
        "data",
        """
        raw = DataReference(store, data_reference_name="data", path_on_datastore="raw")
        cleaned = PipelineData("data", datastore=store)
        clean = PythonScriptStep("prep.py", name="clean", arguments=["--in", raw, "--out", cleaned],
                                 inputs=[raw], outputs=[cleaned], source_directory="src")
        pipeline = Pipeline(ws, [clean])
        """,
        ("step 'clean', field 'outputs'", "'data'", "both an input and an output"),
    ),
    Case(
        "input-not-data",
        "data",
        """
        train = PythonScriptStep("train.py", name="train", inputs=["data/raw.csv"],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "got str"),
    ),
    Case(
        "inputs-not-a-list",
        "data",
        """
        features = PipelineData("features", datastore=store)
        train = PythonScriptStep("train.py", name="train", inputs=features, source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train'", "inputs must be a list", "PipelineData"),
    ),
    # --- scripts and folders -------------------------------------------------------------------
    Case(
        "missing-script",
        "scripts",
        """
        train = PythonScriptStep("trian.py", name="train", source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'script_name'", "'trian.py'", "not found"),
    ),
    Case(
        "missing-source-directory",
        "scripts",
        """
        train = PythonScriptStep("train.py", name="train", source_directory="scr")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'source_directory'", "scr", "does not exist"),
    ),
    Case(
        "script-outside-source-directory",
        "scripts",
        """
        train = PythonScriptStep("../pipeline.py", name="train", source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'script_name'", "'../pipeline.py'", "outside source_directory"),
    ),
    Case(
        "script-absolute-path",
        "scripts",
        """
        train = PythonScriptStep("/etc/passwd", name="train", source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'script_name'", "'/etc/passwd'", "outside source_directory"),
    ),
    # --- workspace names: datastores, compute, modules -----------------------------------------
    Case(
        "unknown-datastore-output",
        "workspace",
        """
        model = PipelineData("model", datastore="blobstore_typo")
        train = PythonScriptStep("train.py", name="train", outputs=[model], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'outputs[0]'", "unknown datastore 'blobstore_typo'"),
    ),
    Case(
        "unknown-datastore-input",
        "workspace",
        """
        raw = DataReference("blobstore_typo", data_reference_name="raw", path_on_datastore="raw")
        train = PythonScriptStep("train.py", name="train", inputs=[raw], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "unknown datastore 'blobstore_typo'"),
    ),
    Case(
        "unknown-default-datastore",
        "workspace",
        """
        train = PythonScriptStep("train.py", name="train", source_directory="src")
        pipeline = Pipeline(ws, [train], default_datastore="blobstore_typo")
        """,
        ("pipeline, field 'default_datastore'", "'blobstore_typo'"),
    ),
    Case(
        "unknown-compute-target",
        "workspace",
        """
        train = PythonScriptStep("train.py", name="train", compute_target="gpu-clutser",
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'compute_target'", "'gpu-clutser'", "does not exist"),
    ),
    Case(
        "compute-target-wrong-type",
        "workspace",
        """
        train = PythonScriptStep("train.py", name="train", compute_target=4, source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'compute_target'", "got int"),
    ),
    Case(
        "unknown-module-version",
        "workspace",
        """
        module = Module.create(ws, name="cleaner", description="clean text")
        module.publish_python_script("prep.py", "first", inputs=[], outputs=[], version="1",
                                     source_directory="src", is_default=True)
        clean = ModuleStep(module=module, version="7", name="clean")
        pipeline = Pipeline(ws, [clean])
        """,
        ("step 'clean'", "version", "'7'"),
    ),
    # --- parameters and arguments --------------------------------------------------------------
    Case(
        "parameter-default-list",
        "parameters",
        """
        layers = PipelineParameter("layers", default_value=[64, 32])
        train = PythonScriptStep("train.py", name="train", arguments=["--layers", layers],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "PipelineParameter 'layers'", "got list"),
    ),
    Case(
        "parameter-default-none",
        "parameters",
        """
        seed = PipelineParameter("seed", default_value=None)
        train = PythonScriptStep("train.py", name="train", params={"seed": seed},
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field \"params['seed']\"", "PipelineParameter 'seed'", "got NoneType"),
    ),
    Case(
        "parameter-default-nan",
        "parameters",
        """
        lr = PipelineParameter("lr", default_value=float("nan"))
        train = PythonScriptStep("train.py", name="train", arguments=["--lr", lr],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "'lr'", "nan", "finite"),
    ),
    Case(
        "parameter-declared-twice",
        "parameters",
        """
        prep = PythonScriptStep("prep.py", name="prep", arguments=[PipelineParameter("epochs", 10)],
                                source_directory="src")
        train = PythonScriptStep("train.py", name="train",
                                 arguments=[PipelineParameter("epochs", 20)], source_directory="src")
        pipeline = Pipeline(ws, [prep, train])
        """,
        ("step 'train', field 'arguments[0]'", "'epochs'", "declared twice"),
    ),
    Case(
        "node-count-parameter-not-an-int",
        "parameters",
        """
        ComputeTarget.create(ws, "cpu-cluster",
                             AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4))
        nodes = PipelineParameter("nodes", default_value="two")
        train = PythonScriptStep("train.py", name="train", compute_target="cpu-cluster",
                                 runconfig=RunConfiguration(communicator="IntelMpi"),
                                 runconfig_pipeline_params={"NodeCount": nodes},
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'runconfig.node_count'", "'nodes'", "'two'"),
    ),
    Case(
        "param-value-not-scalar",
        "parameters",
        """
        train = PythonScriptStep("train.py", name="train", params={"config": {"lr": 0.1}},
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field \"params['config']\"", "got dict"),
    ),
    Case(
        "allow-reuse-not-bool",
        "parameters",
        """
        train = PythonScriptStep("train.py", name="train", allow_reuse="no", source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train'", "allow_reuse", "'no'"),
    ),
    Case(
        "negative-timeout",
        "parameters",
        """
        runconfig = RunConfiguration()
        runconfig.max_run_duration_seconds = -60
        train = PythonScriptStep("train.py", name="train", runconfig=runconfig,
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'runconfig.max_run_duration_seconds'", "-60"),
    ),
    Case(
        "unknown-keyword-argument",
        "parameters",
        """
        train = PythonScriptStep("train.py", name="train", source_directory="src", retries=3)
        pipeline = Pipeline(ws, [train])
        """,
        ("pipeline.py:", "PythonScriptStep", "'retries'"),
    ),
    Case(
        "reserved-environment-variable",
        "parameters",
        """
        runconfig = RunConfiguration()
        runconfig.environment_variables = {"MLPIPE_RUN_ID": "forged"}
        train = PythonScriptStep("train.py", name="train", runconfig=runconfig,
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'runconfig.environment.environment_variables'", "'MLPIPE_RUN_ID'"),
    ),
    # --- capacity -------------------------------------------------------------------------------
    Case(
        "nodes-beyond-target",
        "capacity",
        """
        ComputeTarget.create(ws, "gpu-cluster",
                             AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6", max_nodes=2))
        runconfig = RunConfiguration(communicator="IntelMpi")
        runconfig.node_count = 3
        train = PythonScriptStep("train.py", name="train", compute_target="gpu-cluster",
                                 runconfig=runconfig, source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'node_count'", "3 nodes", "max_nodes=2"),
    ),
    # --- the pipeline itself --------------------------------------------------------------------
    Case(
        "empty-pipeline",
        "empty",
        """
        pipeline = Pipeline(ws, [])
        """,
        ("pipeline, field 'steps'", "no steps"),
    ),
    Case(
        "empty-step-sequence",
        "empty",
        """
        pipeline = Pipeline(ws, StepSequence(steps=[]))
        """,
        ("pipeline, field 'steps'", "no steps"),
    ),
    Case(
        "steps-not-a-list",
        "empty",
        """
        pipeline = Pipeline(ws, "train.py")
        """,
        ("steps", "got str"),
    ),
    Case(
        "steps-hold-none",
        "empty",
        """
        train = PythonScriptStep("train.py", name="train", source_directory="src")
        pipeline = Pipeline(ws, [train, None])
        """,
        ("steps", "NoneType"),
    ),
    # --- arguments that cannot become a literal -------------------------------------------------
    Case(
        "argument-lambda",
        "arguments",
        """
        train = PythonScriptStep("train.py", name="train", arguments=["--fn", lambda x: x],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "function"),
    ),
    Case(
        "argument-set",
        "arguments",
        """
        train = PythonScriptStep("train.py", name="train", arguments=["--tags", {"a", "b"}],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "got set"),
    ),
    Case(
        "argument-open-file",
        "arguments",
        """
        handle = open("src/train.py")
        train = PythonScriptStep("train.py", name="train", arguments=["--config", handle],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "TextIOWrapper"),
    ),
    Case(
        "argument-infinite",
        "arguments",
        """
        train = PythonScriptStep("train.py", name="train", arguments=["--lr", float("inf")],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "inf", "finite"),
    ),
    Case(
        "argument-bytes",
        "arguments",
        """
        train = PythonScriptStep("train.py", name="train", arguments=["--key", b"secret"],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "got bytes"),
    ),
    Case(
        "argument-token-naming-nothing",
        "arguments",
        """
        train = PythonScriptStep("train.py", name="train",
                                 arguments=["--data=$AZUREML_DATAREFERENCE_raw"],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[0]'", "$AZUREML_DATAREFERENCE_raw", "not an input"),
    ),
    # --- unsupported v1 features ----------------------------------------------------------------
    Case(
        "parallel-run-step",
        "data",
        """
        from mlpipe_provider.sdk import Dataset, Environment
        rows = Dataset.Tabular.from_delimited_files(path=(store, "rows.csv"), validate=False)
        config = ParallelRunConfig(source_directory="src", entry_script="train.py",
                                   mini_batch_size="5", error_threshold=10, output_action="append_row",
                                   environment=Environment("score"), compute_target="cpu-cluster",
                                   node_count=2)
        score = ParallelRunStep(name="score", parallel_run_config=config,
                                inputs=[rows.as_named_input("rows")])
        pipeline = Pipeline(ws, [score])
        """,
        ("step 'score', field 'inputs[0]'", "TabularDataset", "FileDataset"),
    ),
    Case(
        "parallel-run-step-alone",
        "arguments",
        """
        score = ParallelRunStep(name="score", parallel_run_config=None, inputs=[], output=None)
        pipeline = Pipeline(ws, [score])
        """,
        ("ParallelRunStep 'score'", "parallel_run_config", "NoneType"),
    ),
    Case(
        "hyperdrive-step-without-config",
        "arguments",
        """
        tune = HyperDriveStep(name="tune", hyperdrive_config=None, inputs=[], outputs=[])
        pipeline = Pipeline(ws, [tune])
        """,
        ("HyperDriveStep 'tune'", "hyperdrive_config must be a HyperDriveConfig", "NoneType"),
    ),
    Case(
        "automl-step",
        "unsupported",
        """
        automl = AutoMLStep(name="automl", automl_config=None, outputs=[])
        pipeline = Pipeline(ws, [automl])
        """,
        ("AutoMLStep", "not supported", "instead", "PythonScriptStep"),
    ),
    Case(
        "pipeline-load-yaml",
        "unsupported",
        """
        train = PythonScriptStep("train.py", name="train", source_directory="src")
        pipeline = Pipeline(ws, [train])
        pipeline.load_yaml(ws, "pipeline.yml")
        """,
        ("Pipeline.load_yaml", "not supported"),
    ),
    # --- paths that would leave their datastore -------------------------------------------------
    Case(
        "path-on-datastore-dotdot",
        "paths",
        """
        raw = DataReference(store, data_reference_name="raw", path_on_datastore="raw/../../secrets")
        train = PythonScriptStep("train.py", name="train", inputs=[raw], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "'raw/../../secrets'", "'..'"),
    ),
    Case(
        "path-on-datastore-absolute",
        "paths",
        """
        raw = DataReference(store, data_reference_name="raw", path_on_datastore="/etc")
        train = PythonScriptStep("train.py", name="train", arguments=["--raw", raw],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'arguments[1]'", "'/etc'", "absolute"),
    ),
    Case(
        "path-on-datastore-windows-drive",
        "paths",
        """
        raw = DataReference(store, data_reference_name="raw", path_on_datastore="C:\\\\data")
        train = PythonScriptStep("train.py", name="train", inputs=[raw], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "C:", "absolute"),
    ),
    Case(
        "path-on-datastore-nul",
        "paths",
        """
        raw = DataReference(store, data_reference_name="raw", path_on_datastore="raw\\x00.csv")
        train = PythonScriptStep("train.py", name="train", inputs=[raw], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "NUL"),
    ),
    Case(
        "output-name-with-slash",
        "paths",
        """
        model = PipelineData("model", datastore=store, output_name="models/best")
        train = PythonScriptStep("train.py", name="train", outputs=[model], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("output_name", "'models/best'"),
    ),
    Case(
        "output-name-dotdot",
        "paths",
        """
        model = PipelineData("model", datastore=store, output_name="..")
        train = PythonScriptStep("train.py", name="train", outputs=[model], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("output_name", "'..'"),
    ),
    Case(
        "data-name-with-slash",
        "paths",
        """
        model = PipelineData("../model", datastore=store)
        train = PythonScriptStep("train.py", name="train", outputs=[model], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("PipelineData name", "'../model'"),
    ),
    Case(
        "input-path-on-compute-escapes",
        "paths",
        """
        raw = DataReference(store, data_reference_name="raw", path_on_datastore="raw")
        train = PythonScriptStep("train.py", name="train",
                                 inputs=[raw.as_download(path_on_compute="../../etc")],
                                 source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'inputs[0]'", "path_on_compute", "'../../etc'"),
    ),
    Case(
        "output-path-on-compute-absolute",
        "paths",
        """
        model = PipelineData("model", datastore=store, output_path_on_compute="/root/.ssh")
        train = PythonScriptStep("train.py", name="train", outputs=[model], source_directory="src")
        pipeline = Pipeline(ws, [train])
        """,
        ("step 'train', field 'outputs[0]'", "path_on_compute", "'/root/.ssh'", "absolute"),
    ),
]


@pytest.fixture
def program_dir(project: Path) -> Path:
    """A project with the step scripts the catalogue's pipelines refer to."""
    for name in ("prep.py", "train.py", "score.py"):
        write_script(project / "src", name, "print('ok')\n")
    return project


def write_program(folder: Path, case: Case) -> Path:
    return write_script(folder, "pipeline.py", HEADER + textwrap.dedent(case.program))


def without_notice(err: str) -> str:
    """stderr less the one-line notice that a new project runs on the embedded workspace."""
    return "".join(
        line
        for line in err.splitlines(keepends=True)
        if not line.startswith("mlpipe: no workspace")
    )


def assert_refused(output: str, out_dir: Path, case: Case) -> None:
    """One clear message naming step and field, no traceback, and an untouched DAG folder."""
    assert "Traceback" not in output, output
    for fragment in case.names:
        assert fragment in output, (case.id, fragment, output)
    assert not out_dir.exists() or not any(out_dir.iterdir()), list(out_dir.iterdir())


def test_the_catalogue_covers_every_category() -> None:
    """The issue asks for at least 35 cases across these kinds of mistakes."""
    assert len(CASES) >= 35
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.category for c in CASES} >= {
        "cycle",
        "names",
        "data",
        "scripts",
        "workspace",
        "parameters",
        "capacity",
        "empty",
        "arguments",
        "unsupported",
        "paths",
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_compile_and_validate_refuse(
    case: Case, program_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_program(program_dir, case)
    out_dir = program_dir / "dags"
    capsys.readouterr()
    assert main(["compile", "pipeline.py:pipeline", "-o", str(out_dir)]) == 1
    captured = capsys.readouterr()
    assert without_notice(captured.err).startswith("mlpipe compile: "), captured.err
    assert_refused(captured.out + captured.err, out_dir, case)

    assert main(["validate", "pipeline.py:pipeline"]) == 1
    captured = capsys.readouterr()
    assert_refused(captured.out + captured.err, out_dir, case)
    assert not (program_dir / ".mlpipe" / "dags").exists() or not any(
        (program_dir / ".mlpipe" / "dags").iterdir()
    )


SUBPROCESS_CASES = [
    "cycle-step-sequence",
    "missing-script",
    "unknown-keyword-argument",
    "argument-lambda",
    "parallel-run-step",
    "path-on-datastore-dotdot",
]


def _mlpipe() -> str:
    """The installed console script, as a user's terminal runs it."""
    found = Path(sys.executable).parent / "mlpipe"
    return str(found) if found.exists() else shutil.which("mlpipe") or "mlpipe"


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_console_script_prints_no_traceback(case_id: str, program_dir: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    write_program(program_dir, case)
    out_dir = program_dir / "dags"
    env = {k: v for k, v in os.environ.items() if k != "MLPIPE_WORKSPACE"}
    result = subprocess.run(
        [_mlpipe(), "compile", "pipeline.py:pipeline", "-o", str(out_dir)],
        cwd=program_dir,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert without_notice(result.stderr).startswith("mlpipe compile: "), result.stderr
    assert_refused(result.stdout + result.stderr, out_dir, case)


def test_a_step_name_longer_than_a_task_id_is_not_an_error(
    program_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not in the catalogue on purpose: v1 step names are free text, so a name longer than
    Airflow's 250-character task id limit compiles to a shortened id with a hash suffix and keeps
    the full name as the task's display name."""
    import ast

    name = "train " + "x" * 400
    program = f"""
        train = PythonScriptStep("train.py", name={name!r}, source_directory="src")
        pipeline = Pipeline(ws, [train])
        """
    write_program(program_dir, Case("long-name", "names", program, ()))
    assert main(["compile", "pipeline.py:pipeline", "-o", "dags"]) == 0
    tree = ast.parse((program_dir / "dags" / "pipeline.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    kwargs = [
        {k.arg: ast.literal_eval(k.value) for k in c.keywords if k.arg in ("task_id", "step_name")}
        for c in calls
        if any(k.arg == "step_name" for k in c.keywords)
    ]
    assert kwargs and all(len(k["task_id"]) <= 250 for k in kwargs)
    assert any(k["step_name"] == name for k in kwargs)
