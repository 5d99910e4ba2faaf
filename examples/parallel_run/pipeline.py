"""Batch scoring with ParallelRunStep: score every reading file of a folder, ten files per call.

An Azure ML v1 batch-inference program with only its imports changed. The readings are a
FileDataset on the default datastore; ``score.py`` is the entry script (``init()`` loads the
"model", ``run(mini_batch)`` scores the files it is handed and returns one row per file). The
step writes every row to ``parallel_run_step.txt`` in its output, and ``summarize`` reads it.

On Airflow the step is a TaskGroup: a ``partition`` task, one mapped ``mini_batch`` task per ten
files (retried up to ``run_max_try`` times, two at once as node_count * process_count_per_node
says), then the step's own task, which gathers the rows. A second run of the same readings
reuses the whole step; after changing a few readings, only their mini-batches run again.
"""

from mlpipe_provider.sdk import (
    Dataset,
    Environment,
    Experiment,
    ParallelRunConfig,
    ParallelRunStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

ws = Workspace.from_config()
datastore = ws.get_default_datastore()
cpu = ws.compute_targets["cpu-cluster"]

# validate=False: the readings are uploaded by main(), after this module is compiled
readings = Dataset.File.from_files(path=(datastore, "readings/"), validate=False)
scores = PipelineData("scores", datastore=datastore)
report = PipelineData("report", datastore=datastore)
alert_level = PipelineParameter("alert_level", default_value=70.0)

scoring_env = Environment("batch-scoring")
scoring_env.environment_variables = {"SCORE_UNITS": "celsius"}

parallel_run_config = ParallelRunConfig(
    source_directory="src",
    entry_script="score.py",
    mini_batch_size="10",
    error_threshold=5,
    output_action="append_row",
    append_row_file_name="scores.txt",
    environment=scoring_env,
    compute_target=cpu,
    node_count=1,
    process_count_per_node=2,
    run_invocation_timeout=120,
)

score_step = ParallelRunStep(
    name="score-readings",
    parallel_run_config=parallel_run_config,
    inputs=[readings.as_named_input("readings").as_mount()],
    output=scores,
    arguments=["--alert-level", alert_level],
    allow_reuse=True,
)

summarize_step = PythonScriptStep(
    name="summarize",
    script_name="summarize.py",
    arguments=["--scores", scores, "--report", report],
    inputs=[scores],
    outputs=[report],
    compute_target=cpu,
    source_directory="src",
)

batch_scoring = Pipeline(
    workspace=ws,
    steps=[score_step, summarize_step],
    description="ParallelRunStep: score 40 reading files in mini-batches of ten, then summarize.",
)


def write_readings(folder, count=40):
    """One small file per sensor: a header line and a few temperatures."""
    folder.mkdir(parents=True, exist_ok=True)
    for sensor in range(count):
        values = [20 + (sensor * 7 + i * 13) % 60 for i in range(5)]
        text = f"sensor-{sensor:03d}\n" + "\n".join(str(v) for v in values) + "\n"
        (folder / f"sensor-{sensor:03d}.txt").write_text(text)


def main():
    from pathlib import Path

    write_readings(Path("data/readings"))
    datastore.upload("data/readings", target_path="readings", overwrite=True)
    run = Experiment(ws, "batch-scoring").submit(batch_scoring)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("summarize")[0].get_metrics())


if __name__ == "__main__":
    main()
