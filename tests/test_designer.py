"""The designer's backend without HTTP: reading pipeline files into graphs, writing graphs back
as v1 programs (round trip, byte-identical when unchanged, no code from user strings), and the
pipelines folder's guards (paths, conflicts, hand-written files). The HTTP side, its auth and the
page are tested against a real Airflow in test_designer_ui.py."""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

import pytest

from compiler.loader import load_pipelines
from compiler.lower import lower
from compiler.naming import task_id_for
from mlpipe_provider.designer import files, service
from mlpipe_provider.designer.graph import DataRef, Graph, PipelineDataNode, Step
from mlpipe_provider.designer.reader import read_graph
from mlpipe_provider.designer.writer import GraphProblems, write_pipeline

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = [
    "prep_train_evaluate",
    "module",
    "docker",
    "data_transfer",
    "command",
    "distributed",
    "builtins",
]


@pytest.fixture
def root(tmp_path):
    """A copy of examples/ (its workspace, modules and pipelines) as the pipelines folder."""
    dest = tmp_path / "pipelines"
    shutil.copytree(
        REPO / "examples", dest, ignore=shutil.ignore_patterns("__pycache__", "datastores")
    )
    return dest.resolve()


def _graph_of(path: Path) -> tuple[Graph, object]:
    [found] = load_pipelines(str(path))
    return read_graph(found.pipeline, found.dag_id, path.parent), found.pipeline


@pytest.mark.parametrize("name", ["prep_train_evaluate", "module", "docker", "builtins"])
def test_written_file_compiles_to_the_same_graph_and_the_same_steps(root, name):
    original = root / name / "pipeline.py"
    graph, pipeline = _graph_of(original)
    text = write_pipeline(graph)
    assert text == write_pipeline(graph)  # deterministic
    copy = root / name / "designed.py"
    copy.write_text(text)
    again, pipeline_again = _graph_of(copy)
    assert again == graph
    before, after = lower(pipeline), lower(pipeline_again)
    assert after.problems == []
    assert after.steps == before.steps  # what runs is the same, spec for spec
    assert after.parameters == before.parameters


@pytest.mark.parametrize("name", EXAMPLES)
def test_open_then_save_unchanged_keeps_every_example_byte_for_byte(root, name):
    relative = f"{name}/pipeline.py"
    before = (root / relative).read_bytes()
    opened = service.open_pipeline(root, relative)
    graph = Graph.model_validate(opened["graph"])
    saved = service.save_pipeline(root, relative, graph, opened["hash"], {"nodes": {}})
    assert saved["written"] is False
    assert (root / relative).read_bytes() == before
    assert files.layout_path(root / relative).is_file()


def test_steps_the_designer_cannot_write_are_shown_read_only(root):
    opened = service.open_pipeline(root, "command/pipeline.py")
    kinds = {s["name"]: (s["kind"], s["editable"]) for s in opened["graph"]["steps"]}
    assert kinds == {"train": ("CommandStep", False), "count": ("CommandStep", False)}
    graph = Graph.model_validate(opened["graph"])
    graph.description = "changed"
    with pytest.raises(GraphProblems, match="step 'train', field 'kind'"):
        service.save_pipeline(root, "command/copy.py", graph, None, None)


HOSTILE = "x'); import os; os.system('touch PWNED') #\n\"\"\"\\"


def _hostile_graph(param: str = "p") -> Graph:
    return Graph(
        variable="hostile",
        description=HOSTILE,
        parameters=[{"name": param, "default": HOSTILE}],
        data_references=[
            {"name": "raw", "datastore": "workspaceblobstore", "path_on_datastore": HOSTILE}
        ],
        pipeline_data=[{"name": "out", "datastore": "workspaceblobstore"}],
        steps=[
            Step(
                id=task_id_for("step" + HOSTILE),  # the id the reader derives from the name
                name="step" + HOSTILE,
                kind="PythonScriptStep",
                script_name="prep.py",
                source_directory="src",
                arguments=[HOSTILE, DataRef(parameter=param), DataRef(data="out")],
                inputs=["raw"],
                outputs=["out"],
                compute_target="cpu-cluster",
                environment_variables={"HOSTILE": HOSTILE},
            )
        ],
    )


def test_hostile_strings_stay_data(root):
    graph = _hostile_graph()
    text = write_pipeline(graph)
    tree = ast.parse(text)
    for node in tree.body:  # imports and assignments of SDK calls, nothing else
        assert isinstance(node, (ast.ImportFrom, ast.Assign)), ast.dump(node)[:200]
    called = {
        n.func.attr if isinstance(n.func, ast.Attribute) else n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    }
    assert called <= {
        "from_config",
        "get",
        "DataReference",
        "PipelineData",
        "PipelineParameter",
        "PythonScriptStep",
        "RunConfiguration",
        "Pipeline",
    }
    path = root / "prep_train_evaluate" / "hostile.py"
    path.write_text(text)
    again, pipeline = _graph_of(path)
    assert not (root / "prep_train_evaluate" / "PWNED").exists()
    assert again == graph
    assert pipeline.description == HOSTILE
    # a name the SDK refuses is refused when the file loads, still without running anything
    path.write_text(write_pipeline(_hostile_graph(param=HOSTILE)))
    with pytest.raises(Exception, match="PipelineParameter name"):
        _graph_of(path)
    assert not (root / "prep_train_evaluate" / "PWNED").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "../x.py",
        "/etc/x.py",
        "a/../../x.py",
        ".hidden.py",
        "a\\b.py",
        "x.txt",
        "",
        "a//b.py",
        ".mlpipe/config.py",
        "a/.git/x.py",
        "x.py\x00",
    ],
)
def test_paths_outside_the_pipelines_folder_are_refused(root, bad):
    with pytest.raises(files.PathRefused):
        files.pipeline_path(root, bad)


def test_a_symlink_out_of_the_folder_is_refused(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "escape")
    with pytest.raises(files.PathRefused, match="outside"):
        files.pipeline_path(root, "escape/x.py")


def _new_graph() -> Graph:
    return Graph(
        variable="designed",
        description="made in the designer",
        parameters=[{"name": "test_fraction", "default": 0.3}],
        data_references=[
            {
                "name": "raw_data",
                "datastore": "workspaceblobstore",
                "path_on_datastore": "iris/iris.csv",
            }
        ],
        pipeline_data=[{"name": "prepared", "datastore": "workspaceblobstore"}],
        steps=[
            Step(
                id="prep",
                name="prep",
                kind="PythonScriptStep",
                script_name="prep.py",
                source_directory="src",
                arguments=[
                    "--raw",
                    DataRef(data="raw_data"),
                    "--out",
                    DataRef(data="prepared"),
                    "--test-fraction",
                    DataRef(parameter="test_fraction"),
                ],
                inputs=["raw_data"],
                outputs=["prepared"],
                compute_target="cpu-cluster",
                allow_reuse=False,
            )
        ],
    )


def test_save_new_file_then_conflicts(root):
    relative = "prep_train_evaluate/designed.py"
    saved = service.save_pipeline(
        root, relative, _new_graph(), None, {"nodes": {"prep": {"x": 1, "y": 2}}}
    )
    assert saved["written"] is True
    text = (root / relative).read_text()
    assert saved["hash"] == files.file_hash(text)
    opened = service.open_pipeline(root, relative)
    assert opened["designer_file"] is True
    assert opened["layout"] == {"nodes": {"prep": {"x": 1, "y": 2}}}
    assert Graph.model_validate(opened["graph"]) == _new_graph()
    # a second "new file" under the same name, and a save from a stale copy, are conflicts
    with pytest.raises(files.Conflict, match="already exists"):
        service.save_pipeline(root, relative, _new_graph(), None, None)
    (root / relative).write_text(text + "# edited meanwhile\n")
    edited = _new_graph()
    edited.steps[0].compute_target = "gpu-cluster"
    with pytest.raises(files.Conflict, match="changed on disk"):
        service.save_pipeline(root, relative, edited, saved["hash"], None)
    # from the current version, the designer's own file is rewritten
    current = files.file_hash((root / relative).read_text())
    result = service.save_pipeline(root, relative, edited, current, None)
    assert result["written"] is True
    assert "compute_target='gpu-cluster'" in (root / relative).read_text()


def test_an_edited_hand_written_file_is_not_overwritten(root):
    relative = "prep_train_evaluate/pipeline.py"
    opened = service.open_pipeline(root, relative)
    graph = Graph.model_validate(opened["graph"])
    graph.steps[0].allow_reuse = False
    with pytest.raises(files.Conflict, match="written by hand"):
        service.save_pipeline(root, relative, graph, opened["hash"], None)


def test_validation_names_the_step_and_field(root):
    graph = _new_graph()
    graph.steps[0].compute_target = "no-such-target"
    graph.steps[0].arguments.append(DataRef(parameter="missing"))
    result = service.validate_graph(root, "prep_train_evaluate/designed.py", graph)
    assert {(p["step"], p["field"]) for p in result["problems"]} == {
        ("prep", "arguments[6]")
    }  # the writer's own check comes first and stops there
    graph.steps[0].arguments.pop()
    result = service.validate_graph(root, "prep_train_evaluate/designed.py", graph)
    assert [(p["step"], p["field"]) for p in result["problems"]] == [("prep", "compute_target")]
    with pytest.raises(GraphProblems):
        service.save_pipeline(root, "prep_train_evaluate/designed.py", graph, None, None)
    assert not (root / "prep_train_evaluate" / "designed.py").exists()
    assert not list((root / "prep_train_evaluate").glob(".designer-*"))


def test_palette_lists_scripts_modules_datastores_and_gpu_pools(root):
    from mlpipe_provider.designer.palette import palette

    data = palette(root / "prep_train_evaluate", root)
    assert {"source_directory": "src", "script_name": "prep.py"} in data["scripts"]
    from mlpipe_provider import builtin_modules

    listed = {m["module"]: m for m in data["modules"]}
    assert sorted(listed) == sorted(["clean_text", *builtin_modules.names()])  # + the built-ins
    assert listed["clean_text"]["inputs"][0]["name"] == "raw"
    assert {d["name"] for d in data["datastores"]} == {"archive", "workspaceblobstore"}
    gpu = next(t for t in data["compute_targets"] if t["name"] == "gpu-cluster")
    assert gpu["gpus"] == 1 and gpu["pool"] == "gpu-cluster" and gpu["pool_slots"] == 1


def test_committed_designer_screenshot_is_in_the_readme_and_docs():
    image = REPO / "docs" / "images" / "designer.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 20_000
    assert "docs/images/designer.png" in (REPO / "README.md").read_text()
    assert "images/designer.png" in (REPO / "docs" / "designer.md").read_text()


def test_a_module_step_made_in_the_designer_validates_and_saves(root):
    graph = Graph(
        variable="cleaning",
        data_references=[
            {"name": "raw_text", "datastore": "workspaceblobstore", "path_on_datastore": "t.txt"}
        ],
        pipeline_data=[{"name": "clean_text_cleaned", "datastore": "workspaceblobstore"}],
        steps=[
            Step(
                id="clean_text",
                name="clean_text",
                kind="ModuleStep",
                module="clean_text",
                inputs_map={"raw": "raw_text"},
                outputs_map={"cleaned": "clean_text_cleaned"},
                params={"lowercase": False},
                compute_target="cpu-cluster",
            )
        ],
    )
    relative = "module/cleaning.py"
    assert service.validate_graph(root, relative, graph)["problems"] == []
    service.save_pipeline(root, relative, graph, None, None)
    again, pipeline = _graph_of(root / relative)
    assert again == graph
    [spec] = lower(pipeline).steps.values()
    assert spec["kind"] == "module"


def test_the_writer_refuses_inconsistent_graphs_naming_step_and_field():
    graph = _new_graph()
    graph.pipeline_data.append(PipelineDataNode(name="raw_data", datastore="workspaceblobstore"))
    graph.steps[0].inputs.append("nowhere")
    graph.variable = "class"
    with pytest.raises(GraphProblems) as caught:
        write_pipeline(graph)
    assert caught.value.problems == [
        "pipeline, field 'variable': 'class' is not a Python identifier",
        "pipeline, field 'data': the name 'raw_data' is used twice",
        "step 'prep', field 'inputs': unknown data 'nowhere'",
    ]


def test_the_plugin_does_not_load_the_designer_until_it_is_asked():
    """Every Airflow process imports the plugin; only the API server's first designer request
    builds the app (and with it FastAPI routes, the compiler and the SDK)."""
    import subprocess
    import sys

    probe = (
        "import sys, mlpipe_provider.plugin\n"
        "heavy = ('compiler', 'mlpipe_provider.sdk', 'mlpipe_provider.designer.app')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("message", "step", "field"),
    [
        ("step 'prep', field 'compute_target': unknown", "prep", "compute_target"),
        ("step 'train' (task 'train_2'), field 'arguments[3]': x", "train", "arguments[3]"),
        ("/w/p.py:12: step \"it's\", field 'inputs': x", "it's", "inputs"),
        ("pipeline, field 'steps': the pipeline has no steps", None, None),
    ],
)
def test_problems_are_split_into_step_and_field_for_the_canvas(message, step, field):
    entry = service.problem_entry(message)
    assert (entry["step"], entry["field"], entry["message"]) == (step, field, message)


def test_palette_gives_typed_parameter_forms_from_the_module_interface(root):
    """A built-in's form comes from its catalogue (allowed values, range, required); a
    registered module's from its defaults' types. Every spec is plain JSON for the page."""
    import json

    from mlpipe_provider.designer.palette import palette
    from mlpipe_provider.sdk import Workspace, install_builtin_modules

    install_builtin_modules(
        Workspace(_workspace_dir=root / ".mlpipe"), names=["Split Data", "Clean Missing Data"]
    )
    modules = {m["module"]: m for m in palette(root / "prep_train_evaluate", root)["modules"]}
    split = modules["Split Data"]["param_specs"]
    assert split["fraction"] == {
        "type": "float",
        "default": 0.5,
        "label": "Fraction of rows in the first output",
        "min": 0.0,
        "max": 1.0,
    }
    assert split["randomized_split"]["type"] == "bool"
    mode = modules["Clean Missing Data"]["param_specs"]["cleaning_mode"]
    assert mode["allowed"][0] == "Remove entire row" and "Replace with mean" in mode["allowed"]
    own = modules["clean_text"]
    assert set(own["param_specs"]) == set(own["params"])
    for name, default in own["params"].items():
        kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(default)]
        assert own["param_specs"][name] == {"type": kind, "default": default}
    json.dumps(modules)  # nothing the page cannot read


def _register_datasets(root: Path) -> object:
    from mlpipe_provider.sdk import Dataset, Datastore, Workspace

    ws = Workspace.from_config(path=str(root / ".mlpipe"))
    store = Datastore.get(ws, "workspaceblobstore")
    Dataset.File.from_files(path=(store, "reviews/"), validate=False).register(ws, "reviews")
    Dataset.File.from_files(path=(store, "reviews2/"), validate=False).register(
        ws, "reviews", create_new_version=True
    )
    Dataset.Tabular.from_delimited_files(path=(store, "iris.csv"), validate=False).register(
        ws, "iris"
    )
    return ws


def test_registered_datasets_are_in_the_palette_and_round_trip_as_source_nodes(root):
    """A registered dataset consumed by name is a source node: read from a v1-style file (latest
    stays latest, a pinned version stays pinned), written back as ``Dataset.get_by_name(...)
    .as_named_input(...)`` with its mode, and lowered to the same dataset inputs."""
    from mlpipe_provider.designer.palette import palette

    _register_datasets(root)
    listed = {d["name"]: d for d in palette(root / "prep_train_evaluate", root)["datasets"]}
    assert listed["reviews"]["versions"] == [1, 2] and listed["reviews"]["type"] == "file"
    assert listed["iris"]["type"] == "tabular"

    hand_written = root / "prep_train_evaluate" / "with_datasets.py"
    hand_written.write_text(
        "from mlpipe_provider.sdk import Dataset, Pipeline, PythonScriptStep, Workspace\n"
        "ws = Workspace.from_config()\n"
        "reviews = Dataset.get_by_name(ws, name='reviews')\n"
        "iris = Dataset.get_by_name(ws, 'iris', version=1)\n"
        "step = PythonScriptStep(script_name='prep.py', source_directory='src',\n"
        "    arguments=['--reviews', reviews.as_named_input('reviews').as_download()],\n"
        "    inputs=[reviews.as_named_input('reviews').as_download(),\n"
        "            iris.as_named_input('iris_table')],\n"
        "    compute_target='cpu-cluster')\n"
        "pipeline = Pipeline(workspace=ws, steps=[step])\n"
    )
    graph, pipeline = _graph_of(hand_written)
    assert [d.model_dump() for d in graph.datasets] == [
        {
            "name": "reviews",
            "dataset": "reviews",
            "version": None,
            "mode": "download",
            "path_on_compute": None,
        },
        {
            "name": "iris_table",
            "dataset": "iris",
            "version": 1,
            "mode": "direct",
            "path_on_compute": None,
        },
    ]
    assert graph.steps[0].editable and graph.steps[0].inputs == ["reviews", "iris_table"]
    assert {e["source"] for e in graph.edges()} == {"data:reviews", "data:iris_table"}

    text = write_pipeline(graph)
    assert "Dataset.get_by_name(ws, name='reviews').as_named_input('reviews').as_download()" in text
    assert "Dataset.get_by_name(ws, name='iris', version=1).as_named_input('iris_table')" in text
    designed = root / "prep_train_evaluate" / "designed_datasets.py"
    designed.write_text(text)
    again, pipeline_again = _graph_of(designed)
    assert again == graph
    before, after = lower(pipeline), lower(pipeline_again)
    assert after.problems == [] and after.steps == before.steps


def test_dataset_nodes_are_checked_naming_the_field(root):
    _register_datasets(root)
    graph = Graph(
        variable="p",
        datasets=[
            {"name": "bad name", "dataset": "reviews"},
            {"name": "ok", "dataset": "reviews", "mode": "direct", "path_on_compute": "/x"},
        ],
        pipeline_data=[{"name": "cleaned", "datastore": "workspaceblobstore"}],
        steps=[
            Step(
                id="clean",
                name="clean",
                kind="ModuleStep",
                module="clean_text",
                inputs_map={"raw": "ok"},
                outputs_map={"cleaned": "cleaned"},
            )
        ],
    )
    with pytest.raises(GraphProblems) as caught:
        write_pipeline(graph)
    assert caught.value.problems == [
        "dataset 'bad name', field 'name': an input name starts with a letter or '_' and holds "
        "only letters, digits and '_'",
        "dataset 'ok', field 'path_on_compute': only a mounted or downloaded dataset has a path "
        "on the compute",
        "step 'clean', field 'inputs_map': a module port takes a DataReference or PipelineData, "
        "not the dataset 'ok'",
    ]
    # an unknown registered dataset is the compiler's own error, on the step that consumes it
    graph = Graph(
        variable="p",
        datasets=[{"name": "nope", "dataset": "not_registered"}],
        steps=[
            Step(
                id="prep",
                name="prep",
                kind="PythonScriptStep",
                script_name="prep.py",
                source_directory="src",
                inputs=["nope"],
            )
        ],
    )
    problems = service.validate_graph(root, "prep_train_evaluate/p.py", graph)["problems"]
    assert any("not_registered" in p["message"] for p in problems), problems
