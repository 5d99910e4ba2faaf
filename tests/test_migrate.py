"""``mlpipe migrate``: every import form, the report, and that nothing else in a file moves."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import mlpipe_provider.sdk as sdk
from mlpipe_provider.cli.main import main
from mlpipe_provider.cli.migrate import Finding, migrate_paths, migrate_source


def migrated(source: str) -> str:
    after, _ = migrate_source(textwrap.dedent(source))
    return after


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def test_from_import_moves_to_flat_namespace():
    assert (
        migrated("from azureml.core import Workspace, Experiment\n")
        == "from mlpipe_provider.sdk import Workspace, Experiment\n"
    )


@pytest.mark.parametrize(
    "module, names",
    [
        ("azureml.pipeline.core.graph", "PipelineParameter"),
        ("azureml.core.runconfig", "RunConfiguration"),
        ("azureml.core.compute", "ComputeTarget, AmlCompute"),
        ("azureml.core.compute_target", "ComputeTargetException"),
        ("azureml.pipeline.steps", "PythonScriptStep"),
        ("azureml.pipeline.core", "Pipeline, PipelineData"),
        ("azureml.data.data_reference", "DataReference"),
        ("azureml.core.conda_dependencies", "CondaDependencies"),
        ("azureml.core.datastore", "Datastore"),
        ("azureml.core", "Run"),
    ],
)
def test_any_submodule_depth(module, names):
    assert (
        migrated(f"from {module} import {names}\n") == f"from mlpipe_provider.sdk import {names}\n"
    )


def test_aliases_are_kept():
    assert (
        migrated("from azureml.core import Workspace as WS, Experiment as Exp\n")
        == "from mlpipe_provider.sdk import Workspace as WS, Experiment as Exp\n"
    )


def test_parenthesised_import_keeps_layout_and_comments():
    before = """\
        from azureml.pipeline.steps import (  # the steps
            PythonScriptStep,  # the only one we use
        )
        """
    assert migrated(before) == textwrap.dedent(before).replace(
        "azureml.pipeline.steps", "mlpipe_provider.sdk"
    )


def test_backslash_continued_import():
    assert (
        migrated("from \\\n    azureml.core import Datastore\n")
        == "from \\\n    mlpipe_provider.sdk import Datastore\n"
    )


def test_import_as_alias():
    before = """\
        import azureml.core as aml

        ws = aml.Workspace.from_config()
        """
    assert migrated(before) == textwrap.dedent(before).replace(
        "azureml.core", "mlpipe_provider.sdk"
    )


def test_bare_import_rewrites_attribute_uses():
    before = """\
        import azureml.core
        import azureml.pipeline.steps

        ws = azureml.core.Workspace.from_config()
        step = azureml.pipeline.steps.PythonScriptStep(script_name="a.py")
        config = azureml.core.runconfig.RunConfiguration()
        """
    assert migrated(before) == textwrap.dedent(
        """\
        import mlpipe_provider.sdk
        import mlpipe_provider.sdk

        ws = mlpipe_provider.sdk.Workspace.from_config()
        step = mlpipe_provider.sdk.PythonScriptStep(script_name="a.py")
        config = mlpipe_provider.sdk.RunConfiguration()
        """
    )


def test_bare_import_keeps_azureml_for_uses_that_cannot_move():
    after, findings = migrate_source(
        "import azureml.core\nws = azureml.core.Workspace.from_config()\nv = azureml.core.Keyvault\n"
    )
    assert after == (
        "import mlpipe_provider.sdk, azureml.core\n"
        "ws = mlpipe_provider.sdk.Workspace.from_config()\n"
        "v = azureml.core.Keyvault\n"
    )
    assert findings == [Finding("azureml.core.Keyvault", 3, mapped=False)]
    assert migrate_source(after)[0] == after


def test_star_import():
    assert migrated("from azureml.core import *\n") == "from mlpipe_provider.sdk import *\n"


def test_unmappable_only_line_is_left_alone():
    before = "from azureml.contrib.notebook import NotebookRunnerStep\n"
    after, findings = migrate_source(before)
    assert after == before
    assert findings == [Finding("NotebookRunnerStep", 1, mapped=False)]


def test_mixed_line_is_split_keeping_comments_and_indentation():
    before = """\
        def main():
            from azureml.core import (
                Workspace,  # the workspace
                Keyvault,
                Run as R,
            )
            return Workspace, R
        """
    after, findings = migrate_source(textwrap.dedent(before))
    assert after == textwrap.dedent(
        """\
        def main():
            # the workspace
            from mlpipe_provider.sdk import Workspace, Run as R
            from azureml.core import Keyvault
            return Workspace, R
        """
    )
    assert findings == [Finding("Keyvault", 4, mapped=False)]


def test_mixed_import_sharing_a_line_is_split_with_a_semicolon():
    assert (
        migrated("import os; from azureml.core import Workspace, Keyvault  # note\n")
        == "import os; from mlpipe_provider.sdk import Workspace; from azureml.core import Keyvault  # note\n"
    )


def test_unsupported_names_map_and_are_reported():
    assert "AutoMLStep" in sdk.UNSUPPORTED_NAMES
    after, findings = migrate_source("from azureml.pipeline.steps import AutoMLStep\n")
    assert after == "from mlpipe_provider.sdk import AutoMLStep\n"
    assert findings == [Finding("AutoMLStep", 1, mapped=True)]


def test_the_rest_of_the_file_stays_byte_identical(tmp_path):
    original = (
        "# -*- coding: latin-1 -*-\r\n"
        "'''caf\xe9'''\r\n"
        "\x0c\r\n"
        "x = 'caf\xe9'; from azureml.core import Run\r\n"
        "from azureml.core import Workspace"
    ).encode("latin-1")
    path = tmp_path / "legacy.py"
    path.write_bytes(original)
    assert migrate_paths([path]) == 0
    assert path.read_bytes() == original.replace(b"azureml.core", b"mlpipe_provider.sdk")


def test_relative_and_unrelated_imports_are_untouched():
    before = "from . import azureml\nfrom .azureml.core import Workspace\nimport azureml_extra\n"
    assert migrated(before) == before


def test_folder_walk_skips_tool_folders_and_virtualenvs(tmp_path):
    line = "from azureml.core import Run\n"
    kept = [
        write(tmp_path / name / "mod.py", line)
        for name in [".venv", ".git", "__pycache__", "node_modules", ".mlpipe", "env/lib"]
    ]
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    script = write(tmp_path / "steps" / "deep" / "train.py", line)
    other = write(tmp_path / "notes.txt", line)
    assert migrate_paths([tmp_path]) == 0
    assert script.read_text() == "from mlpipe_provider.sdk import Run\n"
    assert all(path.read_text() == line for path in [*kept, other])


def test_syntax_error_is_reported_and_the_file_left_alone(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_bytes(b"from azureml.core import Workspace\ndef oops(:\n")
    good = write(tmp_path / "good.py", "from azureml.core import Workspace\n")
    assert migrate_paths([tmp_path]) == 1
    assert broken.read_bytes() == b"from azureml.core import Workspace\ndef oops(:\n"
    assert good.read_text() == "from mlpipe_provider.sdk import Workspace\n"
    assert f"skipped {broken}: syntax error on line 2" in capsys.readouterr().err


def test_second_run_changes_nothing(tmp_path, capsys):
    path = write(
        tmp_path / "p.py",
        """\
        import azureml.core
        from azureml.core import Workspace, Keyvault
        print(azureml.core.Experiment, azureml.core.VERSION)
        """,
    )
    migrate_paths([path])
    first = path.read_bytes()
    capsys.readouterr()
    migrate_paths([path])
    assert path.read_bytes() == first
    assert "0 file(s) changed" in capsys.readouterr().out


def test_dry_run_writes_nothing_and_prints_a_diff(tmp_path, capsys):
    path = write(tmp_path / "p.py", "from azureml.core import Workspace\n")
    assert migrate_paths([path], dry_run=True) == 0
    assert path.read_text() == "from azureml.core import Workspace\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.py"]
    out = capsys.readouterr().out
    assert f"--- a/{path}" in out and f"+++ b/{path}" in out
    assert (
        "-from azureml.core import Workspace\n+from mlpipe_provider.sdk import Workspace\n" in out
    )


def test_report_and_exit_code_for_unmappable_names(tmp_path, capsys):
    path = write(
        tmp_path / "p.py",
        """\
        from azureml.core import Workspace, Keyvault
        from azureml.contrib.notebook import NotebookRunnerStep
        from azureml.pipeline.steps import AutoMLStep
        """,
    )
    assert migrate_paths([path]) == 1
    assert path.read_text() == textwrap.dedent(
        """\
        from mlpipe_provider.sdk import Workspace
        from azureml.core import Keyvault
        from azureml.contrib.notebook import NotebookRunnerStep
        from mlpipe_provider.sdk import AutoMLStep
        """
    )
    out = capsys.readouterr().out
    assert f"migrated {path}" in out
    assert f"cannot map: Keyvault ({path}:1)" in out
    assert f"cannot map: NotebookRunnerStep ({path}:2)" in out
    assert f"maps, but not supported yet: AutoMLStep ({path}:3)" in out


def test_cli_end_to_end(tmp_path, capsys):
    path = write(tmp_path / "pipeline.py", "from azureml.pipeline.core import Pipeline\n")
    assert main(["migrate", "--dry-run", str(tmp_path)]) == 0
    assert "azureml" in path.read_text()
    assert main(["migrate", str(tmp_path)]) == 0
    assert path.read_text() == "from mlpipe_provider.sdk import Pipeline\n"
    assert f"migrated {path}" in capsys.readouterr().out
    assert main(["migrate", str(tmp_path / "missing")]) == 1


V1_PROGRAM = '''\
"""Train on 20 newsgroups (Azure ML SDK v1)."""
import os
from azureml.core import Workspace, Experiment, Datastore
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.runconfig import RunConfiguration
from azureml.core.conda_dependencies import CondaDependencies
from azureml.data.data_reference import DataReference
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.core.graph import PipelineParameter
from azureml.pipeline.steps import PythonScriptStep

open("executed.marker", "w").close()  # migrate must never run this file

ws = Workspace.from_config()
blob_store = Datastore(ws, "workspaceblobstore")
compute_target = ws.compute_targets["STANDARD_NC6"]
run_config = RunConfiguration(conda_dependencies=CondaDependencies.create(pip_packages=["numpy"]))
input_data = DataReference(
    datastore=blob_store,
    data_reference_name="test_data",
    path_on_datastore="20newsgroups/20news.pkl",
)
output_data = PipelineData("output_data", datastore=blob_store)
epochs = PipelineParameter(name="epochs", default_value=3)
train = PythonScriptStep(
    script_name="train.py",
    arguments=["--input", input_data, "--output", output_data, "--epochs", epochs],
    inputs=[input_data],
    outputs=[output_data],
    compute_target=compute_target,
    source_directory="myfolder",
    runconfig=run_config,
)
pipeline = Pipeline(workspace=ws, steps=[train])
Experiment(ws, "MyExperiment").submit(pipeline)
'''

STEP_SCRIPT = """\
import argparse
from azureml.core import Run

run = Run.get_context()
run.log("accuracy", 0.9)
"""


def test_realistic_v1_program(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    program = write(tmp_path / "pipeline.py", V1_PROGRAM)
    script = write(tmp_path / "myfolder" / "train.py", STEP_SCRIPT)
    assert migrate_paths([tmp_path]) == 0
    assert not (tmp_path / "executed.marker").exists()
    imported: set[str] = set()
    for path in (program, script):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module == "mlpipe_provider.sdk", ast.unparse(node)
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("azureml") for a in node.names)
    assert imported >= {"Workspace", "Datastore", "DataReference", "PipelineData", "Run"}
    assert imported <= set(sdk.__all__)
    assert all(hasattr(sdk, name) for name in imported)
    body = V1_PROGRAM.split("PythonScriptStep\n", 1)[1]
    assert program.read_text().endswith(body)


def test_split_import_too_long_for_a_line_is_parenthesised():
    names = ", ".join(sorted(n for n in sdk.__all__ if n.startswith("Pipeline")))
    after = migrated(f"from azureml.pipeline.core import {names}, Keyvault\n")
    assert after.startswith("from mlpipe_provider.sdk import (\n    Pipeline,\n")
    assert after.endswith(")\nfrom azureml.pipeline.core import Keyvault\n")


def test_import_as_with_only_unmappable_uses_is_left_alone():
    before = "import azureml.core as aml\nprint(aml.Keyvault)\n"
    after, findings = migrate_source(before)
    assert after == before
    assert findings == [Finding("Keyvault", 2, mapped=False)]
