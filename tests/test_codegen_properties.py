"""Property tests for invariant 6: whatever text a pipeline definition holds (step names,
arguments, descriptions, parameter defaults, paths), the DAG file carries it as a literal: the file
parses, contains only the statements codegen writes, and gives back every value exactly."""

from __future__ import annotations

import ast
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.codegen import render_dag
from compiler.lower import lower
from mlpipe_provider.sdk import Pipeline, PipelineParameter, PythonScriptStep

# The Hypothesis profile's count (conftest.py: 10,000 in CI, fewer locally) unless overridden here.
EXAMPLES = int(os.environ.get("MLPIPE_CODEGEN_EXAMPLES", settings().max_examples))
text = st.text(min_size=1, max_size=40)
scalar = st.one_of(
    text,
    st.integers(-(2**63), 2**63),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _operator_calls(tree: ast.Module) -> list[ast.Call]:
    with_block = next(node for node in tree.body if isinstance(node, ast.With))
    calls = []
    for node in with_block.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            calls.append(node.value)
        else:  # only `a >> b` dependency lines besides the assignments
            assert isinstance(node, ast.Expr) and isinstance(node.value, ast.BinOp), ast.dump(node)
    return calls


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=text.filter(lambda s: s.strip()),
    arguments=st.lists(scalar, max_size=6),
    description=st.one_of(st.none(), st.text(max_size=80)),
    param_name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(
        lambda s: not s.startswith("mlpipe_")
    ),
    param_default=scalar,
)
def test_every_value_reaches_the_dag_as_a_literal(
    script_dir, ws, name, arguments, description, param_name, param_default
):
    step = PythonScriptStep(
        "s.py",
        name=name,
        arguments=[*arguments, PipelineParameter(param_name, param_default)],
        source_directory=str(script_dir),
    )
    lowered = lower(Pipeline(ws, [step], description=description))
    if any("$AZUREML_DATAREFERENCE_" in str(a) for a in arguments):
        return  # such tokens must name an input: a compile error, covered in test_validation
    assert lowered.problems == []
    source = render_dag(lowered, "prop", script_dir.parent / "dags", origin=name)
    tree = ast.parse(source)
    assert [type(n).__name__ for n in tree.body] == [
        "Expr",
        "ImportFrom",
        "ImportFrom",
        "ImportFrom",
        "Assign",
        "With",
    ]
    calls = _operator_calls(tree)
    step_call = next(c for c in calls if c.func.id == "PythonScriptStepOperator")
    kwargs = {k.arg: k.value for k in step_call.keywords}
    assert ast.literal_eval(kwargs["step_name"]) == name
    assert ast.literal_eval(kwargs["task_display_name"]) == name
    rendered_args = ast.literal_eval(kwargs["arguments"])
    assert rendered_args[:-1] == arguments and rendered_args[-1] == {"param": param_name}
    assert [type(a) for a in rendered_args[:-1]] == [type(a) for a in arguments]
    dag_call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DAG"
    )
    dag_kwargs = {k.arg: k.value for k in dag_call.keywords}
    assert ast.literal_eval(dag_kwargs["description"]) == ((description or "")[:200] or None)
    param = next(
        v
        for k, v in zip(dag_kwargs["params"].keys, dag_kwargs["params"].values, strict=True)
        if ast.literal_eval(k) == param_name
    )
    assert ast.literal_eval(param.args[0]) == param_default
    assert name in tree.body[0].value.value  # the raw docstring, exactly


# Path-like values: folder and file names, datastore paths and output names. Each example writes a
# real script in a real folder (the compiler checks the script exists), so this runs fewer examples.
PATH_EXAMPLES = max(EXAMPLES // 4, 1)
file_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
    min_size=1,
    max_size=24,
).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)
segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00:"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
identifier = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


@settings(max_examples=PATH_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    folder=file_name,
    script=file_name,
    path_on_datastore=st.lists(segment, min_size=1, max_size=4).map("/".join),
    reference_name=identifier,
    output=identifier,
    output_name=st.one_of(st.none(), identifier),
)
def test_every_path_reaches_the_dag_as_a_literal(
    project, ws, folder, script, path_on_datastore, reference_name, output, output_name
):
    import tempfile
    from pathlib import Path

    from mlpipe_provider.sdk import DataReference, PipelineData

    source = Path(tempfile.mkdtemp(dir=project)) / folder
    source.mkdir()
    (source / script).write_text("print(1)\n", encoding="utf-8")
    raw = DataReference(
        ws.get_default_datastore(),
        data_reference_name=reference_name,
        path_on_datastore=path_on_datastore,
    )
    out_data = PipelineData(output, output_name=output_name)
    step = PythonScriptStep(
        script,
        name="step",
        arguments=["--in", raw, "--out", out_data],
        inputs=[raw],
        outputs=[out_data],
        source_directory=str(source),
    )
    lowered = lower(Pipeline(ws, [step]))
    if reference_name == output:
        # one step may not name an input and an output alike: its script could not tell them apart
        assert any("names both an input and an output" in p for p in lowered.problems)
        return
    assert lowered.problems == []
    dags = project / "dags"
    source_text = render_dag(lowered, "paths", dags)
    tree = ast.parse(source_text)
    assert [type(n).__name__ for n in tree.body] == [
        "Expr",
        "ImportFrom",
        "ImportFrom",
        "ImportFrom",
        "Assign",
        "With",
    ]
    step_call = next(c for c in _operator_calls(tree) if c.func.id == "PythonScriptStepOperator")
    wanted = {"script_name", "source_directory", "inputs", "outputs", "arguments"}
    kwargs = {k.arg: ast.literal_eval(k.value) for k in step_call.keywords if k.arg in wanted}
    assert kwargs["script_name"] == script
    assert (dags / kwargs["source_directory"]).resolve() == source.resolve()
    (rendered_input,) = kwargs["inputs"]
    assert rendered_input["name"] == reference_name
    assert rendered_input["path_on_datastore"] == path_on_datastore
    (rendered_output,) = kwargs["outputs"]
    assert rendered_output["name"] == output
    assert rendered_output["output_name"] == (output_name or output)
    assert kwargs["arguments"] == ["--in", {"input": reference_name}, "--out", {"output": output}]
