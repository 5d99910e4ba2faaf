"""The built-ins that follow the Azure ML designer's components: learner modules feeding Train
Model's ``untrained_model`` port, Normalize Data's five methods, and the everyday modules.

Kept fast: the scripts' arithmetic is checked by running each script in-process (its real
argument parsing, parameter checks and files), and one embedded-Airflow run strings several
modules together.
"""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlpipe_provider import builtin_modules
from mlpipe_provider.errors import PipelineValidationError
from mlpipe_provider.sdk import (
    DataReference,
    Module,
    ModuleStep,
    Pipeline,
    PipelineData,
    install_builtin_modules,
)

SCRIPTS = builtin_modules.SCRIPTS_DIR


def _run_script(monkeypatch, module: str, ports: dict[str, str], params: dict[str, object]):
    """Run a built-in's script in this process as a step would: ``--port path`` arguments and
    ``AML_PARAMETER_*`` values (as their text)."""
    definition = builtin_modules.definition(module)
    script = definition["script"]
    for name in definition["params"]:  # nothing left over from an earlier run in the test
        monkeypatch.delenv(f"AML_PARAMETER_{name}", raising=False)
    argv = [script]
    for port, path in ports.items():
        argv += [f"--{port}", str(path)]
    monkeypatch.syspath_prepend(str(SCRIPTS))
    monkeypatch.setattr(sys, "argv", argv)
    for name, value in params.items():
        monkeypatch.setenv(f"AML_PARAMETER_{name}", str(value))
    runpy.run_path(str(SCRIPTS / script), run_name="__main__")


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "data.csv")


def _learner_defaults(module: str) -> dict:
    cat = builtin_modules.catalogue()
    return {k: cat.parse_value(s, s["default"]) for k, s in cat.MODULES[module]["params"].items()}


def test_every_learner_module_maps_its_designer_parameters_to_scikit_learn():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import _learners
    finally:
        sys.path.remove(str(SCRIPTS))
    frame = pd.DataFrame({"a": [float(i % 7) for i in range(60)], "b": range(60)})
    binary = (frame["a"] + frame["b"] > 30).astype(int)
    multi = frame["b"] // 20
    numbers = 3 * frame["a"] - frame["b"] + 1.5
    for module, definition in builtin_modules.catalogue().LEARNERS.items():
        assert definition["outputs"] == [
            {
                "name": "untrained_model",
                "label": "Untrained model",
                "data_type": "UntrainedModelDirectory",
            }
        ]
        for key, spec in definition["params"].items():  # the designer's label, in snake case
            label = spec["label"].split(" (")[0]
            assert key == label.lower().replace(" ", "_").replace("-", "_"), (module, key)
        params = _learner_defaults(module)
        for trees in ("number_of_trees_constructed", "total_number_of_trees_constructed"):
            if trees in params:
                params[trees] = 5  # quick on a busy machine; the mapping is what is tested
        model = _learners.make_learner(module, params)
        target = {"binary": binary, "multiclass": multi, "regression": numbers}
        model.fit(frame, target[definition["learner_task"]])
        assert len(model.predict(frame)) == 60
    # the designer's own mapping: L2 weight -> C = 1 / weight; lambda -> C = 1 / (2 lambda)
    params = {**_learner_defaults("Two-Class Logistic Regression"), "l2_regularization_weight": 4}
    assert _learners.make_learner("Two-Class Logistic Regression", params).C == 0.25
    params = {**_learner_defaults("Two-Class Support Vector Machine"), "lambda": 0.5}
    svm = _learners.make_learner("Two-Class Support Vector Machine", params)
    assert svm.steps[-1][1].C == 1.0 and svm.steps[0][0] == "standardscaler"
    params = {
        **_learner_defaults("Decision Forest Regression"),
        "resampling_method": "Replicate Resampling",
    }
    assert _learners.make_learner("Decision Forest Regression", params).bootstrap is False
    params = {
        **_learner_defaults("Linear Regression"),
        "solution_method": "Online Gradient Descent",
    }
    sgd = _learners.make_learner("Linear Regression", params).steps[-1][1]
    assert (sgd.eta0, sgd.max_iter, sgd.learning_rate) == (0.1, 10, "invscaling")


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("ZScore", [-1.0, -1.0, 1.0, 1.0]),
        ("MinMax", [0.0, 0.0, 1.0, 1.0]),
        (
            "Logistic",
            [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-1))] + [1 / (1 + math.exp(-3))] * 2,
        ),
        ("Tanh", [math.tanh(1), math.tanh(1), math.tanh(3), math.tanh(3)]),
        ("LogNormal", [0.15865525393145707, 0.15865525393145707] + [0.8413447460685429] * 2),
    ],
)
def test_normalize_data_has_the_designers_five_methods(tmp_path, monkeypatch, method, expected):
    source = tmp_path / "in.csv"
    source.write_text("x,same,name\n1,5,a\n1,5,b\n3,5,c\n3,5,d\n")
    _run_script(
        monkeypatch,
        "Normalize Data",
        {"dataset": source, "transformed_dataset": tmp_path / "out"},
        {"transformation_method": method, "columns": "", "exclude_columns": ""},
    )
    out = _table(tmp_path / "out")
    assert out["x"].tolist() == pytest.approx(expected)
    assert out["name"].tolist() == ["a", "b", "c", "d"]  # not numeric: left alone
    if method in ("ZScore", "MinMax", "LogNormal"):  # a constant column becomes 0
        assert out["same"].tolist() == [0.0] * 4


def test_normalize_data_constant_columns_become_nan_when_unchecked(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("x,same\n1,5\n3,5\n")
    _run_script(
        monkeypatch,
        "Normalize Data",
        {"dataset": source, "transformed_dataset": tmp_path / "out"},
        {"transformation_method": "MinMax", "use_0_for_constant_columns_when_checked": False},
    )
    out = _table(tmp_path / "out")
    assert out["x"].tolist() == [0.0, 1.0] and out["same"].isna().all()
    with pytest.raises(SystemExit):
        source.write_text("x\n0\n3\n")
        _run_script(
            monkeypatch,
            "Normalize Data",
            {"dataset": source, "transformed_dataset": tmp_path / "out2"},
            {"transformation_method": "LogNormal"},
        )


@pytest.fixture
def people(ws):
    store = ws.get_default_datastore()
    path = ws._dir / "datastores" / store.name / "tables" / "people.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["age,income,score,label"]
    for i in range(40):
        age = "" if i in (3, 17) else str(20 + i)
        label = 1 if i % 2 else 0
        rows.append(f"{age},{1000 + 37 * i},{(i * 7) % 11 + label * 10},{label}")
    path.write_text("\n".join(rows) + "\n")
    return DataReference(store, data_reference_name="people", path_on_datastore="tables/people.csv")


def _step(ws, module, name, inputs, outputs, params=None):
    return ModuleStep(
        module=Module.get(ws, name=module),
        name=name,
        inputs_map=inputs,
        outputs_map=outputs,
        params=params or {},
    )


def test_train_model_fits_a_learners_untrained_model_and_checks_its_task(
    tmp_path, monkeypatch, capsys
):
    source = tmp_path / "in.csv"
    source.write_text(
        "a,b,y,kind\n" + "".join(f"{i},{i % 3},{2 * i + 1},{i % 3}\n" for i in range(30))
    )
    params = {"solution_method": "Online Gradient Descent", "number_of_training_epochs": 50}
    learner = tmp_path / "learner"
    _run_script(monkeypatch, "Linear Regression", {"untrained_model": learner}, params)
    settings = json.loads((learner / "learner.json").read_text())
    assert settings["module"] == "Linear Regression" and settings["task"] == "regression"
    assert settings["params"]["number_of_training_epochs"] == 50
    ports = {"untrained_model": learner, "dataset": source, "trained_model": tmp_path / "model"}
    _run_script(monkeypatch, "Train Model", ports, {"label_column": "y"})
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["task"] == "regression" and meta["estimator"] == "Linear Regression"
    assert meta["features"] == ["a", "b", "kind"]

    # model explanations: permutation importance ranks the feature the label is made of first
    params = {"label_column": "y", "model_explanations": True}
    _run_script(monkeypatch, "Train Model", ports, params)
    explained = json.loads((tmp_path / "model" / "explanation.json").read_text())
    assert explained["Feature"][0] == "a" and explained["Importance"][0] > 0.5

    # a two-class learner on a three-valued label: the step says so, naming the field
    _run_script(monkeypatch, "Two-Class Decision Forest", {"untrained_model": learner}, {})
    err = _fails(capsys, "Train Model", ports, {"label_column": "kind"}, monkeypatch)
    assert "params['label_column']" in err and "two-class model" in err and "3 distinct" in err
    # what is connected must be a learner's output
    ports["untrained_model"] = tmp_path
    err = _fails(capsys, "Train Model", ports, {"label_column": "y"}, monkeypatch)
    assert "inputs_map['untrained_model']" in err and "no learner.json" in err


def test_train_model_refuses_an_estimator_and_an_untrained_model_at_once(ws, people, run_dag):
    install_builtin_modules(ws, names=["Two-Class Decision Forest", "Train Model"])
    store = ws.get_default_datastore()
    learner, model = PipelineData("learner", store), PipelineData("model", store)
    steps = [
        _step(
            ws,
            "Two-Class Decision Forest",
            "forest",
            {},
            {"untrained_model": learner},
            {"number_of_decision_trees": 0},
        ),
        _step(
            ws,
            "Train Model",
            "train",
            {"untrained_model": learner, "dataset": people},
            {"trained_model": model},
            {"label_column": "label", "estimator": "RandomForestClassifier"},
        ),
    ]
    with pytest.raises(PipelineValidationError) as caught:
        run_dag(Pipeline(ws, steps), dag_id="both_shapes")
    text = str(caught.value)
    assert "params['number_of_decision_trees']" in text and "at least 1" in text
    assert "params['estimator']" in text and "untrained model is connected" in text


def test_learner_modules_feed_train_model_score_and_evaluate(ws, people, run_dag):
    """The designer's shape on the embedded Airflow: a learner's untrained model and a dataset
    into Train Model, then Score and Evaluate; and typed data through the user's Python and a SQL
    query (unconnected optional inputs left out)."""
    install_builtin_modules(ws)
    store = ws.get_default_datastore()
    data = {n: PipelineData(n, store) for n in ("clean", "svm", "model", "scored", "ev")}
    data.update({n: PipelineData(n, store) for n in ("typed", "py1", "py2", "sql")})
    script = (
        "import pandas as pd\n\n"
        "def azureml_main(dataframe1=None, dataframe2=None):\n"
        "    assert dataframe2 is None\n"
        "    dataframe1['name'] = dataframe1['name'].str.upper()\n"
        "    return dataframe1, pd.DataFrame({'rows': [len(dataframe1)]})\n"
    )
    steps = [
        _step(
            ws,
            "Clean Missing Data",
            "clean",
            {"dataset": people},
            {"cleaned_dataset": data["clean"]},
            {"cleaning_mode": "Replace with mean"},
        ),
        _step(
            ws,
            "Two-Class Support Vector Machine",
            "svm",
            {},
            {"untrained_model": data["svm"]},
            {"number_of_iterations": 50},
        ),
        _step(
            ws,
            "Train Model",
            "train",
            {"untrained_model": data["svm"], "dataset": data["clean"]},
            {"trained_model": data["model"]},
            {"label_column": "label"},
        ),
        _step(
            ws,
            "Score Model",
            "score",
            {"trained_model": data["model"], "dataset": data["clean"]},
            {"scored_dataset": data["scored"]},
        ),
        _step(
            ws,
            "Evaluate Model",
            "evaluate",
            {"scored_dataset": data["scored"]},
            {"evaluation_results": data["ev"]},
        ),
        # the everyday modules: typed data, the user's Python in the step, SQL over two inputs
        _step(
            ws,
            "Enter Data Manually",
            "typed",
            {},
            {"dataset": data["typed"]},
            {"data": "label,name\n0,zero\n1,one\n"},
        ),
        _step(
            ws,
            "Execute Python Script",
            "python",
            {"dataframe1": data["typed"]},
            {"result_dataset1": data["py1"], "result_dataset2": data["py2"]},
            {"python_script": script},
        ),
        _step(
            ws,
            "Apply SQL Transformation",
            "sql",
            {"t1": data["clean"], "t2": data["py1"]},
            {"result_dataset": data["sql"]},
            {
                "sql_query_script": "select t2.name, count(*) as n from t1\n"
                "join t2 on t1.label = t2.label group by t2.name order by t2.name;"
            },
        ),
    ]
    dag_run, records = run_dag(Pipeline(ws, steps), dag_id="designer_learners")
    assert str(dag_run.state) == "success", records
    logged = records["evaluate.module"][1]["metrics"]
    assert logged["Accuracy"] > 0.8, logged  # the label shifts 'score' by 10
    assert 0.5 < logged["AUC"] <= 1.0  # from the SVM's margin: it has no probabilities
    assert records["svm.module"][1]["metrics"]["Learner"] == "Two-Class Support Vector Machine"

    def folder(step, name):
        location = records[f"{step}.module"][1]["outputs"][name]
        return ws._dir / "datastores" / location["datastore"] / location["path"]

    settings = json.loads((folder("svm", "svm") / "learner.json").read_text())
    assert settings["params"]["number_of_iterations"] == 50 and settings["task"] == "binary"
    assert _table(folder("sql", "sql")).to_dict("records") == [
        {"name": "ONE", "n": 20},
        {"name": "ZERO", "n": 20},
    ]
    assert _table(folder("python", "py2"))["rows"].tolist() == [2]


def _fails(capsys, module, ports, params, monkeypatch) -> str:
    """Run a script that must stop with a user error; its message (step field and reason)."""
    with pytest.raises(SystemExit) as stopped:
        _run_script(monkeypatch, module, ports, params)
    assert stopped.value.code == 2
    return capsys.readouterr().err


def test_execute_python_script_runs_azureml_main_with_a_script_bundle(
    tmp_path, monkeypatch, capsys
):
    import zipfile

    monkeypatch.chdir(tmp_path)  # the bundle unpacks into ./Script Bundle, as in the designer
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("x\n1\n2\n")
    second.write_text("y\n10\n")
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as bundle:
        bundle.writestr("helpers_for_test.py", "def double(frame):\n    return frame * 2\n")
        bundle.writestr("note.txt", "from the bundle")
    script = (
        "import pandas as pd\n"
        "from helpers_for_test import double\n\n"
        "def azureml_main(dataframe1=None, dataframe2=None):\n"
        "    note = open('./Script Bundle/note.txt').read()\n"
        "    return double(dataframe1), pd.DataFrame({'n': [len(dataframe2)], 'note': [note]})\n"
    )
    ports = {
        "dataframe1": first,
        "dataframe2": second,
        "script_bundle": tmp_path / "bundle.zip",
        "result_dataset1": tmp_path / "r1",
        "result_dataset2": tmp_path / "r2",
    }
    try:
        _run_script(monkeypatch, "Execute Python Script", ports, {"python_script": script})
    finally:
        sys.modules.pop("helpers_for_test", None)
    assert _table(tmp_path / "r1")["x"].tolist() == [2, 4]
    assert _table(tmp_path / "r2").to_dict("records") == [{"n": 1, "note": "from the bundle"}]

    # a result that is not DataFrames fails the step naming the field
    bad = "def azureml_main(dataframe1=None, dataframe2=None):\n    return 42,\n"
    err = _fails(capsys, "Execute Python Script", ports, {"python_script": bad}, monkeypatch)
    assert "params['python_script']" in err and "is a int, not a DataFrame" in err
    # the default script passes dataframe1 through, and an unconnected input is None
    ports = {"result_dataset1": tmp_path / "d1", "result_dataset2": tmp_path / "d2"}
    default = builtin_modules.catalogue().DEFAULT_PYTHON_SCRIPT
    script = default.replace(
        "return (dataframe1,)", "return (pd.DataFrame({'none': [dataframe1 is None]}),)"
    )
    _run_script(monkeypatch, "Execute Python Script", ports, {"python_script": script})
    assert _table(tmp_path / "d1")["none"].tolist() == [True]


def test_edit_metadata_converts_and_renames(tmp_path, monkeypatch, capsys):
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n1.0,yes,2024-01-02\n2.0,no,2024-02-03\n")
    ports = {"dataset": source, "results_dataset": tmp_path / "out"}
    params = {"column": "a", "data_type": "Integer", "new_column_names": "count"}
    _run_script(monkeypatch, "Edit Metadata", ports, params)
    assert (tmp_path / "out" / "data.csv").read_text().splitlines()[:2] == [
        "count,b,c",
        "1,yes,2024-01-02",
    ]
    _run_script(monkeypatch, "Edit Metadata", ports, {"column": "b", "data_type": "Boolean"})
    assert _table(tmp_path / "out")["b"].tolist() == [True, False]
    err = _fails(
        capsys, "Edit Metadata", ports, {"column": "c", "data_type": "Double"}, monkeypatch
    )
    assert "params['data_type']" in err and "'c' does not convert to Double" in err
    err = _fails(
        capsys, "Edit Metadata", ports, {"column": "a,b", "new_column_names": "x"}, monkeypatch
    )
    assert "params['new_column_names']" in err and "1 new names for 2 columns" in err


def test_remove_duplicate_rows_add_rows_and_add_columns(tmp_path, monkeypatch, capsys):
    source = tmp_path / "in.csv"
    source.write_text("id,v\n1,a\n1,b\n,c\n,d\n2,e\n")
    ports = {"dataset": source, "results_dataset": tmp_path / "dedup"}
    _run_script(monkeypatch, "Remove Duplicate Rows", ports, {"key_columns": "id"})
    assert _table(tmp_path / "dedup")["v"].tolist() == ["a", "c", "d", "e"]  # missing keys stay
    params = {"key_columns": "id", "retain_first_duplicate_row": False}
    _run_script(monkeypatch, "Remove Duplicate Rows", ports, params)
    assert _table(tmp_path / "dedup")["v"].tolist() == ["b", "c", "d", "e"]

    other = tmp_path / "other.csv"
    other.write_text("v,id\nz,9\n")
    ports = {"dataset1": source, "dataset2": other, "results_dataset": tmp_path / "rows"}
    _run_script(monkeypatch, "Add Rows", ports, {})
    added = _table(tmp_path / "rows")
    assert list(added.columns) == ["id", "v"] and added["v"].tolist()[-1] == "z"
    other.write_text("v,w\nz,9\n")
    err = _fails(capsys, "Add Rows", ports, {}, monkeypatch)
    assert "inputs_map['dataset2']" in err and "only in dataset2 ['w']" in err

    other.write_text("v\n1\n2\n3\n4\n5\n")
    ports = {"left_dataset": source, "right_dataset": other, "combined_dataset": tmp_path / "cols"}
    _run_script(monkeypatch, "Add Columns", ports, {})
    assert list(_table(tmp_path / "cols").columns) == ["id", "v", "v (2)"]
    other.write_text("v\n1\n")
    err = _fails(capsys, "Add Columns", ports, {}, monkeypatch)
    assert "has 5 rows and the right one 1" in err


def test_apply_sql_transformation_names_the_inputs_t1_t2_t3(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("id,name\n1,ann\n2,bob\n")
    second.write_text("id,score\n1,5\n1,7\n2,1\n")
    script = (
        "create table totals as select id, sum(score) as total from t2 group by id;\n"
        "select t1.name, totals.total, ';' as semi from t1 join totals on t1.id = totals.id "
        "order by t1.id"
    )
    ports = {"t1": first, "t2": second, "result_dataset": tmp_path / "out"}
    _run_script(monkeypatch, "Apply SQL Transformation", ports, {"sql_query_script": script})
    assert _table(tmp_path / "out").to_dict("records") == [
        {"name": "ann", "total": 12, "semi": ";"},
        {"name": "bob", "total": 1, "semi": ";"},
    ]
    err = _fails(
        capsys,
        "Apply SQL Transformation",
        ports,
        {"sql_query_script": "select * from t3"},
        monkeypatch,
    )
    assert "params['sql_query_script']" in err and "no such table: t3" in err


def test_partition_and_sample_summarize_enter_data_and_convert(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("k,x\n" + "".join(f"{'ab'[i % 2]},{i}\n" for i in range(20)))
    ports = {"dataset": source, "results_dataset": tmp_path / "head"}
    params = {"partition_or_sample_mode": "Head", "number_of_rows_to_select": 3}
    _run_script(monkeypatch, "Partition and Sample", ports, params)
    assert _table(tmp_path / "head")["x"].tolist() == [0, 1, 2]
    params = {"rate_of_sampling": 0.5, "random_seed_for_sampling": 3}
    params |= {"stratified_split_for_sampling": True}
    params |= {"stratification_key_column_for_sampling": "k"}
    _run_script(monkeypatch, "Partition and Sample", ports, params)
    sample = _table(tmp_path / "head")
    assert sample["k"].value_counts().to_dict() == {"a": 5, "b": 5}
    assert sample["x"].is_monotonic_increasing  # kept in their original order

    ports = {"dataset": source, "result_dataset": tmp_path / "summary"}
    _run_script(monkeypatch, "Summarize Data", ports, {})
    summary = _table(tmp_path / "summary").set_index("Feature")
    assert summary.loc["x", "Count"] == 20 and summary.loc["x", "Median"] == 9.5
    assert summary.loc["x", "Max"] == 19 and summary.loc["k", "Unique Value Count"] == 2
    assert pd.isna(summary.loc["k", "Mean"])

    data = "1\t2\n3\t4\n\n\n"
    params = {"data_format": "TSV", "has_header": False, "data": data}
    _run_script(monkeypatch, "Enter Data Manually", {"dataset": tmp_path / "typed"}, params)
    assert _table(tmp_path / "typed").to_dict("records") == [
        {"Col1": 1, "Col2": 2},
        {"Col1": 3, "Col2": 4},
    ]

    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "1.csv").write_text("x\n1\n")
    (parts / "2.csv").write_text("x\n2\n")
    ports = {"dataset": parts, "results_dataset": tmp_path / "csv"}
    _run_script(monkeypatch, "Convert to CSV", ports, {})
    assert (tmp_path / "csv" / "data.csv").read_text() == "x\n1\n2\n"


def test_python_script_and_sql_are_checked_at_compile_time(ws, run_dag):
    install_builtin_modules(ws, names=["Execute Python Script", "Apply SQL Transformation"])
    store = ws.get_default_datastore()
    typed = DataReference(store, data_reference_name="typed", path_on_datastore="typed.csv")
    steps = [
        _step(
            ws,
            "Execute Python Script",
            "python",
            {},
            {
                "result_dataset1": PipelineData("r1", store),
                "result_dataset2": PipelineData("r2", store),
            },
            {"python_script": "def main():\n    return None\n"},
        ),
        _step(
            ws,
            "Apply SQL Transformation",
            "sql",
            {"t1": typed},
            {"result_dataset": PipelineData("r3", store)},
            {"sql_query_script": "select 'unfinished from t1"},
        ),
    ]
    with pytest.raises(PipelineValidationError) as caught:
        run_dag(Pipeline(ws, steps), dag_id="checked_scripts")
    text = str(caught.value)
    assert "params['python_script']" in text and "must define azureml_main" in text
    assert "params['sql_query_script']" in text and "unfinished statement" in text


def test_a_designer_data_frame_directory_or_parquet_is_a_table_input(tmp_path, monkeypatch):
    """The designer's DataFrameDirectory (``_meta.yaml`` naming a parquet, CSV or JSON-lines
    file) and plain parquet files feed any built-in."""
    frame = pd.DataFrame({"id": [1, 2], "name": ["a", "b"]})
    parquet = tmp_path / "designer"
    parquet.mkdir()
    frame.to_parquet(parquet / "_data.parquet", index=False)
    (parquet / "_meta.yaml").write_text(
        "type: DataFrameDirectory\nextension: {}\nformat: Parquet\ndata: _data.parquet\n"
    )
    lines = tmp_path / "lines"
    lines.mkdir()
    frame.to_json(lines / "rows.jsonl", orient="records", lines=True)
    (lines / "_meta.yaml").write_text("type: DataFrameDirectory\nformat: JSONL\ndata: rows.jsonl\n")
    loose = tmp_path / "loose"
    loose.mkdir()
    frame.iloc[:1].to_parquet(loose / "part-0.parquet", index=False)
    frame.iloc[1:].to_parquet(loose / "part-1.parquet", index=False)
    for source in (parquet, lines, loose, parquet / "_data.parquet"):
        out = tmp_path / f"out-{source.name}"
        _run_script(monkeypatch, "Convert to CSV", {"dataset": source, "results_dataset": out}, {})
        assert (out / "data.csv").read_text() == "id,name\n1,a\n2,b\n", source
