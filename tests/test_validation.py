"""Bad pipelines are refused with messages that name the step, the field and the offending value.

Every refusal is checked three ways where it applies: ``pipeline.validate()`` returns the problem,
``compile_pipeline`` raises ``PipelineValidationError`` with the same problems, and no DAG file is
written. A few cases go through the ``mlpipe`` CLI, which must exit 1 with a one-paragraph message
on stderr and never a traceback.
"""

from __future__ import annotations

import math

import pytest
from conftest import write_script

from compiler.compile import compile_pipeline
from mlpipe_provider.cli.main import main
from mlpipe_provider.errors import PipelineValidationError
from mlpipe_provider.sdk import (
    ComputeTarget,
    ComputeTargetException,
    DataReference,
    Experiment,
    NotSupportedError,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineStep,
    PythonScriptStep,
    RunConfiguration,
    StepSequence,
    UserErrorException,
)
from mlpipe_provider.sdk import unsupported as unsupported_sdk


@pytest.fixture
def src(project):
    """A source folder with the scripts the steps below run."""
    folder = project / "src"
    for name in ("a.py", "b.py", "c.py"):
        write_script(folder, name, "print('ok')\n")
    return folder


def step(name: str, script: str = "a.py", **kwargs) -> PythonScriptStep:
    kwargs.setdefault("source_directory", "src")
    return PythonScriptStep(script, name=name, **kwargs)


def refused(pipeline: Pipeline, project) -> list[str]:
    """The pipeline's problems; compiling raises with the same list and writes nothing."""
    problems = pipeline.validate()
    assert problems, "expected validation problems"
    dags = project / "dags"
    with pytest.raises(PipelineValidationError) as info:
        compile_pipeline(pipeline, "refused", dags)
    assert info.value.problems == problems
    for problem in problems:
        assert problem in str(info.value)
    assert not dags.exists()
    return problems


def the_problem(problems: list[str], *fragments: str) -> str:
    """The one problem that contains every fragment (step, field, value...)."""
    matching = [p for p in problems if all(f in p for f in fragments)]
    assert len(matching) == 1, (fragments, problems)
    return matching[0]


# --- graph shape -------------------------------------------------------------------------


def test_cycle_through_run_after(ws, project, src):
    a, b = step("a"), step("b", "b.py")
    a.run_after(b)
    b.run_after(a)
    problems = refused(Pipeline(ws, [a]), project)
    the_problem(problems, "field 'run_after'", "cycle", "'a' -> 'b' -> 'a'")
    assert problems[0].startswith("step 'a', field 'run_after'") or problems[0].startswith(
        "step 'b', field 'run_after'"
    )


def test_cycle_through_step_sequence_and_run_after(ws, project, src):
    a, b, c = step("a"), step("b", "b.py"), step("c", "c.py")
    sequence = StepSequence([a, [b], c])
    a.run_after(c)
    problems = refused(Pipeline(ws, sequence), project)
    problem = the_problem(problems, "field 'run_after'", "cycle")
    assert problem.startswith("step ")
    for name in ("'a'", "'b'", "'c'"):
        assert name in problem


def test_cycle_through_data(ws, project, src):
    x, y = PipelineData("x"), PipelineData("y")
    a = step("a", inputs=[y], outputs=[x])
    b = step("b", "b.py", inputs=[x], outputs=[y])
    problems = refused(Pipeline(ws, [a, b]), project)
    problem = the_problem(problems, "field 'inputs'", "cycle")
    assert "'a'" in problem and "'b'" in problem


def test_duplicate_step_names_are_accepted(ws, project, src):
    # v1 accepts repeated step names (tests/test_v1_names_gpu.py has the details).
    data = PipelineData("handover")
    first = step("same", outputs=[data])
    second = step("same", "b.py", inputs=[data])
    # Two steps of one name are still two steps: no made-up cycle between them.
    assert Pipeline(ws, [first, second]).validate() == []


def test_run_after_a_step_outside_the_pipeline(ws, project, src):
    a, outside = step("a"), step("outside", "b.py")
    a.run_after(outside)
    problems = refused(Pipeline(ws, [a], resolve_closure=False), project)
    the_problem(problems, "step 'a', field 'run_after'", "'outside'", "not part of this pipeline")


# --- data ---------------------------------------------------------------------------------


def test_input_pipeline_data_that_no_step_produces(ws, project, src):
    orphan = PipelineData("orphan")
    problems = refused(Pipeline(ws, [step("reader", inputs=[orphan])]), project)
    the_problem(problems, "step 'reader', field 'inputs[0]'", "'orphan'", "not produced")


def test_argument_pipeline_data_that_no_step_produces(ws, project, src):
    orphan = PipelineData("orphan")
    problems = refused(Pipeline(ws, [step("reader", arguments=["--in", orphan])]), project)
    the_problem(problems, "step 'reader', field 'arguments[1]'", "'orphan'", "not produced")


def test_pipeline_data_output_of_two_steps(ws, project, src):
    shared = PipelineData("shared")
    a = step("a", outputs=[shared])
    b = step("b", "b.py", outputs=[shared])
    problems = refused(Pipeline(ws, [a, b]), project)
    problem = the_problem(problems, "field 'outputs[0]'", "'shared'", "more than one step")
    assert "'a'" in problem and "'b'" in problem


def test_duplicate_output_names_in_one_step(ws, project, src):
    first = PipelineData("first", output_name="model")
    second = PipelineData("second", output_name="model")
    problems = refused(Pipeline(ws, [step("a", outputs=[first, second])]), project)
    assert problems == ["step 'a', field 'outputs[1]': duplicate output name 'model'"]


def test_same_pipeline_data_listed_twice_as_output(ws, project, src):
    out = PipelineData("out")
    problems = refused(Pipeline(ws, [step("a", outputs=[out, out])]), project)
    # One clear problem, not a claim that step 'a' competes with itself.
    assert problems == ["step 'a', field 'outputs[1]': duplicate output name 'out'"]


def test_unknown_datastore_on_pipeline_data(ws, project, src):
    out = PipelineData("out", datastore="no_such_store")
    problems = refused(Pipeline(ws, [step("writer", outputs=[out])]), project)
    the_problem(problems, "step 'writer', field 'outputs[0]'", "unknown datastore 'no_such_store'")


def test_unknown_datastore_on_data_reference(ws, project, src):
    raw = DataReference("no_such_store", data_reference_name="raw")
    problems = refused(Pipeline(ws, [step("reader", inputs=[raw])]), project)
    the_problem(problems, "step 'reader', field 'inputs[0]'", "unknown datastore 'no_such_store'")


def test_unknown_default_datastore(ws, project, src):
    problems = refused(Pipeline(ws, [step("a")], default_datastore="no_such_store"), project)
    problem = the_problem(problems, "field 'default_datastore'", "'no_such_store'")
    assert problem.startswith("pipeline, field 'default_datastore'")
    assert "workspaceblobstore" in problem  # says what exists


def test_default_datastore_of_the_wrong_type(ws, project, src):
    problems = refused(Pipeline(ws, [step("a")], default_datastore=42), project)
    the_problem(problems, "pipeline, field 'default_datastore'", "int")


@pytest.mark.parametrize("path", ["../outside", "data/../../outside", "/etc/passwd"])
def test_path_on_datastore_must_stay_inside(ws, project, src, path):
    store = ws.get_default_datastore()
    as_input = DataReference(store, data_reference_name="raw", path_on_datastore=path)
    as_argument = DataReference(store, data_reference_name="other", path_on_datastore=path)
    pipeline = Pipeline(
        ws, [step("a", inputs=[as_input]), step("b", "b.py", arguments=[as_argument])]
    )
    problems = refused(pipeline, project)
    reason = "absolute" if path.startswith("/") else "'..'"
    the_problem(problems, "step 'a', field 'inputs[0]'", repr(path), reason)
    the_problem(problems, "step 'b', field 'arguments[0]'", repr(path), reason)


def test_inputs_and_outputs_of_the_wrong_type(ws, project, src):
    problems = refused(
        Pipeline(ws, [step("a", inputs=["raw.csv"], outputs=["model.pkl"])]), project
    )
    the_problem(problems, "step 'a', field 'inputs[0]'", "got str")
    the_problem(problems, "step 'a', field 'outputs[0]'", "got str")


# --- scripts and compute --------------------------------------------------------------------


def test_missing_script(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", "nope.py")]), project)
    the_problem(problems, "step 'a', field 'script_name'", "'nope.py'", "not found")


def test_script_outside_source_directory(ws, project, src):
    write_script(project, "escape.py", "print('out')\n")
    problems = refused(Pipeline(ws, [step("a", "../escape.py")]), project)
    the_problem(problems, "step 'a', field 'script_name'", "'../escape.py'", "outside")


def test_missing_source_directory(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", source_directory="no_such_dir")]), project)
    the_problem(problems, "step 'a', field 'source_directory'", "no_such_dir", "does not exist")


def test_unknown_compute_target_name(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", compute_target="nope")]), project)
    the_problem(problems, "step 'a', field 'compute_target'", "'nope'", "does not exist")


def test_compute_target_of_the_wrong_type(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", compute_target=3)]), project)
    the_problem(problems, "step 'a', field 'compute_target'", "got int")


def test_compute_target_lookup_of_unknown_name_raises(ws):
    with pytest.raises(ComputeTargetException, match="'nope'.*does not exist"):
        ComputeTarget(workspace=ws, name="nope")


@pytest.mark.parametrize("seconds", [0, -5, "600", 1.5, True])
def test_bad_max_run_duration_seconds(ws, project, src, seconds):
    runconfig = RunConfiguration()
    runconfig.max_run_duration_seconds = seconds
    problems = refused(Pipeline(ws, [step("a", runconfig=runconfig)]), project)
    the_problem(
        problems,
        "step 'a', field 'runconfig.max_run_duration_seconds'",
        f"got {seconds!r}",
    )


# --- parameters and arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    "default", [[1, 2], {"a": 1}, None, object()], ids=["list", "dict", "none", "object"]
)
def test_parameter_default_of_unsupported_type(ws, project, src, default):
    param = PipelineParameter("lr", default)
    problems = refused(Pipeline(ws, [step("a", arguments=["--lr", param])]), project)
    the_problem(
        problems,
        "step 'a', field 'arguments[1]'",
        "PipelineParameter 'lr'",
        f"got {type(default).__name__}",
    )


@pytest.mark.parametrize("default", [math.nan, math.inf, -math.inf])
def test_parameter_default_not_finite(ws, project, src, default):
    in_arguments = PipelineParameter("lr", default)
    in_params = PipelineParameter("lr", float(str(default)))  # an equal but distinct float
    pipeline = Pipeline(
        ws,
        [step("a", arguments=[in_arguments]), step("b", "b.py", params={"rate": in_params})],
    )
    problems = refused(pipeline, project)
    the_problem(problems, "step 'a', field 'arguments[0]'", "'lr'", repr(default), "finite")
    the_problem(problems, "step 'b', field \"params['rate']\"", "'lr'", "finite")
    assert not any("declared twice" in p for p in problems), problems


def test_parameter_declared_twice_with_different_defaults(ws, project, src):
    a = step("a", arguments=[PipelineParameter("epochs", 10)])
    b = step("b", "b.py", arguments=[PipelineParameter("epochs", 20)])
    problems = refused(Pipeline(ws, [a, b]), project)
    the_problem(
        problems, "step 'b', field 'arguments[0]'", "'epochs'", "declared twice", "10", "20"
    )


def test_parameter_declared_twice_with_the_same_default_is_fine(ws, project, src):
    a = step("a", arguments=[PipelineParameter("epochs", 10)])
    b = step("b", "b.py", params={"epochs": PipelineParameter("epochs", 10)})
    assert Pipeline(ws, [a, b]).validate() == []


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def test_argument_that_is_an_arbitrary_object(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", arguments=["--x", Opaque()])]), project)
    the_problem(problems, "step 'a', field 'arguments[1]'", "Opaque", "<Opaque thing>")


def test_argument_that_is_not_a_finite_number(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", arguments=[math.inf])]), project)
    the_problem(problems, "step 'a', field 'arguments[0]'", "inf", "finite")


def test_param_value_of_unsupported_type(ws, project, src):
    problems = refused(Pipeline(ws, [step("a", params={"cfg": [1, 2]})]), project)
    the_problem(problems, "step 'a', field \"params['cfg']\"", "got list")


# --- pipeline and construction-time checks --------------------------------------------------


def test_empty_pipeline(ws, project):
    problems = refused(Pipeline(ws, []), project)
    assert problems == ["pipeline, field 'steps': the pipeline has no steps"]


def test_step_kind_that_cannot_be_compiled(ws, project, src):
    problems = refused(Pipeline(ws, [PipelineStep("base")]), project)
    the_problem(problems, "step 'base', field 'type'", "PipelineStep", "not supported")


@pytest.mark.parametrize("name", ["AdlaStep", "AutoMLStep", "DatabricksStep", "KustoStep"])
def test_unsupported_v1_class_raises_clearly(name):
    cls = getattr(unsupported_sdk, name)
    with pytest.raises(NotSupportedError, match=rf"^{name} is not supported by mlpipe yet \(.+\)"):
        cls(source_directory="src", entry_script="train.py")


def test_unsupported_v1_class_is_importable_from_the_sdk():
    from mlpipe_provider.sdk import AutoMLStep

    with pytest.raises(NotSupportedError, match="AutoMLStep"):
        AutoMLStep(name="train")


@pytest.mark.parametrize("name", ["has space", "1starts_with_digit", "dash-ed", "", 7])
def test_bad_pipeline_data_name(name):
    with pytest.raises(UserErrorException, match=rf"PipelineData name {name!r}"):
        PipelineData(name)


@pytest.mark.parametrize("name", ["has space", "-leading", "bad/slash", "", "x" * 256])
def test_bad_experiment_name(ws, name):
    with pytest.raises(UserErrorException, match="experiment name"):
        Experiment(ws, name)


def test_bad_step_name():
    with pytest.raises(UserErrorException, match="step name"):
        PythonScriptStep("a.py", name="   ")


def test_several_problems_are_reported_together(ws, project, src):
    orphan = PipelineData("orphan")
    a = step("a", "missing.py", inputs=[orphan], compute_target="nope")
    b = step("b", "b.py", arguments=[PipelineParameter("p", [1]), Opaque()])
    c = step("c", "c.py", source_directory="gone", outputs=[PipelineData("o", datastore="nostore")])
    problems = refused(Pipeline(ws, [a, b, c], default_datastore="nostore"), project)
    the_problem(problems, "pipeline, field 'default_datastore'")
    the_problem(problems, "step 'a', field 'inputs[0]'", "'orphan'")
    the_problem(problems, "step 'a', field 'script_name'", "'missing.py'")
    the_problem(problems, "step 'a', field 'compute_target'", "'nope'")
    the_problem(problems, "step 'b', field 'arguments[0]'", "PipelineParameter 'p'")
    the_problem(problems, "step 'b', field 'arguments[1]'", "Opaque")
    the_problem(problems, "step 'c', field 'source_directory'", "gone")
    the_problem(problems, "step 'c', field 'outputs[0]'", "'nostore'")
    assert len(problems) == 8, problems


def test_a_valid_pipeline_has_no_problems(ws, project, src):
    data = PipelineData("handover")
    a = step("a", arguments=["--out", data], outputs=[data])
    b = step("b", "b.py", arguments=["--in", data], inputs=[data])
    pipeline = Pipeline(ws, [b])
    assert pipeline.validate() == []
    assert [s.name for s in pipeline.steps] == ["b", "a"]  # the producer is pulled in
    assert a in pipeline.steps


# --- the CLI --------------------------------------------------------------------------------

GOOD_PIPELINE = """
    from mlpipe_provider.sdk import (
        Experiment, Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace,
    )

    ws = Workspace.from_config()


    def build(ws):
        data = PipelineData("handover")
        a = PythonScriptStep("a.py", name="a", arguments=["--out", data, "--n", PipelineParameter("n", 3)],
                             outputs=[data], source_directory="src")
        b = PythonScriptStep("b.py", name="b", arguments=["--in", data], inputs=[data],
                             source_directory="src")
        return Pipeline(ws, [b])


    def build_default():
        return build(Workspace.from_config())


    my_pipeline = build(ws)


    def main():
        Experiment(ws, "should_not_run").submit(my_pipeline)


    if __name__ == "__main__":
        main()
"""

BAD_PIPELINE = """
    from mlpipe_provider.sdk import Pipeline, PythonScriptStep, Workspace

    ws = Workspace.from_config()
    broken = Pipeline(ws, [PythonScriptStep("missing.py", name="trainer", source_directory="src",
                                            compute_target="nope")])
"""


def cli(*argv: str) -> int:
    return main(list(argv))


def assert_clean_error(err: str) -> None:
    assert err.strip(), "expected a message on stderr"
    assert "Traceback" not in err
    assert "\n\n" not in err.strip(), "expected one paragraph"


def test_cli_compile_refuses_an_invalid_pipeline(ws, project, src, capsys):
    write_script(project, "bad.py", BAD_PIPELINE)
    capsys.readouterr()
    assert cli("compile", "bad.py", "-o", "out") == 1
    err = capsys.readouterr().err
    assert_clean_error(err)
    assert err.startswith("mlpipe compile: pipeline is not valid (2 problem(s))")
    assert "step 'trainer', field 'script_name'" in err and "'missing.py'" in err
    assert "step 'trainer', field 'compute_target'" in err and "'nope'" in err
    assert not (project / "out").exists()


def test_cli_validate_lists_every_problem(ws, project, src, capsys):
    write_script(project, "bad.py", BAD_PIPELINE)
    write_script(project, "good.py", GOOD_PIPELINE)
    capsys.readouterr()
    assert cli("validate", "bad.py") == 1
    out = capsys.readouterr().out
    assert "bad.py: 2 problem(s)" in out
    assert "  - step 'trainer', field 'script_name'" in out
    assert "  - step 'trainer', field 'compute_target'" in out
    assert cli("validate", "good.py") == 0
    assert "good.py: ok (2 steps)" in capsys.readouterr().out
    assert not (project / "dags").exists()


def test_cli_compile_writes_nothing_when_any_pipeline_is_invalid(ws, project, src, capsys):
    write_script(project, "good.py", GOOD_PIPELINE)
    write_script(project, "bad.py", BAD_PIPELINE)
    assert cli("compile", "good.py", "bad.py", "-o", "out") == 1
    assert_clean_error(capsys.readouterr().err)
    assert not (project / "out").exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("x = {}['missing']\n", "KeyError"),
        ("import sys\nsys.exit(3)\n", "SystemExit"),
        (
            "from mlpipe_provider.sdk import EstimatorStep\nEstimatorStep(name='x')\n",
            "EstimatorStep",
        ),
        ("from mlpipe_provider.sdk import PipelineData\nPipelineData('bad name')\n", "'bad name'"),
    ],
    ids=["syntax", "exception", "sys-exit", "unsupported", "bad-name"],
)
def test_cli_error_in_the_pipeline_file_is_one_clean_message(project, capsys, body, expected):
    write_script(project, "broken.py", body)
    assert cli("compile", "broken.py", "-o", "out") == 1
    err = capsys.readouterr().err
    assert_clean_error(err)
    assert err.startswith("mlpipe compile: ")
    assert expected in err
    assert not (project / "out").exists()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("nofile.py", "not found"),
        ("good.py:no_such_name", "'no_such_name'"),
        ("good.py:ws", "expected a Pipeline, got Workspace"),
    ],
)
def test_cli_bad_target(ws, project, src, capsys, target, expected):
    write_script(project, "good.py", GOOD_PIPELINE)
    assert cli("compile", target, "-o", "out") == 1
    err = capsys.readouterr().err
    assert_clean_error(err)
    assert expected in err
    assert not (project / "out").exists()


def test_cli_two_pipelines_with_one_dag_id_are_refused(ws, project, src, capsys):
    for folder in ("one", "two"):
        write_script(project / folder, "pipeline.py", GOOD_PIPELINE)
        write_script(project / folder / "src", "a.py", "print(1)\n")
        write_script(project / folder / "src", "b.py", "print(1)\n")
    target_one, target_two = "one/pipeline.py:build", "two/pipeline.py:build"
    assert cli("compile", target_one, target_two, "-o", "out") == 1
    err = capsys.readouterr().err
    assert_clean_error(err)
    assert "'pipeline'" in err
    assert not (project / "out").exists()


def test_cli_compile_does_not_run_main(ws, project, src, capsys):
    write_script(project, "good.py", GOOD_PIPELINE)
    assert cli("compile", "good.py", "-o", "out") == 0
    assert (project / "out" / "my_pipeline.py").is_file()
    assert not ws.runs_dir.exists()
    assert "should_not_run" not in capsys.readouterr().out


def test_cli_file_function_form(ws, project, src, capsys):
    write_script(project, "good.py", GOOD_PIPELINE)
    assert cli("compile", "good.py:build", "-o", "out") == 0  # a builder that takes the workspace
    assert (project / "out" / "good.py").is_file()
    assert cli("compile", "good.py:build_default", "-o", "other") == 0  # one that takes nothing
    assert (project / "other" / "good.py").is_file()
    assert cli("compile", "good.py:my_pipeline", "-o", "vars") == 0  # a variable
    assert (project / "vars" / "my_pipeline.py").is_file()
    assert cli("compile", "good.py:build", "--dag-id", "chosen", "-o", "out") == 0
    assert (project / "out" / "chosen.py").is_file()
    assert not ws.runs_dir.exists()


def test_cli_check_reports_missing_stale_and_current(ws, project, src, capsys):
    write_script(project, "good.py", GOOD_PIPELINE)
    dag_file = project / "out" / "my_pipeline.py"

    assert cli("compile", "good.py", "-o", "out", "--check") == 1  # missing
    assert "my_pipeline.py" in capsys.readouterr().err
    assert not (project / "out").exists()  # --check writes nothing

    assert cli("compile", "good.py", "-o", "out") == 0
    assert cli("compile", "good.py", "-o", "out", "--check") == 0  # current
    assert "all DAG files are current" in capsys.readouterr().out

    dag_file.write_text(dag_file.read_text() + "\n# edited by hand\n")
    assert cli("compile", "good.py", "-o", "out", "--check") == 1  # stale
    assert "my_pipeline.py" in capsys.readouterr().err
    assert dag_file.read_text().endswith("# edited by hand\n")  # still untouched


def test_compiling_twice_is_byte_identical(ws, project, src, capsys):
    write_script(project, "good.py", GOOD_PIPELINE)
    assert cli("compile", "good.py", "-o", "out") == 0
    dag_file = project / "out" / "my_pipeline.py"
    first = dag_file.read_bytes()
    capsys.readouterr()
    assert cli("compile", "good.py", "-o", "out") == 0
    assert "unchanged" in capsys.readouterr().out
    assert dag_file.read_bytes() == first

    data = PipelineData("handover")
    a = step("a", arguments=["--out", data, PipelineParameter("n", 3)], outputs=[data])
    b = step("b", "b.py", arguments=["--in", data], inputs=[data])
    pipeline = Pipeline(ws, [b])
    one = compile_pipeline(pipeline, "twice", project / "dags")
    two = compile_pipeline(pipeline, "twice", project / "dags")
    assert one.text == two.text
    assert one.text.encode() == two.text.encode()
    assert a in pipeline.steps


def test_token_naming_no_input_or_output_is_a_compile_error(ws, project):
    from conftest import write_script

    from mlpipe_provider.sdk import DataReference, Pipeline, PythonScriptStep

    write_script(project / "src", "s.py", "print(1)\n")
    raw = DataReference(
        ws.get_default_datastore(), data_reference_name="raw", path_on_datastore="x"
    )
    step = PythonScriptStep("s.py", name="tok", arguments=[f"--data={raw}"], source_directory="src")
    problems = Pipeline(ws, [step]).validate()
    assert any(
        "step 'tok', field 'arguments[0]'" in p and "$AZUREML_DATAREFERENCE_raw" in p
        for p in problems
    )
    ok = PythonScriptStep(
        "s.py", name="tok", arguments=[f"--data={raw}"], inputs=[raw], source_directory="src"
    )
    assert Pipeline(ws, [ok]).validate() == []


def test_reserved_environment_variables_are_refused(ws, project):
    from conftest import write_script

    from mlpipe_provider.sdk import Pipeline, PythonScriptStep, RunConfiguration

    write_script(project / "src", "s.py", "print(1)\n")
    config = RunConfiguration()
    config.environment.environment_variables = {"MLPIPE_RUN_ID": "forged"}
    step = PythonScriptStep("s.py", name="env", runconfig=config, source_directory="src")
    (problem,) = Pipeline(ws, [step]).validate()
    assert "step 'env', field 'runconfig.environment.environment_variables'" in problem
    assert "'MLPIPE_RUN_ID' is reserved" in problem


def test_a_step_named_like_the_plan_task_gets_its_own_task_id(ws, project):
    from conftest import write_script

    from compiler.compile import compile_pipeline
    from mlpipe_provider.sdk import Pipeline, PythonScriptStep

    write_script(project / "src", "s.py", "print(1)\n")
    a = PythonScriptStep("s.py", name="a", source_directory="src")
    b = PythonScriptStep("s.py", name="mlpipe.plan", source_directory="src")
    compiled = compile_pipeline(Pipeline(ws, [a, b]), "names", project / "dags")
    compiled.write()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(compiled.path))
    assert bag.import_errors == {}
    task_ids = bag.dags["names"].task_ids
    assert len(task_ids) == 3 and "mlpipe.plan" in task_ids  # the plan, a, and the renamed step
    renamed = next(t for t in task_ids if t not in ("a", "mlpipe.plan"))
    assert bag.dags["names"].get_task(renamed).task_display_name == "mlpipe.plan"


def test_a_pipeline_file_name_cannot_inject_code_into_the_dag_docstring(project):
    import ast

    from mlpipe_provider.cli.main import main

    (project / "src").mkdir()
    (project / "src" / "s.py").write_text("print(1)\n")
    name = 'evil"""\nimport os; os.system("touch pwned")\n"""x.py'
    (project / name).write_text(
        "from mlpipe_provider.sdk import Pipeline, PythonScriptStep, Workspace\n"
        "evil = Pipeline(Workspace.from_config(), [PythonScriptStep('s.py', source_directory='src')])\n"
    )
    assert main(["compile", str(project / name), "-o", str(project / "dags")]) == 0
    tree = ast.parse((project / "dags" / "evil.py").read_text())
    docstring = ast.get_docstring(tree)
    assert name in docstring  # the origin is shown exactly, inside the docstring
    assert not any(
        isinstance(node, ast.Import) and node.names[0].name == "os" for node in tree.body
    )
