"""v1 datasets on mlpipe: real DAG runs (dag.test) of v1-style dataset pipelines.

Pipeline under test (``Harness.pipeline``), written as a v1 program would be:

* ``raw_files`` = ``Dataset.File.from_files((datastore, 'raw/**'))``, registered, fetched back by
  name, consumed by ``prep`` as ``as_named_input('raw').as_mount()``;
* ``prep`` writes ``OutputFileDatasetConfig('prepped', destination=...)`` (an argument only, as
  in v1) with ``register_on_complete('prepped_data')``;
* ``train`` consumes it with ``.as_input('prepped')`` and, read as rows,
  ``.read_delimited_files().as_input('rows')``.

Each script appends its name to $MLPIPE_TEST_CALLS, so a test sees which steps executed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import write_script

from compiler.compile import compile_pipeline
from mlpipe_provider import dataset_files, hashing
from mlpipe_provider.errors import PipelineValidationError
from mlpipe_provider.sdk import (
    DataPath,
    Dataset,
    DatasetConsumptionConfig,
    DataType,
    FileDataset,
    NotSupportedError,
    OutputFileDatasetConfig,
    OutputTabularDatasetConfig,
    Pipeline,
    PythonScriptStep,
    Run,
    TabularDataset,
    UserErrorException,
)

try:
    import pandas  # noqa: F401

    HAVE_PANDAS = True
except ImportError:
    HAVE_PANDAS = False

PREP = """
    import json, os, sys
    from mlpipe_provider.sdk import Run
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("prep\\n")
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    run = Run.get_context()
    raw = run.input_datasets["raw"]           # v1: the mount path of a mounted file dataset
    assert raw == args["--raw"], (raw, args)
    files = sorted(
        os.path.relpath(os.path.join(d, f), raw) for d, _, fs in os.walk(raw) for f in fs
    )
    out = args["--out"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "combined.txt"), "w") as handle:
        for rel in files:
            handle.write(rel + "=" + open(os.path.join(raw, rel)).read() + "\\n")
    with open(os.path.join(out, "rows.csv"), "w") as handle:
        handle.write("file,size\\n")
        for rel in files:
            handle.write(f"{rel},{os.path.getsize(os.path.join(raw, rel))}\\n")
"""

TRAIN = """
    import json, os, sys
    from mlpipe_provider.sdk import Run, TabularDataset
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("train\\n")
    run = Run.get_context()
    prepped = run.input_datasets["prepped"]
    assert prepped == sys.argv[2], (prepped, sys.argv)
    rows = run.input_datasets["rows"]
    assert isinstance(rows, TabularDataset), type(rows)
    text = open(os.path.join(prepped, "combined.txt")).read()
    run.log("lines", len(text.splitlines()))
    run.log("row_files", json.dumps(rows.to_csv_files().to_path()))
    try:
        frame = rows.to_pandas_dataframe()
        run.log("rows", len(frame))
    except ImportError as exc:
        run.log("pandas_error", str(exc))
"""


class Harness:
    def __init__(self, ws, project: Path, run_dag, monkeypatch):
        self.ws, self.project, self._run_dag = ws, project, run_dag
        self.calls = project / "calls.log"
        monkeypatch.setenv("MLPIPE_TEST_CALLS", str(self.calls))
        self.store = ws.get_default_datastore()
        write_script(project / "steps" / "prep", "prep.py", PREP)
        write_script(project / "steps" / "train", "train.py", TRAIN)
        self.write("raw/a.txt", "alpha")
        self.write("raw/sub/b.txt", "beta")
        Dataset.File.from_files((self.store, "raw/**")).register(
            ws, "raw_files", description="raw text", create_new_version=True
        )

    @property
    def root(self) -> Path:
        return self.ws._dir / "datastores" / "workspaceblobstore"

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def pipeline(self) -> Pipeline:
        raw = Dataset.get_by_name(self.ws, "raw_files")
        prepped = OutputFileDatasetConfig(
            "prepped", destination=(self.store, "exports/{run-id}/{output-name}")
        ).register_on_complete("prepped_data", tags={"stage": "prep"})
        PythonScriptStep(  # not listed in the Pipeline: it joins as the producer of `prepped`
            "prep.py",
            name="prep",
            arguments=["--raw", raw.as_named_input("raw").as_mount(), "--out", prepped],
            source_directory=str(self.project / "steps" / "prep"),
        )
        train = PythonScriptStep(
            "train.py",
            name="train",
            arguments=["--data", prepped.as_input("prepped")],
            inputs=[prepped.read_delimited_files(path_glob="*.csv").as_input("rows")],
            source_directory=str(self.project / "steps" / "train"),
        )
        return Pipeline(self.ws, [train])  # prep joins through the data, as in v1

    def run(self, pipeline: Pipeline | None = None, dag_id: str = "datasets") -> tuple[list, dict]:
        self.calls.write_text("")
        dag_run, records = self._run_dag(pipeline or self.pipeline(), dag_id=dag_id)
        assert str(dag_run.state) == "success", records
        return self.calls.read_text().split(), records


@pytest.fixture
def h(ws, project, run_dag, monkeypatch):
    return Harness(ws, project, run_dag, monkeypatch)


def metrics(records: dict, step: str) -> dict:
    state, record = records[step]
    if state == "skipped":
        return records[f"{step}"][1]["metrics"]
    return record["metrics"]


# --- the v1 pipeline, run for real -------------------------------------------------------------


def test_v1_dataset_pipeline_runs_registers_copies_and_reuses(h):
    executed, first = h.run()
    assert executed == ["prep", "train"]
    prep = first["prep"][1]
    output = prep["outputs"]["prepped"]
    assert output["path"] == f"azureml/{prep['step_run_id']}/prepped"  # a fresh attempt folder
    combined = (h.root / output["path"] / "combined.txt").read_text()
    assert combined == "a.txt=alpha\nsub/b.txt=beta\n"

    # destination: a verified copy of the finished output, {run-id}/{output-name} substituted
    copied = h.root / "exports" / prep["step_run_id"] / "prepped" / "combined.txt"
    assert copied.read_text() == combined
    assert prep["datasets"]["prepped"]["destination"]["path"] == (
        f"exports/{prep['step_run_id']}/prepped"
    )

    # register_on_complete: the attempt folder, as a new dataset version
    registered = Dataset.get_by_name(h.ws, "prepped_data")
    assert isinstance(registered, FileDataset)
    assert (registered.version, registered.tags) == (1, {"stage": "prep"})
    assert registered.to_path() == ["/combined.txt", "/rows.csv"]
    assert "prepped_data" in h.ws.datasets
    assert Dataset.get_by_id(h.ws, registered.id).name == "prepped_data"

    train = metrics(first, "train")
    assert train["lines"] == 2
    assert json.loads(train["row_files"]) == ["/rows.csv"]  # read_delimited_files(path_glob)
    if HAVE_PANDAS:
        assert train["rows"] == 2
    else:
        assert "needs pandas, which is not installed" in train["pandas_error"]

    executed, second = h.run()
    assert executed == []  # nothing changed: both steps reused
    assert second["prep"][0] == "skipped" and second["train"][0] == "skipped"
    assert Dataset.get_by_name(h.ws, "prepped_data").version == 1  # same output, same version


def test_changing_a_file_under_the_glob_reruns_and_registers_a_new_version(h):
    _, first = h.run()
    h.write("raw/sub/b.txt", "BETA")
    executed, second = h.run()
    assert executed == ["prep", "train"]
    assert Dataset.get_by_name(h.ws, "prepped_data").version == 2
    v1 = Dataset.get_by_name(h.ws, "prepped_data", version=1)
    assert v1._definition["paths"][0]["path"] == first["prep"][1]["outputs"]["prepped"]["path"]
    assert (
        h.root / second["prep"][1]["outputs"]["prepped"]["path"] / "combined.txt"
    ).read_text() == ("a.txt=alpha\nsub/b.txt=BETA\n")


def test_adding_a_file_under_the_glob_reruns_but_touching_one_does_not(h):
    h.run()
    path = h.root / "raw" / "a.txt"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    h.write("elsewhere/c.txt", "not in the dataset")
    executed, _ = h.run()
    assert executed == []
    h.write("raw/sub/deeper/c.txt", "gamma")
    executed, _ = h.run()
    assert executed == ["prep", "train"]


def test_reused_step_restores_a_removed_destination(h):
    _, first = h.run()
    run_id = first["prep"][1]["step_run_id"]
    copied = h.root / "exports" / run_id / "prepped" / "combined.txt"
    copied.unlink()
    executed, _ = h.run()
    assert executed == []
    assert copied.read_text() == "a.txt=alpha\nsub/b.txt=beta\n"


GLOB_STEP = """
    import json, os, sys
    from mlpipe_provider.sdk import Run
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("glob\\n")
    run = Run.get_context()
    seen = run.input_datasets["tables"]
    files = sorted(os.path.relpath(os.path.join(d, f), seen) for d, _, fs in os.walk(seen) for f in fs)
    run.log("files", json.dumps(files))
    direct = run.input_datasets["rows"]
    run.log("direct_type", type(direct).__name__)
    run.log("direct_paths", json.dumps(direct.to_path()))
    run.log("arg", sys.argv[1] == seen)
"""


def test_globs_and_several_paths_are_seen_as_one_folder(h):
    write_script(h.project / "steps" / "glob", "glob.py", GLOB_STEP)
    h.write("tables/2024/jan.csv", "x\n1\n")
    h.write("tables/2024/notes.txt", "skip me")
    h.write("tables/2025/feb.csv", "x\n2\n")
    h.write("extra/one.csv", "x\n3\n")
    tables = Dataset.File.from_files(
        [(h.store, "tables/**/*.csv"), DataPath(h.store, "extra/one.csv")]
    )
    step = PythonScriptStep(
        "glob.py",
        name="glob",
        arguments=[tables.as_named_input("tables").as_download()],
        inputs=[Dataset.File.from_files((h.store, "tables/2024/*.csv")).as_named_input("rows")],
        source_directory=str(h.project / "steps" / "glob"),
    )
    executed, records = h.run(Pipeline(h.ws, [step]), dag_id="globs")
    assert executed == ["glob"]
    logged = records["glob"][1]["metrics"]
    assert json.loads(logged["files"]) == [
        "extra/one.csv",
        "tables/2024/jan.csv",
        "tables/2025/feb.csv",
    ]
    assert logged["direct_type"] == "FileDataset" and logged["arg"] is True
    assert json.loads(logged["direct_paths"]) == ["/jan.csv"]
    run_folder = h.root / records["glob"][1]["run_folder"]["path"]
    assert not (run_folder / ".mlpipe" / "inputs").exists()  # copies dropped after the step

    h.write("tables/2024/more.txt", "not a csv")
    executed, _ = h.run(Pipeline(h.ws, [step]), dag_id="globs")
    assert executed == []
    h.write("tables/2025/mar.csv", "x\n4\n")
    executed, _ = h.run(Pipeline(h.ws, [step]), dag_id="globs")
    assert executed == ["glob"]


TABULAR_STEP = """
    import os, sys
    from mlpipe_provider.sdk import Dataset, Run
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("tabular\\n")
    run = Run.get_context()
    rows = run.input_datasets["rows"]
    run.log("type", type(rows).__name__)
    run.log("by_arg", type(Dataset.get_by_id(None, id=sys.argv[1])).__name__)
    try:
        run.log("rows", len(rows.to_pandas_dataframe()))
        run.log("csv_files", len(rows.to_csv_files().to_path()))
    except ImportError as exc:
        run.log("error", str(exc))
"""


def test_tabular_dataset_in_a_step(h):
    write_script(h.project / "steps" / "tab", "tab.py", TABULAR_STEP)
    h.write("csv/a.csv", "name;n\nx;1\ny;2\n")
    h.write("csv/b.csv", "name;n\nz;3\n")
    table = Dataset.Tabular.from_delimited_files(
        (h.store, "csv/*.csv"), separator=";", set_column_types={"n": DataType.to_long()}
    ).register(h.ws, "table")
    step = PythonScriptStep(
        "tab.py",
        name="tabular",
        arguments=[Dataset.get_by_name(h.ws, "table").as_named_input("rows")],
        source_directory=str(h.project / "steps" / "tab"),
    )
    executed, records = h.run(Pipeline(h.ws, [step]), dag_id="tabular")
    assert executed == ["tabular"]
    logged = records["tabular"][1]["metrics"]
    assert logged["type"] == logged["by_arg"] == "TabularDataset"
    if HAVE_PANDAS:
        assert logged["rows"] == 3
        assert logged["csv_files"] == 1  # ';'-separated: converted to one CSV file
        frame = table.to_pandas_dataframe()
        assert list(frame["n"]) == [1, 2, 3]
    else:
        assert "TabularDataset.to_pandas_dataframe() needs pandas" in logged["error"]
        assert "error" in logged and "rows" not in logged


# --- the SDK outside a pipeline ----------------------------------------------------------------


def test_to_pandas_dataframe_without_pandas_is_a_clear_error(h, monkeypatch):
    h.write("csv/a.csv", "a,b\n1,2\n")
    table = Dataset.Tabular.from_delimited_files((h.store, "csv/a.csv"))
    assert isinstance(table, TabularDataset)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"to_pandas_dataframe\(\) needs pandas.*pip install"):
        table.to_pandas_dataframe()
    with pytest.raises(UserErrorException):
        table.to_pandas_dataframe()
    assert table.to_csv_files().to_path() == ["/a.csv"]  # CSV already: no pandas needed


def test_registration_versions_like_v1(h):
    first = Dataset.get_by_name(h.ws, "raw_files")
    same = Dataset.File.from_files((h.store, "raw/**")).register(h.ws, "raw_files")
    assert same.version == first.version == 1  # the same definition: the same version
    other = Dataset.File.from_files((h.store, "raw/sub"))
    with pytest.raises(UserErrorException, match="create_new_version=True"):
        other.register(h.ws, "raw_files")
    second = other.register(h.ws, "raw_files", create_new_version=True)
    assert second.version == 2
    assert Dataset.get_by_name(h.ws, "raw_files").version == 2
    assert Dataset.get_by_name(h.ws, "raw_files", version=1).id == first.id
    with pytest.raises(UserErrorException, match="no version 7"):
        Dataset.get_by_name(h.ws, "raw_files", version=7)
    with pytest.raises(UserErrorException, match="no dataset named 'nope'.*raw_files"):
        Dataset.get_by_name(h.ws, "nope")
    registry = h.ws._dir / "datasets" / "raw_files"
    assert sorted(p.name for p in registry.iterdir()) == ["1.json", "2.json"]


def test_file_dataset_local_access(h, tmp_path):
    files = Dataset.File.from_files((h.store, "raw"))
    assert files.to_path() == ["/a.txt", "/sub/b.txt"]
    written = files.download(str(tmp_path / "dl"))
    assert sorted(Path(p).relative_to(tmp_path / "dl").as_posix() for p in written) == [
        "a.txt",
        "sub/b.txt",
    ]
    with pytest.raises(UserErrorException, match="overwrite=True"):
        files.download(str(tmp_path / "dl"))
    with files.mount() as mounted:
        assert Path(mounted.mount_point) == h.root / "raw"  # one local folder: read in place
    with Dataset.File.from_files((h.store, "raw/*.txt")).mount() as mounted:
        assert sorted(os.listdir(mounted.mount_point)) == ["a.txt"]


def test_from_files_validates_like_v1(h):
    with pytest.raises(UserErrorException, match="cannot load any data.*matches no files"):
        Dataset.File.from_files((h.store, "raw/*.parquet"))
    Dataset.File.from_files((h.store, "raw/*.parquet"), validate=False)  # allowed when asked
    with pytest.raises(UserErrorException, match="does not exist"):
        Dataset.File.from_files((h.store, "missing/folder"))
    with pytest.raises(NotSupportedError, match="URL paths"):
        Dataset.File.from_files("https://example.com/data.csv")
    with pytest.raises(UserErrorException, match="'..'"):
        Dataset.File.from_files((h.store, "../outside"))


def test_tabular_consumption_cannot_be_mounted(h):
    table = Dataset.Tabular.from_delimited_files((h.store, "raw/a.txt"))
    with pytest.raises(UserErrorException, match="tabular dataset cannot be mounted"):
        table.as_named_input("rows").as_mount()
    rows = OutputFileDatasetConfig("o").read_delimited_files()
    assert isinstance(rows, OutputTabularDatasetConfig)
    with pytest.raises(UserErrorException, match="cannot be downloaded"):
        rows.as_input("rows").as_download()


def test_input_datasets_outside_a_step_is_empty():
    assert Run.get_context().input_datasets == {}


def test_glob_semantics():
    match = lambda glob, path: bool(dataset_files.glob_regex(glob).match(path))  # noqa: E731
    assert match("**", "a/b/c.txt") and match("**/*.csv", "x.csv") and match("**/*.csv", "a/b.csv")
    assert match("*.csv", "x.csv") and not match("*.csv", "a/x.csv")
    assert match("a/**/z.txt", "a/z.txt") and match("a/**/z.txt", "a/b/c/z.txt")
    assert match("part-?.csv", "part-1.csv") and not match("part-?.csv", "part-10.csv")
    assert match("[!x]*.csv", "a.csv") and not match("[!x]*.csv", "x.csv")
    assert dataset_files.split_pattern("raw/2024/*.csv") == ("raw/2024", "*.csv")
    assert dataset_files.IGNORED_FOLDERS == hashing.ALWAYS_IGNORED  # hashed = delivered


# --- compile-time errors --------------------------------------------------------------------------


def _problems(pipeline: Pipeline, project: Path) -> list[str]:
    problems = pipeline.validate()
    assert problems
    with pytest.raises(PipelineValidationError) as info:
        compile_pipeline(pipeline, "refused", project / "dags")
    assert info.value.problems == problems
    return problems


def _one(problems: list[str], *fragments: str) -> str:
    found = [p for p in problems if all(f in p for f in fragments)]
    assert len(found) == 1, (fragments, problems)
    return found[0]


@pytest.fixture
def src(h):
    folder = h.project / "src"
    write_script(folder, "s.py", "print('ok')\n")
    return folder


def _step(name: str, src: Path, **kwargs) -> PythonScriptStep:
    return PythonScriptStep("s.py", name=name, source_directory=str(src), **kwargs)


def test_output_consumed_but_produced_by_no_step(h, src):
    orphan = OutputFileDatasetConfig("orphan")
    consumer = _step("consumer", src, inputs=[orphan.as_input("orphan")])
    problems = _problems(Pipeline(h.ws, [consumer]), h.project)
    _one(problems, "step 'consumer', field 'inputs[0]'", "'orphan'", "produced by no step")


def test_output_produced_by_two_steps(h, src):
    out = OutputFileDatasetConfig("shared")
    a = _step("a", src, arguments=[out])
    b = _step("b", src, arguments=["--out", out.as_upload()])
    problems = _problems(Pipeline(h.ws, [a, b]), h.project)
    _one(problems, "step 'b', field 'arguments[1]'", "'shared'", "also produced by step 'a'")


def test_dataset_on_an_unknown_datastore(h, src):
    ghost = Dataset.File.from_files(("nosuchstore", "raw/**"), validate=False)
    step = _step("reader", src, arguments=[ghost.as_named_input("ghost").as_mount()])
    problems = _problems(Pipeline(h.ws, [step]), h.project)
    _one(problems, "step 'reader', field 'arguments[0]'", "'nosuchstore'", "workspace has:")


def test_dataset_no_longer_registered(h, src):
    raw = Dataset.get_by_name(h.ws, "raw_files")
    raw.unregister_all_versions()
    step = _step("reader", src, inputs=[raw.as_named_input("raw")])
    problems = _problems(Pipeline(h.ws, [step]), h.project)
    _one(problems, "step 'reader', field 'inputs[0]'", "'raw_files' version 1 is not registered")


def test_bad_destinations(h, src):
    inside = OutputFileDatasetConfig("a", destination=(h.store, "azureml/{run-id}"))
    unknown = OutputFileDatasetConfig("b", destination=(h.store, "out/{run_id}"))
    step = _step("writer", src, arguments=[inside, unknown])
    problems = _problems(Pipeline(h.ws, [step]), h.project)
    _one(problems, "field 'arguments[0]'", "'azureml/{run-id}' is inside 'azureml'")
    _one(problems, "field 'arguments[1]'", "unknown placeholder {run_id}")


def test_unnamed_outputs_get_stable_names_and_compile_identically(h, src):
    from compiler.lower import lower

    def build() -> Pipeline:
        out = OutputFileDatasetConfig()
        _step("make data", src, arguments=[out])  # joins as the producer
        b = _step("use", src, arguments=[out.as_input()])
        return Pipeline(h.ws, [b])

    dags = h.project / "dags"
    assert (
        compile_pipeline(build(), "stable", dags).text
        == compile_pipeline(build(), "stable", dags).text
    )
    specs = {spec["step_name"]: spec for spec in lower(build()).steps.values()}
    assert specs["make data"]["outputs"][0]["name"] == "make_data_output_0"
    assert specs["use"]["inputs"][0]["output"] == "make_data_output_0"
    assert specs["use"]["arguments"] == [{"input": "make_data_output_0"}]


def test_consumption_config_names_are_checked():
    with pytest.raises(UserErrorException, match="dataset input name 'bad name'"):
        DatasetConsumptionConfig("bad name", OutputFileDatasetConfig("x"))
    with pytest.raises(UserErrorException, match="OutputFileDatasetConfig name 'no-dash'"):
        OutputFileDatasetConfig("no-dash")


def test_same_dataset_in_inputs_and_arguments_is_one_input(h, src):
    from compiler.lower import lower

    raw = Dataset.get_by_name(h.ws, "raw_files").as_named_input("raw").as_download()
    step = _step("reader", src, inputs=[raw], arguments=["--raw", raw])
    (spec,) = lower(Pipeline(h.ws, [step])).steps.values()
    assert [i["name"] for i in spec["inputs"]] == ["raw"]
    assert spec["inputs"][0]["kind"] == "dataset" and spec["inputs"][0]["mode"] == "download"
    assert spec["arguments"] == ["--raw", {"input": "raw"}]
