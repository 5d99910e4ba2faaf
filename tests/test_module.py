"""Modules: the workspace registry, ModuleStep resolution and checks, TaskGroups, real DAG runs.

A module ``upper`` is published from ``src/``: it reads input port ``raw`` and writes output port
``shouted``; a PythonScriptStep ``tail`` reads what the module step wrote. Scripts append their
name to $MLPIPE_TEST_CALLS so a test sees exactly which steps executed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, write_script

from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import (
    DataReference,
    InputPortDef,
    Module,
    ModuleStep,
    ModuleVersion,
    OutputPortDef,
    Pipeline,
    PipelineData,
    PythonScriptStep,
)

UPPER = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("upper\\n")
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    text = open(src).read().upper() + os.environ.get("AML_PARAMETER_suffix", "")
    open(os.path.join(out, "text.txt"), "w").write(text + "{marker}")
"""
TAIL = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("tail\\n")
    os.makedirs(sys.argv[2], exist_ok=True)
    text = open(os.path.join(sys.argv[1], "text.txt")).read()
    open(os.path.join(sys.argv[2], "copy.txt"), "w").write(text)
"""


class Harness:
    def __init__(self, ws, project: Path, run_dag, monkeypatch):
        self.ws, self.project, self._run_dag = ws, project, run_dag
        self.calls = project / "calls.log"
        monkeypatch.setenv("MLPIPE_TEST_CALLS", str(self.calls))
        self.store = ws.get_default_datastore()
        self.src = project / "src"
        write_script(self.src, "upper.py", UPPER.format(marker=""))
        write_script(project / "steps", "tail.py", TAIL)
        path = ws._dir / "datastores" / "workspaceblobstore" / "inputs" / "text.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("hello module\n")
        self.raw_port = InputPortDef(name="raw", default_datastore_mode="mount")
        self.opt_port = InputPortDef(name="extra", is_optional=True)
        self.out_port = OutputPortDef(name="shouted", default_datastore_name="workspaceblobstore")
        self.module = Module.create(ws, name="upper", description="Upper-case a text file")

    def publish(self, version: str | None = "1", marker: str = "", **kwargs):
        if marker:
            write_script(self.src, "upper.py", UPPER.format(marker=marker))
        kwargs.setdefault("is_default", True)
        return self.module.publish_python_script(
            "upper.py",
            "upper-cases",
            inputs=[self.raw_port, self.opt_port],
            outputs=[self.out_port],
            params={"suffix": ""},
            version=version,
            source_directory=str(self.src),
            arguments=[self.raw_port, self.out_port],
            **kwargs,
        )

    def raw(self):
        return DataReference(
            self.store, data_reference_name="raw_text", path_on_datastore="inputs/text.txt"
        )

    def pipeline(self, step_name: str = "shout", **step_kwargs) -> Pipeline:
        shouted = PipelineData("shouted_text", datastore=self.store)
        copied = PipelineData("copied", datastore=self.store)
        step_kwargs.setdefault("module", self.module)
        step_kwargs.setdefault("inputs_map", {"raw": self.raw()})
        step = ModuleStep(name=step_name, outputs_map={"shouted": shouted}, **step_kwargs)
        tail = PythonScriptStep(
            "tail.py",
            name="tail",
            arguments=[shouted, copied],
            inputs=[shouted],
            outputs=[copied],
            source_directory=str(self.project / "steps"),
        )
        return Pipeline(self.ws, [tail, step])

    def run(self, pipeline: Pipeline, dag_id: str = "module_dag", conf: dict | None = None):
        self.calls.write_text("")
        dag_run, records = self._run_dag(pipeline, dag_id=dag_id, conf=conf)
        assert str(dag_run.state) == "success", records
        return self.calls.read_text().split(), records

    def copied_text(self, records) -> str:
        state, record = records["tail"]
        if state == "skipped":
            record = records["tail"][1]
        location = record["outputs"]["copied"]
        root = self.ws._dir / "datastores" / "workspaceblobstore"
        return (root / location["path"] / "copy.txt").read_text()


@pytest.fixture
def h(ws, project, run_dag, monkeypatch):
    return Harness(ws, project, run_dag, monkeypatch)


# --- real runs ---------------------------------------------------------------------------------


def test_module_step_runs_hands_its_output_to_a_script_step_and_then_reuses(h):
    h.publish()
    executed, first = h.run(h.pipeline())
    assert executed == ["upper", "tail"]
    assert h.copied_text(first) == "HELLO MODULE\n"
    # the step's tasks live in a TaskGroup named after the step
    state, record = first["shout.module"]
    assert state == "success" and set(record["outputs"]) == {"shouted_text"}
    assert not record.get("reused")
    assert first["tail"][1]["step_name"] == "tail"

    executed, second = h.run(h.pipeline())
    assert executed == []
    assert second["shout.module"][0] == "skipped"
    reused = second["shout.module"][1]
    assert reused["reused"] and reused["reused_run_id"] == record["step_run_id"]
    assert h.copied_text(second) == "HELLO MODULE\n"

    from mlpipe_provider.embedded.status import merge_reuse_decisions

    tasks = {
        task_id: {"state": state, "record": value} for task_id, (state, value) in second.items()
    }
    merged = merge_reuse_decisions(tasks)
    assert set(merged) == {"shout.module", "tail"}
    assert merged["shout.module"]["status"] == "Finished"
    assert merged["shout.module"]["record"]["reused_run_id"] == record["step_run_id"]


def test_editing_the_source_folder_does_not_change_a_published_version(h):
    version = h.publish()
    h.run(h.pipeline())
    write_script(h.src, "upper.py", UPPER.format(marker="!edited"))
    executed, records = h.run(h.pipeline())
    assert executed == []  # the step runs the snapshot, which did not change
    assert "!edited" not in (version._snapshot_dir / "upper.py").read_text()
    with pytest.raises(
        UserErrorException,
        match="version '1' is already published with a different source_directory content",
    ):
        h.publish("1")
    h.publish("2")  # the edit, published as a new default version
    executed, records = h.run(h.pipeline())
    assert executed == ["upper", "tail"]
    assert h.copied_text(records) == "HELLO MODULE\n!edited"


def test_default_version_and_explicit_version(h):
    h.publish("1", marker="v1")
    h.publish("2", marker="v2", is_default=False)
    assert h.module.default_version == "1"
    assert ModuleStep(module=h.module, inputs_map={"raw": h.raw()}).module_version.version == "1"
    pinned = ModuleStep(module=h.module, version="2", inputs_map={"raw": h.raw()})
    assert pinned.module_version.version == "2"
    assert pinned.name == "upper"  # v1 names the step after the module by default
    by_object = ModuleStep(module_version=h.module.resolve("2"), inputs_map={"raw": h.raw()})
    assert by_object.module_version.version == "2"

    _, records = h.run(h.pipeline(version="2"))
    assert h.copied_text(records) == "HELLO MODULE\nv2"
    _, records = h.run(h.pipeline())
    assert h.copied_text(records) == "HELLO MODULE\nv1"

    h.module.set_default_version("2")
    again = Module.get(h.ws, name="upper")
    assert again.default_version == "2" and again.resolve().version == "2"
    assert [d.version for d in again.module_version_list()] == ["1", "2"]


def test_resolution_without_default_takes_the_highest_numeric_version_and_skips_disabled(h):
    h.publish("2", marker="a", is_default=False)
    h.publish("10", marker="b", is_default=False)
    assert h.module.default_version is None
    assert h.module.resolve().version == "10"
    h.module.resolve("10").disable()
    assert h.module.resolve().version == "2"
    with pytest.raises(UserErrorException, match="version '10' is disabled"):
        ModuleStep(module=h.module, version="10", inputs_map={"raw": h.raw()})
    h.module.disable()
    with pytest.raises(UserErrorException, match="module 'upper' is disabled"):
        ModuleStep(module=h.module, inputs_map={"raw": h.raw()})
    h.module.enable()
    assert h.module.status == "Active"


def test_unknown_version_is_an_error_naming_step_and_field(h):
    h.publish("1")
    with pytest.raises(UserErrorException) as err:
        ModuleStep(module=h.module, version="9", name="shout", inputs_map={"raw": h.raw()})
    message = str(err.value)
    assert "step 'shout', field 'version'" in message
    assert "has no version '9'" in message and "'1'" in message
    with pytest.raises(UserErrorException, match="field 'module_version'.*not both"):
        ModuleStep(module=h.module, module_version=h.module.resolve())
    with pytest.raises(UserErrorException, match="no published"):
        ModuleStep(module=Module.create(h.ws, "empty", "nothing published"))


def test_port_and_parameter_mistakes_are_compile_errors_naming_step_and_field(h):
    h.publish("1")
    shouted = PipelineData("shouted_text", datastore=h.store)
    other = PipelineData("other", datastore=h.store)
    step = ModuleStep(
        module=h.module,
        name="shout",
        inputs_map={"nope": h.raw()},
        outputs_map={"shouted": shouted, "wrong": other},
        params={"suffix": "!", "colour": "red"},
    )
    problems = Pipeline(h.ws, [step]).validate()
    text = "\n".join(problems)
    assert (
        "step 'shout', field \"inputs_map['nope']\": module 'upper' version '1' has no input port 'nope'"
        in text
    )
    assert "step 'shout', field 'inputs_map': required input port 'raw'" in text
    assert (
        "step 'shout', field \"outputs_map['wrong']\": module 'upper' version '1' has no output port 'wrong'"
        in text
    )
    assert (
        "step 'shout', field \"params['colour']\": module 'upper' version '1' declares no parameter 'colour'"
        in text
    )
    # the published arguments use port 'raw', which this step does not bind
    assert "step 'shout', field 'arguments[0]': the arguments use input port 'raw'" in text
    from compiler.compile import compile_pipeline

    with pytest.raises(PipelineValidationError):
        compile_pipeline(Pipeline(h.ws, [step]), "bad", h.project / "dags")


def test_wrong_types_in_maps_fail_when_the_step_is_built(h):
    h.publish("1")
    with pytest.raises(
        UserErrorException, match=r"field \"inputs_map\['raw'\]\": must be a DataReference"
    ):
        ModuleStep(module=h.module, name="shout", inputs_map={"raw": "inputs/text.txt"})
    with pytest.raises(
        UserErrorException, match=r"outputs_map\['shouted'\]\": must be PipelineData"
    ):
        ModuleStep(
            module=h.module,
            name="shout",
            inputs_map={"raw": h.raw()},
            outputs_map={"shouted": h.raw()},
        )
    with pytest.raises(UserErrorException, match="field 'inputs_map': must be a dict"):
        ModuleStep(module=h.module, name="shout", inputs_map=[h.raw()])


def test_a_changed_snapshot_is_refused_at_compile_time(h):
    version = h.publish("1")
    (version._snapshot_dir / "upper.py").write_text("print('tampered')\n")
    problems = h.pipeline().validate()
    assert any(
        p.startswith(
            "step 'shout', field 'module_version': the snapshot of module 'upper' version '1'"
        )
        for p in problems
    ), problems


# --- the registry --------------------------------------------------------------------------------


def test_publishing_is_idempotent_and_a_changed_version_is_refused(h):
    first = h.publish("1")
    files = sorted(p for p in (h.ws._dir / "modules").rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    again = h.publish("1")
    assert again == first and again.module_version_id == first.module_version_id
    assert [p.stat().st_mtime_ns for p in files] == stamps  # nothing rewritten
    assert Module.create(h.ws, "upper", "Upper-case a text file").id == h.module.id
    assert h.publish(None) == first  # identical content: the existing version
    with pytest.raises(UserErrorException, match="already published with a different params"):
        h.module.publish_python_script(
            "upper.py",
            "upper-cases",
            inputs=[h.raw_port, h.opt_port],
            outputs=[h.out_port],
            params={"suffix": "?"},
            version="1",
            source_directory=str(h.src),
            arguments=[h.raw_port, h.out_port],
        )
    write_script(h.src, "upper.py", UPPER.format(marker="x"))
    assert h.publish(None, is_default=False).version == "2"  # new content, next free number
    assert ModuleVersion.get(h.ws, first.module_version_id) == first
    assert first.module().id == h.module.id
    data = json.loads((h.ws._dir / "modules" / "upper" / "module.json").read_text())
    assert [v["version"] for v in data["versions"]] == ["1", "2"]
    assert data["default_version"] == "1"


def test_module_lookup_errors_and_interface(h):
    version = h.publish("1")
    with pytest.raises(UserErrorException, match="no module with name 'missing'.*'upper'"):
        Module.get(h.ws, name="missing")
    assert Module.get(h.ws, module_id=h.module.id) == h.module
    interface = version.interface
    assert [p["name"] for p in interface["inputs"]] == ["raw", "extra"]
    assert interface["arguments"] == [{"input_port": "raw"}, {"output_port": "shouted"}]
    with pytest.raises(UserErrorException, match="script not found"):
        h.module.publish_python_script("missing.py", "x", [], [], source_directory=str(h.src))
    with pytest.raises(UserErrorException, match="InputPortDef name 'bad-name'"):
        InputPortDef("bad-name")
    secret = h.project / "secret.txt"
    secret.write_text("not part of the module")
    (h.src / "leak.txt").symlink_to(secret)
    with pytest.raises(UserErrorException, match="'leak.txt' in source_directory is a symlink"):
        h.publish("3")


# --- TaskGroups ------------------------------------------------------------------------------------


def test_generated_dag_has_a_task_group_named_after_the_step(h):
    from airflow.dag_processing.dagbag import DagBag

    from compiler.compile import compile_pipeline

    h.publish("1")
    compiled = compile_pipeline(h.pipeline(step_name="Shout it!"), "grouped", h.project / "dags")
    compiled.write()
    bag = DagBag(dag_folder=str(compiled.path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("grouped")
    (group_id,) = [g for g in dag.task_group_dict if g]
    assert group_id.startswith("Shout_it_")  # the step's task id, made a valid group id
    group = dag.task_group_dict[group_id]
    assert group.tooltip == "ModuleStep Shout it!: module upper, version 1"
    assert {t.task_id for t in group} == {f"{group_id}.module"}
    op = dag.get_task(f"{group_id}.module")
    assert op.task_display_name == "Shout it!"
    assert dag.get_task("tail").inputs[0]["producer"] == op.task_id
    assert op.source_directory.endswith("modules/upper/versions/1/snapshot")
    assert compile_pipeline(
        h.pipeline(step_name="Shout it!"), "grouped", h.project / "dags"
    ).is_current()


def test_group_ids_avoid_dots_and_collisions_in_a_real_run(h):
    """A module step named 'a.b' next to a script step named 'a_b': both run, data flows."""
    h.publish("1")
    shouted = PipelineData("shouted_text", datastore=h.store)
    copied = PipelineData("copied", datastore=h.store)
    module_step = ModuleStep(
        module=h.module, name="a.b", inputs_map={"raw": h.raw()}, outputs_map={"shouted": shouted}
    )
    tail = PythonScriptStep(
        "tail.py",
        name="a_b",
        arguments=[shouted, copied],
        inputs=[shouted],
        outputs=[copied],
        source_directory=str(h.project / "steps"),
    )
    executed, records = h.run(Pipeline(h.ws, [tail, module_step]), dag_id="collide")
    assert executed == ["upper", "tail"]
    assert records["a_b_2.module"][0] == "success"
    assert records["a_b"][0] == "success"
    location = records["a_b"][1]["outputs"]["copied"]
    root = h.ws._dir / "datastores" / "workspaceblobstore"
    assert (root / location["path"] / "copy.txt").read_text() == "HELLO MODULE\n"


def test_script_dags_have_no_task_groups_and_the_module_example_has_one():
    from airflow.dag_processing.dagbag import DagBag

    for name in ("seed.py", "prep_train_evaluate.py"):  # kinds without group=True: unchanged
        assert "TaskGroup" not in (REPO / "dags" / name).read_text()
    bag = DagBag(dag_folder=str(REPO / "dags" / "module_pipeline.py"))
    assert not bag.import_errors
    dag = bag.get_dag("module_pipeline")
    assert "clean" in dag.task_group_dict
    assert {"mlpipe.plan", "clean.module", "word_counts"} == set(dag.task_ids)
    snapshot = (REPO / "dags" / dag.get_task("clean.module").source_directory).resolve()
    assert (snapshot / "clean_text.py").is_file()
    assert snapshot.is_relative_to(REPO / "examples" / ".mlpipe" / "modules")


def test_example_runs_on_the_embedded_airflow_and_reuses_the_module_step(tmp_path, monkeypatch):
    """Experiment.submit end to end: the runner's status merge sees the grouped task ids."""
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "module"
    shutil.copytree(
        REPO / "examples" / "module", folder, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    for _ in (1, 2):
        result = subprocess.run(
            [sys.executable, "pipeline.py"], cwd=folder, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "'distinct_words': 9" in result.stdout, result.stdout

    monkeypatch.chdir(folder)
    from mlpipe_provider.sdk import Experiment, Workspace

    ws = Workspace.from_config()
    second, first = list(Experiment(ws, "module-pipeline").get_runs())
    assert first.get_status() == second.get_status() == "Finished"
    (first_clean,) = first.find_step_run("clean")
    (second_clean,) = second.find_step_run("clean")
    assert first_clean.get_status() == second_clean.get_status() == "Finished"
    assert "azureml.reusedrunid" not in first_clean.get_properties()
    assert second_clean.get_properties()["azureml.reusedrunid"] == first_clean.id
    assert second_clean.get_properties()["mlpipe.airflow.task_id"] == "clean.module"
    (second_counts,) = second.find_step_run("word_counts")
    assert second_counts.get_metrics() == {"distinct_words": 9, "total_words": 11}


def test_an_unbound_optional_input_port_leaves_the_arguments_with_its_option(h):
    """As a designer component's ``[--port {inputs.port}]``: the script sees the option absent."""
    version = h.module.publish_python_script(
        "upper.py",
        "upper-cases",
        inputs=[h.raw_port, h.opt_port],
        outputs=[h.out_port],
        version="optional",
        source_directory=str(h.src),
        arguments=["--raw", h.raw_port, "--extra", h.opt_port, "--shouted", h.out_port],
    )
    shouted = PipelineData("shouted_text", datastore=h.store)
    step = ModuleStep(
        module_version=version, inputs_map={"raw": h.raw()}, outputs_map={"shouted": shouted}
    )
    assert step.arguments[0::2] == ["--raw", "--shouted"] and not step.unbound_ports
    bound = ModuleStep(
        module_version=version,
        inputs_map={"raw": h.raw(), "extra": h.raw()},
        outputs_map={"shouted": shouted},
    )
    assert bound.arguments[0::2] == ["--raw", "--extra", "--shouted"]
