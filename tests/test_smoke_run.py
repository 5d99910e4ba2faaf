"""The data path end to end: a two-step pipeline compiled and run on Airflow (dag.test)."""

from conftest import write_script

from mlpipe_provider.sdk import (
    DataReference,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
)


def test_two_steps_hand_data_over_and_log_metrics(ws, project, run_dag):
    store = ws.get_default_datastore()
    (project / "raw").mkdir()
    (project / "raw" / "numbers.txt").write_text("1\n2\n3\n")
    store.upload("raw", target_path="raw")
    write_script(
        project / "src",
        "prep.py",
        """
        import sys, os
        src, out, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
        nums = [int(x) * scale for x in open(os.path.join(src, "numbers.txt"))]
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, "scaled.txt"), "w").write("\\n".join(map(str, nums)))
    """,
    )
    write_script(
        project / "src",
        "total.py",
        """
        import sys, os
        from mlpipe_provider.sdk import Run
        total = sum(int(x) for x in open(os.path.join(sys.argv[1], "scaled.txt")))
        Run.get_context().log("total", total)
        assert os.environ["AML_PARAMETER_mode"] == "fast"
    """,
    )
    raw = DataReference(store, data_reference_name="raw", path_on_datastore="raw")
    scaled = PipelineData("scaled", datastore=store)
    scale = PipelineParameter("scale", 10)
    prep = PythonScriptStep(
        "prep.py",
        arguments=[raw, scaled, scale],
        inputs=[raw],
        outputs=[scaled],
        source_directory="src",
    )
    total = PythonScriptStep(
        "total.py",
        arguments=[scaled],
        inputs=[scaled],
        source_directory="src",
        params={"mode": "fast"},
    )
    pipeline = Pipeline(ws, [total])
    assert prep in pipeline.steps  # pulled in because it produces total's input, as in v1
    dag_run, records = run_dag(pipeline, conf={"scale": 100})

    assert str(dag_run.state) == "success"
    assert set(records) == {"mlpipe.plan", "prep.py", "total.py"}
    state, record = records["total.py"]
    assert state == "success"
    assert record["metrics"] == {"total": 600}
