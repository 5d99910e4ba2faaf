"""v1 data semantics, run for real (issue 11 items 4 and 6).

* A FileDataset made from the path of one file reaches the script as that file's path (mounted or
  downloaded); a folder, a glob (even one matching one file) or several paths reach it as the
  enclosing folder.
* ``PipelineData()`` (``is_directory`` not set) gives the script a path that does not exist yet
  under a folder that does: the script makes a file or a folder there, and that is the output;
  ``is_directory=True`` gives an existing empty folder. A file output reaches downstream steps
  as a file, downloads through ``PortDataReference`` and is reused.
* A DataReference whose path does not exist fails naming step, input, datastore and path.
* A dataset-valued ``PipelineParameter`` is overridden per submit; its content decides reuse.

The scripts are written the way v1 samples write them (argparse, ``open(path, "w")``,
``os.makedirs(path, exist_ok=True)``); each appends its name to $MLPIPE_TEST_CALLS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.errors import MlpipeError, UserErrorException
from mlpipe_provider.sdk import (
    DataReference,
    Dataset,
    DatasetConsumptionConfig,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

READ = """
    import argparse, json, os
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("read\\n")
    p = argparse.ArgumentParser()
    for name in ("--one", "--one_dl", "--glob", "--folder", "--file_out", "--dir_out", "--made"):
        p.add_argument(name)
    a = p.parse_args()
    # a dataset of one file is that file, mounted or downloaded (v1)
    assert os.path.isfile(a.one) and os.path.basename(a.one) == "one.csv", a.one
    assert os.path.isfile(a.one_dl) and os.path.basename(a.one_dl) == "one.csv", a.one_dl
    # a glob matching one file, and a folder, are folders
    assert sorted(os.listdir(a.glob)) == ["one.csv"], a.glob
    assert sorted(os.listdir(a.folder)) == ["more.txt", "one.csv"], a.folder
    # PipelineData(): a path that does not exist yet, under a folder that does
    for path in (a.file_out, a.made):
        assert not os.path.exists(path) and os.path.isdir(os.path.dirname(path)), path
    # PipelineData(is_directory=True): an existing empty folder
    assert os.path.isdir(a.dir_out) and os.listdir(a.dir_out) == [], a.dir_out
    with open(a.file_out, "w") as handle:            # the output is this one file
        handle.write(open(a.one).read().upper())
    os.makedirs(a.made, exist_ok=True)               # the output is this folder
    open(os.path.join(a.made, "m.txt"), "w").write("made")
    open(os.path.join(a.dir_out, "d.txt"), "w").write("dir")
"""

USE = """
    import argparse, os
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("use\\n")
    p = argparse.ArgumentParser()
    for name in ("--file_in", "--made_in", "--dir_in", "--report"):
        p.add_argument(name)
    a = p.parse_args()
    assert os.path.isfile(a.file_in), a.file_in      # the producer wrote a file: a file here
    assert open(os.path.join(a.made_in, "m.txt")).read() == "made"
    assert open(os.path.join(a.dir_in, "d.txt")).read() == "dir"
    open(a.report, "w").write(open(a.file_in).read() + "|ok")
"""


def _calls(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    path.write_text("")
    return text.split()


@pytest.fixture
def v1(project, monkeypatch):
    """An embedded workspace (Workspace.from_config) with data on its default datastore."""
    calls = project / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    ws = Workspace.from_config()
    store = ws.get_default_datastore()
    root = ws._dir / "datastores" / store.name
    for rel, text in {
        "data/one.csv": "a,b\n1,2\n",
        "data/more.txt": "more",
        "copy/data/one.csv": "a,b\n1,2\n",
        "other/data/one.csv": "x,y\n3,4\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return ws, store, root, calls


def _semantics_pipeline(ws, store, project: Path) -> Pipeline:
    write_script(project / "read", "read.py", READ)
    write_script(project / "use", "use.py", USE)
    one = Dataset.File.from_files(path=(store, "data/one.csv"))
    glob = Dataset.File.from_files(path=(store, "data/*.csv"))
    folder = Dataset.File.from_files(path=(store, "data"))
    file_out = PipelineData("file_out", datastore=store)
    made = PipelineData("made", datastore=store)
    dir_out = PipelineData("dir_out", datastore=store, is_directory=True)
    report = PipelineData("report", datastore=store)
    read = PythonScriptStep(
        "read.py",
        name="read",
        arguments=[
            "--one",
            one.as_named_input("one").as_mount(),
            "--one_dl",
            one.as_named_input("one_dl").as_download(),
            "--glob",
            glob.as_named_input("glob").as_mount(),
            "--folder",
            folder.as_named_input("folder").as_download(),
            "--file_out",
            file_out,
            "--dir_out",
            dir_out,
            "--made",
            made,
        ],  # fmt: skip
        outputs=[file_out, dir_out, made],
        source_directory=str(project / "read"),
    )
    made_in = made.as_download()
    use = PythonScriptStep(
        "use.py",
        name="use",
        arguments=[
            "--file_in",
            file_out,
            "--made_in",
            made_in,
            "--dir_in",
            dir_out,
            "--report",
            report,
        ],
        inputs=[file_out, made_in, dir_out],
        outputs=[report],
        source_directory=str(project / "use"),
    )
    return Pipeline(ws, [read, use])


def test_file_and_folder_semantics_run_reuse_download_and_a_missing_reference(
    v1, project, tmp_path
):
    ws, store, root, calls = v1
    exp = Experiment(ws, "semantics")
    pipeline = _semantics_pipeline(ws, store, project)

    run = exp.submit(pipeline)
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert _calls(calls) == ["read", "use"]
    (use,) = run.find_step_run("use")
    report = use.get_output_data("report")
    local = Path(report.download(str(tmp_path / "dl")))
    assert local.is_file() and local.read_text() == "A,B\n1,2\n|ok"  # a file output downloads
    (read,) = run.find_step_run("read")
    file_out = root / read.get_output_data("file_out").path_on_datastore
    assert file_out.is_file()  # stored as the one file the script wrote
    assert (root / read.get_output_data("made").path_on_datastore / "m.txt").is_file()

    again = exp.submit(pipeline)
    assert again.wait_for_completion(show_output=False) == "Finished"
    assert _calls(calls) == []  # file and folder outputs both verified and reused
    assert all(step.reused for step in again.get_steps())

    # a DataReference with nothing at its path: step, input, datastore and path named
    write_script(project / "use", "plain.py", "print('never')\n")
    missing = DataReference(store, data_reference_name="raw", path_on_datastore="no/such.csv")
    bad = Pipeline(
        ws,
        [
            PythonScriptStep(
                "plain.py",
                name="needs_raw",
                arguments=[missing],
                inputs=[missing],
                source_directory=str(project / "use"),
            )
        ],
    )
    failed = exp.submit(bad)
    with pytest.raises(MlpipeError) as raised:
        failed.wait_for_completion(show_output=False)
    expected = (
        f"step 'needs_raw', input 'raw': 'no/such.csv' does not exist in datastore "
        f"{store.name!r} (the path is its DataReference path_on_datastore"
    )
    runner_log = failed._source.where()
    log_text = Path(runner_log).read_text() if os.path.isfile(runner_log) else ""
    assert expected in str(raised.value) + log_text
    assert _calls(calls) == []


PARAM = """
    import argparse, json, os
    from mlpipe_provider.sdk import Run
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("param\\n")
    p = argparse.ArgumentParser()
    p.add_argument("--data")
    a = p.parse_args()
    assert a.data == Run.get_context().input_datasets["data"]
    Run.get_context().log("seen", open(os.path.join(a.data, "one.csv")).read())
"""


def test_dataset_pipeline_parameter_overridden_per_submit_and_reused_by_content(v1, project):
    ws, store, root, calls = v1
    write_script(project / "param", "param.py", PARAM)
    Dataset.File.from_files(path=(store, "other/data")).register(ws, "other_data")
    default = Dataset.File.from_files(path=(store, "data/*.csv"))
    param = PipelineParameter(name="input_ds", default_value=default)
    step = PythonScriptStep(
        "param.py",
        name="param",
        arguments=["--data", DatasetConsumptionConfig("data", param).as_mount()],
        source_directory=str(project / "param"),
    )
    pipeline = Pipeline(ws, [step])

    def seen(run) -> str:
        assert run.wait_for_completion(show_output=False) == "Finished"
        (step_run,) = run.find_step_run("param")
        return step_run.get_metrics()["seen"], step_run.reused

    exp = Experiment(ws, "dataset_param")
    assert seen(exp.submit(pipeline)) == ("a,b\n1,2\n", False)
    assert _calls(calls) == ["param"]

    # another dataset: another content, the step runs on it
    other = Dataset.File.from_files(path=(store, "other/data/*.csv"))
    assert seen(exp.submit(pipeline, pipeline_parameters={"input_ds": other})) == (
        "x,y\n3,4\n",
        False,
    )
    # a different dataset with the same content as the default: reused (content, not identity)
    same = Dataset.File.from_files(path=(store, "copy/data/*.csv"))
    assert seen(exp.submit(pipeline, pipeline_parameters={"input_ds": same}))[1] is True
    assert _calls(calls) == ["param"]

    # the value is a literal DAG param (a serialized dataset), never code
    dag_text = (ws.dags_dir / "dataset_param.py").read_text()
    assert "'input_ds': Param({'dataset_type': 'file', 'paths': [{'datastore':" in dag_text
    assert "type='object'" in dag_text

    # a published pipeline takes a registered dataset by reference (name/version), as REST does
    published = pipeline.publish(name="dataset_param_pub")
    run = published.submit(
        ws, "dataset_param", pipeline_parameters={"input_ds": {"name": "other_data"}}
    )
    assert seen(run) == ("x,y\n3,4\n", True)  # same content as the second run: reused
    assert _calls(calls) == []

    # checked at submit, before anything runs
    tabular = Dataset.Tabular.from_delimited_files(path=(store, "data/one.csv"))
    with pytest.raises(UserErrorException, match="expects a file dataset"):
        exp.submit(pipeline, pipeline_parameters={"input_ds": tabular})
    with pytest.raises(UserErrorException, match="unknown datastore 'nope'"):
        exp.submit(
            pipeline,
            pipeline_parameters={
                "input_ds": {"dataset_type": "file", "paths": [{"datastore": "nope", "path": "x"}]}
            },
        )
    with pytest.raises(UserErrorException, match="no dataset named 'nothing'"):
        exp.submit(pipeline, pipeline_parameters={"input_ds": {"name": "nothing"}})


def test_dataset_parameter_input_must_have_a_dataset_default(v1):
    ws, store, _, _ = v1
    with pytest.raises(UserErrorException, match="PipelineParameter whose default_value is a"):
        DatasetConsumptionConfig("data", PipelineParameter("p", default_value="data/one.csv"))


BLOB_A = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("a\\n")
    one, out = sys.argv[1], sys.argv[2]
    assert os.path.isfile(one) and os.path.basename(one) == "one.csv", one
    assert not os.path.exists(out) and os.path.isdir(os.path.dirname(out)), out
    open(out, "w").write(open(one).read() * 2)
"""
BLOB_B = """
    import os, sys
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("b\\n")
    src, out = sys.argv[1], sys.argv[2]
    assert os.path.isfile(src), src
    assert os.path.isdir(out) and not os.listdir(out), out
    open(os.path.join(out, "len.txt"), "w").write(str(len(open(src).read())))
"""


def test_single_file_dataset_and_file_outputs_on_blob(ws, project, run_dag, monkeypatch, azurite):
    from azurite import register_blob_datastore

    calls = project / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    blob = register_blob_datastore(ws, azurite, "blobstore", default=True)
    access = blob._access()
    access.fs.pipe(access.full_path("in/one.csv"), b"q,r\n")
    write_script(project / "a", "a.py", BLOB_A)
    write_script(project / "b", "b.py", BLOB_B)
    one = Dataset.File.from_files(path=(blob, "in/one.csv"))
    doubled = PipelineData("doubled", datastore=blob)
    length = PipelineData("length", datastore=blob, is_directory=True)
    a = PythonScriptStep(
        "a.py",
        name="a",
        arguments=[one.as_named_input("one").as_download(), doubled],
        outputs=[doubled],
        source_directory=str(project / "a"),
    )
    b = PythonScriptStep(
        "b.py",
        name="b",
        arguments=[doubled, length],
        inputs=[doubled],
        outputs=[length],
        source_directory=str(project / "b"),
    )
    pipeline = Pipeline(ws, [a, b])
    dag_run, records = run_dag(pipeline, dag_id="blob_semantics")
    assert str(dag_run.state) == "success", records
    assert _calls(calls) == ["a", "b"]
    out = records["a"][1]["outputs"]["doubled"]
    assert out["files"] == {"": 8}  # one object, uploaded as the output itself
    assert access.fs.cat_file(access.full_path(out["path"])) == b"q,r\nq,r\n"
    length_out = records["b"][1]["outputs"]["length"]["path"]
    assert access.fs.cat_file(access.full_path(f"{length_out}/len.txt")) == b"8"

    dag_run, records = run_dag(pipeline, dag_id="blob_semantics")
    assert str(dag_run.state) == "success", records
    assert _calls(calls) == []
    assert records["a"][0] == records["b"][0] == "skipped"
    assert json.dumps(records["a"][1]["outputs"]["doubled"]["files"]) == '{"": 8}'
